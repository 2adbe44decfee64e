# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one place that talks to the kernel, through pyroute2 (0.7 to 0.9).

Namespaces are always opened without being created (``flags=0``): a missing
namespace is reported, never made as a side effect, so check mode and every
read path leave the host as they found it. Each netlink failure becomes a
NetlinkOpError that names the operation, the object, the namespace and the
kernel's errno text.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import ipaddress
import os
import socket
import struct
import sys
import traceback


PARTS = ("pyroute2.netlink.exceptions", "pyroute2.netlink.rtnl.rtmsg", "pyroute2.netlink.rtnl.ifinfmsg",
         "pyroute2.netlink.rtnl.ifaddrmsg")


def _import_pyroute2_parts():
    """pyroute2's exceptions module and its rtmsg, ifinfmsg and ifaddrmsg message classes.

    pyroute2's package __init__ imports nearly the whole library (NDB, IPDB, conntrack,
    ethtool, its test lab, asyncio, multiprocessing, ...): 100 to 200 ms, the largest part
    of a module run. When nothing has imported pyroute2 yet, the package is entered bare
    (its directory only) and only the submodules used here are loaded: the message classes
    now (reads are plain dumps that pyroute2 decodes), IPRoute and pyroute2.netns on the
    first change (see ``iproute``). The bare package runs its real __init__ the first time
    anything else is asked of it (PEP 562 module __getattr__), so other code in the same
    process still sees all of pyroute2. Should a release not allow this, everything is
    thrown away and pyroute2 is imported normally.
    """
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("No module named 'pyroute2'", name="pyroute2")
        bare = importlib.util.module_from_spec(spec)

        def complete(name):
            if importlib.util.find_spec("pyroute2." + name) is not None:
                # "from pyroute2 import config" inside pyroute2: just that submodule.
                return importlib.import_module("pyroute2." + name)
            del bare.__getattr__  # pylint: disable=no-member
            spec.loader.exec_module(bare)
            return getattr(bare, name)

        bare.__getattr__ = complete
        sys.modules["pyroute2"] = bare
        try:
            modules = [importlib.import_module(name) for name in PARTS]
        except Exception:  # pylint: disable=broad-except
            for name in [n for n in sys.modules if n == "pyroute2" or n.startswith("pyroute2.")]:
                del sys.modules[name]
        else:
            return modules[0], modules[1].rtmsg, modules[2].ifinfmsg, modules[3].ifaddrmsg
    import pyroute2  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    modules = [importlib.import_module(name) for name in PARTS]
    return modules[0], modules[1].rtmsg, modules[2].ifinfmsg, modules[3].ifaddrmsg


def iproute():
    """pyroute2's IPRoute class, imported on first use (reads do not need it)."""
    return importlib.import_module("pyroute2.iproute.linux").IPRoute


def pr_netns():
    """pyroute2's netns module (create and remove named namespaces), imported on first use."""
    return importlib.import_module("pyroute2.netns")


try:
    _exceptions, rtmsg, ifinfmsg, ifaddrmsg = _import_pyroute2_parts()
    NetlinkDumpInterrupted, NetlinkError = _exceptions.NetlinkDumpInterrupted, _exceptions.NetlinkError
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    NetlinkError = OSError

    class NetlinkDumpInterrupted(Exception):
        """Stand-in when pyroute2 is missing."""
else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None

from ansible_collections.podnet.mesh.plugins.module_utils._plan import HOST, STALE, describe
from ansible_collections.podnet.mesh.plugins.module_utils._setns import InNetns

NETNS_RUN_DIR = "/run/netns"
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
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
ROUTE_FLAGS = {
    "route_add": (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL),
    "route_replace": (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE),
    "route_del": (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK),
}
# Route messages sent per round trip when many routes change at once.
ROUTE_BATCH = 256


class NetlinkOpError(Exception):
    """A kernel operation failed; the message is ready for fail_json."""

    def __init__(self, operation, ns, code, text, scoped=True):
        self.operation = operation
        self.ns = ns
        self.code = code
        self.text = text
        name = errno.errorcode.get(code, "errno %s" % code) if code else "error"
        where = " (namespace %s)" % (HOST if ns is None else ns) if scoped else ""
        super().__init__("cannot %s%s: %s [%s]" % (operation, where, text, name))


