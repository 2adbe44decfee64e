# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pods planning: validation, stable addresses, composed actions (no kernel)."""
from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import pod as _pods


def params(pods, **kw):
    p = {"pods": pods, "bridge": "cni0", "pod_cidr": "10.244.1.0/24", "gateway": None, "mtu": None,
         "hairpin": None, "state": "present", "proto": 149}
    p.update(kw)
    return p


BRIDGE = {"name": "cni0", "kind": "bridge", "ifindex": 3, "mtu": 1500, "up": True, "master": None,
          "hairpin": None, "link": None, "link_netnsid": None, "addresses": []}


def link(name, kind="veth", **kw):
    base = {"name": name, "kind": kind, "ifindex": 9, "mtu": 1500, "up": True, "master": None,
            "hairpin": False, "link": None, "link_netnsid": None, "addresses": []}
    base.update(kw)
    return base


def test_veth_names():
    assert model.host_veth_name("red") == "veth-red"
    long_name = model.host_veth_name("a-very-long-pod-name")
    assert len(long_name) == 15 and long_name == model.host_veth_name("a-very-long-pod-name")


@pytest.mark.parametrize("pods, kw, message", [
    ([{"name": "red"}, {"name": "red"}], {}, "pods[1].name: 'red' is listed twice"),
    ([{"name": "red", "address": "10.244.2.5"}], {}, "pods[0].address: '10.244.2.5' is not a host address"),
    ([{"name": "red", "address": "10.244.1.1"}], {}, "pods[0].address: '10.244.1.1' is the gateway"),
    ([{"name": "red", "address": "10.244.1.5/16"}], {}, "pods[0].address: '10.244.1.5/16' must have the prefix"),
    ([{"name": "a", "address": "10.244.1.5"}, {"name": "b", "address": "10.244.1.5"}], {},
     "pods[1].address: "),
    ([{"name": "red"}], {"pod_cidr": "10.244.1.1/24"}, "pod_cidr: "),
    ([{"name": "red", "veth": "x" * 16}], {}, "pods[0].veth: "),
    ([{"name": "red/x"}], {}, "pods[0].name: "),
])
def test_validate_refuses(pods, kw, message):
    with pytest.raises(ValidationError) as err:
        _pods.validate(params(pods, **kw))
    assert str(err.value).startswith(message)


def test_addresses_given_kept_and_next_free_stable():
    want = _pods.validate(params([{"name": "red", "address": "10.244.1.2"}, {"name": "blue"},
                                  {"name": "green"}]))
    cur = {"pods": {"green": {"exists": True, "links": {"eth0": link("eth0", addresses=["10.244.1.9/24"])}}}}
    got = _pods.assign_addresses(want, cur)
    assert got == {"red": ["10.244.1.2/24"], "blue": ["10.244.1.3/24"], "green": ["10.244.1.9/24"]}


def test_full_cidr_is_refused():
    want = _pods.validate(params([{"name": "p%d" % i} for i in range(3)], pod_cidr="10.244.1.0/30"))
    with pytest.raises(ValidationError) as err:
        _pods.assign_addresses(want, {"pods": {}})
    assert "is full" in str(err.value)


def test_plan_new_pod_in_kernel_order():
    want = _pods.validate(params([{"name": "red", "address": "10.244.1.2"}]))
    plan = _pods.plan_pods(want, {"host_links": {"cni0": BRIDGE}, "pods": {"red": {"exists": False}}})
    assert [a.op for a in plan.actions] == [
        "netns_add", "veth_add", "link_set", "link_set", "link_set", "addr_add", "link_set", "route_add"]
    assert describe_all(plan.actions)[-1] == "add route default via 10.244.1.1 metric 0 in namespace red"
    assert plan.actions[1].args["peer_mac"] == "0a:58:0a:f4:01:02"  # same address, same MAC
    assert plan.details["pods"] == [{"name": "red", "veth": "veth-red", "interface": "eth0",
                                     "address": "10.244.1.2/24", "gateway": "10.244.1.1",
                                     "addresses": ["10.244.1.2/24"], "gateways": ["10.244.1.1"]}]
    assert plan.before == {"pods": {"red": {"state": "absent", "veth": None, "addresses": []}}}
    assert plan.after == {"pods": {"red": {"state": "present", "veth": "veth-red",
                                           "addresses": ["10.244.1.2/24"]}}}


