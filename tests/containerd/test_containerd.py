# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pods on the podnet network, started and ended through the CRI as kubelet does it.

containerd's CRI plugin calls the plugin chain of the conflist (podnet, then
portmap) through go-cni on RunPodSandbox and StopPodSandbox; these tests look
at what a pod gets (an address of the node's pod CIDR, its gateway, its peers,
its hostPort) and at what is left after its end (nothing). See conftest.py and
daemon.py for the daemon and the node.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time

import pytest

from ansible_collections.podnet.mesh.tests.containerd import cri, daemon


def pod_addresses(node, pods, network):
    addresses = [pod.ip for pod in pods]
    assert len(set(addresses)) == len(pods), "pods share addresses: %s" % addresses
    for address in addresses:
        assert ipaddress.ip_address(address) in network.subnet, "%s is outside %s" % (address, network.subnet)
        assert address != network.gateway
    return addresses


def test_sandboxes_get_distinct_addresses_of_the_pod_cidr(node):
    pods = [node.run_pod("addr-%d" % index) for index in range(3)]
    addresses = pod_addresses(node, pods, node.podnet)
    listed = dict((s["id"], s) for s in node.cri.list_pod_sandbox(labels={"podnet.test/run": node.tag}))
    for pod in pods:
        assert listed[pod.id]["state"] == cri.SANDBOX_READY and listed[pod.id]["runtime_handler"] == daemon.PODNET
        assert pod.status["metadata"]["name"] == pod.name
        # The address in the pod is the one the CRI reports.
        out = pod.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert "inet %s/%d " % (pod.ip, node.podnet.subnet.prefixlen) in out, out
    # The IPAM state names containerd's sandboxes and the namespaces it made under its state directory.
    assert node.reservations() == sorted(addresses)
    state = os.path.join(node.podnet.conflist["plugins"][0]["ipam"]["dataDir"], node.podnet.name)
    for pod in pods:
        with open(os.path.join(state, pod.ip)) as handle:
            owner = json.load(handle)
        assert owner["containerID"] == pod.id and owner["ifname"] == "eth0"
        assert owner["netns"] == pod.netns_path
        assert pod.netns_path.startswith(os.path.join(node.dir, "state") + "/")


def test_pods_reach_each_other_and_the_gateway(node):
    first, second = [node.run_pod("ping-%d" % index) for index in range(2)]
    for pod, other in ((first, second), (second, first)):
        for target in (other.ip, node.podnet.gateway):
            out = pod.ping(target)
            assert out.returncode == 0, "%s (%s) cannot reach %s: %s%s" % (pod.name, pod.ip, target, out.stdout, out.stderr)
    bridge = node.bridge(node.podnet)
    for pod in (first, second):
        veth, _mac = pod.host_veth()
        assert [link.get("master") for link in node.links() if link["ifname"] == veth] == [bridge["ifname"]]


def fetch_script(address, port, timeout=10.0):
    """A Python program that prints the line a TCP server at address:port sends (retried until it answers)."""
    script = ("import socket,sys,time\n"
              "end=time.time()+%r\n"
              "while True:\n"
              "    try:\n"
              "        s=socket.create_connection((%r,%d),timeout=2); s.settimeout(2)\n"
              "        data=s.recv(100)\n"
              "        if data: print(data.decode().strip()); break\n"
              "    except OSError as e:\n"
              "        if time.time()>end: sys.exit('%%s:%d: %%s' %% (%r,e))\n"
              "    time.sleep(0.1)\n" % (timeout, address, port, port, address))
    return script


