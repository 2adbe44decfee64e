# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin podnet driven through the CNI protocol against the real kernel.

The plugin is built as it is installed (one zipapp file) and run as a runtime
runs it: a fresh process with CNI_* variables, the configuration on stdin,
JSON on stdout. Containers are throwaway named namespaces (pntk*), the bridge
lives in the private namespace the kernel suite runs in, IPAM state in a
temporary directory. Each call runs with the Python of the suite (pyroute2
0.9 or 0.7); one test runs the file itself, i.e. the node's /usr/bin/python3
with Debian's pyroute2.
"""
from __future__ import annotations

import concurrent.futures
import errno
import ipaddress
import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam, main, protocol
from ansible_collections.podnet.mesh.plugins.module_utils.cni.plugin import attachment_veth
from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op, bridge_mac
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import lite, netlink
from ansible_collections.podnet.mesh.tests.helpers.namespaces import in_ns, ns_path, pings
from ansible_collections.podnet.mesh.tests.helpers.runs import once_per_kernel_run

# The plugin talks netlink through its own standard-library codec: the same in both runs.
pytestmark = once_per_kernel_run

SUBNET = "10.251.0.0/24"
GATEWAY = "10.251.0.1"
BUILD = os.path.join(os.path.dirname(os.path.abspath(main.__file__)), "..", "..", "..", "roles", "cni", "files",
                     "build_podnet.py")


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bin") / "podnet")
    subprocess.run([sys.executable, BUILD, path], check=True)
    return path


class Cni:
    """One network (its own bridge and IPAM directory) and a way to call the plugin."""

    def __init__(self, plugin, prefix, data_dir, subnet=SUBNET):
        self.plugin = plugin
        self.bridge = prefix + "b"
        self.conf = {"cniVersion": "1.1.0", "name": prefix, "type": "podnet", "bridge": self.bridge,
                     "ipam": {"subnet": subnet, "dataDir": data_dir}}
        self.store = ipam.Store(data_dir, prefix)

    def call(self, command, netns=None, ifname="eth0", cid="c1", conf=None, raw=None, python=sys.executable,
             drop=(), umask=None, argv=None):
        environ = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
                   "CNI_CONTAINERID": cid, "CNI_IFNAME": ifname, "CNI_PATH": "/opt/cni/bin"}
        if netns is not None:
            environ["CNI_NETNS"] = netns
        for var in drop:
            environ.pop(var, None)
        data = raw if raw is not None else json.dumps(self.conf if conf is None else conf)
        if argv is None:
            argv = [python, self.plugin] if python else [self.plugin]
        out = subprocess.run(argv, input=data, env=environ, capture_output=True, text=True, timeout=120,
                             check=False, preexec_fn=None if umask is None else lambda: os.umask(umask))
        assert not out.stderr, out.stderr
        return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None)

    def reserved(self):
        return self.store.reservations()


@pytest.fixture
def cni(plugin, prefix, tmp_path, host_links):
    host_links.append(prefix + "b")
    return Cni(plugin, prefix, str(tmp_path / "ipam"))


def host_link(name):
    with netlink.Session() as session:
        return session.ns(None).links().get(name)


def ns_links(name):
    with netlink.Session() as session:
        return session.ns(ns_path(name)).links(with_addresses=["eth0"])


# ------------------------------------------------------------------ verbs
@pytest.mark.parametrize("version", protocol.SUPPORTED_VERSIONS)
def test_add_check_del_in_every_version(cni, named_ns, version):
    pod = named_ns("p")
    cni.conf["cniVersion"] = version
    code, result = cni.call("ADD", ns_path(pod))
    assert code == 0, result
    assert result["cniVersion"] == version
    veth = attachment_veth("c1", "eth0")
    assert [i["name"] for i in result["interfaces"]] == [cni.bridge, veth, "eth0"]
    address = result["ips"][0]["address"]
    assert ipaddress.ip_interface(address).network == ipaddress.ip_network(SUBNET)
    assert ("version" in result["ips"][0]) == version.startswith("0.")
    # The kernel agrees with the result.
    eth0 = ns_links(pod)["eth0"]
    assert eth0["addresses"] == [address] and eth0["up"]
    assert eth0["mac"] == result["interfaces"][2]["mac"]
    assert host_link(veth)["master"] == cni.bridge
    assert pings(pod, GATEWAY)
    assert "default via %s dev eth0 proto 149" % GATEWAY in in_ns(pod, "ip", "route").stdout
    if version != "0.3.1":
        assert cni.call("CHECK", ns_path(pod), conf=dict(cni.conf, prevResult=result)) == (0, None)
    assert cni.call("DEL", ns_path(pod), conf=dict(cni.conf, prevResult=result)) == (0, None)
    assert "eth0" not in ns_links(pod) and host_link(veth) is None
    assert cni.reserved() == {}
    assert cni.call("DEL", ns_path(pod)) == (0, None)


def test_twenty_parallel_adds_get_distinct_addresses_and_reach_the_gateway(cni, named_ns):
    pods = [named_ns("p%d" % i) for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda p: cni.call("ADD", ns_path(p), cid=p), pods))
    assert all(code == 0 for code, out in results), [out for code, out in results if code]
    addresses = [out["ips"][0]["address"] for code, out in results]
    assert len(set(addresses)) == 20
    owners = cni.reserved()
    assert sorted(owners) == sorted(a.split("/")[0] for a in addresses)
    assert all(owners[a.split("/")[0]]["containerID"] == p for a, p in zip(addresses, pods))
    assert [p for p in pods if not pings(p, GATEWAY)] == []
    # Pods on one bridge reach each other.
    assert pings(pods[0], addresses[19].split("/")[0])
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        assert set(pool.map(lambda p: cni.call("DEL", ns_path(p), cid=p), pods)) == {(0, None)}
    assert cni.reserved() == {}


def test_del_after_the_namespace_was_deleted(cni, named_ns):
    from pyroute2 import netns as pr_netns

    pod = named_ns("p")
    assert cni.call("ADD", ns_path(pod))[0] == 0
    pr_netns.remove(pod)
    assert cni.call("DEL", ns_path(pod)) == (0, None)
    assert cni.reserved() == {}
    assert host_link(attachment_veth("c1", "eth0")) is None
    # And without CNI_NETNS at all.
    assert cni.call("DEL", drop=("CNI_NETNS",)) == (0, None)


def test_add_for_an_existing_interface_fails_and_leaves_it(cni, named_ns):
    pod = named_ns("p")
    subprocess.run(["ip", "-n", pod, "link", "add", "eth0", "type", "bridge"], check=True)
    code, out = cni.call("ADD", ns_path(pod))
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT)
    assert "interface eth0 already exists" in out["msg"]
    assert ns_links(pod)["eth0"]["kind"] == "bridge"
    assert cni.reserved() == {} and host_link(cni.bridge) is None


def test_second_add_of_one_attachment_fails_and_keeps_the_first(cni, named_ns):
    pod = named_ns("p")
    code, first = cni.call("ADD", ns_path(pod))
    assert code == 0
    code, out = cni.call("ADD", ns_path(pod))
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT)
    assert list(cni.reserved()) == [first["ips"][0]["address"].split("/")[0]]
    assert pings(pod, GATEWAY)


def test_failed_add_leaves_no_veth_and_no_reservation(cni, named_ns):
    """A kernel failure at the last step (the route), injected into the plugin's own netlink session."""
    pod = named_ns("p")

    class FailingSession(lite.Session):
        def apply(self, actions):
            for action in actions:
                if action.op == Op.ROUTE_ADD:
                    raise KernelError(describe(action), action.ns, errno.ENETUNREACH, "Network is unreachable")
                super().apply([action])

    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": ns_path(pod), "CNI_IFNAME": "eth0",
           "CNI_PATH": "/opt/cni/bin"}
    code, text = main.run(env, lambda: json.dumps(cni.conf).encode(), FailingSession)
    out = json.loads(text)
    assert (code, out["code"], out["details"]) == (1, protocol.ERR_KERNEL, "ENETUNREACH")
    assert "add route default via %s dev eth0" % GATEWAY in out["msg"]
    assert "eth0" not in ns_links(pod)
    assert host_link(attachment_veth("c1", "eth0")) is None
    assert cni.reserved() == {}


