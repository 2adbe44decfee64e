# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab as wanted, without the kernel: node pattern, validation, the returned object."""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.lab import topology
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.lab.fakelab import (
    LAB, ROOT, FakeLab, converge, want, want6)


# ------------------------------------------------------------------ pattern
def test_generate_the_classic_three_nodes():
    lab = topology.generate(3)
    assert lab["gateway"] == "192.168.1.1/24"
    assert lab["nodes"][0] == {
        "name": "node1", "ip": "192.168.1.11", "address": "192.168.1.11/24",
        "pod_cidr": "10.244.1.0/24",
        "pods": [{"name": "red", "address": "10.244.1.2"}, {"name": "blue", "address": "10.244.1.3"}],
    }
    assert [n["address"] for n in lab["nodes"]] == [
        "192.168.1.11/24", "192.168.1.12/24", "192.168.1.13/24"]
    assert [n["pod_cidr"] for n in lab["nodes"]] == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    assert lab["nodes"][2]["pods"][1] == {"name": "blue", "address": "10.244.3.3"}


def test_generate_fifty_nodes_stays_in_the_24():
    lab = topology.generate(50)
    assert lab["gateway"] == "192.168.1.1/24"
    assert lab["nodes"][-1]["address"] == "192.168.1.60/24"
    assert lab["nodes"][-1]["pod_cidr"] == "10.244.50.0/24"


@pytest.mark.parametrize("count, gateway, last", [
    (244, "192.168.1.1/24", "192.168.1.254/24"),
    (245, "192.168.1.1/22", "192.168.1.255/22"),
    (255, "192.168.1.1/22", "192.168.2.9/22"),
])
def test_generate_widens_the_switch_network_only_when_needed(count, gateway, last):
    lab = topology.generate(count)
    assert lab["gateway"] == gateway
    assert lab["nodes"][-1]["address"] == last
    assert lab["nodes"][0]["address"].split("/")[0] == "192.168.1.11"
    assert len({n["ip"] for n in lab["nodes"]}) == count


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 0}, "positive integer"),
    ({"count": True}, "positive integer"),
    ({"count": 256}, "256 nodes need 256 pod CIDRs"),
    ({"count": 3, "pods": ["p%d" % i for i in range(300)]}, "do not fit"),
    ({"count": 3, "gateway": "fd00::1/64"}, "switch network is IPv4"),
    ({"count": 3, "pod_prefix": 12}, "between the cluster prefix"),
])
def test_generate_refuses_impossible_labs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        topology.generate(**kwargs)


# --------------------------------------------------------------- validation
def test_validate_normalises_and_computes_the_router_addresses():
    w = want(2)
    assert w["path"] == LAB
    assert w["gateway"] == "192.168.1.1/24"
    assert w["router_external"] == "203.0.113.1/24"
    assert w["nodes"] == [{"name": "node1", "address": "192.168.1.11/24"},
                          {"name": "node2", "address": "192.168.1.12/24"}]


def test_router_takes_the_last_external_address_if_the_first_is_the_external_host():
    assert topology.external_gateway("203.0.113.1/24") == "203.0.113.254/24"


def test_absent_needs_no_nodes():
    w = topology.validate({"name": "t", "root": ROOT + "/", "state": "absent", "nodes": None})
    assert w["nodes"] == [] and w["path"] == LAB