@pytest.mark.parametrize("handler", [daemon.PODNET, daemon.REFERENCE])
def test_host_port_through_chained_portmap(node, handler):
    """A hostPort of the pod answers at the node's address, for a client in another namespace."""
    network = node.networks[handler]
    assert [plugin["type"] for plugin in network.conflist["plugins"]][1:] == ["portmap"]
    pod = node.run_pod("hostport", handler, port_mappings=[(cri.TCP, 8080, 30080, "")])
    assert ipaddress.ip_address(pod.ip) in network.subnet
    # A busybox container in the pod serves one line per connection on the container port.
    container = node.run_container(pod, "server", ["/bin/sh", "-c",
                                                   "while true; do echo served-by-$(hostname) | nc -l -p 8080; done"])
    assert node.cri.container_status(container)["state"] == cri.CONTAINER_RUNNING
    out = node.in_client(["python3", "-c", fetch_script(daemon.NODE_IP, 30080)], check=False, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "served-by-hostport", (
        "hostPort 30080 of %s (%s) not reachable at %s from the client namespace: %s%s\nnat table:\n%s"
        % (handler, pod.ip, daemon.NODE_IP, out.stdout, out.stderr, node.in_node(["iptables-save", "-t", "nat"]).stdout))
    node.remove_pod(pod)
    # portmap's DEL (chained after the network's) removed its rules.
    assert ":30080" not in node.in_node(["iptables-save", "-t", "nat"]).stdout


def test_twelve_sandboxes_at_once_get_distinct_addresses(node):
    pods = node.run_pods(["par-%02d" % index for index in range(12)])
    addresses = pod_addresses(node, pods, node.podnet)
    assert node.reservations() == sorted(addresses)
    veths = [pod.host_veth()[0] for pod in pods]
    masters = dict((link["ifname"], link.get("master")) for link in node.links())
    assert all(masters[veth] == node.podnet.bridge for veth in veths), masters
    # Every pod reaches the gateway and the pod started last reaches the first.
    failed = [pod.name for pod in pods if pod.ping(node.podnet.gateway).returncode != 0]
    assert not failed, "no answer from the gateway %s in %s" % (node.podnet.gateway, failed)
    assert pods[-1].ping(pods[0].ip).returncode == 0


def test_stop_and_remove_leave_nothing(node):
    pods = [node.run_pod("gone-%d" % index) for index in range(2)]
    veths = [pod.host_veth()[0] for pod in pods]
    assert set(veths) <= set(node.host_veths())
    daemon_root = "/proc/%d/root" % node.proc.pid
    assert all(os.path.exists(daemon_root + pod.netns_path) for pod in pods)
    # StopPodSandbox alone releases the network (kubelet removes the sandbox later).
    node.cri.stop_pod_sandbox(pods[0].id)
    assert pods[0].ip not in node.reservations(), "StopPodSandbox left the address of %s reserved" % pods[0].name
    assert veths[0] not in node.host_veths()
    assert pods[1].ip in node.reservations() and veths[1] in node.host_veths()
    status = node.cri.pod_sandbox_status(pods[0].id)["status"]
    assert status["state"] == cri.SANDBOX_NOTREADY
    for pod in pods:
        node.remove_pod(pod)
    assert node.reservations() == []
    assert node.host_veths() == [], node.host_veths()
    assert not any(os.path.exists(daemon_root + pod.netns_path) for pod in pods)
    assert not any(os.path.exists("/proc/%d" % pod.pid) for pod in pods)
    assert node.cri.list_pod_sandbox(labels={"podnet.test/run": node.tag}) == []


PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


def test_a_pod_deletion_causes_no_gateway_outage(node):
    """Removing a pod never changes the gateway's MAC under the other pods' ARP caches.

    A Linux bridge whose MAC was not set takes the lowest MAC of its ports:
    removing the pod whose host veth has it changes the gateway's MAC, and the
    other pods, whose ARP caches hold the old one, lose the gateway until their
    entries expire (seconds).
    """
    pods = [node.run_pod("gw-%d" % index) for index in range(3)]
    macs = dict((pod.id, pod.host_veth()[1]) for pod in pods)
    victim = min(pods, key=lambda pod: bytes.fromhex(macs[pod.id].replace(":", "")))
    others = [pod for pod in pods if pod is not victim]
    before = node.bridge(node.podnet)["address"]
    for pod in others:
        assert pod.ping(node.podnet.gateway).returncode == 0  # ARP entries for the gateway in place
    count, interval = 45, 0.1
    pingers = [pod.popen(["ping", "-n", "-i", str(interval), "-c", str(count), "-W", "1", node.podnet.gateway],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for pod in others]
    time.sleep(1.0)
    node.remove_pod(victim)
    after = node.bridge(node.podnet)["address"]
    results = []
    for pod, pinger in zip(others, pingers):
        output = pinger.communicate(timeout=count * interval + 15)[0]
        match = PING_SUMMARY.search(output)
        assert match, output
        results.append((pod.name, int(match.group(1)), int(match.group(2))))
    lost = [(name, sent - received, sent) for name, sent, received in results if received < sent]
    assert not lost, (
        "pods lost pings to the gateway %s after the pod whose host veth had the lowest MAC (%s) was removed: %s; "
        "bridge %s MAC before %s, after %s"
        % (node.podnet.gateway, macs[victim.id], ", ".join("%s %d of %d" % item for item in lost),
           node.podnet.bridge, before, after))
    assert before == after, "bridge MAC changed from %s to %s (no ping lost though)" % (before, after)


def test_a_dual_stack_sandbox_gets_an_address_of_each_family(node):
    """RunPodSandbox on a dual-stack conflist (ipam.ranges): the CRI reports both addresses, pods reach each other
    and the gateway over IPv6 as over IPv4, and Stop/Remove leave nothing."""
    network = node.networks[daemon.DUAL]
    ranges = network.conflist["plugins"][0]["ipam"]["ranges"]
    assert ranges == [[{"subnet": str(network.subnet)}], [{"subnet": str(network.subnet6)}]]
    pods = [node.run_pod("dual-%d" % index, daemon.DUAL) for index in range(2)]
    for pod in pods:
        # network.ip is the IPv4 address, additional_ips the IPv6 one (containerd prefers IPv4 as the primary).
        assert ipaddress.ip_address(pod.ip) in network.subnet, pod.status["network"]
        assert len(pod.additional_ips) == 1 and ipaddress.ip_address(pod.additional_ips[0]) in network.subnet6, \
            pod.status["network"]
        out = pod.run(["ip", "-o", "addr", "show", "dev", "eth0", "scope", "global"]).stdout
        assert "inet %s/%d " % (pod.ip, network.subnet.prefixlen) in out, out
        assert "inet6 %s/%d " % (pod.additional_ips[0], network.subnet6.prefixlen) in out, out
        assert "tentative" not in out, out
        routes = pod.run(["ip", "-6", "route", "show", "default"]).stdout
        assert routes.startswith("default via %s dev eth0 proto 149 metric 1024" % network.gateway6), routes
    first, second = pods
    for pod, other in ((first, second), (second, first)):
        for target in (other.additional_ips[0], network.gateway6, other.ip, network.gateway):
            out = pod.ping(target)
            assert out.returncode == 0, "%s (%s) cannot reach %s: %s%s" % (
                pod.name, pod.additional_ips, target, out.stdout, out.stderr)
    assert node.reservations(network) == sorted([pod.ip for pod in pods]) + sorted(p.additional_ips[0] for p in pods)
    veths = [pod.host_veth()[0] for pod in pods]
    bridge = node.bridge(network)
    assert [link.get("master") for link in node.links() if link["ifname"] in veths] == [bridge["ifname"]] * 2
    for pod in pods:
        node.remove_pod(pod)
    assert node.reservations(network) == []
    assert not set(veths) & set(node.host_veths())
    assert node.cri.list_pod_sandbox(labels={"podnet.test/run": node.tag}) == []
