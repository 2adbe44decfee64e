# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.podnet.mesh.plugins.filter import mesh


def hv(cidr, ip, nets=None):
    h = {"podnet_pod_cidr": cidr, "podnet_node_ip": ip}
    if nets:
        h["ansible_facts"] = {"interfaces": ["eth0"],
                              "eth0": {"ipv4": {"network": nets[0], "netmask": nets[1]}}}
    return h


HV = {
    "node1": hv("10.244.1.0/24", "192.168.1.11", ("192.168.1.0", "255.255.255.0")),
    "node2": hv("10.244.2.0/24", "192.168.1.12", ("192.168.1.0", "255.255.255.0")),
    "node3": hv("10.244.3.0/24", "192.168.1.13"),
}


def test_mesh_routes():
    assert mesh.mesh_routes(["node1", "node2", "node3"], HV, "node1") == [
        {"dst": "10.244.2.0/24", "via": "192.168.1.12"}, {"dst": "10.244.3.0/24", "via": "192.168.1.13"}]


def test_mesh_routes_uses_default_route_facts_and_names_missing():
    hostvars = {"a": {"podnet_pod_cidr": "10.244.1.0/24",
                      "ansible_facts": {"default_ipv4": {"address": "192.168.1.21"}}},
                "b": {"podnet_pod_cidr": "10.244.2.0/24"}}
    assert mesh.mesh_routes(["a"], hostvars, "x") == [{"dst": "10.244.1.0/24", "via": "192.168.1.21"}]
    with pytest.raises(AnsibleFilterError, match="node b lacks"):
        mesh.mesh_routes(["a", "b"], hostvars, "x")


def test_node_info_result_gives_node_ip_and_networks():
    info = {"default_ipv4": {"address": "192.168.1.21", "prefix": 24, "interface": "eth0", "gateway": None},
            "networks": ["127.0.0.0/8", "192.168.1.0/24"]}
    hostvars = {"a": {"podnet_pod_cidr": "10.244.1.0/24", "podnet_node_info": info},
                "b": {"podnet_pod_cidr": "10.244.2.0/24", "podnet_node_ip": "192.168.1.22",
                      "podnet_node_info": {"skipped": True}},
                "c": {"podnet_pod_cidr": "10.244.3.0/24", "podnet_node_ip": "192.168.9.23"}}
    assert mesh.mesh_routes(["a", "b"], hostvars, "b") == [{"dst": "10.244.1.0/24", "via": "192.168.1.21"}]
    assert mesh.mesh_problems(["a", "b"], hostvars, "10.244.0.0/16") == []
    problems = mesh.mesh_problems(["a", "b", "c"], hostvars, "10.244.0.0/16")
    assert problems == ["a: peer c (node IP 192.168.9.23) is not on a directly connected subnet of a "
                        "(127.0.0.0/8, 192.168.1.0/24); host-gw routing needs layer-2 adjacency (podnet_backend "
                        "auto or vxlan reaches it through a VXLAN overlay)"]


def test_clean_inventory_has_no_problems():
    assert mesh.mesh_problems(["node1", "node2", "node3"], HV, "10.244.0.0/16") == []


@pytest.mark.parametrize("change, expected", [
    ({"node3": hv("10.245.3.0/24", "192.168.1.13")}, "node3: podnet_pod_cidr 10.245.3.0/24 is not inside"),
    ({"node3": hv("10.244.2.128/25", "192.168.1.13")}, "node2 and node3: pod CIDRs"),
    ({"node3": hv("10.244.3.0/24", "192.168.1.12")}, "node2 and node3: both have node IP 192.168.1.12"),
    ({"node3": hv("10.244.3.0/24", "192.168.2.13")}, "node1: peer node3 (node IP 192.168.2.13) is not on a directly"),
    ({"node3": hv("nope", "192.168.1.13")}, "node3: podnet_pod_cidr 'nope'"),
    ({"node3": {"podnet_pod_cidr": "10.244.3.0/24"}}, "node3: podnet_node_ip is not set"),
])
def test_problems_name_hosts_and_values(change, expected):
    hostvars = dict(HV, **change)
    problems = mesh.mesh_problems(["node1", "node2", "node3"], hostvars, "10.244.0.0/16")
    assert any(p.startswith(expected) for p in problems), problems


