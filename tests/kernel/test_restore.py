# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""podnet-restore against the real kernel: a node made by the modules, rebooted, restored.

1. The modules (bridge, masquerade with nftables, pod_route, pods), run in this
   process, make a node of the test's own private namespace, with an uplink to a
   peer namespace (so a route via the peer's node IP has a connected subnet):

       node  pntkXup 192.168.77.11/24 --veth-- 192.168.77.12/24  peer ns
       node  bridge pntkXbr 10.244.1.1/24, pods pntkXred (10.244.1.2), pntkXblue (next free)
       node  route 10.244.2.0/24 via 192.168.77.12 proto 149, nftables table ip podnet, ip_forward 1

   What they made is read back (a snapshot), then removed.
2. "Reboot": a fresh named namespace gets the same uplink and nothing else.
3. The restore program, built as the role installs it (one zipapp), runs in that
   namespace with the state file the same options make: the snapshot of the
   restored node must equal the modules' one, and a second run says "no change".

It runs once with the suite's Python and once with the node's /usr/bin/python3
(Debian's pyroute2). Every namespace, link and nftables table is removed after
each test, also when it fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.node import state as node_state
from ansible_collections.podnet.mesh.plugins.modules import bridge, masquerade, pod_route, pods
from ansible_collections.podnet.mesh.tests.helpers.module_runner import run_main, stub_exits

BUILD = os.path.join(os.path.dirname(os.path.abspath(node_state.__file__)), "..", "..", "..", "roles", "cni",
                     "files", "build_podnet.py")
NODE_IP = "192.168.77.11/24"
PEER_IP = "192.168.77.12/24"
CLUSTER = "10.244.0.0/16"
POD_CIDR = "10.244.1.0/24"
PYTHONS = [pytest.param(sys.executable, id="suite-python"), pytest.param("/usr/bin/python3", id="system-python3")]


def _sh(*argv, check=True):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(argv), proc.stderr))
    return proc


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("libexec") / "podnet-restore")
    subprocess.run([sys.executable, BUILD, path, "--entry", "node/main.py"], check=True)
    return path