def converged_cur():
    host = link("veth-red", ifindex=7, master="cni0", link=2, link_netnsid=0)
    peer = link("eth0", ifindex=2, link=7, link_netnsid=0, addresses=["10.244.1.2/24"])
    route = {"dst": "default", "family": 4, "via": "10.244.1.1", "dev": "eth0", "metric": 0, "proto": 149}
    return {"host_links": {"cni0": BRIDGE, "veth-red": host},
            "pods": {"red": {"exists": True, "links": {"eth0": peer, "lo": link("lo", None)},
                             "routes": [route]}}}


def test_plan_converged_pod_is_empty():
    want = _pods.validate(params([{"name": "red"}]))
    assert _pods.plan_pods(want, converged_cur()).actions == []


def test_plan_absent():
    want = _pods.validate(params([{"name": "red"}], state="absent"))
    plan = _pods.plan_pods(want, converged_cur())
    assert [(a.op, a.name) for a in plan.actions] == [("link_del", "veth-red"), ("netns_del", "red")]


@pytest.mark.parametrize("state, ops", [
    ("absent", ["netns_clear"]),
    ("present", ["netns_clear", "netns_add", "veth_add"]),
])
def test_a_leftover_file_where_the_pods_namespace_was_is_cleared(state, ops):
    want = _pods.validate(params([{"name": "red", "address": "10.244.1.2"}], state=state))
    plan = _pods.plan_pods(want, {"host_links": {"cni0": BRIDGE}, "pods": {"red": {"exists": model.STALE}}})
    assert [a.op for a in plan.actions][:len(ops)] == ops
    assert plan.before["pods"]["red"]["state"] == "absent"
    assert describe_all(plan.actions)[0] == "remove leftover file /run/netns/red (not a namespace)"


def test_plan_needs_the_bridge():
    want = _pods.validate(params([{"name": "red"}]))
    with pytest.raises(ValidationError) as err:
        _pods.plan_pods(want, {"host_links": {}, "pods": {}})
    assert str(err.value).startswith("bridge: 'cni0' does not exist")


# ------------------------------------------------ next free address, node-wide
def test_next_free_address_skips_what_other_namespaces_hold():
    """Pods of an earlier call (and any other namespace) keep their addresses."""
    want = _pods.validate(params([{"name": "blue"}, {"name": "green"}]))
    cur = {"pods": {}, "held": {ipaddress.ip_address("10.244.1.2"): "red", ipaddress.ip_address("10.244.1.4"): "x"}}
    assert _pods.assign_addresses(want, cur) == {"blue": ["10.244.1.3/24"], "green": ["10.244.1.5/24"]}


def test_free_addresses_are_needed_only_for_pods_without_one():
    given = _pods.validate(params([{"name": "red", "address": "10.244.1.2"}]))
    assert not _pods.needs_free_address(given, {"pods": {}})
    kept = _pods.validate(params([{"name": "red"}]))
    assert not _pods.needs_free_address(kept, converged_cur())
    assert _pods.needs_free_address(kept, {"pods": {"red": {"exists": False}}})


def test_plan_pods_hands_out_no_address_another_namespace_holds():
    want = _pods.validate(params([{"name": "blue"}]))
    plan = _pods.plan_pods(want, {"host_links": {"cni0": BRIDGE}, "pods": {"blue": {"exists": False}},
                                  "held": {"10.244.1.2": "red"}})
    assert plan.details["pods"][0]["address"] == "10.244.1.3/24"


# -------------------------------------------------- whose veth it is
def located(cur, netns, peer_name="eth0", seen=True):
    cur["pods"]["red"]["peer_at"] = {"seen": seen, "netns": netns if seen else None,
                                     "link": dict(cur["pods"]["red"]["links"]["eth0"], name=peer_name) if seen else None}
    return cur


@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_veth_of_the_pods_name_whose_peer_is_elsewhere_is_refused(state):
    want = _pods.validate(params([{"name": "red"}], state=state))
    cur = located(converged_cur(), "cni-4f2a")
    with pytest.raises(ValidationError) as err:
        _pods.plan_pods(want, cur)
    assert str(err.value).startswith("name: 'veth-red' is a veth whose peer eth0 is in namespace cni-4f2a, "
                                     "not eth0 in namespace red")


