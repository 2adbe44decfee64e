# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The vocabulary every layer shares (pure: no Ansible, no pyroute2).

* constants: the routing protocol number of our routes, the main table, the
  default bridge, what the kernel gives a new link;
* the naming schemes, one each: a pod's gateway, a pod's MAC address, the
  host end of a pod's veth;
* ``Op``, ``Action`` and ``Plan``: what a planner produces and the kernel
  layer (or the lab, or the NAT tools) executes.

Current state reaches the planners as plain dicts. A link dict has the keys:
name, ifindex, kind, mac, mtu, up, master (name of the master link or None),
link (ifindex of the peer), link_netnsid, stp, hairpin and addresses (list of
CIDR strings, IPv6 link-local left out). A route dict has dst (CIDR or
'default'), family (4 or 6), via, dev, metric and, when read, proto and type
('unicast', 'blackhole', 'unreachable', ...: only unicast routes of our protocol are ours).
"""

from __future__ import annotations

import collections
import ipaddress

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import HOST

# Routing protocol number of every route the collection makes (``ip route`` shows
# "proto 149"); purge and teardown only ever remove routes carrying it.
ROUTE_PROTO = 149
# Routing table "main".
MAIN_TABLE = 254
# The node bridge, unless told otherwise.
DEFAULT_BRIDGE = "cni0"
# What the kernel gives a new bridge or veth end.
DEFAULT_MTU = 1500
# A pod's interface inside its namespace, unless told otherwise.
POD_INTERFACE = "eth0"
# Linux IFNAMSIZ is 16 bytes including the terminating NUL.
IFNAME_MAX_BYTES = 15
# A leftover file under /run/netns that is no namespace (after a crash).
STALE = "stale"
# Locally administered, unicast MAC prefix of pod interfaces (as the reference plugins use).
POD_MAC_PREFIX = b"\x0a\x58"
# ... and of a node's VXLAN endpoint (VTEP), followed by the last bytes of its node address:
# every peer derives it from the inventory, so no MAC is ever exchanged.
VTEP_MAC_PREFIX = b"\x0e\x58"

__all__ = ["HOST", "ROUTE_PROTO", "MAIN_TABLE", "DEFAULT_BRIDGE", "DEFAULT_MTU", "POD_INTERFACE",
           "IFNAME_MAX_BYTES", "STALE", "Op", "Action", "Plan", "Session", "ns_label", "pod_gateway",
           "derived_mac", "mac_source", "pod_mac", "bridge_mac", "pinned_bridge_mac", "vtep_mac", "broadcast_of", "host_veth_name"]


def ns_label(ns):
    """How a namespace is named in messages: its name, or 'host'."""
    return HOST if ns is None else ns


# ------------------------------------------------------------------- naming
def pod_gateway(cidr):
    """The gateway of a pod CIDR: its first host address (the bridge holds it)."""
    return next(ipaddress.ip_network(cidr).hosts())


def derived_mac(address, prefix):
    """A MAC made of prefix (bytes) followed by the last bytes of an address (IPv4 or IPv6).

    Interfaces made again with the same address keep their MAC, so the
    neighbour entries others hold for them stay right.
    """
    packed = ipaddress.ip_interface(address).ip.packed
    return ":".join("%02x" % b for b in prefix + packed[len(packed) - 6 + len(prefix):])


def mac_source(addresses):
    """The address of a list (CIDRs or plain) a MAC derives from: the first IPv4 one, else the first; None if empty.

    A dual-stack interface keeps the MAC it had as an IPv4-only one.
    """
    addresses = [str(a) for a in addresses or () if a is not None]
    return next((a for a in addresses if ":" not in a), addresses[0] if addresses else None)


def pod_mac(address):
    """The MAC of a pod interface holding address (CIDR or plain): 0a:58 + the address's last 4 bytes.

    A pod re-created with the same address keeps its MAC, so neighbour entries that the node
    and the other pods hold for it stay right (a random MAC leaves them stale for seconds).
    A dual-stack pod's MAC derives from its IPv4 address (``mac_source``).
    """
    return derived_mac(address, POD_MAC_PREFIX)


def bridge_mac(gateway):
    """The MAC a bridge holding gateway (CIDR or plain) is pinned to: 0a:58 + its last 4 bytes.

    A bridge whose MAC nobody set takes the lowest MAC of its ports and changes it
    when that port goes: every pod's neighbour entry for the gateway is then wrong
    until it expires (tens of seconds without the gateway). A MAC set explicitly
    never follows the ports. Derived like a pod's, so the module and the CNI
    plugin pin the same one.
    """
    return derived_mac(gateway, POD_MAC_PREFIX)


def vtep_mac(node_ip):
    """The MAC of a node's VXLAN device: 0e:58 + the last 4 bytes of its node address (the VXLAN local address)."""
    return derived_mac(node_ip, VTEP_MAC_PREFIX)


