# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""podnet through libcni 1.1, as containerd 1.6 and podman's CNI backend run it.

Every test goes through libcni's AddNetworkList, CheckNetworkList,
DelNetworkList and GetNetworkListCachedResult (the Go driver of conftest.py),
podnet alone and chained with Debian's reference plugins portmap, tuning and
bandwidth (containernetworking-plugins 1.1.1, which speak CNI up to 1.0.0).
"""
from __future__ import annotations

import ipaddress
import json
import os
import time

import pytest

# The versions libcni 1.1 and podnet share; podnet also takes 1.1.0, whose results libcni 1.1 cannot parse.
SHARED_VERSIONS = ("0.3.1", "0.4.0", "1.0.0")

LISTENER = """
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 80))
server.listen()
while True:
    conn, peer = server.accept()
    conn.sendall(("hello from the pod to %s" % peer[0]).encode())
    conn.close()
"""
CLIENT = """
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(conn.recv(100).decode())
"""


def veth_of(result):
    """The host end of the veth, as podnet's result lists it (after the bridge, without sandbox)."""
    return result["interfaces"][1]["name"]


def address_of(result):
    return result["ips"][0]["address"]


# ------------------------------------------------------------ ADD, CHECK, DEL
@pytest.mark.parametrize("version", SHARED_VERSIONS)
def test_add_check_del_in_every_shared_version(node, libcni, version):
    pod = node.pod()
    path = node.conflist([node.podnet()], version=version)
    # CNI_ARGS as containerd's CRI plugin sends them.
    args = [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", "web-0"],
            ["K8S_POD_INFRA_CONTAINER_ID", "c1"]]
    out = libcni("add", path, pod, args=args)
    assert out["ok"], out
    result = out["result"]
    assert result["cniVersion"] == version
    assert [i["name"] for i in result["interfaces"]][::2] == [node.bridge, "eth0"]
    assert result["interfaces"][2]["sandbox"] == pod
    assert ipaddress.ip_interface(address_of(result)).network == ipaddress.ip_network(node.subnet)
    # The kernel agrees, and libcni cached the result.
    eth0 = node.links(pod)["eth0"]
    assert eth0["address"] == result["interfaces"][2]["mac"] and "UP" in eth0["flags"]
    assert node.links()[veth_of(result)]["master"] == node.bridge
    assert node.default_routes(pod) == [(node.gateway, "eth0")]
    assert libcni("cached", path, pod) == {"ok": True, "result": result}
    check = libcni("check", path, pod, args=args)
    if version == "0.3.1":
        # libcni refuses CHECK itself: the plugin is not run.
        assert check["text"] == 'configuration version "0.3.1" does not support the CHECK command'
    else:
        assert check == {"ok": True, "result": None}
    assert libcni("del", path, pod, args=args) == {"ok": True, "result": None}
    assert "eth0" not in node.links(pod) and veth_of(result) not in node.links()
    assert node.reservations() == {}
    assert libcni("cached", path, pod) == {"ok": True, "result": None}


def test_a_1_1_0_configuration_is_wired_but_libcni_1_1_cannot_read_the_result(node, libcni):
    """libcni 1.1 sends cniVersion 1.1.0 as it is; the plugin wires the container and answers in 1.1.0,
    which libcni cannot parse: ADD fails, nothing is cached, and the runtime's DEL after the failed ADD
    (without prevResult) removes the attachment."""
    pod = node.pod()
    path = node.conflist([node.podnet()], version="1.1.0")
    out = libcni("add", path, pod)
    assert out["text"] == 'plugin type="podnet" failed (add): unsupported CNI result version "1.1.0"'
    assert out["error"]["code"] == 0  # libcni's own error, not the plugin's
    assert "eth0" in node.links(pod) and len(node.reservations()) == 1
    assert libcni("cached", path, pod) == {"ok": True, "result": None}
    # CHECK finds no cached result: the plugin gets no prevResult and says so.
    check = libcni("check", path, pod)
    assert check["error"]["code"] == 7 and "prevResult" in check["error"]["msg"], check
    assert libcni("del", path, pod) == {"ok": True, "result": None}
    assert "eth0" not in node.links(pod) and node.reservations() == {}


