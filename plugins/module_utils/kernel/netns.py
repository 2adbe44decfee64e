# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network namespaces: where named ones live, whether one exists, and entering one.

The C library calls the collection needs and Python 3.11 lacks (setns, fstatfs, mount,
umount2) are reached through ``libc()``.

``InNetns`` runs the calling thread inside a network namespace file and brings
it back afterwards. A netlink socket opened in there stays bound to that
namespace, which is how the netlink layer opens a namespace: in-thread, with no
helper process (pyroute2's NetNS forks one) and several times faster.

A path that names a namespace is opened by ``open_netns`` only: something that
is no regular file (a FIFO, a device, a directory, a socket) is refused before
it is opened, the open itself never waits (O_NONBLOCK), and what was opened
must be a file of the namespace file system (nsfs) holding a network
namespace. Anything else is an OSError (EINVAL) that says what the path is.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from ansible_collections.podnet.mesh.plugins.module_utils.core.model import STALE

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"
MOUNTINFO = "/proc/self/mountinfo"
# statfs f_type of the namespace file system, and the nsfs ioctl that names a namespace's kind.
NSFS_MAGIC = 0x6E736673
NS_GET_NSTYPE = 0xB703
NAMESPACE_KINDS = {
    0x00020000: "mount", 0x02000000: "cgroup", 0x04000000: "UTS", 0x08000000: "IPC", 0x10000000: "user",
    0x20000000: "PID", CLONE_NEWNET: "network", 0x00000080: "time",
}
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY

_LIBC = None


def libc():
    """The C library of this process (ctypes), loaded once."""
    global _LIBC  # pylint: disable=global-statement
    if _LIBC is None:
        import ctypes  # pylint: disable=import-outside-toplevel
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def check(result, what):
    """Raise OSError(errno, 'what: strerror') when a C call returned non-zero."""
    if result != 0:
        import ctypes  # pylint: disable=import-outside-toplevel
        code = ctypes.get_errno()
        raise OSError(code, "%s: %s" % (what, os.strerror(code)))


def _file_kind(mode):
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "no regular file"


class NotANamespace(OSError):
    """The path names something that is no network namespace (errno EINVAL)."""


def _not_netns(path, what):
    return NotANamespace(errno.EINVAL, "%s is not a network namespace: %s" % (path, what))


def _fs_type(fd):
    """f_type of the file system of fd (fstatfs), or None when it cannot be had."""
    import ctypes  # pylint: disable=import-outside-toplevel
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if libc().fstatfs(fd, buf) != 0:
        return None
    # f_type comes first: a long on most architectures, an unsigned int on s390x.
    return (ctypes.c_long.from_buffer(buf).value, ctypes.c_uint32.from_buffer(buf).value)


def check_netns_fd(fd, path):
    """Raise OSError (EINVAL) unless descriptor fd is a network namespace file."""
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # swapped since the path was looked at
        raise _not_netns(path, "it is %s" % _file_kind(mode))
    kinds = _fs_type(fd)
    if kinds is not None and NSFS_MAGIC not in kinds:
        raise _not_netns(path, "it is a file of another file system (type 0x%x), not of nsfs" % kinds[0])
    import fcntl  # pylint: disable=import-outside-toplevel
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as exc:
        if exc.errno != errno.ENOTTY:  # ENOTTY: a kernel older than 4.11 cannot tell
            raise
        return
    if kind != CLONE_NEWNET:
        raise _not_netns(path, "it is a %s namespace" % NAMESPACE_KINDS.get(kind, "0x%x" % kind))


def open_netns(path):
    """A read-only descriptor (close-on-exec) of the network namespace file at path.

    OSError: ENOENT and the like from the path, EINVAL when it is something
    else than a network namespace (named in the message). Never blocks.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _not_netns(path, "it is %s" % _file_kind(mode))
    fd = os.open(path, OPEN_FLAGS)
    try:
        check_netns_fd(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def netns_problem(path):
    """None when path is a network namespace file, else why not (a sentence fragment)."""
    try:
        os.close(open_netns(path))
    except NotANamespace as exc:
        return exc.strerror
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        return "%s: %s" % (path, getattr(exc, "strerror", None) or exc)
    return None


def is_netns(path):
    """True when path is a network namespace file (a mounted /run/netns entry, /proc/<pid>/ns/net ...)."""
    return netns_problem(path) is None


class InNetns:
    """Run the calling thread inside a network namespace file, then come back."""

    def __init__(self, path):
        self.path = path
        self.home = None

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = open_netns(self.path)
        except (OSError, ValueError):
            os.close(self.home)
            raise
        try:
            check(libc().setns(target, CLONE_NEWNET), "enter %s" % self.path)
        except OSError:
            os.close(self.home)
            raise
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc):
        try:
            check(libc().setns(self.home, CLONE_NEWNET), "return from %s" % self.path)
        finally:
            os.close(self.home)


def netns_path(name):
    """Path of a namespace: a name under /run/netns, or an absolute path as given."""
    if name.startswith("/"):
        return name
    return os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name):
    """True when /run/netns/<name> (or the path given) is a network namespace.

    A leftover file, a FIFO, a directory or a namespace of another kind there
    is no network namespace: False, and nothing is ever left waiting on it.
    """
    return is_netns(netns_path(name))


def netns_state(name):
    """True (a network namespace), False (nothing) or STALE (a leftover file under /run/netns).

    A path given in full that is no network namespace is False: only entries
    of /run/netns are ever cleared.
    """
    path = netns_path(name)
    if is_netns(path):
        return True
    if name.startswith("/") or not os.path.lexists(path):
        return False
    return STALE


def read_sysctl(key, netns=None):
    """A sysctl (key as a path below /proc/sys) as seen in namespace file netns (None: here)."""
    if netns is None:
        return _read(os.path.join("/proc/sys", key))
    with InNetns(netns):
        return _read(os.path.join("/proc/sys", key))


def write_sysctl(key, value, netns=None):
    """Set a sysctl (key as a path below /proc/sys) in namespace file netns (None: here)."""
    if netns is None:
        return _write(os.path.join("/proc/sys", key), value)
    with InNetns(netns):
        return _write(os.path.join("/proc/sys", key), value)


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def _write(path, value):
    with open(path, "w") as handle:
        handle.write(value)


def _unescape(field):
    """Undo mountinfo's octal escapes (\\040 for a space, ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Mounts as dicts {point, root, fstype, shared} in mount order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 7:
            continue
        sep = fields.index("-")
        optional = fields[6:sep]
        mounts.append({
            "point": _unescape(fields[4]),
            "root": _unescape(fields[3]),
            "fstype": fields[sep + 1],
            "shared": any(o.startswith("shared:") for o in optional),
        })
    return mounts


def visible_namespaces(mountinfo=MOUNTINFO):
    """Every network namespace mounted in this mount namespace, once each, as labels.

    A label is the name of a namespace under /run/netns, or the path of any other
    mounted namespace file (a container runtime's, a lab node's). Read from the mount
    table: bind mounts of nsfs whose root is net:[inode]. Named ones come first.
    """
    try:
        with open(mountinfo) as handle:
            mounts = parse_mountinfo(handle.read())
    except OSError:
        return []
    prefix = NETNS_RUN_DIR + "/"
    labels = {}
    for mount in mounts:
        root, point = mount["root"], mount["point"]
        if mount["fstype"] != "nsfs" or not root.startswith("net:["):
            continue
        rest = point[len(prefix):] if point.startswith(prefix) else ""
        label = rest if rest and "/" not in rest else point
        if root not in labels or (labels[root].startswith("/") and not label.startswith("/")):
            labels[root] = label
    found = set(labels.values())
    return sorted(n for n in found if not n.startswith("/")) + sorted(n for n in found if n.startswith("/"))
