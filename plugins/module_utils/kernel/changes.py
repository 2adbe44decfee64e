# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kernel changes: one handler per netlink operation of a plan (``HANDLERS``).

Every handler takes the netlink ``Session`` and an ``Action``; changes go through
pyroute2's IPRoute, except route changes in the namespace the code runs in, which
``flush_routes`` sends in batches of ROUTE_BATCH messages per round trip.

Creating what is missing tolerates a concurrent creator, in one place (``run``):
when a bridge, a namespace, a veth pair, an address or a route is refused with
EEXIST, it is read again (``ALREADY_THERE``), and if what is there is what the
action wanted the run goes on; anything else is still the refusal it was.
"""

from __future__ import annotations

import errno
import os
import time

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import converge, rtnl, wire
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import netns_exists, netns_path, open_netns
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.pyroute2_parts import NetlinkError, pr_netns, rtmsg

ROUTE_FLAGS = {
    Op.ROUTE_ADD: (wire.RTM_NEWROUTE, wire.NLM_F_REQUEST | wire.NLM_F_ACK | wire.NLM_F_CREATE | wire.NLM_F_EXCL),
    Op.ROUTE_REPLACE: (wire.RTM_NEWROUTE,
                       wire.NLM_F_REQUEST | wire.NLM_F_ACK | wire.NLM_F_CREATE | wire.NLM_F_REPLACE),
    Op.ROUTE_DEL: (wire.RTM_DELROUTE, wire.NLM_F_REQUEST | wire.NLM_F_ACK),
}
# Route messages sent per round trip when many routes change at once.
ROUTE_BATCH = 256
# How long a namespace another process is creating (file made, not yet mounted) is waited for.
NETNS_SETTLE = 2.0


def _error(operation, ns, exc, scoped=True):
    return KernelError.from_exception(operation, ns, exc, scoped)


def flush_routes(session, batch):
    """Send route changes of this namespace in a few large writes.

    Messages are built by pyroute2 (rtmsg) and written to one plain netlink
    socket, ROUTE_BATCH at a time, each acknowledged: 1,000 routes take a
    handful of round trips instead of 1,000. Every acknowledged change of a
    batch is in ``applied``, also when others of the same batch were refused;
    the error names the first refused one and counts the rest, and no later
    batch is sent.
    """
    if not batch:
        return
    ns = session.ns(None)
    try:
        sock = wire.open_socket()
    except OSError as exc:
        raise _error("send route changes", None, exc)
    try:
        for start in range(0, len(batch), ROUTE_BATCH):
            chunk = batch[start:start + ROUTE_BATCH]
            errors = wire.send_all(sock, [_route_message(_route_kwargs(ns, a), a.op, seq)
                                          for seq, a in enumerate(chunk, 1)])
            if any(code == errno.EEXIST for code in errors.values()):
                # Added meanwhile by a concurrent run: as good as done when it is our route.
                there = ns.routes(chunk[0].args["table"], links=ns.links())
                for seq, action in enumerate(chunk, 1):
                    if errors.get(seq) == errno.EEXIST and converge.route_there(action, there):
                        del errors[seq]
            refused = [(action, errors[seq]) for seq, action in enumerate(chunk, 1) if seq in errors]
            session.applied.extend(action for seq, action in enumerate(chunk, 1) if seq not in errors)
            if refused:
                raise _batch_error(refused)
    except OSError as exc:
        raise _error("send route changes", None, exc)
    finally:
        sock.close()
        del batch[:]


def _batch_error(refused):
    """The KernelError of a batch: its first refused change, and how many others were refused."""
    action, code = refused[0]
    text = os.strerror(code)
    if len(refused) > 1:
        text += "; %d other route change%s of the same batch %s refused too, the rest applied" % (
            len(refused) - 1, "s" if len(refused) > 2 else "", "were" if len(refused) > 2 else "was")
    return KernelError(describe(action), None, code, text)


def _route_kwargs(ns, action):
    route = action.args["route"]
    dst, dummy, prefix = route["dst"].partition("/")
    kwargs = {"family": wire.FAMILIES[route["family"]], "table": action.args["table"],
              "proto": action.args["proto"], "priority": route["metric"],
              "dst_len": int(prefix or 0), "type": wire.RTN_UNICAST}
    if prefix:
        kwargs["dst"] = dst
    if route.get("via"):
        kwargs["gateway"] = route["via"]
    if route.get("dev"):
        kwargs["oif"] = ns.index(route["dev"])
    if route.get("onlink") and action.op != Op.ROUTE_DEL:
        kwargs["flags"] = wire.RTNH_F_ONLINK
    if action.op == Op.ROUTE_DEL:
        kwargs["scope"] = wire.RT_SCOPE_NOWHERE
    else:
        kwargs["scope"] = wire.RT_SCOPE_UNIVERSE if route.get("via") else wire.RT_SCOPE_LINK
    return kwargs


def _route_message(kwargs, op, seq):
    """One RTM_NEWROUTE/RTM_DELROUTE message, encoded by pyroute2."""
    msg_type, flags = ROUTE_FLAGS[op]
    table = kwargs["table"]
    attrs = [("RTA_TABLE", table), ("RTA_PRIORITY", kwargs["priority"])]
    for key, attr in (("dst", "RTA_DST"), ("gateway", "RTA_GATEWAY"), ("oif", "RTA_OIF")):
        if key in kwargs:
            attrs.append((attr, kwargs[key]))
    fields = dict((f, kwargs[f]) for f in ("family", "dst_len", "proto", "scope", "type", "flags") if f in kwargs)
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


def _netns_is_there(session, action):
    """The file of another process's namespace is there at once, mounted a moment later."""
    return _settled(action.name)


