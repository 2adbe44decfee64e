# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The routed lab without the kernel: placement, addresses, wiring, moving a node, refusals."""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.lab import topology
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.lab.fakelab import (
    LAB, FakeLab, converge, ops, route, want)


def routed(count=3, subnets=2, node_subnets=None, ipv6=False, **params):
    """The module's parameters of a routed lab, as the inventory plugin makes them."""
    lab = topology.generate(count, subnets=subnets, node_subnets=node_subnets,
                            gateway6=topology.DEFAULT_GATEWAY6 if ipv6 else None)
    keys = ("name", "address", "address6") if ipv6 else ("name", "address")
    params.setdefault("nodes", [dict((k, n[k]) for k in keys) for n in lab["nodes"]])
    if ipv6:
        params.update(ipv6=True, subnets6=lab["subnets6"])
    return want(count, subnets=lab["subnets"], **params)


# ---------------------------------------------------------------- placement
@pytest.mark.parametrize("count, subnets, node_subnets, expected", [
    (3, 1, None, [1, 1, 1]),
    (3, 2, None, [1, 1, 2]),
    (10, 2, None, [1] * 5 + [2] * 5),
    (50, 5, None, [k for k in range(1, 6) for _index in range(10)]),
    (7, 3, None, [1, 1, 1, 2, 2, 2, 3]),
    (2, 5, None, [1, 2]),
    (3, 2, {"node3": 1}, [1, 1, 1]),
    (3, 2, {"node1": 2, "node3": 1}, [2, 1, 1]),
])
def test_placement_is_contiguous_blocks_with_overrides(count, subnets, node_subnets, expected):
    names = ["node%d" % i for i in range(1, count + 1)]
    where = topology.placement(names, subnets, node_subnets)
    assert [where[n] for n in names] == expected


