# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pods: many pods wired to one bridge in one plan (pure, no kernel).

A pod is a named namespace whose interface (eth0) is the peer of a veth whose
host end is a port of the node's bridge, with one address of the node's pod
CIDR and a default route via the bridge address. The plan composes the
single-object planners of _plan, pod by pod, in the order the kernel needs:
namespace, veth, address, route. Objects that the same plan creates are
planned from their predicted state, so one pass suffices.
"""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.podnet.mesh.plugins.module_utils import _plan
from ansible_collections.podnet.mesh.plugins.module_utils import _validate as v
from ansible_collections.podnet.mesh.plugins.module_utils._validate import ValidationError

# The part of a pod's address plan that only exists once the pod does.
_NEW_IFACE = {"up": False, "addresses": [], "kind": "veth"}


def veth_name(pod):
    """Host end name for a pod: veth-<pod>, or a stable hash when that is too long."""
    name = "veth-%s" % pod
    if len(name.encode("utf-8")) <= v.IFNAME_MAX_BYTES:
        return name
    return "veth" + hashlib.sha1(pod.encode("utf-8")).hexdigest()[:11]


def validate(params):
    """Module parameters -> want; every pod entry checked, paths name the index."""
    cidr = ipaddress.ip_network(v.network(params["pod_cidr"], "pod_cidr"))
    if cidr.version != 4 or cidr.prefixlen > 30:
        raise ValidationError("pod_cidr", params["pod_cidr"], "must be an IPv4 network of at least 4 addresses")
    gateway = params.get("gateway")
    if gateway is None:
        gateway = next(cidr.hosts())
    else:
        gateway = v.ip_address(gateway, "gateway")
        if gateway not in cidr:
            raise ValidationError("gateway", params["gateway"], "is not inside pod_cidr %s" % cidr)
    pods, names, veths, addresses = [], {}, {}, {}
    for index, item in enumerate(params["pods"]):
        path = "pods[%d]" % index
        if not isinstance(item, dict):
            raise ValidationError(path, item, "must be a dict with at least a name")
        name = v.netns_name(item.get("name"), path + ".name")
        if name in names:
            raise ValidationError(path + ".name", name, "is listed twice (also pods[%d])" % names[name])
        names[name] = index
        veth = v.ifname(item.get("veth") or veth_name(name), path + ".veth")
        if veth in veths:
            raise ValidationError(path + ".veth", veth, "is used twice (also pods[%d])" % veths[veth])
        veths[veth] = index
        address = item.get("address")
        if address is not None:
            text = str(address)
            ip = v.ip_address(text.split("/", 1)[0], path + ".address")
            if "/" in text and ipaddress.ip_interface(text).network != cidr:
                raise ValidationError(path + ".address", address, "must have the prefix of pod_cidr %s" % cidr)
            if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address):
                raise ValidationError(path + ".address", address, "is not a host address of pod_cidr %s" % cidr)
            if ip == gateway:
                raise ValidationError(path + ".address", address, "is the gateway (bridge) address")
            if ip in addresses:
                raise ValidationError(path + ".address", address, "is used twice (also pods[%d])" % addresses[ip])
            addresses[ip] = index
            address = ip
        interface = v.ifname(item.get("interface") or "eth0", path + ".interface")
        pods.append({"name": name, "veth": veth, "interface": interface, "address": address})
    return {
        "pods": pods, "bridge": v.ifname(params["bridge"], "bridge"), "pod_cidr": cidr,
        "gateway": gateway, "mtu": v.mtu(params.get("mtu"), "mtu"),
        "hairpin": params.get("hairpin"), "state": params["state"],
        "proto": params.get("proto") or 149,
    }


def _current_address(pod_cur, iface, cidr):
    link = (pod_cur.get("links") or {}).get(iface)
    for address in (link or {}).get("addresses", []):
        ip = ipaddress.ip_interface(address).ip
        if ip in cidr:
            return ip
    return None


def assign_addresses(want, cur):
    """Given addresses stay; a pod that has one of the CIDR keeps it; the rest get the lowest free."""
    cidr, taken, result = want["pod_cidr"], {want["gateway"]}, {}
    for pod in want["pods"]:
        if pod["address"] is not None:
            taken.add(pod["address"])
    for pod in want["pods"]:
        if pod["address"] is None:
            have = _current_address(cur["pods"].get(pod["name"], {}), pod["interface"], cidr)
            if have is not None and have not in taken:
                result[pod["name"]] = have
                taken.add(have)
    free = (ip for ip in cidr.hosts() if ip not in taken)
    for pod in want["pods"]:
        if pod["address"] is not None:
            result[pod["name"]] = pod["address"]
        elif pod["name"] not in result:
            try:
                result[pod["name"]] = next(free)
            except StopIteration:
                raise ValidationError("pods", pod["name"], "gets no address: pod_cidr %s is full" % cidr)
    return result


def plan_pods(want, cur):
    """want: from validate(); cur: {host_links: {name: link}, pods: {pod: {exists, links, routes}}}.

    pods[pod] has exists (bool), links (name -> link with addresses) and
    routes (list of route dicts with proto) for namespaces that exist.
    """
    bridge = cur["host_links"].get(want["bridge"])
    if bridge is None and want.get("assume_missing"):
        # Check mode of a whole play: the bridge task before this one would create it.
        bridge = {"name": want["bridge"], "kind": "bridge"}
    if want["state"] == "present":
        if bridge is None:
            raise ValidationError(
                "bridge", want["bridge"],
                "does not exist; create it first (podnet.mesh.bridge or the node_network role)")
        if bridge["kind"] != "bridge":
            raise ValidationError("bridge", want["bridge"], "is a link of kind %s, not a bridge" % bridge["kind"])
    addresses = assign_addresses(want, cur) if want["state"] == "present" else {}
    prefix = want["pod_cidr"].prefixlen
    plan = _plan.Plan({"pods": {}}, {"pods": {}})
    plan.pods = []
    for pod in want["pods"]:
        name, pcur = pod["name"], cur["pods"].get(pod["name"], {"exists": False})
        links = pcur.get("links") or {}
        host = cur["host_links"].get(pod["veth"])
        peer = links.get(pod["interface"])
        paired = _plan.is_pair(host, peer, name)
        address = links.get(pod["interface"], {}).get("addresses", []) if paired else []
        plan.before["pods"][name] = {
            "state": "present" if pcur["exists"] else "absent",
            "veth": pod["veth"] if paired else None,
            "addresses": list(address),
        }
        parts = []
        if want["state"] == "absent":
            if host is not None and host["kind"] == "veth":
                parts.append(_plan.plan_veth(dict(_veth_want(want, pod), state="absent"),
                                             {"host": host, "peer": peer, "netns_exists": pcur["exists"]}))
            parts.append(_plan.plan_netns({"name": name, "state": "absent"}, pcur["exists"]))
            plan.after["pods"][name] = {"state": "absent", "veth": None, "addresses": []}
        else:
            cidr_address = "%s/%d" % (addresses[name], prefix)
            parts.append(_plan.plan_netns({"name": name, "state": "present"}, pcur["exists"]))
            veth = _plan.plan_veth(dict(_veth_want(want, pod), peer_mac=_plan.pod_mac(cidr_address)), {
                "host": host, "peer": peer, "stray_peer": None, "netns_exists": True,
                "master": bridge})
            parts.append(veth)
            fresh = any(a.op == "veth_add" for a in veth.actions)
            iface = dict(_NEW_IFACE, name=pod["interface"], up=True) if fresh or peer is None else \
                dict(peer, up=True)
            parts.append(_plan.plan_interface_addresses(
                {"netns": name, "interface": pod["interface"], "addresses": [cidr_address], "up": True,
                 "state": "present"},
                {"netns_exists": True, "link": iface, "lo": links.get("lo", {"up": False})}))
            ours, foreign = {}, {}
            for route in pcur.get("routes") or []:
                (ours if route["proto"] == want["proto"] else foreign)[v.route_key(route)] = route
            parts.append(_plan.plan_routes(
                {"netns": name, "routes": [v.route({"dst": "default", "via": str(want["gateway"])}, "gateway")],
                 "purge": True, "state": "present", "proto": want["proto"], "table": 254},
                {"netns_exists": True, "ours": ours, "foreign": foreign,
                 "connected": [ipaddress.ip_interface(cidr_address).network],
                 "links": set(links) | {pod["interface"], "lo"}}))
            plan.after["pods"][name] = {"state": "present", "veth": pod["veth"], "addresses": [cidr_address]}
            plan.pods.append({"name": name, "veth": pod["veth"], "interface": pod["interface"],
                              "address": cidr_address, "gateway": str(want["gateway"])})
        for part in parts:
            plan.actions.extend(part.actions)
    return plan


def _veth_want(want, pod):
    return {"name": pod["veth"], "peer": pod["interface"], "netns": pod["name"], "master": want["bridge"],
            "mtu": want["mtu"], "hairpin": want["hairpin"], "up": True, "state": "present"}
