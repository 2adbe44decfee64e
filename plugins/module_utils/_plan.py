# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure planning: desired state + current state -> ordered actions + diff.

Nothing in this file imports pyroute2 or touches the kernel. Current state
arrives as plain dicts (see ``_netlink.link_state``); the result is a Plan
whose actions the netlink layer executes in order and whose ``before`` and
``after`` feed Ansible's diff mode. Conflicts with what exists on the host
raise ValidationError before anything is changed.

A link dict has the keys: name, ifindex, kind, mac, mtu, up, master (name of
the master link or None), link (ifindex of the peer), link_netnsid, stp,
hairpin and addresses (list of CIDR strings, IPv6 link-local excluded).
"""

from __future__ import annotations

import collections
import ipaddress

from ansible_collections.podnet.mesh.plugins.module_utils._validate import ValidationError, route_key

HOST = "host"
# What the kernel gives a new bridge or veth end.
DEFAULT_MTU = 1500

Action = collections.namedtuple("Action", "op ns name args")
Action.__doc__ = """One kernel change: op on link (or namespace) name inside namespace ns."""


def describe(action):
    """One human-readable line for an action, as returned in a module's ``actions``."""
    where = "" if action.ns is None else " in namespace %s" % action.ns
    args = action.args
    text = {
        "netns_add": lambda: "create namespace %s" % action.name,
        "netns_del": lambda: "delete namespace %s" % action.name,
        "netns_clear": lambda: "remove leftover file %s/%s (not a namespace)" % ("/run/netns", action.name),
        "bridge_add": lambda: "create bridge %s%s" % (action.name, where),
        "veth_add": lambda: "create veth %s%s with peer %s%s" % (
            action.name, where, args["peer"],
            "" if args.get("peer_ns") is None else " in namespace %s" % args["peer_ns"]),
        "link_del": lambda: "delete link %s%s" % (action.name, where),
        "link_move": lambda: "move link %s%s to namespace %s" % (action.name, where, args["to_ns"]),
        "link_set": lambda: "set %s on link %s%s" % (
            ", ".join("%s=%s" % (k, args[k]) for k in sorted(args)), action.name, where),
        "brport_set": lambda: "set hairpin=%s on bridge port %s%s" % (
            args["hairpin"], action.name, where),
        "addr_add": lambda: "add address %s to %s%s" % (args["address"], action.name, where),
        "addr_del": lambda: "delete address %s from %s%s" % (args["address"], action.name, where),
        "route_add": lambda: "add route %s%s" % (route_text(args["route"]), where),
        "route_replace": lambda: "replace route %s%s" % (route_text(args["route"]), where),
        "route_del": lambda: "delete route %s%s" % (route_text(args["route"]), where),
    }.get(action.op)
    # Actions of other layers (NAT rules, sysctls) carry their own text.
    return text() if text else args.get("text", action.op)


class Plan:
    """Ordered actions plus the before/after views used for diff mode."""

    def __init__(self, before, after=None):
        self.actions = []
        self.before = before
        self.after = dict(before) if after is None else after

    def add(self, op, ns, name, **args):
        self.actions.append(Action(op, ns, name, args))

    @property
    def changed(self):
        return bool(self.actions)

    def descriptions(self):
        return [describe(a) for a in self.actions]


def pod_mac(address):
    """The MAC address of a pod interface holding IPv4 address (CIDR or plain): 0a:58 + the 4 bytes.

    A pod re-created with the same address keeps its MAC, so neighbour entries that the node
    and the other pods hold for it stay right (a random MAC leaves them stale for seconds).
    """
    packed = ipaddress.ip_interface(address).ip.packed
    if len(packed) != 4:
        return None
    return ":".join("%02x" % b for b in b"\x0a\x58" + packed)


def _ns_label(ns):
    return HOST if ns is None else ns


def _wrong_kind(path, name, link, wanted, ns):
    return ValidationError(
        path, name,
        "already exists in namespace %s as a link of kind %s, not a %s; nothing was changed"
        % (_ns_label(ns), link.get("kind") or "unknown", wanted))


