# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""site.yml, verify.yml and teardown.yml on the routed lab (inventories/lab-routed), in order.

node1 and node2 share 192.168.1.0/24, node3 is on 192.168.2.0/24 and the lab router joins the
two subnets: with podnet_backend auto, node1 and node2 reach each other with host-gw routes and
node3 through the VXLAN overlay. The tests share one lab and run in file order: check mode on
fresh nodes, converge and verify (all pairs, no NAT), large packets through the tunnel, rerun and
check mode with no change, node3 moved to the other subnet (its peers switch to host-gw) and back,
a node leaving (its forwarding, neighbour and route entries purged), teardown.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

NODES = ("node1", "node2", "node3")
VXLAN = "podnet.vxlan"


def ours(lab, node):
    return sorted((r["dst"], r.get("gateway"), r.get("dev"), "onlink" in r.get("flags", []))
                  for r in lab.ip_json(node, "route", "show", "proto", "149"))


def fdb(lab, node):
    entries = lab.ip_json(node, "-d", "link", "show")
    if VXLAN not in [link["ifname"] for link in entries]:
        return None
    out = lab.run(node, ["bridge", "-j", "fdb", "show", "dev", VXLAN]).stdout
    return sorted((e["mac"], e.get("dst")) for e in json.loads(out or "[]") if e.get("dst"))


def probes_passed(out):
    found = re.search(r"(\d+) probes passed", out)
    return int(found.group(1)) if found else None


def in_pod(lab, node, pod, argv, check=True):
    return lab.run(node, ["ip", "netns", "exec", pod] + argv, check=check)


def test_check_mode_on_a_fresh_routed_lab_changes_nothing(routed_lab):
    lab = routed_lab
    lab.playbook("lab.yml", "--tags", "lab")
    rc, out, recap = lab.playbook("site.yml", "--check")
    assert all(recap[n]["changed"] > 0 for n in NODES), out[-3000:]
    assert all(ours(lab, n) == [] for n in NODES)
    assert all(fdb(lab, n) is None for n in NODES)


def test_converge_mixes_host_gw_and_vxlan_and_verify_passes(routed_lab):
    lab = routed_lab
    rc, out, recap = lab.playbook("site.yml")
    assert "node3 vxlan via 192.168.2.13: 10.244.3.0/24" in out and "node2 host-gw via 192.168.1.12" in out
    assert ours(lab, "node1") == [("10.244.2.0/24", "192.168.1.12", "eth0", False),
                                  ("10.244.3.0/24", "10.244.3.0", VXLAN, True)]
    assert ours(lab, "node3") == [("10.244.1.0/24", "10.244.1.0", VXLAN, True),
                                  ("10.244.2.0/24", "10.244.2.0", VXLAN, True)]
    assert fdb(lab, "node1") == [("0e:58:c0:a8:02:0d", "192.168.2.13")]
    assert fdb(lab, "node3") == [("0e:58:c0:a8:01:0b", "192.168.1.11"), ("0e:58:c0:a8:01:0c", "192.168.1.12")]
    # The pods' MTU leaves room for the VXLAN header on every node.
    assert all(lab.ip_json(n, "link", "show", "dev", "cni0")[0]["mtu"] == 1450 for n in NODES)
    rc, out, recap = lab.playbook("verify.yml")
    assert probes_passed(out) == 36, out[-4000:]
    assert "6 pairs: 2 host-gw, 4 vxlan" in out