@pytest.mark.parametrize("params, path, reason", [
    ({"name": "../x"}, "name", "not a valid lab name"),
    ({"name": ""}, "name", "not a valid lab name"),
    ({"root": "relative"}, "root", "absolute path"),
    ({"root": "/run/../etc"}, "root", "absolute path"),
    ({"root": "/"}, "root", "must not be /"),
    ({"nodes": [{"name": "router", "address": "192.168.1.5/24"}]}, "nodes[0].name", "reserved"),
    ({"nodes": [{"name": "a_b", "address": "192.168.1.5/24"}]}, "nodes[0].name", "not a valid node name"),
    ({"nodes": [{"name": "n" * 16, "address": "192.168.1.5/24"}]}, "nodes[0].name", "not a valid"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24"}, {"name": "a", "address": "192.168.1.6/24"}]},
     "nodes[1].name", "listed twice"),
    ({"nodes": [{"name": "a", "address": "192.168.2.5/24"}]}, "nodes[0].address", "not on the switch network"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/25"}]}, "nodes[0].address", "not on the switch network"),
    ({"nodes": [{"name": "a", "address": "192.168.1.1/24"}]}, "nodes[0].address", "taken by gateway"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24"}, {"name": "b", "address": "192.168.1.5/24"}]},
     "nodes[1].address", "taken by nodes[0]"),
    ({"nodes": [{"name": "a"}]}, "nodes[0].address", "is required"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24", "ip": 1}]}, "nodes[0]", "unknown key"),
    ({"nodes": "node1"}, "nodes", "must be a list"),
    ({"gateway": "192.168.1.1"}, "gateway", "prefix length"),
    ({"gateway": "fd00::1/64"}, "gateway", "IPv4"),
    ({"external": "192.168.1.200/24"}, "external", "overlaps the switch network"),
    ({"external": "203.0.113.10/31"}, "external", "at least 4 addresses"),
])
def test_validate_refuses_with_a_path(params, path, reason):
    base = {"name": "t", "root": ROOT, "nodes": [], "state": "present"}
    with pytest.raises(ValidationError) as err:
        topology.validate(dict(base, **params))
    assert err.value.path == path
    assert reason in str(err.value)


# -------------------------------------------------------------------- views
def test_render_check_mode_and_read_back():
    fake = FakeLab()
    w = want(1)
    predicted = topology.render(w, fake.cur(), True)
    converge(fake, w)
    actual = topology.render(w, fake.cur(), False)
    assert predicted == actual
    assert actual["nodes"] == [{"name": "node1", "address": "192.168.1.11/24",
                                "net": LAB + "/node1/net", "mnt": LAB + "/node1/mnt",
                                "uts": LAB + "/node1/uts"}]
    assert actual["namespaces"]["router"] == LAB + "/router/net"
    assert topology.render(want(state="absent"), FakeLab().cur(), False)["state"] == "absent"


# --------------------------------------------------------------- dual stack
def test_generate_with_ipv6_reads_like_the_ipv4_twins():
    lab = topology.generate(3, gateway6="2001:db8:1::1/64", cluster_cidr6="fd00:10:244::/56")
    assert lab["gateway6"] == "2001:db8:1::1/64"
    assert lab["nodes"][0] == {
        "name": "node1", "ip": "192.168.1.11", "address": "192.168.1.11/24", "pod_cidr": "10.244.1.0/24",
        "ip6": "2001:db8:1::11", "address6": "2001:db8:1::11/64", "pod_cidr6": "fd00:10:244:1::/64",
        "pods": [{"name": "red", "address": "10.244.1.2", "address6": "fd00:10:244:1::2"},
                 {"name": "blue", "address": "10.244.1.3", "address6": "fd00:10:244:1::3"}],
    }
    assert [n["ip6"] for n in lab["nodes"]] == ["2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13"]


def test_generate_without_ipv6_adds_no_ipv6_field():
    lab = topology.generate(2)
    assert "gateway6" not in lab
    assert set(lab["nodes"][0]) == {"name", "ip", "address", "pod_cidr", "pods"}
    assert set(lab["nodes"][0]["pods"][0]) == {"name", "address"}


@pytest.mark.parametrize("count, node, ip6, pod_cidr6", [
    (50, 50, "2001:db8:1::60", "fd00:10:244:32::/64"),
    (250, 10, "2001:db8:1::20", "fd00:10:244:a::/64"),
    (250, 245, "2001:db8:1::255", "fd00:10:244:f5::/64"),
    (255, 255, "2001:db8:1::265", "fd00:10:244:ff::/64"),
])
def test_generate_ipv6_scales_with_the_ipv4_side(count, node, ip6, pod_cidr6):
    lab = topology.generate(count, gateway6=topology.DEFAULT_GATEWAY6, cluster_cidr6=topology.DEFAULT_CLUSTER_CIDR6)
    found = lab["nodes"][node - 1]
    assert (found["ip6"], found["pod_cidr6"]) == (ip6, pod_cidr6)
    assert len({n["ip6"] for n in lab["nodes"]}) == count
    assert len({n["pod_cidr6"] for n in lab["nodes"]}) == count
    assert lab["gateway6"] == "2001:db8:1::1/64"  # a /64 never widens


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 3, "gateway6": "2001:db8:1::1"}, "not an address in CIDR form"),
    ({"count": 3, "gateway6": "192.168.9.1/24"}, "not an IPv6 address"),
    ({"count": 3, "gateway6": "2001:db8:1::1/124"}, "do not fit in 2001:db8:1::/124"),
    ({"count": 3, "gateway6": "2001:db8:1::11/64"}, "node 1 would get the IPv6 gateway's address"),
    ({"count": 16, "cluster_cidr6": "fd00:10:244::/60"}, "16 nodes need 16 IPv6 pod prefixes of /64 after the first"),
    ({"count": 3, "cluster_cidr6": "10.244.0.0/16"}, "not an IPv6 network"),
    ({"count": 3, "cluster_cidr6": "fd00::/56", "pod_prefix6": 48}, "between the cluster prefix /56 and /126"),
    ({"count": 3, "cluster_cidr6": "fd00::/56", "pod_prefix6": 127}, "between the cluster prefix /56 and /126"),
    ({"count": 3, "cluster_cidr6": "fd00::/120", "pod_prefix6": 126, "pods": ["a", "b", "c"]}, "do not fit"),
])
def test_generate_refuses_impossible_ipv6_labs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        topology.generate(**kwargs)


