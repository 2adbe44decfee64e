# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure planner of the routes we own in one table of one namespace.

Ours are the unicast routes carrying our protocol number. Every other route of
the table is foreign: another protocol's, and any route of another type
(blackhole, unreachable, prohibit, throw, ...), whatever its protocol. A
foreign route to a listed destination (with its metric) is a conflict: the
task fails naming it before anything changes; purge never touches one.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import route_text
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op, Plan, ns_label
from ansible_collections.podnet.mesh.plugins.module_utils.core.validate import route_key


# The route type of every route we make (route dicts read from the kernel carry 'type').
UNICAST = "unicast"


def split_routes(routes, proto):
    """Routes as read -> (ours, foreign), each {route_key: route}: ours are unicast with protocol proto."""
    ours, foreign = {}, {}
    for route in routes:
        mine = route["proto"] == proto and route.get("type", UNICAST) == UNICAST
        (ours if mine else foreign)[route_key(route)] = route
    return ours, foreign


def _foreign_text(route):
    """A foreign route as a conflict message names it: its type when not unicast, then its parts."""
    kind = route.get("type", UNICAST)
    return route_text(route) if kind == UNICAST else "%s %s" % (kind, route_text(route))


def _public_route(route):
    public = dict((k, route.get(k)) for k in ("dst", "via", "dev", "metric"))
    if route.get("onlink"):
        public["onlink"] = True
    return public


def public_routes(routes):
    """Route dicts as modules return them, in a stable order."""
    ordered = sorted(routes, key=lambda r: (r["family"], r["dst"], r["metric"]))
    return [_public_route(r) for r in ordered]


def _same_route(want, have):
    """A route is converged when gateway and (if asked for) device agree."""
    return want["via"] == have["via"] and (want["dev"] is None or want["dev"] == have["dev"]) \
        and bool(want.get("onlink")) == bool(have.get("onlink"))


def plan_routes(want, cur, assume_missing=False):
    """Routes of ours (tagged with want['proto']) in one table of one namespace.

    want: {netns, routes (validated list), purge, state, proto, table}
    cur: {netns_exists, ours: {key: route}, foreign: {key: route} (as split_routes makes them),
          connected: [ipaddress networks on the namespace's links], links: set of names}
    where key is _validate.route_key(route) and routes carry dst/family/via/dev/metric
    (foreign ones also proto); want may set upsert: routes that are not known to be
    there are written with replace (a namespace whose addresses just changed).
    Plan.after/before are sorted route texts; plan.details holds added, removed and
    replaced (public route dicts) and routes (ours after the plan).
    """
    ns = want["netns"]
    if not cur["netns_exists"] and assume_missing and want["state"] == "present":
        # Check mode of a whole play: an earlier task would create the namespace,
        # with addresses this plan cannot know; the gateway check is left to the real run.
        cur = {"netns_exists": True, "ours": {}, "foreign": {}, "connected": None, "links": None}
    if not cur["netns_exists"]:
        if want["state"] == "absent":
            plan = Plan({"routes": []})
            plan.details = {"added": [], "removed": [], "replaced": [], "routes": []}
            return plan
        raise ValidationError("netns", ns, "does not exist; create the namespace first (podnet.mesh.netns)")
    ours = cur["ours"]
    plan = Plan({"routes": sorted(route_text(r) for r in ours.values())})
    added, removed, replaced = [], [], []
    plan.details = {"added": added, "removed": removed, "replaced": replaced}
    result = dict(ours)
    listed = set()
    reachable = {}

    for index, route in enumerate(want["routes"]):
        key = route_key(route)
        listed.add(key)
        path = "routes[%d]" % index
        if want["state"] == "absent":
            if key in ours:
                plan.add(Op.ROUTE_DEL, ns, route["dst"], route=ours[key], table=want["table"],
                         proto=want["proto"])
                removed.append(_public_route(ours[key]))
                del result[key]
            continue
        foreign = cur["foreign"].get(key)
        if foreign is not None:
            raise ConflictError(
                path + ".dst", route["dst"],
                "already has a route with metric %d in namespace %s that podnet.mesh did not create "
                "(%s, protocol %s); it is left alone and nothing was changed"
                % (route["metric"], ns_label(ns), _foreign_text(foreign), foreign.get("proto")))
        if route["dev"] is not None and cur["links"] is not None and route["dev"] not in cur["links"] \
                and not assume_missing:
            # (In check mode of a whole play an earlier task would create it, as the overlay device.)
            raise ValidationError(
                path + ".dev", route["dev"], "does not exist in namespace %s" % ns_label(ns))
        if route.get("onlink"):
            pass  # the gateway is on dev by the route's own word (an overlay's peer VTEP)
        elif route["via"] is not None and _ipv6_link_local(route["via"]):
            # An IPv6 link-local gateway is on the link by definition; it names its link.
            if route["dev"] is None:
                raise ValidationError(
                    path + ".via", route["via"],
                    "is a link-local address: it is reachable on one interface only, so the route needs dev")
        elif route["via"] is not None and cur["connected"] is not None:
            if route["via"] not in reachable:  # a thousand routes share a few gateways
                via = ipaddress.ip_address(route["via"])
                reachable[route["via"]] = any(via in net for net in cur["connected"] if net.version == via.version)
            if not reachable[route["via"]]:
                via = ipaddress.ip_address(route["via"])
                nets = ", ".join(sorted(str(n) for n in cur["connected"] if n.version == via.version))
                raise ValidationError(
                    path + ".via", route["via"],
                    "is not on a directly connected subnet in namespace %s (connected: %s); "
                    "host-gw routing needs the gateway on the same layer-2 network"
                    % (ns_label(ns), nets or "none"))
        have = ours.get(key)
        if have is None:
            plan.add(Op.ROUTE_REPLACE if want.get("upsert") else Op.ROUTE_ADD, ns, route["dst"], route=route, table=want["table"], proto=want["proto"])
            added.append(_public_route(route))
        elif not _same_route(route, have):
            plan.add(Op.ROUTE_REPLACE, ns, route["dst"], route=route, table=want["table"],
                     proto=want["proto"])
            replaced.append({"before": _public_route(have), "after": _public_route(route)})
        else:
            continue
        result[key] = dict(route, dev=route["dev"] or (have or {}).get("dev"))

    if want["state"] == "present" and want["purge"]:
        for key in sorted(ours, key=lambda k: (k[0], k[1], k[2])):
            if key not in listed:
                plan.add(Op.ROUTE_DEL, ns, ours[key]["dst"], route=ours[key], table=want["table"],
                         proto=want["proto"])
                removed.append(_public_route(ours[key]))
                del result[key]
    # Deletions first: a purge never briefly doubles a destination.
    plan.actions.sort(key=lambda a: a.op != Op.ROUTE_DEL)
    plan.details["routes"] = public_routes(result.values())
    plan.after = {"routes": sorted(route_text(r) for r in result.values())}
    return plan


def _ipv6_link_local(address):
    ip = ipaddress.ip_address(address)
    return ip.version == 6 and ip.is_link_local
