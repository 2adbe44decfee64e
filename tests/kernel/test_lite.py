# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""kernel.lite (the CNI plugin's netlink session, no pyroute2) beside kernel.netlink on the real kernel.

The same actions are applied through kernel.netlink (pyroute2, kernel.changes)
to one set of objects and through kernel.lite to a twin set: a bridge, a veth
pair whose peer is born in a throwaway namespace, addresses and routes on both
sides. Both sets must then read the same, and each session must read the same
of one state. The plugin itself, built as it is installed, must run an ADD
without pyroute2 anywhere in reach.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import main
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import MAIN_TABLE, ROUTE_PROTO, Action, Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import converge, lite, netlink

BUILD = os.path.join(os.path.dirname(os.path.abspath(main.__file__)), "..", "..", "..", "roles", "cni", "files",
                     "build_podnet.py")
SIDES = {"n": netlink.Session, "l": lite.Session}


IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40


def ns_path(name):
    return "/run/netns/" + name


def address_flags(pod, address):
    """The flags (IFA_FLAGS, all 32 bits) of one address in a namespace, read by pyroute2."""
    from pyroute2 import NetNS
    with NetNS(os.path.basename(pod), flags=0) as ns:
        for msg in ns.get_addr():
            if msg.get_attr("IFA_ADDRESS") == address:
                return msg.get_attr("IFA_FLAGS") or msg["flags"]
    raise AssertionError("%s not found in %s" % (address, pod))


class open_in:
    """A file of /proc/sys/net opened from inside a namespace (its own sysctls)."""

    def __init__(self, pod, path):
        self.pod, self.path = pod, path

    def __enter__(self):
        from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import InNetns
        with InNetns(self.pod):
            self.handle = open(self.path)
        return self.handle

    def __exit__(self, *exc):
        self.handle.close()


class Twin:
    """The objects of one side: names end in the side's letter, addresses differ in their third byte."""

    def __init__(self, prefix, side, pod):
        self.side = side
        self.bridge = prefix + "b" + side
        self.veth = prefix + "v" + side
        self.local = prefix + "w" + side        # a pair with both ends here
        self.local_peer = prefix + "x" + side
        self.pod = ns_path(pod)
        self.net = "10.%d.1" % (200 + list(SIDES).index(side))
        self.net6 = "fd00:%x:" % (200 + list(SIDES).index(side))

    def names(self, text):
        """text with this side's names and addresses written as side 'l' writes them (to compare)."""
        for name in (self.bridge, self.veth, self.local, self.local_peer):
            text = text.replace(name, name[:-1] + "l")
        return text.replace(self.net + ".", "10.201.1.").replace(self.net6 + ":", "fd00:c9::")


def a(op, ns, name, **args):
    return Action(op, ns, name, args)


