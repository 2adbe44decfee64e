# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Error handling of the netlink layer that the kernel cannot easily produce on demand."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import errors
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import wire


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

    with pytest.raises(errors.KernelError) as err:
        namespace("red").call("list links", read)
    assert str(err.value).startswith("cannot list links (namespace red)")


def test_other_errors_are_not_retried():
    calls = []

    def read():
        calls.append(1)
        raise _netlink.NetlinkError(errno.EPERM, "Operation not permitted")

    with pytest.raises(errors.KernelError) as err:
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


NETLINK = "from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink\n"


def test_pyroute2_is_entered_bare_and_completed_on_demand():
    before, after, ndb, has = run_python(
        NETLINK + "import sys\n"
        "print('pyroute2.ndb' in sys.modules, '__getattr__' in vars(sys.modules['pyroute2']))\n"
        "from pyroute2 import NDB, IPRoute\n"
        "print(NDB.__name__, IPRoute is _netlink.iproute() and _netlink.HAS_PYROUTE2)\n")
    # Only the netlink parts were loaded; the rest of pyroute2 arrives when asked for.
    assert (before, after) == ("False", "True")
    assert (ndb, has) == ("NDB", "True")


def test_pyroute2_is_imported_normally_when_the_bare_entry_fails():
    loaded, same = run_python(
        "import importlib, sys\n"
        "real = importlib.import_module\n"
        "def refuse(name, *args):\n"
        "    if name == 'pyroute2.netlink.rtnl.rtmsg' and 'pyroute2.ndb' not in sys.modules:\n"
        "        raise ImportError('simulated')\n"
        "    return real(name, *args)\n"
        "importlib.import_module = refuse\n" + NETLINK +
        "import pyroute2\n"
        "print('pyroute2.ndb' in sys.modules, _netlink.HAS_PYROUTE2 and _netlink.iproute() is pyroute2.IPRoute)\n")
    assert (loaded, same) == ("True", "True")


class FakeSocket:
    """Hands out canned netlink answers (the kernel interrupts dumps only under load)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.sent = []

    def sendall(self, data):
        self.sent.append(data)

    def recv(self, size):
        return self.answers.pop(0)


def answer(kind, seq, flags=0, family=2):
    msg = _netlink.rtmsg()
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg["family"] = family
    msg["dst_len"] = 24
    msg["attrs"] = [("RTA_DST", "10.244.%d.0" % seq)]
    msg.encode()
    return bytes(msg.data)


def done(seq, flags=0):
    import struct
    return struct.pack("=IHHIIi", 20, wire.NLMSG_DONE, flags, seq, 0, 0)


@pytest.mark.skipif(not _netlink.HAS_PYROUTE2, reason="needs pyroute2's message classes")
def test_an_interrupted_plain_dump_is_read_to_its_end_and_read_again():
    handle = namespace()
    handle._seq = 0
    handle.sock = FakeSocket([
        answer(24, 1, flags=0x10) + done(1, flags=0x10),  # NLM_F_DUMP_INTR
        answer(24, 2) + done(2),
    ])
    msgs = handle.call("list routes", handle.dump, _netlink.rtmsg, wire.RTM_GETROUTE, 2)
    assert [m.get_attr("RTA_DST") for m in msgs] == ["10.244.2.0"]
    assert len(handle.sock.sent) == 2 and handle.sock.answers == []
