# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lab
short_description: The podnet.mesh lab's simulated nodes as an inventory
version_added: 0.1.0
description:
  - Generates the inventory of a lab of O(nodes) simulated nodes, reached through the
    P(podnet.mesh.nsenter#connection) connection plugin, and everything the roles need.
  - "Node I(i) (1-based) is called O(name_prefix)I(i), has the address
    network(O(gateway)) + O(node_offset) + I(i) on the lab switch (192.168.1.11, .12, ...),
    the pod CIDR I(i) of length O(pod_prefix) in O(cluster_cidr) (10.244.I(i).0/24) and one
    pod per name in O(pods) at its 2nd, 3rd, ... address (red 10.244.I(i).2, blue
    10.244.I(i).3). When the nodes do not fit in the gateway's subnet its prefix is
    widened (192.168.1.1/23 for 250 nodes); every smaller lab keeps its addresses."
  - "Per host: C(ansible_connection=podnet.mesh.nsenter), C(ansible_host) (the node name),
    C(ansible_python_interpreter), C(ansible_pipelining), C(podnet_pod_cidr),
    C(podnet_node_ip) (without prefix) and C(podnet_pods) (list of C({name, address}))."
  - "With O(stack=dual) or O(stack=ipv6), the lab's network gets IPv6 beside IPv4 (IPv4 stays for the
    connection and SSH): node I(i) also has the address network(O(gateway6)) + the digits of
    O(node_offset) + I(i) read as hex (2001:db8:1::11, ::12, ...: it reads like its IPv4 twin), the
    IPv6 pod prefix I(i) of length O(pod_prefix6) in O(cluster_cidr6) (fd00:10:244:I(i)::/64, I(i) in
    hex) and pods at its 2nd, 3rd, ... address. Per host then, instead of the singular names,
    C(podnet_pod_cidrs), C(podnet_node_ips) (without prefix) and C(podnet_pods) (list of
    C({name, addresses})), each with the IPv4 value first and the IPv6 one second (O(stack=dual)),
    or the IPv6 one only (O(stack=ipv6))."
  - "With O(ssh), per host instead: C(ansible_connection=ssh), C(ansible_host) (the node's
    address), C(ansible_user) (O(ssh_user)), C(ansible_ssh_private_key_file),
    C(ansible_ssh_common_args) (the lab's C(known_hosts), C(StrictHostKeyChecking=accept-new), a
    C(ControlPath) below the lab's directory) and C(ansible_become=true). The nodes' addresses are reachable
    from the lab's controller namespace only: run C(ansible-playbook) inside it."
  - "Group O(group): C(podnet_cluster_cidr), C(podnet_bridge), C(podnet_verify_external)
    (the external host) and C(podnet_install_prerequisites=false) (a lab node's C(/usr) is the
    machine's: packages would go on the machine, not on the node). With O(stack=dual) or
    O(stack=ipv6), C(podnet_cluster_cidrs) instead of C(podnet_cluster_cidr), and
    C(podnet_verify_external) lists the external host's addresses of the stack."
  - "Group C(all), so that plays on C(localhost) see them too: C(podnet_lab_name),
    C(podnet_lab_root), C(podnet_lab_gateway), C(podnet_lab_external), C(podnet_lab_ssh),
    C(podnet_lab_ssh_user) and C(podnet_lab_nodes) (list of C({name, address}), what the
    C(podnet.mesh.lab) role builds). With O(stack=dual) or O(stack=ipv6) also
    C(podnet_lab_ipv6=true), C(podnet_lab_gateway6), C(podnet_lab_external6), and every
    C(podnet_lab_nodes) entry has C(address6)."
  - Group variables from C(group_vars/) files next to the configuration override these.
  - The configuration file name must end with C(podnet.yml) or C(podnet.yaml).
author:
  - podnet.mesh maintainers (@podnet-mesh)
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [podnet.mesh.lab]
  nodes:
    description:
      - Number of nodes.
      - The environment variable E(PODNET_LAB_NODES) overrides this, also when it is set in
        the file (C(PODNET_LAB_NODES=50 ansible-playbook -i inventories/lab ...)).
    type: int
    default: 3
  lab_name:
    description: Name of the lab (C(podnet_lab_name)).
    type: str
    default: podnet
    env:
      - name: PODNET_LAB_NAME
  lab_root:
    description: Directory holding the labs (C(podnet_lab_root)).
    type: str
    default: /run/podnet-lab
    env:
      - name: PODNET_LAB_ROOT
  group:
    description: Inventory group of the nodes (the roles' C(podnet_nodes_group)).
    type: str
    default: podnet_nodes
  name_prefix:
    description: Node names are this prefix followed by the node number.
    type: str
    default: node
  gateway:
    description: The lab router's address on the switch, in CIDR form.
    type: str
    default: 192.168.1.1/24
  node_offset:
    description: Node I(i) gets address number O(node_offset) + I(i) of the switch network.
    type: int
    default: 10
  subnets:
    description:
      - The routed lab. The number of subnets (layer-2 segments) the nodes are split into, joined by the lab
        router; V(1) is the lab of one switch network.
      - "The nodes are split into contiguous blocks of ceil(O(nodes) / O(subnets)) nodes, block I(k) on
        subnet I(k) (3 nodes on 2 subnets: node1 and node2 on subnet 1, node3 on subnet 2). Subnet I(k) is the
        network of O(gateway) with its third octet + I(k) - 1 (192.168.I(k).0/24), the router has the
        gateway's host number there (192.168.I(k).1), and node I(i) keeps its host number
        (192.168.I(k).(O(node_offset) + I(i)): node3 is 192.168.2.13). With O(stack=dual) or O(stack=ipv6),
        subnet I(k) is 2001:db8:I(k)::/64 likewise (its router ::1, node3 2001:db8:2::13)."
      - No prefix is widened then; nodes that do not fit in their subnet are refused.
      - The environment variable E(PODNET_LAB_SUBNETS) overrides this, also when it is set in the file.
    type: int
    default: 1
  node_subnets:
    description:
      - Places single nodes on another subnet than their block's (node name -> subnet number, 1-based).
        Building the lab again with a node placed elsewhere moves the node in place.
      - The environment variable E(PODNET_LAB_NODE_SUBNETS) (C(node3=1,node5=2)) overrides this, also when it is
        set in the file.
    type: dict
    default: {}
  external:
    description: Address of the lab's external host, in CIDR form.
    type: str
    default: 203.0.113.10/24
  cluster_cidr:
    description: The cluster CIDR (C(podnet_cluster_cidr)).
    type: str
    default: 10.244.0.0/16
  pod_prefix:
    description: Prefix length of every node's pod CIDR.
    type: int
    default: 24
  stack:
    description:
      - The pod network's address families. V(ipv4) is the classic lab. V(dual) gives the lab's
        network IPv6 beside IPv4 and every pod an IPv4 and an IPv6 address. V(ipv6) is the same lab
        network with an IPv6-only pod network.
      - The lab's own network keeps IPv4 in every stack (the connection plugin and SSH use it).
    type: str
    choices: [ipv4, dual, ipv6]
    default: ipv4
  gateway6:
    description: With O(stack=dual) or O(stack=ipv6), the lab router's IPv6 address on the switch, in CIDR form.
    type: str
    default: 2001:db8:1::1/64
  external6:
    description:
      - With O(stack=dual) or O(stack=ipv6), the lab's external host's IPv6 address, in CIDR form.
      - The router takes the first address of its network (V(2001:db8:113::1)).
    type: str
    default: 2001:db8:113::10/64
  cluster_cidr6:
    description:
      - With O(stack=dual) or O(stack=ipv6), the IPv6 cluster CIDR (in C(podnet_cluster_cidrs)).
      - The default /56 holds the /64 pod prefixes of 255 nodes, as the default IPv4 cluster CIDR
        holds 255 /24; a larger lab needs a shorter prefix here (and in O(cluster_cidr)).
    type: str
    default: fd00:10:244::/56
  pod_prefix6:
    description: Prefix length of every node's IPv6 pod prefix.
    type: int
    default: 64
  pods:
    description: Pod names on every node.
    type: list
    elements: str
    default: [red, blue]
  bridge:
    description: The nodes' bridge (C(podnet_bridge)).
    type: str
    default: cni0
  python_interpreter:
    description:
      - C(ansible_python_interpreter) of the nodes. Modules run with it inside the node;
        it needs pyroute2 (Debian C(python3-pyroute2)).
    type: str
    default: /usr/bin/python3
  pipelining:
    description: C(ansible_pipelining) of the nodes (one process per module, no file copy).
    type: bool
    default: true
  ssh:
    description:
      - The lab's nodes run sshd (option O(podnet.mesh.lab#module:ssh) of the module), and the
        nodes are reached over SSH as O(ssh_user) with C(become), from the lab's controller
        namespace, instead of through P(podnet.mesh.nsenter#connection).
      - The environment variable E(PODNET_LAB_SSH) overrides this, also when it is set in the file.
      - The SSH variables name files below the lab's directory (O(lab_root)/O(lab_name)/.ssh), so
        another lab is named with O(lab_name) (E(PODNET_LAB_NAME)), not only with an extra variable
        C(podnet_lab_name).
    type: bool
    default: false
    env:
      - name: PODNET_LAB_SSH
  ssh_user:
    description: The nodes' SSH user (with O(ssh)).
    type: str
    default: podnet
"""

EXAMPLES = r"""
# inventories/lab/lab.podnet.yml
plugin: podnet.mesh.lab
nodes: 3

# inventories/lab-dualstack/lab.podnet.yml holds the same with IPv6 beside IPv4:
#   plugin: podnet.mesh.lab
#   nodes: 3
#   stack: dual

# inventories/lab-routed/lab.podnet.yml: node1, node2 on 192.168.1.0/24, node3 on 192.168.2.0/24:
#   plugin: podnet.mesh.lab
#   nodes: 3
#   subnets: 2
# and node3 moved to subnet 1 (playbooks/lab.yml --tags lab moves it in place):
#   PODNET_LAB_NODE_SUBNETS=node3=1 ansible-playbook -i inventories/lab-routed playbooks/lab.yml --tags lab

# Fifty nodes, without editing the file:
#   PODNET_LAB_NODES=50 ansible-inventory -i inventories/lab --graph

# Over SSH: build the lab with sshd on every node, then run playbooks from its controller namespace:
#   PODNET_LAB_SSH=1 ansible-playbook -i inventories/lab playbooks/lab.yml --tags lab
#   PODNET_LAB_SSH=1 nsenter --net=/run/podnet-lab/podnet/controller/net \
#       ansible-playbook -i inventories/lab playbooks/site.yml
"""

import os
from ipaddress import ip_interface, ip_network

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.validate import interface_address
from ansible_collections.podnet.mesh.plugins.module_utils.lab.topology import (
    STACKS, generate, lab_path, member_name, ssh_paths)

COUNT_ENV = "PODNET_LAB_NODES"
SUBNETS_ENV = "PODNET_LAB_SUBNETS"
NODE_SUBNETS_ENV = "PODNET_LAB_NODE_SUBNETS"


def lab_count(configured, environ=None):
    """The node count: PODNET_LAB_NODES when set, else the configured one."""
    return _count_from_env(COUNT_ENV, configured, "nodes", environ)


def lab_subnets(configured, environ=None):
    """The subnet count: PODNET_LAB_SUBNETS when set, else the configured one."""
    return _count_from_env(SUBNETS_ENV, 1 if configured is None else configured, "subnets", environ)


def _count_from_env(name, configured, what, environ=None):
    """The number in environment variable name when set (not empty), else configured."""
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    if value in (None, ""):
        return configured
    try:
        return int(value)
    except ValueError:
        raise AnsibleParserError("%s=%r is not a number of %s" % (name, value, what))


def lab_node_subnets(configured, environ=None):
    """{node: subnet}: PODNET_LAB_NODE_SUBNETS (node3=1,node5=2) when set, else the configured dict."""
    environ = os.environ if environ is None else environ
    value = environ.get(NODE_SUBNETS_ENV)
    if value is None:
        return dict(configured or {})
    result = {}
    for item in value.replace(" ", "").split(","):
        if not item:
            continue
        name, sep, number = item.partition("=")
        if not sep or not name or not number.isdigit():
            raise AnsibleParserError("%s=%r: %r is not node=subnet (node3=1,node5=2)" % (NODE_SUBNETS_ENV, value, item))
        result[name] = int(number)
    return result


def lab_inventory(options, count):
    """{hosts: {name: vars}, group: vars, all: vars} for the options (dict) and count."""
    stack = options.get("stack") or "ipv4"
    ipv6 = stack != "ipv4"
    try:
        if stack not in STACKS:
            raise ValueError("stack %r is not one of %s" % (stack, ", ".join(STACKS)))
        extra = {}
        if ipv6:
            extra = {"gateway6": options["gateway6"], "cluster_cidr6": options["cluster_cidr6"],
                     "pod_prefix6": options["pod_prefix6"]}
        lab = generate(count, gateway=options["gateway"], cluster_cidr=options["cluster_cidr"],
                       pod_prefix=options["pod_prefix"], pods=options["pods"],
                       offset=options["node_offset"], name_prefix=options["name_prefix"],
                       subnets=1 if options.get("subnets") is None else options["subnets"],
                       node_subnets=options.get("node_subnets"), **extra)
        for node in lab["nodes"]:
            member_name(node["name"], "name_prefix")
        external = interface_address(options["external"], "external")
        external6 = interface_address(options["external6"], "external6") if ipv6 else None
        if external6 is not None and ip_interface(external6).version != 6:
            raise ValueError("external6 %s is not an IPv6 address" % external6)
        cluster6 = str(ip_network(options["cluster_cidr6"])) if ipv6 else None
    except (ValueError, ValidationError) as exc:
        raise AnsibleParserError("podnet.mesh.lab inventory: %s" % to_native(exc))
    hosts = {}
    ssh = ssh_paths(lab_path(options["lab_root"], options["lab_name"])) if options.get("ssh") else None
    for node in lab["nodes"]:
        hosts[node["name"]] = {
            "ansible_connection": "podnet.mesh.nsenter",
            "ansible_host": node["name"],
            "ansible_python_interpreter": options["python_interpreter"],
            "ansible_pipelining": options["pipelining"],
        }
        hosts[node["name"]].update(_pod_network(stack, node))
        if ssh:
            hosts[node["name"]].update({
                "ansible_connection": "ssh",
                "ansible_host": node["ip"],
                "ansible_port": 22,
                "ansible_user": options["ssh_user"],
                "ansible_ssh_private_key_file": ssh["key"],
                # ControlPath here, not ansible_control_path_dir: ansible-playbook would make
                # that directory, also when the lab is gone.
                "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=accept-new "
                                           "-o IdentitiesOnly=yes -o BatchMode=yes -o ControlPath=%s/%%C"
                                           % (ssh["known_hosts"], ssh["control_dir"]),
                "ansible_become": True,
                "ansible_become_method": "sudo",
            })
    externals = {"ipv4": [external], "dual": [external, external6], "ipv6": [external6]}[stack]
    group = {
        "podnet_cluster_cidr": options["cluster_cidr"],
        "podnet_bridge": options["bridge"],
        "podnet_verify_external": [address.split("/", 1)[0] for address in externals],
        "podnet_install_prerequisites": False,
    }
    if ipv6:
        del group["podnet_cluster_cidr"]
        group["podnet_cluster_cidrs"] = _of_stack(stack, options["cluster_cidr"], cluster6)
    every = {
        "podnet_lab_name": options["lab_name"],
        "podnet_lab_root": options["lab_root"],
        "podnet_lab_gateway": lab["gateway"],
        "podnet_lab_external": external,
        "podnet_lab_nodes": [dict((key, n[key]) for key in ("name", "address", "address6") if key in n)
                             for n in lab["nodes"]],
        "podnet_lab_ssh": bool(options.get("ssh")),
        "podnet_lab_ssh_user": options.get("ssh_user") or "podnet",
    }
    if lab["subnets"]:
        every["podnet_lab_subnets"] = lab["subnets"]
    if ipv6:
        every.update(podnet_lab_ipv6=True, podnet_lab_gateway6=lab["gateway6"], podnet_lab_external6=external6)
        if lab["subnets6"]:
            every["podnet_lab_subnets6"] = lab["subnets6"]
    return {"hosts": hosts, "group": group, "all": every}


def _of_stack(stack, ipv4, ipv6):
    """[the IPv4 value, the IPv6 value] (dual), or the one of the stack's family."""
    return {"ipv4": [ipv4], "dual": [ipv4, ipv6], "ipv6": [ipv6]}[stack]


def _pod_network(stack, node):
    """A node's pod network variables: the singular names (ipv4), the plural ones (dual, ipv6)."""
    if stack == "ipv4":
        return {"podnet_pod_cidr": node["pod_cidr"], "podnet_node_ip": node["ip"], "podnet_pods": node["pods"]}
    return {
        "podnet_pod_cidrs": _of_stack(stack, node["pod_cidr"], node["pod_cidr6"]),
        "podnet_node_ips": _of_stack(stack, node["ip"], node["ip6"]),
        "podnet_pods": [{"name": pod["name"], "addresses": _of_stack(stack, pod["address"], pod["address6"])}
                        for pod in node["pods"]],
    }


class InventoryModule(BaseInventoryPlugin):
    """Hosts and variables of a podnet.mesh lab."""

    NAME = "podnet.mesh.lab"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("podnet.yml", "podnet.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        options = dict((key, self.get_option(key)) for key in (
            "lab_name", "lab_root", "group", "name_prefix", "gateway", "node_offset", "external",
            "cluster_cidr", "pod_prefix", "pods", "bridge", "python_interpreter", "pipelining", "ssh", "ssh_user",
            "stack", "gateway6", "external6", "cluster_cidr6", "pod_prefix6"))
        options["subnets"] = lab_subnets(self.get_option("subnets"))
        options["node_subnets"] = lab_node_subnets(self.get_option("node_subnets"))
        generated = lab_inventory(options, lab_count(self.get_option("nodes")))
        group = self.inventory.add_group(options["group"])
        for name, variables in generated["hosts"].items():
            self.inventory.add_host(name, group=group)
            for key, value in variables.items():
                self.inventory.set_variable(name, key, value)
        for key, value in generated["group"].items():
            self.inventory.set_variable(group, key, value)
        for key, value in generated["all"].items():
            self.inventory.set_variable("all", key, value)