def _error(operation, ns, exc, scoped=True):
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    text = None
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[1], str):
        text = args[1]
    if not text and code:
        text = os.strerror(code)
    return NetlinkOpError(operation, ns, code, text or str(exc), scoped)


def netns_path(name):
    """Path of a namespace: a name under /run/netns, or an absolute path as given."""
    if name.startswith("/"):
        return name
    return os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name):
    """True when a named namespace is mounted at /run/netns/<name> (or a path exists)."""
    path = netns_path(name)
    if name.startswith("/"):
        return os.path.exists(path)
    return os.path.exists(path) and os.path.ismount(path)


def netns_state(name):
    """True (a mounted namespace), False (nothing) or _plan.STALE (a leftover file)."""
    path = netns_path(name)
    if not os.path.lexists(path):
        return False
    if name.startswith("/") or os.path.ismount(path):
        return True
    return STALE


def _attrs(msg):
    """A message's attributes as a dict, in one pass (get_attr per name is slow)."""
    return dict((nla[0], nla[1]) for nla in msg["attrs"])


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
            raise NetlinkOpError(
                "open namespace %s" % name, name, errno.ENOENT,
                "no namespace at %s" % self.path)
        try:
            self.sock = self._inside(_netlink_socket)
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

    def dump(self, msg_class, msg_type, family=0):
        """All objects of one kind (RTM_GET* dump), as decoded pyroute2 messages."""
        self._seq += 1
        return _dump(self.sock, msg_class, msg_type, family, self._seq)

    def call(self, operation, func, *args, **kwargs):
        for attempt in range(DUMP_ATTEMPTS):
            try:
                return func(*args, **kwargs)
            except NetlinkDumpInterrupted as exc:
                if attempt == DUMP_ATTEMPTS - 1:
                    raise _error(operation, self.name, exc)
            except (OSError, NetlinkError) as exc:
                raise _error(operation, self.name, exc)
        return None

    # ---------------------------------------------------------------- reads
    def links(self, with_addresses=(), only=None):
        """Links by name (all, or those named in only that exist); addresses for the names asked for.

        only reads each named link with its own request, so the cost does not grow with the
        number of links in the namespace (a node with hundreds of pod veths).
        """
        if only is None:
            msgs = self.call("list links", self.dump, ifinfmsg, RTM_GETLINK)
        else:
            msgs = [m for name in only for m in self._link_by("ifname", name)]
        names = dict((m["index"], m.get_attr("IFLA_IFNAME")) for m in msgs)
        for master in set(m.get_attr("IFLA_MASTER") for m in msgs) - set(names) - {None, 0}:
            for msg in self._link_by("index", master):
                names[master] = msg.get_attr("IFLA_IFNAME")
        links = {}
        for msg in msgs:
            state = link_state(msg, names)
            links[state["name"]] = state
        if with_addresses:
            wanted = dict((links[n]["ifindex"], links[n]) for n in with_addresses if n in links)
            if wanted:
                for msg in self.call("list addresses", self.dump, ifaddrmsg, RTM_GETADDR):
                    link = wanted.get(msg["index"])
                    address = _address(msg)
                    if link is not None and address is not None:
                        link["addresses"].append(address)
        return links

    def _link_by(self, key, value):
        """[the link message] for one link by name or index, [] if there is no such link."""
        self._seq += 1
        request = ifinfmsg()
        request["header"]["type"] = RTM_GETLINK
        request["header"]["flags"] = NLM_F_REQUEST
        request["header"]["sequence_number"] = self._seq
        if key == "index":
            request["index"] = value
        else:
            request["attrs"] = [("IFLA_IFNAME", value)]
        request.encode()
        try:
            self.sock.sendall(bytes(request.data))
            while True:
                data = self.sock.recv(1 << 16)
                length, kind, _flags, seq = struct.unpack_from("=IHHI", data)
                if seq != self._seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, 16)[0]
                    raise OSError(code, os.strerror(code))
                msg = ifinfmsg(data[:length])
                msg.decode()
                return [msg]
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return []
            raise _error("read link %s" % value, self.name, exc)

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
            msgs = self.call("list routes", self.dump, rtmsg, RTM_GETROUTE, FAMILIES[version])
            for msg in msgs:
                attrs = _attrs(msg)
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
        for msg in self.call("list addresses", self.dump, ifaddrmsg, RTM_GETADDR):
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
            raise NetlinkOpError("look up link %s" % name, self.name, errno.ENODEV, "no such link")
        return found[0]


