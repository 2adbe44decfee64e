# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The VXLAN overlay of one node, planned from the inventory alone (pure, no kernel).

A node reaches the pods of a peer that is not on its layer-2 segment through a
VXLAN device (one VNI, one UDP port, its node address as the local end) with
static entries only, as flannel's vxlan backend programs them but with no
daemon: every MAC derives from a node address (``model.vtep_mac``), so nothing
is exchanged between nodes. Per peer:

* a forwarding (FDB) entry: the peer's VTEP MAC is behind the peer's node address;
* a permanent neighbour entry per family: the peer's VTEP address (the first
  address of its pod CIDR, as flannel uses) has the peer's VTEP MAC;
* and, planned by ``pod_route`` (the mesh_routes role), a route to the peer's pod
  CIDR via that VTEP address, on the device, ``onlink``.

The device carries the alias ``OWNER_ALIAS``: a VXLAN link of that name without
it is another tool's and is never changed. Its entries are all ours (learning is
off): those of peers no longer listed are purged.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op, Plan, vtep_mac

# The alias of an overlay device the collection made (IFLA_IFALIAS).
OWNER_ALIAS = "podnet.mesh overlay"
DEFAULT_NAME = "podnet.vxlan"
DEFAULT_VNI = 1
# The Linux kernel's and flannel's VXLAN port (IANA's is 4789).
DEFAULT_PORT = 8472
# IPv4 + UDP + VXLAN + inner Ethernet headers: what VXLAN over an IPv4 underlay costs (IPv6: 70).
OVERHEAD = {4: 50, 6: 70}
VNI_MAX = 2 ** 24 - 1


def validate(params):
    """Module parameters -> want; every peer checked, paths name the index."""
    state = params["state"]
    name = v.ifname(params.get("name") or DEFAULT_NAME, "name")
    vni = v.integer(params.get("vni", DEFAULT_VNI), "vni", 1, VNI_MAX)
    port = v.integer(params.get("port", DEFAULT_PORT), "port", 1, 65535)
    local = params.get("local")
    if local is None:
        if state == "present":
            raise ValidationError("local", local, "is required: this node's address, the VXLAN tunnels' local end")
    else:
        local = v.ip_address(local, "local")
    mac = v.mac(params["mac"], "mac") if params.get("mac") else (vtep_mac(local) if local is not None else None)
    peers, seen_ips, seen_vteps, seen_macs = [], {}, {}, {}
    for index, item in enumerate(params.get("peers") or []):
        path = "peers[%d]" % index
        if not isinstance(item, dict):
            raise ValidationError(path, item, "must be a dict with node_ip and vtep")
        node_ip = v.ip_address(item.get("node_ip"), path + ".node_ip")
        if local is not None and node_ip.version != local.version:
            raise ValidationError(path + ".node_ip", str(node_ip),
                                  "is IPv%d but local %s is IPv%d: one underlay family per overlay"
                                  % (node_ip.version, local, local.version))
        if node_ip == local:
            raise ValidationError(path + ".node_ip", str(node_ip), "is this node's own address (local)")
        if node_ip in seen_ips:
            raise ValidationError(path + ".node_ip", str(node_ip), "is listed twice (also peers[%d])" % seen_ips[node_ip])
        seen_ips[node_ip] = index
        vteps = item.get("vtep")
        vteps = [vteps] if isinstance(vteps, str) else vteps
        if not isinstance(vteps, list) or not vteps:
            raise ValidationError(path + ".vtep", item.get("vtep"),
                                  "must list the peer's VTEP addresses (the first address of each of its pod CIDRs)")
        addresses, families = [], {}
        for j, text in enumerate(vteps):
            where = "%s.vtep[%d]" % (path, j)
            ip = v.ip_address(text, where)
            if ip.version in families:
                raise ValidationError(where, text, "is a second IPv%d address (also %s): one per family"
                                      % (ip.version, families[ip.version]))
            if ip in seen_vteps:
                raise ValidationError(where, text, "is also the VTEP address of peers[%d]" % seen_vteps[ip])
            families[ip.version] = ip
            seen_vteps[ip] = index
            addresses.append(str(ip))
        peer_mac = v.mac(item["mac"], path + ".mac") if item.get("mac") else vtep_mac(node_ip)
        if peer_mac == mac or peer_mac in seen_macs:
            raise ValidationError(path + ".mac", peer_mac, "is also the MAC of %s" % (
                "this node's device" if peer_mac == mac else "peers[%d]" % seen_macs[peer_mac]))
        seen_macs[peer_mac] = index
        peers.append({"node_ip": str(node_ip), "vtep": addresses, "mac": peer_mac})
    dev = params.get("dev")
    return {
        "name": name, "vni": vni, "port": port, "local": None if local is None else str(local),
        "dev": None if dev is None else v.ifname(dev, "dev"), "mac": mac, "mtu": v.mtu(params.get("mtu"), "mtu"),
        "peers": peers, "purge": params.get("purge", True), "state": state,
    }


def view(link, fdb, neighbours):
    """The overlay as the module returns it and diff mode shows it (None: no device)."""
    if link is None:
        return {"name": None, "state": "absent"}
    vxlan = link.get("vxlan") or {}
    return {
        "name": link["name"], "state": "present", "vni": vxlan.get("vni"), "port": vxlan.get("port"),
        "local": vxlan.get("local"), "mac": link.get("mac"), "mtu": link.get("mtu"), "up": link.get("up"),
        "fdb": sorted("%s dst %s" % (e["mac"], e["dst"]) for e in fdb),
        "neighbours": sorted("%s lladdr %s" % (n["address"], n["mac"]) for n in neighbours),
    }