def test_pod_gateway():
    assert mesh.pod_gateway("10.244.1.0/24") == "10.244.1.1/24"
    assert mesh.pod_gateway("10.244.1.0/24", False) == "10.244.1.1"
    with pytest.raises(AnsibleFilterError):
        mesh.pod_gateway("10.244.1.1/24")


def test_probe_report():
    def res(src, dst, ok=True, nat=False, kind="pod"):
        return {"src": src, "src_address": "", "dst": dst, "dst_address": dst, "kind": kind, "ok": ok,
                "nat": nat}
    hostvars = {
        "n1": {"podnet_verify_check": {"pods": [{"name": "red", "address": "10.0.1.2"}],
                                       "results": [res("red", "10.0.2.2"), res("red", "203.0.113.10", kind="external")],
                                       "failures": []}},
        "n2": {"podnet_verify_check": {"pods": [{"name": "red", "address": "10.0.2.2"}],
                                       "results": [res("red", "10.0.1.2", ok=False, nat=True),
                                                   res("red", "203.0.113.10", ok=False, kind="external")],
                                       "failures": ["red -> red@n1: source NATed", "red -> 203.0.113.10: no ping"]}},
    }
    report = mesh.probe_report(["n1", "n2"], hostvars)
    assert report["probes"] == 4
    assert report["failures"] == ["n2: red -> red@n1: source NATed", "n2: red -> 203.0.113.10: no ping"]
    assert report["lines"][1].startswith("red@n1 | -   .   | .")
    assert report["lines"][2].startswith("red@n2 | N   -   | X")


GROUPS = {"all": ["cp1", "node1", "node2", "node3"], "ungrouped": [], "podnet_nodes": ["node1", "node2", "node3"],
          "k8s_cluster": ["cp1", "node1", "node2", "node3"], "empty": []}


@pytest.mark.parametrize("group, play, limit, expected", [
    ("podnet_nodes", None, None, []),
    ("podnet_nodes", ["node1", "node2", "node3"], None, []),
    ("podnet_nodes", ["node1"], "node1", []),
    ("nodes", None, None, ["podnet_nodes_group is 'nodes', but the inventory has no group of that name "
                           "(groups: empty, k8s_cluster, podnet_nodes); set podnet_nodes_group for all hosts "
                           "(group_vars/all.yml, or -e podnet_nodes_group=GROUP) to the group of the pod network's "
                           "nodes"]),
    ("empty", None, None, ["podnet_nodes_group is 'empty', but group empty has no hosts"]),
    (None, None, None, ["podnet_nodes_group None must be the name of the inventory group of the pod network's nodes"]),
    ("podnet_nodes", ["cp1", "node1", "node2", "node3"], None,
     ["cp1 run this play but are not in group podnet_nodes (podnet_nodes_group='podnet_nodes'): the pod network is "
      "built on that group's hosts only, so run the play on group podnet_nodes, or set podnet_nodes_group to the "
      "group the play runs on"]),
    ("podnet_nodes", ["node1", "node2"], None,
     ["node3 are in group podnet_nodes (podnet_nodes_group='podnet_nodes') but not in this play: run the play on "
      "the whole group (a subset with --limit is fine), or take them out of the group"]),
])
def test_nodes_group_problems(group, play, limit, expected):
    assert mesh.nodes_group_problems(GROUPS, group, play, limit) == expected


def test_node_outside_the_run_and_missing_pod_cidr_name_the_variable_to_set():
    info_a = {"default_ipv4": {"address": "192.168.1.11"}, "networks": ["192.168.1.0/24"]}
    hostvars = {"a": {"podnet_pod_cidr": "10.244.1.0/24", "podnet_node_info": info_a},
                "b": {"podnet_pod_cidr": "10.244.2.0/24"},
                "c": {"podnet_pod_cidr": "10.244.3.0/24", "podnet_node_info": {"default_ipv4": None,
                                                                               "networks": ["192.168.1.0/24"]}},
                "d": {}}
    assert mesh.mesh_problems(["a", "b", "c", "d"], hostvars, "10.244.0.0/16") == [
        "b: podnet_node_ip is not set and the node's addresses could not be read (it is outside --limit, "
        "unreachable or failed): set podnet_node_ip for b, or run on it too",
        "c: podnet_node_ip is not set and the node has no IPv4 default route to take it from",
        "d: podnet_pod_cidr is required for host d (its pod CIDR, e.g. 10.244.1.0/24; "
        "or podnet_pod_cidrs, one prefix per address family)"]


