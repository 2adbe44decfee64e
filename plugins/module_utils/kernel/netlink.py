# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The netlink layer: reads as plain dicts, and every kernel change of a plan (pyroute2 0.7 to 0.9).

Namespaces are always opened without being created (``flags=0``): a missing
namespace is reported, never made as a side effect, so check mode and every
read path leave the host as they found it. Each netlink failure becomes a
KernelError that names the operation, the object, the namespace and the
kernel's errno text.

Reads are dumps over a plain netlink socket (``kernel.wire``) decoded by
pyroute2's message classes; ``Session.apply`` runs a plan's changes through the
handlers of ``kernel.changes``.

Where a veth's other end is (``Session.peer_of``) is proven by namespace ids:
the kernel names the peer's namespace by an id (IFLA_LINK_NETNSID), and the id
a namespace file has is looked up (RTM_GETNSID), never guessed from names.
"""

from __future__ import annotations

import errno
import ipaddress
import os

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import changes, converge, wire
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import (
    NETNS_RUN_DIR, netns_exists)
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.pyroute2_parts import (
    HAS_PYROUTE2, PYROUTE2_IMPORT_ERROR, NetlinkDumpInterrupted, NetlinkError, ifaddrmsg, ifinfmsg, iproute, rtmsg)
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.pyroute2_parts import ndmsg as pr_ndmsg

__all__ = ["HAS_PYROUTE2", "PYROUTE2_IMPORT_ERROR", "Namespace", "Session", "link_state"]

IFF_UP = 0x1


def _error(operation, ns, exc, scoped=True):
    return KernelError.from_exception(operation, ns, exc, scoped)


def link_state(msg, names):
    """A link message as the plain dict the planning layer reads.

    names maps ifindex -> name for the same namespace (to name the master).
    """
    info = msg.get_attr("IFLA_LINKINFO")
    kind = stp = hairpin = None
    if info is not None:
        kind = info.get_attr("IFLA_INFO_KIND")
        data = info.get_attr("IFLA_INFO_DATA")
        if kind == "bridge" and data is not None:
            stp = bool(data.get_attr("IFLA_BR_STP_STATE"))
        if info.get_attr("IFLA_INFO_SLAVE_KIND") == "bridge":
            slave = info.get_attr("IFLA_INFO_SLAVE_DATA")
            if slave is not None:
                hairpin = bool(slave.get_attr("IFLA_BRPORT_MODE"))
    master = msg.get_attr("IFLA_MASTER")
    state = {
        "name": msg.get_attr("IFLA_IFNAME"),
        "ifindex": msg["index"],
        "kind": kind,
        "mac": msg.get_attr("IFLA_ADDRESS"),
        "mtu": msg.get_attr("IFLA_MTU"),
        "up": bool(msg["flags"] & IFF_UP),
        "master": names.get(master) if master else None,
        "link": msg.get_attr("IFLA_LINK"),
        "link_netnsid": msg.get_attr("IFLA_LINK_NETNSID"),
        "stp": stp,
        "hairpin": hairpin,
        "addresses": [],
    }
    if msg.get_attr("IFLA_IFALIAS"):
        state["alias"] = msg.get_attr("IFLA_IFALIAS")
    if kind == "vxlan" and info.get_attr("IFLA_INFO_DATA") is not None:
        data = info.get_attr("IFLA_INFO_DATA")
        state["vxlan"] = {
            "vni": data.get_attr("IFLA_VXLAN_ID"), "port": data.get_attr("IFLA_VXLAN_PORT"),
            "local": data.get_attr("IFLA_VXLAN_LOCAL") or data.get_attr("IFLA_VXLAN_LOCAL6"),
            "link": data.get_attr("IFLA_VXLAN_LINK"), "learning": bool(data.get_attr("IFLA_VXLAN_LEARNING")),
        }
    return state


def _address(msg):
    ip = msg.get_attr("IFA_ADDRESS")
    if msg["family"] == wire.AF_INET6 and msg["scope"] == wire.RT_SCOPE_LINK:
        return None
    if msg["family"] != wire.AF_INET6:
        ip = msg.get_attr("IFA_LOCAL") or ip
    return "%s/%d" % (ip, msg["prefixlen"])


def _kernel_neighbour(address):
    ip = ipaddress.ip_address(address)
    return ip.is_multicast or ip.is_link_local


class Namespace(converge.NamespaceBase):
    """Netlink in one namespace (None: the one this process runs in).

    Reads are dumps over a plain netlink socket, decoded by pyroute2's message
    classes; changes go through pyroute2's IPRoute, made on the first change. A
    named namespace is entered in-thread (converge.NamespaceBase): no helper
    process as with pyroute2's NetNS, and never created as IPRoute(netns=...)
    would.
    """

    INTERRUPTED = (NetlinkDumpInterrupted, wire.Interrupted)
    REFUSED = (OSError, NetlinkError)

    def __init__(self, name):
        self._ipr = None
        super().__init__(name)

    @property
    def ipr(self):
        """pyroute2's IPRoute in this namespace, for changes (made on first use)."""
        if self._ipr is None:
            try:
                self._ipr = self._inside(iproute())
            except (OSError, NetlinkError) as exc:
                raise _error("open namespace %s" % self.name, self.name, exc)
        return self._ipr

    def close(self):
        super().close()
        if self._ipr is not None:
            self._ipr.close()

    def dump(self, msg_class, msg_type, family=0):
        """All objects of one kind (RTM_GET* dump), as decoded pyroute2 messages."""
        return wire.dump(self.sock, msg_class, msg_type, family, self.next_seq())

    def _dump(self, operation, msg_class, msg_type, family=0):
        return self.call(operation, self.dump, msg_class, msg_type, family)

    # ---------------------------------------------------------------- reads
    def links(self, with_addresses=(), only=None):
        """Links by name (all, or those named in only that exist); addresses for the names asked for.

        only reads each named link with its own request, so the cost does not grow with the
        number of links in the namespace (a node with hundreds of pod veths).
        """
        if only is None:
            msgs = self._dump("list links", ifinfmsg, wire.RTM_GETLINK)
        else:
            msgs = [m for name in only for m in self._link_by(name=name)]
        links = self._states(msgs)
        if with_addresses:
            wanted = dict((links[n]["ifindex"], links[n]) for n in with_addresses if n in links)
            if wanted:
                for msg in self._dump("list addresses", ifaddrmsg, wire.RTM_GETADDR):
                    link = wanted.get(msg["index"])
                    address = _address(msg)
                    if link is not None and address is not None:
                        link["addresses"].append(address)
        return links

    def _states(self, msgs):
        """Link messages as link dicts by name; masters outside msgs are looked up to name them."""
        names = dict((m["index"], m.get_attr("IFLA_IFNAME")) for m in msgs)
        for master in set(m.get_attr("IFLA_MASTER") for m in msgs) - set(names) - {None, 0}:
            for msg in self._link_by(index=master):
                names[master] = msg.get_attr("IFLA_IFNAME")
        return dict((state["name"], state) for state in (link_state(msg, names) for msg in msgs))

    def _link_by(self, name=None, index=None):
        """[the link message] for one link by name or index, [] if there is no such link."""
        fields = {"index": index} if index is not None else {"attrs": [("IFLA_IFNAME", name)]}
        try:
            return [wire.get(self.sock, ifinfmsg, wire.RTM_GETLINK, self.next_seq(), **fields)]
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return []
            raise _error("read link %s" % (name if index is None else index), self.name, exc)

    def neighbour_entries(self, ifindex):
        """(fdb, neighbours) of one link: its forwarding entries [{mac, dst}] (those with a remote
        destination, as a VXLAN device holds them) and its neighbour entries [{address, mac, permanent}]."""
        ndmsg = pr_ndmsg()
        fdb, neighbours = [], []
        for msg in self._dump("list forwarding entries", ndmsg, wire.RTM_GETNEIGH, wire.AF_BRIDGE):
            if msg["ifindex"] == ifindex and msg.get_attr("NDA_DST"):
                fdb.append({"mac": msg.get_attr("NDA_LLADDR"), "dst": msg.get_attr("NDA_DST")})
        for family in (wire.AF_INET, wire.AF_INET6):
            for msg in self._dump("list neighbours", ndmsg, wire.RTM_GETNEIGH, family):
                address = msg.get_attr("NDA_DST")
                # Multicast and link-local entries are the kernel's own (IPv6 neighbour discovery).
                if msg["ifindex"] == ifindex and address and not _kernel_neighbour(address):
                    neighbours.append({"address": msg.get_attr("NDA_DST"), "mac": msg.get_attr("NDA_LLADDR"),
                                       "permanent": bool(msg["state"] & wire.NUD_PERMANENT)})
        return fdb, neighbours

    def routes(self, table, families=(4, 6), links=None):
        """Every route of one table as dicts (dst, family, via, dev, metric, proto, type).

        type names the route type: 'unicast' for a route through a gateway or a
        device, 'blackhole', 'unreachable', 'prohibit', 'throw', ... for the others,
        which hold a destination as much as a unicast route does.
        links: this namespace's links as links() returned them, when the caller has
        read them already (names the devices without another link dump).
        """
        if links is None:
            links = self.links()
        names = dict((link["ifindex"], name) for name, link in links.items())
        result = []
        for version in families:
            # One plain dump decoded by pyroute2's rtmsg: several times faster than
            # IPRoute.get_routes for big tables.
            for msg in self._dump("list routes", rtmsg, wire.RTM_GETROUTE, wire.FAMILIES[version]):
                attrs = dict((nla[0], nla[1]) for nla in msg["attrs"])  # one pass; get_attr per name is slow
                if (attrs.get("RTA_TABLE") or msg["table"]) != table:
                    continue
                result.append({
                    "dst": "%s/%d" % (attrs.get("RTA_DST"), msg["dst_len"]) if msg["dst_len"] else "default",
                    "family": version,
                    "via": attrs.get("RTA_GATEWAY"),
                    "dev": names.get(attrs.get("RTA_OIF")),
                    "metric": attrs.get("RTA_PRIORITY") or 0,
                    "proto": msg["proto"],
                    "type": wire.ROUTE_TYPES.get(msg["type"], str(msg["type"])),
                })
                if msg["flags"] & wire.RTNH_F_ONLINK:
                    result[-1]["onlink"] = True
        return result

    def addresses(self):
        """Every address in the namespace (IPv6 link-local left out) as (ifindex, CIDR)."""
        found = []
        for msg in self._dump("list addresses", ifaddrmsg, wire.RTM_GETADDR):
            address = _address(msg)
            if address is not None:
                found.append((msg["index"], address))
        return found

    def index(self, name):
        found = self.call("look up link %s" % name, self.ipr.link_lookup, ifname=name)
        if not found:
            raise KernelError("look up link %s" % name, self.name, errno.ENODEV, "no such link")
        return found[0]