def _wanted_view(want, link):
    return {
        "name": want["name"], "state": "present", "vni": want["vni"], "port": want["port"], "local": want["local"],
        "mac": want["mac"], "mtu": want["mtu"] if want["mtu"] is not None else (link or {}).get("mtu"), "up": True,
        "fdb": sorted("%s dst %s" % (p["mac"], p["node_ip"]) for p in want["peers"]),
        "neighbours": sorted("%s lladdr %s" % (a, p["mac"]) for p in want["peers"] for a in p["vtep"]),
    }


def _check_ours(want, link):
    if link is None:
        return
    if link.get("kind") != "vxlan":
        raise ConflictError("name", want["name"], "already exists as a link of kind %s, not a vxlan; nothing was changed"
                            % (link.get("kind") or "unknown"))
    if link.get("alias") != OWNER_ALIAS:
        raise ConflictError("name", want["name"], "is a vxlan link that podnet.mesh did not create (its alias is %s, "
                            "not %r); it is left alone and nothing was changed"
                            % ("unset" if link.get("alias") is None else repr(link.get("alias")), OWNER_ALIAS))


def _same_tunnel(want, link, dev_index):
    vxlan = link.get("vxlan") or {}
    return (vxlan.get("vni") == want["vni"] and vxlan.get("port") == want["port"] and vxlan.get("local") == want["local"]
            and (want["dev"] is None or vxlan.get("link") == dev_index) and not vxlan.get("learning"))


def plan_overlay(want, cur, assume_missing=False):
    """want: from validate(); cur: {link: the device's link dict (kind, alias, mac, mtu, up, vxlan: {vni, port,
    local, link, learning}) or None, dev_index: ifindex of want['dev'] or None, fdb: [{mac, dst}],
    neighbours: [{address, mac, permanent}]}.

    A device whose VNI, port, local address or underlay device differs cannot be
    changed in place: it is made again (its entries with it). plan.details['overlay']:
    the overlay as it is after the plan.
    """
    link = cur.get("link")
    _check_ours(want, link)
    fdb, neighbours = list(cur.get("fdb") or []), list(cur.get("neighbours") or [])
    plan = Plan(view(link, fdb, neighbours))
    name = want["name"]
    if want["state"] == "absent":
        if link is not None:
            plan.add(Op.LINK_DEL, None, name)
        plan.after = {"name": None, "state": "absent"}
        plan.details["overlay"] = plan.after
        return plan
    if want["dev"] is not None and cur.get("dev_index") is None and not assume_missing:
        raise ValidationError("dev", want["dev"], "does not exist")
    if link is not None and not _same_tunnel(want, link, cur.get("dev_index")):
        plan.add(Op.LINK_DEL, None, name)
        link, fdb, neighbours = None, [], []
    if link is None:
        plan.add(Op.VXLAN_ADD, None, name, vni=want["vni"], port=want["port"], local=want["local"], dev=want["dev"],
                 mac=want["mac"], alias=OWNER_ALIAS, **({"mtu": want["mtu"]} if want["mtu"] is not None else {}))
        plan.add(Op.LINK_SET, None, name, up=True)
    else:
        changes = {}
        if link.get("mac") != want["mac"]:
            changes["mac"] = want["mac"]
        if want["mtu"] is not None and link.get("mtu") != want["mtu"]:
            changes["mtu"] = want["mtu"]
        if not link.get("up"):
            changes["up"] = True
        if changes:
            plan.add(Op.LINK_SET, None, name, **changes)
    _plan_entries(plan, want, fdb, neighbours)
    plan.after = _wanted_view(want, link)
    if not want["purge"]:
        plan.after["fdb"] = sorted(set(plan.after["fdb"]) | set("%s dst %s" % (e["mac"], e["dst"]) for e in fdb))
        plan.after["neighbours"] = sorted(set(plan.after["neighbours"]) | set(
            "%s lladdr %s" % (n["address"], n["mac"]) for n in neighbours))
    plan.details["overlay"] = dict(plan.after, peers=[dict(p) for p in want["peers"]])
    return plan


def _plan_entries(plan, want, fdb, neighbours):
    """FDB and neighbour entries: stale ones out first (purge), then the missing ones."""
    name = want["name"]
    wanted_fdb = dict((p["mac"], p["node_ip"]) for p in want["peers"])
    have_fdb = set((e["mac"], e["dst"]) for e in fdb)
    wanted_neigh = dict((a, p["mac"]) for p in want["peers"] for a in p["vtep"])
    have_neigh = dict((n["address"], n) for n in neighbours)
    if want["purge"]:
        for mac, dst in sorted(have_fdb):
            if wanted_fdb.get(mac) != dst:
                plan.add(Op.FDB_DEL, None, name, mac=mac, dst=dst)
        for address in sorted(have_neigh, key=_address_key):
            if address not in wanted_neigh:
                plan.add(Op.NEIGH_DEL, None, name, address=address, mac=have_neigh[address]["mac"])
    for mac, dst in sorted(wanted_fdb.items()):
        if (mac, dst) not in have_fdb:
            plan.add(Op.FDB_ADD, None, name, mac=mac, dst=dst)
    for address, mac in sorted(wanted_neigh.items(), key=lambda item: _address_key(item[0])):
        have = have_neigh.get(address)
        if have is None or have["mac"] != mac or not have.get("permanent"):
            plan.add(Op.NEIGH_REPLACE, None, name, address=address, mac=mac)


def _address_key(text):
    """IPv4 before IPv6, each in address order."""
    ip = ipaddress.ip_address(text)
    return (ip.version, ip)


def pod_mtu(underlay_mtu, family=4):
    """The MTU of pods whose traffic may cross the overlay: the underlay's less the VXLAN overhead."""
    return underlay_mtu - OVERHEAD[family]
