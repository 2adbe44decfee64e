# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""podnet.mesh.masquerade against the real kernel, nft and iptables (nft and legacy), IPv4 and IPv6.

The test's own (private) network namespace is the node:

    pod ns  10.244.1.2/24 --veth-- [bridge 10.244.1.1/24]  node
    node    192.168.77.1/24 --veth-- 192.168.77.2/24  peer ns (pod 10.244.2.2 on lo,
                                                       route 10.244.1.0/24 via the node)
    node    203.0.113.1/24  --veth-- 203.0.113.10/24  external ns (no route to 10.244/16)

and the same in IPv6 on the same links: pod fd00:10:244:1::2/64 (bridge fd00:10:244:1::1),
peer fd00:77::2/64 with its pod fd00:10:244:2::2 on lo, external 2001:db8:113::10/64 (node
2001:db8:113::1) with no route to fd00::/8. IPv6 addresses skip duplicate address detection.

The module runs in this process (its real AnsibleModule and Runner), so its
nft/iptables commands act on the node. Topology changes go through the
netlink layer and pyroute2; listeners and clients run in the other
namespaces with nsenter. Every netfilter object a test makes is removed after
it, and the node's ruleset, ip_forward and legacy tables are put back.
"""
from __future__ import annotations

import select
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Action
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import nat as _nat
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import nat as nat_tools
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns
from ansible_collections.podnet.mesh.plugins.modules import masquerade
from ansible_collections.podnet.mesh.tests.helpers.module_runner import run_main, stub_exits
from ansible_collections.podnet.mesh.tests.helpers.runs import once_per_kernel_run

# The NAT tools (nft, iptables) and the masquerade module: nothing here uses the controller's pyroute2
# beyond setting up the namespaces.
pytestmark = once_per_kernel_run


POD_IP = "10.244.1.2"
PEER_POD_IP = "10.244.2.2"
EXTERNAL_IP = "203.0.113.10"
NODE_EXTERNAL_IP = "203.0.113.1"
PORT = 8080
ARGS = {"source": ["10.244.1.0/24"], "exempt": ["10.244.0.0/16"]}
POD_IP6 = "fd00:10:244:1::2"
PEER_POD_IP6 = "fd00:10:244:2::2"
EXTERNAL_IP6 = "2001:db8:113::10"
NODE_EXTERNAL_IP6 = "2001:db8:113::1"
DUAL = {"source": ["10.244.1.0/24", "fd00:10:244:1::/64"], "exempt": ["10.244.0.0/16", "fd00:10:244::/56"]}

# (backend option, iptables variant): the iptables backend is run once with
# whatever iptables-save/-restore are (iptables-nft here) and once with the
# legacy tools put in their place.
BACKENDS = [
    pytest.param("nftables", None, id="nftables"),
    pytest.param("iptables", "nft", id="iptables-nft"),
    pytest.param("iptables", "legacy", id="iptables-legacy"),
]


def _sh(*argv, data=None, check=True):
    proc = subprocess.run(argv, input=data, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(argv), proc.stderr))
    return proc.stdout


def _tool(variant, name):
    """iptables or ip6tables tool of one variant (nft or legacy), e.g. ip6tables-legacy-save."""
    if name in ("iptables", "ip6tables"):
        return "%s-%s" % (name, variant)
    return name.replace("iptables", "iptables-%s" % variant)


# ------------------------------------------------------------ module runner


@pytest.fixture
def masq(monkeypatch):
    """Run the module in this process: masq(args, variant=None) -> (kind, result)."""

    warnings = stub_exits(monkeypatch)
    which = nat_tools.Runner.which

    def _run(args, variant=None):
        if variant == "legacy":
            monkeypatch.setattr(nat_tools.Runner, "which",
                                lambda self, name: which(self, _tool("legacy", name)
                                                         if "iptables" in name else name))
        else:
            monkeypatch.setattr(nat_tools.Runner, "which", which)
        del warnings[:]
        kind, result = run_main(masquerade.main, args)
        return kind, dict(result, warnings=list(warnings))
    return _run


# ----------------------------------------------------------- netfilter state
# Legacy tables of each tool: which exist (/proc) and the tool that reads them.
LEGACY = (("iptables", _nat.LEGACY_TABLES_PATH), ("ip6tables", _nat.LEGACY6_TABLES_PATH))


def _legacy_tables(path=_nat.LEGACY_TABLES_PATH):
    try:
        with open(path) as handle:
            return set(handle.read().split())
    except FileNotFoundError:
        return set()


def _read(path):
    with open(path) as handle:
        return handle.read()


@pytest.fixture(autouse=True)
def netfilter_restored():
    """Put the node's nft ruleset, legacy tables (IPv4 and IPv6) and forwarding back as they were."""
    ruleset = _sh("nft", "list", "ruleset")
    legacy = dict(((tool, table), _sh(tool + "-legacy-save", "-t", table))
                  for tool, path in LEGACY for table in _legacy_tables(path))
    forwarding = dict((path, _read(path)) for path in (_nat.IP_FORWARD_PATH, _nat.IP6_FORWARD_PATH))
    yield
    _sh("nft", "flush", "ruleset")
    if ruleset.strip():
        _sh("nft", "-f", "-", data=ruleset)
    for tool, path in LEGACY:
        for table in _legacy_tables(path):
            if (tool, table) in legacy:
                # Without --noflush, restore replaces the whole table.
                _sh(tool + "-legacy-restore", data=legacy[(tool, table)])
            else:
                # Legacy tables cannot be removed; empty them and reset the policies.
                _sh(tool + "-legacy", "-t", table, "-F")
                _sh(tool + "-legacy", "-t", table, "-X")
                for chain in ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"):
                    _sh(tool + "-legacy", "-t", table, "-P", chain, "ACCEPT", check=False)
    for path, value in forwarding.items():
        with open(path, "w") as handle:
            handle.write(value)


