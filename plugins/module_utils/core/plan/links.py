# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure planners of single objects: a namespace, a bridge, a veth pair, an interface's addresses.

Each takes the wanted object (validated) and its current state (plain dicts, see
``core.model``) and returns a Plan; none imports pyroute2 or touches the kernel.
Conflicts with what exists raise ConflictError before anything is changed.
``assume_missing`` is check mode of a whole play: objects that earlier tasks of
the same play would create (a namespace, a bridge, a link) are taken as there.
"""

from __future__ import annotations

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import DEFAULT_MTU, STALE, Op, Plan, broadcast_of, ns_label


def _wrong_kind(path, name, link, wanted, ns):
    return ConflictError(
        path, name,
        "already exists in namespace %s as a link of kind %s, not a %s; nothing was changed"
        % (ns_label(ns), link.get("kind") or "unknown", wanted))


def _plan_addresses(plan, ns, name, current, wanted):
    """Delete addresses not wanted, then add missing ones (wanted order)."""
    have = set(current)
    want = set(wanted)
    for address in current:
        if address not in want:
            plan.add(Op.ADDR_DEL, ns, name, address=address)
    for address in wanted:
        if address not in have:
            plan.add(Op.ADDR_ADD, ns, name, address=address, **_address_extras(address))


def _address_extras(address):
    """An IPv4 address's broadcast address; an IPv6 address is usable at once (no duplicate address detection).

    Every address the collection adds is one it assigned itself (the pod gateway, a
    pod's address): DAD would only hold it tentative for a second or more.
    """
    if ":" in address:
        return {"nodad": True}
    broadcast = broadcast_of(address)
    return {"broadcast": broadcast} if broadcast else {}


# --------------------------------------------------------------------- netns
def plan_netns(want, exists, assume_missing=False):  # pylint: disable=unused-argument
    """want: {name, state}; exists: whether /run/netns/<name> is a mounted namespace.

    exists may also be STALE: a leftover file that is no namespace (after a
    crash); it is removed, and for state=present a namespace made in its place.
    """
    name = want["name"]
    if exists == STALE:
        plan = Plan({"name": name, "state": STALE})
        plan.add(Op.NETNS_CLEAR, None, name)
        exists = False
    else:
        plan = Plan({"name": name, "state": "present" if exists else "absent"})
    plan.after = {"name": name, "state": want["state"]}
    if want["state"] == "present" and not exists:
        plan.add(Op.NETNS_ADD, None, name)
    elif want["state"] == "absent" and exists:
        plan.add(Op.NETNS_DEL, None, name)
    return plan


# -------------------------------------------------------------------- bridge
def _bridge_view(link):
    return {
        "name": link["name"], "state": "present", "mac": link.get("mac"), "mtu": link["mtu"], "stp": link["stp"],
        "up": link["up"], "addresses": list(link["addresses"]),
    }


def plan_bridge(want, link, assume_missing=False):  # pylint: disable=unused-argument
    """want: {name, state, addresses (list or None), mtu, stp, up, mac (optional)}; link: dict or None.

    mac: the MAC the bridge is pinned to (``core.model.bridge_mac``), given at
    creation, or set when the bridge has another; None leaves it to the kernel.
    """
    name = want["name"]
    if link is not None and link["kind"] != "bridge":
        raise _wrong_kind("name", name, link, "bridge", None)
    before = _bridge_view(link) if link else {"name": name, "state": "absent"}
    plan = Plan(before)

    if want["state"] == "absent":
        plan.after = {"name": name, "state": "absent"}
        if link:
            plan.add(Op.LINK_DEL, None, name)
        return plan

    mac = want.get("mac")
    if link is None:
        plan.add(Op.BRIDGE_ADD, None, name, **({"mac": mac} if mac else {}))
        link = {"name": name, "mac": mac, "mtu": DEFAULT_MTU, "stp": False, "up": False, "addresses": []}
    changes = {}
    if mac and mac.lower() != (link.get("mac") or "").lower():
        changes["mac"] = mac
    if want["mtu"] is not None and want["mtu"] != link["mtu"]:
        changes["mtu"] = want["mtu"]
    if want["stp"] != link["stp"]:
        changes["stp"] = want["stp"]
    if changes:
        plan.add(Op.LINK_SET, None, name, **changes)
    addresses = link["addresses"] if want["addresses"] is None else want["addresses"]
    if want["addresses"] is not None:
        _plan_addresses(plan, None, name, link["addresses"], want["addresses"])
    if want["up"] != link["up"]:
        plan.add(Op.LINK_SET, None, name, up=want["up"])
    plan.after = {
        "name": name, "state": "present", "mac": changes.get("mac", link.get("mac")),
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
    """Whether peer (in namespace peer_ns, None = host) is the other end of host.

    Judged from the two link dicts alone: a caller that knows where the host end's
    peer is (``peer_at``, see plan_veth) has the proof, this is the presumption.
    """
    if host is None or peer is None or peer.get("kind") != "veth":
        return False
    if peer.get("link") != host["ifindex"]:
        return False
    if peer_ns is None:
        # Both ends in one namespace: each names the other, with no netnsid.
        return host.get("link") == peer["ifindex"] and host.get("link_netnsid") is None
    return peer.get("link_netnsid") is not None


# How the host end of a veth stands to the pair that is asked for (veth_standing).
PAIRED = "paired"      # its peer is the named peer in the named namespace
UNMOVED = "unmoved"    # its peer is the named peer, still in the host namespace (made, never moved)
RENAMED = "renamed"    # its peer is in the named namespace under another name
LOST = "lost"          # its peer is in no namespace this node has mounted
FOREIGN = "foreign"    # its peer is somewhere else: another namespace, or the host's under another name


def where(ns):
    """A namespace as a message names it: 'namespace red', 'the host namespace', 'namespace file /x'."""
    if ns is None:
        return "the host namespace"
    return "namespace file %s" % ns if ns.startswith("/") else "namespace %s" % ns


def veth_standing(want, host, peer, peer_at):
    """How the host end (a veth, or None) stands to the pair want asks for; None when there is no host end.

    peer_at: where the host end's peer is, as the kernel layer proved it
    ({seen, netns, link}, see ``kernel.netlink.Session.peer_of``), or None when
    the caller did not look: the pairing is then presumed from the link dicts
    (``is_pair``) and anything else counts as lost, as callers that own the host
    end's name outright (the CNI plugin's hashed names) need.

    "Lost" is a peer in no namespace this node has mounted: the namespace the pair
    was made for was deleted (or made again) while a process still held the old
    one. With the pair's namespace (want['netns']) named, a peer there under
    another name counts as the pair's too (RENAMED); the host namespace is
    nobody's own, so there a renamed peer is FOREIGN.
    """
    if host is None:
        return None
    name, ns = want["peer"], want["netns"]
    if peer_at is None:
        return PAIRED if is_pair(host, peer, ns) else LOST
    if not peer_at["seen"]:
        return LOST
    peer_name = (peer_at["link"] or {}).get("name")
    if peer_at["netns"] == ns:
        return PAIRED if peer_name == name else (RENAMED if ns is not None else FOREIGN)
    if peer_at["netns"] is None and peer_name == name:
        return UNMOVED
    return FOREIGN


def foreign_pair(path, want, host, peer_at):
    """The ConflictError of a host end whose peer is not the pair's: names link, peer and where it is."""
    peer = peer_at["link"] or {}
    return ConflictError(
        path, want["name"],
        "is a veth whose peer %s is in %s, not %s in %s: a pair podnet.mesh was not asked for; "
        "nothing was changed" % (peer.get("name") or "(ifindex %s)" % host.get("link"), where(peer_at["netns"]),
                                 want["peer"], where(want["netns"])))


