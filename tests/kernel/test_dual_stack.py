# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Dual-stack and IPv6-only pods against the real kernel: the bridge and pods modules give
every pod one address per family and a default route per family, IPv6 addresses are usable
at once (no DAD), pod interfaces take no router advertisements, and a rerun changes nothing.

Modules run in this process (their main(), as Ansible would run them), inside the test's
private network namespace; the pods are namespaces the test makes and removes.
"""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.modules import bridge, pod_route, pods
from ansible_collections.podnet.mesh.tests.helpers.namespaces import in_ns, pings

V4, V6 = "10.97.1.0/24", "fd00:97:1::/64"
# IFA_F_TENTATIVE: an address still in duplicate address detection, not usable yet.
IFA_F_TENTATIVE = 0x40


def addresses_with_flags(name, ifname="eth0", scopes=(0,)):
    """{address: IFA flags} of the addresses of ifname in namespace name (default: the global ones)."""
    from pyroute2 import NetNS
    with NetNS(name, flags=0) as ns:
        index = ns.link_lookup(ifname=ifname)[0]
        return dict(("%s/%d" % (m.get_attr("IFA_ADDRESS"), m["prefixlen"]), m.get_attr("IFA_FLAGS") or m["flags"])
                    for m in ns.get_addr(index=index) if m["scope"] in scopes)


def routes6(name):
    """The IPv6 main-table routes of namespace name as (dst, gateway, device, proto)."""
    from pyroute2 import NetNS
    with NetNS(name, flags=0) as ns:
        names = dict((link["index"], link.get_attr("IFLA_IFNAME")) for link in ns.get_links())
        return [("%s/%d" % (r.get_attr("RTA_DST") or "::", r["dst_len"]), r.get_attr("RTA_GATEWAY"),
                 names.get(r.get_attr("RTA_OIF")), r["proto"]) for r in ns.get_routes(family=10, table=254)]


def sysctl(name, key):
    return in_ns(name, "cat", "/proc/sys/" + key.replace(".", "/")).stdout.strip()


@pytest.fixture
def dual_bridge(module, prefix, host_links):
    name = prefix + "b"
    host_links.append(name)
    kind, result = module(bridge, {"name": name, "addresses": ["10.97.1.1/24", "fd00:97:1::1/64"]})
    assert kind == "exit", result
    # The MAC derives from the IPv4 gateway, as an IPv4-only bridge's does.
    assert result["bridge"]["mac"] == "0a:58:0a:61:01:01"
    return name


def test_dual_stack_pods_reach_each_other_in_both_families_at_once(module, named_ns, prefix, dual_bridge):
    red, blue = named_ns("r", create=False), named_ns("u", create=False)
    args = {"bridge": dual_bridge, "pod_cidrs": [V4, V6], "pods": [
        {"name": red, "veth": prefix + "vr", "addresses": ["10.97.1.2", "fd00:97:1::2"]},
        {"name": blue, "veth": prefix + "vu"}]}
    check_kind, predicted = module(pods, dict(args, _ansible_check_mode=True))
    assert check_kind == "exit" and predicted["changed"], predicted
    kind, result = module(pods, args)
    assert kind == "exit" and result["changed"], result
    assert result["actions"] == predicted["actions"]
    assert [p["addresses"] for p in result["pods"]] == [["10.97.1.2/24", "fd00:97:1::2/64"],
                                                        ["10.97.1.3/24", "fd00:97:1::3/64"]]
    for pod in (red, blue):
        flags = addresses_with_flags(pod)
        assert sorted(flags) == sorted(p["addresses"] for p in result["pods"] if p["name"] == pod)[0]
        assert [a for a, f in flags.items() if f & IFA_F_TENTATIVE] == []
        assert sysctl(pod, "net.ipv6.conf.eth0.accept_ra") == "0"
        # The link-local address the kernel made when eth0 came up ran no DAD either (accept_dad 0).
        assert sysctl(pod, "net.ipv6.conf.eth0.accept_dad") == "0"
        link_local = addresses_with_flags(pod, scopes=(253,))
        assert [a for a in link_local if a.startswith("fe80:")] and not [
            a for a, f in link_local.items() if f & IFA_F_TENTATIVE], link_local
    # Usable at once: no wait for duplicate address detection.
    assert pings(red, "fd00:97:1::3") and pings(red, "10.97.1.3")
    assert pings(blue, "fd00:97:1::1") and pings(blue, "fd00:97:1::2")
    assert ("::/0", "fd00:97:1::1", "eth0", 149) in routes6(red)
    again_kind, again = module(pods, args)
    assert again_kind == "exit" and again["changed"] is False and again["actions"] == [], again
    kind, gone = module(pods, dict(args, state="absent"))
    assert kind == "exit" and gone["changed"]


def test_ipv6_only_pods_and_an_ipv4_pod_that_gains_ipv6(module, named_ns, prefix, host_links):
    name = prefix + "b6"
    host_links.append(name)
    kind, result = module(bridge, {"name": name, "addresses": ["fd00:97:1::1/64"]})
    assert kind == "exit" and result["bridge"]["mac"] == "0a:58:00:00:00:01", result
    red = named_ns("r", create=False)
    kind, result = module(pods, {"bridge": name, "pod_cidr": V6, "pods": [{"name": red, "veth": prefix + "vr"}]})
    assert kind == "exit" and result["pods"][0]["addresses"] == ["fd00:97:1::2/64"], result
    assert pings(red, "fd00:97:1::1")
    # The same bridge gains IPv4; the pod keeps its IPv6 address and MAC and gains an IPv4 one.
    kind, result = module(bridge, {"name": name, "addresses": ["fd00:97:1::1/64", "10.97.1.1/24"],
                                   "mac": "0a:58:00:00:00:01"})
    assert kind == "exit", result
    kind, result = module(pods, {"bridge": name, "pod_cidrs": [V6, V4], "pods": [{"name": red, "veth": prefix + "vr"}]})
    assert kind == "exit" and result["pods"][0]["addresses"] == ["fd00:97:1::2/64", "10.97.1.2/24"], result
    assert [a for a in result["actions"] if "veth" in a and "create" in a] == []
    assert pings(red, "10.97.1.1") and pings(red, "fd00:97:1::1")
    module(pods, {"bridge": name, "pod_cidrs": [V6, V4], "pods": [{"name": red, "veth": prefix + "vr"}],
                  "state": "absent"})


def test_pod_route_takes_a_link_local_gateway_with_its_device(module, named_ns, prefix, dual_bridge):
    red = named_ns("r", create=False)
    kind, result = module(pods, {"bridge": dual_bridge, "pod_cidrs": [V4, V6],
                                 "pods": [{"name": red, "veth": prefix + "vr"}]})
    assert kind == "exit", result
    routes = [{"dst": "fd00:98::/64", "via": "fe80::1", "dev": "eth0"}]
    kind, result = module(pod_route, {"netns": red, "routes": routes})
    assert kind == "exit" and result["changed"], result
    assert ("fd00:98::/64", "fe80::1", "eth0", 149) in routes6(red)
    kind, result = module(pod_route, {"netns": red, "routes": routes})
    assert kind == "exit" and result["changed"] is False, result
    kind, result = module(pod_route, {"netns": red, "routes": [{"dst": "fd00:98::/64", "via": "fe80::1"}]})
    assert kind == "fail" and "is a link-local address" in result["msg"], result
    module(pods, {"bridge": dual_bridge, "pod_cidrs": [V4, V6], "pods": [{"name": red, "veth": prefix + "vr"}],
                  "state": "absent"})