def set_ip_forward(value, path=_nat.IP_FORWARD_PATH):
    with open(path, "w") as handle:
        handle.write("%d\n" % value)


def our_rules_in_kernel(backend, variant, family=4):
    """Our rules of one family as the tools print them, independent of the module's parser."""
    if backend == "nftables":
        text = _sh("nft", "list", "table", "ip" if family == 4 else "ip6", "podnet", check=False)
        return [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith(("table", "chain", "type", "}"))]
    lines = []
    for table in ("nat", "filter"):
        text = _sh(_tool(variant, "iptables-save" if family == 4 else "ip6tables-save"), "-t", table)
        lines += [line for line in text.splitlines() if "PODNET-" in line]
    return lines


# ----------------------------------------------------------------- topology
def _run_in(ns, *argv, **kw):
    return subprocess.run(["nsenter", "--net=" + netns.netns_path(ns)] + list(argv),
                          capture_output=True, text=True, check=False, **kw)


class Listener:
    """A TCP server in a namespace that prints the address of every client (IPv4 or IPv6 only)."""

    CODE = (
        "import socket, sys\n"
        "v6 = sys.argv[1] == '6'\n"
        "s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "if v6:\n"
        "    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n"
        "s.bind(('::' if v6 else '0.0.0.0', %d))\n"
        "s.listen(16)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    c, addr = s.accept()\n"
        "    print(addr[0], flush=True)\n"
        "    c.close()\n" % PORT)

    def __init__(self, ns, family=4):
        self.proc = subprocess.Popen(
            ["nsenter", "--net=" + netns.netns_path(ns), sys.executable, "-c", self.CODE, str(family)],
            stdout=subprocess.PIPE, text=True)
        assert self.next_line(5) == "ready"

    def next_line(self, timeout=2.0):
        ready, _w, _x = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else None

    def close(self):
        self.proc.kill()
        self.proc.wait()


CLIENT = ("import socket, sys\n"
          "try:\n"
          "    socket.create_connection((sys.argv[1], %d), timeout=1.5).close()\n"
          "except OSError as exc:\n"
          "    sys.exit(str(exc))\n" % PORT)