# ------------------------------------------------ dual-stack and IPv6-only inventories
def hv2(i, families=(4, 6), **extra):
    cidrs = {4: "10.244.%d.0/24" % i, 6: "fd00:10:244:%x::/64" % i}
    ips = {4: "192.168.1.1%d" % i, 6: "2001:db8:1::1%d" % i}
    h = {"podnet_pod_cidrs": [cidrs[f] for f in families], "podnet_node_ips": [ips[f] for f in families],
         "podnet_node_info": {"networks": ["192.168.1.0/24", "2001:db8:1::/64"]}}
    h.update(extra)
    return h


DUAL = {"node%d" % i: hv2(i) for i in (1, 2, 3)}
CLUSTER = ["10.244.0.0/16", "fd00:10:244::/56"]


def test_dual_stack_mesh_routes_go_via_the_peers_address_of_each_family():
    assert mesh.mesh_routes(["node1", "node2", "node3"], DUAL, "node1") == [
        {"dst": "10.244.2.0/24", "via": "192.168.1.12"}, {"dst": "fd00:10:244:2::/64", "via": "2001:db8:1::12"},
        {"dst": "10.244.3.0/24", "via": "192.168.1.13"}, {"dst": "fd00:10:244:3::/64", "via": "2001:db8:1::13"}]
    assert mesh.mesh_problems(["node1", "node2", "node3"], DUAL, CLUSTER) == []


def test_ipv6_only_mesh_and_node_addresses_from_node_info():
    hostvars = {"a": {"podnet_pod_cidrs": ["fd00:10:244:1::/64"],
                      "podnet_node_info": {"default_ipv4": {"address": "192.168.1.11"},
                                           "default_ipv6": {"address": "2001:db8:1::11"},
                                           "networks": ["2001:db8:1::/64"]}},
                "b": {"podnet_pod_cidr": "fd00:10:244:2::/64", "podnet_node_ip": "2001:db8:1::12"}}
    assert mesh.mesh_routes(["a", "b"], hostvars, "b") == [{"dst": "fd00:10:244:1::/64", "via": "2001:db8:1::11"}]
    assert mesh.mesh_problems(["a", "b"], hostvars, ["fd00:10:244::/56"]) == []


@pytest.mark.parametrize("change, cluster, expected", [
    ({"node3": hv2(3, families=(4,))}, CLUSTER,
     "node3: podnet_pod_cidrs (10.244.3.0/24) has no IPv6 prefix, but the cluster is IPv6 too (fd00:10:244::/56)"),
    ({"node3": hv2(3, podnet_pod_cidrs=["10.244.3.0/24", "fd00:10:245:3::/64"])}, CLUSTER,
     "node3: podnet_pod_cidrs fd00:10:245:3::/64 is not inside podnet_cluster_cidr fd00:10:244::/56"),
    ({"node3": hv2(3, podnet_pod_cidrs=["10.244.3.0/24", "10.244.4.0/24"])}, CLUSTER,
     "node3: podnet_pod_cidrs has two IPv4 prefixes (10.244.3.0/24 and 10.244.4.0/24)"),
    ({"node3": hv2(3, podnet_pod_cidrs=["10.244.3.0/24", "fd00:10:244:2::/64"])}, CLUSTER,
     "node2 and node3: pod CIDRs fd00:10:244:2::/64 and fd00:10:244:2::/64 overlap"),
    ({"node3": hv2(3, podnet_node_ips=["192.168.1.13"],
                   podnet_node_info={"default_ipv6": None, "networks": ["192.168.1.0/24"]})}, CLUSTER,
     "node3: podnet_node_ips has no IPv6 address and the node has no IPv6 default route to take it from"),
    ({"node3": hv2(3, podnet_node_ips=["192.168.1.13", "2001:db8:1::12"])}, CLUSTER,
     "node2 and node3: both have node IP 2001:db8:1::12"),
    ({"node3": hv2(3, podnet_node_ips=["192.168.1.13", "2001:db8:2::13"])}, CLUSTER,
     "node1: peer node3 (node IP 2001:db8:2::13) is not on a directly connected subnet of node1"),
    ({}, ["10.244.0.0/16", "10.245.0.0/16"], "podnet_cluster_cidrs has two IPv4 prefixes"),
    ({}, ["10.244.0.0/16"], "node1: podnet_pod_cidrs fd00:10:244:1::/64 is IPv6, but the cluster prefixes "
                            "(10.244.0.0/16) have no IPv6 prefix"),
])
def test_dual_stack_problems_name_hosts_families_and_values(change, cluster, expected):
    hostvars = dict(DUAL, **change)
    problems = mesh.mesh_problems(["node1", "node2", "node3"], hostvars, cluster)
    assert any(p.startswith(expected) for p in problems), problems


