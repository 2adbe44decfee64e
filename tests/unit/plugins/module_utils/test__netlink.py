# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Error handling of the netlink layer that the kernel cannot easily produce on demand."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils import _netlink


def namespace(name=None):
    handle = object.__new__(_netlink.Namespace)
    handle.name = name
    return handle


def test_interrupted_dumps_are_read_again():
    calls = []

    def read(*args, **kwargs):
        calls.append((args, kwargs))
        if len(calls) < 3:
            raise _netlink.NetlinkDumpInterrupted()
        return ["lo"]

    assert namespace().call("list links", read, 254, families=(4,)) == ["lo"]
    assert calls == [((254,), {"families": (4,)})] * 3


def test_a_dump_interrupted_every_time_fails_clearly():
    def read():
        raise _netlink.NetlinkDumpInterrupted()

    with pytest.raises(_netlink.NetlinkOpError) as err:
        namespace("red").call("list links", read)
    assert str(err.value).startswith("cannot list links (namespace red)")


def test_other_errors_are_not_retried():
    calls = []

    def read():
        calls.append(1)
        raise _netlink.NetlinkError(errno.EPERM, "Operation not permitted")

    with pytest.raises(_netlink.NetlinkOpError) as err:
        namespace().call("list links", read)
    assert calls == [1]
    assert err.value.code == errno.EPERM
    assert str(err.value) == "cannot list links (namespace host): Operation not permitted [EPERM]"


def run_python(code):
    """Run code in a fresh interpreter (an empty sys.modules) with this one's import path."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


NETLINK = "from ansible_collections.podnet.mesh.plugins.module_utils import _netlink\n"


def test_pyroute2_is_entered_bare_and_completed_on_demand():
    before, after, ndb, has = run_python(
        NETLINK + "import sys\n"
        "print('pyroute2.ndb' in sys.modules, '__getattr__' in vars(sys.modules['pyroute2']))\n"
        "from pyroute2 import NDB, IPRoute\n"
        "print(NDB.__name__, IPRoute is _netlink.IPRoute and _netlink.HAS_PYROUTE2)\n")
    # Only the netlink parts were loaded; the rest of pyroute2 arrives when asked for.
    assert (before, after) == ("False", "True")
    assert (ndb, has) == ("NDB", "True")


def test_pyroute2_is_imported_normally_when_the_bare_entry_fails():
    loaded, same = run_python(
        "import importlib, sys\n"
        "real = importlib.import_module\n"
        "def refuse(name, *args):\n"
        "    if name == 'pyroute2.iproute.linux' and 'pyroute2.ndb' not in sys.modules:\n"
        "        raise ImportError('simulated')\n"
        "    return real(name, *args)\n"
        "importlib.import_module = refuse\n" + NETLINK +
        "import pyroute2\n"
        "print('pyroute2.ndb' in sys.modules, _netlink.HAS_PYROUTE2 and _netlink.IPRoute is pyroute2.IPRoute)\n")
    assert (loaded, same) == ("True", "True")
