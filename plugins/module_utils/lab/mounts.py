# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab on the file system: its directory, namespace files and the processes inside.

* the mount table (/proc/self/mountinfo) as the planner reads it: whether
  the lab directory is mounted (privately), which namespace files are
  mounted below it and which other mounts are in the way;
* the unshare(1) command that makes a member's namespace files, with the
  script a node runs inside its new namespaces;
* mount(2) and umount2(2) through the C library (``kernel.netns.libc``),
  unmounting stacked mounts, removing trees;
* the lab's marker file, and what else a lab directory holds;
* the processes still running inside namespaces about to go away, and
  stopping them.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import time

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ToolError
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import MOUNTINFO, check, libc, parse_mountinfo  # noqa: F401 (parse_mountinfo: part of this module's API)
from ansible_collections.podnet.mesh.plugins.module_utils.lab.topology import MARKER, MARKER_TEXT, NODE_FILES

MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

# The node's own view, set up inside its new namespaces: hostname; the copies
# of the machine's named network namespaces and of every lab's namespace files
# unmounted (lazily, with their submounts) so that this node does not keep
# them alive; a private tmpfs on /run/netns for its pods; sysfs of its own
# network namespace on /sys.
NODE_SETUP = r"""
set -e
printf '%s\n' "$1" > /proc/sys/kernel/hostname
umount -R -l /run/netns 2>/dev/null || true
for dir in "$2"/*/; do umount -R -l "$dir" 2>/dev/null || true; done
mkdir -p /run/netns
mount -t tmpfs -o mode=0755,size=4m podnet-lab-netns /run/netns
mount -t sysfs sysfs /sys
"""


def lab_mounts(mounts, lab):
    """From parsed mountinfo: {mounted, shared, files: {path: ns type}, strays: [path]}.

    The last mount on a point is the visible one. files holds namespace
    files (nsfs mounts) below the lab directory; strays any other mount below it.
    """
    prefix = lab.rstrip("/") + "/"
    state = {"mounted": False, "shared": False, "files": {}, "strays": []}
    below = {}
    for mount_ in mounts:
        point = mount_["point"]
        if point == lab:
            state["mounted"] = True
            state["shared"] = mount_["shared"]
        elif point.startswith(prefix):
            below[point] = mount_
    for point, mount_ in below.items():
        if mount_["fstype"] == "nsfs":
            state["files"][point] = mount_["root"].split(":", 1)[0]
        else:
            state["strays"].append(point)
    state["strays"].sort(reverse=True)
    return state


def read_lab_mounts(lab):
    """lab_mounts() of the mount table this process sees."""
    with open(MOUNTINFO) as handle:
        return lab_mounts(parse_mountinfo(handle.read()), lab)


def members_from_files(lab, files, dirs=()):
    """{label: [kinds]} of namespace files mounted in the expected places."""
    result = {}
    prefix = lab.rstrip("/") + "/"
    for path, nstype in files.items():
        rest = path[len(prefix):].split("/")
        if len(rest) != 2 or rest[1] not in NODE_FILES or rest[1] != nstype:
            continue
        result.setdefault(rest[0], []).append(rest[1])
    for label in dirs:
        result.setdefault(label, [])
    return dict((label, sorted(kinds)) for label, kinds in result.items())


# ------------------------------------------------------------------- marker
def is_marked(lab):
    """Whether the directory lab holds the lab's marker file (a regular file with the lab's text)."""
    path = os.path.join(lab, MARKER)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path) as handle:
            return handle.read(len(MARKER_TEXT) + 1) == MARKER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def write_marker(lab):
    """Make directory lab (if it is not there) and write the lab's marker file into it."""
    try:
        os.makedirs(lab, mode=0o755, exist_ok=True)
        with open(os.path.join(lab, MARKER), "w") as handle:
            handle.write(MARKER_TEXT)
    except OSError as exc:
        raise ToolError("cannot write the lab's marker file into %s: %s" % (lab, exc.strerror or exc), exc.errno)


