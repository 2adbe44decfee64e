#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: bridge
short_description: Manage the Linux bridge that is a node's pod gateway
version_added: 0.1.0
description:
  - Creates, updates or removes a Linux bridge in the namespace the module runs in,
    with its own addresses (the pod gateway IP), MTU, STP and admin state.
  - A link of that name that is not a bridge is never touched; the task fails instead.
author:
  - podnet.mesh maintainers (@podnet-mesh)
extends_documentation_fragment:
  - podnet.mesh.common
options:
  name:
    description: Bridge name (at most 15 bytes).
    type: str
    required: true
  addresses:
    description:
      - The bridge's own addresses in CIDR form, e.g. V(10.244.1.1/24) (the first
        address of the node's pod CIDR is the pods' gateway).
      - When given, this is the complete list; addresses on the bridge that are not
        listed are removed (IPv6 link-local addresses are left to the kernel).
        When omitted, addresses are not managed.
    type: list
    elements: str
  mac:
    description:
      - The MAC address the bridge is pinned to. A bridge whose MAC nobody set takes the lowest
        MAC of its ports and changes it when that port goes; every pod then holds a wrong
        neighbour entry for its gateway until it expires (tens of seconds of lost packets).
        A MAC set explicitly never follows the ports.
      - When omitted, derived from the first IPv4 address of O(addresses) (V(0a:58) followed by
        its four bytes, as pod interfaces get theirs and as the CNI plugin pins the bridges it
        creates); with only IPv6 addresses, from the last four bytes of the first one; with no
        address listed, the MAC is left as it is.
      - Changing the MAC of a bridge that already has pods makes them look the gateway up again
        (a few seconds); pin it before pods exist where that matters.
    type: str
    version_added: 0.2.0
  mtu:
    description: MTU of the bridge. When omitted, left as it is (a new bridge gets 1500).
    type: int
  stp:
    description: Whether the bridge runs the spanning tree protocol.
    type: bool
    default: false
  up:
    description: Whether the bridge is administratively up.
    type: bool
    default: true
  state:
    description: V(absent) deletes the bridge; its ports are detached by the kernel.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Bridge cni0 with the pod gateway address
  podnet.mesh.bridge:
    name: cni0
    addresses:
      - 10.244.1.1/24
    mtu: 1450

- name: Remove the bridge
  podnet.mesh.bridge:
    name: cni0
    state: absent
"""

RETURN = r"""
bridge:
  description: The bridge after the run (in check mode, as it would be); null when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Bridge name.
      type: str
      sample: cni0
    ifindex:
      description: Interface index (null in check mode for a bridge not yet created).
      type: int
      sample: 4
    mac:
      description: MAC address (null in check mode for a bridge not yet created).
      type: str
      sample: 6e:0c:9a:3b:55:01
    mtu:
      description: MTU.
      type: int
      sample: 1500
    up:
      description: Whether the bridge is administratively up.
      type: bool
      sample: true
    stp:
      description: Whether STP is on.
      type: bool
      sample: false
    addresses:
      description: Addresses in CIDR form (IPv6 link-local excluded).
      type: list
      elements: str
      sample: ["10.244.1.1/24"]
actions:
  description: Kernel changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["create bridge cni0 with MAC 0a:58:0a:f4:01:01", "add address 10.244.1.1/24 to cni0", "set up=True on link cni0"]
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import pinned_bridge_mac
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import reads
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module

FIELDS = ("name", "ifindex", "mac", "mtu", "up", "stp", "addresses")


def pinned_mac(mac, addresses):
    """The MAC to pin: the one given, else derived from the first IPv4 address (IPv6 without one); None: leave it."""
    if mac is not None:
        return v.mac(mac, "mac")
    return pinned_bridge_mac(addresses)


def validate(params):
    addresses = v.address_list(params["addresses"], "addresses")
    return {
        "name": v.ifname(params["name"], "name"),
        "addresses": addresses,
        "mac": pinned_mac(params["mac"], addresses),
        "mtu": v.mtu(params["mtu"], "mtu"),
        "stp": params["stp"],
        "up": params["up"],
        "state": params["state"],
    }


def render(want, link, plan, predicted):
    if predicted:
        if plan.after["state"] == "absent":
            return None
        link = dict(link or {"ifindex": None, "mac": None}, **plan.after)
    return _module.public_link(link, FIELDS)


def main():
    _module.run_module(
        {
            "name": {"type": "str", "required": True},
            "addresses": {"type": "list", "elements": "str"},
            "mac": {"type": "str"},
            "mtu": {"type": "int"},
            "stp": {"type": "bool", "default": False},
            "up": {"type": "bool", "default": True},
            "state": _module.STATE_OPTION,
        },
        validate, reads.bridge, links.plan_bridge, render, "bridge")


if __name__ == "__main__":
    main()