def default_routes(pod):
    """The namespace's IPv4 default routes as (device, metric, gateway), sorted."""
    with netlink.Session() as session:
        ns = session.ns(ns_path(pod))
        routes = ns.routes(254, families=(4,), links=ns.links())
    return sorted((r["dev"], r["metric"], r["via"]) for r in routes if r["dst"] == "default")


def test_a_foreign_default_route_stays_and_ours_comes_after_it(cni, named_ns):
    pod = named_ns("p")
    subprocess.run(["ip", "-n", pod, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "-n", pod, "route", "add", "default", "dev", "lo"], check=True)
    code, out = cni.call("ADD", ns_path(pod))
    assert code == 0, out
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY, "priority": 1}]
    assert default_routes(pod) == [("eth0", 1, GATEWAY), ("lo", 0, None)]
    assert cni.call("CHECK", ns_path(pod), conf=dict(cni.conf, prevResult=out)) == (0, None)


def test_attachments_sharing_a_namespace_keep_each_others_default_route(cni, named_ns):
    """A second attachment adds a fallback default route; each DEL leaves the other's; CHECK knows whose is whose."""
    pod = named_ns("p")
    first = cni.call("ADD", ns_path(pod), ifname="eth0")[1]
    second = cni.call("ADD", ns_path(pod), ifname="net1")[1]
    assert default_routes(pod) == [("eth0", 0, GATEWAY), ("net1", 1, GATEWAY)]
    for ifname, result in (("eth0", first), ("net1", second)):
        assert cni.call("CHECK", ns_path(pod), ifname=ifname, conf=dict(cni.conf, prevResult=result)) == (0, None)
    assert cni.call("DEL", ns_path(pod), ifname="net1") == (0, None)
    assert default_routes(pod) == [("eth0", 0, GATEWAY)]
    second = cni.call("ADD", ns_path(pod), ifname="net1")[1]
    assert cni.call("DEL", ns_path(pod), ifname="eth0") == (0, None)
    assert default_routes(pod) == [("net1", 1, GATEWAY)]
    assert pings(pod, GATEWAY)
    # The route via this network's gateway must be on the checked interface, not just somewhere.
    code, out = cni.call("CHECK", ns_path(pod), ifname="net1", conf=dict(cni.conf, prevResult=second))
    assert code == 0, out
    first = cni.call("ADD", ns_path(pod), ifname="eth0")[1]
    subprocess.run(["ip", "-n", pod, "route", "del", "default", "dev", "eth0"], check=True)
    code, out = cni.call("CHECK", ns_path(pod), ifname="eth0", conf=dict(cni.conf, prevResult=first))
    assert (code, out["code"]) == (1, protocol.ERR_CHECK)
    assert "route 0.0.0.0/0 via %s of prevResult is on net1, not on eth0" % GATEWAY in out["msg"]