def test_large_packets_cross_the_tunnel(routed_lab):
    """A 1400-byte ping with DF set, and 1 MB of TCP, from a pod on node1 to a pod on node3."""
    lab = routed_lab
    ping = in_pod(lab, "node1", "red", ["ping", "-c2", "-W2", "-M", "do", "-s", "1400", "10.244.3.2"], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    server = ("import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "s.bind(('10.244.3.2', 31009)); s.listen(1); s.settimeout(20); c, _ = s.accept(); n = 0\n"
              "while True:\n d = c.recv(65536)\n if not d: break\n n += len(d)\nc.sendall(str(n).encode()); c.close()")
    client = ("import socket; c=socket.create_connection(('10.244.3.2', 31009), timeout=20); "
              "c.sendall(b'x' * 1048576); c.shutdown(socket.SHUT_WR); print(c.recv(64).decode())")
    cmd = ["nsenter", "--net=%s" % lab.path("node3"), "--mount=%s" % lab.path("node3", "mnt"), "--",
           "ip", "netns", "exec", "red", "python3", "-c", server]
    listener = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        sent = in_pod(lab, "node1", "red", ["python3", "-c", client], check=False)
        assert sent.returncode == 0 and sent.stdout.strip() == "1048576", sent.stdout + sent.stderr
    finally:
        listener.kill()
        listener.communicate()


def test_rerun_and_check_mode_report_no_change(routed_lab):
    for args in ((), ("--check",)):
        rc, out, recap = routed_lab.playbook("site.yml", *args)
        assert [recap[n]["changed"] for n in NODES] == [0, 0, 0], (args, out[-3000:])


def test_the_cni_role_gives_pods_the_tunnel_mtu(routed_lab, tmp_path):
    """The cni role on nodes with VXLAN peers: the conflist's mtu, and a pod the plugin wires, leave room for it."""
    lab = routed_lab
    cni_play = tmp_path / "cni.yml"
    cni_play.write_text("---\n- name: CNI\n  hosts: podnet_nodes\n  gather_facts: false\n"
                        "  roles:\n    - role: podnet.mesh.cni\n")
    lab.playbook(str(cni_play))
    conflist = json.loads(lab.run("node1", ["cat", "/etc/cni/net.d/10-podnet.conflist"]).stdout)
    config = dict(conflist["plugins"][0], name=conflist["name"], cniVersion=conflist["cniVersion"])
    assert config["mtu"] == 1450, config
    config["ipam"]["rangeStart"] = "10.244.1.200"  # clear of the addresses the pods role hands out
    node = ["nsenter", "--net=%s" % lab.path("node1"), "--mount=%s" % lab.path("node1", "mnt"), "--"]
    lab.run("node1", ["ip", "netns", "add", "cnimtu"])
    try:
        env = dict(os.environ, CNI_CONTAINERID="mtu-test", CNI_NETNS="/run/netns/cnimtu", CNI_IFNAME="eth0",
                   CNI_PATH="/opt/cni/bin")
        add = subprocess.run(node + ["/opt/cni/bin/podnet"], input=json.dumps(config), capture_output=True, text=True,
                             env=dict(env, CNI_COMMAND="ADD"), check=False)
        assert add.returncode == 0, add.stdout + add.stderr
        address = json.loads(add.stdout)["ips"][0]["address"].split("/")[0]
        assert in_pod(lab, "node1", "cnimtu", ["cat", "/sys/class/net/eth0/mtu"]).stdout.strip() == "1450"
        # Through the tunnel with the largest packet that MTU allows, DF set, to a pod on node3.
        ping = in_pod(lab, "node3", "red", ["ping", "-c2", "-W2", "-M", "do", "-s", "1422", address], check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        delete = subprocess.run(node + ["/opt/cni/bin/podnet"], input=json.dumps(config), capture_output=True,
                                text=True, env=dict(env, CNI_COMMAND="DEL"), check=False)
        assert delete.returncode == 0, delete.stdout + delete.stderr
    finally:
        lab.run("node1", ["ip", "netns", "del", "cnimtu"], check=False)


def test_a_node_moved_to_the_other_subnet_switches_its_peers_mode(routed_lab):
    lab = routed_lab
    lab.env = {"PODNET_LAB_NODE_SUBNETS": "node3=1"}
    lab.playbook("lab.yml", "--tags", "lab")
    lab.playbook("site.yml")
    assert ours(lab, "node1") == [("10.244.2.0/24", "192.168.1.12", "eth0", False),
                                  ("10.244.3.0/24", "192.168.1.13", "eth0", False)]
    assert all(fdb(lab, n) is None for n in NODES)  # no VXLAN peer left: no device
    rc, out, recap = lab.playbook("verify.yml")
    assert probes_passed(out) == 36 and "6 pairs: 6 host-gw, 0 vxlan" in out
    lab.env = {}
    lab.playbook("lab.yml", "--tags", "lab")
    lab.playbook("site.yml")
    assert fdb(lab, "node1") == [("0e:58:c0:a8:02:0d", "192.168.2.13")]


def test_a_node_leaving_is_purged_from_the_overlay(routed_lab):
    lab = routed_lab
    # Two nodes on two subnets would put node2 on subnet 2 (blocks of one): it stays where the lab has it.
    lab.env = {"PODNET_LAB_NODE_SUBNETS": "node2=1"}
    lab.playbook("site.yml", nodes=2)
    lab.env = {}
    assert fdb(lab, "node1") is None and ours(lab, "node1") == [("10.244.2.0/24", "192.168.1.12", "eth0", False)]
    lab.playbook("site.yml")
    assert fdb(lab, "node2") == [("0e:58:c0:a8:02:0d", "192.168.2.13")]


def test_teardown_leaves_nothing_behind(routed_lab):
    lab = routed_lab
    lab.playbook("teardown.yml", "--limit", "podnet_nodes")
    for node in NODES:
        assert sorted(link["ifname"] for link in lab.ip_json(node, "link", "show")) == ["eth0", "lo"]
        assert ours(lab, node) == []
    lab.playbook("teardown.yml")
    assert not os.path.exists(os.path.join("/run/podnet-lab", lab.name))