def pinned_bridge_mac(addresses):
    """The MAC a bridge with these addresses is pinned to (``mac_source`` picks one); None for none."""
    source = mac_source(addresses)
    return None if source is None else bridge_mac(source)


def broadcast_of(address):
    """The broadcast address an IPv4 address (CIDR) gets, as the kernel tools set it; None when it has none.

    /31 and /32 have no broadcast address (RFC 3021); neither has IPv6.
    """
    interface = ipaddress.ip_interface(address)
    if interface.version != 4 or interface.network.prefixlen >= 31:
        return None
    return str(interface.network.broadcast_address)


def host_veth_name(key):
    """Host end of a pod's veth: 'veth-<key>' when that is a valid interface name (at most
    15 bytes of printable ASCII without '/', ':' or '%'), else 'veth' + 11 hex digits of
    the key's SHA-256.

    The pods module keys by pod name (veth-red); the CNI plugin by
    '<container ID>/<ifname>', which always takes the hashed form.
    """
    name = "veth-%s" % key
    if len(name) <= IFNAME_MAX_BYTES and all("!" <= c <= "~" and c not in "/:%" for c in name):
        return name
    # hashlib loads OpenSSL (3 ms): only for hashed names, not on every CNI call.
    import hashlib  # pylint: disable=import-outside-toplevel
    return "veth" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:11]


# ----------------------------------------------------------------- actions
class Op:
    """The operations a plan can hold; the kernel layer has one handler for each."""

    NETNS_ADD = "netns_add"
    NETNS_DEL = "netns_del"
    NETNS_CLEAR = "netns_clear"
    BRIDGE_ADD = "bridge_add"
    VETH_ADD = "veth_add"
    LINK_DEL = "link_del"
    LINK_MOVE = "link_move"
    LINK_SET = "link_set"
    BRPORT_SET = "brport_set"
    ADDR_ADD = "addr_add"
    ADDR_DEL = "addr_del"
    ROUTE_ADD = "route_add"
    ROUTE_REPLACE = "route_replace"
    ROUTE_DEL = "route_del"
    ROUTE_OPS = (ROUTE_ADD, ROUTE_REPLACE, ROUTE_DEL)
    # The overlay: a VXLAN link, its forwarding entries (MAC -> remote VTEP) and its
    # permanent neighbour entries (peer VTEP address -> MAC).
    VXLAN_ADD = "vxlan_add"
    FDB_ADD = "fdb_add"
    FDB_DEL = "fdb_del"
    NEIGH_REPLACE = "neigh_replace"
    NEIGH_DEL = "neigh_del"
    # NAT tools (nft, iptables-restore) and sysctls.
    NFT_REPLACE = "nft_replace"
    NFT_DELETE = "nft_delete"
    IPTABLES_RESTORE = "iptables_restore"
    SYSCTL = "sysctl"
    # The lab: its directory, member namespaces and mounts.
    LAB_MOUNT = "lab_mount"
    LAB_REMOVE = "lab_remove"
    NS_CREATE = "ns_create"
    NS_REMOVE = "ns_remove"
    UMOUNT = "umount"


# (typing.NamedTuple would cost the CNI plugin's every run the import of typing.)
Action = collections.namedtuple("Action", "op ns name args")
Action.__doc__ = """One change: op on the object called name inside namespace ns (None: the host).

args holds what the op needs; ``args['text']``, when set, is how the action reads
in a module's ``actions`` (ops outside netlink carry their own).
"""


class Plan:
    """What a planner decided: ordered actions, the before/after views for diff mode,
    the values the module returns that only the planner knows (``details``) and
    warnings for the user."""

    def __init__(self, before, after=None):
        self.actions = []
        self.before = before
        self.after = dict(before) if after is None else after
        self.details = {}
        self.warnings = []

    def add(self, op, ns, name, **args):
        self.actions.append(Action(op, ns, name, args))

    def extend(self, other):
        """Take over another plan's actions and warnings (composition of planners)."""
        self.actions.extend(other.actions)
        self.warnings.extend(other.warnings)

    @property
    def changed(self):
        return bool(self.actions)


class Session:
    """What a plan runs against: the run loop's contract with the layer that does the work.

    The netlink session (``kernel.netlink``), the NAT tools (``kernel.nat``) and the lab
    (``lab.session``) are Sessions; modules read through them too (``ns()`` for netlink).
    """

    # The actions done so far, in order (a failed run reports them).
    applied = ()

    def apply(self, actions):
        """Run actions in order, appending each to ``applied``; raise a PodnetError naming the one that failed."""
        raise NotImplementedError

    def close(self):
        """Release what the session holds (sockets, namespace handles)."""