def test_validate_with_ipv6():
    w = want(2, ipv6=True, nodes=[{"name": "node1", "address": "192.168.1.11/24", "address6": "2001:DB8:1::11/64"},
                                  {"name": "node2", "address": "192.168.1.12/24", "address6": "2001:db8:1::12/64"}])
    assert w["ipv6"] is True
    assert w["gateway6"] == "2001:db8:1::1/64" and w["external6"] == "2001:db8:113::10/64"
    assert w["router_external6"] == "2001:db8:113::1/64"
    assert w["nodes"][0] == {"name": "node1", "address": "192.168.1.11/24", "address6": "2001:db8:1::11/64"}


def test_validate_without_ipv6_has_none():
    w = want(1)
    assert w["ipv6"] is False and w["gateway6"] is None and w["router_external6"] is None
    assert w["nodes"] == [{"name": "node1", "address": "192.168.1.11/24"}]
    topo = topology.topology(w)
    assert topo["ipv6_conf"] == {} and topo["forwarding6"] == []
    assert all(":" not in a for values in topo["addresses"].values() for a in values)
    assert all(r["family"] == 4 for routes in topo["routes"].values() for r in routes)


def test_topology_with_ipv6():
    topo = topology.topology(want6(2))
    assert topo["addresses"][("router", "eth0")] == ["192.168.1.1/24", "2001:db8:1::1/64"]
    assert topo["addresses"][("router", "eth1")] == ["203.0.113.1/24", "2001:db8:113::1/64"]
    assert topo["addresses"][("external", "eth0")] == ["203.0.113.10/24", "2001:db8:113::10/64"]
    assert topo["addresses"][("node2", "eth0")] == ["192.168.1.12/24", "2001:db8:1::12/64"]
    assert topo["routes"]["node1"][1] == {"dst": "default", "family": 6, "via": "2001:db8:1::1", "dev": None,
                                          "metric": 1024}
    assert topo["routes"]["external"] == [
        {"dst": "192.168.1.0/24", "family": 4, "via": "203.0.113.1", "dev": None, "metric": 0},
        {"dst": "2001:db8:1::/64", "family": 6, "via": "2001:db8:113::1", "dev": None, "metric": 1024}]
    assert topo["forwarding6"] == ["router"]
    assert topo["ipv6_conf"] == {"router": ["eth0", "eth1"], "external": ["eth0"], "node1": ["eth0"],
                                 "node2": ["eth0"]}
    # MACs still come from the IPv4 addresses: the same as without ipv6.
    assert topo["macs"] == topology.topology(want(2))["macs"]