def _settled(name):
    """Whether namespace name is, or within NETNS_SETTLE seconds becomes, a mounted network namespace."""
    deadline = time.monotonic() + NETNS_SETTLE
    while True:
        if netns_exists(name):
            return True
        if not os.path.lexists(netns_path(name)) or time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


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
    extra = {"address": action.args["mac"]} if action.args.get("mac") else {}
    ns.call(describe(action), ns.ipr.link, "add", ifname=action.name, kind="bridge", **extra)


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
    fd = _open_target(action, target)
    try:
        peer["net_ns_fd"] = fd
        ns.call(describe(action), ns.ipr.link, "add", ifname=action.name, kind="veth", peer=peer)
    finally:
        os.close(fd)


def _vxlan_add(session, action):
    ns = session.ns(action.ns)
    args = action.args
    family = 6 if ":" in args["local"] else 4
    kwargs = {"ifname": action.name, "kind": "vxlan", "vxlan_id": args["vni"], "vxlan_port": args["port"],
              "vxlan_learning": 0, "address": args["mac"],
              ("vxlan_local" if family == 4 else "vxlan_local6"): args["local"]}
    if args.get("dev"):
        kwargs["vxlan_link"] = ns.index(args["dev"])
    if args.get("mtu") is not None:
        kwargs["mtu"] = args["mtu"]
    ns.call(describe(action), ns.ipr.link, "add", **kwargs)
    if args.get("alias"):
        ns.call(describe(action), ns.ipr.link, "set", index=ns.index(action.name), ifalias=args["alias"])


def _fdb(session, action):
    ns = session.ns(action.ns)
    command = "append" if action.op == Op.FDB_ADD else "del"
    ns.call(describe(action), ns.ipr.fdb, command, ifindex=ns.index(action.name), lladdr=action.args["mac"],
            dst=action.args["dst"])


def _neigh(session, action):
    ns = session.ns(action.ns)
    extra = {"lladdr": action.args["mac"], "state": wire.NUD_PERMANENT} if action.op == Op.NEIGH_REPLACE else {}
    family = wire.AF_INET6 if ":" in action.args["address"] else wire.AF_INET
    ns.call(describe(action), ns.ipr.neigh, "replace" if action.op == Op.NEIGH_REPLACE else "del",
            ifindex=ns.index(action.name), dst=action.args["address"], family=family, **extra)


def _link_del(session, action):
    ns = session.ns(action.ns)
    ns.call(describe(action), ns.ipr.link, "del", index=ns.index(action.name))


def _open_target(action, target):
    """A descriptor of the namespace an action moves a link into; a KernelError naming the action if it is none."""
    try:
        return open_netns(netns_path(target))
    except (OSError, ValueError) as exc:
        raise _error(describe(action), action.ns, exc)


def _link_move(session, action):
    ns = session.ns(action.ns)
    fd = _open_target(action, action.args["to_ns"])
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
    extra = {"broadcast": action.args["broadcast"]} if action.args.get("broadcast") else {}
    if action.args.get("nodad") and action.op == Op.ADDR_ADD:
        extra["flags"] = rtnl.IFA_F_NODAD
    ns.call(describe(action), ns.ipr.addr, command, index=ns.index(action.name), address=ip, prefixlen=int(prefix),
            **extra)


# op -> check(session, action) after EEXIST (kernel.converge), and a namespace another
# process has just mounted.
ALREADY_THERE = dict(converge.ALREADY_THERE, **{Op.NETNS_ADD: _netns_is_there})


def run(session, action):
    """Apply one action through its handler; an EEXIST is tolerated when ALREADY_THERE says so."""
    converge.run(HANDLERS, session, action, ALREADY_THERE)


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
    Op.SYSCTL: converge.sysctl,
    Op.VXLAN_ADD: _vxlan_add,
    Op.FDB_ADD: _fdb,
    Op.FDB_DEL: _fdb,
    Op.NEIGH_REPLACE: _neigh,
    Op.NEIGH_DEL: _neigh,
}
