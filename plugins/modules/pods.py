#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pods
short_description: Wire a list of pods to the node's bridge in one call
version_added: 0.1.0
description:
  - For every pod in O(pods) ensures, in this order, its network namespace, a veth pair
    whose host end is a port of O(bridge) and whose peer is the pod's O(pods[].interface),
    one address of O(pod_cidr) on that interface, C(lo) up, and a default route via the
    bridge address (tagged with the collection's routing protocol).
  - Dual-stack with O(pod_cidrs) (one prefix per address family, IPv4 and IPv6) instead of
    O(pod_cidr) - every pod gets one address of each and a default route per family via the
    bridge's address of that family. IPv6 addresses are added without duplicate address
    detection (usable at once), and a new pod interface with an IPv6 address does not accept
    router advertisements (another pod could otherwise become the pods' IPv6 gateway).
  - The same wiring as M(podnet.mesh.netns), M(podnet.mesh.veth), M(podnet.mesh.netns_addr)
    and M(podnet.mesh.pod_route) (it uses their planners), for many pods in one module run.
  - A pod without an address keeps the one it has, or gets the lowest free address of
    O(pod_cidr), so addresses are stable across runs. A free address is not the gateway, not
    listed for or kept by a pod of the same call, and not held by any other network namespace
    of the node (every namespace under C(/run/netns) and the node's own), so pods of earlier
    calls on the same bridge keep theirs. Those namespaces are only read when some pod
    needs a free address.
  - A pod's veth pair is deleted (O(state=absent), or to make a pair whose peer got lost
    again) only when the kernel's namespace ids prove it is the pod's, that is when its peer
    is the pod's interface in the pod's namespace, is there under another name, or is in no
    namespace the node has mounted. A veth of that name whose peer is anywhere else
    belongs to someone else; the task fails naming it, its peer and where the peer is, and
    nothing changes.
  - In check mode a missing O(bridge) is taken as created by an earlier task of the same play,
    so a whole play can be checked on a fresh node; outside check mode it is an error.
author:
  - podnet.mesh maintainers (@podnet-mesh)
extends_documentation_fragment:
  - podnet.mesh.common
options:
  pods:
    description: The pods.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the pod's network namespace.
        type: str
        required: true
      address:
        description: The pod's address in O(pod_cidr) (with or without the prefix length).
        type: str
      addresses:
        description:
          - The pod's addresses, at most one per prefix of O(pod_cidrs) (with or without the prefix
            length); may be given with O(pods[].address) when the two are of different families.
          - A family without an address here keeps the pod's address of that family, or gets the
            lowest free one.
        type: list
        elements: str
      veth:
        description: Host end name. Defaults to C(veth-<name>), or a stable hash when that is longer than 15 bytes.
        type: str
      interface:
        description: The pod's interface name.
        type: str
        default: eth0
  bridge:
    description: The node's bridge (it must exist, see M(podnet.mesh.bridge)).
    type: str
    default: cni0
  pod_cidr:
    description:
      - The node's pod CIDR, e.g. V(10.244.1.0/24) or V(fd00:10:244:1::/64) (IPv4 /8 to /30, IPv6 /32 to /120).
      - One of O(pod_cidr) and O(pod_cidrs) is required.
    type: str
  pod_cidrs:
    description:
      - The node's pod CIDRs, at most one per address family, for dual-stack pods, e.g.
        V([10.244.1.0/24, fd00:10:244:1::/64]). The first is the pods' primary family (their
        returned O(pods[].address)).
    type: list
    elements: str
  gateway:
    description:
      - The pods' default gateway of its family. Defaults to the first address of the pod CIDR of
        that family; every other family's gateway is the first address of its pod CIDR.
    type: str
  mtu:
    description: MTU of both veth ends. When omitted, left as it is.
    type: int
  hairpin:
    description: Hairpin mode of the bridge ports. When omitted, not managed.
    type: bool
  proto:
    description: Routing protocol number of the pods' default routes.
    type: int
    default: 149
  state:
    description: V(absent) deletes the listed pods (veth pair and namespace).
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Pods red and blue of node1
  podnet.mesh.pods:
    bridge: cni0
    pod_cidr: 10.244.1.0/24
    pods:
      - name: red
        address: 10.244.1.2
      - name: blue

- name: Dual-stack pods of node1
  podnet.mesh.pods:
    pod_cidrs: [10.244.1.0/24, "fd00:10:244:1::/64"]
    pods:
      - name: red
        addresses: [10.244.1.2, "fd00:10:244:1::2"]
      - name: blue
"""

RETURN = r"""
pods:
  description:
    - The pods as wired (in check mode, as they would be); empty with O(state=absent).
    - C(address) and C(gateway) are those of the first pod CIDR; C(addresses) and C(gateways) list every family's.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "red", "veth": "veth-red", "interface": "eth0", "address": "10.244.1.2/24",
            "gateway": "10.244.1.1", "addresses": ["10.244.1.2/24", "fd00:10:244:1::2/64"],
            "gateways": ["10.244.1.1", "fd00:10:244:1::1"]}]
actions:
  description: Kernel changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["create namespace red", "create veth veth-red with peer eth0 in namespace red"]
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core.model import DEFAULT_BRIDGE, POD_INTERFACE, ROUTE_PROTO
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import pod as pod_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import reads
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def render(want, cur, plan, predicted):
    return {"pods": plan.details["pods"]}


def main():
    _module.run_module(
        {
            "pods": {
                "type": "list", "elements": "dict", "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "address": {"type": "str"},
                    "addresses": {"type": "list", "elements": "str"},
                    "veth": {"type": "str"},
                    "interface": {"type": "str", "default": POD_INTERFACE},
                },
            },
            "bridge": {"type": "str", "default": DEFAULT_BRIDGE},
            "pod_cidr": {"type": "str"},
            "pod_cidrs": {"type": "list", "elements": "str"},
            "gateway": {"type": "str"},
            "mtu": {"type": "int"},
            "hairpin": {"type": "bool"},
            "proto": {"type": "int", "default": ROUTE_PROTO},
            "state": _module.STATE_OPTION,
        },
        pod_plan.validate, reads.pods, pod_plan.plan_pods, render, None)


if __name__ == "__main__":
    main()
