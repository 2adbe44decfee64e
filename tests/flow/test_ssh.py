# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The playbooks over real SSH: nodes with sshd, a non-root user and become.

A lab with ssh per ansible-core: the lowest supported (ansible-core 2.17, in
.venv-core217) and the newest the machine's Pythons allow (.venv-core-newest,
ansible-core 2.21 on Python >= 3.12; without it, the test run's .venv), as
tests/flow/conftest.py's venvs() finds them (PODNET_FLOW_SSH_VENVS, a
colon-separated list of virtual environment directories, overrides the list).
The lab is built from the
machine, every later playbook runs inside the lab's controller namespace and
reaches the nodes over SSH as the user podnet with sudo.

The tests of this module share one lab per ansible-core and run in file order:
fresh lab and check mode, converge and verify, rerun, teardown.
"""
from __future__ import annotations

import os

LAB_ROOT = "/run/podnet-lab"

NODES = ("node1", "node2", "node3")


def ours(lab, node):
    """Our routes on a node (routing protocol 149)."""
    return sorted(r["dst"] for r in lab.ip_json(node, "route", "show", "proto", "149"))


def links(lab, node):
    return sorted(link["ifname"] for link in lab.ip_json(node, "link", "show"))


def test_lab_with_ssh_then_check_mode_on_fresh_nodes(ssh_lab):
    lab = ssh_lab
    lab.playbook("lab.yml", "--tags", "lab")  # the lab alone, from the machine
    assert os.path.exists(lab.path("controller"))
    before = dict((n, links(lab, n)) for n in NODES)
    rc, out, recap = lab.playbook("site.yml", "--check")
    assert all(recap[n]["changed"] > 0 for n in NODES), out[-3000:]
    assert dict((n, links(lab, n)) for n in NODES) == before
    assert all(ours(lab, n) == [] for n in NODES)


def test_converge_over_ssh_then_verify(ssh_lab):
    lab = ssh_lab
    rc, out, recap = lab.playbook("site.yml")
    assert all(recap[n]["changed"] > 0 for n in NODES)
    assert ours(lab, "node1") == ["10.244.2.0/24", "10.244.3.0/24"]
    rc, out, recap = lab.playbook("verify.yml")
    assert "36 probes passed" in out


def test_the_nodes_were_reached_over_ssh_as_the_user_with_become(ssh_lab):
    for node in NODES:
        log = ssh_lab.run(node, ["cat", "/run/podnet-lab-sshd.log"]).stdout
        assert "Accepted publickey for podnet from 192.168.1.254" in log, log[-2000:]
    # The user and its sudo rule exist on the nodes only.
    assert ssh_lab.run("node1", ["grep", "-c", "^podnet:", "/etc/passwd"]).stdout == "1\n"
    with open("/etc/passwd") as handle:
        assert not [line for line in handle if line.startswith("podnet:")]


def test_rerun_reports_no_change(ssh_lab):
    rc, out, recap = ssh_lab.playbook("site.yml")
    assert [recap[n]["changed"] for n in NODES] == [0, 0, 0], out[-3000:]


def test_teardown_over_ssh_leaves_nothing_behind(ssh_lab):
    lab = ssh_lab
    lab.playbook("teardown.yml", "--limit", "podnet_nodes")
    for node in NODES:
        assert links(lab, node) == ["eth0", "lo"]
        assert ours(lab, node) == []
        assert lab.run(node, ["ls", "/run/netns"]).stdout.split() == []
    lab.playbook("teardown.yml")  # from inside the controller namespace, which goes with the lab
    assert not os.path.exists(os.path.join(LAB_ROOT, lab.name))
