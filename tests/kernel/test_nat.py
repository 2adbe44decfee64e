# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""podnet.mesh.masquerade against the real kernel, nft and iptables (nft and legacy).

The test's own (private) network namespace is the node:

    pod ns  10.244.1.2/24 --veth-- [bridge 10.244.1.1/24]  node
    node    192.168.77.1/24 --veth-- 192.168.77.2/24  peer ns (pod 10.244.2.2 on lo,
                                                       route 10.244.1.0/24 via the node)
    node    203.0.113.1/24  --veth-- 203.0.113.10/24  external ns (no route to 10.244/16)

The module runs in this process (its real AnsibleModule and Runner), so its
nft/iptables commands act on the node. Topology changes go through the
netlink layer and pyroute2; listeners and clients run in the other
namespaces with nsenter. Every netfilter object a test makes is removed after
it, and the node's ruleset, ip_forward and legacy tables are put back.
"""
from __future__ import annotations

import select
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


POD_IP = "10.244.1.2"
PEER_POD_IP = "10.244.2.2"
EXTERNAL_IP = "203.0.113.10"
NODE_EXTERNAL_IP = "203.0.113.1"
PORT = 8080
ARGS = {"source": ["10.244.1.0/24"], "exempt": ["10.244.0.0/16"]}

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
    """iptables tool of one variant (nft or legacy), e.g. iptables-legacy-save."""
    if name == "iptables":
        return "iptables-%s" % variant
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
                                                         if name.startswith("iptables") else name))
        else:
            monkeypatch.setattr(nat_tools.Runner, "which", which)
        del warnings[:]
        kind, result = run_main(masquerade.main, args)
        return kind, dict(result, warnings=list(warnings))
    return _run


# ----------------------------------------------------------- netfilter state
def _legacy_tables():
    with open(_nat.LEGACY_TABLES_PATH) as handle:
        return set(handle.read().split())


@pytest.fixture(autouse=True)
def netfilter_restored():
    """Put the node's nft ruleset, legacy tables and ip_forward back as they were."""
    ruleset = _sh("nft", "list", "ruleset")
    legacy = dict((table, _sh("iptables-legacy-save", "-t", table)) for table in _legacy_tables())
    with open(_nat.IP_FORWARD_PATH) as handle:
        ip_forward = handle.read()
    yield
    _sh("nft", "flush", "ruleset")
    if ruleset.strip():
        _sh("nft", "-f", "-", data=ruleset)
    for table in _legacy_tables():
        if table in legacy:
            # Without --noflush, restore replaces the whole table.
            _sh("iptables-legacy-restore", data=legacy[table])
        else:
            # Legacy tables cannot be removed; empty them and reset the policies.
            _sh("iptables-legacy", "-t", table, "-F")
            _sh("iptables-legacy", "-t", table, "-X")
            for chain in ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"):
                _sh("iptables-legacy", "-t", table, "-P", chain, "ACCEPT", check=False)
    with open(_nat.IP_FORWARD_PATH, "w") as handle:
        handle.write(ip_forward)


def set_ip_forward(value):
    with open(_nat.IP_FORWARD_PATH, "w") as handle:
        handle.write("%d\n" % value)


def our_rules_in_kernel(backend, variant):
    """Our rules as the tools print them, independent of the module's parser."""
    if backend == "nftables":
        text = _sh("nft", "list", "table", "ip", "podnet", check=False)
        return [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith(("table", "chain", "type", "}"))]
    lines = []
    for table in ("nat", "filter"):
        text = _sh(_tool(variant, "iptables-save"), "-t", table)
        lines += [line for line in text.splitlines() if "PODNET-" in line]
    return lines


# ----------------------------------------------------------------- topology
def _run_in(ns, *argv, **kw):
    return subprocess.run(["nsenter", "--net=" + netns.netns_path(ns)] + list(argv),
                          capture_output=True, text=True, check=False, **kw)


class Listener:
    """A TCP server in a namespace that prints the address of every client."""

    CODE = (
        "import socket\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', %d))\n"
        "s.listen(16)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    c, addr = s.accept()\n"
        "    print(addr[0], flush=True)\n"
        "    c.close()\n" % PORT)

    def __init__(self, ns):
        self.proc = subprocess.Popen(
            ["nsenter", "--net=" + netns.netns_path(ns), sys.executable, "-c", self.CODE],
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
    def __init__(self, pod, peer, external, peer_listener, external_listener):
        self.pod, self.peer, self.external = pod, peer, external
        self.listeners = {PEER_POD_IP: peer_listener, EXTERNAL_IP: external_listener}

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


@pytest.fixture
def topology(prefix, named_ns, host_links):
    pod, peer, external = named_ns("pod"), named_ns("peer"), named_ns("ext")
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
    with _netlink.Session() as session:
        session.apply(actions)
        routes = [
            (pod, {"gateway": "10.244.1.1"}),
            (None, {"dst": "10.244.2.0", "dst_len": 24, "gateway": "192.168.77.2"}),
            (peer, {"dst": "10.244.1.0", "dst_len": 24, "gateway": "192.168.77.1"}),
        ]
        for ns, route in routes:
            handle = session.ns(ns)
            handle.call("add route", handle.ipr.route, "add", **route)
    # Forwarding on, so that only NAT decides whether the external host answers.
    set_ip_forward(1)
    listeners = []
    try:
        listeners.append(Listener(peer))
        listeners.append(Listener(external))
        yield Topology(pod, peer, external, *listeners)
    finally:
        for listener in listeners:
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