V6 = {"name": "a", "address": "192.168.1.5/24", "address6": "2001:db8:1::5/64"}


@pytest.mark.parametrize("params, path, reason", [
    ({"ipv6": True, "nodes": [{"name": "a", "address": "192.168.1.5/24"}]}, "nodes[0].address6", "is required with ipv6"),
    ({"nodes": [V6]}, "nodes[0].address6", "the lab has no IPv6 (ipv6: false)"),
    ({"ipv6": True, "nodes": [dict(V6, address6="2001:db8:2::5/64")]}, "nodes[0].address6",
     "not on the switch network 2001:db8:1::/64 (gateway6 2001:db8:1::1/64)"),
    ({"ipv6": True, "nodes": [dict(V6, address6="2001:db8:1::1/64")]}, "nodes[0].address6", "taken by gateway6"),
    ({"ipv6": True, "nodes": [V6, dict(V6, name="b", address="192.168.1.6/24")]}, "nodes[1].address6",
     "taken by nodes[0]"),
    ({"ipv6": True, "nodes": [dict(V6, address6="192.168.1.9/24")]}, "nodes[0].address6", "not an IPv6 address"),
    ({"ipv6": True, "nodes": [dict(V6, address6="fe80::5/64")]}, "nodes[0].address6", "link-local"),
    ({"ipv6": True, "gateway6": "2001:db8:1::1"}, "gateway6", "prefix length"),
    ({"ipv6": True, "gateway6": "192.168.1.1/24"}, "gateway6", "not an IPv6 address"),
    ({"ipv6": True, "gateway6": "2001:db8:1::/64"}, "gateway6", "subnet-router anycast"),
    ({"ipv6": True, "external6": "2001:db8:1::99/64"}, "external6", "overlaps the switch's IPv6 network"),
    ({"ipv6": True, "external6": "2001:db8:113::10/127"}, "external6", "at least 4 addresses"),
    ({"ipv6": True, "external": "2001:db8:113::10/64"}, "external", "not an IPv4 address"),
])
def test_validate_refuses_ipv6_with_a_path(params, path, reason):
    base = {"name": "t", "root": ROOT, "nodes": [], "state": "present"}
    with pytest.raises(ValidationError) as err:
        topology.validate(dict(base, **params))
    assert err.value.path == path
    assert reason in str(err.value)


def test_ipv6_parameters_are_ignored_without_ipv6():
    w = want(1, gateway6="not an address", external6=None)
    assert w["gateway6"] is None


def test_render_with_ipv6_check_mode_and_read_back():
    fake = FakeLab()
    w = want6(1)
    predicted = topology.render(w, fake.cur(), True)
    converge(fake, w)
    actual = topology.render(w, fake.cur(), False)
    assert predicted == actual
    assert actual["nodes"][0]["address6"] == "2001:db8:1::11/64"
    assert actual["gateway6"] == "2001:db8:1::1/64" and actual["external6"] == "2001:db8:113::10/64"
    assert "gateway6" not in topology.render(want(1), fake.cur(), False)
    assert "address6" not in topology.render(want(1), fake.cur(), False)["nodes"][0]