def test_deleting_the_pod_with_the_lowest_mac_keeps_the_gateways_mac(cni, named_ns):
    """The bridge is pinned: the port with the lowest MAC going away changes nothing the other pods hold."""
    pods = [named_ns("m%d" % i) for i in range(4)]
    for pod in pods:
        assert cni.call("ADD", ns_path(pod), cid=pod)[0] == 0
        assert pings(pod, GATEWAY)  # every pod now holds the gateway's MAC in its neighbour table
    bridge = host_link(cni.bridge)["mac"]
    assert bridge == bridge_mac(GATEWAY)
    lowest = min(pods, key=lambda pod: host_link(attachment_veth(pod, "eth0"))["mac"])
    assert cni.call("DEL", ns_path(lowest), cid=lowest) == (0, None)
    assert host_link(cni.bridge)["mac"] == bridge
    for pod in pods:
        if pod != lowest:
            # No time for a neighbour entry to expire: three pings 50 ms apart, each answered within 1 s.
            out = in_ns(pod, "ping", "-c3", "-i0.05", "-W1", GATEWAY)
            assert out.returncode == 0 and " 0% packet loss" in out.stdout, out.stdout


def test_gc_and_status(cni, named_ns):
    cni.conf["ipam"]["subnet"] = "10.251.0.0/29"  # 5 addresses
    pods = [named_ns("p%d" % i) for i in range(2)]
    for pod in pods:
        assert cni.call("ADD", ns_path(pod), cid=pod)[0] == 0
    assert cni.call("STATUS") == (0, None)
    keep = [{"containerID": pods[0], "ifname": "eth0"}]
    assert cni.call("GC", conf=dict(cni.conf, **{"cni.dev/valid-attachments": keep})) == (0, None)
    assert [o["containerID"] for o in cni.reserved().values()] == [pods[0]]
    assert host_link(attachment_veth(pods[1], "eth0")) is None
    assert "eth0" not in ns_links(pods[1])
    assert pings(pods[0], GATEWAY)
    # Fill the pool: STATUS reports that no address is left.
    more = [named_ns("q%d" % i) for i in range(4)]
    for pod in more:
        assert cni.call("ADD", ns_path(pod), cid=pod)[0] == 0
    code, out = cni.call("STATUS")
    assert (code, out["code"]) == (1, protocol.ERR_NOT_AVAILABLE)
    assert "no free address in 10.251.0.0/29" in out["msg"]
    code, out = cni.call("ADD", ns_path(pods[1]), cid=pods[1])
    assert (code, out["code"]) == (1, protocol.ERR_NO_ADDRESS)
    assert "eth0" not in ns_links(pods[1])
    assert cni.call("GC", conf=dict(cni.conf, **{"cni.dev/valid-attachments": []})) == (0, None)
    assert cni.reserved() == {}
    assert cni.call("STATUS") == (0, None)