def build_actions(t):
    route = {"dst": "default", "family": 4, "via": t.net + ".1", "dev": "eth0", "metric": 0}
    more = {"dst": "10.99.0.0/16", "family": 4, "via": t.net + ".1", "dev": None, "metric": 100}
    v6 = {"dst": "fd00:99::/64", "family": 6, "via": None, "dev": "eth0", "metric": 1024}
    # A dual-stack attachment's IPv6 default route: via the bridge's IPv6 gateway, on the interface.
    default6 = {"dst": "default", "family": 6, "via": t.net6 + ":1", "dev": "eth0", "metric": 1024}
    return [
        a(Op.BRIDGE_ADD, None, t.bridge, mac="0a:58:0a:c8:01:01"),
        a(Op.LINK_SET, None, t.bridge, stp=True, mtu=1450),
        a(Op.ADDR_ADD, None, t.bridge, address=t.net + ".1/24", broadcast=t.net + ".255"),
        a(Op.ADDR_ADD, None, t.bridge, address=t.net6 + ":1/64"),
        a(Op.LINK_SET, None, t.bridge, up=True),
        a(Op.VETH_ADD, None, t.veth, peer="eth0", peer_ns=t.pod, peer_mac="0a:58:0a:c8:01:02"),
        a(Op.LINK_SET, None, t.veth, mtu=1450),
        a(Op.LINK_SET, t.pod, "eth0", mtu=1450),
        a(Op.LINK_SET, None, t.veth, master=t.bridge),
        a(Op.BRPORT_SET, None, t.veth, hairpin=True),
        a(Op.LINK_SET, None, t.veth, up=True),
        a(Op.LINK_SET, t.pod, "eth0", up=True),
        a(Op.LINK_SET, t.pod, "lo", up=True),
        a(Op.ADDR_ADD, t.pod, "eth0", address=t.net + ".2/24"),
        a(Op.SYSCTL, t.pod, "net.ipv6.conf.eth0.accept_ra", path="/proc/sys/net/ipv6/conf/eth0/accept_ra", value="0"),
        a(Op.SYSCTL, t.pod, "net.ipv6.conf.eth0.accept_dad", path="/proc/sys/net/ipv6/conf/eth0/accept_dad",
          value="0"),
        a(Op.ADDR_ADD, t.pod, "eth0", address=t.net6 + ":2/64", nodad=True),
        a(Op.ROUTE_ADD, t.pod, "default", route=route, table=MAIN_TABLE, proto=ROUTE_PROTO),
        a(Op.ROUTE_ADD, t.pod, "default", route=default6, table=MAIN_TABLE, proto=ROUTE_PROTO),
        a(Op.ROUTE_ADD, t.pod, "10.99.0.0/16", route=more, table=MAIN_TABLE, proto=ROUTE_PROTO),
        a(Op.ROUTE_ADD, t.pod, "fd00:99::/64", route=v6, table=MAIN_TABLE, proto=ROUTE_PROTO),
        a(Op.VETH_ADD, None, t.local, peer=t.local_peer),
        a(Op.LINK_SET, None, t.local, mac="02:70:6e:00:00:01", master=t.bridge),
    ]


def change_actions(t):
    more = {"dst": "10.99.0.0/16", "family": 4, "via": t.net + ".1", "dev": None, "metric": 100}
    moved = dict(more, dev="eth0")
    v6 = {"dst": "fd00:99::/64", "family": 6, "via": None, "dev": "eth0", "metric": 1024}
    default6 = {"dst": "default", "family": 6, "via": t.net6 + ":1", "dev": "eth0", "metric": 1024}
    return [
        a(Op.LINK_SET, None, t.bridge, stp=False, mtu=1400),
        a(Op.BRPORT_SET, None, t.veth, hairpin=False),
        a(Op.ROUTE_REPLACE, t.pod, "default", route=dict(default6, metric=1025), table=MAIN_TABLE, proto=ROUTE_PROTO),
        a(Op.ROUTE_DEL, t.pod, "default", route=default6, table=MAIN_TABLE, proto=ROUTE_PROTO),
        a(Op.ADDR_DEL, t.pod, "eth0", address=t.net6 + ":2/64"),
        a(Op.ROUTE_REPLACE, t.pod, "10.99.0.0/16", route=moved, table=MAIN_TABLE, proto=ROUTE_PROTO),
        a(Op.ROUTE_DEL, t.pod, "fd00:99::/64", route=v6, table=MAIN_TABLE, proto=ROUTE_PROTO),
        a(Op.LINK_SET, None, t.local, master=None, up=False),
        a(Op.LINK_MOVE, None, t.local_peer, to_ns=t.pod),
        a(Op.LINK_DEL, None, t.local),
    ]


def snapshot(t):
    """Everything both sides made, read by kernel.netlink, with this side's names made side l's."""
    with netlink.Session() as session:
        host = session.ns(None).links(with_addresses=[t.bridge, t.veth, t.local, t.local_peer])
        pod = session.ns(t.pod).links(with_addresses=["eth0", "lo", t.local_peer])
        routes = session.ns(t.pod).routes(MAIN_TABLE, links=pod)
    links = {}
    for where, found in (("host", host), ("pod", pod)):
        for name, link in found.items():
            if where == "host" and name not in (t.bridge, t.veth, t.local, t.local_peer):
                continue
            link = dict(link, ifindex=None, link=bool(link["link"]), link_netnsid=link["link_netnsid"] is not None)
            if name in (t.veth, t.local_peer):
                link["mac"] = None  # the kernel's random one
            links["%s:%s" % (where, name)] = link
    out = json.dumps({"links": links, "routes": sorted(routes, key=lambda r: (r["family"], r["dst"]))}, sort_keys=True)
    brd = subprocess.run(["ip", "-j", "addr", "show", "dev", t.bridge], capture_output=True, text=True, check=True)
    brd_pod = subprocess.run(["ip", "-n", os.path.basename(t.pod), "-j", "addr", "show", "dev", "eth0"],
                             capture_output=True, text=True, check=True)
    broadcasts = sorted((i.get("local"), i.get("broadcast")) for entry in json.loads(brd.stdout) + json.loads(brd_pod.stdout)
                        for i in entry["addr_info"] if i["family"] == "inet")
    return json.loads(t.names(out)), json.loads(t.names(json.dumps(broadcasts)))