def _plan_addresses(plan, ns, name, current, wanted):
    """Delete addresses not wanted, then add missing ones (wanted order)."""
    have = set(current)
    want = set(wanted)
    for address in current:
        if address not in want:
            plan.add("addr_del", ns, name, address=address)
    for address in wanted:
        if address not in have:
            plan.add("addr_add", ns, name, address=address)


# --------------------------------------------------------------------- netns
STALE = "stale"


def plan_netns(want, exists):
    """want: {name, state}; exists: whether /run/netns/<name> is a mounted namespace.

    exists may also be STALE: a leftover file that is no namespace (after a
    crash); it is removed, and for state=present a namespace made in its place.
    """
    name = want["name"]
    if exists == STALE:
        plan = Plan({"name": name, "state": STALE})
        plan.add("netns_clear", None, name)
        exists = False
    else:
        plan = Plan({"name": name, "state": "present" if exists else "absent"})
    plan.after = {"name": name, "state": want["state"]}
    if want["state"] == "present" and not exists:
        plan.add("netns_add", None, name)
    elif want["state"] == "absent" and exists:
        plan.add("netns_del", None, name)
    return plan


# -------------------------------------------------------------------- bridge
def _bridge_view(link):
    return {
        "name": link["name"], "state": "present", "mtu": link["mtu"], "stp": link["stp"],
        "up": link["up"], "addresses": list(link["addresses"]),
    }


def plan_bridge(want, link):
    """want: {name, state, addresses (list or None), mtu, stp, up}; link: dict or None."""
    name = want["name"]
    if link is not None and link["kind"] != "bridge":
        raise _wrong_kind("name", name, link, "bridge", None)
    before = _bridge_view(link) if link else {"name": name, "state": "absent"}
    plan = Plan(before)

    if want["state"] == "absent":
        plan.after = {"name": name, "state": "absent"}
        if link:
            plan.add("link_del", None, name)
        return plan

    if link is None:
        plan.add("bridge_add", None, name)
        link = {"name": name, "mtu": DEFAULT_MTU, "stp": False, "up": False, "addresses": []}
    changes = {}
    if want["mtu"] is not None and want["mtu"] != link["mtu"]:
        changes["mtu"] = want["mtu"]
    if want["stp"] != link["stp"]:
        changes["stp"] = want["stp"]
    if changes:
        plan.add("link_set", None, name, **changes)
    addresses = link["addresses"] if want["addresses"] is None else want["addresses"]
    if want["addresses"] is not None:
        _plan_addresses(plan, None, name, link["addresses"], want["addresses"])
    if want["up"] != link["up"]:
        plan.add("link_set", None, name, up=want["up"])
    plan.after = {
        "name": name, "state": "present",
        "mtu": changes.get("mtu", link["mtu"]), "stp": want["stp"], "up": want["up"],
        "addresses": list(addresses),
    }
    return plan


# ---------------------------------------------------------------------- veth
def _veth_view(want, host, peer):
    if host is None:
        return {"name": want["name"], "state": "absent"}
    return {
        "name": host["name"], "state": "present",
        "peer": peer["name"] if peer else None,
        "netns": want["netns"] if peer else None,
        "master": host["master"], "mtu": host["mtu"], "hairpin": host["hairpin"],
        "up": host["up"] and bool(peer and peer["up"]),
    }


def is_pair(host, peer, peer_ns):
    """Whether peer (in namespace peer_ns, None = host) is the other end of host."""
    if host is None or peer is None or peer.get("kind") != "veth":
        return False
    if peer.get("link") != host["ifindex"]:
        return False
    if peer_ns is None:
        # Both ends in one namespace: each names the other, with no netnsid.
        return host.get("link") == peer["ifindex"] and host.get("link_netnsid") is None
    return peer.get("link_netnsid") is not None


