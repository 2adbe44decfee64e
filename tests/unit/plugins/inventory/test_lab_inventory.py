# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab inventory plugin: generated hosts and variables, and the real thing
through ansible-inventory against inventories/lab."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible.errors import AnsibleParserError
from ansible_collections.podnet.mesh.plugins.inventory import lab as plugin

OPTIONS = {
    "lab_name": "podnet", "lab_root": "/run/podnet-lab", "group": "podnet_nodes",
    "name_prefix": "node", "gateway": "192.168.1.1/24", "node_offset": 10,
    "external": "203.0.113.10/24", "cluster_cidr": "10.244.0.0/16", "pod_prefix": 24,
    "pods": ["red", "blue"], "bridge": "cni0", "python_interpreter": "/usr/bin/python3",
    "pipelining": True,
}
COLLECTION = os.path.abspath(os.path.join(os.path.dirname(plugin.__file__), "..", ".."))


def test_three_nodes_like_the_classic_example():
    inv = plugin.lab_inventory(OPTIONS, 3)
    assert sorted(inv["hosts"]) == ["node1", "node2", "node3"]
    assert inv["hosts"]["node2"] == {
        "ansible_connection": "podnet.mesh.nsenter",
        "ansible_host": "node2",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_pipelining": True,
        "podnet_pod_cidr": "10.244.2.0/24",
        "podnet_node_ip": "192.168.1.12",
        "podnet_pods": [{"name": "red", "address": "10.244.2.2"},
                        {"name": "blue", "address": "10.244.2.3"}],
    }
    assert inv["group"] == {
        "podnet_cluster_cidr": "10.244.0.0/16", "podnet_bridge": "cni0",
        "podnet_verify_external": ["203.0.113.10"], "podnet_install_prerequisites": False,
    }
    assert inv["all"]["podnet_lab_nodes"] == [
        {"name": "node1", "address": "192.168.1.11/24"},
        {"name": "node2", "address": "192.168.1.12/24"},
        {"name": "node3", "address": "192.168.1.13/24"}]
    assert inv["all"]["podnet_lab_gateway"] == "192.168.1.1/24"
    assert inv["all"]["podnet_lab_name"] == "podnet"


def test_fifty_nodes():
    inv = plugin.lab_inventory(OPTIONS, 50)
    assert inv["hosts"]["node50"]["podnet_node_ip"] == "192.168.1.60"
    assert inv["hosts"]["node50"]["podnet_pods"][0] == {"name": "red", "address": "10.244.50.2"}


@pytest.mark.parametrize("options, count, message", [
    ({}, 0, "positive integer"),
    ({}, 300, "pod CIDRs"),
    ({"name_prefix": "a_very_long_name"}, 2, "not a valid node name"),
    ({"gateway": "192.168.1.1"}, 2, "not an address in CIDR form"),
    ({"external": "203.0.113.10"}, 2, "external: '203.0.113.10' is not an address with a prefix"),
])
def test_impossible_labs_fail_parsing(options, count, message):
    with pytest.raises(AnsibleParserError, match=message):
        plugin.lab_inventory(dict(OPTIONS, **options), count)


@pytest.mark.parametrize("environ, configured, expected", [
    ({}, 3, 3),
    ({"PODNET_LAB_NODES": ""}, 3, 3),
    ({"PODNET_LAB_NODES": "50"}, 3, 50),
])
def test_environment_overrides_the_count(environ, configured, expected):
    assert plugin.lab_count(configured, environ) == expected


def test_environment_count_must_be_a_number():
    with pytest.raises(AnsibleParserError, match="PODNET_LAB_NODES='many'"):
        plugin.lab_count(3, {"PODNET_LAB_NODES": "many"})


@pytest.mark.parametrize("name, ok", [
    ("lab.podnet.yml", True), ("x.podnet.yaml", True), ("podnet.yml", True),
    ("hosts.yml", False), ("lab.podnet.yml.bak", False),
])
def test_verify_file(tmp_path, name, ok):
    path = tmp_path / name
    path.write_text("plugin: podnet.mesh.lab\n")
    assert plugin.InventoryModule().verify_file(str(path)) is ok


def ansible_inventory(*args, **env):
    """Run ansible-inventory of this Python's environment against the collection."""
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if not os.path.exists(binary):
        pytest.skip("ansible-inventory not installed next to %s" % sys.executable)
    environ = dict((k, v) for k, v in os.environ.items() if not k.startswith("PODNET_LAB_"))
    environ.update(env, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=os.path.dirname(
        os.path.dirname(os.path.dirname(COLLECTION))))
    result = subprocess.run(
        [binary, "-i", os.path.join(COLLECTION, "inventories", "lab")] + list(args),
        capture_output=True, text=True, env=environ, cwd=COLLECTION, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_lab_inventory_graph_shows_three_nodes():
    graph = ansible_inventory("--graph")
    assert "@podnet_nodes:" in graph
    assert [line.strip(" |-") for line in graph.splitlines() if "node" in line and "@" not in line] == [
        "node1", "node2", "node3"]


def plain(data):
    """ansible-inventory --list marks inventory strings {"__ansible_unsafe": value}."""
    if isinstance(data, dict):
        if set(data) == {"__ansible_unsafe"}:
            return data["__ansible_unsafe"]
        return dict((k, plain(v)) for k, v in data.items())
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data


def test_lab_inventory_scales_by_environment():
    data = plain(json.loads(ansible_inventory("--list", PODNET_LAB_NODES="50")))
    assert len(data["podnet_nodes"]["hosts"]) == 50
    node50 = data["_meta"]["hostvars"]["node50"]
    assert node50["podnet_pod_cidr"] == "10.244.50.0/24"
    assert node50["ansible_connection"] == "podnet.mesh.nsenter"
    assert len(node50["podnet_lab_nodes"]) == 50