@pytest.fixture
def twins(prefix, named_ns, host_links):
    made = {}
    for side in SIDES:
        twin = Twin(prefix, side, named_ns("p" + side))
        host_links.extend([twin.bridge, twin.veth, twin.local, twin.local_peer])
        made[side] = twin
    return made


def test_handlers_make_what_kernel_changes_makes(twins):
    for side, make in SIDES.items():
        with make() as session:
            session.apply(build_actions(twins[side]))
            assert session.applied == build_actions(twins[side])
    built = snapshot(twins["n"])
    assert built == snapshot(twins["l"])
    links = built[0]["links"]
    assert links["pod:eth0"]["mac"] == "0a:58:0a:c8:01:02" and links["pod:eth0"]["mtu"] == 1450
    assert links["host:%s" % twins["l"].veth]["hairpin"] is True
    assert links["host:%s" % twins["l"].bridge]["stp"] is True
    assert ["10.201.1.1", "10.201.1.255"] in built[1]
    defaults = [(r["family"], r["via"], r["dev"], r["metric"]) for r in built[0]["routes"] if r["dst"] == "default"]
    assert defaults == [(4, "10.201.1.1", "eth0", 0), (6, "fd00:c9::1", "eth0", 1024)]
    for side in SIDES:
        # The pod's IPv6 address came without DAD: usable at once, never tentative; no router advertisements.
        assert address_flags(twins[side].pod, twins[side].net6 + ":2") & (IFA_F_TENTATIVE | IFA_F_NODAD) == IFA_F_NODAD
        for name in ("accept_ra", "accept_dad"):
            with open_in(twins[side].pod, "/proc/sys/net/ipv6/conf/eth0/" + name) as handle:
                assert handle.read().strip() == "0"
    for side, make in SIDES.items():
        with make() as session:
            session.apply(change_actions(twins[side]))
    changed = snapshot(twins["n"])
    assert changed == snapshot(twins["l"])
    assert changed != built
    assert [(r["family"], r["metric"]) for r in changed[0]["routes"] if r["dst"] == "default"] == [(4, 0), (6, 1025)]


def test_reads_are_netlinks(twins):
    t = twins["l"]
    with lite.Session() as session:
        session.apply(build_actions(t))
    with netlink.Session() as theirs, lite.Session() as mine:
        for ns in (None, t.pod):
            for kwargs in ({}, {"with_addresses": [t.bridge, "eth0", "lo"]},
                           {"only": [t.bridge, t.veth, "eth0", "nothere"], "with_addresses": [t.bridge, "eth0"]}):
                assert mine.ns(ns).links(**kwargs) == theirs.ns(ns).links(**kwargs)
            assert mine.ns(ns).routes(MAIN_TABLE) == theirs.ns(ns).routes(MAIN_TABLE)
            assert mine.ns(ns).routes(255, families=(4,)) == theirs.ns(ns).routes(255, families=(4,))
            assert mine.ns(ns).addresses() == theirs.ns(ns).addresses()
            assert mine.ns(ns).networks() == theirs.ns(ns).networks()
        host = theirs.ns(None).links()
        for name in (t.veth, t.local):
            assert mine.ns(None).link_by_index(host[name]["ifindex"]) == theirs.ns(None).link_by_index(
                host[name]["ifindex"])
            assert mine.peer_of(host[name], None, hint=(t.pod,)) == theirs.peer_of(host[name], None, hint=(t.pod,))
        assert mine.peer_of(host[t.veth])["netns"] == os.path.basename(t.pod)  # found unhinted: by its name
        assert mine.ns(None).nsid(t.pod) == theirs.ns(None).nsid(t.pod) == host[t.veth]["link_netnsid"]
        assert mine.ns(None).link_by_index(999999) is None