def test_the_pods_own_veth_is_converged_and_removed():
    want = _pods.validate(params([{"name": "red"}]))
    assert _pods.plan_pods(want, located(converged_cur(), "red")).actions == []
    want = _pods.validate(params([{"name": "red"}], state="absent"))
    plan = _pods.plan_pods(want, located(converged_cur(), "red"))
    assert [(a.op, a.name) for a in plan.actions] == [("link_del", "veth-red"), ("netns_del", "red")]


def test_a_veth_whose_peer_is_lost_is_made_again():
    """The pod's namespace was made again while a process held the old one: the peer is out of sight."""
    want = _pods.validate(params([{"name": "red"}]))
    cur = located(converged_cur(), None, seen=False)
    cur["pods"]["red"] = {"exists": False, "peer_at": cur["pods"]["red"]["peer_at"]}
    plan = _pods.plan_pods(want, cur)
    assert [a.op for a in plan.actions][:3] == ["netns_add", "link_del", "veth_add"]


def test_a_foreign_blackhole_route_in_the_pod_is_a_conflict():
    want = _pods.validate(params([{"name": "red"}]))
    cur = converged_cur()
    cur["pods"]["red"]["routes"] = [{"dst": "default", "family": 4, "via": None, "dev": None, "metric": 0,
                                     "proto": 149, "type": "blackhole"}]
    with pytest.raises(ValidationError) as err:
        _pods.plan_pods(want, cur)
    assert "blackhole default metric 0" in str(err.value)


# ------------------------------------------------ dual-stack and IPv6-only pods
DUAL = ["10.244.1.0/24", "fd00:10:244:1::/64"]


@pytest.mark.parametrize("pods, kw, message", [
    ([{"name": "red"}], {"pod_cidrs": DUAL, "pod_cidr": "10.244.1.0/24"}, "pod_cidrs: "),
    ([{"name": "red"}], {"pod_cidr": None}, "pod_cidr: null is required (or pod_cidrs"),
    ([{"name": "red"}], {"pod_cidr": None, "pod_cidrs": ["10.244.1.0/24", "10.245.1.0/24"]},
     "pod_cidrs[1]: '10.245.1.0/24' is a second IPv4 prefix (also 10.244.1.0/24): one per address family"),
    ([{"name": "red"}], {"pod_cidr": None, "pod_cidrs": ["fd00::/16"]}, "pod_cidrs[0]: 'fd00::/16' is wider than /32"),
    ([{"name": "red", "address": "fd00:10:244:1::2"}], {},
     "pods[0].address: 'fd00:10:244:1::2' is an IPv6 address but the pod CIDRs (10.244.1.0/24) have no IPv6 prefix"),
    ([{"name": "red", "addresses": ["10.244.1.2", "10.244.1.3"]}], {"pod_cidr": None, "pod_cidrs": DUAL},
     "pods[0].addresses[1]: '10.244.1.3' is a second IPv4 address (also 10.244.1.2): one per address family"),
    ([{"name": "red", "addresses": ["fd00:10:244:1::1"]}], {"pod_cidr": None, "pod_cidrs": DUAL},
     "pods[0].addresses[0]: 'fd00:10:244:1::1' is the gateway"),
    ([{"name": "a", "addresses": ["fd00:10:244:1::5"]}, {"name": "b", "address": "fd00:10:244:1::5"}],
     {"pod_cidr": None, "pod_cidrs": DUAL}, "pods[1].address: 'fd00:10:244:1::5' is used twice (also pods[0])"),
    ([{"name": "red"}], {"pod_cidr": None, "pod_cidrs": DUAL, "gateway": "fd00:10:245::1"},
     "gateway: 'fd00:10:245::1' is not a host address of pod_cidrs[0] 10.244.1.0/24 or pod_cidrs[1] fd00:10:244:1::/64"),
])
def test_dual_stack_validate_refuses(pods, kw, message):
    with pytest.raises(ValidationError) as err:
        _pods.validate(params(pods, **kw))
    assert str(err.value).startswith(message)


