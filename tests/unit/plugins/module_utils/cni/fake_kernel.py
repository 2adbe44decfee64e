# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small fake kernel for the CNI plugin's unit tests, in the shape of kernel.netlink.

``FakeSession`` has what the plugin uses of ``kernel.netlink.Session`` (ns(),
apply(), applied, forget(), close(), a context manager) and ``FakeNamespace``
what it uses of ``kernel.netlink.Namespace`` (links(), routes(), addresses(),
networks()). Actions of the planners are applied to dicts, so every verb runs
its real code path: what it plans, what it applies, what it leaves behind when
something fails, and the JSON it prints.
"""
from __future__ import annotations

import copy
import errno
import ipaddress
import json
import os
import stat

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam, main, plugin
from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op

NETNS = "/run/netns/pod1"
CID = "c0ffee"


def link(name, index, kind=None, **extra):
    state = {"name": name, "ifindex": index, "kind": kind, "mac": "02:00:00:00:00:%02x" % index,
             "mtu": 1500, "up": False, "master": None, "link": None, "link_netnsid": None,
             "stp": False if kind == "bridge" else None, "hairpin": None, "addresses": []}
    state.update(extra)
    return state


class FakeKernel:
    """Namespaces of links and routes; applies actions as the kernel would, roughly."""

    def __init__(self):
        self.index = 10
        self.spaces = {None: {"lo": link("lo", 1, up=True)}}
        self.routes = {None: []}
        self.sysctls = {}
        # op -> callables run once just before the next action of that op: another process at work.
        self.meanwhile = {}

    def add_ns(self, path=NETNS):
        self.spaces[path] = {"lo": link("lo", 1)}
        self.routes[path] = []

    def next_index(self):
        self.index += 1
        return self.index

    def find(self, ns, name):
        return self.spaces[ns][name]

    def apply(self, action):
        ns, name, args = action.ns, action.name, action.args
        pending = self.meanwhile.get(action.op)
        if pending:
            pending.pop(0)(self)
        space = self.spaces[ns]
        if action.op == Op.BRIDGE_ADD:
            if name in space:
                raise KernelError(describe(action), ns, errno.EEXIST, "File exists")
            space[name] = link(name, self.next_index(), "bridge")
        elif action.op == Op.VETH_ADD:
            peer_ns = args.get("peer_ns")
            if args["peer"] in self.spaces[peer_ns]:
                raise KernelError(describe(action), ns, errno.EEXIST, "File exists")
            host, peer = self.next_index(), self.next_index()
            space[name] = link(name, host, "veth", link=peer, link_netnsid=0 if peer_ns else None)
            self.spaces[peer_ns][args["peer"]] = link(args["peer"], peer, "veth", link=host,
                                                      link_netnsid=0 if peer_ns else None)
        elif action.op == Op.LINK_DEL:
            gone = space.pop(name)
            for other in self.spaces.values():
                for key, state in list(other.items()):
                    if state["kind"] == "veth" and state["link"] == gone["ifindex"]:
                        del other[key]
        elif action.op == Op.LINK_SET:
            state = space[name]
            for key, value in args.items():
                state[key] = value
            if "master" in args:
                state["hairpin"] = False
        elif action.op == Op.BRPORT_SET:
            space[name]["hairpin"] = args["hairpin"]
        elif action.op == Op.ADDR_ADD:
            if args["address"] in space[name]["addresses"]:
                raise KernelError(describe(action), ns, errno.EEXIST, "File exists")
            space[name]["addresses"].append(args["address"])
        elif action.op == Op.ADDR_DEL:
            space[name]["addresses"].remove(args["address"])
        elif action.op == Op.ROUTE_ADD:
            self.routes[ns].append(dict(args["route"], proto=args["proto"]))
        elif action.op == Op.SYSCTL:
            self.sysctls[(ns, args["path"])] = args["value"]
        else:
            raise AssertionError("unexpected action %r" % (action,))


class FakeNamespace:
    """kernel.netlink.Namespace's reads."""

    def __init__(self, kernel, name):
        self.kernel = kernel
        self.name = name

    def links(self, with_addresses=(), only=None):
        links = copy.deepcopy(self.kernel.spaces[self.name])
        return links if only is None else dict((n, state) for n, state in links.items() if n in only)

    def routes(self, table, families=(4, 6), links=None):
        return [dict(r) for r in self.kernel.routes[self.name] if r["family"] in families]

    def addresses(self):
        return [(state["ifindex"], a) for state in self.kernel.spaces[self.name].values()
                for a in state["addresses"]]

    def networks(self):
        return [ipaddress.ip_interface(a).network for _index, a in self.addresses()]


class FakeSession:
    """kernel.netlink.Session: ns(), apply(), applied, forget(), close(); fail_on makes one op fail."""

    def __init__(self, kernel, fail_on=None):
        self.kernel = kernel
        self.fail_on = fail_on
        self.applied = []
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ns(self, name=None):
        if name not in self.kernel.spaces:
            raise KernelError("open namespace %s" % name, name, errno.ENOENT, "no namespace")
        return FakeNamespace(self.kernel, name)

    def forget(self, name):
        pass

    def apply(self, actions):
        for action in actions:
            if action.op == self.fail_on:
                raise KernelError(describe(action), action.ns, errno.EINVAL, "Invalid argument")
            self.kernel.apply(action)
            self.applied.append(action)

    def close(self):
        self.closed = True


def env(command, **overrides):
    base = {"CNI_COMMAND": command, "CNI_CONTAINERID": CID, "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin"}
    base.update(overrides)
    return dict((k, v) for k, v in base.items() if v is not None)


class Run:
    """Invoke the plugin in-process against a fake kernel; keeps the sessions it made."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.sessions = []

    def __call__(self, command, config, fail_on=None, raw=None, **environ):
        def factory():
            session = FakeSession(self.kernel, fail_on)
            self.sessions.append(session)
            return session

        data = raw if raw is not None else json.dumps(config).encode()
        code, text = main.run(env(command, **environ), lambda: data, factory)
        return code, (json.loads(text) if text else None)

    @property
    def applied(self):
        return [a for s in self.sessions for a in s.applied]


def reservations(config):
    return ipam.Store(config["ipam"]["dataDir"], config["name"]).reservations()


def veth():
    return plugin.attachment_veth(CID, "eth0")


def state_dir(config):
    return os.path.join(config["ipam"]["dataDir"], config["name"])


def state_files(config):
    """The network's IPAM state but the lock: name -> content (None for what is not a regular file)."""
    path = state_dir(config)
    if not os.path.isdir(path):
        return {}
    found = {}
    for name in os.listdir(path):
        if name == ipam.LOCK_FILE:
            continue
        full = os.path.join(path, name)
        if stat.S_ISREG(os.lstat(full).st_mode):
            with open(full, "rb") as handle:
                found[name] = handle.read()
        else:
            found[name] = None
    return found


def write_state(config, name, data):
    """A file in the network's IPAM state directory, as an older version or someone else left it."""
    path = state_dir(config)
    if not os.path.isdir(path):
        os.makedirs(path, 0o700)
    with open(os.path.join(path, name), "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())
