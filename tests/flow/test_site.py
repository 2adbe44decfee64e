# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""site.yml, verify.yml and teardown.yml on the 3-node lab, in order.

The tests of this module share one lab and run in file order: fresh lab and
check mode, converge, rerun, repairs, a node leaving, bad variables, teardown.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

NODES = ("node1", "node2", "node3")


def ours(lab, node):
    """Our routes on a node (routing protocol 149)."""
    return sorted(r["dst"] for r in lab.ip_json(node, "route", "show", "proto", "149"))


def links(lab, node):
    return sorted(link["ifname"] for link in lab.ip_json(node, "link", "show"))


def test_check_mode_on_a_fresh_lab_changes_nothing(lab):
    lab.playbook("lab.yml", "--tags", "lab")  # the lab alone
    before = dict((n, links(lab, n)) for n in NODES)
    rc, out, recap = lab.playbook("site.yml", "--check")
    assert all(recap[n]["changed"] > 0 for n in NODES), out[-3000:]
    assert dict((n, links(lab, n)) for n in NODES) == before
    assert all(ours(lab, n) == [] for n in NODES)
    assert all(lab.run(n, ["ls", "/run/netns"]).stdout.split() == [] for n in NODES)


def test_converge_then_verify(lab, tmp_path):
    rc, out, recap = lab.playbook("site.yml")
    assert all(recap[n]["changed"] > 0 for n in NODES)
    assert ours(lab, "node1") == ["10.244.2.0/24", "10.244.3.0/24"]
    rc, out, recap = lab.playbook("verify.yml", "-e", "podnet_verify_pictures_dir=%s" % tmp_path)
    assert "36 probes passed" in out
    for picture in ("topology.svg", "matrix.svg"):  # drawn on the controller, naming every node
        text = " ".join(e.text or "" for e in ET.parse(str(tmp_path / picture)).iter("{http://www.w3.org/2000/svg}text"))
        assert all(n in text for n in NODES), picture


def test_rerun_and_check_mode_report_no_change(lab):
    for args in ((), ("--check",)):
        rc, out, recap = lab.playbook("site.yml", *args)
        assert [recap[n]["changed"] for n in NODES] == [0, 0, 0], (args, out[-3000:])


def test_hand_deleted_route_and_veth_are_repaired(lab):
    lab.run("node2", ["ip", "route", "del", "10.244.1.0/24"])
    lab.run("node3", ["ip", "link", "del", "veth-red"])
    rc, out, recap = lab.playbook("verify.yml", check=False)
    assert rc != 0 and "red@node3" in out  # broken, and the failing pairs are named
    rc, out, recap = lab.playbook("site.yml")
    assert recap["node1"]["changed"] == 0
    assert recap["node2"]["changed"] == 1 and recap["node3"]["changed"] == 1
    assert "10.244.1.0/24" in ours(lab, "node2")
    rc, out, recap = lab.playbook("verify.yml")
    assert "36 probes passed" in out


def test_node_leaving_the_inventory_is_purged_everywhere(lab):
    rc, out, recap = lab.playbook("site.yml", nodes=2)
    assert "node3" not in recap
    assert ours(lab, "node1") == ["10.244.2.0/24"]
    assert ours(lab, "node2") == ["10.244.1.0/24"]
    lab.playbook("site.yml")  # node3 back
    assert ours(lab, "node1") == ["10.244.2.0/24", "10.244.3.0/24"]


def test_bad_variables_are_refused_before_any_change(lab):
    rc, out, recap = lab.playbook("site.yml", "-e", '{"podnet_pods": "red"}', check=False)
    assert rc != 0 and "podnet_pods" in out
    rc, out, recap = lab.playbook("site.yml", "-e", "podnet_cluster_cidr=10.250.0.0/16", check=False)
    assert rc != 0 and "is not inside podnet_cluster_cidr 10.250.0.0/16" in out
    assert "node1: podnet_pod_cidr 10.244.1.0/24" in out
    assert ours(lab, "node1") == ["10.244.2.0/24", "10.244.3.0/24"]


def test_teardown_leaves_nothing_behind(lab):
    rc, out, recap = lab.playbook("teardown.yml", "--limit", "podnet_nodes")
    for node in NODES:
        assert links(lab, node) == ["eth0", "lo"]
        assert ours(lab, node) == []
        assert lab.run(node, ["ls", "/run/netns"]).stdout.split() == []
        assert "podnet" not in lab.run(node, ["nft", "list", "tables"]).stdout
    lab.playbook("teardown.yml")
    assert not os.path.exists(os.path.join("/run/podnet-lab", lab.name))
