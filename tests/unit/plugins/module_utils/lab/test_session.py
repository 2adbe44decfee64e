# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""LabSession without the kernel (unshare and netlink replaced), and the module's flow on a FakeLab."""
from __future__ import annotations

import os

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ToolError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Action
from ansible_collections.podnet.mesh.plugins.module_utils.lab import session as lab_session
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.lab.fakelab import (
    LAB, ROOT, FakeLab, nodes)


class RecordingSession:
    """LabSession's netlink side, recorded."""

    def __init__(self):
        self.applied = []
        self.done = []
        self.forgotten = []

    def apply(self, actions):
        self.applied.extend(actions)
        self.done.extend(actions)

    def forget(self, name):
        self.forgotten.append(name)

    def close(self):
        pass


def test_lab_session_sends_link_work_to_netlink_and_runs_creates_in_parallel(monkeypatch, tmp_path):
    netlink = RecordingSession()
    started = []

    class Proc:
        returncode = 0

        def __init__(self, argv, **kw):
            started.append(argv)

        def communicate(self):
            return b"", b""

    monkeypatch.setattr(lab_session.subprocess, "Popen", Proc)
    session = lab_session.LabSession(netlink_factory=lambda: netlink)
    lab = str(tmp_path / "lab")
    actions = [Action("ns_create", None, label,
                      {"path": lab + "/" + label, "files": files, "root": str(tmp_path)})
               for label, files in (("switch", ["net"]), ("node1", ["net", "mnt", "uts"]))]
    actions.append(Action("bridge_add", lab + "/switch/net", "switch", {}))
    session.apply(actions)
    assert [argv[1] for argv in started] == ["--net=%s/switch/net" % lab, "--net=%s/node1/net" % lab]
    assert os.path.exists(lab + "/node1/uts")
    assert [a.op for a in netlink.done] == ["bridge_add"]
    assert [a.op for a in session.applied] == ["ns_create", "ns_create", "bridge_add"]


def test_lab_session_reports_unshare_failures(monkeypatch, tmp_path):
    class Proc:
        returncode = 1

        def __init__(self, argv, **kw):
            pass

        def communicate(self):
            return b"", b"unshare: cannot change root filesystem propagation: Permission denied\n"

    monkeypatch.setattr(lab_session.subprocess, "Popen", Proc)
    session = lab_session.LabSession(netlink_factory=RecordingSession)
    with pytest.raises(ToolError, match="Permission denied"):
        session.apply([Action("ns_create", None, "switch",
                              {"path": str(tmp_path / "switch"), "files": ["net"], "root": str(tmp_path)})])
    assert session.applied == []


# ------------------------------------------------------------- module flow
class ModuleSession:
    """Stands in for LabSession in the module: applies plans to a FakeLab."""
    fake = None
    instances = []

    def __init__(self):
        self.applied = []
        ModuleSession.instances.append(self)

    def apply(self, actions):
        ModuleSession.fake.apply(actions)
        self.applied.extend(actions)

    def close(self):
        pass


@pytest.fixture
def run_module(monkeypatch):
    from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module
    from ansible_collections.podnet.mesh.plugins.modules import lab as module
    from ansible_collections.podnet.mesh.tests.helpers.module_runner import run_main, stub_exits

    fake = FakeLab()
    ModuleSession.fake = fake
    ModuleSession.instances = []
    stub_exits(monkeypatch)
    monkeypatch.setattr(_module, "require_pyroute2", lambda module: None)
    monkeypatch.setattr(lab_session, "LabSession", ModuleSession)
    monkeypatch.setattr(lab_session, "read", lambda session, w: fake.cur() if w["path"] == LAB else None)

    def _run(args):
        kind, result = run_main(module.main, dict({"name": "t", "root": ROOT}, **args))
        return kind, result, fake
    return _run


def test_module_check_mode_changes_nothing(run_module):
    kind, result, fake = run_module({"nodes": nodes(2), "_ansible_check_mode": True,
                                     "_ansible_diff": True})
    assert kind == "exit" and result["changed"] is True
    assert ModuleSession.instances[-1].applied == [] and not fake.members
    assert result["actions"][0] == "mount %s privately on itself" % LAB
    assert result["lab"]["nodes"][1]["address"] == "192.168.1.12/24"
    assert result["diff"]["before"]["state"] == "absent"
    assert result["diff"]["after"]["nodes"] == ["node1 192.168.1.11/24", "node2 192.168.1.12/24"]


def test_module_builds_then_is_unchanged_then_removes(run_module):
    kind, result, fake = run_module({"nodes": nodes(2)})
    assert kind == "exit" and result["changed"] is True and "diff" not in result
    assert result["lab"]["gateway"] == "192.168.1.1/24"
    kind, result, fake = run_module({"nodes": nodes(2)})
    assert result["changed"] is False and result["actions"] == []
    kind, result, fake = run_module({"state": "absent"})
    assert result["changed"] is True and result["lab"]["state"] == "absent"
    assert not fake.members and not fake.exists


def test_module_refuses_bad_input_before_reading(run_module, monkeypatch):
    monkeypatch.setattr(lab_session, "read", lambda session, w: pytest.fail("read before validation"))
    kind, result, fake = run_module({"nodes": [{"name": "switch", "address": "192.168.1.5/24"}]})
    assert kind == "fail" and result["changed"] is False
    assert result["msg"].startswith("nodes[0].name: 'switch' is reserved")


def test_module_teardown_refuses_a_directory_that_is_no_lab(run_module):
    kind, result, fake = run_module({"nodes": nodes(1)})
    fake.marked = False
    fake.unknown = ["notes.txt"]
    kind, result, fake = run_module({"state": "absent"})
    assert kind == "fail" and result["changed"] is False
    assert result["msg"].startswith("name: '%s' is a directory that no podnet.mesh lab made" % LAB)
    assert fake.exists and fake.members


# ------------------------------------------------------------------ dual stack
def test_a_route_already_gone_is_as_deleted_as_wanted():
    import errno

    from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError

    class Gone(RecordingSession):
        def apply(self, actions):
            raise KernelError("delete route", LAB + "/node1/net", errno.ESRCH, "No such process")

    session = lab_session.LabSession(netlink_factory=Gone)
    route = {"dst": "default", "family": 6, "via": "2001:db8:1::1", "dev": None, "metric": 1024}
    session.apply([Action("route_del", LAB + "/node1/net", "default", {"route": route, "table": 254, "proto": 4})])
    with pytest.raises(KernelError):
        session.apply([Action("route_add", LAB + "/node1/net", "default", {"route": route, "table": 254, "proto": 4})])


def test_module_builds_a_dual_stack_lab_in_check_mode_then_for_real(run_module):
    args = {"nodes": nodes(2, ipv6=True), "ipv6": True}
    kind, result, fake = run_module(dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert kind == "exit" and result["changed"] and not fake.members
    assert result["lab"]["gateway6"] == "2001:db8:1::1/64" and result["lab"]["external6"] == "2001:db8:113::10/64"
    assert result["lab"]["nodes"][1]["address6"] == "2001:db8:1::12/64"
    assert result["diff"]["after"]["nodes"][0] == "node1 192.168.1.11/24 2001:db8:1::11/64"
    kind, built, fake = run_module(args)
    assert built["changed"] and built["lab"] == result["lab"]
    assert built["actions"] == result["actions"]
    kind, again, fake = run_module(args)
    assert again["changed"] is False
    kind, failed, fake = run_module({"nodes": nodes(2, ipv6=True)})
    assert kind == "fail" and failed["msg"].startswith("nodes[0].address6: '2001:db8:1::11/64' is an IPv6 address")
