# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A node's addresses as the inventory checks read them (a read-only view, no actions)."""

from __future__ import annotations

import ipaddress


def node_view(links, addresses, routes):
    """A node's addresses as the inventory checks read them (a read-only view, no actions).

    links: name -> link (ifindex); addresses: [(ifindex, CIDR)]; routes: main-table routes.
    default_ipv4 is the first IPv4 address of the interface holding the IPv4 default route
    with the lowest metric (what Ansible's default_ipv4 fact means), or None; default_ipv6
    the same for IPv6 (link-local addresses are never listed).
    """
    names = dict((link["ifindex"], name) for name, link in links.items())
    listed = [{"interface": names.get(index), "address": address} for index, address in addresses]
    networks = []
    for entry in listed:
        net = str(ipaddress.ip_interface(entry["address"]).network)
        if net not in networks:
            networks.append(net)
    return {"default_ipv4": _default_address(listed, routes, 4), "default_ipv6": _default_address(listed, routes, 6),
            "addresses": listed, "networks": networks}


def _default_address(listed, routes, family):
    """The first address of family on the interface holding that family's default route with the lowest metric."""
    defaults = sorted((r for r in routes if r["dst"] == "default" and r["family"] == family and r["dev"]
                       and r.get("type", "unicast") == "unicast"),
                      key=lambda r: r["metric"])
    for route in defaults:
        mine = [e["address"] for e in listed
                if e["interface"] == route["dev"] and ipaddress.ip_interface(e["address"]).version == family]
        if mine:
            iface = ipaddress.ip_interface(mine[0])
            return {"address": str(iface.ip), "prefix": iface.network.prefixlen, "interface": route["dev"],
                    "gateway": route["via"]}
    return None
