# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Nodes restore themselves after a reboot: site.yml once, then lab reboots, then verify.yml with no
playbook run in between.

The lab's reboot gives a node a fresh network namespace (only its uplink) and an
empty /run (its pods' namespaces are gone), keeps its own /etc/podnet,
/etc/systemd/system and /usr/local/libexec/podnet, and runs the units enabled there
as systemd would: podnet-restore.service brings the node back. The tests of this
module share one lab and run in file order; the times from a reboot to a passing
verify are printed (pytest -s) and kept in REBOOT_TIMES.
"""
from __future__ import annotations

import json
import os
import time

import pytest

NODES = ("node1", "node2", "node3")
UNIT = "/etc/systemd/system/podnet-restore.service"
LINK = "/etc/systemd/system/multi-user.target.wants/podnet-restore.service"
STATE = "/etc/podnet/state.json"
PROGRAM = "/usr/local/libexec/podnet/podnet-restore"
# The machine's own paths: the lab nodes must never write there.
MACHINE = (UNIT, LINK, STATE, PROGRAM)
REBOOT_TIMES = {}


def ours(lab, node):
    return sorted(r["dst"] for r in lab.ip_json(node, "route", "show", "proto", "149"))


def on_node(lab, node, path):
    return lab.run(node, ["test", "-e", path], check=False).returncode == 0


def reboot(lab, nodes):
    """Reboot nodes, then verify.yml: (seconds of the reboot, seconds from the reboot to a passing verify)."""
    start = time.monotonic()
    rc, out, recap = lab.playbook("lab.yml", "--tags", "lab", "-e", json.dumps({"podnet_lab_reboot": list(nodes)}))
    rebooted = time.monotonic() - start
    for node in nodes:
        assert lab.run(node, ["ls", "/run/netns"]).stdout.split() == ["blue", "red"], out[-3000:]
    rc, out, recap = lab.playbook("verify.yml")
    assert "36 probes passed" in out, out[-3000:]
    return rebooted, time.monotonic() - start


def test_lab_nodes_have_system_directories_of_their_own(lab):
    lab.playbook("lab.yml", "--tags", "lab")
    assert not [path for path in MACHINE if os.path.lexists(path)], "the machine has podnet files of its own"
    probe = "/etc/systemd/system/.pntprobe-%s" % lab.name
    lab.run("node1", ["touch", probe])
    leaked = os.path.exists(probe)
    lab.run("node1", ["rm", "-f", probe])
    if leaked:
        os.unlink(probe)
        pytest.fail("a lab node writes into the machine's /etc/systemd/system: the lab has no private system "
                    "directories, and site.yml would install its unit on this machine")


def test_site_leaves_the_boot_unit_and_the_state_on_every_node(lab):
    rc, out, recap = lab.playbook("site.yml")
    for node in NODES:
        state = json.loads(lab.run(node, ["cat", STATE]).stdout)
        assert state["version"] == 1 and state["node"] == node
        assert len(state["routes"]["routes"]) == 2
        assert [(p["name"], p["address"]) for p in state["pods"]["pods"]] == [
            ("red", "10.244.%s.2/24" % node[-1]), ("blue", "10.244.%s.3/24" % node[-1])]
        assert lab.run(node, ["readlink", LINK]).stdout.strip() == UNIT
        assert "ExecStart=/usr/bin/python3 %s --state %s" % (PROGRAM, STATE) in lab.run(node, ["cat", UNIT]).stdout
        # The node is as recorded: the program finds nothing to do.
        check = lab.run(node, ["/usr/bin/python3", PROGRAM, "--check"])
        assert check.stdout.splitlines()[-1] == "podnet-restore: checked %s: no change" % node, check.stdout
    assert not [path for path in MACHINE if os.path.lexists(path)]
    rc, out, recap = lab.playbook("site.yml")
    assert [recap[n]["changed"] for n in NODES] == [0, 0, 0], out[-3000:]


def test_a_rebooted_node_comes_back_without_a_playbook(lab):
    before = dict((n, ours(lab, n)) for n in NODES)
    rebooted, to_verify = reboot(lab, ["node2"])
    REBOOT_TIMES["node2"] = (rebooted, to_verify)
    print("\nreboot of node2: %.1f s, reboot to a passing verify: %.1f s" % (rebooted, to_verify))
    assert dict((n, ours(lab, n)) for n in NODES) == before
    assert lab.ip_json("node2", "link", "show", "cni0")[0]["address"] == "0a:58:0a:f4:02:01"


def test_every_node_rebooted_at_once_comes_back(lab):
    rebooted, to_verify = reboot(lab, NODES)
    REBOOT_TIMES["all"] = (rebooted, to_verify)
    print("\nreboot of all nodes: %.1f s, reboot to a passing verify: %.1f s" % (rebooted, to_verify))
    assert ours(lab, "node1") == ["10.244.2.0/24", "10.244.3.0/24"]


def test_site_after_the_reboots_changes_nothing(lab):
    """What the boot restored is what the roles make: a converge finds nothing to do."""
    rc, out, recap = lab.playbook("site.yml")
    assert [recap[n]["changed"] for n in NODES] == [0, 0, 0], out[-3000:]


def test_bridge_nf_call_is_part_of_the_state_and_restored(lab):
    """podnet_bridge_nf_call: the kernel section; br_netfilter is there (built in here), so no modprobe is needed."""
    rc, out, recap = lab.playbook("site.yml", "-e", "podnet_bridge_nf_call=true")
    state = json.loads(lab.run("node3", ["cat", STATE]).stdout)
    assert state["kernel"] == {"modules": ["br_netfilter"], "sysctls": {
        "net.bridge.bridge-nf-call-ip6tables": "1", "net.bridge.bridge-nf-call-iptables": "1"}}
    lab.run("node3", ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0"])
    restored = lab.run("node3", ["/usr/bin/python3", PROGRAM]).stdout.splitlines()
    assert restored == ["podnet-restore: kernel: set net.bridge.bridge-nf-call-iptables = 1",
                        "podnet-restore: restored node3: 1 change"], restored
    reboot(lab, ["node3"])
    assert lab.run("node3", ["cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"]).stdout.strip() == "1"


def test_teardown_removes_the_unit_and_a_reboot_then_restores_nothing(lab):
    rc, out, recap = lab.playbook("teardown.yml", "--limit", "podnet_nodes")
    for node in NODES:
        assert not [path for path in (UNIT, LINK, STATE, PROGRAM) if on_node(lab, node, path)], node
    lab.playbook("lab.yml", "--tags", "lab", "-e", json.dumps({"podnet_lab_reboot": ["node1"]}))
    assert ours(lab, "node1") == []
    assert not [link for link in lab.ip_json("node1", "link", "show") if link["ifname"] == "cni0"]
    assert not [path for path in MACHINE if os.path.lexists(path)]