class Topology:
    def __init__(self, pod, peer, external, listeners):
        self.pod, self.peer, self.external = pod, peer, external
        self.listeners = listeners

    def tcp(self, dst):
        """Connect from the pod to dst; return the source address dst saw, or None."""
        listener = self.listeners[dst]
        while listener.next_line(0) is not None:
            pass
        proc = _run_in(self.pod, sys.executable, "-c", CLIENT, dst)
        if proc.returncode != 0:
            return None
        return listener.next_line()

    def ping(self, dst):
        return _run_in(self.pod, "ping", "-n", "-c", "1", "-W", "1", dst).returncode == 0


def _no_dad(ns=None):
    """IPv6 addresses of new links in ns (None: this namespace) usable at once: no duplicate address detection."""
    keys = ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
    if ns is None:
        _sh("sysctl", "-q", "-w", *keys)
    else:
        proc = _run_in(ns, "sysctl", "-q", "-w", *keys)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def topology(prefix, named_ns, host_links):
    pod, peer, external = named_ns("pod"), named_ns("peer"), named_ns("ext")
    for ns in (None, pod, peer, external):
        _no_dad(ns)
    bridge, to_pod, to_peer, to_ext = (prefix + s for s in ("br", "p", "n", "x"))
    host_links.extend([bridge, to_pod, to_peer, to_ext])
    actions = [
        Action("bridge_add", None, bridge, {}),
        Action("addr_add", None, bridge, {"address": "10.244.1.1/24"}),
        Action("link_set", None, bridge, {"up": True}),
        Action("veth_add", None, to_pod, {"peer": "eth0", "peer_ns": pod}),
        Action("link_set", None, to_pod, {"master": bridge}),
        Action("link_set", None, to_pod, {"up": True}),
        Action("addr_add", pod, "eth0", {"address": POD_IP + "/24"}),
        Action("link_set", pod, "eth0", {"up": True}),
        Action("link_set", pod, "lo", {"up": True}),
        Action("veth_add", None, to_peer, {"peer": "eth0", "peer_ns": peer}),
        Action("addr_add", None, to_peer, {"address": "192.168.77.1/24"}),
        Action("link_set", None, to_peer, {"up": True}),
        Action("addr_add", peer, "eth0", {"address": "192.168.77.2/24"}),
        Action("link_set", peer, "eth0", {"up": True}),
        Action("addr_add", peer, "lo", {"address": PEER_POD_IP + "/32"}),
        Action("link_set", peer, "lo", {"up": True}),
        Action("veth_add", None, to_ext, {"peer": "eth0", "peer_ns": external}),
        Action("addr_add", None, to_ext, {"address": NODE_EXTERNAL_IP + "/24"}),
        Action("link_set", None, to_ext, {"up": True}),
        Action("addr_add", external, "eth0", {"address": EXTERNAL_IP + "/24"}),
        Action("link_set", external, "eth0", {"up": True}),
        Action("link_set", external, "lo", {"up": True}),
    ]
    # The same links in IPv6 (nodad: usable at once).
    actions += [Action("addr_add", ns, name, {"address": address, "nodad": True}) for ns, name, address in (
        (None, bridge, "fd00:10:244:1::1/64"),
        (pod, "eth0", POD_IP6 + "/64"),
        (None, to_peer, "fd00:77::1/64"),
        (peer, "eth0", "fd00:77::2/64"),
        (peer, "lo", PEER_POD_IP6 + "/128"),
        (None, to_ext, NODE_EXTERNAL_IP6 + "/64"),
        (external, "eth0", EXTERNAL_IP6 + "/64"),
    )]
    with _netlink.Session() as session:
        session.apply(actions)
        routes = [
            (pod, {"gateway": "10.244.1.1"}),
            (None, {"dst": "10.244.2.0", "dst_len": 24, "gateway": "192.168.77.2"}),
            (peer, {"dst": "10.244.1.0", "dst_len": 24, "gateway": "192.168.77.1"}),
            (pod, {"dst": "::", "dst_len": 0, "gateway": "fd00:10:244:1::1", "family": socket.AF_INET6}),
            (None, {"dst": "fd00:10:244:2::", "dst_len": 64, "gateway": "fd00:77::2", "family": socket.AF_INET6}),
            (peer, {"dst": "fd00:10:244:1::", "dst_len": 64, "gateway": "fd00:77::1", "family": socket.AF_INET6}),
        ]
        for ns, route in routes:
            handle = session.ns(ns)
            handle.call("add route", handle.ipr.route, "add", **route)
    # Forwarding on, so that only NAT decides whether the external host answers.
    set_ip_forward(1)
    set_ip_forward(1, _nat.IP6_FORWARD_PATH)
    listeners = {}
    try:
        for dst, ns, family in ((PEER_POD_IP, peer, 4), (EXTERNAL_IP, external, 4),
                                (PEER_POD_IP6, peer, 6), (EXTERNAL_IP6, external, 6)):
            listeners[dst] = Listener(ns, family)
        yield Topology(pod, peer, external, listeners)
    finally:
        for listener in listeners.values():
            listener.close()


