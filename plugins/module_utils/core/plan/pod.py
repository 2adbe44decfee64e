# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A pod, composed once (pure, no kernel): the ``pods`` module and CNI ADD both plan with it.

A pod's wiring is a veth pair whose host end is a port of the node's bridge and
whose peer (the pod's interface, MAC derived from its address) lives in the pod's
namespace, one address of the node's pod CIDR on that interface, and a default
route via the bridge (the gateway). ``plan_pod`` composes the single-object
planners of ``core.plan.links`` and ``core.plan.routes`` in the order the kernel
needs: namespace (when the pod owns it), veth, address, route. Objects the same
plan creates are planned from their predicted state, so one pass suffices.

``plan_pods`` is the ``pods`` module: many pods on one bridge, addresses given
or the lowest free ones, in one plan. A free address is one that no pod of the
call and no namespace of the node (``held``, read by the module) holds.

A pod's veth is deleted (removal, or making a pair whose peer got lost again)
only when it is provably the pod's: its peer is the pod's interface in the pod's
namespace, in that namespace under another name, or in no namespace the node has
mounted (``core.plan.links.veth_standing``). A veth of that name whose peer is
anywhere else is refused by name before anything changes.
"""

from __future__ import annotations

import collections
import ipaddress

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import (
    MAIN_TABLE, POD_INTERFACE, ROUTE_PROTO, Op, Plan, host_veth_name, mac_source, pod_gateway, pod_mac)
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan.links import (
    PAIRED, plan_interface_addresses, plan_netns, plan_veth, veth_standing)
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan.routes import plan_routes, split_routes

# The part of a pod's address plan that only exists once the pod does.
_NEW_IFACE = {"up": False, "addresses": [], "kind": "veth"}


Pod = collections.namedtuple(
    "Pod", "netns veth interface addresses gateways bridge mtu hairpin proto owns_netns",
    defaults=(None, None, ROUTE_PROTO, True))
Pod.__doc__ = """One pod's wiring as wanted.

netns: the pod's namespace (a name under /run/netns, or a path); veth: host end;
interface: the pod's end; addresses: its CIDRs there, at most one per family
(the MAC derives from the IPv4 one, else the first: ``model.mac_source``);
gateways: the bridge's address of each of those families (one default route
each); bridge; mtu and hairpin (None: leave as they are); proto: of its routes.
owns_netns: the namespace is the pod's alone (the ``pods`` module): it is created
and removed with the pod, its loopback brought up and routes of ours there not
listed are purged. A CNI attachment shares its namespace with the runtime's other
attachments: none of that.
"""


def _cidrs(params):
    """pod_cidr or pod_cidrs -> the pod networks, at most one per family, in the order given."""
    one, many = params.get("pod_cidr"), params.get("pod_cidrs")
    if one is not None and many:
        raise ValidationError("pod_cidrs", many, "cannot be given with pod_cidr (%s); list every family in pod_cidrs" % one)
    if not many:
        if one is None:
            raise ValidationError("pod_cidr", one, "is required (or pod_cidrs: one prefix per address family)")
        return [v.pod_cidr(one, "pod_cidr")]
    if not isinstance(many, list):
        raise ValidationError("pod_cidrs", many, "must be a list of pod CIDRs, at most one per address family")
    cidrs = []
    for index, value in enumerate(many):
        cidr = v.pod_cidr(value, "pod_cidrs[%d]" % index)
        for other in cidrs:
            if other.version == cidr.version:
                raise ValidationError("pod_cidrs[%d]" % index, value,
                                      "is a second IPv%d prefix (also %s): one per address family" % (cidr.version, other))
        cidrs.append(cidr)
    return cidrs


def _cidr_names(params, cidrs):
    """How messages name each pod CIDR: by the parameter that gave it (pod_cidr X, pod_cidrs[1] X)."""
    if params.get("pod_cidrs"):
        return ["pod_cidrs[%d] %s" % (index, cidr) for index, cidr in enumerate(cidrs)]
    return ["pod_cidr %s" % cidrs[0]]


def _gateways(params, cidrs, names):
    """The first host address of each pod CIDR; gateway, when given, replaces its family's."""
    gateways = [pod_gateway(cidr) for cidr in cidrs]
    if params.get("gateway") is not None:
        gateway = v.ip_address(params["gateway"], "gateway")
        cidr = next((c for c in cidrs if c.version == gateway.version), None)
        if cidr is None or gateway not in cidr or gateway in (cidr.network_address, cidr.broadcast_address):
            raise ValidationError("gateway", params["gateway"], "is not a host address of %s" % " or ".join(names))
        gateways[cidrs.index(cidr)] = gateway
    return gateways