class Node:
    """The names of one test's node, and how to read it (ns None: this process's namespace)."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.bridge = prefix + "br"
        self.uplink = prefix + "up"
        self.peer = prefix + "peer"
        self.fresh = prefix + "node"
        self.pods = [prefix + "red", prefix + "blue"]
        # Host ends of the pods' veths, as the pods module names them.
        self.veths = {}

    def options(self):
        """The module options the roles give (node_network, mesh_routes, pods) for this node."""
        return {
            "bridge": {"name": self.bridge, "addresses": ["10.244.1.1/24"]},
            "masquerade": {"source": [CLUSTER], "exempt": [CLUSTER], "backend": "nftables", "ip_forward": True},
            "routes": {"routes": [{"dst": "10.244.2.0/24", "via": PEER_IP.split("/", maxsplit=1)[0]}], "purge": True},
            "pods": {"bridge": self.bridge, "pod_cidr": POD_CIDR,
                     "pods": [{"name": self.pods[0], "address": "10.244.1.2"}, {"name": self.pods[1]}]},
        }

    def document(self, pod_result):
        """The state file the persistence role writes: the same options, pod addresses as wired."""
        opts = self.options()
        return {
            "version": node_state.VERSION, "node": self.prefix,
            "masquerade": dict(opts["masquerade"], state="present"),
            "bridge": dict(opts["bridge"], mtu=None),
            "routes": opts["routes"],
            "pods": dict(opts["pods"], mtu=None, pods=[
                {"name": p["name"], "address": p["address"], "veth": p["veth"], "interface": p["interface"]}
                for p in pod_result]),
        }

    # ------------------------------------------------------------ reading
    @staticmethod
    def _in(ns, argv):
        if ns is None:
            return _sh(*argv).stdout
        return _sh("nsenter", "--net=/run/netns/%s" % ns, *argv).stdout

    def _ip(self, ns, *args):
        return json.loads(self._in(ns, ["ip", "-j"] + list(args)) or "[]")

    def snapshot(self, ns):
        """What the pod network of the node in ns is, without what differs between two boots (ifindex)."""
        link = self._ip(ns, "-d", "addr", "show", "dev", self.bridge)[0]
        result = {
            "bridge": {"kind": link["linkinfo"]["info_kind"], "up": "UP" in link["flags"], "mtu": link["mtu"],
                       "mac": link["address"],
                       "addresses": sorted("%s/%d" % (a["local"], a["prefixlen"]) for a in link["addr_info"]
                                           if a["family"] == "inet")},
            "routes": sorted((r["dst"], r.get("gateway"), r.get("dev")) for r in
                             self._ip(ns, "route", "show", "proto", "149")),
            "nat": self._in(ns, ["nft", "list", "table", "ip", "podnet"]),
            "ip_forward": self._in(ns, ["cat", "/proc/sys/net/ipv4/ip_forward"]).strip(),
            "pods": {},
        }
        host = dict((item["ifname"], item) for item in self._ip(ns, "-d", "link", "show"))
        for pod in self.pods:
            eth0 = self._ip(pod, "addr", "show", "dev", "eth0")[0]
            veth = host[self.veths[pod]]
            result["pods"][pod] = {
                "mac": eth0["address"], "up": "UP" in eth0["flags"],
                "addresses": sorted("%s/%d" % (a["local"], a["prefixlen"]) for a in eth0["addr_info"]
                                    if a["family"] == "inet"),
                "routes": sorted((r["dst"], r.get("gateway"), r.get("protocol")) for r in self._ip(pod, "route")),
                "lo_up": "UP" in self._ip(pod, "link", "show", "dev", "lo")[0]["flags"],
                "veth": {"master": veth.get("master"), "up": "UP" in veth["flags"], "kind": veth["linkinfo"]["info_kind"]},
            }
        return result

    # ------------------------------------------------------------ making
    def uplink_in(self, ns):
        """The node's uplink (NODE_IP) in ns (None: here) to the peer namespace (PEER_IP)."""
        if not _netns.netns_exists(self.peer):
            _sh("ip", "netns", "add", self.peer)
        _sh("ip", "link", "add", self.uplink, "type", "veth", "peer", "name", self.uplink, "netns", self.peer)
        _sh("ip", "-n", self.peer, "addr", "add", PEER_IP, "dev", self.uplink)
        _sh("ip", "-n", self.peer, "link", "set", self.uplink, "up")
        _sh("ip", "addr", "add", NODE_IP, "dev", self.uplink)
        _sh("ip", "link", "set", self.uplink, "up")
        if ns is not None:
            # Made here, moved into the node (an address does not survive the move).
            _sh("ip", "link", "set", self.uplink, "netns", ns)
            _sh("ip", "-n", ns, "addr", "add", NODE_IP, "dev", self.uplink)
            _sh("ip", "-n", ns, "link", "set", self.uplink, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")

    def clear_here(self):
        """Remove what the modules made in this process's namespace (and the pods)."""
        for pod in self.pods:
            if _netns.netns_exists(pod):
                _sh("ip", "netns", "del", pod, check=False)
        for name in (self.bridge, self.uplink) + tuple(self.veths.values()):
            _sh("ip", "link", "del", name, check=False)
        _sh("nft", "delete", "table", "ip", "podnet", check=False)

    def remove(self):
        self.clear_here()
        for ns in (self.fresh, self.peer):
            if _netns.netns_exists(ns):
                _sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def node(prefix):
    forward = _netns.read_sysctl("net/ipv4/ip_forward")
    made = Node(prefix)
    made.clear_here()
    try:
        yield made
    finally:
        made.remove()
        _netns.write_sysctl("net/ipv4/ip_forward", forward)


def _converge_with_modules(monkeypatch, node):
    """The modules, as the roles call them, in this namespace; returns the pods module's pods."""
    stub_exits(monkeypatch)
    opts = node.options()
    results = {}
    for name, module in (("bridge", bridge), ("masquerade", masquerade), ("routes", pod_route), ("pods", pods)):
        kind, result = run_main(module.main, opts[name])
        assert kind == "exit", (name, result)
        results[name] = result
    node.veths = dict((p["name"], p["veth"]) for p in results["pods"]["pods"])
    return results["pods"]["pods"]


def _restore(python, program, ns, state_file, *args):
    # nsenter enters the network namespace only: the pods' namespace files land in /run/netns
    # as on a node (ip netns exec would make them in a mount namespace of its own).
    argv = ["nsenter", "--net=/run/netns/%s" % ns, python, program, "--state", state_file] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("python", PYTHONS)
def test_a_rebooted_node_is_restored_as_the_modules_made_it(monkeypatch, tmp_path, program, node, python):
    if not os.access(python, os.X_OK):
        pytest.skip("%s is not there" % python)
    node.uplink_in(None)
    pod_result = _converge_with_modules(monkeypatch, node)
    made = node.snapshot(None)
    assert made["ip_forward"] == "1" and made["routes"] == [("10.244.2.0/24", "192.168.77.12", node.uplink)]
    assert made["pods"][node.pods[1]]["addresses"] == ["10.244.1.3/24"]
    state_file = tmp_path / "state.json"
    state_file.write_text(node_state.dumps(node.document(pod_result)))

    # The reboot: nothing of the pod network is left, a fresh namespace has the uplink.
    node.clear_here()
    _sh("ip", "netns", "add", node.fresh)
    node.uplink_in(node.fresh)
    started = time.monotonic()
    first = _restore(python, program, node.fresh, str(state_file))
    took = time.monotonic() - started
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "podnet-restore: masquerade: create nftables table ip podnet (4 rules)", first.stdout
    assert any(line.startswith("podnet-restore: bridge: create bridge %s" % node.bridge) for line in lines), lines
    assert "podnet-restore: routes: add route 10.244.2.0/24 via 192.168.77.12 metric 0" in lines
    assert lines[-1].startswith("podnet-restore: restored %s: " % node.prefix) and "change" in lines[-1]
    assert took < 10, "the restore took %.1f s" % took
    assert node.snapshot(node.fresh) == made

    second = _restore(python, program, node.fresh, str(state_file), "--json")
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["changed"] is False and report["summary"] == "no change", report
    assert [c["concern"] for c in report["concerns"]] == ["masquerade", "bridge", "routes", "pods"]
    assert node.snapshot(node.fresh) == made


def test_a_route_whose_gateway_comes_up_late_is_waited_for(tmp_path, program, node):
    """At boot the uplink may get its address after the restore started: --wait retries the routes."""
    _sh("ip", "netns", "add", node.fresh)
    _sh("ip", "-n", node.fresh, "link", "set", "lo", "up")
    doc = {"version": 1, "routes": node.options()["routes"]}
    state_file = tmp_path / "state.json"
    state_file.write_text(node_state.dumps(doc))
    proc = subprocess.Popen(["nsenter", "--net=/run/netns/%s" % node.fresh, sys.executable, program, "--state", str(state_file),
                             "--wait", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        node.uplink_in(node.fresh)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert "podnet-restore: routes: add route 10.244.2.0/24 via 192.168.77.12 metric 0" in out
    routes = json.loads(_sh("ip", "-n", node.fresh, "-j", "route", "show", "proto", "149").stdout)
    assert [r["dst"] for r in routes] == ["10.244.2.0/24"]


def test_a_concern_that_fails_leaves_the_others_restored(tmp_path, program, node):
    """No uplink: the routes fail (exit 1, naming why), the bridge is restored all the same."""
    _sh("ip", "netns", "add", node.fresh)
    opts = node.options()
    doc = {"version": 1, "bridge": opts["bridge"], "routes": opts["routes"]}
    state_file = tmp_path / "state.json"
    state_file.write_text(node_state.dumps(doc))
    out = _restore(sys.executable, program, node.fresh, str(state_file))
    assert out.returncode == 1
    assert "routes: failed: routes[0].via: '192.168.77.12' is not on a directly connected subnet" in out.stderr
    assert "podnet-restore: bridge: create bridge %s" % node.bridge in out.stdout, out.stdout
    assert out.stdout.splitlines()[-1].endswith("; failed: routes")
    assert json.loads(_sh("ip", "-n", node.fresh, "-j", "link", "show", "dev", node.bridge).stdout)


def test_kernel_sysctls_are_set_and_then_left_alone(tmp_path, program, node):
    """The kernel section: a sysctl of the node's namespace set, then nothing to do."""
    _sh("ip", "netns", "add", node.fresh)
    state_file = tmp_path / "state.json"
    state_file.write_text(node_state.dumps({"version": 1, "kernel": {"sysctls": {"net.ipv4.ip_default_ttl": 65}}}))
    first = _restore(sys.executable, program, node.fresh, str(state_file))
    assert first.returncode == 0 and "podnet-restore: kernel: set net.ipv4.ip_default_ttl = 65" in first.stdout, first
    assert node._in(node.fresh, ["cat", "/proc/sys/net/ipv4/ip_default_ttl"]).strip() == "65"
    second = _restore(sys.executable, program, node.fresh, str(state_file))
    assert second.returncode == 0, second
    assert second.stdout.splitlines() == ["podnet-restore: restored %s: no change" % state_file]


def test_the_overlay_and_the_routes_through_it_are_restored(tmp_path, program, node):
    """The overlay section is made before the routes section's onlink routes through its device."""
    _sh("ip", "netns", "add", node.fresh)
    node.uplink_in(node.fresh)
    doc = {"version": 1,
           "overlay": {"local": NODE_IP.split("/", maxsplit=1)[0], "peers": [{"node_ip": "192.168.78.13", "vtep": ["10.244.3.0"]}]},
           "routes": {"routes": [{"dst": "10.244.3.0/24", "via": "10.244.3.0", "dev": "podnet.vxlan", "onlink": True}],
                      "purge": True}}
    state_file = tmp_path / "state.json"
    state_file.write_text(node_state.dumps(doc))
    first = _restore(sys.executable, program, node.fresh, str(state_file))
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == ("podnet-restore: overlay: create vxlan podnet.vxlan with VNI 1, port 8472, local 192.168.77.11, "
                        "MAC 0e:58:c0:a8:4d:0b"), lines
    assert "podnet-restore: routes: add route 10.244.3.0/24 via 10.244.3.0 dev podnet.vxlan onlink metric 0" in lines
    neigh = json.loads(_sh("ip", "-n", node.fresh, "-j", "neigh", "show", "dev", "podnet.vxlan").stdout)
    assert [(n["dst"], n["lladdr"]) for n in neigh] == [("10.244.3.0", "0e:58:c0:a8:4e:0d")]
    routes = json.loads(_sh("ip", "-n", node.fresh, "-j", "route", "show", "proto", "149").stdout)
    assert [(r["dst"], r["gateway"], r["dev"], r["flags"]) for r in routes] == [
        ("10.244.3.0/24", "10.244.3.0", "podnet.vxlan", ["onlink"])]
    second = _restore(sys.executable, program, node.fresh, str(state_file), "--json")
    assert second.returncode == 0 and json.loads(second.stdout)["summary"] == "no change", second.stdout
