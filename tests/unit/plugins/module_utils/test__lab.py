# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab without the kernel: node pattern, validation, planning, mountinfo.

Planning is checked against a small model of the kernel (FakeLab) that
interprets the planned actions, so "apply, then plan again" proves
convergence: a second plan is empty, a half-built or changed lab is repaired.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils import _lab
from ansible_collections.podnet.mesh.plugins.module_utils._plan import Action
from ansible_collections.podnet.mesh.plugins.module_utils._validate import ValidationError

ROOT = "/run/podnet-lab"
LAB = ROOT + "/t"


def nodes(count, **kw):
    return [{"name": n["name"], "address": n["address"]}
            for n in _lab.generate(count, **kw)["nodes"]]


def want(count=3, state="present", **params):
    params.setdefault("nodes", nodes(count))
    return _lab.validate(dict({"name": "t", "root": ROOT, "state": state}, **params))


# ------------------------------------------------------------------ pattern
def test_generate_the_classic_three_nodes():
    lab = _lab.generate(3)
    assert lab["gateway"] == "192.168.1.1/24"
    assert lab["nodes"][0] == {
        "name": "node1", "ip": "192.168.1.11", "address": "192.168.1.11/24",
        "pod_cidr": "10.244.1.0/24",
        "pods": [{"name": "red", "address": "10.244.1.2"}, {"name": "blue", "address": "10.244.1.3"}],
    }
    assert [n["address"] for n in lab["nodes"]] == [
        "192.168.1.11/24", "192.168.1.12/24", "192.168.1.13/24"]
    assert [n["pod_cidr"] for n in lab["nodes"]] == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    assert lab["nodes"][2]["pods"][1] == {"name": "blue", "address": "10.244.3.3"}


def test_generate_fifty_nodes_stays_in_the_24():
    lab = _lab.generate(50)
    assert lab["gateway"] == "192.168.1.1/24"
    assert lab["nodes"][-1]["address"] == "192.168.1.60/24"
    assert lab["nodes"][-1]["pod_cidr"] == "10.244.50.0/24"


@pytest.mark.parametrize("count, gateway, last", [
    (244, "192.168.1.1/24", "192.168.1.254/24"),
    (245, "192.168.1.1/22", "192.168.1.255/22"),
    (255, "192.168.1.1/22", "192.168.2.9/22"),
])
def test_generate_widens_the_switch_network_only_when_needed(count, gateway, last):
    lab = _lab.generate(count)
    assert lab["gateway"] == gateway
    assert lab["nodes"][-1]["address"] == last
    assert lab["nodes"][0]["address"].split("/")[0] == "192.168.1.11"
    assert len({n["ip"] for n in lab["nodes"]}) == count


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 0}, "positive integer"),
    ({"count": True}, "positive integer"),
    ({"count": 256}, "256 nodes need 256 pod CIDRs"),
    ({"count": 3, "pods": ["p%d" % i for i in range(300)]}, "do not fit"),
    ({"count": 3, "gateway": "fd00::1/64"}, "IPv4 only"),
    ({"count": 3, "pod_prefix": 12}, "between the cluster prefix"),
])
def test_generate_refuses_impossible_labs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _lab.generate(**kwargs)


# --------------------------------------------------------------- validation
def test_validate_normalises_and_computes_the_router_addresses():
    w = want(2)
    assert w["path"] == LAB
    assert w["gateway"] == "192.168.1.1/24"
    assert w["router_external"] == "203.0.113.1/24"
    assert w["nodes"] == [{"name": "node1", "address": "192.168.1.11/24"},
                          {"name": "node2", "address": "192.168.1.12/24"}]


def test_router_takes_the_last_external_address_if_the_first_is_the_external_host():
    assert _lab.external_gateway("203.0.113.1/24") == "203.0.113.254/24"