def test_prefix_list_filters():
    assert mesh.pod_cidrs({"podnet_pod_cidr": "10.244.1.0/24"}) == ["10.244.1.0/24"]
    assert mesh.pod_cidrs({"podnet_pod_cidrs": ["fd00:10:244:1::/64", "10.244.1.0/24"], "podnet_pod_cidr": "x"}) == [
        "fd00:10:244:1::/64", "10.244.1.0/24"]
    assert mesh.pod_cidrs({}) == []
    assert mesh.cluster_cidrs({"podnet_cluster_cidrs": "fd00:10:244::/56"}) == ["fd00:10:244::/56"]
    assert mesh.pod_gateways(["10.244.1.0/24", "fd00:10:244:1::/64"]) == ["10.244.1.1/24", "fd00:10:244:1::1/64"]
    assert mesh.pod_gateways("fd00:10:244:1::/64", False) == ["fd00:10:244:1::1"]


def test_stale_bridges():
    info = {"addresses": [
        {"interface": "lo", "address": "127.0.0.1/8"},
        {"interface": "cni0", "address": "10.244.1.1/24"},
        {"interface": "podbr", "address": "10.244.1.1/24"},
        {"interface": "br1", "address": "10.244.1.1/24"}, {"interface": "br1", "address": "192.0.2.1/24"},
        {"interface": "br2", "address": "10.244.1.1/24"}, {"interface": "br2", "address": "fd00::1/64"},
        {"interface": "br3", "address": "10.244.1.1/25"}]}
    assert mesh.stale_bridges(info, "podbr", "10.244.1.1/24") == [
        {"interface": "cni0", "addresses": ["10.244.1.1/24"], "only": True},
        {"interface": "br1", "addresses": ["10.244.1.1/24", "192.0.2.1/24"], "only": False},
        {"interface": "br2", "addresses": ["10.244.1.1/24", "fd00::1/64"], "only": True}]
    assert mesh.stale_bridges({"skipped": True}, "cni0", "10.244.1.1/24") == []
    with pytest.raises(AnsibleFilterError, match="not an address in CIDR form"):
        mesh.stale_bridges(info, "cni0", "nope")


def test_stale_bridges_of_a_dual_stack_node():
    info = {"addresses": [
        {"interface": "old", "address": "10.244.1.1/24"}, {"interface": "old", "address": "fd00:10:244:1::1/64"},
        {"interface": "half", "address": "fd00:10:244:1::1/64"}, {"interface": "half", "address": "fd00:99::1/64"}]}
    assert mesh.stale_bridges(info, "cni0", ["10.244.1.1/24", "fd00:10:244:1::1/64"]) == [
        {"interface": "old", "addresses": ["10.244.1.1/24", "fd00:10:244:1::1/64"], "only": True},
        {"interface": "half", "addresses": ["fd00:10:244:1::1/64", "fd00:99::1/64"], "only": False}]


