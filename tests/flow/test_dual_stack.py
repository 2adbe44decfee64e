# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""site.yml, verify.yml and teardown.yml on the dual-stack lab and on the IPv6-only lab, in order.

Each stack gets a lab of its own (inventories/lab-dualstack, inventories/lab-ipv6); the tests
of one stack share it and run in file order: check mode on the fresh lab, converge and verify
(both matrices, no NAT between pods, masquerade to the external host), rerun and check mode
with no change, teardown leaving nothing, forwarding of both families back to 0.
"""
from __future__ import annotations

import os
import re

NODES = ("node1", "node2", "node3")


def ours(lab, node):
    """Our routes on a node, both families (routing protocol 149)."""
    return sorted(r["dst"] for family in ("-4", "-6")
                  for r in lab.ip_json(node, family, "route", "show", "proto", "149"))


def links(lab, node):
    return sorted(link["ifname"] for link in lab.ip_json(node, "link", "show"))


def sysctl(lab, node, key):
    return lab.run(node, ["cat", "/proc/sys/" + key.replace(".", "/")]).stdout.strip()


def probes_passed(out):
    found = re.search(r"(\d+) probes passed", out)
    return int(found.group(1)) if found else None


def test_check_mode_on_a_fresh_lab_changes_nothing(stack_lab):
    lab = stack_lab
    lab.playbook("lab.yml", "--tags", "lab")
    before = dict((n, links(lab, n)) for n in NODES)
    rc, out, recap = lab.playbook("site.yml", "--check")
    assert all(recap[n]["changed"] > 0 for n in NODES), out[-3000:]
    assert dict((n, links(lab, n)) for n in NODES) == before
    assert all(ours(lab, n) == [] for n in NODES)
    assert all(sysctl(lab, n, "net.ipv6.conf.all.forwarding") == "0" for n in NODES)


def test_converge_then_verify_both_families(stack_lab):
    lab = stack_lab
    rc, out, recap = lab.playbook("site.yml")
    assert all(recap[n]["changed"] > 0 for n in NODES)
    assert ours(lab, "node1") == sorted(lab.routes)
    assert sysctl(lab, "node1", "net.ipv6.conf.all.forwarding") == "1"
    # The pods' IPv6 addresses are not tentative: usable the moment site.yml ends.
    assert "tentative" not in lab.run("node1", ["ip", "-n", "red", "-6", "addr", "show", "dev", "eth0"]).stdout
    rc, out, recap = lab.playbook("verify.yml")
    assert probes_passed(out) == lab.probes, out[-4000:]


def test_rerun_and_check_mode_report_no_change(stack_lab):
    for args in ((), ("--check",)):
        rc, out, recap = stack_lab.playbook("site.yml", *args)
        assert [recap[n]["changed"] for n in NODES] == [0, 0, 0], (args, out[-3000:])


def test_teardown_leaves_nothing_behind(stack_lab):
    lab = stack_lab
    lab.playbook("teardown.yml", "--limit", "podnet_nodes")
    for node in NODES:
        assert links(lab, node) == ["eth0", "lo"]
        assert ours(lab, node) == []
        assert lab.run(node, ["ls", "/run/netns"]).stdout.split() == []
        assert "podnet" not in lab.run(node, ["nft", "list", "tables"]).stdout
        assert sysctl(lab, node, "net.ipv6.conf.all.forwarding") == "0"
        assert sysctl(lab, node, "net.ipv4.ip_forward") == "0"
    lab.playbook("teardown.yml")
    assert not os.path.exists(os.path.join("/run/podnet-lab", lab.name))