def test_libcni_1_1_ignores_cniversions_and_sends_cniversion(node, libcni):
    pod = node.pod()
    path = node.conflist([node.podnet()], version="1.0.0", cniVersions=["1.0.0", "1.1.0"])
    out = libcni("add", path, pod)
    assert out["ok"] and out["result"]["cniVersion"] == "1.0.0", out
    assert libcni("check", path, pod)["ok"]
    assert libcni("del", path, pod)["ok"] and node.reservations() == {}


def test_check_uses_the_result_libcni_cached(node, libcni):
    pod = node.pod()
    path = node.conflist([node.podnet()], version="1.0.0")
    result = libcni("add", path, pod)["result"]
    cache = libcni.cache_file(node.prefix)
    with open(cache, encoding="utf-8") as handle:
        cached = json.load(handle)
    assert cached["result"] == result and cached["containerId"] == "c1" and cached["ifName"] == "eth0"
    # A cached result naming another address: CHECK compares the kernel with it, and fails.
    other = str(ipaddress.ip_interface(address_of(result)).ip + 100)
    tampered = json.loads(json.dumps(cached).replace(address_of(result).split("/")[0], other))
    with open(cache, "w", encoding="utf-8") as handle:
        json.dump(tampered, handle)
    check = libcni("check", path, pod)
    assert check["error"]["code"] == 103 and other in check["error"]["msg"], check
    # The cached result as it was: CHECK passes.
    with open(cache, "w", encoding="utf-8") as handle:
        json.dump(cached, handle)
    assert libcni("check", path, pod) == {"ok": True, "result": None}
    # No cached result at all: no prevResult.
    os.unlink(cache)
    check = libcni("check", path, pod)
    assert check["error"]["code"] == 7 and "prevResult" in check["error"]["msg"], check
    assert libcni("del", path, pod)["ok"] and node.reservations() == {}


def test_check_and_del_after_the_conflist_moved_to_another_version(node, libcni):
    """An administrator upgrades the conflist from 0.4.0 to 1.0.0 while a container runs: libcni converts
    the cached 0.4.0 result to 1.0.0 for CHECK and DEL."""
    pod = node.pod()
    path = node.conflist([node.podnet()], version="0.4.0")
    result = libcni("add", path, pod)["result"]
    assert result["cniVersion"] == "0.4.0" and result["ips"][0]["version"] == "4"
    assert node.conflist([node.podnet()], version="1.0.0") == path
    assert libcni("cached", path, pod)["result"]["cniVersion"] == "1.0.0"
    assert libcni("check", path, pod) == {"ok": True, "result": None}
    assert libcni("del", path, pod) == {"ok": True, "result": None}
    assert node.reservations() == {} and "eth0" not in node.links(pod)


