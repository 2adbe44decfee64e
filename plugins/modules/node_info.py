#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: node_info
short_description: Read a node's addresses, connected networks and default-route address
version_added: 0.1.0
description:
  - Reads, through netlink, what the inventory checks of the pod network need from a node. That is
    every address, the directly connected networks, and the address of the interface that holds the
    IPv4 default route (the default for C(podnet_node_ip)) and the same for IPv6 (the default
    IPv6 entry of C(podnet_node_ips)).
  - One netlink read, no shell commands and no name lookups, so it stays fast where
    C(ansible.builtin.setup) waits on DNS for the node's FQDN.
  - Changes nothing; the result is the same in check mode.
author:
  - podnet.mesh maintainers (@podnet-mesh)
extends_documentation_fragment:
  - podnet.mesh.common
options:
  netns:
    description: Named namespace to read. When omitted, the namespace the module runs in.
    type: str
"""

EXAMPLES = r"""
- name: Read the node's addresses
  podnet.mesh.node_info:
  register: node

- name: Show the node IP other nodes route pod traffic to
  ansible.builtin.debug:
    msg: "{{ node.default_ipv4.address }}"
"""

RETURN = r"""
default_ipv4:
  description:
    - The first IPv4 address of the interface holding the IPv4 default route (lowest metric
      first), or null when there is no such route or address.
  returned: always
  type: dict
  contains:
    address:
      description: The address.
      type: str
      sample: 192.168.50.11
    prefix:
      description: Its prefix length.
      type: int
      sample: 24
    interface:
      description: The interface holding the default route.
      type: str
      sample: eth0
    gateway:
      description: The default route's gateway (null for a device route).
      type: str
      sample: 192.168.50.1
default_ipv6:
  description:
    - The first global IPv6 address of the interface holding the IPv6 default route (lowest metric
      first), or null when there is no such route or address. Same keys as RV(default_ipv4).
  returned: always
  type: dict
  sample: {"address": "2001:db8:1::11", "prefix": 64, "interface": "eth0", "gateway": "2001:db8:1::1"}
addresses:
  description: Every address (IPv6 link-local ones left out) with its interface, in kernel order.
  returned: always
  type: list
  elements: dict
  sample: [{"interface": "lo", "address": "127.0.0.1/8"}, {"interface": "eth0", "address": "192.168.50.11/24"}]
networks:
  description: The directly connected networks (one per distinct network of the addresses).
  returned: always
  type: list
  elements: str
  sample: ["127.0.0.0/8", "192.168.50.0/24"]
actions:
  description: Always empty; the module changes nothing.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import MAIN_TABLE
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan.node import node_view
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def validate(params):
    return {"netns": v.optional_netns(params["netns"], "netns")}


def read(session, want):
    ns = want["netns"]
    if ns is not None and not _netns.netns_exists(ns):
        raise ValidationError("netns", ns, "does not exist")
    handle = session.ns(ns)
    links = handle.links()
    return node_view(links, handle.addresses(), handle.routes(MAIN_TABLE, families=(4, 6), links=links))


def render(want, cur, planned, predicted):
    return cur


def main():
    # Read-only: no planner, nothing changes.
    _module.run_module({"netns": {"type": "str"}}, validate, read, None, render, None)


if __name__ == "__main__":
    main()
