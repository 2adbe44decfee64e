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
    "pipelining": True, "stack": "ipv4", "gateway6": "2001:db8:1::1/64", "external6": "2001:db8:113::10/64",
    "cluster_cidr6": "fd00:10:244::/56", "pod_prefix6": 64,
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


def ansible_inventory(*args, inventory="lab", **env):
    """Run ansible-inventory of this Python's environment against the collection."""
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if not os.path.exists(binary):
        pytest.skip("ansible-inventory not installed next to %s" % sys.executable)
    environ = dict((k, v) for k, v in os.environ.items() if not k.startswith("PODNET_LAB_"))
    environ.update(env, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=os.path.dirname(
        os.path.dirname(os.path.dirname(COLLECTION))))
    result = subprocess.run(
        [binary, "-i", os.path.join(COLLECTION, "inventories", inventory)] + list(args),
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


# ------------------------------------------------------------------ stacks
def test_ipv4_stack_is_the_classic_lab_exactly():
    assert plugin.lab_inventory(dict(OPTIONS, stack="ipv4"), 3) == plugin.lab_inventory(
        dict((k, v) for k, v in OPTIONS.items() if k not in ("stack", "gateway6", "external6", "cluster_cidr6",
                                                             "pod_prefix6")), 3)
    inv = plugin.lab_inventory(OPTIONS, 3)
    assert not [key for key in inv["all"] if key.endswith("6")] and "podnet_lab_ipv6" not in inv["all"]


def test_dual_stack_variables():
    inv = plugin.lab_inventory(dict(OPTIONS, stack="dual"), 3)
    assert inv["hosts"]["node2"] == {
        "ansible_connection": "podnet.mesh.nsenter",
        "ansible_host": "node2",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_pipelining": True,
        "podnet_pod_cidrs": ["10.244.2.0/24", "fd00:10:244:2::/64"],
        "podnet_node_ips": ["192.168.1.12", "2001:db8:1::12"],
        "podnet_pods": [{"name": "red", "addresses": ["10.244.2.2", "fd00:10:244:2::2"]},
                        {"name": "blue", "addresses": ["10.244.2.3", "fd00:10:244:2::3"]}],
    }
    assert inv["group"] == {
        "podnet_cluster_cidrs": ["10.244.0.0/16", "fd00:10:244::/56"], "podnet_bridge": "cni0",
        "podnet_verify_external": ["203.0.113.10", "2001:db8:113::10"], "podnet_install_prerequisites": False,
    }
    assert inv["all"]["podnet_lab_nodes"][0] == {"name": "node1", "address": "192.168.1.11/24",
                                                 "address6": "2001:db8:1::11/64"}
    assert inv["all"]["podnet_lab_ipv6"] is True
    assert inv["all"]["podnet_lab_gateway6"] == "2001:db8:1::1/64"
    assert inv["all"]["podnet_lab_external6"] == "2001:db8:113::10/64"
    assert inv["all"]["podnet_lab_gateway"] == "192.168.1.1/24"


def test_ipv6_stack_variables():
    inv = plugin.lab_inventory(dict(OPTIONS, stack="ipv6"), 3)
    host = inv["hosts"]["node3"]
    assert host["podnet_pod_cidrs"] == ["fd00:10:244:3::/64"]
    assert host["podnet_node_ips"] == ["2001:db8:1::13"]
    assert host["podnet_pods"] == [{"name": "red", "addresses": ["fd00:10:244:3::2"]},
                                   {"name": "blue", "addresses": ["fd00:10:244:3::3"]}]
    assert not {"podnet_pod_cidr", "podnet_node_ip"} & set(host)
    assert inv["group"]["podnet_cluster_cidrs"] == ["fd00:10:244::/56"]
    assert inv["group"]["podnet_verify_external"] == ["2001:db8:113::10"]
    assert "podnet_cluster_cidr" not in inv["group"]
    # The lab's own network is the same as with dual: IPv4 stays for the connection.
    assert inv["all"] == plugin.lab_inventory(dict(OPTIONS, stack="dual"), 3)["all"]


@pytest.mark.parametrize("stack", ["dual", "ipv6"])
def test_ipv6_prefixes_up_to_255_nodes_in_hex(stack):
    inv = plugin.lab_inventory(dict(OPTIONS, stack=stack), 255)
    assert inv["hosts"]["node10"]["podnet_pod_cidrs"][-1] == "fd00:10:244:a::/64"
    assert inv["hosts"]["node255"]["podnet_pod_cidrs"][-1] == "fd00:10:244:ff::/64"
    assert inv["hosts"]["node255"]["podnet_node_ips"][-1] == "2001:db8:1::265"
    assert inv["all"]["podnet_lab_gateway"] == "192.168.1.1/22"
    with pytest.raises(AnsibleParserError, match="256 nodes need 256 pod CIDRs"):
        plugin.lab_inventory(dict(OPTIONS, stack=stack), 256)
    with pytest.raises(AnsibleParserError, match="16 nodes need 16 IPv6 pod prefixes of /64 after the first, "
                                                 "but fd00:10:244::/60 holds only 15"):
        plugin.lab_inventory(dict(OPTIONS, stack=stack, cluster_cidr6="fd00:10:244::/60"), 16)


@pytest.mark.parametrize("options, message", [
    ({"stack": "ipv5"}, "stack 'ipv5' is not one of ipv4, dual, ipv6"),
    ({"stack": "dual", "gateway6": "2001:db8:1::1"}, "gateway6 '2001:db8:1::1' is not an address in CIDR form"),
    ({"stack": "dual", "external6": "203.0.113.10/24"}, "external6 203.0.113.10/24 is not an IPv6 address"),
    ({"stack": "ipv6", "cluster_cidr6": "fd00:10:244::/56", "pod_prefix6": 48}, "between the cluster prefix"),
])
def test_impossible_ipv6_labs_fail_parsing(options, message):
    with pytest.raises(AnsibleParserError, match=message):
        plugin.lab_inventory(dict(OPTIONS, **options), 3)


@pytest.mark.parametrize("inventory, pod_cidrs, external", [
    ("lab-dualstack", ["10.244.2.0/24", "fd00:10:244:2::/64"], ["203.0.113.10", "2001:db8:113::10"]),
    ("lab-ipv6", ["fd00:10:244:2::/64"], ["2001:db8:113::10"]),
])
def test_the_ipv6_lab_inventories(inventory, pod_cidrs, external):
    data = plain(json.loads(ansible_inventory("--list", inventory=inventory)))
    assert sorted(data["podnet_nodes"]["hosts"]) == ["node1", "node2", "node3"]
    node2 = data["_meta"]["hostvars"]["node2"]
    assert node2["podnet_pod_cidrs"] == pod_cidrs
    assert node2["podnet_verify_external"] == external
    assert node2["podnet_lab_ipv6"] is True and node2["podnet_lab_name"] == "podnet"
    assert node2["podnet_lab_nodes"][1] == {"name": "node2", "address": "192.168.1.12/24", "address6": "2001:db8:1::12/64"}
    assert "podnet_pod_cidr" not in node2 and "podnet_cluster_cidr" not in node2


# ------------------------------------------------------------------ routed
def test_routed_lab_places_node3_on_the_second_subnet():
    inv = plugin.lab_inventory(dict(OPTIONS, subnets=2), 3)
    assert [inv["hosts"][n]["podnet_node_ip"] for n in ("node1", "node2", "node3")] == [
        "192.168.1.11", "192.168.1.12", "192.168.2.13"]
    assert inv["all"]["podnet_lab_gateway"] == "192.168.1.1/24"
    assert inv["all"]["podnet_lab_subnets"] == ["192.168.2.1/24"]
    assert inv["all"]["podnet_lab_nodes"][2] == {"name": "node3", "address": "192.168.2.13/24"}


def test_one_subnet_emits_exactly_the_classic_lab():
    assert plugin.lab_inventory(dict(OPTIONS, subnets=1, node_subnets={}), 3) == plugin.lab_inventory(OPTIONS, 3)


def test_routed_dual_stack_lab_and_a_moved_node():
    options = dict(OPTIONS, stack="dual", subnets=2, node_subnets={"node3": 1, "node1": 2})
    inv = plugin.lab_inventory(options, 3)
    assert inv["hosts"]["node1"]["podnet_node_ips"] == ["192.168.2.11", "2001:db8:2::11"]
    assert inv["hosts"]["node3"]["podnet_node_ips"] == ["192.168.1.13", "2001:db8:1::13"]
    assert inv["all"]["podnet_lab_subnets6"] == ["2001:db8:2::1/64"]
    assert inv["all"]["podnet_lab_nodes"][0] == {"name": "node1", "address": "192.168.2.11/24",
                                                 "address6": "2001:db8:2::11/64"}


@pytest.mark.parametrize("options, message", [
    ({"subnets": 0}, "subnets must be a positive integer"),
    ({"subnets": 2, "node_subnets": {"node7": 1}}, "node7 is not one of the lab's nodes"),
    ({"subnets": 2, "node_subnets": {"node3": 5}}, "node3=5 is not a subnet of the lab"),
    ({"subnets": 2, "gateway": "10.0.0.1/16"}, "needs a prefix of /24 or longer"),
])
def test_impossible_routed_labs_fail_parsing(options, message):
    with pytest.raises(AnsibleParserError, match=message):
        plugin.lab_inventory(dict(OPTIONS, **options), 3)


@pytest.mark.parametrize("environ, configured, expected", [
    ({}, 2, 2), ({}, None, 1), ({"PODNET_LAB_SUBNETS": "5"}, 2, 5), ({"PODNET_LAB_SUBNETS": ""}, 2, 2),
])
def test_environment_overrides_the_subnets(environ, configured, expected):
    assert plugin.lab_subnets(configured, environ) == expected


@pytest.mark.parametrize("environ, configured, expected", [
    ({}, {"node3": 1}, {"node3": 1}),
    ({"PODNET_LAB_NODE_SUBNETS": "node3=1,node5=2"}, {"node3": 2}, {"node3": 1, "node5": 2}),
    ({"PODNET_LAB_NODE_SUBNETS": ""}, {"node3": 2}, {}),
])
def test_environment_overrides_the_node_subnets(environ, configured, expected):
    assert plugin.lab_node_subnets(configured, environ) == expected


@pytest.mark.parametrize("value", ["node3", "node3=x", "=1", "node3=1;node4=2"])
def test_environment_node_subnets_must_be_node_equals_number(value):
    with pytest.raises(AnsibleParserError, match="is not node=subnet"):
        plugin.lab_node_subnets({}, {"PODNET_LAB_NODE_SUBNETS": value})


def test_lab_routed_inventory_and_a_moved_node_through_ansible_inventory():
    data = plain(json.loads(ansible_inventory("--list", inventory="lab-routed")))
    hostvars = data["_meta"]["hostvars"]
    assert [hostvars[n]["podnet_node_ip"] for n in ("node1", "node2", "node3")] == [
        "192.168.1.11", "192.168.1.12", "192.168.2.13"]
    data = plain(json.loads(ansible_inventory("--list", inventory="lab-routed", PODNET_LAB_NODE_SUBNETS="node3=1",
                                              PODNET_LAB_NODES="10", PODNET_LAB_SUBNETS="5")))
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["node3"]["podnet_node_ip"] == "192.168.1.13"
    assert hostvars["node10"]["podnet_node_ip"] == "192.168.5.20"
    assert hostvars["node1"]["podnet_lab_subnets"] == ["192.168.%d.1/24" % k for k in range(2, 6)]