def _pod_addresses(item, path, cidrs, names, gateways, taken):
    """A pod's given addresses (address and/or addresses) -> {family: ip}, each checked against its pod CIDR."""
    given = []
    if item.get("address") is not None:
        given.append((str(item["address"]), path + ".address"))
    extra = item.get("addresses")
    if extra is not None:
        if not isinstance(extra, list):
            raise ValidationError(path + ".addresses", extra, "must be a list of addresses, at most one per address family")
        given.extend((str(a), "%s.addresses[%d]" % (path, i)) for i, a in enumerate(extra))
    result = {}
    for text, where in given:
        ip = v.ip_address(text.split("/", 1)[0], where)
        index = next((i for i, c in enumerate(cidrs) if c.version == ip.version), None)
        if index is None:
            raise ValidationError(where, text, "is an IPv%d address but the pod CIDRs (%s) have no IPv%d prefix"
                                  % (ip.version, ", ".join(str(c) for c in cidrs), ip.version))
        cidr = cidrs[index]
        if "/" in text and _network_of(text, where) != cidr:
            raise ValidationError(where, text, "must have the prefix of %s" % names[index])
        if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address):
            raise ValidationError(where, text, "is not a host address of %s" % names[index])
        if ip in gateways:
            raise ValidationError(where, text, "is the gateway (bridge) address")
        if result.get(ip.version) == ip:
            continue  # the same address in address and addresses
        if ip.version in result:
            raise ValidationError(where, text, "is a second IPv%d address (also %s): one per address family"
                                  % (ip.version, result[ip.version]))
        if ip in taken:
            raise ValidationError(where, text, "is used twice (also pods[%d])" % taken[ip])
        result[ip.version] = ip
    return result


def validate(params):
    """Module parameters -> want; every pod entry checked, paths name the index."""
    cidrs = _cidrs(params)
    cidr_names = _cidr_names(params, cidrs)
    gateways = _gateways(params, cidrs, cidr_names)
    pods, names, veths, addresses = [], {}, {}, {}
    for index, item in enumerate(params["pods"]):
        path = "pods[%d]" % index
        if not isinstance(item, dict):
            raise ValidationError(path, item, "must be a dict with at least a name")
        name = v.netns_name(item.get("name"), path + ".name")
        if name in names:
            raise ValidationError(path + ".name", name, "is listed twice (also pods[%d])" % names[name])
        names[name] = index
        veth = v.ifname(item.get("veth") or host_veth_name(name), path + ".veth")
        if veth in veths:
            raise ValidationError(path + ".veth", veth, "is used twice (also pods[%d])" % veths[veth])
        veths[veth] = index
        given = _pod_addresses(item, path, cidrs, cidr_names, gateways, addresses)
        for ip in given.values():
            addresses[ip] = index
        interface = v.ifname(item.get("interface") or POD_INTERFACE, path + ".interface")
        pods.append({"name": name, "veth": veth, "interface": interface, "addresses": given})
    return {
        "pods": pods, "bridge": v.ifname(params["bridge"], "bridge"), "pod_cidrs": cidrs, "cidr_names": cidr_names,
        "gateways": gateways, "mtu": v.mtu(params.get("mtu"), "mtu"),
        "hairpin": params.get("hairpin"), "state": params["state"],
        "proto": params.get("proto") or ROUTE_PROTO,
    }


def _network_of(text, path):
    """The network of an address with a prefix length; a ValidationError naming path if it is none."""
    try:
        return ipaddress.ip_interface(text).network
    except ValueError:
        raise ValidationError(path, text, "is not an address with a valid prefix length")


def _current_address(pod_cur, iface, cidr):
    link = (pod_cur.get("links") or {}).get(iface)
    for address in (link or {}).get("addresses", []):
        ip = ipaddress.ip_interface(address).ip
        if ip in cidr:
            return ip
    return None


def needs_free_address(want, cur):
    """Whether some pod gets the next free address of a pod CIDR: none given and none of it held already."""
    for pod in want["pods"]:
        for cidr in want["pod_cidrs"]:
            if cidr.version not in pod["addresses"] and _current_address(
                    cur["pods"].get(pod["name"], {}), pod["interface"], cidr) is None:
                return True
    return False


