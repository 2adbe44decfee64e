# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's planner, without the kernel.

Planning is checked against a small model of the kernel (FakeLab) that
interprets the planned actions, so "apply, then plan again" proves
convergence: a second plan is empty, a half-built or changed lab is repaired.
"""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError
from ansible_collections.podnet.mesh.plugins.module_utils.lab import plan as lab_plan
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.lab.fakelab import (
    LAB, FakeLab, converge, nodes, ops, route, want, want6)
from ansible_collections.podnet.mesh.plugins.module_utils.lab import topology


# ------------------------------------------------------------------ planner
def test_fresh_lab_is_built_in_order_and_converges():
    fake = FakeLab()
    first, second = converge(fake, want(3))
    assert second.actions == [], describe_all(second.actions)
    names = ops(first)
    assert names[0] == "lab_mount"
    assert names[1:7] == ["ns_create"] * 6
    assert [a.name for a in first.actions[1:7]] == ["switch", "router", "external",
                                                    "node1", "node2", "node3"]
    # Namespaces first, then links, then addresses/up, then routes, forwarding last.
    assert names.index("bridge_add") > names.index("ns_create")
    assert max(i for i, o in enumerate(names) if o == "route_add") < names.index("sysctl")
    assert names.count("veth_add") == 5
    assert names.count("route_add") == 4
    node1 = fake.links["node1"]
    assert node1["eth0"]["addresses"] == ["192.168.1.11/24"] and node1["eth0"]["up"]
    assert node1["lo"]["up"]
    assert fake.links["switch"]["node1"]["master"] == "switch"
    assert fake.links["router"]["eth0"]["addresses"] == ["192.168.1.1/24"]
    assert fake.links["router"]["eth1"]["addresses"] == ["203.0.113.1/24"]
    assert fake.links["external"]["eth0"]["addresses"] == ["203.0.113.10/24"]
    assert route(fake, "node2", "default")["via"] == "192.168.1.1"
    assert route(fake, "external", "192.168.1.0/24")["via"] == "203.0.113.1"
    assert "router" not in fake.routes and "switch" not in fake.routes
    assert fake.forwarding == {"router": True}
    assert set(fake.members["node1"]) == {"net", "mnt", "uts"}
    assert set(fake.members["switch"]) == {"net"}


def test_plan_never_touches_the_namespace_the_module_runs_in():
    first = lab_plan.plan(want(5), FakeLab().cur())
    for action in first.actions:
        if action.op in ("ns_create", "ns_remove", "lab_mount", "lab_remove", "sysctl", "umount", "lab_ssh_key",
                         "lab_sshd_start", "lab_sshd_stop", "lab_boot"):
            assert action.ns is None and action.args.get("path", LAB + "/").startswith(LAB + "/"), action
            continue
        assert action.ns and action.ns.startswith(LAB + "/"), action
        if action.op == "veth_add":
            assert action.args["peer_ns"].startswith(LAB + "/")


def test_diff_lists_the_members():
    fake = FakeLab()
    first, second = converge(fake, want(2))
    assert first.before == {"name": "t", "path": LAB, "state": "absent"}
    assert first.after == {
        "name": "t", "path": LAB, "state": "present", "gateway": "192.168.1.1/24",
        "external": "203.0.113.10/24", "nodes": ["node1 192.168.1.11/24", "node2 192.168.1.12/24"],
        "ssh": False}
    assert second.before == second.after


def test_fifty_nodes_then_idempotent():
    fake = FakeLab()
    first, second = converge(fake, want(50))
    assert second.actions == []
    assert ops(first).count("ns_create") == 53
    assert len(fake.links["switch"]) == 1 + 1 + 50 + 1  # lo, bridge, ports, router port


def test_shrinking_removes_nodes_and_their_switch_ports():
    fake = FakeLab()
    converge(fake, want(5))
    first, second = converge(fake, want(3))
    assert second.actions == []
    assert [(a.op, a.name) for a in first.actions] == [
        ("link_del", "node4"), ("ns_remove", "node4"), ("link_del", "node5"), ("ns_remove", "node5")]
    assert "node4" not in fake.members and "node4" not in fake.links["switch"]


def test_growing_adds_only_the_new_nodes():
    fake = FakeLab()
    converge(fake, want(2))
    first, second = converge(fake, want(3))
    assert second.actions == []
    assert [a.name for a in first.actions if a.op == "ns_create"] == ["node3"]
    assert all("node3" in (a.name + (a.ns or "")) for a in first.actions), describe_all(first.actions)


def test_half_built_node_is_made_again():
    fake = FakeLab()
    converge(fake, want(2))
    fake.members["node2"] = {"net"}  # e.g. an interrupted run: mnt and uts missing
    first, second = converge(fake, want(2))
    assert second.actions == []
    assert ops(first)[:2] == ["ns_remove", "ns_create"]
    assert ("link_del", "node2") in [(a.op, a.name) for a in first.actions]


def test_leftover_directory_without_namespaces_is_replaced():
    fake = FakeLab()
    w = want(1)
    cur = fake.cur()
    cur.update(exists=True, marked=True, dirs=["node1"], members={"node1": []})
    first = lab_plan.plan(w, cur)
    assert [(a.op, a.name) for a in first.actions[:3]] == [
        ("lab_mount", LAB), ("ns_remove", "node1"), ("ns_create", "switch")]


def test_broken_wiring_is_repaired():
    fake = FakeLab()
    converge(fake, want(2))
    fake.links["node1"]["eth0"]["up"] = False
    fake.links["node1"]["lo"]["up"] = False
    fake.links["switch"]["node2"]["master"] = None
    fake.links["switch"]["switch"]["up"] = False
    del fake.routes["node2"][(4, "default")]
    fake.forwarding["router"] = False
    first, second = converge(fake, want(2))
    assert second.actions == []
    assert sorted(describe_all(first.actions)) == sorted([
        "set up=True on link switch in namespace %s/switch/net" % LAB,
        "set master=switch on link node2 in namespace %s/switch/net" % LAB,
        "set up=True on link eth0 in namespace %s/node1/net" % LAB,
        "set up=True on link lo in namespace %s/node1/net" % LAB,
        "add route default via 192.168.1.1 metric 0 in namespace %s/node2/net" % LAB,
        "enable IPv4 forwarding in %s/router/net" % LAB,
    ])


def test_lost_veth_peer_is_recreated():
    fake = FakeLab()
    converge(fake, want(1))
    del fake.links["node1"]["eth0"]
    fake.links["switch"]["node1"]["link_netnsid"] = None
    first, second = converge(fake, want(1))
    assert second.actions == []
    assert ops(first)[:2] == ["link_del", "veth_add"]


def test_changed_addresses_replace_the_routes():
    fake = FakeLab()
    converge(fake, want(2))
    w = want(2, gateway="192.168.1.254/24", nodes=[
        {"name": "node1", "address": "192.168.1.21/24"}, {"name": "node2", "address": "192.168.1.12/24"}])
    first, second = converge(fake, w)
    assert second.actions == []
    text = describe_all(first.actions)
    assert "delete address 192.168.1.11/24 from eth0 in namespace %s/node1/net" % LAB in text
    assert "replace route default via 192.168.1.254 metric 0 in namespace %s/node1/net" % LAB in text
    assert "replace route default via 192.168.1.254 metric 0 in namespace %s/node2/net" % LAB in text
    assert route(fake, "node1", "default")["via"] == "192.168.1.254"


def test_a_link_of_the_wrong_kind_named_switch_is_replaced():
    fake = FakeLab()
    converge(fake, want(1))
    fake.links["switch"]["switch"]["kind"] = "veth"
    first = lab_plan.plan(want(1), fake.cur())
    assert ops(first)[:3] == ["link_del", "bridge_add", "link_set"]


def test_teardown_removes_every_member_then_the_directory():
    fake = FakeLab()
    converge(fake, want(2))
    w = want(state="absent")
    first, second = converge(fake, w)
    assert second.actions == [] and not second.changed
    assert [(a.op, a.name) for a in first.actions] == [
        ("ns_remove", "external"), ("ns_remove", "node1"), ("ns_remove", "node2"),
        ("ns_remove", "router"), ("ns_remove", "switch"), ("lab_remove", LAB)]
    assert first.after == {"name": "t", "path": LAB, "state": "absent"}
    assert first.before["nodes"] == ["node1 192.168.1.11/24", "node2 192.168.1.12/24"]


def test_teardown_of_a_half_built_lab():
    cur = FakeLab().cur()
    cur.update(exists=True, mounted=True, marked=True, strays=[LAB + "/node1/x"], dirs=["node1", "switch"],
               members={"node1": ["net"], "switch": []})
    first = lab_plan.plan(want(state="absent"), cur)
    assert [(a.op, a.name) for a in first.actions] == [
        ("umount", LAB + "/node1/x"), ("ns_remove", "node1"), ("ns_remove", "switch"),
        ("lab_remove", LAB)]
    assert first.actions[1].args["files"] == ["net"]


def test_teardown_of_nothing_changes_nothing():
    first = lab_plan.plan(want(state="absent"), FakeLab().cur())
    assert not first.changed
    assert first.before == first.after


def test_shared_lab_mount_is_made_private_again():
    fake = FakeLab()
    converge(fake, want(1))
    cur = fake.cur()
    cur["shared"] = True
    first = lab_plan.plan(want(1), cur)
    assert describe_all(first.actions) == ["make the mount %s private" % LAB]


# ---------------------------------------------------------- ownership
def _unmarked_lab(unknown=(), strays=(), infra=True):
    """A built lab as the current state, without the marker (as an earlier release left it)."""
    fake = FakeLab()
    converge(fake, want(2))
    cur = fake.cur()
    cur.update(marked=False, unknown=list(unknown), strays=list(strays))
    if not infra:
        cur["members"].pop("router")
    return cur


def test_teardown_refuses_a_directory_that_is_no_lab():
    cur = FakeLab().cur()
    cur.update(exists=True, mounted=False, dirs=["data"], members={"data": []}, unknown=["data/notes.txt", "x"])
    with pytest.raises(ConflictError) as err:
        lab_plan.plan(want(state="absent"), cur)
    assert str(err.value).startswith("name: '%s' is a directory that no podnet.mesh lab made" % LAB)
    assert "no marker file .podnet-lab" in str(err.value) and "data/notes.txt" in str(err.value)


def test_teardown_refuses_an_unmarked_empty_directory():
    cur = FakeLab().cur()
    cur.update(exists=True)
    with pytest.raises(ConflictError):
        lab_plan.plan(want(state="absent"), cur)


@pytest.mark.parametrize("kw", [{"unknown": ["node1/home"]}, {"strays": [LAB + "/node1/x"]}, {"infra": False}],
                         ids=["other files", "other mounts", "no router"])
def test_an_unmarked_directory_that_is_not_provably_a_lab_is_refused(kw):
    cur = _unmarked_lab(**kw)
    for state in ("absent", "present"):
        with pytest.raises(ConflictError):
            lab_plan.plan(want(2, state=state), cur)


def test_a_lab_of_an_earlier_release_is_torn_down():
    cur = _unmarked_lab()
    first = lab_plan.plan(want(state="absent"), cur)
    assert [a.op for a in first.actions][-1] == "lab_remove"


def test_a_lab_of_an_earlier_release_is_marked_when_converged():
    fake = FakeLab()
    converge(fake, want(2))
    fake.marked = False
    first, second = converge(fake, want(2))
    assert describe_all(first.actions) == ["mark %s as a lab (.podnet-lab)" % LAB]
    assert second.actions == [] and fake.marked


def test_present_refuses_a_directory_with_other_content_and_takes_an_empty_one():
    cur = FakeLab().cur()
    cur.update(exists=True, unknown=["notes.txt"])
    with pytest.raises(ConflictError):
        lab_plan.plan(want(1), cur)
    cur.update(unknown=[])
    first = lab_plan.plan(want(1), cur)
    assert describe_all(first.actions)[0] == "mount %s privately on itself and mark it as a lab (.podnet-lab)" % LAB


# ------------------------------------------------------------- reboot, ssh
def test_a_reboot_makes_the_node_again_then_boots_it_and_keeps_its_layers():
    fake = FakeLab()
    converge(fake, want(3))
    fake.boots = []
    first = lab_plan.plan(want(3, reboot=["node2"]), fake.cur())
    texts = describe_all(first.actions)
    assert texts[0] == "shut down node node2 (stop its processes, drop its namespaces)"
    assert first.actions[0].args["keep"] is True
    assert ops(first)[1] == "ns_create" and first.actions[1].name == "node2"
    assert ops(first)[-1] == "lab_boot" and first.actions[-1].name == "node2"
    assert "rebooted" not in first.before and first.after["rebooted"] == ["node2"]
    fake.apply(first.actions)
    assert fake.boots == ["node2"] and "node2" in fake.disks
    # Only node2 was touched; without reboot, nothing more to do; a reboot is always a change.
    assert {a.name for a in first.actions if a.ns is None} == {"node2"}
    assert lab_plan.plan(want(3), fake.cur()).actions == []
    assert lab_plan.plan(want(3, reboot=["node2"]), fake.cur()).changed


def test_a_new_node_boots_and_a_removed_node_loses_its_layers():
    fake = FakeLab()
    first, second = converge(fake, want(2))
    assert fake.boots == ["node1", "node2"]
    assert ops(first).index("lab_boot") > max(i for i, op in enumerate(ops(first)) if op == "route_add")
    first, second = converge(fake, want(1))
    assert [(a.name, a.args["keep"]) for a in first.actions if a.op == "ns_remove"] == [("node2", False)]
    assert fake.disks == {"switch", "router", "external", "node1"}


def test_ssh_adds_the_key_the_controller_and_sshd_on_every_node_then_is_removed():
    fake = FakeLab()
    converge(fake, want(2))
    first, second = converge(fake, want(2, ssh=True))
    assert second.actions == []
    texts = describe_all(first.actions)
    assert texts[0] == "make the lab's SSH key %s/.ssh/id_ed25519" % LAB
    assert "create namespace %s/controller" % LAB in texts
    assert texts[-2:] == ["start sshd on node node1 (192.168.1.11:22, user podnet)",
                          "start sshd on node node2 (192.168.1.12:22, user podnet)"]
    assert fake.links["controller"]["eth0"]["addresses"] == ["192.168.1.254/24"]
    assert first.before["ssh"] is False and first.after["ssh"] is True
    # sshd gone from a node: started again.
    fake.sshd.discard("node2")
    first, second = converge(fake, want(2, ssh=True))
    assert describe_all(first.actions) == ["start sshd on node node2 (192.168.1.12:22, user podnet)"]
    # A rebooted node gets sshd again, before its boot.
    rebooted = lab_plan.plan(want(2, ssh=True, reboot=["node1"]), fake.cur())
    assert ops(rebooted)[-2:] == ["lab_sshd_start", "lab_boot"] and rebooted.actions[-2].name == "node1"
    first, second = converge(fake, want(2))
    assert second.actions == []
    assert sorted(describe_all(a for a in first.actions if a.op in ("lab_sshd_stop", "ns_remove"))) == [
        "remove %s/controller" % LAB, "stop sshd on node node1", "stop sshd on node node2"]
    assert fake.sshd == set() and "controller" not in fake.members


@pytest.mark.parametrize("params, message", [
    ({"reboot": ["node9"]}, "reboot[0]: 'node9' is not one of the lab's nodes"),
    ({"reboot": "node1"}, "reboot: 'node1' must be a list of node names"),
    ({"ssh": True, "nodes": [{"name": "node1", "address": "192.168.1.254/24"}]},
     "ssh: true needs the controller's address 192.168.1.254/24, which nodes[0] has"),
    ({"ssh": True, "ssh_user": "root"}, "ssh_user: 'root' is not a valid user name"),
    ({"nodes": [{"name": "controller", "address": "192.168.1.20/24"}]}, "is reserved"),
])
def test_ssh_and_reboot_parameters_are_validated(params, message):
    from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError

    with pytest.raises(ValidationError) as err:
        want(2, **params)
    assert message in str(err.value)


def test_a_node_of_an_earlier_release_without_layers_is_made_again():
    fake = FakeLab()
    converge(fake, want(2))
    fake.disks.discard("node1")
    first, second = converge(fake, want(2))
    assert second.actions == []
    assert [(a.op, a.name) for a in first.actions if a.op in ("ns_remove", "ns_create", "lab_boot")] == [
        ("ns_remove", "node1"), ("ns_create", "node1"), ("lab_boot", "node1")]


# ------------------------------------------------------------------ dual stack
def test_dual_stack_lab_is_built_in_order_and_converges():
    fake = FakeLab()
    first, second = converge(fake, want6(3))
    assert second.actions == [], describe_all(second.actions)
    names = ops(first)
    # The IPv6 settings of a namespace come before its links (links made later inherit them).
    conf = [i for i, o in enumerate(names) if o == "lab_ipv6_conf"]
    assert [first.actions[i].name for i in conf] == ["external", "node1", "node2", "node3", "router"]
    assert max(i for i, o in enumerate(names) if o == "ns_create") < min(conf)
    assert max(conf) < names.index("bridge_add") < names.index("veth_add")
    assert first.actions[conf[-1]].args["interfaces"] == ["eth0", "eth1"]
    assert names.count("route_add") == 8
    assert fake.links["node1"]["eth0"]["addresses"] == ["192.168.1.11/24", "2001:db8:1::11/64"]
    assert fake.links["router"]["eth0"]["addresses"] == ["192.168.1.1/24", "2001:db8:1::1/64"]
    assert fake.links["router"]["eth1"]["addresses"] == ["203.0.113.1/24", "2001:db8:113::1/64"]
    assert fake.links["external"]["eth0"]["addresses"] == ["203.0.113.10/24", "2001:db8:113::10/64"]
    assert sorted(fake.nodad) == sorted(["2001:db8:1::1/64", "2001:db8:113::1/64", "2001:db8:113::10/64",
                                         "2001:db8:1::11/64", "2001:db8:1::12/64", "2001:db8:1::13/64"])
    assert route(fake, "node2", "default", 6)["via"] == "2001:db8:1::1"
    assert route(fake, "node2", "default", 4)["via"] == "192.168.1.1"
    assert route(fake, "external", "2001:db8:1::/64", 6)["via"] == "2001:db8:113::1"
    # The external host knows the switch networks and nothing else: no pod prefix, no default route.
    assert sorted(fake.routes["external"]) == [(4, "192.168.1.0/24"), (6, "2001:db8:1::/64")]
    assert fake.forwarding == {"router": True} and fake.forwarding6 == {"router": True}
    texts = describe_all(first.actions)
    assert "enable IPv6 forwarding in %s/router/net" % LAB in texts
    assert "set IPv6 disable_ipv6=0, accept_dad=0, accept_ra=0 for all, default, eth0 in %s/node1/net" % LAB in texts
    assert "add route default via 2001:db8:1::1 metric 1024 in namespace %s/node3/net" % LAB in texts


def test_ipv4_lab_plans_nothing_of_ipv6():
    first = lab_plan.plan(want(3), FakeLab().cur())
    assert "lab_ipv6_conf" not in ops(first)
    assert not [a for a in first.actions if ":" in a.args.get("address", "")]
    assert {a.args["route"]["family"] for a in first.actions if "route" in a.args} == {4}
    assert [a.args["key"] for a in first.actions if a.op == "sysctl"] == ["net/ipv4/ip_forward"]


def test_dual_stack_diff_lists_the_ipv6_addresses():
    fake = FakeLab()
    first, second = converge(fake, want6(2))
    assert first.after == {
        "name": "t", "path": LAB, "state": "present", "gateway": "192.168.1.1/24",
        "external": "203.0.113.10/24", "gateway6": "2001:db8:1::1/64", "external6": "2001:db8:113::10/64",
        "nodes": ["node1 192.168.1.11/24 2001:db8:1::11/64", "node2 192.168.1.12/24 2001:db8:1::12/64"],
        "ssh": False}
    assert second.before == second.after


@pytest.mark.parametrize("count", [50, 250])
def test_dual_stack_scales(count):
    fake = FakeLab()
    gateway = topology.generate(count)["gateway"]  # 192.168.1.1/22 for 250 nodes
    first, second = converge(fake, want6(count, gateway=gateway, nodes=nodes(count, ipv6=True)))
    assert second.actions == []
    assert ops(first).count("lab_ipv6_conf") == count + 2
    last = "node%d" % count
    assert fake.links[last]["eth0"]["addresses"][1] == "2001:db8:1::%d/64" % (10 + count)


def test_an_ipv4_lab_gains_ipv6_in_place_and_loses_it_again():
    fake = FakeLab()
    converge(fake, want(2))
    first, second = converge(fake, want6(2))
    assert second.actions == []
    assert not [a for a in first.actions if a.op in ("ns_create", "ns_remove", "veth_add", "link_del")]
    assert sorted(a.name for a in first.actions if a.op == "lab_ipv6_conf") == ["external", "node1", "node2", "router"]
    assert route(fake, "node1", "default", 6)["via"] == "2001:db8:1::1"
    first, second = converge(fake, want(2))
    assert second.actions == [], describe_all(second.actions)
    texts = describe_all(first.actions)
    assert "delete address 2001:db8:1::11/64 from eth0 in namespace %s/node1/net" % LAB in texts
    assert "delete route default via 2001:db8:1::1 metric 1024 in namespace %s/node1/net" % LAB in texts
    assert "delete route 2001:db8:1::/64 via 2001:db8:113::1 metric 1024 in namespace %s/external/net" % LAB in texts
    assert not [t for t in texts if t.startswith("replace route")]  # the IPv4 routes stay as they are
    assert fake.links["node1"]["eth0"]["addresses"] == ["192.168.1.11/24"]
    assert sorted(fake.routes["node1"]) == [(4, "default")]
    assert sorted(fake.routes["external"]) == [(4, "192.168.1.0/24")]


def test_lost_ipv6_settings_and_routes_are_repaired():
    fake = FakeLab()
    converge(fake, want6(2))
    del fake.ipv6_conf["node2"]
    del fake.routes["node1"][(6, "default")]
    fake.forwarding6["router"] = False
    fake.links["external"]["eth0"]["addresses"].remove("2001:db8:113::10/64")
    first, second = converge(fake, want6(2))
    assert second.actions == []
    assert sorted(describe_all(first.actions)) == sorted([
        "set IPv6 disable_ipv6=0, accept_dad=0, accept_ra=0 for all, default, eth0 in %s/node2/net" % LAB,
        "add route default via 2001:db8:1::1 metric 1024 in namespace %s/node1/net" % LAB,
        "add address 2001:db8:113::10/64 to eth0 in namespace %s/external/net" % LAB,
        "enable IPv6 forwarding in %s/router/net" % LAB,
    ])


def test_a_reboot_of_a_dual_stack_node_restores_its_ipv6_address_and_default_route():
    fake = FakeLab()
    converge(fake, want6(2))
    first = lab_plan.plan(want6(2, reboot=["node2"]), fake.cur())
    fake.apply(first.actions)
    mine = [a for a in first.actions if a.name == "node2" or (a.ns or "").startswith(LAB + "/node2/")]
    assert [a.op for a in mine][:3] == ["ns_remove", "ns_create", "lab_ipv6_conf"]
    assert fake.links["node2"]["eth0"]["addresses"] == ["192.168.1.12/24", "2001:db8:1::12/64"]
    assert route(fake, "node2", "default", 6)["via"] == "2001:db8:1::1"
    assert ops(first)[-1] == "lab_boot"
    assert lab_plan.plan(want6(2), fake.cur()).actions == []


def test_teardown_of_a_dual_stack_lab_is_the_same():
    fake = FakeLab()
    converge(fake, want6(2))
    first, second = converge(fake, want(state="absent"))
    assert second.actions == [] and ops(first)[-1] == "lab_remove"
    assert not fake.members and not fake.exists
