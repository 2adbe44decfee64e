# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab inventory plugin with ssh: the nodes are reached over SSH with become."""
from __future__ import annotations

from ansible_collections.podnet.mesh.plugins.inventory import lab as plugin

OPTIONS = {
    "lab_name": "t", "lab_root": "/run/podnet-lab", "group": "podnet_nodes",
    "name_prefix": "node", "gateway": "192.168.1.1/24", "node_offset": 10,
    "external": "203.0.113.10/24", "cluster_cidr": "10.244.0.0/16", "pod_prefix": 24,
    "pods": ["red", "blue"], "bridge": "cni0", "python_interpreter": "/usr/bin/python3",
    "pipelining": True, "ssh": True, "ssh_user": "podnet",
}


def test_ssh_variables_per_node():
    inv = plugin.lab_inventory(OPTIONS, 2)
    node = inv["hosts"]["node2"]
    assert node["ansible_connection"] == "ssh" and node["ansible_host"] == "192.168.1.12"
    assert node["ansible_user"] == "podnet" and node["ansible_become"] is True
    assert node["ansible_ssh_private_key_file"] == "/run/podnet-lab/t/.ssh/id_ed25519"
    assert node["ansible_ssh_common_args"] == (
        "-o UserKnownHostsFile=/run/podnet-lab/t/.ssh/known_hosts -o StrictHostKeyChecking=accept-new "
        "-o IdentitiesOnly=yes -o BatchMode=yes -o ControlPath=/run/podnet-lab/t/.ssh/cp/%C")
    assert node["podnet_node_ip"] == "192.168.1.12" and node["ansible_pipelining"] is True
    assert inv["all"]["podnet_lab_ssh"] is True and inv["all"]["podnet_lab_ssh_user"] == "podnet"


def test_without_ssh_the_nodes_are_reached_with_nsenter():
    inv = plugin.lab_inventory(dict(OPTIONS, ssh=False), 1)
    assert inv["hosts"]["node1"]["ansible_connection"] == "podnet.mesh.nsenter"
    assert "ansible_user" not in inv["hosts"]["node1"]
    assert inv["all"]["podnet_lab_ssh"] is False


def test_ssh_on_a_dual_stack_lab_goes_over_ipv4():
    inv = plugin.lab_inventory(dict(OPTIONS, stack="dual", gateway6="2001:db8:1::1/64", external6="2001:db8:113::10/64",
                                    cluster_cidr6="fd00:10:244::/56", pod_prefix6=64), 2)
    node = inv["hosts"]["node2"]
    assert node["ansible_connection"] == "ssh" and node["ansible_host"] == "192.168.1.12"
    assert node["podnet_node_ips"] == ["192.168.1.12", "2001:db8:1::12"]
    assert "podnet_node_ip" not in node
