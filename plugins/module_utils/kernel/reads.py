# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a planner needs of the node, read through a netlink session: one reader per concern.

The ``bridge``, ``pod_route`` and ``pods`` modules and the boot-time restore
(``node.restore``) read with these, so a concern is read the same way wherever
it is planned. Each takes a session of the shape of ``kernel.netlink.Session``
and the validated ``want`` of its planner.
"""

from __future__ import annotations

from ansible_collections.podnet.mesh.plugins.module_utils.core.model import MAIN_TABLE
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import pod as pod_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import routes as route_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns


def bridge(session, want):
    """The bridge's link (with its addresses), or None."""
    return session.ns(None).links(with_addresses=[want["name"]]).get(want["name"])


def routes(session, want):
    """Our routes and the foreign ones of want['table'] in want['netns'] (None: the host's)."""
    ns = want.get("netns")
    if ns is not None and not _netns.netns_exists(ns):
        return {"netns_exists": False}
    handle = session.ns(ns)
    links = handle.links()
    # Every route type counts: a blackhole or unreachable route holds a destination too.
    ours, foreign = route_plan.split_routes(handle.routes(want["table"], links=links), want["proto"])
    return {"netns_exists": True, "ours": ours, "foreign": foreign,
            "connected": handle.networks(), "links": set(links)}


def pods(session, want):
    """Each pod's namespace, links and routes, where its veth's peer is, and (when needed) the addresses held."""
    host = session.ns(None).links()
    found = {}
    for pod in want["pods"]:
        # STALE: a file left under /run/netns by a run cut short between mount and unlink.
        exists = _netns.netns_state(pod["name"])
        if exists is not True:
            found[pod["name"]] = {"exists": exists}
        else:
            handle = session.ns(pod["name"])
            links = handle.links(with_addresses=[pod["interface"]])
            found[pod["name"]] = {
                "exists": True,
                "links": links,
                # The links just read name the routes' devices: no second link dump.
                "routes": handle.routes(MAIN_TABLE, families=(4, 6), links=links) if want["state"] == "present" else [],
            }
        link = host.get(pod["veth"])
        if link is not None and link["kind"] == "veth":
            # Where the host end's peer is, by namespace ids: the pod's own namespace is tried first.
            found[pod["name"]]["peer_at"] = session.peer_of(link, None, hint=(pod["name"],) if exists is True else ())
    cur = {"host_links": host, "pods": found}
    if want["state"] == "present" and pod_plan.needs_free_address(want, cur):
        # Addresses held by other namespaces of the node (pods of earlier calls on the bridge
        # among them) are not free; read only when some pod needs a free address.
        cur["held"] = session.addresses_held(want["pod_cidrs"], skip=set(p["name"] for p in want["pods"]))
    return cur


def overlay(session, want):
    """The overlay device (None when missing), its underlay device's ifindex, and its FDB and neighbour entries."""
    handle = session.ns(None)
    names = [want["name"]] + ([want["dev"]] if want["dev"] else [])
    links = handle.links(only=names)
    link = links.get(want["name"])
    fdb, neighbours = handle.neighbour_entries(link["ifindex"]) if link is not None and link["kind"] == "vxlan" \
        else ([], [])
    dev = links.get(want["dev"]) if want["dev"] else None
    return {"link": link, "dev_index": None if dev is None else dev["ifindex"], "fdb": fdb, "neighbours": neighbours}