def plan_veth(want, cur):
    """Plan a veth pair whose peer end lives in want['netns'] (None: the host).

    want: {name, peer, netns, master, mtu, hairpin, up, state}
    cur: {host: link|None, peer: link named want['peer'] in the target namespace|None,
          stray_peer: the host end's actual peer if it is still in the host namespace|None,
          netns_exists: bool, master: link named want['master']|None}
    """
    name, peer_name, ns = want["name"], want["peer"], want["netns"]
    host, peer = cur["host"], cur["peer"]
    if host is not None and host["kind"] != "veth":
        raise _wrong_kind("name", name, host, "veth", None)
    paired = is_pair(host, peer, ns)
    plan = Plan(_veth_view(want, host, peer if paired else None))

    if want["state"] == "absent":
        plan.after = {"name": name, "state": "absent"}
        if host is not None:
            plan.add("link_del", None, name)
        return plan

    assume = want.get("assume_missing")
    if ns is not None and not cur["netns_exists"] and not assume:
        raise ValidationError(
            "netns", ns, "does not exist; create the namespace first (podnet.mesh.netns)")
    master = want["master"]
    if master is not None:
        mlink = cur["master"]
        if mlink is None and assume:
            # Check mode of a whole play: an earlier task would create the bridge.
            mlink = {"name": master, "kind": "bridge"}
        if mlink is None:
            raise ValidationError("master", master, "does not exist; create the bridge first")
        if mlink["kind"] != "bridge":
            raise _wrong_kind("master", master, mlink, "bridge", None)
    if ns is None and peer_name == name:
        raise ValidationError("peer", peer_name, "must differ from name when both ends are in one namespace")

    fresh = {"mtu": DEFAULT_MTU, "up": False, "master": None, "hairpin": False}
    peer_state = {"mtu": DEFAULT_MTU, "up": False}
    if paired:
        host_state, peer_state = host, peer
    else:
        if peer is not None:
            raise ValidationError(
                "peer", peer_name,
                "already exists in namespace %s and is not the peer of %s; nothing was changed"
                % (_ns_label(ns), name))
        stray = cur.get("stray_peer")
        if host is not None and stray is not None and stray["name"] == peer_name and ns is not None:
            # Created but never moved: move the peer end into its namespace.
            plan.add("link_move", None, peer_name, to_ns=ns)
            host_state, peer_state = host, dict(stray, up=False)
        else:
            if host is not None:
                # The other end is lost (elsewhere or renamed): recreate the pair.
                plan.add("link_del", None, name)
            if want.get("peer_mac"):
                plan.add("veth_add", None, name, peer=peer_name, peer_ns=ns, peer_mac=want["peer_mac"])
            else:
                plan.add("veth_add", None, name, peer=peer_name, peer_ns=ns)
            host_state = fresh

    mtu = want["mtu"]
    if mtu is not None and host_state["mtu"] != mtu:
        plan.add("link_set", None, name, mtu=mtu)
    if mtu is not None and peer_state["mtu"] != mtu:
        plan.add("link_set", ns, peer_name, mtu=mtu)
    if master is not None and host_state["master"] != master:
        plan.add("link_set", None, name, master=master)
    master_after = master if master is not None else host_state["master"]
    # A port attached to another bridge starts again with hairpin off.
    hairpin = bool(host_state["hairpin"]) if host_state["master"] == master_after else False
    if want["hairpin"] is not None and want["hairpin"] != hairpin:
        if master_after is None:
            raise ValidationError(
                "hairpin", want["hairpin"], "needs a bridge port: set master as well")
        plan.add("brport_set", None, name, hairpin=want["hairpin"])
        hairpin = want["hairpin"]
    if want["up"] and not host_state["up"]:
        plan.add("link_set", None, name, up=True)
    if want["up"] and not peer_state["up"]:
        plan.add("link_set", ns, peer_name, up=True)
    if not want["up"] and host_state["up"]:
        plan.add("link_set", None, name, up=False)
    if not want["up"] and peer_state["up"]:
        plan.add("link_set", ns, peer_name, up=False)
    plan.after = {
        "name": name, "state": "present", "peer": peer_name, "netns": ns,
        "master": master_after,
        "mtu": mtu if mtu is not None else host_state["mtu"],
        "hairpin": hairpin, "up": want["up"],
    }
    return plan


