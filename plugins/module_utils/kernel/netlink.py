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
pyroute2's message classes; changes go through pyroute2's IPRoute, one handler
per operation (``HANDLERS``), except route changes in the namespace the code
runs in, which are sent in batches of ROUTE_BATCH messages per round trip.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import wire
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import InNetns, netns_exists, netns_path
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.pyroute2_parts import (
    HAS_PYROUTE2, PYROUTE2_IMPORT_ERROR, NetlinkDumpInterrupted, NetlinkError, ifaddrmsg, ifinfmsg, iproute,
    pr_netns, rtmsg)

__all__ = ["HAS_PYROUTE2", "PYROUTE2_IMPORT_ERROR", "Namespace", "Session", "link_state"]

# pyroute2 0.7 raises when links change during a dump (a busy container
# runtime next door); 0.9 reads again by itself.
DUMP_ATTEMPTS = 20
IFF_UP = 0x1
# Address scope "link": IPv6 fe80::/10 addresses the kernel manages itself.
RT_SCOPE_LINK = 253
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_NOWHERE = 255
RTN_UNICAST = 1
AF_INET6 = 10
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
ROUTE_FLAGS = {
    Op.ROUTE_ADD: (wire.RTM_NEWROUTE, wire.NLM_F_REQUEST | wire.NLM_F_ACK | wire.NLM_F_CREATE | wire.NLM_F_EXCL),
    Op.ROUTE_REPLACE: (wire.RTM_NEWROUTE,
                       wire.NLM_F_REQUEST | wire.NLM_F_ACK | wire.NLM_F_CREATE | wire.NLM_F_REPLACE),
    Op.ROUTE_DEL: (wire.RTM_DELROUTE, wire.NLM_F_REQUEST | wire.NLM_F_ACK),
}
# Route messages sent per round trip when many routes change at once.
ROUTE_BATCH = 256


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
    return {
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


def _address(msg):
    ip = msg.get_attr("IFA_ADDRESS")
    if msg["family"] == AF_INET6 and msg["scope"] == RT_SCOPE_LINK:
        return None
    if msg["family"] != AF_INET6:
        ip = msg.get_attr("IFA_LOCAL") or ip
    return "%s/%d" % (ip, msg["prefixlen"])


class Namespace:
    """Netlink in one namespace (None: the one this process runs in).

    Reads are dumps over a plain netlink socket, decoded by pyroute2's message
    classes; changes go through pyroute2's IPRoute, made on the first change. A
    named namespace is entered in-thread: each socket is made while this thread is
    inside the namespace, stays bound to it, and the thread comes back (only opened,
    never created, as IPRoute(netns=...) would, and no helper process as with
    pyroute2's NetNS).
    """

    def __init__(self, name):
        self.name = name
        self.path = None if name is None else netns_path(name)
        self._ipr = None
        self._seq = 0
        if name is not None and not netns_exists(name):
            raise KernelError("open namespace %s" % name, name, errno.ENOENT, "no namespace at %s" % self.path)
        try:
            self.sock = self._inside(wire.open_socket)
        except OSError as exc:
            raise _error("open namespace %s" % name, name, exc)

    def _inside(self, make):
        if self.path is None:
            return make()
        with InNetns(self.path):
            return make()

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
        self.sock.close()
        if self._ipr is not None:
            self._ipr.close()

    def _next_seq(self):
        self._seq += 1
        return self._seq

    def call(self, operation, func, *args, **kwargs):
        """func(*args, **kwargs); a refusal becomes a KernelError naming operation; interrupted dumps are read again."""
        for attempt in range(DUMP_ATTEMPTS):
            try:
                return func(*args, **kwargs)
            except (NetlinkDumpInterrupted, wire.Interrupted) as exc:
                if attempt == DUMP_ATTEMPTS - 1:
                    raise _error(operation, self.name, exc)
            except (OSError, NetlinkError) as exc:
                raise _error(operation, self.name, exc)
        return None

    def dump(self, msg_class, msg_type, family=0):
        """All objects of one kind (RTM_GET* dump), as decoded pyroute2 messages."""
        return wire.dump(self.sock, msg_class, msg_type, family, self._next_seq())

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
        names = dict((m["index"], m.get_attr("IFLA_IFNAME")) for m in msgs)
        for master in set(m.get_attr("IFLA_MASTER") for m in msgs) - set(names) - {None, 0}:
            for msg in self._link_by(index=master):
                names[master] = msg.get_attr("IFLA_IFNAME")
        links = {}
        for msg in msgs:
            state = link_state(msg, names)
            links[state["name"]] = state
        if with_addresses:
            wanted = dict((links[n]["ifindex"], links[n]) for n in with_addresses if n in links)
            if wanted:
                for msg in self._dump("list addresses", ifaddrmsg, wire.RTM_GETADDR):
                    link = wanted.get(msg["index"])
                    address = _address(msg)
                    if link is not None and address is not None:
                        link["addresses"].append(address)
        return links

    def _link_by(self, name=None, index=None):
        """[the link message] for one link by name or index, [] if there is no such link."""
        fields = {"index": index} if index is not None else {"attrs": [("IFLA_IFNAME", name)]}
        try:
            return [wire.get(self.sock, ifinfmsg, wire.RTM_GETLINK, self._next_seq(), **fields)]
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return []
            raise _error("read link %s" % (name if index is None else index), self.name, exc)

    def routes(self, table, families=(4, 6), links=None):
        """Unicast routes of one table as dicts (dst, family, via, dev, metric, proto).

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
            for msg in self._dump("list routes", rtmsg, wire.RTM_GETROUTE, FAMILIES[version]):
                attrs = dict((nla[0], nla[1]) for nla in msg["attrs"])  # one pass; get_attr per name is slow
                if (attrs.get("RTA_TABLE") or msg["table"]) != table or msg["type"] != RTN_UNICAST:
                    continue
                result.append({
                    "dst": "%s/%d" % (attrs.get("RTA_DST"), msg["dst_len"]) if msg["dst_len"] else "default",
                    "family": version,
                    "via": attrs.get("RTA_GATEWAY"),
                    "dev": names.get(attrs.get("RTA_OIF")),
                    "metric": attrs.get("RTA_PRIORITY") or 0,
                    "proto": msg["proto"],
                })
        return result

    def addresses(self):
        """Every address in the namespace (IPv6 link-local left out) as (ifindex, CIDR)."""
        found = []
        for msg in self._dump("list addresses", ifaddrmsg, wire.RTM_GETADDR):
            address = _address(msg)
            if address is not None:
                found.append((msg["index"], address))
        return found

    def networks(self):
        """The directly connected networks: those of every address in the namespace."""
        return [ipaddress.ip_interface(address).network for _index, address in self.addresses()]

    def index(self, name):
        found = self.call("look up link %s" % name, self.ipr.link_lookup, ifname=name)
        if not found:
            raise KernelError("look up link %s" % name, self.name, errno.ENODEV, "no such link")
        return found[0]


class Session(model.Session):
    """The netlink session: ns() for reads, apply() for a plan's actions, close().

    ``applied`` lists the actions done so far (a failed run reports them). This
    is the netlink session; the NAT tools and the lab have sessions of the same
    shape. named_only refuses the namespace the code runs in (None) and names
    under /run/netns: only namespace files given by path are opened (the lab).
    """

    def __init__(self, named_only=False):
        self._handles = {}
        self.applied = []
        self.named_only = named_only

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for handle in self._handles.values():
            try:
                handle.close()
            except Exception:  # pylint: disable=broad-except
                pass
        self._handles = {}

    def ns(self, name=None):
        if self.named_only and (name is None or not name.startswith("/")):
            raise KernelError("open namespace %s" % name, name, errno.EINVAL,
                              "only namespace files given by path are opened here")
        if name not in self._handles:
            self._handles[name] = Namespace(name)
        return self._handles[name]

    def forget(self, name):
        """Close the handle of a namespace about to go away."""
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.close()

    # --------------------------------------------------------------- writes
    def apply(self, actions):
        """Run the actions in order; route changes here (ns None) go out in batches."""
        batch = []
        for action in actions:
            if action.op in ROUTE_FLAGS and action.ns is None:
                batch.append(action)
                continue
            self._flush_routes(batch)
            HANDLERS[action.op](self, action)
            self.applied.append(action)
        self._flush_routes(batch)

    def _flush_routes(self, batch):
        """Send route changes of this namespace in a few large writes.

        Messages are built by pyroute2 (rtmsg) and written to one plain netlink
        socket, ROUTE_BATCH at a time, each acknowledged: 1,000 routes take a
        handful of round trips instead of 1,000.
        """
        if not batch:
            return
        ns = self.ns(None)
        try:
            sock = wire.open_socket()
        except OSError as exc:
            raise _error("send route changes", None, exc)
        try:
            for start in range(0, len(batch), ROUTE_BATCH):
                chunk = batch[start:start + ROUTE_BATCH]
                errors = wire.send_all(sock, [_route_message(_route_kwargs(ns, a), a.op, seq)
                                              for seq, a in enumerate(chunk, 1)])
                for seq, action in enumerate(chunk, 1):
                    if seq in errors:
                        raise KernelError(describe(action), None, errors[seq], os.strerror(errors[seq]))
                    self.applied.append(action)
        except OSError as exc:
            raise _error("send route changes", None, exc)
        finally:
            sock.close()
            del batch[:]


# ------------------------------------------------------------------ handlers
def _route_kwargs(ns, action):
    route = action.args["route"]
    dst, dummy, prefix = route["dst"].partition("/")
    kwargs = {"family": FAMILIES[route["family"]], "table": action.args["table"],
              "proto": action.args["proto"], "priority": route["metric"],
              "dst_len": int(prefix or 0), "type": RTN_UNICAST}
    if prefix:
        kwargs["dst"] = dst
    if route.get("via"):
        kwargs["gateway"] = route["via"]
    if route.get("dev"):
        kwargs["oif"] = ns.index(route["dev"])
    if action.op == Op.ROUTE_DEL:
        kwargs["scope"] = RT_SCOPE_NOWHERE
    else:
        kwargs["scope"] = RT_SCOPE_UNIVERSE if route.get("via") else RT_SCOPE_LINK
    return kwargs


def _route_message(kwargs, op, seq):
    """One RTM_NEWROUTE/RTM_DELROUTE message, encoded by pyroute2."""
    msg_type, flags = ROUTE_FLAGS[op]
    table = kwargs["table"]
    attrs = [("RTA_TABLE", table), ("RTA_PRIORITY", kwargs["priority"])]
    for key, attr in (("dst", "RTA_DST"), ("gateway", "RTA_GATEWAY"), ("oif", "RTA_OIF")):
        if key in kwargs:
            attrs.append((attr, kwargs[key]))
    fields = dict((f, kwargs[f]) for f in ("family", "dst_len", "proto", "scope", "type"))
    return wire.request(rtmsg, msg_type, flags, seq, table=table if table < 256 else 0, attrs=attrs, **fields)


def _route(session, action):
    ns = session.ns(action.ns)
    command = {Op.ROUTE_ADD: "add", Op.ROUTE_REPLACE: "replace", Op.ROUTE_DEL: "del"}[action.op]
    ns.call(describe(action), ns.ipr.route, command, **_route_kwargs(ns, action))


def _netns_add(session, action):
    try:
        pr_netns().create(action.name)
    except (OSError, NetlinkError) as exc:
        raise _error(describe(action), None, exc, scoped=False)


def _netns_del(session, action):
    session.forget(action.name)
    try:
        pr_netns().remove(action.name)
    except (OSError, NetlinkError) as exc:
        raise _error(describe(action), None, exc, scoped=False)


def _netns_clear(session, action):
    try:
        os.unlink(netns_path(action.name))
    except OSError as exc:
        raise _error(describe(action), None, exc, scoped=False)


def _bridge_add(session, action):
    ns = session.ns(action.ns)
    ns.call(describe(action), ns.ipr.link, "add", ifname=action.name, kind="bridge")


def _veth_add(session, action):
    ns = session.ns(action.ns)
    peer = {"ifname": action.args["peer"]}
    if action.args.get("peer_mac"):
        peer["address"] = action.args["peer_mac"]
    target = action.args.get("peer_ns")
    if target is None:
        ns.call(describe(action), ns.ipr.link, "add", ifname=action.name, kind="veth", peer=peer)
        return
    if not netns_exists(target):
        raise KernelError(describe(action), action.ns, errno.ENOENT, "namespace %s does not exist" % target)
    fd = os.open(netns_path(target), os.O_RDONLY)
    try:
        peer["net_ns_fd"] = fd
        ns.call(describe(action), ns.ipr.link, "add", ifname=action.name, kind="veth", peer=peer)
    finally:
        os.close(fd)


def _link_del(session, action):
    ns = session.ns(action.ns)
    ns.call(describe(action), ns.ipr.link, "del", index=ns.index(action.name))


def _link_move(session, action):
    ns = session.ns(action.ns)
    fd = os.open(netns_path(action.args["to_ns"]), os.O_RDONLY)
    try:
        ns.call(describe(action), ns.ipr.link, "set", index=ns.index(action.name), net_ns_fd=fd)
    finally:
        os.close(fd)


def _link_set(session, action):
    """Admin state (up), master, mtu, stp (bridges) and MAC address (mac) of a link."""
    ns = session.ns(action.ns)
    args = action.args
    kwargs = {"index": ns.index(action.name)}
    if "up" in args:
        kwargs["state"] = "up" if args["up"] else "down"
    if "master" in args:
        kwargs["master"] = ns.index(args["master"]) if args["master"] else 0
    if "mtu" in args:
        kwargs["mtu"] = args["mtu"]
    if "mac" in args:
        kwargs["address"] = args["mac"]
    if "stp" in args:
        kwargs["kind"] = "bridge"
        kwargs["br_stp_state"] = 1 if args["stp"] else 0
    ns.call(describe(action), ns.ipr.link, "set", **kwargs)


def _brport_set(session, action):
    ns = session.ns(action.ns)
    ns.call(describe(action), ns.ipr.brport, "set", index=ns.index(action.name),
            mode=1 if action.args["hairpin"] else 0)


def _addr(session, action):
    ns = session.ns(action.ns)
    ip, prefix = action.args["address"].split("/")
    command = "add" if action.op == Op.ADDR_ADD else "del"
    ns.call(describe(action), ns.ipr.addr, command, index=ns.index(action.name), address=ip, prefixlen=int(prefix))


# op -> handler(session, action): every netlink operation a plan can hold.
HANDLERS = {
    Op.NETNS_ADD: _netns_add,
    Op.NETNS_DEL: _netns_del,
    Op.NETNS_CLEAR: _netns_clear,
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
}