def test_absent_needs_no_nodes():
    w = _lab.validate({"name": "t", "root": ROOT + "/", "state": "absent", "nodes": None})
    assert w["nodes"] == [] and w["path"] == LAB


@pytest.mark.parametrize("params, path, reason", [
    ({"name": "../x"}, "name", "not a valid lab name"),
    ({"name": ""}, "name", "not a valid lab name"),
    ({"root": "relative"}, "root", "absolute path"),
    ({"root": "/run/../etc"}, "root", "absolute path"),
    ({"root": "/"}, "root", "must not be /"),
    ({"nodes": [{"name": "router", "address": "192.168.1.5/24"}]}, "nodes[0].name", "reserved"),
    ({"nodes": [{"name": "a_b", "address": "192.168.1.5/24"}]}, "nodes[0].name", "not a valid node name"),
    ({"nodes": [{"name": "n" * 16, "address": "192.168.1.5/24"}]}, "nodes[0].name", "not a valid"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24"}, {"name": "a", "address": "192.168.1.6/24"}]},
     "nodes[1].name", "listed twice"),
    ({"nodes": [{"name": "a", "address": "192.168.2.5/24"}]}, "nodes[0].address", "not on the switch network"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/25"}]}, "nodes[0].address", "not on the switch network"),
    ({"nodes": [{"name": "a", "address": "192.168.1.1/24"}]}, "nodes[0].address", "taken by gateway"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24"}, {"name": "b", "address": "192.168.1.5/24"}]},
     "nodes[1].address", "taken by nodes[0]"),
    ({"nodes": [{"name": "a"}]}, "nodes[0].address", "is required"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24", "ip": 1}]}, "nodes[0]", "unknown key"),
    ({"nodes": "node1"}, "nodes", "must be a list"),
    ({"gateway": "192.168.1.1"}, "gateway", "prefix length"),
    ({"gateway": "fd00::1/64"}, "gateway", "IPv4"),
    ({"external": "192.168.1.200/24"}, "external", "overlaps the switch network"),
    ({"external": "203.0.113.10/31"}, "external", "at least 4 addresses"),
])
def test_validate_refuses_with_a_path(params, path, reason):
    base = {"name": "t", "root": ROOT, "nodes": [], "state": "present"}
    with pytest.raises(ValidationError) as err:
        _lab.validate(dict(base, **params))
    assert err.value.path == path
    assert reason in str(err.value)


# --------------------------------------------------------------- fake kernel
class FakeLab:
    """Just enough of the kernel to interpret lab plans (and be read back)."""

    def __init__(self):
        self.exists = self.mounted = False
        self.members = {}   # label -> set of files
        self.links = {}     # label -> {name: link}
        self.routes = {}    # label -> {dst: route}
        self.forwarding = {}
        self.ifindex = 100
        self.strays = []

    def label(self, path):
        assert path.startswith(LAB + "/") and path.endswith("/net"), path
        return path[len(LAB) + 1:-len("/net")]

    def cur(self):
        return {
            "exists": self.exists, "mounted": self.mounted, "shared": False,
            "strays": list(self.strays), "dirs": sorted(self.members),
            "members": dict((k, sorted(v)) for k, v in self.members.items()),
            "links": dict((k, dict((n, dict(l, addresses=list(l["addresses"]))) for n, l in v.items()))
                          for k, v in self.links.items() if "net" in self.members.get(k, ())),
            "routes": dict((k, list(v.values())) for k, v in self.routes.items()),
            "forwarding": dict(self.forwarding),
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
        for other in self.links.values():
            for name in [n for n, l in other.items() if l.get("peer_of") in
                         [(label, g) for g in gone]]:
                del other[name]

    def apply(self, actions):
        for a in actions:
            getattr(self, "_" + a.op)(a)

    def _lab_mount(self, a):
        self.exists = self.mounted = True

    def _umount(self, a):
        self.strays.remove(a.name)

    def _ns_create(self, a):
        assert not self.members.get(a.name), "creating over existing files"
        self.members[a.name] = set(a.args["files"])
        self.links[a.name] = {}
        self._link(a.name, "lo", None)

    def _ns_remove(self, a):
        self.members.pop(a.name, None)
        self._drop_label(a.name)

    def _lab_remove(self, a):
        assert not self.members
        self.exists = self.mounted = False

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

    def _link_mac(self, a):
        self.links[self.label(a.ns)][a.name]["mac"] = a.args["address"]

    def _link_set(self, a):
        link = self.links[self.label(a.ns)][a.name]
        for key, value in a.args.items():
            link[key] = value

    def _addr_add(self, a):
        addresses = self.links[self.label(a.ns)][a.name]["addresses"]
        assert a.args["address"] not in addresses
        addresses.append(a.args["address"])

    def _addr_del(self, a):
        label = self.label(a.ns)
        self.links[label][a.name]["addresses"].remove(a.args["address"])
        self.routes.get(label, {}).clear()

    def _route_add(self, a):
        routes = self.routes.setdefault(self.label(a.ns), {})
        assert a.args["route"]["dst"] not in routes
        assert a.args["proto"] == _lab.LAB_PROTO and a.args["table"] == 254
        routes[a.args["route"]["dst"]] = dict(a.args["route"])

    def _route_replace(self, a):
        self.routes.setdefault(self.label(a.ns), {})[a.args["route"]["dst"]] = dict(a.args["route"])

    def _sysctl(self, a):
        assert a.args == {"path": LAB + "/router/net", "key": "net/ipv4/ip_forward",
                          "value": "1", "text": a.args["text"]}
        self.forwarding[a.name] = True


def converge(fake, w):
    first = _lab.plan(w, fake.cur())
    fake.apply(first.actions)
    return first, _lab.plan(w, fake.cur())


def ops(plan):
    return [a.op for a in plan.actions]


# ------------------------------------------------------------------ planner
def test_fresh_lab_is_built_in_order_and_converges():
    fake = FakeLab()
    first, second = converge(fake, want(3))
    assert second.actions == [], second.descriptions()
    names = ops(first)
    assert names[0] == "lab_mount"
    assert names[1:7] == ["ns_create"] * 6
    assert [a.name for a in first.actions[1:7]] == ["switch", "router", "external",
                                                    "node1", "node2", "node3"]
    # Namespaces first, then links, then addresses/up, then routes, forwarding last.
    assert names.index("bridge_add") > names.index("ns_create")
    assert max(i for i, o in enumerate(names) if o == "route_add") < names.index("sysctl")
    assert names.count("veth_add") == 5
    assert names.count("route_add") == 4
    node1 = fake.links["node1"]
    assert node1["eth0"]["addresses"] == ["192.168.1.11/24"] and node1["eth0"]["up"]
    assert node1["lo"]["up"]
    assert fake.links["switch"]["node1"]["master"] == "switch"
    assert fake.links["router"]["eth0"]["addresses"] == ["192.168.1.1/24"]
    assert fake.links["router"]["eth1"]["addresses"] == ["203.0.113.1/24"]
    assert fake.links["external"]["eth0"]["addresses"] == ["203.0.113.10/24"]
    assert fake.routes["node2"]["default"]["via"] == "192.168.1.1"
    assert fake.routes["external"]["192.168.1.0/24"]["via"] == "203.0.113.1"
    assert "router" not in fake.routes and "switch" not in fake.routes
    assert fake.forwarding == {"router": True}
    assert set(fake.members["node1"]) == {"net", "mnt", "uts"}
    assert set(fake.members["switch"]) == {"net"}


def test_plan_never_touches_the_namespace_the_module_runs_in():
    first = _lab.plan(want(5), FakeLab().cur())
    for action in first.actions:
        if action.op in ("ns_create", "ns_remove", "lab_mount", "lab_remove", "sysctl", "umount"):
            continue
        assert action.ns and action.ns.startswith(LAB + "/"), action
        if action.op == "veth_add":
            assert action.args["peer_ns"].startswith(LAB + "/")


def test_diff_lists_the_members():
    fake = FakeLab()
    first, second = converge(fake, want(2))
    assert first.before == {"name": "t", "path": LAB, "state": "absent"}
    assert first.after == {
        "name": "t", "path": LAB, "state": "present", "gateway": "192.168.1.1/24",
        "external": "203.0.113.10/24", "nodes": ["node1 192.168.1.11/24", "node2 192.168.1.12/24"]}
    assert second.before == second.after


def test_fifty_nodes_then_idempotent():
    fake = FakeLab()
    first, second = converge(fake, want(50))
    assert second.actions == []
    assert ops(first).count("ns_create") == 53
    assert len(fake.links["switch"]) == 1 + 1 + 50 + 1  # lo, bridge, ports, router port


def test_shrinking_removes_nodes_and_their_switch_ports():
    fake = FakeLab()
    converge(fake, want(5))
    first, second = converge(fake, want(3))
    assert second.actions == []
    assert [(a.op, a.name) for a in first.actions] == [
        ("link_del", "node4"), ("ns_remove", "node4"), ("link_del", "node5"), ("ns_remove", "node5")]
    assert "node4" not in fake.members and "node4" not in fake.links["switch"]


def test_growing_adds_only_the_new_nodes():
    fake = FakeLab()
    converge(fake, want(2))
    first, second = converge(fake, want(3))
    assert second.actions == []
    assert [a.name for a in first.actions if a.op == "ns_create"] == ["node3"]
    assert all("node3" in (a.name + (a.ns or "")) for a in first.actions), first.descriptions()


def test_half_built_node_is_made_again():
    fake = FakeLab()
    converge(fake, want(2))
    fake.members["node2"] = {"net"}  # e.g. an interrupted run: mnt and uts missing
    first, second = converge(fake, want(2))
    assert second.actions == []
    assert ops(first)[:2] == ["ns_remove", "ns_create"]
    assert ("link_del", "node2") in [(a.op, a.name) for a in first.actions]


def test_leftover_directory_without_namespaces_is_replaced():
    fake = FakeLab()
    w = want(1)
    cur = fake.cur()
    cur.update(exists=True, dirs=["node1"], members={"node1": []})
    first = _lab.plan(w, cur)
    assert [(a.op, a.name) for a in first.actions[:3]] == [
        ("lab_mount", LAB), ("ns_remove", "node1"), ("ns_create", "switch")]


def test_broken_wiring_is_repaired():
    fake = FakeLab()
    converge(fake, want(2))
    fake.links["node1"]["eth0"]["up"] = False
    fake.links["node1"]["lo"]["up"] = False
    fake.links["switch"]["node2"]["master"] = None
    fake.links["switch"]["switch"]["up"] = False
    del fake.routes["node2"]["default"]
    fake.forwarding["router"] = False
    first, second = converge(fake, want(2))
    assert second.actions == []
    assert sorted(first.descriptions()) == sorted([
        "set up=True on link switch in namespace %s/switch/net" % LAB,
        "set master=switch on link node2 in namespace %s/switch/net" % LAB,
        "set up=True on link eth0 in namespace %s/node1/net" % LAB,
        "set up=True on link lo in namespace %s/node1/net" % LAB,
        "add route default via 192.168.1.1 metric 0 in namespace %s/node2/net" % LAB,
        "enable IPv4 forwarding in %s/router/net" % LAB,
    ])


def test_lost_veth_peer_is_recreated():
    fake = FakeLab()
    converge(fake, want(1))
    del fake.links["node1"]["eth0"]
    fake.links["switch"]["node1"]["link_netnsid"] = None
    first, second = converge(fake, want(1))
    assert second.actions == []
    assert ops(first)[:2] == ["link_del", "veth_add"]


def test_changed_addresses_replace_the_routes():
    fake = FakeLab()
    converge(fake, want(2))
    w = want(2, gateway="192.168.1.254/24", nodes=[
        {"name": "node1", "address": "192.168.1.21/24"}, {"name": "node2", "address": "192.168.1.12/24"}])
    first, second = converge(fake, w)
    assert second.actions == []
    text = first.descriptions()
    assert "delete address 192.168.1.11/24 from eth0 in namespace %s/node1/net" % LAB in text
    assert "replace route default via 192.168.1.254 metric 0 in namespace %s/node1/net" % LAB in text
    assert "replace route default via 192.168.1.254 metric 0 in namespace %s/node2/net" % LAB in text
    assert fake.routes["node1"]["default"]["via"] == "192.168.1.254"


def test_a_link_of_the_wrong_kind_named_switch_is_replaced():
    fake = FakeLab()
    converge(fake, want(1))
    fake.links["switch"]["switch"]["kind"] = "veth"
    first = _lab.plan(want(1), fake.cur())
    assert ops(first)[:3] == ["link_del", "bridge_add", "link_set"]


def test_teardown_removes_every_member_then_the_directory():
    fake = FakeLab()
    converge(fake, want(2))
    w = want(state="absent")
    first, second = converge(fake, w)
    assert second.actions == [] and not second.changed
    assert [(a.op, a.name) for a in first.actions] == [
        ("ns_remove", "external"), ("ns_remove", "node1"), ("ns_remove", "node2"),
        ("ns_remove", "router"), ("ns_remove", "switch"), ("lab_remove", LAB)]
    assert first.after == {"name": "t", "path": LAB, "state": "absent"}
    assert first.before["nodes"] == ["node1 192.168.1.11/24", "node2 192.168.1.12/24"]


def test_teardown_of_a_half_built_lab():
    cur = FakeLab().cur()
    cur.update(exists=True, mounted=True, strays=[LAB + "/node1/x"], dirs=["node1", "switch"],
               members={"node1": ["net"], "switch": []})
    first = _lab.plan(want(state="absent"), cur)
    assert [(a.op, a.name) for a in first.actions] == [
        ("umount", LAB + "/node1/x"), ("ns_remove", "node1"), ("ns_remove", "switch"),
        ("lab_remove", LAB)]
    assert first.actions[1].args["files"] == ["net"]


def test_teardown_of_nothing_changes_nothing():
    first = _lab.plan(want(state="absent"), FakeLab().cur())
    assert not first.changed
    assert first.before == first.after


def test_shared_lab_mount_is_made_private_again():
    fake = FakeLab()
    converge(fake, want(1))
    cur = fake.cur()
    cur["shared"] = True
    first = _lab.plan(want(1), cur)
    assert first.descriptions() == ["make the mount %s private" % LAB]


def test_render_check_mode_and_read_back():
    fake = FakeLab()
    w = want(1)
    predicted = _lab.render(w, fake.cur(), True)
    converge(fake, w)
    actual = _lab.render(w, fake.cur(), False)
    assert predicted == actual
    assert actual["nodes"] == [{"name": "node1", "address": "192.168.1.11/24",
                                "net": LAB + "/node1/net", "mnt": LAB + "/node1/mnt",
                                "uts": LAB + "/node1/uts"}]
    assert actual["namespaces"]["router"] == LAB + "/router/net"
    assert _lab.render(want(state="absent"), FakeLab().cur(), False)["state"] == "absent"


# ---------------------------------------------------------------- mountinfo
MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
42 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
44 27 254:0 /run/podnet-lab/t /run/podnet-lab/t rw,relatime - ext4 /dev/vda rw
69 44 0:4 uts:[4026532318] /run/podnet-lab/t/node1/uts rw - nsfs nsfs rw
70 44 0:4 net:[4026532319] /run/podnet-lab/t/node1/net rw - nsfs nsfs rw
71 44 0:4 mnt:[4026532317] /run/podnet-lab/t/node1/mnt rw - nsfs nsfs rw
72 44 0:4 net:[4026532320] /run/podnet-lab/t/switch/net rw - nsfs nsfs rw
73 44 0:4 net:[4026532321] /run/podnet-lab/t/switch/mnt rw - nsfs nsfs rw
74 44 0:40 / /run/podnet-lab/t/odd\\040dir rw - tmpfs tmpfs rw
75 27 0:4 net:[4026532322] /run/podnet-lab/tt/node1/net rw - nsfs nsfs rw
"""


def test_mountinfo_parsing():
    mounts = _lab.parse_mountinfo(MOUNTINFO)
    assert mounts[1] == {"point": "/run/netns", "root": "/run/netns", "fstype": "ext4", "shared": True}
    state = _lab.lab_mounts(mounts, LAB)
    assert state["mounted"] and not state["shared"]
    assert state["strays"] == [LAB + "/odd dir"]
    assert len(state["files"]) == 5 and LAB + "/node1/net" in state["files"]
    # switch/mnt holds a network namespace: not a valid member file.
    assert _lab.members_from_files(LAB, state["files"], ["node2"]) == {
        "node1": ["mnt", "net", "uts"], "switch": ["net"], "node2": []}


def test_unshare_commands():
    node = _lab.unshare_command(LAB + "/node1", "node1", ["net", "mnt", "uts"], ROOT)
    assert node[:4] == ["unshare", "--net=%s/node1/net" % LAB, "--mount=%s/node1/mnt" % LAB,
                        "--uts=%s/node1/uts" % LAB]
    assert node[4:9] == ["--propagation", "private", "--", "/bin/sh", "-c"]
    assert node[-3:] == ["podnet-lab", "node1", ROOT]
    assert "mount -t tmpfs" in node[9] and "/run/netns" in node[9]
    assert _lab.unshare_command(LAB + "/switch", "switch", ["net"], ROOT) == [
        "unshare", "--net=%s/switch/net" % LAB, "--", "true"]


def test_processes_are_found_by_namespace_inode(tmp_path):
    proc = tmp_path / "proc"
    files = {}
    for pid, kinds in (("10", ("net", "mnt", "uts")), ("11", ("net",)), ("self", ("net",))):
        (proc / pid / "ns").mkdir(parents=True)
        for kind in kinds:
            (proc / pid / "ns" / kind).write_text("")
            files[(pid, kind)] = str(proc / pid / "ns" / kind)
    inodes = _lab.namespace_inodes([files[("10", "uts")], str(tmp_path / "missing")])
    assert _lab.processes_in(inodes, str(proc)) == [10]
    assert _lab.processes_in(set(), str(proc)) == []


class RecordingSession:
    """LabSession's netlink side, recorded."""

    def __init__(self):
        self.applied = []
        self.done = []
        self.forgotten = []

    def apply(self, actions):
        self.applied.extend(actions)
        self.done.extend(actions)

    def forget(self, name):
        self.forgotten.append(name)

    def close(self):
        pass


def test_lab_session_sends_link_work_to_netlink_and_runs_creates_in_parallel(monkeypatch, tmp_path):
    netlink = RecordingSession()
    started = []

    class Proc:
        returncode = 0

        def __init__(self, argv, **kw):
            started.append(argv)

        def communicate(self):
            return b"", b""

    monkeypatch.setattr(_lab.subprocess, "Popen", Proc)
    session = _lab.LabSession(netlink_factory=lambda: netlink)
    lab = str(tmp_path / "lab")
    actions = [Action("ns_create", None, label,
                      {"path": lab + "/" + label, "files": files, "root": str(tmp_path)})
               for label, files in (("switch", ["net"]), ("node1", ["net", "mnt", "uts"]))]
    actions.append(Action("bridge_add", lab + "/switch/net", "switch", {}))
    session.apply(actions)
    assert [argv[1] for argv in started] == ["--net=%s/switch/net" % lab, "--net=%s/node1/net" % lab]
    assert os.path.exists(lab + "/node1/uts")
    assert [a.op for a in netlink.done] == ["bridge_add"]
    assert [a.op for a in session.applied] == ["ns_create", "ns_create", "bridge_add"]


def test_lab_session_reports_unshare_failures(monkeypatch, tmp_path):
    class Proc:
        returncode = 1

        def __init__(self, argv, **kw):
            pass

        def communicate(self):
            return b"", b"unshare: cannot change root filesystem propagation: Permission denied\n"

    monkeypatch.setattr(_lab.subprocess, "Popen", Proc)
    session = _lab.LabSession(netlink_factory=RecordingSession)
    with pytest.raises(_lab.LabError, match="Permission denied"):
        session.apply([Action("ns_create", None, "switch",
                              {"path": str(tmp_path / "switch"), "files": ["net"], "root": str(tmp_path)})])
    assert session.applied == []


# ------------------------------------------------------------- module flow
class ModuleSession:
    """Stands in for LabSession in the module: applies plans to a FakeLab."""
    fake = None
    instances = []

    def __init__(self):
        self.applied = []
        ModuleSession.instances.append(self)

    def apply(self, actions):
        ModuleSession.fake.apply(actions)
        self.applied.extend(actions)

    def close(self):
        pass


@pytest.fixture
def run_module(monkeypatch):
    from ansible_collections.podnet.mesh.plugins.module_utils import _module
    from ansible_collections.podnet.mesh.plugins.modules import lab as module
    from ansible_collections.podnet.mesh.tests.unit.module_runner import run_main, stub_exits

    fake = FakeLab()
    ModuleSession.fake = fake
    ModuleSession.instances = []
    stub_exits(monkeypatch)
    monkeypatch.setattr(_module, "require_pyroute2", lambda module: None)
    monkeypatch.setattr(_lab, "LabSession", ModuleSession)
    monkeypatch.setattr(_lab, "read", lambda session, w: fake.cur() if w["path"] == LAB else None)

    def _run(args):
        kind, result = run_main(module.main, dict({"name": "t", "root": ROOT}, **args))
        return kind, result, fake
    return _run


def test_module_check_mode_changes_nothing(run_module):
    kind, result, fake = run_module({"nodes": nodes(2), "_ansible_check_mode": True,
                                     "_ansible_diff": True})
    assert kind == "exit" and result["changed"] is True
    assert ModuleSession.instances[-1].applied == [] and not fake.members
    assert result["actions"][0] == "mount %s privately on itself" % LAB
    assert result["lab"]["nodes"][1]["address"] == "192.168.1.12/24"
    assert result["diff"]["before"]["state"] == "absent"
    assert result["diff"]["after"]["nodes"] == ["node1 192.168.1.11/24", "node2 192.168.1.12/24"]


def test_module_builds_then_is_unchanged_then_removes(run_module):
    kind, result, fake = run_module({"nodes": nodes(2)})
    assert kind == "exit" and result["changed"] is True and "diff" not in result
    assert result["lab"]["gateway"] == "192.168.1.1/24"
    kind, result, fake = run_module({"nodes": nodes(2)})
    assert result["changed"] is False and result["actions"] == []
    kind, result, fake = run_module({"state": "absent"})
    assert result["changed"] is True and result["lab"]["state"] == "absent"
    assert not fake.members and not fake.exists


def test_module_refuses_bad_input_before_reading(run_module, monkeypatch):
    monkeypatch.setattr(_lab, "read", lambda session, w: pytest.fail("read before validation"))
    kind, result, fake = run_module({"nodes": [{"name": "switch", "address": "192.168.1.5/24"}]})
    assert kind == "fail" and result["changed"] is False
    assert result["msg"].startswith("nodes[0].name: 'switch' is reserved")
