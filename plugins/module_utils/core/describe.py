# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Actions as text: one line per action, as modules return them in ``actions``."""

from __future__ import annotations

from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op


def _peer_ns(args):
    return "" if args.get("peer_ns") is None else " in namespace %s" % args["peer_ns"]


def _settings(args):
    return ", ".join("%s=%s" % (k, args[k]) for k in sorted(args))


# op -> (action, " in namespace X" or "") -> text
_TEXT = {
    Op.NETNS_ADD: lambda a, where: "create namespace %s" % a.name,
    Op.NETNS_DEL: lambda a, where: "delete namespace %s" % a.name,
    Op.NETNS_CLEAR: lambda a, where: "remove leftover file %s/%s (not a namespace)" % ("/run/netns", a.name),
    Op.BRIDGE_ADD: lambda a, where: "create bridge %s%s%s" % (
        a.name, where, " with MAC %s" % a.args["mac"] if a.args.get("mac") else ""),
    Op.VETH_ADD: lambda a, where: "create veth %s%s with peer %s%s" % (
        a.name, where, a.args["peer"], _peer_ns(a.args)),
    Op.LINK_DEL: lambda a, where: "delete link %s%s" % (a.name, where),
    Op.LINK_MOVE: lambda a, where: "move link %s%s to namespace %s" % (a.name, where, a.args["to_ns"]),
    Op.LINK_SET: lambda a, where: "set %s on link %s%s" % (_settings(a.args), a.name, where),
    Op.BRPORT_SET: lambda a, where: "set hairpin=%s on bridge port %s%s" % (a.args["hairpin"], a.name, where),
    Op.ADDR_ADD: lambda a, where: "add address %s to %s%s" % (a.args["address"], a.name, where),
    Op.ADDR_DEL: lambda a, where: "delete address %s from %s%s" % (a.args["address"], a.name, where),
    Op.ROUTE_ADD: lambda a, where: "add route %s%s" % (route_text(a.args["route"]), where),
    Op.ROUTE_REPLACE: lambda a, where: "replace route %s%s" % (route_text(a.args["route"]), where),
    Op.ROUTE_DEL: lambda a, where: "delete route %s%s" % (route_text(a.args["route"]), where),
    Op.VXLAN_ADD: lambda a, where: "create vxlan %s%s with VNI %d, port %d, local %s%s, MAC %s" % (
        a.name, where, a.args["vni"], a.args["port"], a.args["local"],
        " on %s" % a.args["dev"] if a.args.get("dev") else "", a.args["mac"]),
    Op.FDB_ADD: lambda a, where: "add forwarding entry %s dst %s to %s%s" % (a.args["mac"], a.args["dst"], a.name, where),
    Op.FDB_DEL: lambda a, where: "delete forwarding entry %s dst %s from %s%s" % (
        a.args["mac"], a.args["dst"], a.name, where),
    Op.NEIGH_REPLACE: lambda a, where: "set neighbour %s lladdr %s (permanent) on %s%s" % (
        a.args["address"], a.args["mac"], a.name, where),
    Op.NEIGH_DEL: lambda a, where: "delete neighbour %s on %s%s" % (a.args["address"], a.name, where),
}


def describe(action):
    """One human-readable line for an action, as returned in a module's ``actions``.

    An action that carries its own ``text`` (NAT rules, sysctls, lab operations) reads so.
    """
    if "text" in action.args:
        return action.args["text"]
    text = _TEXT.get(action.op)
    if text is None:
        return action.op
    return text(action, "" if action.ns is None else " in namespace %s" % action.ns)


def describe_all(actions):
    """describe() of each action, in order."""
    return [describe(a) for a in actions]


def route_text(route):
    """'10.244.2.0/24 via 192.168.1.12 dev eth0 metric 0' (the parts that are set)."""
    parts = [route["dst"]]
    if route.get("via"):
        parts.append("via %s" % route["via"])
    if route.get("dev"):
        parts.append("dev %s" % route["dev"])
    if route.get("onlink"):
        parts.append("onlink")
    parts.append("metric %d" % route["metric"])
    return " ".join(parts)