# ----------------------------------------------------------------- addresses
def plan_interface_addresses(want, cur):
    """Addresses (and admin state) of one interface in a namespace.

    want: {netns, interface, addresses (list or None), up, state}
    cur: {netns_exists: bool, link: link|None, lo: link|None}
    """
    ns, name = want["netns"], want["interface"]
    link = cur["link"]
    if want.get("assume_missing") and want["state"] == "present" and link is None:
        # Check mode of a whole play: earlier tasks would create namespace and link.
        cur = {"netns_exists": True, "lo": cur.get("lo") or {"up": False}}
        link = {"name": name, "up": False, "addresses": [], "ifindex": None}
    if not cur["netns_exists"]:
        if want["state"] == "absent":
            return Plan({"netns": ns, "interface": name, "state": "absent"})
        raise ValidationError("netns", ns, "does not exist; create the namespace first (podnet.mesh.netns)")
    if link is None:
        if want["state"] == "absent":
            return Plan({"netns": ns, "interface": name, "state": "absent"})
        raise ValidationError(
            "interface", name, "does not exist in namespace %s; nothing was changed" % _ns_label(ns))
    before = {"netns": ns, "interface": name, "up": link["up"], "addresses": list(link["addresses"])}
    plan = Plan(before)

    if want["state"] == "absent":
        drop = link["addresses"] if want["addresses"] is None else [
            a for a in want["addresses"] if a in link["addresses"]]
        for address in drop:
            plan.add("addr_del", ns, name, address=address)
        plan.after = dict(before, addresses=[a for a in link["addresses"] if a not in drop])
        return plan

    addresses = link["addresses"]
    if want["addresses"] is not None:
        _plan_addresses(plan, ns, name, link["addresses"], want["addresses"])
        addresses = want["addresses"]
    if want["up"] != link["up"]:
        plan.add("link_set", ns, name, up=want["up"])
    lo = cur.get("lo")
    if want["up"] and lo is not None and not lo["up"] and name != "lo":
        plan.add("link_set", ns, "lo", up=True)
    plan.after = {"netns": ns, "interface": name, "up": want["up"], "addresses": list(addresses)}
    return plan


# -------------------------------------------------------------------- routes
def route_text(route):
    """'10.244.2.0/24 via 192.168.1.12 dev eth0 metric 0' (the parts that are set)."""
    parts = [route["dst"]]
    if route.get("via"):
        parts.append("via %s" % route["via"])
    if route.get("dev"):
        parts.append("dev %s" % route["dev"])
    parts.append("metric %d" % route["metric"])
    return " ".join(parts)


def _public_route(route):
    return dict((k, route.get(k)) for k in ("dst", "via", "dev", "metric"))


def public_routes(routes):
    """Route dicts as modules return them, in a stable order."""
    ordered = sorted(routes, key=lambda r: (r["family"], r["dst"], r["metric"]))
    return [_public_route(r) for r in ordered]


def _same_route(want, have):
    """A route is converged when gateway and (if asked for) device agree."""
    return want["via"] == have["via"] and (want["dev"] is None or want["dev"] == have["dev"])