def test_del_is_idempotent_and_works_after_the_namespace_is_gone(node, libcni, reference_plugins):
    caps = {"portMappings": [{"hostPort": 18081, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 8000000, "ingressBurst": 800000}}
    path = node.conflist([node.podnet(), {"type": "portmap", "capabilities": {"portMappings": True}},
                          {"type": "bandwidth", "capabilities": {"bandwidth": True}}], version="1.0.0")
    pod = node.pod("p1")
    result = libcni("add", path, pod, caps=caps)["result"]
    assert libcni("del", path, pod, caps=caps) == {"ok": True, "result": None}
    assert libcni("del", path, pod, caps=caps) == {"ok": True, "result": None}
    assert veth_of(result) not in node.links() and node.reservations() == {}
    # The namespace is deleted before DEL (the container is gone): DEL still succeeds, twice.
    pod = node.pod("p2")
    result = libcni("add", path, pod, cid="c2", caps=caps)["result"]
    node.remove_netns(pod)
    assert libcni("del", path, pod, cid="c2", caps=caps) == {"ok": True, "result": None}
    assert libcni("del", path, pod, cid="c2", caps=caps) == {"ok": True, "result": None}
    assert veth_of(result) not in node.links() and node.reservations() == {}
    assert libcni("cached", path, pod, cid="c2") == {"ok": True, "result": None}


# ------------------------------------------------------------ chained with the reference plugins
def connect(node, client, address, port, attempts=30):
    """What a client in namespace client reads from address:port (retried while the listener starts)."""
    for attempt in range(attempts):
        out = node.run_in(client, ["python3", "-c", CLIENT, address, str(port)], timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
        if attempt + 1 < attempts:
            time.sleep(0.2)
    return "no answer: " + out.stderr.strip().splitlines()[-1]


def test_portmap_forwards_a_host_port_to_the_pod(node, libcni, reference_plugins):
    # A client in a namespace of its own, linked to the node: 192.0.2.2 -> the node's 192.0.2.1.
    client = node.netns("c")
    node.ip("link", "add", "cl0", "type", "veth", "peer", "name", "cl1", "netns", client)
    node.ip("addr", "add", "192.0.2.1/24", "dev", "cl0")
    node.ip("link", "set", "cl0", "up")
    node.ip("addr", "add", "192.0.2.2/24", "dev", "cl1", ns=client)
    node.ip("link", "set", "cl1", "up", ns=client)
    pod = node.pod()
    path = node.conflist([node.podnet(), {"type": "portmap", "capabilities": {"portMappings": True}}])
    caps = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}
    out = libcni("add", path, pod, caps=caps)
    assert out["ok"], out
    node.start_in(pod, ["python3", "-c", LISTENER])
    assert connect(node, client, "192.0.2.1", 18080) == "hello from the pod to 192.0.2.2"
    # CHECK runs podnet, then portmap. Debian's portmap 1.1.1 fails CHECK for a container without IPv6
    # ("could not check ipv6 dnat: chain ... not found"), a limitation of its own: podnet passed before it.
    check = libcni("check", path, pod, caps=caps)
    assert check["ok"] or check["text"].startswith("could not check ipv6 dnat"), check
    assert libcni("del", path, pod, caps=caps) == {"ok": True, "result": None}
    # The mapping went with DEL: the node itself answers the port now (nothing listens there).
    assert "refused" in connect(node, client, "192.0.2.1", 18080, attempts=1)


def test_tuning_sets_a_sysctl_and_the_mac_in_the_container(node, libcni, reference_plugins):
    mac = "0a:58:0a:fc:00:99"
    pod = node.pod()
    path = node.conflist([node.podnet(), {"type": "tuning", "mac": mac, "dataDir": node.tuning_dir,
                                          "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}}])
    out = libcni("add", path, pod)
    assert out["ok"], out
    assert node.links(pod)["eth0"]["address"] == mac
    assert node.run_in(pod, ["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]).stdout.strip() == "1"
    # tuning changed the MAC in the result libcni cached; podnet's CHECK compares the kernel with it.
    assert out["result"]["interfaces"][2]["mac"] == mac
    assert libcni("check", path, pod) == {"ok": True, "result": None}
    assert libcni("del", path, pod) == {"ok": True, "result": None}
    assert node.reservations() == {} and "eth0" not in node.links(pod)


def qdiscs(node, ifname):
    """{kind: message} of the qdiscs of a link in the node's namespace, read with pyroute2."""
    from pyroute2 import NetNS

    with NetNS(node.name) as ns:
        index = ns.link_lookup(ifname=ifname)
        assert index, "no link %s in the node's namespace" % ifname
        return dict((q.get_attr("TCA_KIND"), q) for q in ns.get_qdiscs(index=index[0]))


def test_bandwidth_shapes_the_traffic_of_the_host_end_of_the_veth(node, libcni, reference_plugins):
    pod = node.pod()
    path = node.conflist([node.podnet(), {"type": "bandwidth", "capabilities": {"bandwidth": True}}])
    caps = {"bandwidth": {"ingressRate": 8000000, "ingressBurst": 800000, "egressRate": 16000000,
                          "egressBurst": 1600000}}
    out = libcni("add", path, pod, caps=caps)
    assert out["ok"], out
    veth = veth_of(out["result"])
    # Ingress (towards the container): a tbf qdisc on the host end. Egress: the host end's ingress
    # redirected to an ifb device of the plugin's, shaped by a tbf qdisc there.
    tbf = qdiscs(node, veth).get("tbf")
    assert tbf is not None, "no tbf qdisc on %s: %s" % (veth, sorted(qdiscs(node, veth)))
    assert tbf.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")["rate"] == 8000000 // 8
    assert "ingress" in qdiscs(node, veth)
    [ifb] = [name for name, link in node.links().items() if link.get("linkinfo", {}).get("info_kind") == "ifb"]
    tbf = qdiscs(node, ifb).get("tbf")
    assert tbf is not None and tbf.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")["rate"] == 16000000 // 8
    assert libcni("check", path, pod, caps=caps) == {"ok": True, "result": None}
    assert libcni("del", path, pod, caps=caps) == {"ok": True, "result": None}
    assert veth not in node.links() and ifb not in node.links() and node.reservations() == {}


# ------------------------------------------------------------ two attachments in one container
def second_network(node):
    """Another network on its own bridge and subnet, for a second interface in the same container."""
    return node.conflist([node.podnet(bridge=node.prefix + "c",
                                      ipam={"subnet": "10.252.1.0/24", "dataDir": node.data_dir})],
                         name=node.prefix + "x")


def preferred_default(node, pod):
    """(gateway, device) of the default route the container uses: the lowest metric."""
    routes = [r for r in node.routes(pod) if r.get("dst") == "default"]
    if not routes:
        return None
    best = min(routes, key=lambda r: r.get("metric", 0))
    return best.get("gateway"), best.get("dev")


def test_a_second_attachment_leaves_the_default_route_to_the_first(node, libcni):
    pod = node.pod()
    first = node.conflist([node.podnet()])
    second = second_network(node)
    assert libcni("add", first, pod)["ok"]
    out = libcni("add", second, pod, ifname="net1")
    assert out["ok"], out
    assert preferred_default(node, pod) == (node.gateway, "eth0"), (
        "the second attachment (net1) took over the container's default route: %s" % node.routes(pod))
    assert libcni("check", first, pod) == {"ok": True, "result": None}
    assert libcni("check", second, pod, ifname="net1") == {"ok": True, "result": None}
    assert libcni("del", second, pod, ifname="net1")["ok"]
    assert preferred_default(node, pod) == (node.gateway, "eth0"), (
        "DEL of the second attachment (net1) left the container without its default route via eth0: %s"
        % node.routes(pod))
    assert libcni("check", first, pod) == {"ok": True, "result": None}
    assert libcni("del", first, pod)["ok"]
    assert preferred_default(node, pod) is None and node.reservations() == {}


def test_check_compares_the_device_of_the_default_route(node, libcni):
    pod = node.pod()
    path = node.conflist([node.podnet()])
    assert libcni("add", path, pod)["ok"]
    # The default route now leaves through another interface, via the same gateway.
    node.ip("link", "add", "d0", "type", "veth", "peer", "name", "d1", ns=pod)
    node.ip("link", "set", "d0", "up", ns=pod)
    node.ip("link", "set", "d1", "up", ns=pod)
    node.ip("route", "replace", "default", "via", node.gateway, "dev", "d0", "onlink", ns=pod)
    check = libcni("check", path, pod)
    assert not check["ok"], "CHECK passed although the default route goes through d0, not eth0: %s" % node.routes(pod)
    assert check["error"]["code"] == 103 and "eth0" in check["error"]["msg"], check
    assert libcni("del", path, pod)["ok"] and node.reservations() == {}


# ------------------------------------------------------------ addresses
def test_addresses_carry_the_subnets_broadcast_address(node, libcni):
    pod = node.pod()
    path = node.conflist([node.podnet()])
    result = libcni("add", path, pod)["result"]
    broadcast = str(ipaddress.ip_network(node.subnet).broadcast_address)
    seen = {}
    for where, ns, ifname in (("the container's eth0", pod, "eth0"), ("the bridge", None, node.bridge)):
        [info] = json.loads(node.ip("-j", "-4", "addr", "show", "dev", ifname, ns=ns))[0]["addr_info"]
        seen[where] = (info["local"], info.get("broadcast"))
    assert seen == {"the container's eth0": (address_of(result).split("/")[0], broadcast),
                    "the bridge": (node.gateway, broadcast)}, "addresses without the broadcast address %s" % broadcast
    assert libcni("del", path, pod)["ok"]