def assign_addresses(want, cur):
    """{pod: [its address in each pod CIDR, in their order]}.

    Per pod CIDR: given addresses stay; a pod that has one of the CIDR keeps it; the
    rest get the lowest free. Free: not the gateway, not given to or kept by a pod of
    this call, and not held by any other namespace of the node (cur['held']: {ip:
    namespace}, the pods of earlier calls on the same bridge among them).
    """
    held = set(ipaddress.ip_address(ip) for ip in cur.get("held") or ())
    result = dict((pod["name"], []) for pod in want["pods"])
    names = want.get("cidr_names") or ["pod CIDR %s" % c for c in want["pod_cidrs"]]
    for cidr, gateway, name in zip(want["pod_cidrs"], want["gateways"], names):
        family, taken, chosen = cidr.version, {gateway}, {}
        for pod in want["pods"]:
            if family in pod["addresses"]:
                taken.add(pod["addresses"][family])
        for pod in want["pods"]:
            if family not in pod["addresses"]:
                have = _current_address(cur["pods"].get(pod["name"], {}), pod["interface"], cidr)
                if have is not None and have not in taken:
                    chosen[pod["name"]] = have
                    taken.add(have)
        free = (ip for ip in cidr.hosts() if ip not in taken and ip not in held)
        for pod in want["pods"]:
            if family in pod["addresses"]:
                chosen[pod["name"]] = pod["addresses"][family]
            elif pod["name"] not in chosen:
                try:
                    chosen[pod["name"]] = next(free)
                except StopIteration:
                    raise ValidationError("pods", pod["name"], "gets no address: %s is full" % name)
            result[pod["name"]].append("%s/%d" % (chosen[pod["name"]], cidr.prefixlen))
    return result


def default_metric(routes, interface, family=4):
    """The metric of an attachment's default route of one family in a namespace it shares.

    Its own default route's metric when it has one; the family's usual metric
    (0, IPv6 1024) when the namespace has no default route; else one more than
    the highest there, so the first attachment stays the primary one and each
    later one is a fallback that remains when an earlier attachment is deleted
    (its routes go with its device).
    """
    defaults = [r for r in routes if r["dst"] == "default" and r["family"] == family]
    for route in defaults:
        if route.get("dev") == interface:
            return route["metric"]
    return max(r["metric"] for r in defaults) + 1 if defaults else v.DEFAULT_METRIC[family]


def _ipv6_sysctls(pod):
    """A new pod interface with an IPv6 address learns no route from router advertisements, and runs no DAD.

    Another pod on the bridge could otherwise send an advertisement and become
    every pod's IPv6 gateway. Its addresses are added without duplicate address
    detection (``core.plan.links``), and with accept_dad 0, set (by plan_veth)
    right after the pair is made and before the interface goes up, neither is
    the link-local address the kernel makes for it (unique: the MAC it derives
    from is the pod's own address), so every IPv6 address of the pod is usable
    the moment the plan is applied, never tentative.
    """
    if not any(":" in a for a in pod.addresses):
        return []
    return [("net.ipv6.conf.%s.%s" % (pod.interface, name), "/proc/sys/net/ipv6/conf/%s/%s" % (pod.interface, name),
             "0") for name in ("accept_ra", "accept_dad")]


def plan_pod(pod, cur):
    """The actions that make one pod's wiring what ``pod`` says.

    cur: {netns_exists: bool, host: the host end (link named pod.veth) or None,
          peer_at: where the host end's peer is (see links.veth_standing; optional),
          links: {name: link} in the pod's namespace, routes: its main-table routes,
          networks: its connected networks (optional), bridge: the bridge link}
    """
    links = cur.get("links") or {}
    host, peer = cur["host"], links.get(pod.interface)
    plan = Plan({})
    if pod.owns_netns:
        plan.extend(plan_netns({"name": pod.netns, "state": "present"}, cur["netns_exists"]))
    veth = plan_veth(
        {"name": pod.veth, "peer": pod.interface, "netns": pod.netns, "master": pod.bridge, "mtu": pod.mtu,
         "hairpin": pod.hairpin, "up": True, "state": "present", "peer_mac": pod_mac(mac_source(pod.addresses)),
         "peer_sysctls": _ipv6_sysctls(pod)},
        {"host": host, "peer": peer, "peer_at": cur.get("peer_at"), "stray_peer": None, "netns_exists": True,
         "master": cur["bridge"]})
    plan.extend(veth)
    fresh = any(a.op == Op.VETH_ADD for a in veth.actions)
    iface = dict(_NEW_IFACE, name=pod.interface, up=True) if fresh or peer is None else dict(peer, up=True)
    plan.extend(plan_interface_addresses(
        {"netns": pod.netns, "interface": pod.interface, "addresses": list(pod.addresses), "up": True,
         "state": "present"},
        {"netns_exists": True, "link": iface,
         "lo": links.get("lo", {"up": False}) if pod.owns_netns else None}))
    routes = cur.get("routes") or []
    ours, foreign = split_routes(routes, pod.proto)
    # In a namespace shared with other attachments the default route names its device,
    # with a metric of its own: the attachments' default routes never replace each other.
    defaults = []
    for index, gateway in enumerate(pod.gateways):
        if pod.owns_netns:
            default = {"dst": "default", "via": gateway, "dev": None}
        else:
            default = {"dst": "default", "via": gateway, "dev": pod.interface,
                       "metric": default_metric(routes, pod.interface, ipaddress.ip_address(gateway).version)}
        defaults.append(v.route(default, "gateway" if index == 0 else "gateways[%d]" % index))
    plan.extend(plan_routes(
        {"netns": pod.netns, "routes": defaults, "purge": pod.owns_netns, "state": "present",
         "proto": pod.proto, "table": MAIN_TABLE},
        {"netns_exists": True, "ours": ours, "foreign": foreign,
         "connected": list(cur.get("networks") or []) + [ipaddress.ip_interface(a).network for a in pod.addresses],
         "links": set(links) | {pod.interface, "lo"}}))
    return plan


