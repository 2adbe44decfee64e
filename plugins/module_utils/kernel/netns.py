# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network namespaces: where named ones live, whether one exists, and entering one.

The C library calls the collection needs and Python 3.11 lacks (setns, mount,
umount2) are reached through ``libc()``.

``InNetns`` runs the calling thread inside a network namespace file and brings
it back afterwards. A netlink socket opened in there stays bound to that
namespace, which is how the netlink layer opens a namespace: in-thread, with no
helper process (pyroute2's NetNS forks one) and several times faster.
"""

from __future__ import annotations

import os

from ansible_collections.podnet.mesh.plugins.module_utils.core.model import STALE

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

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


class InNetns:
    """Run the calling thread inside a network namespace file, then come back."""

    def __init__(self, path):
        self.path = path
        self.home = None

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(self.path, os.O_RDONLY)
        except OSError:
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
    """True when a named namespace is mounted at /run/netns/<name> (or a path exists)."""
    path = netns_path(name)
    if name.startswith("/"):
        return os.path.exists(path)
    return os.path.exists(path) and os.path.ismount(path)


def netns_state(name):
    """True (a mounted namespace), False (nothing) or STALE (a leftover file)."""
    path = netns_path(name)
    if not os.path.lexists(path):
        return False
    if name.startswith("/") or os.path.ismount(path):
        return True
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