def unknown_entries(lab):
    """What the directory lab holds that no lab holds, as paths relative to it (sorted).

    A lab holds its marker and member directories; a member directory holds only
    namespace files (net, mnt, uts: regular files, bind-mounted or not). Nothing
    is followed: a symbolic link is unknown.
    """
    unknown = []
    try:
        entries = sorted(os.listdir(lab))
    except OSError:
        return unknown
    for entry in entries:
        path = os.path.join(lab, entry)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if entry == MARKER and stat.S_ISREG(mode):
            continue
        if not stat.S_ISDIR(mode):
            unknown.append(entry)
            continue
        try:
            inner = sorted(os.listdir(path))
        except OSError:
            unknown.append(entry + "/")
            continue
        for name in inner:
            try:
                regular = stat.S_ISREG(os.lstat(os.path.join(path, name)).st_mode)
            except OSError:
                continue
            if name not in NODE_FILES or not regular:
                unknown.append("%s/%s" % (entry, name))
    return unknown


# ------------------------------------------------------------------ unshare
def unshare_command(path, label, files, root, unshare="unshare"):
    """argv that makes the namespace files of one member below path."""
    argv = [unshare] + ["--%s=%s" % ({"mnt": "mount"}.get(k, k), os.path.join(path, k))
                        for k in files]
    if "mnt" in files:
        argv += ["--propagation", "private", "--", "/bin/sh", "-c", NODE_SETUP,
                 "podnet-lab", label, root]
    else:
        argv += ["--", "true"]
    return argv


# ------------------------------------------------------------------- mounts
def mount(source, target, fstype, flags):
    check(libc().mount(source and source.encode(), target.encode(),
                       fstype and fstype.encode(), flags, None),
          "mount %s" % target)


def umount(target, lazy=False):
    check(libc().umount2(target.encode(), MNT_DETACH if lazy else 0), "umount %s" % target)


def mount_private(path):
    """Make directory path a bind mount of itself (if it is none yet) that does not propagate."""
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
        if not read_lab_mounts(path)["mounted"]:
            mount(path, path, None, MS_BIND)
        mount(None, path, None, MS_PRIVATE)
    except OSError as exc:
        raise ToolError("cannot mount the lab directory %s privately on itself: %s"
                        % (path, exc.strerror or exc), exc.errno)


def unmount_all(path):
    """Unmount everything mounted on path (stacked mounts too); lazily if busy."""
    for _attempt in range(16):
        try:
            umount(path)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return  # not (or no longer) a mount point
            if exc.errno != errno.EBUSY:
                raise ToolError("cannot unmount %s: %s" % (path, exc.strerror), exc.errno)
            try:
                umount(path, lazy=True)
            except OSError as lazy:
                raise ToolError("cannot unmount %s: %s" % (path, lazy.strerror), lazy.errno)
    raise ToolError("cannot unmount %s: still mounted after 16 unmounts" % path, errno.EBUSY)


def remove_tree(path):
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ToolError("cannot remove %s: %s" % (exc.filename or path, exc.strerror), exc.errno)


# ---------------------------------------------------------------- processes
def namespace_inodes(paths):
    """{(st_dev, st_ino)} of mounted namespace files (to find processes inside)."""
    found = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def processes_in(inodes, proc="/proc"):
    """PIDs whose net, mnt or uts namespace is one of inodes."""
    pids = []
    if not inodes:
        return pids
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for kind in NODE_FILES:
            try:
                st = os.stat(os.path.join(proc, entry, "ns", kind))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in inodes:
                pids.append(int(entry))
                break
    return pids


def stop_processes(pids, grace=1.0):
    """SIGTERM, wait up to grace seconds, then SIGKILL what is left."""
    if not pids:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            # A zombie has exited already; it holds no namespace any more.
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