# ------------------------------------------------- ownership and safety
def test_repeat_add_in_another_namespace_is_refused_and_the_first_keeps_working(cni, named_ns):
    first, second = named_ns("p1"), named_ns("p2")
    code, result = cni.call("ADD", ns_path(first))
    assert code == 0, result
    owners = cni.reserved()
    veth = host_link(attachment_veth("c1", "eth0"))
    code, out = cni.call("ADD", ns_path(second))
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT), out
    assert "already has interface eth0 with address %s in the network namespace %s" % (
        result["ips"][0]["address"].split("/")[0], ns_path(first)) in out["msg"]
    # The runtime cleans up after the refused ADD: that DEL is not the owner's.
    assert cni.call("DEL", ns_path(second)) == (0, None)
    assert cni.reserved() == owners
    assert host_link(attachment_veth("c1", "eth0"))["ifindex"] == veth["ifindex"]
    assert set(ns_links(second)) == {"lo"}
    assert pings(first, GATEWAY)
    assert cni.call("DEL", ns_path(first)) == (0, None)
    assert cni.reserved() == {} and host_link(attachment_veth("c1", "eth0")) is None


def test_bridge_with_the_gateway_at_another_prefix_length_is_refused(cni, named_ns):
    pod = named_ns("p")
    subprocess.run(["ip", "link", "add", cni.bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", GATEWAY + "/16", "dev", cni.bridge], check=True)
    code, out = cni.call("ADD", ns_path(pod))
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT), out
    assert "bridge %s holds the gateway %s as %s/16, not with the prefix length /24" % (
        cni.bridge, GATEWAY, GATEWAY) in out["msg"]
    with netlink.Session() as session:
        assert session.ns(None).links(with_addresses=[cni.bridge])[cni.bridge]["addresses"] == [GATEWAY + "/16"]
    assert set(ns_links(pod)) == {"lo"} and cni.reserved() == {}
    assert host_link(attachment_veth("c1", "eth0")) is None


# Imports the plugin first, then waits until all its siblings are ready too: the ADDs reach the kernel together.
LAUNCHER = """
import os, sys, time
ready, count = sys.argv[1], int(sys.argv[2])
sys.argv = sys.argv[3:]
sys.path.insert(0, sys.argv[0])
from ansible_collections.podnet.mesh.plugins.module_utils.cni import main, plugin
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import lite
lite.Session().ns(None).links(only=["lo"])
open(os.path.join(ready, str(os.getpid())), "w").close()
deadline = time.monotonic() + 60
while len(os.listdir(ready)) < count and time.monotonic() < deadline:
    time.sleep(0.001)
sys.exit(main.main())
"""


@pytest.mark.parametrize("round_no", range(3))
def test_first_adds_of_networks_sharing_a_bridge_at_once(plugin, prefix, named_ns, host_links, tmp_path, round_no):
    """Each network has its own lock; the bridge is everybody's: EEXIST from a concurrent creator is fine."""
    bridge = prefix + "b"
    host_links.append(bridge)
    count = 4 + 2 * round_no
    nets = []
    for index in range(count):
        net = Cni(plugin, "%sn%d" % (prefix, index), str(tmp_path / "ipam"), subnet="10.250.%d.0/24" % index)
        net.conf["bridge"] = bridge
        nets.append(net)
    pods = [named_ns("p%d" % index) for index in range(count)]
    ready = tmp_path / "ready"
    ready.mkdir()
    argv = [sys.executable, "-c", LAUNCHER, str(ready), str(count), plugin]
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda i: nets[i].call("ADD", ns_path(pods[i]), cid=pods[i], argv=argv),
                                range(count)))
    assert [out for code, out in results if code] == []
    with netlink.Session() as session:
        held = session.ns(None).links(with_addresses=[bridge])[bridge]["addresses"]
    assert sorted(held) == sorted("10.250.%d.1/24" % index for index in range(count))
    assert [pod for index, pod in enumerate(pods) if not pings(pod, "10.250.%d.1" % index)] == []