def plan_pod_removal(pod, cur):
    """The actions that remove a pod: its veth (the peer goes with it), and its namespace if it owns one.

    cur: {netns_exists, host: link named pod.veth or None, links: {name: link} in the pod's namespace,
          peer_at: where the host end's peer is (see links.veth_standing; optional)}
    Only a veth is deleted, and only the pod's (plan_veth refuses one whose peer is
    elsewhere); a link of another kind under that name is left alone.
    """
    plan = Plan({})
    host = cur["host"]
    if host is not None and host.get("kind") == "veth":
        plan.extend(plan_veth(
            {"name": pod.veth, "peer": pod.interface, "netns": pod.netns, "master": None, "mtu": None,
             "hairpin": None, "up": True, "state": "absent"},
            {"host": host, "peer": (cur.get("links") or {}).get(pod.interface), "peer_at": cur.get("peer_at"),
             "netns_exists": cur["netns_exists"]}))
    if pod.owns_netns:
        plan.extend(plan_netns({"name": pod.netns, "state": "absent"}, cur["netns_exists"]))
    return plan


def plan_pods(want, cur, assume_missing=False):
    """want: from validate(); cur: {host_links: {name: link}, pods: {pod: {exists, links, routes, peer_at}},
    held: {ip: namespace}}.

    pods[pod] has exists (True, False or STALE: a leftover file, cleared), links (name -> link with addresses) and
    routes (list of route dicts with proto and type) for namespaces that exist,
    and peer_at (where the pod's host end's peer is) when the host end exists;
    held: addresses of pod_cidr other namespaces of the node hold (read only
    when some pod needs a free address).
    plan.details["pods"]: the pods as they are after the plan.
    """
    bridge = cur["host_links"].get(want["bridge"])
    if bridge is None and assume_missing:
        # Check mode of a whole play: the bridge task before this one would create it.
        bridge = {"name": want["bridge"], "kind": "bridge"}
    if want["state"] == "present":
        if bridge is None:
            raise ValidationError(
                "bridge", want["bridge"],
                "does not exist; create it first (podnet.mesh.bridge or the node_network role)")
        if bridge["kind"] != "bridge":
            raise ConflictError("bridge", want["bridge"], "is a link of kind %s, not a bridge" % bridge["kind"])
    addresses = assign_addresses(want, cur) if want["state"] == "present" else {}
    gateways = [str(g) for g in want["gateways"]]
    plan = Plan({"pods": {}}, {"pods": {}})
    plan.details["pods"] = []
    for item in want["pods"]:
        name, pcur = item["name"], cur["pods"].get(item["name"], {"exists": False})
        links = pcur.get("links") or {}
        host = cur["host_links"].get(item["veth"])
        peer_at = pcur.get("peer_at")
        paired = host is not None and host.get("kind") == "veth" and veth_standing(
            {"peer": item["interface"], "netns": name}, host, links.get(item["interface"]), peer_at) == PAIRED
        address = links.get(item["interface"], {}).get("addresses", []) if paired else []
        plan.before["pods"][name] = {
            "state": "present" if pcur["exists"] is True else "absent",
            "veth": item["veth"] if paired else None,
            "addresses": list(address),
        }
        mine = addresses.get(name, [])
        pod = Pod(netns=name, veth=item["veth"], interface=item["interface"], addresses=mine,
                  gateways=gateways, bridge=want["bridge"], mtu=want["mtu"], hairpin=want["hairpin"],
                  proto=want["proto"])
        pod_cur = {"netns_exists": pcur["exists"], "host": host, "links": links, "routes": pcur.get("routes"),
                   "bridge": bridge, "peer_at": peer_at}
        if want["state"] == "absent":
            plan.extend(plan_pod_removal(pod, pod_cur))
            plan.after["pods"][name] = {"state": "absent", "veth": None, "addresses": []}
        else:
            plan.extend(plan_pod(pod, pod_cur))
            plan.after["pods"][name] = {"state": "present", "veth": item["veth"], "addresses": list(mine)}
            plan.details["pods"].append({"name": name, "veth": item["veth"], "interface": item["interface"],
                                         "address": mine[0], "gateway": gateways[0],
                                         "addresses": list(mine), "gateways": list(gateways)})
    return plan
