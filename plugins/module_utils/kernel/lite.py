# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The netlink session of the CNI plugin, on the standard library alone (no pyroute2).

``Session`` and ``Namespace`` have the shape of ``kernel.netlink``'s as far as the
CNI plugin and the planners it calls use them, and read the same plain dicts
(links, routes, addresses; see ``core.model``). Messages are ``kernel.rtnl``'s,
framing is ``kernel.wire``'s, so a plugin run imports neither pyroute2 nor
anything of it: pyroute2's import alone costs more than the whole ADD.

Namespaces are opened as ``kernel.netlink`` opens them, never created: the
calling thread enters the namespace file (``netns.InNetns``), makes one netlink
socket there and comes back; reads and changes of that namespace go through
that socket. A change is one request and its acknowledgement; a refusal is a
KernelError naming the operation, the namespace and the kernel's errno (and
the kernel's own message when it gives one).

Every netlink operation a plan of the plugin holds has its handler
(``HANDLERS``: bridge, veth, link changes, bridge port, addresses, routes);
creating what is missing tolerates a concurrent creator as ``kernel.changes``
does (``run``, with ``kernel.converge``'s checks). Namespaces themselves are the runtime's:
an action that would make or remove one is refused.
"""

from __future__ import annotations

import errno
import os

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import converge, rtnl, wire
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import (
    netns_exists, netns_path, open_netns)

__all__ = ["Namespace", "Session", "link_state", "HANDLERS", "run"]

# setsockopt(SOL_NETLINK, ...): the kernel's own message with a refusal, and acknowledgements
# that echo the request's header only.
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
ROUTE_TYPES = wire.ROUTE_TYPES


def _error(operation, ns, exc, scoped=True):
    return KernelError.from_exception(operation, ns, exc, scoped)


def open_socket():
    """A NETLINK_ROUTE socket in the calling thread's namespace that asks for the kernel's messages."""
    sock = wire.open_socket()
    for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
        try:
            sock.setsockopt(SOL_NETLINK, option, 1)
        except OSError:
            pass  # an old kernel: plain errno texts
    return sock


def link_state(link, names):
    """A decoded link message (``rtnl.decode_link``) as the plain dict the planning layer reads.

    names maps ifindex -> name for the same namespace (to name the master); the
    dict is kernel.netlink.link_state's.
    """
    master = link["master"]
    return {
        "name": link["name"],
        "ifindex": link["index"],
        "kind": link["kind"],
        "mac": link["mac"],
        "mtu": link["mtu"],
        "up": bool(link["flags"] & rtnl.IFF_UP),
        "master": names.get(master) if master else None,
        "link": link["link"],
        "link_netnsid": link["link_netnsid"],
        "stp": link["stp"],
        "hairpin": link["hairpin"],
        "addresses": [],
    }


def _address(msg):
    """An address message as CIDR text; None for IPv6 link-local ones (kernel.netlink's rule)."""
    if msg["family"] == wire.AF_INET6 and msg["scope"] == wire.RT_SCOPE_LINK:
        return None
    ip = msg["address"]
    if msg["family"] != wire.AF_INET6:
        ip = msg["local"] or ip
    return "%s/%d" % (ip, msg["prefixlen"])


class Namespace(converge.NamespaceBase):
    """Netlink in one namespace over one socket, decoded by kernel.rtnl (see converge.NamespaceBase)."""

    def __init__(self, name):
        super().__init__(name, open_socket)

    def _dump(self, operation, msg_type, family=0):
        def once():
            seq = self.next_seq()
            return wire.dump_raw(self.sock, rtnl.dump_request(msg_type, seq, family), msg_type - 2, seq)
        return self.call(operation, once)

    def change(self, operation, build):
        """Send the change build(seq) makes and wait for its acknowledgement; a refusal is a KernelError."""
        seq = self.next_seq()
        self.call(operation, wire.ack, self.sock, build(seq), seq)

    # ---------------------------------------------------------------- reads
    def links(self, with_addresses=(), only=None):
        """Links by name (all, or those named in only that exist); addresses for the names asked for."""
        if only is None:
            msgs = [rtnl.decode_link(data) for data in self._dump("list links", rtnl.RTM_GETLINK)]
        else:
            msgs = [m for name in only for m in self._link_by(name=name)]
        links = self._states(msgs)
        if with_addresses:
            wanted = dict((links[n]["ifindex"], links[n]) for n in with_addresses if n in links)
            if wanted:
                for data in self._dump("list addresses", rtnl.RTM_GETADDR):
                    msg = rtnl.decode_address(data)
                    link = wanted.get(msg["index"])
                    address = _address(msg)
                    if link is not None and address is not None:
                        link["addresses"].append(address)
        return links

    def _states(self, msgs):
        """Link messages as link dicts by name; masters outside msgs are looked up to name them."""
        names = dict((m["index"], m["name"]) for m in msgs)
        for master in set(m["master"] for m in msgs) - set(names) - {None, 0}:
            for msg in self._link_by(index=master):
                names[master] = msg["name"]
        return dict((state["name"], state) for state in (link_state(msg, names) for msg in msgs))

    def _link_by(self, name=None, index=None):
        """[the decoded link message] for one link by name or index, [] if there is no such link."""
        seq = self.next_seq()
        try:
            data = wire.get_raw(self.sock, rtnl.get_link(seq, name=name, index=index or 0), seq)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return []
            raise _error("read link %s" % (name if index is None else index), self.name, exc)
        return [] if data is None else [rtnl.decode_link(data)]

    def routes(self, table, families=(4, 6), links=None):
        """Every route of one table as dicts (dst, family, via, dev, metric, proto, type), as kernel.netlink reads them."""
        if links is None:
            links = self.links()
        names = dict((link["ifindex"], name) for name, link in links.items())
        result = []
        for version in families:
            for data in self._dump("list routes", rtnl.RTM_GETROUTE, wire.FAMILIES[version]):
                msg = rtnl.decode_route(data)
                if msg["table"] != table:
                    continue
                result.append({
                    "dst": "%s/%d" % (msg["dst"], msg["dst_len"]) if msg["dst_len"] else "default",
                    "family": version,
                    "via": msg["gateway"],
                    "dev": names.get(msg["oif"]),
                    "metric": msg["priority"] or 0,
                    "proto": msg["proto"],
                    "type": ROUTE_TYPES.get(msg["type"], str(msg["type"])),
                })
        return result

    def addresses(self):
        """Every address in the namespace (IPv6 link-local left out) as (ifindex, CIDR)."""
        found = []
        for data in self._dump("list addresses", rtnl.RTM_GETADDR):
            msg = rtnl.decode_address(data)
            address = _address(msg)
            if address is not None:
                found.append((msg["index"], address))
        return found

    def index(self, name):
        """The ifindex of link name; a KernelError (ENODEV) when there is none."""
        found = self._link_by(name=name)
        if not found:
            raise KernelError("look up link %s" % name, self.name, errno.ENODEV, "no such link")
        return found[0]["index"]


class Session(converge.SessionBase):
    """ns() for reads, apply() for a plan's actions, applied, close(): kernel.netlink.Session's shape."""

    NAMESPACE = Namespace

    def apply(self, actions):
        """Run the actions in order, each through its handler; applied lists those done."""
        for action in actions:
            run(self, action)
            self.applied.append(action)


# ------------------------------------------------------------------ handlers
def _bridge_add(session, action):
    ns = session.ns(action.ns)
    ns.change(describe(action), lambda seq: rtnl.new_bridge(seq, action.name, action.args.get("mac")))


def _open_target(action, target):
    """A descriptor of the namespace an action puts a link into; a KernelError naming the action if it is none."""
    try:
        return open_netns(netns_path(target))
    except (OSError, ValueError) as exc:
        raise _error(describe(action), action.ns, exc)


def _veth_add(session, action):
    ns = session.ns(action.ns)
    args = action.args
    target = args.get("peer_ns")
    if target is None:
        ns.change(describe(action), lambda seq: rtnl.new_veth(seq, action.name, args["peer"], args.get("peer_mac")))
        return
    if not netns_exists(target):
        raise KernelError(describe(action), action.ns, errno.ENOENT, "namespace %s does not exist" % target)
    fd = _open_target(action, target)
    try:
        ns.change(describe(action),
                  lambda seq: rtnl.new_veth(seq, action.name, args["peer"], args.get("peer_mac"), fd))
    finally:
        os.close(fd)


def _link_del(session, action):
    ns = session.ns(action.ns)
    index = ns.index(action.name)
    ns.change(describe(action), lambda seq: rtnl.del_link(seq, index))


def _link_move(session, action):
    ns = session.ns(action.ns)
    fd = _open_target(action, action.args["to_ns"])
    try:
        index = ns.index(action.name)
        ns.change(describe(action), lambda seq: rtnl.set_link(seq, index, netns_fd=fd))
    finally:
        os.close(fd)


def _link_set(session, action):
    """Admin state (up), master, mtu, stp (bridges) and MAC address (mac) of a link."""
    ns = session.ns(action.ns)
    args = action.args
    index = ns.index(action.name)
    master = None
    if "master" in args:
        master = ns.index(args["master"]) if args["master"] else 0
    ns.change(describe(action), lambda seq: rtnl.set_link(
        seq, index, up=args.get("up"), mtu=args.get("mtu"), master=master, address=args.get("mac"),
        stp=args.get("stp")))


def _brport_set(session, action):
    ns = session.ns(action.ns)
    index = ns.index(action.name)
    ns.change(describe(action), lambda seq: rtnl.set_bridge_port(seq, index, action.args["hairpin"]))


def _addr(session, action):
    ns = session.ns(action.ns)
    ip, prefix = action.args["address"].split("/")
    index = ns.index(action.name)
    msg_type, flags = (rtnl.RTM_NEWADDR, rtnl.CREATE) if action.op == Op.ADDR_ADD else (rtnl.RTM_DELADDR, rtnl.CHANGE)
    ns.change(describe(action), lambda seq: rtnl.address_request(
        msg_type, flags, seq, index, ip, int(prefix), action.args.get("broadcast"),
        bool(action.args.get("nodad")) and action.op == Op.ADDR_ADD))


_ROUTE_FLAGS = {
    Op.ROUTE_ADD: (rtnl.RTM_NEWROUTE, rtnl.CREATE),
    Op.ROUTE_REPLACE: (rtnl.RTM_NEWROUTE, rtnl.REPLACE),
    Op.ROUTE_DEL: (rtnl.RTM_DELROUTE, rtnl.CHANGE),
}


def _route(session, action):
    """A route of ours: kernel.changes sends the same fields (proto, scope, type, table, metric)."""
    ns = session.ns(action.ns)
    route = action.args["route"]
    dst, _slash, prefix = route["dst"].partition("/")
    oif = ns.index(route["dev"]) if route.get("dev") else None
    if action.op == Op.ROUTE_DEL:
        scope = wire.RT_SCOPE_NOWHERE
    else:
        scope = wire.RT_SCOPE_UNIVERSE if route.get("via") else wire.RT_SCOPE_LINK
    msg_type, flags = _ROUTE_FLAGS[action.op]
    ns.change(describe(action), lambda seq: rtnl.route_request(
        msg_type, flags, seq, wire.FAMILIES[route["family"]], int(prefix or 0), action.args["table"],
        action.args["proto"], scope, wire.RTN_UNICAST, route["metric"], dst=dst if prefix else None,
        gateway=route.get("via") or None, oif=oif))


def _no_namespaces(session, action):
    raise KernelError(describe(action), None, errno.EOPNOTSUPP,
                      "the CNI plugin never makes or removes a network namespace", scoped=False)


# ------------------------------------------- a concurrent creator (EEXIST)
def run(session, action):
    """Apply one action through its handler; an EEXIST is tolerated when kernel.converge says so."""
    converge.run(HANDLERS, session, action)


# op -> handler(session, action): every netlink operation of a plan, as in kernel.changes.HANDLERS.
HANDLERS = {
    Op.NETNS_ADD: _no_namespaces,
    Op.NETNS_DEL: _no_namespaces,
    Op.NETNS_CLEAR: _no_namespaces,
    Op.BRIDGE_ADD: _bridge_add,
    Op.VETH_ADD: _veth_add,
    Op.LINK_DEL: _link_del,
    Op.LINK_MOVE: _link_move,
    Op.LINK_SET: _link_set,
    Op.BRPORT_SET: _brport_set,
    Op.ADDR_ADD: _addr,
    Op.ADDR_DEL: _addr,
    Op.ROUTE_ADD: _route,
    Op.ROUTE_REPLACE: _route,
    Op.ROUTE_DEL: _route,
    Op.SYSCTL: converge.sysctl,
}
