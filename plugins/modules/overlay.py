#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay
short_description: The node's VXLAN device and its static forwarding and neighbour entries
version_added: 0.2.0
description:
  - Creates, updates or removes the VXLAN device through which a node reaches the pods of peers
    that are not on its layer-2 segment, with static entries only (no learning, no flooding, no
    daemon). Per peer in O(peers), a forwarding entry (the peer's VTEP MAC is behind its
    O(peers[].node_ip)) and a permanent neighbour entry per address of O(peers[].vtep) (that
    address has the peer's VTEP MAC). The routes to the peers' pod CIDRs, via their VTEP
    addresses on this device with C(onlink), are M(podnet.mesh.pod_route)'s.
  - Every VTEP MAC derives from a node address (V(0e:58) followed by its last four bytes), so
    each node computes its peers' from the inventory and nothing is exchanged.
  - The device is made with the alias C(podnet.mesh overlay); a link of that name without it is
    never changed (the task fails naming it). Its entries are the collection's alone (learning
    is off); with O(purge), those of peers no longer listed are removed.
  - A device whose VNI, port, local address or underlay device differs from the options is made
    again (its entries with it); MAC, MTU and admin state are changed in place.
author:
  - podnet.mesh maintainers (@podnet-mesh)
extends_documentation_fragment:
  - podnet.mesh.common
options:
  name:
    description: The device's name (at most 15 bytes).
    type: str
    default: podnet.vxlan
  vni:
    description: The VXLAN network identifier, the same on every node.
    type: int
    default: 1
  port:
    description: The UDP port of the tunnels, the same on every node (the Linux kernel's and flannel's default).
    type: int
    default: 8472
  local:
    description:
      - This node's address on the underlay, the tunnels' local end (its C(podnet_node_ip)).
      - Required with O(state=present).
    type: str
  dev:
    description: The underlay interface the tunnels leave through. When omitted, the route to each peer decides.
    type: str
  mac:
    description: The device's MAC. Defaults to V(0e:58) followed by the last four bytes of O(local).
    type: str
  mtu:
    description:
      - The device's MTU. When omitted, the kernel's (the underlay device's less the VXLAN overhead, 50
        bytes over IPv4) on creation, and left as it is afterwards.
    type: int
  peers:
    description: The nodes reached through the overlay.
    type: list
    elements: dict
    default: []
    suboptions:
      node_ip:
        description: The peer's address on the underlay (its C(podnet_node_ip)), of O(local)'s family.
        type: str
        required: true
      vtep:
        description:
          - The peer's VTEP addresses, one per address family of its pod CIDRs; the first address of
            each pod CIDR, for example V(10.244.3.0) (as flannel uses).
        type: list
        elements: str
        required: true
      mac:
        description: The peer's VTEP MAC. Defaults to V(0e:58) followed by the last four bytes of O(peers[].node_ip).
        type: str
  purge:
    description: Remove forwarding and neighbour entries of the device that belong to no listed peer.
    type: bool
    default: true
  state:
    description: V(absent) removes the device with every entry on it.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Pods whose traffic crosses the overlay need an MTU 50 bytes below the underlay's (70 over an IPv6
    underlay), or large packets are dropped; set it with C(podnet_mtu), or the C(mtu) options of
    M(podnet.mesh.bridge) and M(podnet.mesh.pods).
"""

EXAMPLES = r"""
- name: node1 reaches node3 (another subnet) over VXLAN
  podnet.mesh.overlay:
    local: 192.168.1.11
    peers:
      - node_ip: 192.168.2.13
        vtep: [10.244.3.0]

- name: Routes to node3's pods through the overlay
  podnet.mesh.pod_route:
    routes:
      - {dst: 10.244.3.0/24, via: 10.244.3.0, dev: podnet.vxlan, onlink: true}
"""

RETURN = r"""
overlay:
  description: The overlay device and its entries after the run (in check mode, as they would be).
  returned: always
  type: dict
  sample: {"name": "podnet.vxlan", "state": "present", "vni": 1, "port": 8472, "local": "192.168.1.11",
           "mac": "0e:58:c0:a8:01:0b", "mtu": 1450, "up": true, "fdb": ["0e:58:c0:a8:02:0d dst 192.168.2.13"],
           "neighbours": ["10.244.3.0 lladdr 0e:58:c0:a8:02:0d"],
           "peers": [{"node_ip": "192.168.2.13", "vtep": ["10.244.3.0"], "mac": "0e:58:c0:a8:02:0d"}]}
actions:
  description: Kernel changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["create vxlan podnet.vxlan with VNI 1, port 8472, local 192.168.1.11, MAC 0e:58:c0:a8:01:0b"]
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import overlay as overlay_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import reads
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def render(want, cur, plan, predicted):
    if predicted:
        return plan.details["overlay"]
    found = overlay_plan.view(cur["link"], cur["fdb"], cur["neighbours"])
    if found["state"] == "present":
        found["peers"] = [dict(p) for p in want["peers"]]
    return found


def main():
    _module.run_module(
        {
            "name": {"type": "str", "default": overlay_plan.DEFAULT_NAME},
            "vni": {"type": "int", "default": overlay_plan.DEFAULT_VNI},
            "port": {"type": "int", "default": overlay_plan.DEFAULT_PORT},
            "local": {"type": "str"},
            "dev": {"type": "str"},
            "mac": {"type": "str"},
            "mtu": {"type": "int"},
            "peers": {
                "type": "list", "elements": "dict", "default": [],
                "options": {
                    "node_ip": {"type": "str", "required": True},
                    "vtep": {"type": "list", "elements": "str", "required": True},
                    "mac": {"type": "str"},
                },
            },
            "purge": {"type": "bool", "default": True},
            "state": _module.STATE_OPTION,
        },
        overlay_plan.validate, reads.overlay, overlay_plan.plan_overlay, render, "overlay")


if __name__ == "__main__":
    main()