# -------------------------------------------------------------------- tests
def test_tools_are_installed():
    for tool in ("nft", "iptables-nft-save", "iptables-nft-restore",
                 "iptables-legacy-save", "iptables-legacy-restore", "nsenter"):
        assert _sh("sh", "-c", "command -v %s" % tool).strip(), tool


@pytest.mark.parametrize("backend, variant", BACKENDS)
def test_masquerade_only_for_traffic_leaving_the_cluster(masq, topology, backend, variant):
    # Before: the pod reaches the peer pod, not the external host (no route back).
    assert topology.tcp(PEER_POD_IP) == POD_IP
    assert topology.tcp(EXTERNAL_IP) is None
    assert not topology.ping(EXTERNAL_IP)

    kind, result = masq(dict(ARGS, backend=backend), variant)
    assert kind == "exit", result
    assert result["changed"] and result["backend"] == backend
    assert result["warnings"] == []
    # Masqueraded to the node's address towards the external host ...
    assert topology.tcp(EXTERNAL_IP) == NODE_EXTERNAL_IP
    assert topology.ping(EXTERNAL_IP)
    # ... never inside the cluster: the peer sees the pod's own address.
    assert topology.tcp(PEER_POD_IP) == POD_IP

    kind, result = masq(dict(ARGS, state="absent"), variant)
    assert kind == "exit" and result["changed"] and result["rules"] == []
    assert our_rules_in_kernel(backend, variant) == []
    assert topology.tcp(EXTERNAL_IP) is None
    assert topology.tcp(PEER_POD_IP) == POD_IP


@pytest.mark.parametrize("backend, variant", BACKENDS)
def test_out_interface_limits_masquerade(masq, topology, prefix, backend, variant):
    kind, result = masq(dict(ARGS, backend=backend, out_interface=prefix + "n"), variant)
    assert kind == "exit", result
    # Leaving through the peer link only: the external host gets the pod address.
    assert topology.tcp(EXTERNAL_IP) is None
    kind, result = masq(dict(ARGS, backend=backend, out_interface=prefix + "x"), variant)
    assert result["changed"]
    assert topology.tcp(EXTERNAL_IP) == NODE_EXTERNAL_IP


@pytest.mark.parametrize("backend, variant", BACKENDS)
def test_idempotent_and_never_duplicated(masq, backend, variant):
    set_ip_forward(0)
    args = dict(ARGS, backend=backend)
    kind, first = masq(args, variant)
    assert kind == "exit", first
    assert first["changed"]
    assert first["actions"][-1] == "set net.ipv4.ip_forward = 1"
    with open(_nat.IP_FORWARD_PATH) as handle:
        assert handle.read().strip() == "1"
    in_kernel = our_rules_in_kernel(backend, variant)
    # nftables: 2 NAT and 2 forward rules; iptables: 2 chains, 2 jumps and 4 rules.
    assert len(in_kernel) == (4 if backend == "nftables" else 8)
    for _run in range(2):
        kind, again = masq(dict(args, _ansible_diff=True), variant)
        assert kind == "exit" and not again["changed"], again
        assert again["actions"] == []
        assert again["rules"] == first["rules"]
        assert again["diff"]["before"] == again["diff"]["after"]
        assert our_rules_in_kernel(backend, variant) == in_kernel
    # A change replaces the rules, it does not add to them.
    kind, changed = masq(dict(args, exempt=["10.244.0.0/16", "10.96.0.0/12"]), variant)
    assert changed["changed"]
    assert len(our_rules_in_kernel(backend, variant)) == len(in_kernel) + 1


