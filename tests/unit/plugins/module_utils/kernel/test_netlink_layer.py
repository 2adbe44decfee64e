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
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.tests.helpers.netlink_fakes import FakeSocket


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


# ------------------------------------------------------- which namespaces we see
MOUNTS = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
42 27 0:25 /netns /run/netns rw shared:5 - tmpfs tmpfs rw
50 42 0:4 net:[4026532281] /run/netns/red rw shared:5 - nsfs nsfs rw
51 27 0:4 net:[4026532281] /run/netns/red rw shared:5 - nsfs nsfs rw
52 42 0:4 net:[4026532290] /run/docker/netns/4f2a rw - nsfs nsfs rw
53 42 0:4 net:[4026532290] /run/netns/cni-1 rw - nsfs nsfs rw
54 42 0:4 mnt:[4026532300] /run/podnet-lab/t/node1/mnt rw - nsfs nsfs rw
55 42 0:4 net:[4026532301] /run/podnet-lab/t/node\\0401/net rw - nsfs nsfs rw
"""


def test_visible_namespaces_are_read_from_the_mount_table(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTS)
    # One label per namespace, the /run/netns name preferred; mount namespaces left out.
    assert _netns.visible_namespaces(str(path)) == ["cni-1", "red", "/run/podnet-lab/t/node 1/net"]
    assert _netns.visible_namespaces(str(tmp_path / "none")) == []


# ------------------------------------------------- a batch reports what it applied
class RouteNamespace:
    name = None

    def __init__(self, routes=()):
        self._routes = list(routes)

    def routes(self, table, families=(4, 6), links=None):
        return list(self._routes)

    def links(self, **kw):
        return {}


def batch_session(monkeypatch, refused, there=()):
    from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
    from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Action

    session = _netlink.Session()
    monkeypatch.setattr(session, "ns", lambda name=None: RouteNamespace(there))
    monkeypatch.setattr(wire, "open_socket", lambda: FakeSocket([]))
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel import changes

    monkeypatch.setattr(changes, "_route_message", lambda kwargs, op, seq: b"")
    monkeypatch.setattr(wire, "send_all", lambda sock, messages: dict(refused))
    routes = v.route_list([{"dst": "10.%d.0.0/16" % i, "via": "192.168.1.12"} for i in range(5)])
    return session, [Action("route_add", None, r["dst"], {"route": r, "table": 254, "proto": 149}) for r in routes]


def test_a_refused_batch_reports_every_change_it_applied(monkeypatch):
    session, actions = batch_session(monkeypatch, {2: errno.EEXIST, 4: errno.ENETUNREACH})
    with pytest.raises(errors.KernelError) as err:
        session.apply(actions)
    # Changes sent after the refused one were applied too: they are reported.
    assert session.applied == [actions[0], actions[2], actions[4]]
    assert err.value.code == errno.EEXIST
    assert str(err.value) == ("cannot add route 10.1.0.0/16 via 192.168.1.12 metric 0 (namespace host): File exists; "
                              "1 other route change of the same batch was refused too, the rest applied [EEXIST]")


def test_a_batch_route_added_meanwhile_by_a_concurrent_run_counts_as_done(monkeypatch):
    there = [{"dst": "10.1.0.0/16", "family": 4, "via": "192.168.1.12", "dev": "eth0", "metric": 0, "proto": 149,
              "type": "unicast"}]
    session, actions = batch_session(monkeypatch, {2: errno.EEXIST}, there)
    session.apply(actions)
    assert session.applied == actions


@pytest.mark.parametrize("route", [
    {"via": "192.168.1.99", "proto": 149, "type": "unicast"},
    {"via": "192.168.1.12", "proto": 4, "type": "unicast"},
    {"via": None, "proto": 149, "type": "blackhole"},
])
def test_a_batch_route_that_exists_unlike_ours_is_still_refused(monkeypatch, route):
    there = [dict({"dst": "10.1.0.0/16", "family": 4, "dev": None, "metric": 0}, **route)]
    session, actions = batch_session(monkeypatch, {2: errno.EEXIST}, there)
    with pytest.raises(errors.KernelError) as err:
        session.apply(actions)
    assert err.value.code == errno.EEXIST and len(session.applied) == 4