def test_dual_stack_pod_gets_an_address_of_each_family_in_the_order_given():
    want = _pods.validate(params([{"name": "red", "addresses": ["fd00:10:244:1::9"]}, {"name": "blue"}],
                                 pod_cidr=None, pod_cidrs=list(reversed(DUAL))))
    assert [str(c) for c in want["pod_cidrs"]] == ["fd00:10:244:1::/64", "10.244.1.0/24"]
    assert [str(g) for g in want["gateways"]] == ["fd00:10:244:1::1", "10.244.1.1"]
    assert _pods.assign_addresses(want, {"pods": {}}) == {
        "red": ["fd00:10:244:1::9/64", "10.244.1.2/24"], "blue": ["fd00:10:244:1::2/64", "10.244.1.3/24"]}


def test_plan_new_dual_stack_pod():
    """One MAC (from the IPv4 address), both addresses without DAD for IPv6, no RAs, a default route per family."""
    want = _pods.validate(params([{"name": "red", "addresses": ["10.244.1.2", "fd00:10:244:1::2"]}],
                                 pod_cidr=None, pod_cidrs=DUAL))
    plan = _pods.plan_pods(want, {"host_links": {"cni0": BRIDGE}, "pods": {"red": {"exists": False}}})
    assert plan.actions[1].args["peer_mac"] == "0a:58:0a:f4:01:02"
    sysctl = [a for a in plan.actions if a.op == model.Op.SYSCTL]
    assert [(a.ns, a.args["path"], a.args["value"]) for a in sysctl] == [
        ("red", "/proc/sys/net/ipv6/conf/eth0/accept_ra", "0"), ("red", "/proc/sys/net/ipv6/conf/eth0/accept_dad", "0")]
    adds = [a for a in plan.actions if a.op == model.Op.ADDR_ADD and a.ns == "red"]
    assert [(a.args["address"], a.args.get("nodad"), a.args.get("broadcast")) for a in adds] == [
        ("10.244.1.2/24", None, "10.244.1.255"), ("fd00:10:244:1::2/64", True, None)]
    assert describe_all(plan.actions)[-2:] == [
        "add route default via 10.244.1.1 metric 0 in namespace red",
        "add route default via fd00:10:244:1::1 metric 1024 in namespace red"]
    assert plan.details["pods"][0]["addresses"] == ["10.244.1.2/24", "fd00:10:244:1::2/64"]
    assert plan.details["pods"][0]["gateways"] == ["10.244.1.1", "fd00:10:244:1::1"]


def test_dual_stack_pod_converged_is_empty_and_an_ipv4_pod_gains_ipv6():
    host = link("veth-red", ifindex=7, master="cni0", link=2, link_netnsid=0)
    peer = link("eth0", ifindex=2, link=7, link_netnsid=0, addresses=["10.244.1.2/24", "fd00:10:244:1::2/64"])
    routes = [{"dst": "default", "family": 4, "via": "10.244.1.1", "dev": "eth0", "metric": 0, "proto": 149},
              {"dst": "default", "family": 6, "via": "fd00:10:244:1::1", "dev": "eth0", "metric": 1024, "proto": 149}]
    cur = {"host_links": {"cni0": BRIDGE, "veth-red": host},
           "pods": {"red": {"exists": True, "links": {"eth0": peer, "lo": link("lo", None)}, "routes": routes}}}
    want = _pods.validate(params([{"name": "red"}], pod_cidr=None, pod_cidrs=DUAL))
    assert _pods.plan_pods(want, cur).actions == []
    # The IPv4-only pod of before: it keeps its address and MAC, gains the IPv6 address and route.
    cur4 = converged_cur()
    plan = _pods.plan_pods(want, cur4)
    assert describe_all(plan.actions) == [
        "add address fd00:10:244:1::2/64 to eth0 in namespace red",
        "add route default via fd00:10:244:1::1 metric 1024 in namespace red"]


def test_ipv6_only_pods():
    want = _pods.validate(params([{"name": "red"}, {"name": "blue", "address": "fd00:10:244:1::a"}],
                                 pod_cidr="fd00:10:244:1::/64"))
    plan = _pods.plan_pods(want, {"host_links": {"cni0": BRIDGE}, "pods": {}})
    assert [p["addresses"] for p in plan.details["pods"]] == [["fd00:10:244:1::2/64"], ["fd00:10:244:1::a/64"]]
    veths = [a for a in plan.actions if a.op == model.Op.VETH_ADD]
    assert [a.args["peer_mac"] for a in veths] == ["0a:58:00:00:00:02", "0a:58:00:00:00:0a"]
    assert "add route default via fd00:10:244:1::1 metric 1024 in namespace blue" in describe_all(plan.actions)
