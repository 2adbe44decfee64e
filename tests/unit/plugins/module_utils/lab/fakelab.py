# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small model of the kernel that interprets lab plans and can be read back.

Shared by the lab's planner and module tests: "apply, then plan again"
proves convergence (a second plan is empty, a half-built or changed lab is
repaired).
"""
from __future__ import annotations

from ansible_collections.podnet.mesh.plugins.module_utils.lab import plan as lab_plan
from ansible_collections.podnet.mesh.plugins.module_utils.lab import topology

ROOT = "/run/podnet-lab"
LAB = ROOT + "/t"


def nodes(count, ipv6=False, **kw):
    if ipv6:
        kw.setdefault("gateway6", topology.DEFAULT_GATEWAY6)
    return [dict((key, n[key]) for key in ("name", "address", "address6") if key in n)
            for n in topology.generate(count, **kw)["nodes"]]


def want6(count=3, **params):
    """A lab with ipv6 (IPv6 beside IPv4 on the lab's network)."""
    params.setdefault("nodes", nodes(count, ipv6=True))
    return want(count, ipv6=True, **params)


def want(count=3, state="present", **params):
    params.setdefault("nodes", nodes(count))
    return topology.validate(dict({"name": "t", "root": ROOT, "state": state}, **params))


class FakeLab:
    """Just enough of the kernel to interpret lab plans (and be read back)."""

    def __init__(self):
        self.exists = self.mounted = self.marked = False
        self.unknown = []   # what the lab directory holds besides members and marker
        self.members = {}   # label -> set of files
        self.links = {}     # label -> {name: link}
        self.routes = {}    # label -> {(family, dst): route}
        self.forwarding = {}
        self.forwarding6 = {}
        self.ipv6_conf = {}  # label -> interfaces set
        self.nodad = []     # IPv6 addresses added without duplicate address detection
        self.ifindex = 100
        self.strays = []
        self.ssh_key = False
        self.sshd = set()   # nodes with sshd running
        self.boots = []     # nodes booted, in order
        self.disks = set()  # nodes whose disk exists

    def label(self, path):
        assert path.startswith(LAB + "/") and path.endswith("/net"), path
        return path[len(LAB) + 1:-len("/net")]

    def cur(self):
        return {
            "exists": self.exists, "mounted": self.mounted, "shared": False, "marked": self.marked,
            "unknown": list(self.unknown),
            "strays": list(self.strays), "dirs": sorted(self.members),
            "members": dict((k, sorted(v)) for k, v in self.members.items()),
            "links": dict((k, dict((n, dict(l, addresses=list(l["addresses"]))) for n, l in v.items()))
                          for k, v in self.links.items() if "net" in self.members.get(k, ())),
            "routes": dict((k, list(v.values())) for k, v in self.routes.items()),
            "forwarding": dict(self.forwarding),
            "forwarding6": dict(self.forwarding6),
            "ipv6_conf": dict((k, True) for k in self.ipv6_conf),
            "ssh_key": self.ssh_key,
            "sshd": sorted(self.sshd),
            "layered": sorted(self.disks),
        }

    def _link(self, label, name, kind, **kw):
        self.ifindex += 1
        link = {"name": name, "ifindex": self.ifindex, "kind": kind, "up": False, "master": None,
                "mac": "aa:bb:cc:00:00:%02x" % (self.ifindex % 256),
                "link": None, "link_netnsid": None, "addresses": []}
        link.update(kw)
        self.links.setdefault(label, {})[name] = link
        return link

    def _drop_label(self, label):
        # The namespace dies: veth peers elsewhere die with it.
        gone = self.links.pop(label, {})
        self.routes.pop(label, None)
        self.forwarding.pop(label, None)
        self.forwarding6.pop(label, None)
        self.ipv6_conf.pop(label, None)
        for other in self.links.values():
            for name in [n for n, l in other.items() if l.get("peer_of") in
                         [(label, g) for g in gone]]:
                del other[name]

    def apply(self, actions):
        for a in actions:
            getattr(self, "_" + a.op)(a)

    def _lab_mount(self, a):
        self.exists = self.mounted = self.marked = True

    def _umount(self, a):
        self.strays.remove(a.name)

    def _ns_create(self, a):
        assert not self.members.get(a.name), "creating over existing files"
        self.members[a.name] = set(a.args["files"])
        self.disks.add(a.name)
        self.links[a.name] = {}
        self._link(a.name, "lo", None)

    def _ns_remove(self, a):
        self.members.pop(a.name, None)
        self.sshd.discard(a.name)
        if not a.args["keep"]:
            self.disks.discard(a.name)
        self._drop_label(a.name)

    def _lab_ssh_key(self, a):
        assert not self.ssh_key
        self.ssh_key = True

    def _lab_sshd_start(self, a):
        assert self.ssh_key and "net" in self.members[a.name]
        assert self.links[a.name]["eth0"]["addresses"], "sshd before the node's address"
        self.sshd.add(a.name)

    def _lab_sshd_stop(self, a):
        self.sshd.remove(a.name)

    def _lab_boot(self, a):
        assert self.routes.get(a.name), "boot before the node's default route"
        self.boots.append(a.name)

    def _lab_remove(self, a):
        assert not self.members
        self.exists = self.mounted = self.marked = self.ssh_key = False
        self.unknown = []

    def _bridge_add(self, a):
        self._link(self.label(a.ns), a.name, "bridge")

    def _veth_add(self, a):
        la, lb = self.label(a.ns), self.label(a.args["peer_ns"])
        assert a.name not in self.links[la] and a.args["peer"] not in self.links[lb]
        first = self._link(la, a.name, "veth", peer_of=(lb, a.args["peer"]))
        second = self._link(lb, a.args["peer"], "veth", link=first["ifindex"], link_netnsid=0,
                            peer_of=(la, a.name))
        first["link"], first["link_netnsid"] = second["ifindex"], 0

    def _link_del(self, a):
        # Gone already with its namespace: LabSession treats ENODEV as done.
        link = self.links[self.label(a.ns)].pop(a.name, {})
        peer = link.get("peer_of")
        if peer:
            self.links.get(peer[0], {}).pop(peer[1], None)

    def _link_set(self, a):
        link = self.links[self.label(a.ns)][a.name]
        for key, value in a.args.items():
            if key != "text":  # how the action reads, not a setting
                link[key] = value

    def _addr_add(self, a):
        label = self.label(a.ns)
        addresses = self.links[label][a.name]["addresses"]
        assert a.args["address"] not in addresses
        if ":" in a.args["address"]:
            assert label in self.ipv6_conf, "IPv6 address before the namespace's IPv6 settings"
            if a.args.get("nodad"):  # added with IFA_F_NODAD: never tentative
                self.nodad.append(a.args["address"])
        addresses.append(a.args["address"])

    def _addr_del(self, a):
        label = self.label(a.ns)
        self.links[label][a.name]["addresses"].remove(a.args["address"])
        # The kernel drops IPv4 routes through a removed IPv4 address (IPv6 gateway routes may stay).
        if ":" not in a.args["address"]:
            for key in [k for k in self.routes.get(label, {}) if k[0] == 4]:
                del self.routes[label][key]

    @staticmethod
    def _key(route):
        return (route["family"], route["dst"])

    def _route_add(self, a):
        routes = self.routes.setdefault(self.label(a.ns), {})
        assert self._key(a.args["route"]) not in routes
        assert a.args["proto"] == topology.LAB_PROTO and a.args["table"] == 254
        routes[self._key(a.args["route"])] = dict(a.args["route"], proto=a.args["proto"])

    def _route_replace(self, a):
        self.routes.setdefault(self.label(a.ns), {})[self._key(a.args["route"])] = dict(
            a.args["route"], proto=a.args["proto"])

    def _route_del(self, a):
        del self.routes[self.label(a.ns)][self._key(a.args["route"])]

    def _sysctl(self, a):
        assert a.args["path"] == LAB + "/router/net" and a.args["value"] == "1", a.args
        if a.args["key"] == "net/ipv4/ip_forward":
            self.forwarding[a.name] = True
        else:
            assert a.args["key"] == "net/ipv6/conf/all/forwarding", a.args
            self.forwarding6[a.name] = True

    def _lab_ipv6_conf(self, a):
        assert a.args["path"] == LAB + "/" + a.name + "/net"
        assert a.args["settings"] == [["disable_ipv6", "0"], ["accept_dad", "0"], ["accept_ra", "0"]]
        self.ipv6_conf[a.name] = set(a.args["interfaces"])


def converge(fake, w):
    first = lab_plan.plan(w, fake.cur())
    fake.apply(first.actions)
    return first, lab_plan.plan(w, fake.cur())


def route(fake, label, dst, family=4):
    """A route the fake kernel holds (KeyError if none)."""
    return fake.routes[label][(family, dst)]


def ops(plan):
    return [a.op for a in plan.actions]
