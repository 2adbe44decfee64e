#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: veth
short_description: Manage a veth pair joining a pod namespace to the node's bridge
version_added: 0.1.0
description:
  - Creates, repairs or removes a veth pair. The host end (O(name)) stays in the
    namespace the module runs in, optionally as a port of bridge O(master); the
    peer end (O(peer)) lives in namespace O(netns).
  - Copes with the states hosts are found in. A peer end created but not yet moved
    is moved into O(netns). A host end whose peer is lost is made again; lost means the
    peer is in no namespace the node has mounted (the namespace was deleted or made again
    while a process still held the old one), or it was renamed inside O(netns). A host
    end attached to another bridge is re-attached to O(master). When the namespace is
    gone the kernel has removed the pair already; O(state=present) then fails asking
    for the namespace.
  - Where the peer is, is proven by the kernel's namespace ids, not guessed from names.
    A veth named O(name) whose peer is in another namespace (or, without O(netns),
    is another link of the host namespace) belongs to someone else; it is never
    deleted or changed, with either O(state), and the task fails naming the link,
    its peer and where the peer is.
  - A link named O(name) that is not a veth, or a link named O(peer) in O(netns)
    that is not this pair's peer, is never touched; the task fails instead.
author:
  - podnet.mesh maintainers (@podnet-mesh)
extends_documentation_fragment:
  - podnet.mesh.common
options:
  name:
    description: Name of the host end (at most 15 bytes).
    type: str
    required: true
  peer:
    description: Name of the peer end, the pod's interface.
    type: str
    default: eth0
  netns:
    description:
      - Named namespace of the peer end (must exist, see M(podnet.mesh.netns)).
        When omitted, both ends stay in the namespace the module runs in.
    type: str
  master:
    description:
      - Bridge the host end is a port of. When omitted, the host end's bridge is not managed.
    type: str
  mtu:
    description: MTU of both ends. When omitted, left as it is (a new pair gets 1500).
    type: int
  hairpin:
    description:
      - Hairpin mode of the bridge port (lets a pod reach itself through a service
        address). Needs O(master). When omitted, not managed.
    type: bool
  up:
    description: Whether both ends are administratively up.
    type: bool
    default: true
  state:
    description:
      - V(absent) deletes the pair (deleting the host end removes the peer too), when it is
        the pair asked for (or its peer is lost, see above); a pair of the same name whose
        peer is elsewhere makes the task fail.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Join pod red to bridge cni0
  podnet.mesh.veth:
    name: veth-red
    peer: eth0
    netns: red
    master: cni0

- name: Remove the pair
  podnet.mesh.veth:
    name: veth-red
    state: absent
"""

RETURN = r"""
veth:
  description: The pair after the run (in check mode, as it would be); null when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Host end name.
      type: str
      sample: veth-red
    ifindex:
      description: Host end interface index (null in check mode for a pair not yet created).
      type: int
      sample: 7
    mac:
      description: Host end MAC address (null in check mode for a pair not yet created).
      type: str
      sample: 4a:5f:22:90:1c:0e
    mtu:
      description: MTU of the host end.
      type: int
      sample: 1500
    up:
      description: Whether the host end is administratively up.
      type: bool
      sample: true
    master:
      description: Bridge the host end is a port of, or null.
      type: str
      sample: cni0
    hairpin:
      description: Hairpin mode of the bridge port (null when not a bridge port).
      type: bool
      sample: false
    peer:
      description: The peer end.
      type: dict
      sample: {"name": "eth0", "netns": "red", "ifindex": 2, "mac": "2a:11:3c:44:5d:6e", "mtu": 1500, "up": true}
actions:
  description: Kernel changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["create veth veth-red with peer eth0 in namespace red", "set master=cni0 on link veth-red"]
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module

HOST_FIELDS = ("name", "ifindex", "mac", "mtu", "up", "master", "hairpin")
PEER_FIELDS = ("name", "ifindex", "mac", "mtu", "up")


def validate(params):
    want = {
        "name": v.ifname(params["name"], "name"),
        "peer": v.ifname(params["peer"], "peer"),
        "netns": v.optional_netns(params["netns"], "netns"),
        "master": None if params["master"] is None else v.ifname(params["master"], "master"),
        "mtu": v.mtu(params["mtu"], "mtu"),
        "hairpin": params["hairpin"],
        "up": params["up"],
        "state": params["state"],
    }
    if want["master"] is not None and want["master"] == want["name"]:
        raise ValidationError("master", want["master"], "must differ from name")
    return want


def read(session, want):
    links = session.ns(None).links()
    host = links.get(want["name"])
    ns = want["netns"]
    exists = ns is None or _netns.netns_exists(ns)
    if ns is None:
        peer = links.get(want["peer"])
    elif exists:
        peer = session.ns(ns).links().get(want["peer"])
    else:
        peer = None
    peer_at = None
    if host is not None and host["kind"] == "veth":
        # Where the host end's peer really is, proven by namespace ids, not by names.
        peer_at = session.peer_of(host, None, hint=(ns,) if exists and ns is not None else ())
    return {"host": host, "peer": peer, "peer_at": peer_at, "netns_exists": exists,
            "master": None if want["master"] is None else links.get(want["master"])}


def render(want, cur, plan, predicted):
    if plan.after["state"] == "absent":
        return None
    paired = links.veth_standing(want, cur["host"], cur["peer"], cur.get("peer_at")) == links.PAIRED
    if predicted:
        host = dict(cur["host"] or {"ifindex": None, "mac": None}, **plan.after)
        peer = cur["peer"] if paired else None
        peer = dict(peer or {"name": want["peer"], "ifindex": None, "mac": None},
                    mtu=plan.after["mtu"], up=want["up"])
    else:
        host, peer = cur["host"], cur["peer"] if paired else None
    obj = _module.public_link(host, HOST_FIELDS)
    obj["peer"] = _module.public_link(peer, PEER_FIELDS)
    if obj["peer"] is not None:
        obj["peer"]["netns"] = want["netns"]
    return obj


def main():
    _module.run_module(
        {
            "name": {"type": "str", "required": True},
            "peer": {"type": "str", "default": "eth0"},
            "netns": {"type": "str"},
            "master": {"type": "str"},
            "mtu": {"type": "int"},
            "hairpin": {"type": "bool"},
            "up": {"type": "bool", "default": True},
            "state": _module.STATE_OPTION,
        },
        validate, read, links.plan_veth, render, "veth")


if __name__ == "__main__":
    main()
