#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_route
short_description: Manage the routes of the pod network (peer pod CIDRs, pod default routes)
version_added: 0.1.0
description:
  - Ensures a whole list of routes in one call, in the namespace the module runs in or in
    a named namespace (a pod); the full mesh of a node (a route to every other node's pod
    CIDR via that node's IP), or a pod's default route via the bridge IP.
  - Every route it creates carries the collection's own routing protocol number
    (O(proto), default 149; C(ip route) shows it as C(proto 149), or by name once
    C(/etc/iproute2/rt_protos.d/) maps it). Only unicast routes carrying that number are
    ever replaced or removed; any other route for a listed destination and metric (another
    tool's or the kernel's, or a C(blackhole), C(unreachable), C(prohibit) or C(throw)
    route of any protocol) makes the task fail, naming it, before anything is changed.
  - Should the kernel refuse a change all the same (the host changed in between), the
    failure names the first refused change and how many others of its batch were
    refused, and C(actions) lists every change that was applied, also those sent after
    the refused one in the same batch.
  - A listed route that exists with another gateway or device is replaced in place,
    never duplicated. Host-namespace changes are sent in large netlink batches, so
    a thousand routes are one quick call.
author:
  - podnet.mesh maintainers (@podnet-mesh)
extends_documentation_fragment:
  - podnet.mesh.common
options:
  netns:
    description: Named namespace whose routes are managed. When omitted, the namespace the module runs in.
    type: str
  routes:
    description:
      - The routes. Each destination (with its metric) may be listed once.
    type: list
    elements: dict
    required: true
    suboptions:
      dst:
        description: Destination network in CIDR form (host bits zero), or V(default).
        type: str
        required: true
      via:
        description:
          - Gateway address, of the same address family as O(routes[].dst). It must be
            on a subnet directly connected in the namespace (host-gw routing needs layer-2
            adjacency); otherwise the task fails saying so. An IPv6 link-local gateway
            (V(fe80::1)) needs O(routes[].dev) and is not checked.
        type: str
      dev:
        description:
          - Output interface. A route needs O(routes[].via), O(routes[].dev) or both
            (with O(state=absent), neither, as O(routes[].dst) and the metric identify it).
        type: str
      metric:
        description: Route metric (priority). Defaults to the kernel's default, 0 for IPv4 and 1024 for IPv6.
        type: int
      onlink:
        description:
          - The gateway O(routes[].via) is on O(routes[].dev) although no connected network holds it (a
            peer's VXLAN endpoint address on the overlay device, see M(podnet.mesh.overlay)); needs both.
            Not checked against the connected networks.
        type: bool
        default: false
  purge:
    description:
      - Also remove routes of ours (carrying O(proto), in O(table)) that are not listed.
        Routes of other tools and of the kernel are never removed.
    type: bool
    default: false
  proto:
    description:
      - Routing protocol number that marks the collection's routes. Change it only to
        run two independent route sets side by side.
    type: int
    default: 149
  table:
    description: Routing table (254 is C(main)).
    type: int
    default: 254
  state:
    description:
      - V(absent) removes the listed routes if they are ours; others are left alone.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The result's C(routes) lists all routes of ours in the table after the run, not only the listed ones.
"""

EXAMPLES = r"""
- name: Full mesh on node1 of a three-node cluster, removing routes to nodes that left
  podnet.mesh.pod_route:
    routes:
      - dst: 10.244.2.0/24
        via: 192.168.1.12
      - dst: 10.244.3.0/24
        via: 192.168.1.13
    purge: true

- name: Default route of pod red via the bridge
  podnet.mesh.pod_route:
    netns: red
    routes:
      - dst: default
        via: 10.244.1.1

- name: Remove one route of ours, leave the rest
  podnet.mesh.pod_route:
    routes:
      - dst: 10.244.3.0/24
    state: absent
"""

RETURN = r"""
routes:
  description: All routes of ours in the table after the run (in check mode, as they would be).
  returned: always
  type: list
  elements: dict
  sample: [{"dst": "10.244.2.0/24", "via": "192.168.1.12", "dev": "eth0", "metric": 0}]
added:
  description: Routes added.
  returned: always
  type: list
  elements: dict
  sample: [{"dst": "10.244.3.0/24", "via": "192.168.1.13", "dev": null, "metric": 0}]
removed:
  description: Routes removed (purged, or listed with O(state=absent)).
  returned: always
  type: list
  elements: dict
  sample: []
replaced:
  description: Routes whose gateway or device changed, each as before and after.
  returned: always
  type: list
  elements: dict
  sample: [{"before": {"dst": "10.244.2.0/24", "via": "192.168.1.99", "dev": "eth0", "metric": 0},
            "after": {"dst": "10.244.2.0/24", "via": "192.168.1.12", "dev": null, "metric": 0}}]
actions:
  description: Kernel changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["add route 10.244.3.0/24 via 192.168.1.13 metric 0"]
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import MAIN_TABLE, ROUTE_PROTO
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import routes as route_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import reads
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def validate(params):
    routes = [dict((k, r.get(k)) for k in v.ROUTE_KEYS) for r in params["routes"]]
    return {
        "netns": v.optional_netns(params["netns"], "netns"),
        "routes": v.route_list(routes, "routes", next_hop=params["state"] == "present"),
        "purge": params["purge"],
        "proto": v.integer(params["proto"], "proto", 1, 255),
        "table": v.integer(params["table"], "table", 1, 2 ** 32 - 1),
        "state": params["state"],
    }


def render(want, cur, plan, predicted):
    if predicted or not cur["netns_exists"]:
        routes = plan.details["routes"]
    else:
        routes = route_plan.public_routes(cur["ours"].values())
    return dict(plan.details, routes=routes)


def main():
    _module.run_module(
        {
            "netns": {"type": "str"},
            "routes": {
                "type": "list", "elements": "dict", "required": True,
                "options": {
                    "dst": {"type": "str", "required": True},
                    "via": {"type": "str"},
                    "dev": {"type": "str"},
                    "metric": {"type": "int"},
                    "onlink": {"type": "bool", "default": False},
                },
            },
            "purge": {"type": "bool", "default": False},
            "proto": {"type": "int", "default": ROUTE_PROTO},
            "table": {"type": "int", "default": MAIN_TABLE},
            "state": _module.STATE_OPTION,
        },
        validate, reads.routes, route_plan.plan_routes, render, None)


if __name__ == "__main__":
    main()