def test_a_concurrent_creator_is_tolerated_as_kernel_changes_tolerates_it(twins):
    t = twins["l"]
    actions = build_actions(t)
    with lite.Session() as session:
        session.apply(actions)
        again = [x for x in actions if x.op in converge.ALREADY_THERE]
        session.apply(again)  # EEXIST each time, and each time what is there is what was wanted
        assert session.applied == actions + again
        other = a(Op.VETH_ADD, None, t.veth, peer="eth1", peer_ns=t.pod)
        with pytest.raises(KernelError) as err:
            session.apply([other])
        assert err.value.code == errno.EEXIST
        wrong = a(Op.ADDR_ADD, t.pod, "eth0", address=t.net + ".2/25")
        session.apply([wrong])  # another prefix length is another address for the kernel


@pytest.mark.parametrize("action", [
    a(Op.LINK_DEL, None, "pntkmissing"),
    a(Op.LINK_SET, None, "pntkmissing", up=True),
    a(Op.ADDR_DEL, "POD", "eth0", address="10.202.9.9/24"),
    a(Op.ROUTE_DEL, "POD", "10.98.0.0/16", route={"dst": "10.98.0.0/16", "family": 4, "via": "10.201.1.1",
                                                  "dev": None, "metric": 0}, table=MAIN_TABLE, proto=ROUTE_PROTO),
    a(Op.ROUTE_ADD, "POD", "10.97.0.0/16", route={"dst": "10.97.0.0/16", "family": 4, "via": "192.0.2.1",
                                                  "dev": None, "metric": 0}, table=MAIN_TABLE, proto=ROUTE_PROTO),
    a(Op.VETH_ADD, None, "pntkvnowhere", peer="eth0", peer_ns="pntknowhere"),
], ids=["del missing link", "set missing link", "del missing address", "del missing route", "unreachable gateway",
        "veth into a missing namespace"])
def test_refusals_are_netlinks(twins, action):
    t = twins["l"]
    with lite.Session() as session:
        session.apply(build_actions(t))
    if action.ns == "POD":
        action = action._replace(ns=t.pod)
    found = {}
    for side, make in SIDES.items():
        with make() as session:
            with pytest.raises(KernelError) as err:
                session.apply([action])
            found[side] = err.value
    assert found["l"].code == found["n"].code
    assert (found["l"].operation, found["l"].ns) == (found["n"].operation, found["n"].ns)
    # The kernel's own message may follow the errno text (extended acknowledgements).
    assert found["l"].text.startswith(found["n"].text)


def test_the_plugin_adds_without_pyroute2(prefix, named_ns, host_links, tmp_path):
    """The zipapp under a Python that cannot reach pyroute2: ADD, CHECK and DEL work, and nothing tried to import it."""
    plugin = str(tmp_path / "podnet")
    subprocess.run([sys.executable, BUILD, plugin], check=True)
    pod = named_ns("c")
    host_links.append(prefix + "b")
    conf = {"cniVersion": "1.1.0", "name": prefix, "type": "podnet", "bridge": prefix + "b", "mtu": 1400,
            "hairpinMode": True, "ipam": {"subnet": "10.203.0.0/24", "dataDir": str(tmp_path / "ipam")}}
    code = """
import json, sys
class Refuse:
    tried = []
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pyroute2":
            Refuse.tried.append(name)
            raise ImportError("pyroute2 is not reachable here")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[1])
from ansible_collections.podnet.mesh.plugins.module_utils.cni import main
conf = json.loads(sys.argv[2])
env = {"CNI_CONTAINERID": "c1", "CNI_NETNS": sys.argv[3], "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
out = {}
for command in ("ADD", "CHECK", "DEL"):
    rc, text = main.run(dict(env, CNI_COMMAND=command), lambda: json.dumps(conf).encode())
    out[command] = [rc, text]
    if command == "ADD" and rc == 0:
        conf["prevResult"] = json.loads(text)
out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "pyroute2")
out["tried"] = Refuse.tried
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-S", "-c", code, plugin, json.dumps(conf), ns_path(pod)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ADD"][0] == 0, out["ADD"]
    assert json.loads(out["ADD"][1])["interfaces"][2]["mac"] == "0a:58:0a:cb:00:02"
    assert out["CHECK"] == [0, None] and out["DEL"] == [0, None]
    assert out["modules"] == [] and out["tried"] == []
