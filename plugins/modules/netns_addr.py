#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: netns_addr
short_description: Manage the addresses and admin state of an interface in a namespace
version_added: 0.1.0
description:
  - Sets the addresses of one interface, in a named namespace (a pod) or in the
    namespace the module runs in, and brings it (and the namespace's C(lo)) up.
author:
  - podnet.mesh maintainers (@podnet-mesh)
extends_documentation_fragment:
  - podnet.mesh.common
options:
  netns:
    description: Named namespace of the interface. When omitted, the namespace the module runs in.
    type: str
  interface:
    description: Interface name.
    type: str
    required: true
  addresses:
    description:
      - Addresses in CIDR form, e.g. V(10.244.1.2/24).
      - With O(state=present) this is the complete list; addresses of the interface
        that are not listed are removed (IPv6 link-local addresses are left to the
        kernel). When omitted, addresses are not managed.
      - With O(state=absent), the addresses to remove; when omitted, all of them.
    type: list
    elements: str
  up:
    description:
      - Whether the interface is administratively up. V(true) also brings the
        namespace's loopback C(lo) up.
    type: bool
    default: true
  state:
    description:
      - V(absent) removes addresses (see O(addresses)). A missing namespace or
        interface is then not an error.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Address of pod red
  podnet.mesh.netns_addr:
    netns: red
    interface: eth0
    addresses:
      - 10.244.1.2/24
"""

RETURN = r"""
interface:
  description: The interface after the run (in check mode, as it would be); null when it does not exist.
  returned: always
  type: dict
  contains:
    name:
      description: Interface name.
      type: str
      sample: eth0
    netns:
      description: Namespace name, null for the namespace the module runs in.
      type: str
      sample: red
    ifindex:
      description: Interface index.
      type: int
      sample: 2
    up:
      description: Whether the interface is administratively up.
      type: bool
      sample: true
    addresses:
      description: Addresses in CIDR form (IPv6 link-local excluded).
      type: list
      elements: str
      sample: ["10.244.1.2/24"]
actions:
  description: Kernel changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["add address 10.244.1.2/24 to eth0 in namespace red", "set up=True on link eth0 in namespace red"]
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def validate(params):
    return {
        "netns": v.optional_netns(params["netns"], "netns"),
        "interface": v.ifname(params["interface"], "interface"),
        "addresses": v.address_list(params["addresses"], "addresses"),
        "up": params["up"],
        "state": params["state"],
    }


def read(session, want):
    ns = want["netns"]
    if ns is not None and not _netns.netns_exists(ns):
        return {"netns_exists": False, "link": None, "lo": None}
    links = session.ns(ns).links(with_addresses=[want["interface"]])
    return {"netns_exists": True, "link": links.get(want["interface"]), "lo": links.get("lo")}


def render(want, cur, plan, predicted):
    link = cur["link"]
    if link is None and predicted:
        link = {"name": want["interface"], "ifindex": None}
    if link is None:
        return None
    if predicted:
        link = dict(link, up=plan.after["up"], addresses=plan.after["addresses"])
    return {"name": link["name"], "netns": want["netns"], "ifindex": link["ifindex"],
            "up": link["up"], "addresses": list(link["addresses"])}


def main():
    _module.run_module(
        {
            "netns": {"type": "str"},
            "interface": {"type": "str", "required": True},
            "addresses": {"type": "list", "elements": "str"},
            "up": {"type": "bool", "default": True},
            "state": _module.STATE_OPTION,
        },
        validate, read, links.plan_interface_addresses, render, "interface")


if __name__ == "__main__":
    main()