def test_state_is_private_whatever_the_umask(cni, named_ns, tmp_path):
    pod = named_ns("p")
    cni.conf["ipam"]["dataDir"] = str(tmp_path / "var" / "lib" / "podnet")
    cni.store = ipam.Store(cni.conf["ipam"]["dataDir"], cni.conf["name"])
    assert cni.call("ADD", ns_path(pod), umask=0)[0] == 0

    def mode(path):
        return stat.S_IMODE(os.lstat(str(path)).st_mode)

    assert [mode(tmp_path / "var"), mode(tmp_path / "var" / "lib")] == [0o755, 0o755]
    assert [mode(tmp_path / "var" / "lib" / "podnet"), mode(cni.store.dir)] == [0o700, 0o700]
    assert set(mode(os.path.join(cni.store.dir, name)) for name in os.listdir(cni.store.dir)) == {0o600}
    assert cni.call("DEL", ns_path(pod), umask=0) == (0, None)


def test_a_state_directory_that_is_a_link_is_refused(cni, named_ns, tmp_path):
    pod = named_ns("p")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.makedirs(os.path.dirname(cni.store.dir), 0o700)
    os.symlink(str(elsewhere), cni.store.dir)
    code, out = cni.call("ADD", ns_path(pod))
    assert (code, out["code"]) == (1, protocol.ERR_IO), out
    assert "the IPAM state directory %s is a symbolic link" % cni.store.dir in out["msg"]
    assert os.listdir(str(elsewhere)) == [] and set(ns_links(pod)) == {"lo"}
    code, out = cni.call("STATUS")
    assert (code, out["code"]) == (1, protocol.ERR_NOT_AVAILABLE)