@pytest.mark.parametrize("subnets, node_subnets, message", [
    (0, None, "subnets must be a positive integer"),
    (True, None, "subnets must be a positive integer"),
    (2, {"node9": 1}, "node9 is not one of the lab's nodes"),
    (2, {"node3": 3}, "node3=3 is not a subnet of the lab (1 to 2)"),
    (2, {"node3": 0}, "node3=0 is not a subnet of the lab"),
    (2, {"node3": "x"}, "is not a subnet number"),
])
def test_placement_refusals(subnets, node_subnets, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        topology.placement(["node1", "node2", "node3"], subnets, node_subnets)


# ---------------------------------------------------------------- addresses
def test_generate_three_nodes_on_two_subnets():
    lab = topology.generate(3, subnets=2, gateway6=topology.DEFAULT_GATEWAY6)
    assert lab["gateway"] == "192.168.1.1/24" and lab["subnets"] == ["192.168.2.1/24"]
    assert lab["gateway6"] == "2001:db8:1::1/64" and lab["subnets6"] == ["2001:db8:2::1/64"]
    assert [(n["name"], n["subnet"], n["address"], n["address6"]) for n in lab["nodes"]] == [
        ("node1", 1, "192.168.1.11/24", "2001:db8:1::11/64"),
        ("node2", 1, "192.168.1.12/24", "2001:db8:1::12/64"),
        ("node3", 2, "192.168.2.13/24", "2001:db8:2::13/64"),
    ]
    # Pods and pod CIDRs do not depend on the placement.
    assert lab["nodes"][2]["pod_cidr"] == "10.244.3.0/24"


def test_generate_fifty_nodes_on_five_subnets_and_a_moved_node():
    lab = topology.generate(50, subnets=5, node_subnets={"node50": 1})
    assert lab["subnets"] == ["192.168.%d.1/24" % k for k in range(2, 6)]
    by_name = dict((n["name"], n) for n in lab["nodes"])
    assert by_name["node10"]["address"] == "192.168.1.20/24"
    assert by_name["node11"]["address"] == "192.168.2.21/24"
    assert by_name["node49"]["address"] == "192.168.5.59/24"
    assert by_name["node50"]["address"] == "192.168.1.60/24"


def test_one_subnet_is_the_classic_lab_exactly():
    assert topology.generate(3, subnets=1) == topology.generate(3)
    assert topology.generate(250, subnets=1) == topology.generate(250)  # widened as before


def test_subnets_follow_the_gateway():
    lab = topology.generate(4, subnets=2, gateway="10.1.7.254/24", offset=100)
    assert lab["gateway"] == "10.1.7.254/24" and lab["subnets"] == ["10.1.8.254/24"]
    assert [n["address"] for n in lab["nodes"]] == ["10.1.7.101/24", "10.1.7.102/24", "10.1.8.103/24",
                                                    "10.1.8.104/24"]


@pytest.mark.parametrize("kw, message", [
    ({"count": 300, "subnets": 2, "cluster_cidr": "10.0.0.0/8"}, r"node 245 \(node245\) does not fit in subnet 2"),
    ({"count": 3, "subnets": 2, "gateway": "192.168.255.1/24"}, "do not fit: the third octet would pass 255"),
    ({"count": 3, "subnets": 3, "gateway": "192.168.254.1/24"}, "the third octet would pass 255"),
    ({"count": 3, "subnets": 2, "gateway": "10.0.0.1/16"}, "needs a prefix of /24 or longer"),
    ({"count": 3, "subnets": 2, "gateway6": "2001:db8::1/32"}, "needs a /48 to /64"),
    ({"count": 3, "subnets": 2, "gateway6": "2001:db8:a::1/64"}, "reads like a decimal number"),
    ({"count": 3, "subnets": 2, "node_subnets": {"node4": 1}}, "node4 is not one of the lab's nodes"),
])
def test_generate_refuses_what_cannot_fit(kw, message):
    count = kw.pop("count")
    with pytest.raises(ValueError, match=message):
        topology.generate(count, **kw)


# --------------------------------------------------------------- validation
def test_validate_places_every_node_on_the_subnet_of_its_address():
    w = routed(ipv6=True)
    assert w["routers"] == ["192.168.1.1/24", "192.168.2.1/24"]
    assert w["routers6"] == ["2001:db8:1::1/64", "2001:db8:2::1/64"]
    assert [n["subnet"] for n in w["nodes"]] == [1, 1, 2]


@pytest.mark.parametrize("params, path, message", [
    ({"subnets": ["192.168.1.200/24"]}, "subnets[0]", "overlaps the lab's subnet 192.168.1.0/24 (gateway)"),
    ({"subnets": ["203.0.113.1/25"]}, "external", "overlaps the switch network 203.0.113.0/25 of subnets[0]"),
    ({"subnets": "192.168.2.1/24"}, "subnets", "must be a list"),
    ({"subnets": ["2001:db8:2::1/64"]}, "subnets[0]", "is not an IPv4 address"),
    ({"subnets6": ["2001:db8:2::1/64"]}, "subnets6", "the lab has no IPv6"),
    ({"nodes": [{"name": "node1", "address": "192.168.3.11/24"}]}, "nodes[0].address",
     "nor on 192.168.2.0/24 (subnets[0])"),
    ({"nodes": [{"name": "node1", "address": "192.168.2.1/24"}]}, "nodes[0].address", "already taken by subnets[0]"),
])
def test_validate_refuses_bad_subnets(params, path, message):
    values = dict({"subnets": ["192.168.2.1/24"]}, **params)
    with pytest.raises(ValidationError) as exc:
        want(3, **values)
    assert exc.value.path == path and message in str(exc.value)


def test_validate_refuses_a_node_whose_two_families_are_on_two_subnets():
    nodes = [{"name": "node1", "address": "192.168.1.11/24", "address6": "2001:db8:2::11/64"}]
    with pytest.raises(ValidationError) as exc:
        want(1, nodes=nodes, subnets=["192.168.2.1/24"], ipv6=True, subnets6=["2001:db8:2::1/64"])
    assert exc.value.path == "nodes[0].address6" and "a node has both on one subnet" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        want(1, nodes=nodes[:0], subnets=["192.168.2.1/24"], ipv6=True)
    assert exc.value.path == "subnets6"


# ------------------------------------------------------------------- wiring
def test_topology_has_a_bridge_per_subnet_and_the_router_on_each():
    topo = topology.topology(routed(ipv6=True, ssh=True))
    assert topo["bridges"] == ["switch", "switch.2"]
    assert ("switch", "router.2", "router", "eth2") in topo["veths"]
    assert topo["masters"][("switch", "node3")] == "switch.2"
    assert topo["masters"][("switch", "node1")] == "switch" == topo["masters"][("switch", "controller")]
    assert topo["addresses"][("router", "eth2")] == ["192.168.2.1/24", "2001:db8:2::1/64"]
    assert [(r["dst"], r["via"]) for r in topo["routes"]["node3"]] == [("default", "192.168.2.1"),
                                                                       ("default", "2001:db8:2::1")]
    assert [(r["dst"], r["via"]) for r in topo["routes"]["external"]] == [
        ("192.168.1.0/24", "203.0.113.1"), ("192.168.2.0/24", "203.0.113.1"),
        ("2001:db8:1::/64", "2001:db8:113::1"), ("2001:db8:2::/64", "2001:db8:113::1")]
    assert [(r["dst"], r["via"]) for r in topo["routes"]["controller"]] == [("192.168.2.0/24", "192.168.1.1")]
    assert topo["ipv6_conf"]["router"] == ["eth0", "eth1", "eth2"]


def test_routed_lab_is_built_and_converges():
    fake = FakeLab()
    first, second = converge(fake, routed(ipv6=True))
    assert second.actions == [], describe_all(second.actions)
    assert fake.links["switch"]["node3"]["master"] == "switch.2"
    assert fake.links["switch"]["node1"]["master"] == "switch"
    assert fake.links["switch"]["router.2"]["master"] == "switch.2"
    assert fake.links["router"]["eth2"]["addresses"] == ["192.168.2.1/24", "2001:db8:2::1/64"]
    assert route(fake, "node3", "default")["via"] == "192.168.2.1"
    assert route(fake, "node3", "default", 6)["via"] == "2001:db8:2::1"
    assert route(fake, "external", "192.168.2.0/24")["via"] == "203.0.113.1"
    texts = describe_all(first.actions)
    assert "create bridge switch.2 in namespace %s/switch/net" % LAB in texts, texts
    assert "set master=switch.2, up=True on link node3 in namespace %s/switch/net" % LAB in texts


def test_a_node_moved_to_the_other_subnet_is_moved_in_place_and_back():
    fake = FakeLab()
    converge(fake, routed(ipv6=True))
    node3 = dict(fake.links["node3"]["eth0"])
    first, second = converge(fake, routed(ipv6=True, node_subnets={"node3": 1}))
    assert second.actions == [], describe_all(second.actions)
    assert not set(ops(first)) & {"ns_create", "ns_remove", "veth_add", "link_del", "lab_boot"}, ops(first)
    assert fake.links["switch"]["node3"]["master"] == "switch"
    assert fake.links["node3"]["eth0"]["ifindex"] == node3["ifindex"]
    assert fake.links["node3"]["eth0"]["addresses"] == ["192.168.1.13/24", "2001:db8:1::13/64"]
    assert route(fake, "node3", "default")["via"] == "192.168.1.1"
    assert route(fake, "node3", "default", 6)["via"] == "2001:db8:1::1"
    first, second = converge(fake, routed(ipv6=True))
    assert second.actions == []
    assert fake.links["switch"]["node3"]["master"] == "switch.2"
    assert route(fake, "node3", "default")["via"] == "192.168.2.1"


def test_a_moved_node_with_ssh_gets_its_sshd_started_again():
    fake = FakeLab()
    converge(fake, routed(ssh=True))
    first, second = converge(fake, routed(ssh=True, node_subnets={"node3": 1}))
    assert second.actions == []
    assert [(a.op, a.name) for a in first.actions if a.op.startswith("lab_sshd")] == [
        ("lab_sshd_stop", "node3"), ("lab_sshd_start", "node3")]


def test_fewer_subnets_remove_the_bridges_ports_and_routes_of_the_others():
    fake = FakeLab()
    converge(fake, routed(count=6, subnets=3, ssh=True))
    assert "switch.3" in fake.links["switch"]
    first, second = converge(fake, want(6, ssh=True))
    assert second.actions == [], describe_all(second.actions)
    assert sorted(n for n in fake.links["switch"] if "." in n) == []
    assert sorted(fake.links["router"]) == ["eth0", "eth1", "lo"] or sorted(fake.links["router"]) == ["eth0", "eth1"]
    assert sorted(dst for _f, dst in fake.routes["external"]) == ["192.168.1.0/24"]
    assert fake.routes.get("controller", {}) == {}
    assert all(fake.links["switch"]["node%d" % i]["master"] == "switch" for i in range(1, 7))


def test_fifty_nodes_on_five_subnets_converge():
    fake = FakeLab()
    first, second = converge(fake, routed(count=50, subnets=5, ipv6=True))
    assert second.actions == []
    assert sorted(n for n in fake.links["switch"] if n.startswith("switch")) == [
        "switch", "switch.2", "switch.3", "switch.4", "switch.5"]


def test_views_show_the_subnets():
    w = routed()
    fake = FakeLab()
    first, _second = converge(fake, w)
    assert first.after["subnets"] == ["192.168.2.1/24"]
    assert topology.current_view(w, dict(fake.cur(), exists=True))["subnets"] == ["192.168.2.1/24"]
    rendered = topology.render(w, fake.cur(), True)
    assert rendered["subnets"] == ["192.168.2.1/24"]