# ------------------------------------------------ host-gw, vxlan and auto
def routed():
    """node1 and node2 on 192.168.1.0/24, node3 on 192.168.2.0/24 (a router joins them)."""
    def node(i, subnet):
        return {"podnet_pod_cidrs": ["10.244.%d.0/24" % i, "fd00:10:244:%x::/64" % i],
                "podnet_node_ips": ["192.168.%d.1%d" % (subnet, i), "2001:db8:%d::1%d" % (subnet, i)],
                "podnet_node_info": {"networks": ["192.168.%d.0/24" % subnet, "2001:db8:%d::/64" % subnet]}}
    return {"node1": node(1, 1), "node2": node(2, 1), "node3": node(3, 2)}


NAMES = ["node1", "node2", "node3"]


def test_auto_is_host_gw_to_adjacent_peers_and_vxlan_to_the_rest():
    table = mesh.mesh_table(NAMES, routed(), "node1", "auto")
    assert [(p["name"], p["mode"], p["node_ip"]) for p in table] == [
        ("node2", "host-gw", "192.168.1.12"), ("node3", "vxlan", "192.168.2.13")]
    assert mesh.mesh_routes(NAMES, routed(), "node1", "auto") == [
        {"dst": "10.244.2.0/24", "via": "192.168.1.12"}, {"dst": "fd00:10:244:2::/64", "via": "2001:db8:1::12"},
        {"dst": "10.244.3.0/24", "via": "10.244.3.0", "dev": "podnet.vxlan", "onlink": True},
        {"dst": "fd00:10:244:3::/64", "via": "fd00:10:244:3::", "dev": "podnet.vxlan", "onlink": True}]
    assert mesh.overlay_peers(NAMES, routed(), "node1", "auto") == [
        {"node_ip": "192.168.2.13", "vtep": ["10.244.3.0", "fd00:10:244:3::"]}]
    assert mesh.overlay_peers(NAMES, routed(), "node3", "auto") == [
        {"node_ip": "192.168.1.11", "vtep": ["10.244.1.0", "fd00:10:244:1::"]},
        {"node_ip": "192.168.1.12", "vtep": ["10.244.2.0", "fd00:10:244:2::"]}]


def test_backends_force_one_mode_and_the_pods_mtu_follows():
    assert [p["mode"] for p in mesh.mesh_table(NAMES, routed(), "node1", "vxlan")] == ["vxlan", "vxlan"]
    assert [p["mode"] for p in mesh.mesh_table(NAMES, routed(), "node1", "host-gw")] == ["host-gw", "host-gw"]
    assert mesh.overlay_peers(NAMES, routed(), "node1") == []
    assert mesh.mesh_mtu(NAMES, routed(), "auto") == 1450
    assert mesh.mesh_mtu(NAMES, routed(), "auto", 9000) == 8950
    assert mesh.mesh_mtu(NAMES, routed(), "host-gw") is None
    assert mesh.mesh_mtu(NAMES[:2], routed(), "auto") is None  # every pair adjacent: no overlay
    with pytest.raises(AnsibleFilterError, match="podnet_backend 'gre' must be one of host-gw, vxlan, auto"):
        mesh.mesh_table(NAMES, routed(), "node1", "gre")


def test_only_host_gw_needs_every_peer_adjacent():
    cluster = ["10.244.0.0/16", "fd00:10:244::/56"]
    problems = mesh.mesh_problems(NAMES, routed(), cluster, "host-gw")
    assert any("node1: peer node3 (node IP 192.168.2.13) is not on a directly connected subnet" in p
               and "podnet_backend auto or vxlan" in p for p in problems), problems
    assert mesh.mesh_problems(NAMES, routed(), cluster, "auto") == []
    assert mesh.mesh_problems(NAMES, routed(), cluster, "vxlan") == []
    assert mesh.mesh_problems(NAMES, routed(), cluster, "gre") == [
        "podnet_backend 'gre' must be one of host-gw, vxlan, auto"]


def test_mesh_report_names_every_pair_and_its_mode():
    lines = mesh.mesh_report(NAMES, routed(), "auto")
    assert lines[0] == "node1 -> node2 host-gw via 192.168.1.12: 10.244.2.0/24, fd00:10:244:2::/64"
    assert lines[1] == "node1 -> node3 vxlan via 192.168.2.13: 10.244.3.0/24, fd00:10:244:3::/64"
    assert lines[-1] == "6 pairs: 2 host-gw, 4 vxlan"