class Session(converge.SessionBase):
    """The netlink session: ns() for reads, apply() for a plan's actions, close().

    ``applied`` lists the actions done so far (a failed run reports them). This
    is the netlink session; the NAT tools and the lab have sessions of the same
    shape. named_only refuses the namespace the code runs in (None) and names
    under /run/netns: only namespace files given by path are opened (the lab).
    """

    NAMESPACE = Namespace

    # ---------------------------------------------------------------- reads
    def addresses_held(self, networks, skip=()):
        """{address: namespace} of the addresses inside networks (one or a list) held here or in any named namespace.

        Covers the namespace this code runs in (None) and every namespace under
        /run/netns but those in skip; each is opened for one address dump and
        closed again (a node with a thousand pods keeps no thousand sockets open).
        """
        if not isinstance(networks, (list, tuple)):
            networks = [networks]
        networks = [ipaddress.ip_network(n) for n in networks]
        held = {}

        def take(handle, label):
            for _index, address in handle.addresses():
                ip = ipaddress.ip_interface(address).ip
                if any(ip in network for network in networks):
                    held.setdefault(ip, label)

        take(self.ns(None), None)
        try:
            names = sorted(os.listdir(NETNS_RUN_DIR))
        except OSError:
            names = []
        for name in names:
            if name in skip or not netns_exists(name):
                continue
            try:
                handle = self._handles.get(name) or Namespace(name)
            except KernelError:
                continue  # removed meanwhile
            try:
                take(handle, name)
            finally:
                if name not in self._handles:
                    handle.close()
        return held

    # --------------------------------------------------------------- writes
    def apply(self, actions):
        """Run the actions in order, each through its handler (``kernel.changes``);
        route changes here (ns None) go out in batches."""
        batch = []
        for action in actions:
            if action.op in changes.ROUTE_FLAGS and action.ns is None:
                batch.append(action)
                continue
            changes.flush_routes(self, batch)
            changes.run(self, action)
            self.applied.append(action)
        changes.flush_routes(self, batch)
