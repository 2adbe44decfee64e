# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The C library calls the collection needs and Python 3.11 lacks: setns, mount, umount2.

``InNetns`` runs the calling thread inside a network namespace file and brings
it back afterwards. A netlink socket opened in there stays bound to that
namespace, which is how the netlink layer opens a namespace: in-thread, with no
helper process (pyroute2's NetNS forks one) and several times faster.
"""

from __future__ import annotations

import os

CLONE_NEWNET = 0x40000000

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