@pytest.mark.parametrize("backend, variant", BACKENDS)
def test_check_mode_changes_nothing(masq, backend, variant):
    before = _sh("nft", "list", "ruleset")
    legacy = _legacy_tables()
    kind, result = masq(dict(ARGS, backend=backend, _ansible_check_mode=True, _ansible_diff=True),
                        variant)
    assert kind == "exit" and result["changed"]
    assert result["diff"]["before"]["rules"] == []
    assert result["diff"]["after"]["rules"] == result["rules"] != []
    assert _sh("nft", "list", "ruleset") == before
    assert _legacy_tables() == legacy


def _foreign_state(variant):
    nat = _sh(_tool(variant, "iptables-save"), "-t", "nat")
    filt = _sh(_tool(variant, "iptables-save"), "-t", "filter")
    rules = [line for line in (nat + filt).splitlines()
             if line.startswith("-A") and "PODNET-" not in line]
    return _sh("nft", "list", "table", "ip", "other"), rules


@pytest.mark.parametrize("backend, variant", BACKENDS)
def test_others_rules_are_left_alone(masq, backend, variant):
    _sh("nft", "-f", "-", data=(
        "table ip other {\n"
        "  chain post { type nat hook postrouting priority 100; policy accept;\n"
        "    ip saddr 192.0.2.0/24 oifname \"eth9\" masquerade\n  }\n"
        "  chain forward_in { type filter hook forward priority 0; policy accept;\n"
        "    ip saddr 198.51.100.0/24 counter\n  }\n"
        "}\n"))
    iptables = _tool(variant or "nft", "iptables")
    _sh(iptables, "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "RETURN")
    _sh(iptables, "-t", "nat", "-A", "POSTROUTING", "-d", "192.0.2.0/24", "-j", "RETURN")
    _sh(iptables, "-t", "filter", "-A", "FORWARD", "-s", "198.51.100.0/24", "-j", "ACCEPT")
    foreign = _foreign_state(variant or "nft")

    for args in (dict(ARGS, backend=backend), dict(ARGS, backend=backend, exempt=[]),
                 dict(ARGS, state="absent")):
        kind, result = masq(args, variant)
        assert kind == "exit" and result["changed"], result
        assert _foreign_state(variant or "nft") == foreign
        if backend == "iptables" and args.get("state") != "absent":
            # Our jump went in at the top; the others kept their order.
            postrouting = [line for line in _sh(_tool(variant, "iptables-save"), "-t", "nat")
                           .splitlines() if line.startswith("-A POSTROUTING")]
            assert postrouting == ["-A POSTROUTING -j PODNET-MASQ",
                                   "-A POSTROUTING -s 192.0.2.0/24 -j RETURN",
                                   "-A POSTROUTING -d 192.0.2.0/24 -j RETURN"]


@pytest.mark.parametrize("variant", ["nft", "legacy"])
def test_forward_drop_is_overridden_by_the_iptables_backend(masq, topology, variant):
    _sh(_tool(variant, "iptables"), "-P", "FORWARD", "DROP")
    assert topology.tcp(PEER_POD_IP) is None
    kind, result = masq(dict(ARGS, backend="iptables", forward=False), variant)
    assert kind == "exit" and result["warnings"] == []
    assert topology.tcp(PEER_POD_IP) is None
    kind, result = masq(dict(ARGS, backend="iptables"), variant)
    assert kind == "exit" and result["warnings"] == []
    assert topology.tcp(PEER_POD_IP) == POD_IP
    assert topology.tcp(EXTERNAL_IP) == NODE_EXTERNAL_IP


@pytest.mark.parametrize("variant", ["nft", "legacy"])
def test_forward_drop_is_reported_with_nftables(masq, topology, variant):
    _sh(_tool(variant, "iptables"), "-P", "FORWARD", "DROP")
    kind, result = masq(dict(ARGS, backend="nftables"), variant)
    assert kind == "exit", result
    assert len(result["warnings"]) == 1, result["warnings"]
    assert result["warnings"][0].startswith("forward: the iptables FORWARD chain")
    assert "backend=iptables" in result["warnings"][0]
    # An accept in our table does not override the drop elsewhere: the warning is right.
    assert topology.tcp(PEER_POD_IP) is None


def test_forward_drop_in_another_nft_table_is_reported(masq, topology):
    _sh("nft", "-f", "-", data=(
        "table inet guard {\n"
        "  chain forward_in { type filter hook forward priority 10; policy accept;\n"
        "    counter reject\n  }\n"
        "}\n"))
    for backend in ("nftables", "iptables"):
        kind, result = masq(dict(ARGS, backend=backend))
        assert kind == "exit", result
        assert [w.split(" hooks")[0] for w in result["warnings"]] == [
            "forward: nftables chain forward_in in table inet guard"]
    kind, result = masq(dict(ARGS, forward=False))
    assert result["warnings"] == []
    assert topology.tcp(PEER_POD_IP) is None


def test_backend_switch_leaves_one_backend(masq):
    kind, result = masq(dict(ARGS, backend="iptables"))
    assert result["changed"]
    kind, result = masq(dict(ARGS, backend="auto"))
    # auto keeps the backend that already holds the rules.
    assert not result["changed"] and result["backend"] == "iptables"
    kind, result = masq(dict(ARGS, backend="nftables"))
    assert result["changed"] and result["backend"] == "nftables"
    assert our_rules_in_kernel("iptables", "nft") == []
    assert len(our_rules_in_kernel("nftables", None)) == 4


def test_bad_input_changes_nothing(masq):
    before = _sh("nft", "list", "ruleset")
    for args, path in [
        (dict(ARGS, source=["10.244.1.0/24", "10.244.1.0/33"]), "source[1]: "),
        (dict(ARGS, exempt=["nope"]), "exempt[0]: "),
        (dict(ARGS, out_interface="no/slash"), "out_interface: "),
    ]:
        kind, result = masq(args)
        assert kind == "fail" and result["msg"].startswith(path), result
        assert result["changed"] is False
    assert _sh("nft", "list", "ruleset") == before


def test_module_call_timing(masq, capsys):
    """Not a limit, a record: one apply and one unchanged run per backend."""
    timings = []
    for backend, variant in (("nftables", None), ("iptables", "nft"), ("iptables", "legacy")):
        for label in ("apply", "unchanged"):
            start = time.monotonic()
            kind, result = masq(dict(ARGS, backend=backend), variant)
            timings.append("%s%s %s %.0f ms" % (backend, "-" + variant if variant else "", label,
                                                (time.monotonic() - start) * 1000))
            assert kind == "exit" and result["changed"] == (label == "apply"), result
        masq(dict(ARGS, state="absent"), variant)
    with capsys.disabled():
        sys.stdout.write("\n" + "; ".join(timings) + "\n")


# --------------------------------------------------------------- dual-stack
@pytest.mark.parametrize("backend, variant", BACKENDS)
def test_dual_stack_masquerade_only_for_traffic_leaving_the_cluster(masq, topology, backend, variant):
    # Before: the pod reaches the peer pod in both families, the external host in neither.
    assert topology.tcp(PEER_POD_IP6) == POD_IP6
    assert topology.tcp(EXTERNAL_IP6) is None
    assert not topology.ping(EXTERNAL_IP6)

    set_ip_forward(0, _nat.IP6_FORWARD_PATH)
    kind, result = masq(dict(DUAL, backend=backend), variant)
    assert kind == "exit", result
    assert result["changed"] and result["backend"] == backend and result["warnings"] == []
    assert result["actions"][-1] == "set net.ipv6.conf.all.forwarding = 1"
    assert result["sysctls"] == {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1}
    assert _read(_nat.IP6_FORWARD_PATH).strip() == "1"
    # The IPv6 rules are in the IPv6 tools' objects, the IPv4 rules where they always were.
    in_kernel6 = our_rules_in_kernel(backend, variant, 6)
    assert any("fd00:10:244:1::/64" in line and "masquerade" in line.lower() for line in in_kernel6), in_kernel6
    assert any("fd00:10:244::/56" in line for line in in_kernel6), in_kernel6
    assert not any("10.244." in line for line in in_kernel6)
    assert not any("fd00:" in line for line in our_rules_in_kernel(backend, variant, 4))
    # Masqueraded to the node's address towards the external host, in both families ...
    assert topology.tcp(EXTERNAL_IP6) == NODE_EXTERNAL_IP6
    assert topology.ping(EXTERNAL_IP6)
    assert topology.tcp(EXTERNAL_IP) == NODE_EXTERNAL_IP
    # ... never inside the cluster: the peer sees the pod's own addresses.
    assert topology.tcp(PEER_POD_IP6) == POD_IP6
    assert topology.tcp(PEER_POD_IP) == POD_IP

    # Back to IPv4 only: the IPv6 rules go, the IPv4 rules stay.
    kind, result = masq(dict(ARGS, backend=backend), variant)
    assert kind == "exit" and result["changed"], result
    assert result["rules_by_family"]["ipv6"] == [] and result["rules_by_family"]["ipv4"]
    assert our_rules_in_kernel(backend, variant, 6) == []
    assert topology.tcp(EXTERNAL_IP6) is None
    assert topology.tcp(EXTERNAL_IP) == NODE_EXTERNAL_IP

    # Absent removes both families (here after going dual-stack again).
    masq(dict(DUAL, backend=backend), variant)
    kind, result = masq(dict(ARGS, state="absent"), variant)
    assert kind == "exit" and result["changed"] and result["rules"] == []
    assert our_rules_in_kernel(backend, variant, 4) == [] == our_rules_in_kernel(backend, variant, 6)
    assert topology.tcp(EXTERNAL_IP6) is None
    assert topology.tcp(PEER_POD_IP6) == POD_IP6


@pytest.mark.parametrize("backend, variant", BACKENDS)
def test_dual_stack_idempotent_with_exact_check_mode_and_diff(masq, backend, variant):
    set_ip_forward(0)
    set_ip_forward(0, _nat.IP6_FORWARD_PATH)
    args = dict(DUAL, backend=backend)
    before = _sh("nft", "list", "ruleset")
    kind, predicted = masq(dict(args, _ansible_check_mode=True, _ansible_diff=True), variant)
    assert kind == "exit" and predicted["changed"], predicted
    assert _sh("nft", "list", "ruleset") == before
    assert _read(_nat.IP6_FORWARD_PATH).strip() == "0"
    assert predicted["diff"]["before"] == {"backend": None, "rules": [], "ip_forward": 0, "ipv6_forwarding": 0}
    kind, first = masq(dict(args, _ansible_diff=True), variant)
    assert kind == "exit" and first["changed"], first
    # Check mode predicted exactly what the run did and returned.
    for key in ("actions", "rules", "rules_by_family", "backend", "sysctls", "diff"):
        assert predicted[key] == first[key], key
    in_kernel = [our_rules_in_kernel(backend, variant, family) for family in (4, 6)]
    assert len(in_kernel[1]) == len(in_kernel[0]) == (4 if backend == "nftables" else 8)
    for _run in range(2):
        kind, again = masq(dict(args, _ansible_diff=True), variant)
        assert kind == "exit" and not again["changed"], again
        assert again["actions"] == [] and again["rules"] == first["rules"]
        assert again["diff"]["before"] == again["diff"]["after"]
        assert [our_rules_in_kernel(backend, variant, family) for family in (4, 6)] == in_kernel
    # Check mode of absent predicts both families' removal and changes nothing.
    kind, gone = masq(dict(args, state="absent", _ansible_check_mode=True), variant)
    assert gone["changed"] and len(gone["actions"]) == (2 if backend == "nftables" else 4)
    assert [our_rules_in_kernel(backend, variant, family) for family in (4, 6)] == in_kernel


def test_ipv6_foreign_masquerade_in_ip6tables_and_nftables(masq, topology):
    # The hand-made IPv6 version of the design's rule, without its exemption.
    _sh("ip6tables-nft", "-t", "nat", "-A", "POSTROUTING", "-s", "fd00:10:244::/56", "-j", "MASQUERADE")
    kind, result = masq(dict(DUAL, backend="nftables"))
    assert kind == "fail" and result["changed"] is False
    assert result["msg"].startswith("source: 'fd00:10:244:1::/64' is masqueraded to the exempt networks")
    assert "ip6tables -t nat -D POSTROUTING -s fd00:10:244::/56 -j MASQUERADE" in result["msg"]
    assert our_rules_in_kernel("nftables", None, 4) == [] == our_rules_in_kernel("nftables", None, 6)
    # It NATs pod-to-pod IPv6 traffic indeed.
    assert topology.tcp(PEER_POD_IP6) == "fd00:77::1"
    # IPv4 only does not look at the IPv6 nat table.
    kind, result = masq(dict(ARGS, backend="nftables"))
    assert kind == "exit", result
    kind, result = masq(dict(DUAL, backend="nftables", foreign="remove"))
    assert kind == "exit" and result["actions"][-1].startswith("delete 1 foreign rule(s) from ip6tables nat POSTROUTING")
    assert "-A POSTROUTING -s fd00:10:244::/56 -j MASQUERADE" not in _sh("ip6tables-nft-save", "-t", "nat")
    assert topology.tcp(PEER_POD_IP6) == POD_IP6

    # A native nftables inet table of another tool: judged per family, removed by handle only when asked.
    _sh("nft", "-f", "-", data=(
        "table inet other {\n"
        "  chain post { type nat hook postrouting priority 110; policy accept;\n"
        "    ip saddr 192.0.2.0/24 masquerade\n"
        "    meta nfproto ipv6 masquerade\n  }\n"
        "}\n"))
    kind, result = masq(dict(DUAL, backend="nftables"))
    assert kind == "fail" and "by a rule of nftables chain post in table inet other" in result["msg"], result
    assert "'meta nfproto ipv6 masquerade'" in result["msg"], result["msg"]
    assert "ip saddr 192.0.2.0/24" not in result["msg"]
    kind, result = masq(dict(DUAL, backend="nftables", foreign="warn"))
    assert kind == "exit" and any("table inet other" in w for w in result["warnings"])
    kind, result = masq(dict(DUAL, backend="nftables", foreign="remove"))
    assert kind == "exit" and result["changed"], result
    left = _sh("nft", "list", "table", "inet", "other")
    assert "ip saddr 192.0.2.0/24 masquerade" in left and "nfproto" not in left
    assert topology.tcp(PEER_POD_IP6) == POD_IP6
    assert topology.tcp(EXTERNAL_IP6) == NODE_EXTERNAL_IP6
    kind, result = masq(dict(DUAL, backend="nftables"))
    assert kind == "exit" and not result["changed"]


def test_dual_stack_bad_input_changes_nothing(masq):
    before = _sh("nft", "list", "ruleset")
    for args, path in [
        (dict(DUAL, source=["10.244.1.0/24", "fd00:10:244:1::1/64"]), "source[1]: 'fd00:10:244:1::1/64' is not a valid"),
        (dict(DUAL, exempt=["fd00:10:244::/56", "fd00::/129"]), "exempt[1]: "),
    ]:
        kind, result = masq(args)
        assert kind == "fail" and result["msg"].startswith(path), result
        assert result["changed"] is False
    assert _sh("nft", "list", "ruleset") == before