# -------------------------------------------------------------- bad input
def _conf_with(cni, **changes):
    conf = json.loads(json.dumps(cni.conf))
    for key, value in changes.items():
        if key == "subnet":
            conf["ipam"]["subnet"] = value
        elif value is None:
            del conf[key]
        else:
            conf[key] = value
    return json.dumps(conf)


@pytest.mark.parametrize("case, code, message", [
    ("invalid json", 6, "cannot decode the network configuration"),
    ("missing name", 7, "name must be a network name"),
    ("missing ipam", 7, "ipam is required"),
    ("unknown version", 1, "cniVersion '9.9.9' is not supported"),
    ("bad cidr", 7, "ipam.subnet: '10.251.0.0/33' is not a valid network"),
    ("missing CNI_IFNAME", 4, "CNI_IFNAME is missing"),
    ("missing CNI_CONTAINERID and CNI_PATH", 4, "CNI_CONTAINERID is missing; CNI_PATH is missing"),
    ("missing namespace", 3, "does not exist"),
])
def test_bad_input_is_refused_with_the_spec_code_and_changes_nothing(cni, named_ns, case, code, message):
    pod = named_ns("p")
    kwargs = {"netns": ns_path(pod)}
    if case == "invalid json":
        kwargs["raw"] = '{"cniVersion": "1.1.0", "name": '
    elif case == "missing name":
        kwargs["raw"] = _conf_with(cni, name=None)
    elif case == "missing ipam":
        kwargs["raw"] = _conf_with(cni, ipam=None)
    elif case == "unknown version":
        kwargs["raw"] = _conf_with(cni, cniVersion="9.9.9")
    elif case == "bad cidr":
        kwargs["raw"] = _conf_with(cni, subnet="10.251.0.0/33")
    elif case == "missing CNI_IFNAME":
        kwargs["drop"] = ("CNI_IFNAME",)
    elif case == "missing CNI_CONTAINERID and CNI_PATH":
        kwargs["drop"] = ("CNI_CONTAINERID", "CNI_PATH")
    elif case == "missing namespace":
        kwargs["netns"] = ns_path(pod + "gone")
    rc, out = cni.call("ADD", **kwargs)
    assert (rc, out["code"]) == (1, code), out
    assert message in out["msg"]
    assert host_link(cni.bridge) is None
    assert set(ns_links(pod)) == {"lo"}
    assert not os.path.exists(cni.store.dir)


# ---------------------------------------------------------- node's Python
def test_plugin_file_runs_under_the_nodes_python(cni, named_ns):
    """The file itself: its shebang names /usr/bin/python3 (Debian's pyroute2)."""
    pod = named_ns("p")
    cni.conf["cniVersion"] = "1.0.0"
    code, result = cni.call("ADD", ns_path(pod), python=None)
    assert code == 0, result
    assert pings(pod, GATEWAY)
    assert cni.call("CHECK", ns_path(pod), conf=dict(cni.conf, prevResult=result), python=None) == (0, None)
    assert cni.call("DEL", ns_path(pod), python=None) == (0, None)
    assert cni.reserved() == {}


# ------------------------------------------------------------ dual-stack
SUBNET6 = "fd00:251::/64"
GATEWAY6 = "fd00:251::1"
IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40


def dual_stack(cni, *sets):
    """cni's network with one range set per family (host-local's ranges), IPv4 first unless sets say otherwise."""
    sets = sets or ([{"subnet": SUBNET}], [{"subnet": SUBNET6}])
    cni.conf["ipam"] = {"ranges": list(sets), "dataDir": cni.conf["ipam"]["dataDir"]}
    return cni


def pings6(name, address):
    return in_ns(name, "ping", "-6", "-c1", "-W2", address).returncode == 0


def addresses_with_flags(pod):
    """(CIDR, flags) of every global address on the pod's eth0, read by pyroute2."""
    from pyroute2 import NetNS
    with NetNS(pod, flags=0) as ns:
        index = ns.link_lookup(ifname="eth0")
        if not index:
            return []
        return sorted(("%s/%d" % (m.get_attr("IFA_ADDRESS"), m["prefixlen"]), m.get_attr("IFA_FLAGS") or m["flags"])
                      for m in ns.get_addr(index=index[0]) if m["scope"] == 0)


