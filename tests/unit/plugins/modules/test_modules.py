# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module flow without the kernel: the netlink layer is replaced by a fake.

These prove the wiring around the real kernel work: check mode applies
nothing, diff is returned only in diff mode, validation failures stop before
any read or write, and a kernel error becomes one clear fail_json.
"""
from __future__ import annotations

import errno

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import errors
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import pyroute2_parts
from ansible_collections.podnet.mesh.plugins.modules import bridge, netns, netns_addr, veth
from ansible_collections.podnet.mesh.tests.helpers.module_runner import run_main, stub_exits


class FakeNamespace:
    def __init__(self, links):
        self._links = links

    def links(self, with_addresses=()):
        return dict((k, dict(v)) for k, v in self._links.items())


class FakeSession:
    """Serves reads from a dict of namespaces; records (never performs) writes."""
    instances = []

    def __init__(self, state=None, fail_on=None):
        self.state = state or {None: {}}
        self.fail_on = fail_on
        self.applied = []
        self.reads = 0
        FakeSession.instances.append(self)

    def ns(self, name=None):
        self.reads += 1
        return FakeNamespace(self.state[name])

    def apply(self, actions):
        for action in actions:
            if action.op == self.fail_on:
                raise errors.KernelError("create bridge cni0", None, errno.EEXIST, "File exists")
            self.applied.append(action)

    def close(self):
        pass


@pytest.fixture
def run(monkeypatch):
    FakeSession.instances = []

    stub_exits(monkeypatch)
    monkeypatch.setattr(pyroute2_parts, "HAS_PYROUTE2", True)

    def _run(module, args, state=None, fail_on=None, exists=()):
        monkeypatch.setattr(_netlink, "Session", lambda: FakeSession(state, fail_on))
        monkeypatch.setattr(_netns, "netns_exists", lambda name: name in exists)
        monkeypatch.setattr(_netns, "netns_state", lambda name: name in exists)
        kind, result = run_main(module.main, args)
        return kind, result, FakeSession.instances[-1]
    return _run


def test_check_mode_applies_nothing(run):
    kind, result, session = run(bridge, {"name": "cni0", "addresses": ["10.244.1.1/24"],
                                         "_ansible_check_mode": True})
    assert kind == "exit"
    assert result["changed"] is True
    assert session.applied == []
    assert result["actions"][0] == "create bridge cni0 with MAC 0a:58:0a:f4:01:01"
    assert result["bridge"]["ifindex"] is None
    assert result["bridge"]["addresses"] == ["10.244.1.1/24"]
    assert "diff" not in result


def test_real_run_applies_the_plan_in_order(run):
    kind, result, session = run(bridge, {"name": "cni0", "addresses": ["10.244.1.1/24"]})
    assert kind == "exit"
    assert [a.op for a in session.applied] == ["bridge_add", "addr_add", "link_set"]


def test_diff_mode(run):
    kind, result, session = run(bridge, {"name": "cni0", "_ansible_diff": True,
                                         "_ansible_check_mode": True})
    assert result["diff"]["before"] == {"name": "cni0", "state": "absent"}
    assert result["diff"]["after"]["state"] == "present"


def test_validation_failure_reads_and_changes_nothing(run):
    kind, result, session = run(bridge, {"name": "cni0", "addresses": ["10.244.1.300/24"]})
    assert kind == "fail"
    assert result["msg"].startswith("addresses[0]: '10.244.1.300/24'")
    assert session.reads == 0 and session.applied == []
    assert result["changed"] is False


def test_kernel_error_is_one_clear_failure(run):
    kind, result, session = run(bridge, {"name": "cni0"}, fail_on="bridge_add")
    assert kind == "fail"
    assert result["msg"] == "cannot create bridge cni0 (namespace host): File exists [EEXIST]"
    assert result["errno"] == errno.EEXIST
    assert result["changed"] is False


def test_partial_failure_reports_what_was_done(run):
    kind, result, session = run(bridge, {"name": "cni0", "addresses": ["10.244.1.1/24"]},
                                fail_on="addr_add")
    assert kind == "fail"
    assert result["changed"] is True
    assert result["actions"] == ["create bridge cni0 with MAC 0a:58:0a:f4:01:01"]


def test_netns_check_mode_on_existing_is_unchanged(run):
    kind, result, session = run(netns, {"name": "red", "_ansible_check_mode": True}, exists=("red",))
    assert result["changed"] is False
    assert result["netns"] == {"name": "red", "path": "/run/netns/red", "exists": True}


def test_veth_check_mode_predicts_the_peer(run):
    state = {None: {"cni0": {"name": "cni0", "kind": "bridge", "ifindex": 3}}, "red": {}}
    kind, result, session = run(veth, {"name": "veth-red", "netns": "red", "master": "cni0",
                                       "_ansible_check_mode": True}, state=state, exists=("red",))
    assert kind == "exit", result
    assert session.applied == []
    assert result["veth"]["master"] == "cni0"
    assert result["veth"]["peer"]["netns"] == "red"


def test_netns_addr_missing_namespace_names_the_parameter(run):
    kind, result, session = run(netns_addr, {"netns": "red", "interface": "eth0",
                                             "addresses": ["10.244.1.2/24"]})
    assert kind == "fail"
    assert result["msg"].startswith("netns: 'red' does not exist")


def test_missing_pyroute2_says_how_to_install(run, monkeypatch):
    monkeypatch.setattr(pyroute2_parts, "HAS_PYROUTE2", False)
    from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module
    monkeypatch.setattr(_module, "probe_interpreters_for_module", lambda *a: None)
    kind, result = run_main(bridge.main, {"name": "cni0"})
    assert kind == "fail"
    assert "pyroute2" in result["msg"]
    assert "apt-get install python3-pyroute2" in result["msg"]


def test_veth_absent_refuses_a_pair_of_the_same_name_whose_peer_is_elsewhere(run, monkeypatch):
    host = {"name": "veth-red", "kind": "veth", "ifindex": 7, "link": 2, "link_netnsid": 3, "master": None,
            "mtu": 1500, "up": True, "hairpin": None, "mac": "02:00:00:00:00:07", "addresses": []}
    elsewhere = {"seen": True, "netns": "cni-4f2a", "link": dict(host, name="eth0", ifindex=2, link=7)}
    asked = []

    def peer_of(self, link, ns=None, hint=()):
        asked.append((link["name"], ns, tuple(hint)))
        return elsewhere

    monkeypatch.setattr(FakeSession, "peer_of", peer_of, raising=False)
    state = {None: {"veth-red": host}, "red": {}}
    kind, result, session = run(veth, {"name": "veth-red", "netns": "red", "state": "absent"}, state=state,
                                exists=("red",))
    assert kind == "fail" and result["changed"] is False
    assert result["msg"] == ("name: 'veth-red' is a veth whose peer eth0 is in namespace cni-4f2a, not eth0 in "
                             "namespace red: a pair podnet.mesh was not asked for; nothing was changed")
    assert session.applied == []
    assert asked == [("veth-red", None, ("red",))]