def plan_veth(want, cur, assume_missing=False):
    """Plan a veth pair whose peer end lives in want['netns'] (None: the host).

    want: {name, peer, netns, master, mtu, hairpin, up, state, peer_mac (optional),
           peer_sysctls (optional): [(key, path, value)] set on a new pair's peer end
           right after it is made, before it first comes up}
    cur: {host: link|None, peer: link named want['peer'] in the target namespace|None,
          peer_at: where the host end's peer is ({seen, netns, link}, see veth_standing)
                   or None when not looked for,
          stray_peer: the host end's actual peer if it is still in the host namespace|None
                      (only read when peer_at is None),
          netns_exists: bool, master: link named want['master']|None}

    A host end is deleted (state=absent, or to make the pair again) only when the
    pair is provably the one asked for or its peer is lost (veth_standing): a pair
    whose peer is anywhere else is refused by name, and nothing changes.
    """
    name, peer_name, ns = want["name"], want["peer"], want["netns"]
    host, peer = cur["host"], cur["peer"]
    if host is not None and host["kind"] != "veth":
        raise _wrong_kind("name", name, host, "veth", None)
    peer_at = cur.get("peer_at")
    standing = veth_standing(want, host, peer, peer_at)
    if standing == FOREIGN:
        raise foreign_pair("name", want, host, peer_at)
    paired = standing == PAIRED
    if paired and peer is None and peer_at is not None:
        peer = peer_at["link"]
    plan = Plan(_veth_view(want, host, peer if paired else None))

    if want["state"] == "absent":
        plan.after = {"name": name, "state": "absent"}
        if host is not None:
            plan.add(Op.LINK_DEL, None, name)
        return plan

    if ns is not None and not cur["netns_exists"] and not assume_missing:
        raise ValidationError(
            "netns", ns, "does not exist; create the namespace first (podnet.mesh.netns)")
    master = want["master"]
    if master is not None:
        mlink = cur["master"]
        if mlink is None and assume_missing:
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
            raise ConflictError(
                "peer", peer_name,
                "already exists in namespace %s and is not the peer of %s; nothing was changed"
                % (ns_label(ns), name))
        stray = cur.get("stray_peer") if peer_at is None else (peer_at["link"] if standing == UNMOVED else None)
        if host is not None and stray is not None and stray["name"] == peer_name and ns is not None:
            # Created but never moved: move the peer end into its namespace.
            plan.add(Op.LINK_MOVE, None, peer_name, to_ns=ns)
            host_state, peer_state = host, dict(stray, up=False)
        else:
            if host is not None:
                # The other end is lost, or renamed in the pair's namespace: make the pair again.
                plan.add(Op.LINK_DEL, None, name)
            if want.get("peer_mac"):
                plan.add(Op.VETH_ADD, None, name, peer=peer_name, peer_ns=ns, peer_mac=want["peer_mac"])
            else:
                plan.add(Op.VETH_ADD, None, name, peer=peer_name, peer_ns=ns)
            for key, path, value in want.get("peer_sysctls") or ():
                plan.add(Op.SYSCTL, ns, key, path=path, value=value,
                         text="set %s = %s in namespace %s" % (key, value, ns))
            host_state = fresh

    mtu = want["mtu"]
    if mtu is not None and host_state["mtu"] != mtu:
        plan.add(Op.LINK_SET, None, name, mtu=mtu)
    if mtu is not None and peer_state["mtu"] != mtu:
        plan.add(Op.LINK_SET, ns, peer_name, mtu=mtu)
    if master is not None and host_state["master"] != master:
        plan.add(Op.LINK_SET, None, name, master=master)
    master_after = master if master is not None else host_state["master"]
    # A port attached to another bridge starts again with hairpin off.
    hairpin = bool(host_state["hairpin"]) if host_state["master"] == master_after else False
    if want["hairpin"] is not None and want["hairpin"] != hairpin:
        if master_after is None:
            raise ValidationError(
                "hairpin", want["hairpin"], "needs a bridge port: set master as well")
        plan.add(Op.BRPORT_SET, None, name, hairpin=want["hairpin"])
        hairpin = want["hairpin"]
    if want["up"] and not host_state["up"]:
        plan.add(Op.LINK_SET, None, name, up=True)
    if want["up"] and not peer_state["up"]:
        plan.add(Op.LINK_SET, ns, peer_name, up=True)
    if not want["up"] and host_state["up"]:
        plan.add(Op.LINK_SET, None, name, up=False)
    if not want["up"] and peer_state["up"]:
        plan.add(Op.LINK_SET, ns, peer_name, up=False)
    plan.after = {
        "name": name, "state": "present", "peer": peer_name, "netns": ns,
        "master": master_after,
        "mtu": mtu if mtu is not None else host_state["mtu"],
        "hairpin": hairpin, "up": want["up"],
    }
    return plan