class Session:
    """Netlink handles per namespace for one module run; closes them all on exit."""

    def __init__(self):
        self._handles = {}
        self.applied = []

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
        if name not in self._handles:
            self._handles[name] = Namespace(name)
        return self._handles[name]

    def forget(self, name):
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.close()

    # --------------------------------------------------------------- writes
    def apply(self, actions):
        batch = []
        for action in actions:
            if action.op in ROUTE_FLAGS and action.ns is None:
                batch.append(action)
                continue
            self._flush_routes(batch)
            getattr(self, "_" + action.op)(action)
            self.applied.append(action)
        self._flush_routes(batch)

    # Routes ----------------------------------------------------------------
    def _route_kwargs(self, ns, action):
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
        if action.op == "route_del":
            kwargs["scope"] = RT_SCOPE_NOWHERE
        else:
            kwargs["scope"] = RT_SCOPE_UNIVERSE if route.get("via") else RT_SCOPE_LINK
        return kwargs

    def _route(self, command, action):
        ns = self.ns(action.ns)
        ns.call(describe(action), ns.ipr.route, command, **self._route_kwargs(ns, action))

    def _route_add(self, action):
        self._route("add", action)

    def _route_replace(self, action):
        self._route("replace", action)

    def _route_del(self, action):
        self._route("del", action)

    def _flush_routes(self, batch):
        """Send route changes of the host namespace in a few large writes.

        Messages are built by pyroute2 (rtmsg) and written to one plain netlink
        socket, ROUTE_BATCH at a time, each acknowledged: 1,000 routes take a
        handful of round trips instead of 1,000.
        """
        if not batch:
            return
        ns = self.ns(None)
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
        try:
            sock.bind((0, 0))
            for start in range(0, len(batch), ROUTE_BATCH):
                chunk = batch[start:start + ROUTE_BATCH]
                data = b"".join(_route_message(self._route_kwargs(ns, a), a.op, seq)
                                for seq, a in enumerate(chunk, 1))
                sock.sendall(data)
                errors = _read_acks(sock, len(chunk))
                for seq, action in enumerate(chunk, 1):
                    if seq in errors:
                        code = errors[seq]
                        raise NetlinkOpError(describe(action), None, code, os.strerror(code))
                    self.applied.append(action)
        except OSError as exc:
            raise _error("send route changes", None, exc)
        finally:
            sock.close()
            del batch[:]

    def _netns_add(self, action):
        try:
            pr_netns().create(action.name)
        except (OSError, NetlinkError) as exc:
            raise _error(describe(action), None, exc, scoped=False)

    def _netns_del(self, action):
        self.forget(action.name)
        try:
            pr_netns().remove(action.name)
        except (OSError, NetlinkError) as exc:
            raise _error(describe(action), None, exc, scoped=False)

    def _netns_clear(self, action):
        try:
            os.unlink(netns_path(action.name))
        except OSError as exc:
            raise _error(describe(action), None, exc, scoped=False)

    def _bridge_add(self, action):
        ns = self.ns(action.ns)
        ns.call(describe(action), ns.ipr.link, "add", ifname=action.name, kind="bridge")

    def _veth_add(self, action):
        ns = self.ns(action.ns)
        peer = {"ifname": action.args["peer"]}
        if action.args.get("peer_mac"):
            peer["address"] = action.args["peer_mac"]
        if action.args.get("peer_ns") is not None:
            target = action.args["peer_ns"]
            if not netns_exists(target):
                raise NetlinkOpError(describe(action), action.ns, errno.ENOENT,
                                     "namespace %s does not exist" % target)
            fd = os.open(netns_path(target), os.O_RDONLY)
            try:
                peer["net_ns_fd"] = fd
                ns.call(describe(action), ns.ipr.link, "add", ifname=action.name,
                        kind="veth", peer=peer)
            finally:
                os.close(fd)
        else:
            ns.call(describe(action), ns.ipr.link, "add", ifname=action.name, kind="veth", peer=peer)

    def _link_del(self, action):
        ns = self.ns(action.ns)
        ns.call(describe(action), ns.ipr.link, "del", index=ns.index(action.name))

    def _link_move(self, action):
        ns = self.ns(action.ns)
        fd = os.open(netns_path(action.args["to_ns"]), os.O_RDONLY)
        try:
            ns.call(describe(action), ns.ipr.link, "set", index=ns.index(action.name), net_ns_fd=fd)
        finally:
            os.close(fd)

    def _link_set(self, action):
        ns = self.ns(action.ns)
        args = dict(action.args)
        kwargs = {"index": ns.index(action.name)}
        if "up" in args:
            kwargs["state"] = "up" if args.pop("up") else "down"
        if "master" in args:
            master = args.pop("master")
            kwargs["master"] = ns.index(master) if master else 0
        if "mtu" in args:
            kwargs["mtu"] = args.pop("mtu")
        if "stp" in args:
            kwargs["kind"] = "bridge"
            kwargs["br_stp_state"] = 1 if args.pop("stp") else 0
        ns.call(describe(action), ns.ipr.link, "set", **kwargs)

    def _brport_set(self, action):
        ns = self.ns(action.ns)
        ns.call(describe(action), ns.ipr.brport, "set", index=ns.index(action.name),
                mode=1 if action.args["hairpin"] else 0)

    def _addr(self, command, action):
        ns = self.ns(action.ns)
        ip, prefix = action.args["address"].split("/")
        ns.call(describe(action), ns.ipr.addr, command, index=ns.index(action.name),
                address=ip, prefixlen=int(prefix))

    def _addr_add(self, action):
        self._addr("add", action)

    def _addr_del(self, action):
        self._addr("del", action)


