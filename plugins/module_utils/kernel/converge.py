# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What both netlink sessions share, on the standard library alone.

``kernel.netlink`` (pyroute2's message classes, the modules) and ``kernel.lite``
(the CNI plugin's own codec) decode and encode in their own way, and share the
rest: a namespace handle's opening, sequence numbers, error handling and the
reads built on others (``NamespaceBase``), the session's handles
(``SessionBase``), where a veth's other end is (``SessionBase.peer_of``),
whether what a concurrent creator made after an EEXIST is what an action wanted
(``ALREADY_THERE``), and how an action runs through a handler table (``run``).
"""

from __future__ import annotations

import errno
import ipaddress
import os

from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import wire
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import (
    InNetns, netns_exists, netns_path, open_netns, visible_namespaces)

# A dump the kernel interrupts (links changed meanwhile: a busy runtime next door) is read again.
DUMP_ATTEMPTS = 20


class NamespaceBase:
    """Netlink in one namespace (None: the one this process runs in), over one socket.

    A named namespace (a name under /run/netns or a path) is entered in-thread to
    make the socket, which stays bound to it; it is only opened, never created.
    Subclasses decode (links, routes, addresses, _states, _link_by); INTERRUPTED
    and REFUSED are the exceptions ``call`` reads again or turns into a KernelError.
    """

    INTERRUPTED = (wire.Interrupted,)
    REFUSED = (OSError,)

    def __init__(self, name, open_socket=wire.open_socket):
        self.name = name
        self.path = None if name is None else netns_path(name)
        self._seq = 0
        if name is not None and not netns_exists(name):
            if os.path.lexists(self.path):
                raise KernelError("open namespace %s" % name, name, errno.EINVAL,
                                  "%s is not a network namespace" % self.path)
            raise KernelError("open namespace %s" % name, name, errno.ENOENT, "no namespace at %s" % self.path)
        try:
            self.sock = self._inside(open_socket)
        except OSError as exc:
            raise KernelError.from_exception("open namespace %s" % name, name, exc)

    def _inside(self, make):
        if self.path is None:
            return make()
        with InNetns(self.path):
            return make()

    def close(self):
        self.sock.close()

    def next_seq(self):
        self._seq += 1
        return self._seq

    def call(self, operation, func, *args, **kwargs):
        """func(*args, **kwargs); a refusal becomes a KernelError naming operation; interrupted dumps are read again."""
        for attempt in range(DUMP_ATTEMPTS):
            try:
                return func(*args, **kwargs)
            except self.INTERRUPTED as exc:
                if attempt == DUMP_ATTEMPTS - 1:
                    raise KernelError.from_exception(operation, self.name, exc)
            except self.REFUSED as exc:
                raise KernelError.from_exception(operation, self.name, exc)
        return None

    def networks(self):
        """The directly connected networks: those of every address in the namespace."""
        return [ipaddress.ip_interface(address).network for _index, address in self.addresses()]

    def link_by_index(self, index):
        """The link with that ifindex as a dict (master named), or None."""
        found = self._states(self._link_by(index=index))
        return next(iter(found.values()), None)

    def nsid(self, path):
        """The id this namespace gives the namespace file at path, None when it has none.

        A veth end whose peer is elsewhere carries the peer namespace's id
        (link_netnsid); equal ids are the proof of where that peer is.
        """
        try:
            fd = open_netns(path)
        except OSError as exc:
            raise KernelError.from_exception("open namespace %s" % path, self.name, exc)
        try:
            return self.call("look up the id of namespace %s" % path, wire.nsid, self.sock, fd, self.next_seq())
        finally:
            os.close(fd)


class SessionBase(model.Session):
    """ns() opens a namespace's handle once (NAMESPACE), forget() closes one, close() all; peer_of.

    named_only refuses the namespace the code runs in (None) and names under
    /run/netns: only namespace files given by path are opened (the lab).
    """

    NAMESPACE = NamespaceBase

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
            self._handles[name] = self.NAMESPACE(name)
        return self._handles[name]

    def forget(self, name):
        """Close the handle of a namespace about to go away."""
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.close()

    def peer_of(self, link, ns=None, hint=()):
        """Where the other end of veth link (read in namespace ns) is, proven by namespace ids.

        {seen, netns, link}: seen True with netns (None: ns itself, or a name under
        /run/netns) and link the peer's link dict; or seen False (netns and link None)
        when the peer is in no namespace this node has mounted, e.g. the namespace it
        was made for was deleted while a process still holds it. hint: namespaces to
        try first, the ones the caller expects the peer in.
        """
        unseen = {"seen": False, "netns": None, "link": None}
        if link is None or link.get("kind") != "veth" or not link.get("link"):
            return unseen
        home = self.ns(ns)
        if link.get("link_netnsid") is None:
            peer = home.link_by_index(link["link"])
            return {"seen": True, "netns": ns, "link": peer} if peer is not None else unseen
        tried = set()
        for label in list(hint) + visible_namespaces():
            path = None if label is None else netns_path(label)
            if label is None or label == ns or path in tried or not netns_exists(label):
                continue
            tried.add(path)
            try:
                if home.nsid(path) != link["link_netnsid"]:
                    continue
                peer = self.ns(label).link_by_index(link["link"])
            except KernelError:
                continue  # gone meanwhile, or not opened by this session
            return {"seen": True, "netns": label, "link": peer}
        return unseen


def route_there(action, routes):
    """Whether routes (as read) hold the route a ROUTE_ADD wanted, ours and alike."""
    if action.op != Op.ROUTE_ADD:
        return False
    want = action.args["route"]
    for route in routes:
        if (route["family"], route["dst"], route["metric"]) != (want["family"], want["dst"], want["metric"]):
            continue
        if route["proto"] == action.args["proto"] and route["type"] == "unicast" \
                and route["via"] == want.get("via") and (not want.get("dev") or route["dev"] == want["dev"]):
            return True
    return False


def _route_is_there(session, action):
    ns = session.ns(action.ns)
    return route_there(action, ns.routes(action.args["table"], families=(action.args["route"]["family"],)))


def _bridge_is_there(session, action):
    link = session.ns(action.ns).links(only=[action.name]).get(action.name)
    return (link or {}).get("kind") == "bridge"


def _same_pair(session, action):
    """Whether the link action.name is a veth whose peer is action's peer, in action's peer namespace."""
    host = session.ns(action.ns).links(only=[action.name]).get(action.name)
    target = action.args.get("peer_ns")
    where = action.ns if target is None else target
    place = session.peer_of(host, action.ns, hint=() if target is None else (target,))
    return place["seen"] and place["netns"] == where and (place["link"] or {}).get("name") == action.args["peer"]


def _address_is_there(session, action):
    link = session.ns(action.ns).links(with_addresses=[action.name], only=[action.name]).get(action.name)
    wanted = ipaddress.ip_interface(action.args["address"])
    return link is not None and wanted in [ipaddress.ip_interface(a) for a in link["addresses"]]


def sysctl(session, action):
    """Write a per-interface sysctl (action.args: path under /proc/sys/net, value) inside action.ns.

    /proc/sys/net belongs to the network namespace of the thread that opens it:
    the file is opened from inside the namespace, like the namespace's socket.
    """
    handle = session.ns(action.ns)

    def write():
        with open(action.args["path"], "w") as sink:
            sink.write(action.args["value"] + "\n")
    try:
        handle._inside(write)  # pylint: disable=protected-access
    except OSError as exc:
        raise KernelError.from_exception(action.args.get("text") or action.name, action.ns, exc)


# op -> check(session, action) after EEXIST: whether what a concurrent run made is what the
# action wanted (a bridge of that name, this very pair, the same address on the link, the
# same route of ours); then the action counts as done.
ALREADY_THERE = {
    Op.BRIDGE_ADD: _bridge_is_there,
    Op.VETH_ADD: _same_pair,
    Op.ADDR_ADD: _address_is_there,
    Op.ROUTE_ADD: _route_is_there,
}


def run(handlers, session, action, already_there=None):
    """Apply one action through its handler; an EEXIST is tolerated when already_there says so."""
    try:
        handlers[action.op](session, action)
    except KernelError as exc:
        check = (ALREADY_THERE if already_there is None else already_there).get(action.op)
        if exc.code != errno.EEXIST or check is None or not check(session, action):
            raise