# ----------------------------------------------------------------- addresses
def plan_interface_addresses(want, cur, assume_missing=False):
    """Addresses (and admin state) of one interface in a namespace.

    want: {netns, interface, addresses (list or None), up, state}
    cur: {netns_exists: bool, link: link|None, lo: link|None}
    """
    ns, name = want["netns"], want["interface"]
    link = cur["link"]
    if assume_missing and want["state"] == "present" and link is None:
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
            "interface", name, "does not exist in namespace %s; nothing was changed" % ns_label(ns))
    before = {"netns": ns, "interface": name, "up": link["up"], "addresses": list(link["addresses"])}
    plan = Plan(before)

    if want["state"] == "absent":
        drop = link["addresses"] if want["addresses"] is None else [
            a for a in want["addresses"] if a in link["addresses"]]
        for address in drop:
            plan.add(Op.ADDR_DEL, ns, name, address=address)
        plan.after = dict(before, addresses=[a for a in link["addresses"] if a not in drop])
        return plan

    addresses = link["addresses"]
    if want["addresses"] is not None:
        _plan_addresses(plan, ns, name, link["addresses"], want["addresses"])
        addresses = want["addresses"]
    if want["up"] != link["up"]:
        plan.add(Op.LINK_SET, ns, name, up=want["up"])
    lo = cur.get("lo")
    if want["up"] and lo is not None and not lo["up"] and name != "lo":
        plan.add(Op.LINK_SET, ns, "lo", up=True)
    plan.after = {"netns": ns, "interface": name, "up": want["up"], "addresses": list(addresses)}
    return plan
