# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What both netlink sessions share, on the standard library alone.

``kernel.netlink`` (pyroute2's message classes, the modules) and ``kernel.lite``
(the CNI plugin's own codec) read and change the kernel in their own way, but
judge the result the same way: where a veth's other end is (``PeerFinder``),
whether what a concurrent creator made after an EEXIST is what an action wanted
(``ALREADY_THERE``), and how an action runs through a handler table (``run``).
Everything here works through the session's reads (``ns(...).links``,
``routes``, ``nsid``, ``link_by_index``), so it holds for either session.
"""

from __future__ import annotations

import errno
import ipaddress

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import netns_exists, netns_path, visible_namespaces


class PeerFinder:
    """``peer_of`` for a session class that has ``ns(label)``."""

    def peer_of(self, link, ns=None, hint=()):
        """Where the other end of veth link (read in namespace ns) is, proven by namespace ids.

        {seen, netns, link}: seen True with netns (None: ns itself, or a name under
        /run/netns) and link the peer's link dict; or seen False (netns and link None)
        when the peer is in no namespace this node has mounted, e.g. the namespace it
        was made for was deleted while a process still holds it. hint: namespaces to
        try first, the ones the caller expects the peer in.
        """
        unseen = {"seen": False, "netns": None, "link": None}
        if link is None or link.get("kind") != "veth" or not link.get("link"):
            return unseen
        home = self.ns(ns)
        if link.get("link_netnsid") is None:
            peer = home.link_by_index(link["link"])
            return {"seen": True, "netns": ns, "link": peer} if peer is not None else unseen
        tried = set()
        for label in list(hint) + visible_namespaces():
            path = None if label is None else netns_path(label)
            if label is None or label == ns or path in tried or not netns_exists(label):
                continue
            tried.add(path)
            try:
                if home.nsid(path) != link["link_netnsid"]:
                    continue
                peer = self.ns(label).link_by_index(link["link"])
            except KernelError:
                continue  # gone meanwhile, or not opened by this session
            return {"seen": True, "netns": label, "link": peer}
        return unseen


def route_there(action, routes):
    """Whether routes (as read) hold the route a ROUTE_ADD wanted, ours and alike."""
    if action.op != Op.ROUTE_ADD:
        return False
    want = action.args["route"]
    for route in routes:
        if (route["family"], route["dst"], route["metric"]) != (want["family"], want["dst"], want["metric"]):
            continue
        if route["proto"] == action.args["proto"] and route["type"] == "unicast" \
                and route["via"] == want.get("via") and (not want.get("dev") or route["dev"] == want["dev"]):
            return True
    return False


def _route_is_there(session, action):
    ns = session.ns(action.ns)
    return route_there(action, ns.routes(action.args["table"], families=(action.args["route"]["family"],)))


def _bridge_is_there(session, action):
    link = session.ns(action.ns).links(only=[action.name]).get(action.name)
    return (link or {}).get("kind") == "bridge"


def _same_pair(session, action):
    """Whether the link action.name is a veth whose peer is action's peer, in action's peer namespace."""
    host = session.ns(action.ns).links(only=[action.name]).get(action.name)
    target = action.args.get("peer_ns")
    where = action.ns if target is None else target
    place = session.peer_of(host, action.ns, hint=() if target is None else (target,))
    return place["seen"] and place["netns"] == where and (place["link"] or {}).get("name") == action.args["peer"]


def _address_is_there(session, action):
    link = session.ns(action.ns).links(with_addresses=[action.name], only=[action.name]).get(action.name)
    wanted = ipaddress.ip_interface(action.args["address"])
    return link is not None and wanted in [ipaddress.ip_interface(a) for a in link["addresses"]]


# op -> check(session, action) after EEXIST: whether what a concurrent run made is what the
# action wanted (a bridge of that name, this very pair, the same address on the link, the
# same route of ours); then the action counts as done.
ALREADY_THERE = {
    Op.BRIDGE_ADD: _bridge_is_there,
    Op.VETH_ADD: _same_pair,
    Op.ADDR_ADD: _address_is_there,
    Op.ROUTE_ADD: _route_is_there,
}


def run(handlers, session, action, already_there=None):
    """Apply one action through its handler; an EEXIST is tolerated when already_there says so."""
    try:
        handlers[action.op](session, action)
    except KernelError as exc:
        check = (ALREADY_THERE if already_there is None else already_there).get(action.op)
        if exc.code != errno.EEXIST or check is None or not check(session, action):
            raise