def plan_routes(want, cur):
    """Routes of ours (tagged with want['proto']) in one table of one namespace.

    want: {netns, routes (validated list), purge, state, proto, table}
    cur: {netns_exists, ours: {key: route}, foreign: {key: route},
          connected: [ipaddress networks on the namespace's links], links: set of names}
    where key is _validate.route_key(route) and routes carry dst/family/via/dev/metric
    (foreign ones also proto). Plan.after/before are sorted route texts;
    plan.added/removed/replaced list the public route dicts.
    """
    ns = want["netns"]
    if not cur["netns_exists"] and want.get("assume_missing") and want["state"] == "present":
        # Check mode of a whole play: an earlier task would create the namespace,
        # with addresses this plan cannot know; the gateway check is left to the real run.
        cur = {"netns_exists": True, "ours": {}, "foreign": {}, "connected": None, "links": None}
    if not cur["netns_exists"]:
        if want["state"] == "absent":
            plan = Plan({"routes": []})
            plan.added, plan.removed, plan.replaced, plan.routes = [], [], [], []
            return plan
        raise ValidationError("netns", ns, "does not exist; create the namespace first (podnet.mesh.netns)")
    ours = cur["ours"]
    plan = Plan({"routes": sorted(route_text(r) for r in ours.values())})
    plan.added, plan.removed, plan.replaced = [], [], []
    result = dict(ours)
    listed = set()
    reachable = {}

    for index, route in enumerate(want["routes"]):
        key = route_key(route)
        listed.add(key)
        path = "routes[%d]" % index
        if want["state"] == "absent":
            if key in ours:
                plan.add("route_del", ns, route["dst"], route=ours[key], table=want["table"],
                         proto=want["proto"])
                plan.removed.append(_public_route(ours[key]))
                del result[key]
            continue
        foreign = cur["foreign"].get(key)
        if foreign is not None:
            raise ValidationError(
                path + ".dst", route["dst"],
                "already has a route with metric %d in namespace %s that podnet.mesh did not create "
                "(%s, protocol %s); it is left alone and nothing was changed"
                % (route["metric"], _ns_label(ns), route_text(foreign), foreign.get("proto")))
        if route["dev"] is not None and cur["links"] is not None and route["dev"] not in cur["links"]:
            raise ValidationError(
                path + ".dev", route["dev"], "does not exist in namespace %s" % _ns_label(ns))
        if route["via"] is not None and cur["connected"] is not None:
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
                    % (_ns_label(ns), nets or "none"))
        have = ours.get(key)
        if have is None:
            plan.add("route_add", ns, route["dst"], route=route, table=want["table"], proto=want["proto"])
            plan.added.append(_public_route(route))
        elif not _same_route(route, have):
            plan.add("route_replace", ns, route["dst"], route=route, table=want["table"],
                     proto=want["proto"])
            plan.replaced.append({"before": _public_route(have), "after": _public_route(route)})
        else:
            continue
        result[key] = dict(route, dev=route["dev"] or (have or {}).get("dev"))

    if want["state"] == "present" and want["purge"]:
        for key in sorted(ours, key=lambda k: (k[0], k[1], k[2])):
            if key not in listed:
                plan.add("route_del", ns, ours[key]["dst"], route=ours[key], table=want["table"],
                         proto=want["proto"])
                plan.removed.append(_public_route(ours[key]))
                del result[key]
    # Deletions first: a purge never briefly doubles a destination.
    plan.actions.sort(key=lambda a: a.op != "route_del")
    plan.routes = public_routes(result.values())
    plan.after = {"routes": sorted(route_text(r) for r in result.values())}
    return plan


def node_view(links, addresses, routes):
    """A node's addresses as the inventory checks read them (a read-only view, no actions).

    links: name -> link (ifindex); addresses: [(ifindex, CIDR)]; routes: main-table routes.
    default_ipv4 is the first IPv4 address of the interface holding the IPv4 default route
    with the lowest metric (what Ansible's default_ipv4 fact means), or None.
    """
    names = dict((link["ifindex"], name) for name, link in links.items())
    listed = [{"interface": names.get(index), "address": address} for index, address in addresses]
    networks = []
    for entry in listed:
        net = str(ipaddress.ip_interface(entry["address"]).network)
        if net not in networks:
            networks.append(net)
    default = None
    defaults = sorted((r for r in routes if r["dst"] == "default" and r["family"] == 4 and r["dev"]),
                      key=lambda r: r["metric"])
    for route in defaults:
        mine = [e["address"] for e in listed
                if e["interface"] == route["dev"] and ipaddress.ip_interface(e["address"]).version == 4]
        if mine:
            iface = ipaddress.ip_interface(mine[0])
            default = {"address": str(iface.ip), "prefix": iface.network.prefixlen, "interface": route["dev"],
                       "gateway": route["via"]}
            break
    return {"default_ipv4": default, "addresses": listed, "networks": networks}