def _route_message(kwargs, op, seq):
    """One RTM_NEWROUTE/RTM_DELROUTE message, encoded by pyroute2."""
    msg_type, flags = ROUTE_FLAGS[op]
    msg = rtmsg()
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    for field in ("family", "dst_len", "proto", "scope", "type"):
        msg[field] = kwargs[field]
    table = kwargs["table"]
    msg["table"] = table if table < 256 else 0
    attrs = [("RTA_TABLE", table), ("RTA_PRIORITY", kwargs["priority"])]
    for key, attr in (("dst", "RTA_DST"), ("gateway", "RTA_GATEWAY"), ("oif", "RTA_OIF")):
        if key in kwargs:
            attrs.append((attr, kwargs[key]))
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


NLMSG_DONE = 3
RTM_GETLINK = 18
RTM_GETADDR = 22
RTM_GETROUTE = 26
NLM_F_DUMP = 0x300
NLM_F_DUMP_INTR = 0x10


def _netlink_socket():
    """A plain NETLINK_ROUTE socket in the calling thread's namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    try:
        sock.bind((0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def _dump(sock, msg_class, msg_type, family, seq):
    """One RTM_GET* dump over sock, every answer decoded by pyroute2's msg_class.

    An answer carrying NLM_F_DUMP_INTR (the table changed while the kernel was
    sending it) is read to its end and then reported as NetlinkDumpInterrupted,
    so that the caller reads again.
    """
    request = msg_class()
    request["header"]["type"] = msg_type
    request["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
    request["header"]["sequence_number"] = seq
    request["family"] = family
    request.encode()
    sock.sendall(bytes(request.data))
    answer = msg_type - 2  # RTM_GETLINK -> RTM_NEWLINK, and so on
    result, interrupted = [], False
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, flags, got_seq = struct.unpack_from("=IHHI", data, offset)
            if got_seq == seq:
                interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                if kind == NLMSG_DONE:
                    if interrupted:
                        raise NetlinkDumpInterrupted()
                    return result
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + 16)[0]
                    raise OSError(code, os.strerror(code))
                if kind == answer:
                    msg = msg_class(data[offset:offset + length])
                    msg.decode()
                    result.append(msg)
            if length < 16:
                break
            offset += (length + 3) & ~3


def _read_acks(sock, count):
    """Read the kernel's answers to count requests (seq 1..count); return {seq: errno}."""
    pending = set(range(1, count + 1))
    errors = {}
    while pending:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, msg_type, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
            if msg_type == NLMSG_ERROR and seq in pending:
                code = -struct.unpack_from("=i", data, offset + 16)[0]
                pending.discard(seq)
                if code:
                    errors[seq] = code
            if length < 16:
                break
            offset += (length + 3) & ~3
    return errors