def all_default_routes(pod):
    """Every default route of the namespace as (family, device, metric, gateway, protocol), sorted."""
    with netlink.Session() as session:
        ns = session.ns(ns_path(pod))
        routes = ns.routes(254, links=ns.links())
    return sorted((r["family"], r["dev"], r["metric"], r["via"], r["proto"]) for r in routes if r["dst"] == "default")


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_dual_stack_add_check_del(cni, named_ns, version):
    dual_stack(cni)
    cni.conf["cniVersion"] = version
    pods = [named_ns("p1"), named_ns("p2")]
    results = []
    for pod in pods:
        code, result = cni.call("ADD", ns_path(pod), cid=pod)
        assert code == 0, result
        results.append(result)
        # Right after ADD: the container reaches the IPv6 gateway (no DAD wait on either side).
        assert pings6(pod, GATEWAY6), "no IPv6 gateway right after ADD"
    first = results[0]
    assert [(ip["address"], ip["gateway"], ip["interface"]) for ip in first["ips"]] == [
        ("10.251.0.2/24", GATEWAY, 2), ("fd00:251::2/64", GATEWAY6, 2)]
    assert [ip.get("version") for ip in first["ips"]] == (["4", "6"] if version == "0.4.0" else [None, None])
    v6_route = dict({"dst": "::/0", "gw": GATEWAY6}, **({"priority": 1024} if version == "1.1.0" else {}))
    assert first["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY}, v6_route]
    # Both addresses on the container's interface, the IPv6 one without DAD: never tentative.
    assert addresses_with_flags(pods[0]) == [("10.251.0.2/24", 0x80), ("fd00:251::2/64", 0x80 | IFA_F_NODAD)]
    assert not any(flags & IFA_F_TENTATIVE for _a, flags in addresses_with_flags(pods[1]))
    assert all_default_routes(pods[0]) == [(4, "eth0", 0, GATEWAY, 149), (6, "eth0", 1024, GATEWAY6, 149)]
    bridge = host_link(cni.bridge)
    assert bridge["mac"] == bridge_mac(GATEWAY)
    with netlink.Session() as session:
        held = session.ns(None).links(with_addresses=[cni.bridge])[cni.bridge]["addresses"]
    assert sorted(held) == ["10.251.0.1/24", "fd00:251::1/64"]
    # Container to container over IPv6, and IPv4 still.
    assert pings6(pods[0], "fd00:251::3") and pings6(pods[1], "fd00:251::2")
    assert pings(pods[0], "10.251.0.3")
    for pod, result in zip(pods, results):
        assert cni.call("CHECK", ns_path(pod), cid=pod, conf=dict(cni.conf, prevResult=result)) == (0, None)
    assert sorted(cni.reserved()) == ["10.251.0.2", "10.251.0.3", "fd00:251::2", "fd00:251::3"]
    for pod in pods:
        assert cni.call("DEL", ns_path(pod), cid=pod) == (0, None)
        assert cni.call("DEL", ns_path(pod), cid=pod) == (0, None)
        assert "eth0" not in ns_links(pod) and host_link(attachment_veth(pod, "eth0")) is None
        assert all_default_routes(pod) == []
    assert cni.reserved() == {}


def test_dual_stack_check_finds_a_missing_ipv6_route(cni, named_ns):
    dual_stack(cni)
    pod = named_ns("p")
    code, result = cni.call("ADD", ns_path(pod))
    assert code == 0, result
    from pyroute2 import NetNS
    with NetNS(pod, flags=0) as ns:
        ns.route("del", dst="::/0", gateway=GATEWAY6, oif=ns.link_lookup(ifname="eth0")[0], proto=149,
                 priority=1024, family=socket.AF_INET6)
    code, out = cni.call("CHECK", ns_path(pod), conf=dict(cni.conf, prevResult=result))
    assert (code, out["code"]) == (1, protocol.ERR_CHECK)
    assert "route ::/0 via %s of prevResult is missing" % GATEWAY6 in out["msg"]
    assert cni.call("DEL", ns_path(pod)) == (0, None)
    assert cni.reserved() == {}


def test_dual_stack_gc_releases_every_family_of_what_is_not_valid(cni, named_ns):
    dual_stack(cni)
    pods = [named_ns("p%d" % i) for i in range(3)]
    for pod in pods:
        assert cni.call("ADD", ns_path(pod), cid=pod)[0] == 0
    assert cni.call("STATUS") == (0, None)
    keep = [{"containerID": pods[1], "ifname": "eth0"}]
    assert cni.call("GC", conf=dict(cni.conf, **{"cni.dev/valid-attachments": keep})) == (0, None)
    assert dict((ip, owner["containerID"]) for ip, owner in cni.reserved().items()) == {
        "10.251.0.3": pods[1], "fd00:251::3": pods[1]}
    for pod in (pods[0], pods[2]):
        assert host_link(attachment_veth(pod, "eth0")) is None and "eth0" not in ns_links(pod)
    assert pings6(pods[1], GATEWAY6) and pings(pods[1], GATEWAY)
    assert cni.call("GC", conf=dict(cni.conf, **{"cni.dev/valid-attachments": []})) == (0, None)
    assert cni.reserved() == {}


def test_dual_stack_exhausted_ipv6_range_leaves_nothing_behind(cni, named_ns):
    dual_stack(cni, [{"subnet": SUBNET}], [{"subnet": SUBNET6, "rangeStart": "fd00:251::a", "rangeEnd": "fd00:251::a"}])
    first, second = named_ns("p1"), named_ns("p2")
    assert cni.call("ADD", ns_path(first), cid=first)[0] == 0
    code, out = cni.call("ADD", ns_path(second), cid=second)
    assert (code, out["code"]) == (1, protocol.ERR_NO_ADDRESS)
    assert "no free address in fd00:251::/64 (fd00:251::a-fd00:251::a)" in out["msg"]
    assert sorted(cni.reserved()) == ["10.251.0.2", "fd00:251::a"]
    assert "eth0" not in ns_links(second) and host_link(attachment_veth(second, "eth0")) is None
    code, out = cni.call("STATUS")
    assert (code, out["code"]) == (1, protocol.ERR_NOT_AVAILABLE)
    assert cni.call("DEL", ns_path(second), cid=second) == (0, None)
    assert cni.call("DEL", ns_path(first), cid=first) == (0, None)
    assert cni.reserved() == {}


def test_ipv6_only_network(cni, named_ns):
    cni.conf["ipam"]["subnet"] = SUBNET6
    cni.conf["clusterCIDR"] = "fd00:251::/56"
    pods = [named_ns("p1"), named_ns("p2")]
    results = []
    for pod in pods:
        code, result = cni.call("ADD", ns_path(pod), cid=pod)
        assert code == 0, result
        results.append(result)
        assert pings6(pod, GATEWAY6)
    assert results[0]["ips"] == [{"address": "fd00:251::2/64", "gateway": GATEWAY6, "interface": 2}]
    assert results[0]["routes"] == [{"dst": "::/0", "gw": GATEWAY6, "priority": 1024}]
    assert addresses_with_flags(pods[0]) == [("fd00:251::2/64", 0x80 | IFA_F_NODAD)]
    assert all_default_routes(pods[0]) == [(6, "eth0", 1024, GATEWAY6, 149)]
    assert pings6(pods[0], "fd00:251::3")
    for pod, result in zip(pods, results):
        assert cni.call("CHECK", ns_path(pod), cid=pod, conf=dict(cni.conf, prevResult=result)) == (0, None)
        assert cni.call("DEL", ns_path(pod), cid=pod) == (0, None)
        assert "eth0" not in ns_links(pod) and all_default_routes(pod) == []
    assert cni.reserved() == {}
