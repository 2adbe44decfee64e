# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restore's planning (the modules' planners on what a node holds) and its run loop, with fake sessions.

A fresh node (what a reboot leaves) gets every concern's actions in order; a node
as recorded gets none; refusals are retried until the deadline, conflicts are not.
"""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, KernelError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import nat as nat_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import routes as route_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.node import restore
from ansible_collections.podnet.mesh.plugins.module_utils.node import state as node_state
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.node.statedoc import DOC

STATE = node_state.parse(DOC)


def link(name, kind="veth", **kw):
    base = {"name": name, "kind": kind, "ifindex": 9, "mac": None, "mtu": 1500, "up": True, "master": None,
            "stp": False, "hairpin": False, "link": None, "link_netnsid": None, "addresses": []}
    base.update(kw)
    return base


def nat_current(ours=None, ip_forward=0):
    return {"nft": {"path": "/usr/sbin/nft", "works": True, "error": None, "tables": set(), "ours": ours,
                    "chains": []},
            "iptables": {"path": None, "works": False, "error": None, "variant": None, "tables": {}},
            "ip_forward": ip_forward, "forward_blockers": []}


def fresh():
    """What each concern reads on a node that just booted: nothing of ours."""
    uplink = link("eth0", kind=None, addresses=["192.168.1.11/24"])
    return {
        "kernel": {"modules": {}, "sysctls": {}},
        "masquerade": nat_current(),
        "bridge": None,
        "routes": {"netns_exists": True, "ours": {}, "foreign": {},
                   "connected": [route_plan.ipaddress.ip_network("192.168.1.0/24")], "links": {"lo", "eth0"}},
        "pods": {"host_links": {"eth0": uplink, "cni0": link("cni0", kind="bridge")},
                 "pods": {"red": {"exists": False}, "blue": {"exists": False}}},
    }


def recorded():
    """What each concern reads on a node that is as the state file says."""
    cur = fresh()
    cur["masquerade"] = nat_current(ours=nat_plan.desired_rules("nftables", STATE.wants["masquerade"]), ip_forward=1)
    cur["bridge"] = link("cni0", kind="bridge", mac="0a:58:0a:f4:01:01", addresses=["10.244.1.1/24"])
    ours = {}
    for route in STATE.wants["routes"]["routes"]:
        ours[route_plan.route_key(route)] = dict(route, dev="eth0", proto=149, type="unicast")
    cur["routes"]["ours"] = ours
    host, pods = {"cni0": cur["bridge"]}, {}
    for index, (name, address) in enumerate((("red", "10.244.1.2/24"), ("blue", "10.244.1.3/24"))):
        veth = link("veth-" + name, ifindex=10 + index, master="cni0", link=2, link_netnsid=index)
        peer = link("eth0", ifindex=2, link=10 + index, link_netnsid=0, addresses=[address])
        host[veth["name"]] = veth
        pods[name] = {"exists": True, "links": {"eth0": peer, "lo": link("lo", None)},
                      "routes": [{"dst": "default", "family": 4, "via": "10.244.1.1", "dev": "eth0", "metric": 0,
                                  "proto": 149, "type": "unicast"}],
                      "peer_at": {"seen": True, "netns": name, "link": peer}}
    cur["pods"] = {"host_links": host, "pods": pods}
    return cur


def test_a_fresh_node_is_planned_concern_by_concern_with_the_modules_planners():
    cur = fresh()
    texts = dict((c, describe_all(restore.plan(c, STATE.wants[c], cur[c]).actions)) for c in STATE.concerns)
    assert texts["kernel"] == []
    assert texts["masquerade"] == ["create nftables table ip podnet (4 rules)", "set net.ipv4.ip_forward = 1"]
    assert texts["bridge"][0].startswith("create bridge cni0") and texts["bridge"][1:] == [
        "add address 10.244.1.1/24 to cni0", "set up=True on link cni0"]
    assert texts["routes"] == ["add route 10.244.2.0/24 via 192.168.1.12 metric 0",
                               "add route 10.244.3.0/24 via 192.168.1.13 metric 0"]
    assert texts["pods"][0] == "create namespace red" and texts["pods"][-1] == (
        "add route default via 10.244.1.1 metric 0 in namespace blue")
    assert "add address 10.244.1.3/24 to eth0 in namespace blue" in texts["pods"]


def test_a_node_as_recorded_gets_empty_plans():
    cur = recorded()
    for concern in STATE.concerns:
        assert restore.plan(concern, STATE.wants[concern], cur[concern]).actions == [], concern


def test_our_routes_to_nodes_that_left_are_purged():
    cur = recorded()
    gone = {"dst": "10.244.9.0/24", "family": 4, "via": "192.168.1.19", "dev": "eth0", "metric": 0, "proto": 149,
            "type": "unicast"}
    cur["routes"]["ours"][route_plan.route_key(gone)] = gone
    assert describe_all(restore.plan("routes", STATE.wants["routes"], cur["routes"]).actions) == [
        "delete route 10.244.9.0/24 via 192.168.1.19 dev eth0 metric 0"]


# ------------------------------------------------------------- the run loop
class FakeSession:
    def __init__(self, fail=()):
        self.applied = []
        self.fail = list(fail)

    def apply(self, actions):
        for action in actions:
            if self.fail:
                raise self.fail.pop(0)
            self.applied.append(action)


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def sessions():
    return {restore.SYSTEM: FakeSession(), restore.NAT: FakeSession(), restore.NETLINK: FakeSession()}


def reading(monkeypatch, cur, refusals=None):
    """READERS answering from cur; refusals: {concern: [exceptions raised by the first reads]}."""
    refusals = refusals or {}
    for concern in node_state.CONCERNS:
        def read(session, want, concern=concern):
            if refusals.get(concern):
                raise refusals[concern].pop(0)
            return cur[concern]
        monkeypatch.setitem(restore.READERS, concern, read)


def test_restore_applies_every_concern_in_order_then_reports_no_change(monkeypatch):
    reading(monkeypatch, fresh())
    made = sessions()
    outcomes = restore.restore(STATE, made)
    assert [o.concern for o in outcomes] == ["kernel", "masquerade", "bridge", "routes", "pods"]
    assert [o.changed for o in outcomes] == [False, True, True, True, True]
    assert not any(o.error for o in outcomes)
    assert describe_all(made[restore.NAT].applied) == outcomes[1].actions
    assert len(made[restore.NETLINK].applied) == sum(len(o.actions) for o in outcomes[2:])
    reading(monkeypatch, recorded())
    again = sessions()
    outcomes = restore.restore(STATE, again)
    assert not any(o.changed or o.error for o in outcomes)
    assert all(s.applied == [] for s in again.values())


def test_check_plans_and_applies_nothing(monkeypatch):
    reading(monkeypatch, fresh())
    made = sessions()
    outcomes = restore.restore(STATE, made, check=True)
    assert sum(len(o.actions) for o in outcomes) > 10
    assert all(s.applied == [] for s in made.values())


def test_a_refused_concern_is_retried_until_it_passes(monkeypatch):
    refusal = ValidationError("routes[0].via", "192.168.1.12", "is not on a directly connected subnet")
    reading(monkeypatch, fresh(), {"routes": [refusal, refusal]})
    clock = Clock()
    outcomes = restore.restore(STATE, sessions(), wait=30, clock=clock, sleep=clock.sleep)
    routes = outcomes[3]
    assert routes.concern == "routes" and routes.error is None and routes.attempts == 3
    assert clock.slept == [1.0, 1.0]


def test_without_wait_or_past_the_deadline_a_refusal_is_the_concerns_error(monkeypatch):
    refusal = ValidationError("routes[0].via", "192.168.1.12", "is not on a directly connected subnet")
    reading(monkeypatch, fresh(), {"routes": [refusal] * 50})
    clock = Clock()
    outcomes = restore.restore(STATE, sessions(), wait=5, clock=clock, sleep=clock.sleep)
    routes = outcomes[3]
    assert routes.error.startswith("routes[0].via: '192.168.1.12' is not on") and routes.attempts == 6  # at 0, 1, ... 5 s
    assert outcomes[4].concern == "pods" and outcomes[4].changed and outcomes[4].error is None
    reading(monkeypatch, fresh(), {"routes": [refusal]})
    outcomes = restore.restore(STATE, sessions())
    assert outcomes[3].attempts == 1 and outcomes[3].error


def test_a_conflict_is_not_retried(monkeypatch):
    reading(monkeypatch, fresh(), {"bridge": [ConflictError("name", "cni0", "is a link of kind dummy")]})
    clock = Clock()
    outcomes = restore.restore(STATE, sessions(), wait=30, clock=clock, sleep=clock.sleep)
    assert outcomes[2].error == "name: 'cni0' is a link of kind dummy" and outcomes[2].attempts == 1
    assert clock.slept == []


def test_changes_made_before_a_kernel_refusal_are_reported(monkeypatch):
    reading(monkeypatch, fresh())
    made = sessions()
    made[restore.NETLINK] = FakeSession()
    real_apply = made[restore.NETLINK].apply

    def apply(actions):
        real_apply(actions[:1])
        raise KernelError("add address", None, 17, "File exists")

    made[restore.NETLINK].apply = apply
    outcomes = restore.restore(STATE, made)
    bridge = outcomes[2]
    assert bridge.error == "cannot add address (namespace host): File exists [EEXIST]"
    assert len(bridge.actions) == 1 and bridge.actions[0].startswith("create bridge cni0")
    assert bridge.as_dict()["changed"] is True


@pytest.mark.parametrize("concern", node_state.CONCERNS)
def test_every_concern_has_a_reader_a_planner_and_a_session(concern):
    assert concern in restore.READERS and concern in restore.PLANNERS and concern in restore.SESSION_OF
