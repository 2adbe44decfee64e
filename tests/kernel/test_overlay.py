# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The overlay module against the real kernel: a VXLAN tunnel between two "nodes" with static
entries only, pod traffic through it, idempotence, check and diff, purge, ownership.

Node A is the test's own private namespace (the module runs here, as on a node); node B is a
namespace the test makes, configured through the same planner and kernel layer. Their underlay
is a veth pair (192.168.77.11 and .12); each has a bridge holding its pod gateway (10.244.1.1,
10.244.2.1); a pod namespace on A (10.244.1.2) pings B's gateway through the tunnel.
"""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Action
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import overlay as overlay_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.plugins.modules import bridge, overlay, pod_route, pods
from ansible_collections.podnet.mesh.tests.helpers.namespaces import in_ns

A_IP, B_IP = "192.168.77.11", "192.168.77.12"


def in_b(session, node_b, actions):
    """Apply actions planned for 'this node' in node B's namespace."""
    session.apply([Action(a.op, node_b, a.name, a.args) for a in actions])


def tx_packets(name):
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        return ipr.get_links(ipr.link_lookup(ifname=name)[0])[0].get_attr("IFLA_STATS64")["tx_packets"]


@pytest.fixture
def nodes(session, named_ns, prefix, host_links, module):
    """Underlay A <-> B, a gateway bridge on each, node B's overlay and routes towards A."""
    node_b = named_ns("b")
    underlay, gateway = prefix + "u", prefix + "g"
    host_links.extend([underlay, gateway, "podnet.vxlan"])
    session.apply([
        Action("veth_add", None, underlay, {"peer": "u0", "peer_ns": node_b}),
        Action("addr_add", None, underlay, {"address": A_IP + "/24"}),
        Action("link_set", None, underlay, {"up": True}),
        Action("addr_add", node_b, "u0", {"address": B_IP + "/24"}),
        Action("link_set", node_b, "u0", {"up": True}),
        Action("link_set", node_b, "lo", {"up": True}),
        Action("bridge_add", node_b, "g0", {}),
        Action("addr_add", node_b, "g0", {"address": "10.244.2.1/24"}),
        Action("link_set", node_b, "g0", {"up": True}),
    ])
    assert module(bridge, {"name": gateway, "addresses": ["10.244.1.1/24"]})[0] == "exit"
    # Node A forwards its pods' traffic (the test's own private namespace).
    with open("/proc/sys/net/ipv4/ip_forward", "w") as sink:
        sink.write("1\n")
    want_b = overlay_plan.validate({"local": B_IP, "peers": [{"node_ip": A_IP, "vtep": ["10.244.1.0"]}],
                                    "state": "present"})
    in_b(session, node_b, overlay_plan.plan_overlay(want_b, {"link": None}).actions)
    session.apply([Action("route_add", node_b, "10.244.1.0/24", {
        "route": {"dst": "10.244.1.0/24", "family": 4, "via": "10.244.1.0", "dev": "podnet.vxlan", "metric": 0,
                  "onlink": True}, "table": 254, "proto": 149})])
    return {"b": node_b, "gateway": gateway}


def test_pod_traffic_crosses_the_tunnel_and_a_rerun_changes_nothing(module, nodes, named_ns, prefix):
    peers = [{"node_ip": B_IP, "vtep": ["10.244.2.0"]}]
    kind, predicted = module(overlay, {"local": A_IP, "peers": peers, "_ansible_check_mode": True,
                                       "_ansible_diff": True})
    assert kind == "exit" and predicted["changed"] and predicted["diff"]["before"]["state"] == "absent", predicted
    kind, result = module(overlay, {"local": A_IP, "peers": peers})
    assert kind == "exit" and result["actions"] == predicted["actions"], result
    assert result["overlay"]["fdb"] == ["0e:58:c0:a8:4d:0c dst 192.168.77.12"]
    assert result["overlay"]["neighbours"] == ["10.244.2.0 lladdr 0e:58:c0:a8:4d:0c"]
    assert result["overlay"]["mac"] == "0e:58:c0:a8:4d:0b" and result["overlay"]["vni"] == 1
    kind, again = module(overlay, {"local": A_IP, "peers": peers})
    assert kind == "exit" and again["changed"] is False and again["actions"] == [], again
    routes = [{"dst": "10.244.2.0/24", "via": "10.244.2.0", "dev": "podnet.vxlan", "onlink": True}]
    kind, result = module(pod_route, {"routes": routes})
    assert kind == "exit" and result["changed"], result
    assert module(pod_route, {"routes": routes})[1]["changed"] is False
    pod = named_ns("p", create=False)
    kind, result = module(pods, {"bridge": nodes["gateway"], "pod_cidr": "10.244.1.0/24",
                                 "pods": [{"name": pod, "veth": prefix + "vp"}]})
    assert kind == "exit", result
    before = tx_packets("podnet.vxlan")
    assert in_ns(pod, "ping", "-c2", "-W2", "10.244.2.1").returncode == 0
    assert tx_packets("podnet.vxlan") >= before + 2  # through the tunnel, not some other way
    module(pods, {"bridge": nodes["gateway"], "pod_cidr": "10.244.1.0/24",
                  "pods": [{"name": pod, "veth": prefix + "vp"}], "state": "absent"})


def test_a_peer_that_left_is_purged_and_absent_removes_the_device(module, nodes):
    peers = [{"node_ip": B_IP, "vtep": ["10.244.2.0", "fd00:10:244:2::"]},
             {"node_ip": "192.168.77.13", "vtep": ["10.244.3.0"]}]
    assert module(overlay, {"local": A_IP, "peers": peers})[0] == "exit"
    kind, result = module(overlay, {"local": A_IP, "peers": peers[:1], "_ansible_diff": True})
    assert kind == "exit" and result["actions"] == [
        "delete forwarding entry 0e:58:c0:a8:4d:0d dst 192.168.77.13 from podnet.vxlan",
        "delete neighbour 10.244.3.0 on podnet.vxlan"], result
    assert result["overlay"]["neighbours"] == ["10.244.2.0 lladdr 0e:58:c0:a8:4d:0c",
                                               "fd00:10:244:2:: lladdr 0e:58:c0:a8:4d:0c"]
    assert module(overlay, {"local": A_IP, "peers": peers[:1]})[1]["changed"] is False
    kind, result = module(overlay, {"state": "absent"})
    assert kind == "exit" and result["actions"] == ["delete link podnet.vxlan"], result
    assert module(overlay, {"state": "absent"})[1]["changed"] is False


def test_a_vxlan_link_of_another_tool_is_left_alone(module, session, host_links):
    host_links.append("podnet.vxlan")
    session.ns(None).ipr.link("add", ifname="podnet.vxlan", kind="vxlan", vxlan_id=9, vxlan_port=4789)
    kind, result = module(overlay, {"local": A_IP, "peers": []})
    assert kind == "fail" and "podnet.mesh did not create" in result["msg"], result
    kind, result = module(overlay, {"state": "absent"})
    assert kind == "fail" and "podnet.mesh did not create" in result["msg"], result
    with _netlink.Session() as fresh:
        assert fresh.ns(None).links(only=["podnet.vxlan"])["podnet.vxlan"]["vxlan"]["vni"] == 9
