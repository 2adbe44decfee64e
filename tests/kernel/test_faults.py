# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Processes killed at random points, and what the next run makes of them.

The CNI plugin's ADD and DEL and the ``pods`` and ``pod_route`` modules run as
processes of their own and are killed with SIGKILL, mostly at traced points:
a driver counts the calls made from the collection's own code (Python
functions and the C functions they call, such as os.rename or a socket send)
and kills the process at the N-th, N drawn from a run counted beforehand,
either any call or one just before a C function that changes state (an open,
a write, a rename, an unlink, a netlink send). So kills land between any two
steps of the collection's code: after the IPAM reservation and before the
veth, between writing a temporary file and renaming it, between two batches
of routes, after every change and before the result is written. Some kills
come from outside after a random delay instead, wherever the process is
(Python starting, pyroute2 importing, the kernel answering).

After every kill the next run must converge (the CNI runtime's answer to a
failed ADD is DEL; then ADD and DEL succeed again; a module's rerun succeeds
and the one after reports no change), and after a DEL, a GC or a module's
state=absent nothing may be left: no veth on the host, no reservation
without its attachment, no temporary file in the IPAM directory, no
namespace. Draws come from a fixed seed (PODNET_FAULT_SEED changes it), so a
run can be repeated.
"""
from __future__ import annotations

import concurrent.futures
import ipaddress
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam, main
from ansible_collections.podnet.mesh.plugins.module_utils.cni.plugin import attachment_veth
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import host_veth_name
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink

SEED = int(os.environ.get("PODNET_FAULT_SEED", "20261130"))
SUBNET = "10.253.0.0/24"
POD_CIDR = "10.254.0.0/24"
PROTO = 149
BUILD = os.path.join(os.path.dirname(os.path.abspath(main.__file__)), "..", "..", "..", "roles", "cni", "files",
                     "build_podnet.py")
# The driver: runs the plugin (a zipapp) or a module, killing itself at the N-th traced call
# (0: never), and writes how many calls it counted and at which ones the collection's code called
# a C function that changes state (MARKS: a rename, a write, a netlink send ...).
DRIVER = r'''
import json, os, signal, sys

OURS = "ansible_collections/podnet/mesh/plugins/"
MARKS = {"open", "write", "rename", "replace", "unlink", "flock", "close", "send", "sendall", "sendto", "sendmsg",
         "setns", "mkdir", "fsync"}
CHANGES = {"link", "addr", "route", "brport", "create", "remove"}


def main():
    kind, target, at, counter = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if kind == "cni":
        sys.path.insert(0, target)
        from ansible_collections.podnet.mesh.plugins.module_utils.cni import main as entry
        run = lambda: entry.main([target])
    else:
        import importlib
        module = importlib.import_module(target)
        sys.argv = [target] + sys.argv[5:]
        run = module.main
    # The netlink layer before the count starts: the points are the collection's own steps
    # (the plugin's file holds kernel.lite; the modules use kernel.netlink and pyroute2).
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel import lite  # noqa: F401
    try:
        from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink  # noqa: F401
    except ImportError:
        pass
    count = [0]
    marks = []

    def hook(frame, event, arg):
        if OURS in frame.f_code.co_filename:
            count[0] += 1
            if count[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)
            if event == "c_call" and getattr(arg, "__name__", "") in MARKS:
                marks.append((count[0], arg.__name__))
        elif event == "call" and count[0] and frame.f_code.co_name in CHANGES and "pyroute2" in frame.f_code.co_filename \
                and frame.f_back is not None and OURS in frame.f_back.f_code.co_filename:
            # The collection hands a change to pyroute2 (IPRoute.link, .route, netns.create ...).
            marks.append((count[0], "pyroute2 " + frame.f_code.co_name))

    sys.setprofile(hook)
    try:
        code = run()
    finally:
        sys.setprofile(None)
        with open(counter, "w") as handle:
            json.dump({"calls": count[0], "marks": marks}, handle)
    sys.exit(code)


main()
'''


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    where = tmp_path_factory.mktemp("faults")
    plugin = str(where / "podnet")
    subprocess.run([sys.executable, BUILD, plugin], check=True)
    driver = where / "driver.py"
    driver.write_text(DRIVER)
    return {"plugin": plugin, "driver": str(driver), "dir": str(where)}


class Killer:
    """Runs commands to completion, or kills them at a traced point or after a delay; keeps score."""

    def __init__(self, tools, seed):
        self.tools = tools
        self.seed = seed
        self.rng = random.Random(seed)
        self.serial = itertools.count()
        self.calls = {}       # (kind, target, verb): calls counted in a complete run
        self.marks = {}       # the same: [(call, C function)] where it changes state
        self.durations = {}   # the same: seconds of a complete run
        self.kills = []       # (what, how, point): every run that was killed
        self.spared = 0       # traced runs whose path was shorter than the point drawn

    def _env(self, environ):
        base = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
        base.update(environ)
        return base

    def _argv(self, kind, target, at, counter, args):
        return [sys.executable, self.tools["driver"], kind, target, str(at), counter] + list(args)

    def run(self, kind, target, environ, stdin=b"", args=(), at=0):
        """One run through the driver: (returncode, stdout, stderr, calls counted or None)."""
        counter = os.path.join(self.tools["dir"], "count.%d.%d" % (os.getpid(), next(self.serial)))
        started = time.monotonic()
        out = subprocess.run(self._argv(kind, target, at, counter, args), input=stdin, env=self._env(environ),
                             capture_output=True, timeout=60, check=False)
        elapsed = time.monotonic() - started
        calls = None
        if os.path.exists(counter):
            with open(counter) as handle:
                calls = json.load(handle)
            os.unlink(counter)
        return out.returncode, out.stdout, out.stderr, calls, elapsed

    def calibrate(self, key, kind, target, environ, stdin=b"", args=()):
        """Count the calls of a complete run (which must succeed); returns its output."""
        code, stdout, stderr, counted, elapsed = self.run(kind, target, environ, stdin, args)
        assert code == 0, (stdout, stderr)
        if counted["calls"] > self.calls.get(key, 0):
            self.calls[key] = counted["calls"]
            self.marks[key] = [tuple(mark) for mark in counted["marks"]]
        self.durations[key] = elapsed
        return stdout

    def kill(self, key, kind, target, environ, stdin=b"", args=(), how=None, rng=None):
        """A run killed at a drawn point. True when it was killed.

        how: "traced" (any call), "marked" (just before a C function that changes state) or
        "delay" (from outside); drawn when not given. rng: the draws' generator (one per thread
        keeps a run repeatable); default the killer's.
        """
        rng = rng or self.rng
        if how is None:
            draw = rng.random()
            how = "traced" if draw < 0.45 else "marked" if draw < 0.8 and self.marks.get(key) else "delay"
        if how in ("traced", "marked"):
            point = rng.randint(1, self.calls[key]) if how == "traced" else rng.choice(self.marks[key])[0]
            code, _stdout, _stderr, _calls, _elapsed = self.run(kind, target, environ, stdin, args, at=point)
            if code != -signal.SIGKILL:
                self.spared += 1
                return False
        else:
            point = round(rng.uniform(0.0, self.durations[key] * 1.1), 3)
            feed = os.path.join(self.tools["dir"], "stdin.%d.%d" % (os.getpid(), next(self.serial)))
            with open(feed, "wb") as handle:
                handle.write(stdin)
            with open(feed, "rb") as handle:
                proc = subprocess.Popen(self._argv(kind, target, 0, os.devnull, args), stdin=handle,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self._env(environ))
            os.unlink(feed)
            time.sleep(point)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            if proc.returncode != -signal.SIGKILL:
                self.spared += 1
                return False
        self.kills.append((key, how, point))
        return True

    def summary(self):
        """One line per kind of run: calls of a complete run and where it was killed (shown with -rP)."""
        lines = []
        for key in sorted(self.calls):
            kills = [k for k in self.kills if k[0] == key]
            names = dict(self.marks.get(key, ()))
            lines.append("%s: %d calls (%d marked), %.2fs; killed at calls %s, before %s, after %s s" % (
                "/".join(key), self.calls[key], len(self.marks.get(key, ())), self.durations[key],
                sorted(k[2] for k in kills if k[1] == "traced"),
                sorted("%s#%d" % (names[k[2]], k[2]) for k in kills if k[1] == "marked"),
                sorted(k[2] for k in kills if k[1] == "delay")))
        lines.append("runs that ended before the point drawn: %d" % self.spared)
        return "\n".join(lines)


@pytest.fixture
def killer(tools, request):
    killer = Killer(tools, "%s:%s" % (SEED, request.node.name))
    yield killer
    print(killer.summary())


def veths():
    with netlink.Session() as session:
        return sorted(name for name in session.ns(None).links() if name.startswith("veth"))


def ns_links(path):
    with netlink.Session() as session:
        return session.ns(path).links()


# ------------------------------------------------------------------- CNI
class Network:
    """One CNI network of the suite: its configuration, IPAM directory and the plugin runs."""

    def __init__(self, killer, prefix, data_dir):
        self.killer = killer
        self.bridge = prefix + "b"
        self.name = prefix
        self.data_dir = data_dir
        self.conf = {"cniVersion": "1.1.0", "name": prefix, "type": "podnet", "bridge": self.bridge,
                     "ipam": {"subnet": SUBNET, "dataDir": data_dir}}

    def env(self, command, netns, cid):
        environ = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
                   "CNI_PATH": "/opt/cni/bin"}
        return dict((key, value) for key, value in environ.items() if value is not None)

    def call(self, command, netns=None, cid=None, conf=None):
        code, stdout, stderr, _calls, _elapsed = self.killer.run(
            "cni", self.killer.tools["plugin"], self.env(command, netns, cid),
            json.dumps(conf or self.conf).encode())
        assert not stderr, stderr
        return code, (json.loads(stdout) if stdout.strip() else None)

    def kill(self, command, netns, cid, how=None, rng=None):
        return self.killer.kill(("cni", command), "cni", self.killer.tools["plugin"], self.env(command, netns, cid),
                                json.dumps(self.conf).encode(), how=how, rng=rng)

    def store(self):
        return ipam.Store(self.data_dir, self.name)

    def leftovers(self):
        """Files of the IPAM directory that are neither the lock, last_reserved nor a reservation."""
        where = os.path.join(self.data_dir, self.name)
        names = os.listdir(where) if os.path.isdir(where) else []
        reserved = set(self.store().reservations())
        return sorted(n for n in names if n not in ("lock", "last_reserved") and n not in reserved)

    def assert_detached(self, netns, cid, alone=True):
        """After a DEL: no veth of the attachment, no eth0 in the container, no reservation, no stray file.

        alone: no other attachment's call runs meanwhile, so no temporary file
        may be there either (another ADD's write in progress has one, and one
        killed in the middle leaves one for its own DEL to sweep).
        """
        veth = attachment_veth(cid, "eth0")
        assert veth not in veths()
        assert "eth0" not in ns_links(netns)
        assert [ip for ip, owner in self.store().reservations().items() if owner.get("containerID") == cid] == []
        assert [name for name in self.leftovers() if alone or not (name.startswith(".") and name.endswith(".tmp"))] == []

    def assert_attached(self, netns, cid, result):
        address = result["ips"][0]["address"]
        assert ipaddress.ip_interface(address).network == ipaddress.ip_network(SUBNET)
        assert attachment_veth(cid, "eth0") in veths()
        assert self.call("CHECK", netns, cid, dict(self.conf, prevResult=result)) == (0, None)


def _cni_cycles(net, netns, cid, pairs):
    """pairs times: a killed ADD, the runtime's DEL, ADD again; then a killed DEL and DEL again."""
    rng = random.Random("%s:%s" % (net.killer.seed, cid))
    for _round in range(pairs):
        net.kill("ADD", netns, cid, rng=rng)
        assert net.call("DEL", netns, cid) == (0, None)
        net.assert_detached(netns, cid, alone=False)
        code, result = net.call("ADD", netns, cid)
        assert code == 0, result
        net.assert_attached(netns, cid, result)
        net.kill("DEL", netns, cid, rng=rng)
        assert net.call("DEL", netns, cid) == (0, None)
        net.assert_detached(netns, cid, alone=False)


def test_cni_add_and_del_killed_at_random_points_converge(killer, tools, prefix, named_ns, host_links, tmp_path):
    before = veths()
    net = Network(killer, prefix, str(tmp_path / "ipam"))
    host_links.append(net.bridge)
    pods = [ns_path(named_ns("p%d" % i)) for i in range(2)]
    # Count a complete ADD and DEL of each kind (the bridge is made by the first ADD).
    for _round in range(2):
        killer.calibrate(("cni", "ADD"), "cni", tools["plugin"], net.env("ADD", pods[0], "cal"),
                         json.dumps(net.conf).encode())
        killer.calibrate(("cni", "DEL"), "cni", tools["plugin"], net.env("DEL", pods[0], "cal"),
                         json.dumps(net.conf).encode())
    net.assert_detached(pods[0], "cal")
    # Two containers, each killed in turn, in parallel: 2 x 6 pairs = 24 kills.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(_cni_cycles, net, pod, "c%d" % index, 6) for index, pod in enumerate(pods)]
        for run in runs:
            run.result()
    # Each killed ADD was followed by its own container's DEL, which swept what it had left.
    assert net.leftovers() == []
    assert len(killer.kills) >= 18, (killer.kills, killer.spared)
    # Attachments a runtime forgot: GC with none valid releases them all and removes their veths.
    for index, pod in enumerate(pods):
        net.kill("ADD", pod, "g%d" % index, how="traced")
    assert net.call("GC", conf=dict(net.conf, **{"cni.dev/valid-attachments": []})) == (0, None)
    assert net.store().reservations() == {}
    assert net.leftovers() == []
    assert veths() == before
    for pod in pods:
        assert "eth0" not in ns_links(pod)


# --------------------------------------------------------------- modules
MODULES = "ansible_collections.podnet.mesh.plugins.modules."


def ns_path(name):
    return "/run/netns/" + name


class ModuleRuns:
    """A module run through the driver with its arguments in a file."""

    def __init__(self, killer, tmp_path, module):
        self.killer = killer
        self.target = MODULES + module
        self.tmp_path = tmp_path
        self.count = 0

    def _args(self, args):
        self.count += 1
        path = self.tmp_path / ("args%d.json" % self.count)
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        return [str(path)]

    def run(self, args):
        code, stdout, stderr, _calls, _elapsed = self.killer.run("module", self.target, {}, args=self._args(args))
        result = json.loads(stdout)
        assert code == 0 and not result.get("failed"), (result, stderr)
        return result

    def calibrate(self, key, args):
        return json.loads(self.killer.calibrate(key, "module", self.target, {}, args=self._args(args)))

    def kill(self, key, args):
        return self.killer.kill(key, "module", self.target, {}, args=self._args(args))


def _converge(runs, key, args):
    """A killed run, then a rerun that succeeds, then one that changes nothing."""
    runs.kill(key, args)
    runs.run(args)
    again = runs.run(args)
    assert again["changed"] is False, again
    return again


def test_pods_killed_at_random_points_converge_and_leave_nothing(killer, tmp_path, prefix, named_ns, host_links):
    bridge = prefix + "b"
    host_links.append(bridge)
    with netlink.Session() as session:
        ipr = session.ns(None).ipr
        ipr.link("add", ifname=bridge, kind="bridge")
        ipr.addr("add", index=ipr.link_lookup(ifname=bridge)[0], address="10.254.0.1", prefixlen=24)
    names = [named_ns("m%d" % i, create=False) for i in range(3)]
    ours = sorted(host_veth_name(name) for name in names)
    before = veths()
    present = {"pods": [{"name": name} for name in names], "bridge": bridge, "pod_cidr": POD_CIDR}
    absent = dict(present, state="absent")
    runs = ModuleRuns(killer, tmp_path, "pods")
    assert runs.calibrate(("pods", "present"), present)["changed"] is True
    assert runs.calibrate(("pods", "absent"), absent)["changed"] is True
    for _round in range(4):
        made = _converge(runs, ("pods", "present"), present)
        addresses = [ipaddress.ip_interface(pod["address"]) for pod in made["pods"]]
        assert len(set(addresses)) == 3 and all(a.network == ipaddress.ip_network(POD_CIDR) for a in addresses)
        assert sorted(set(veths()) - set(before)) == ours
        _converge(runs, ("pods", "absent"), absent)
        assert veths() == before
        assert [name for name in names if os.path.lexists(ns_path(name))] == []
    assert len([k for k in killer.kills if k[0][0] == "pods"]) >= 6, (killer.kills, killer.spared)


def test_pod_route_killed_at_random_points_converges_and_leaves_nothing(killer, tmp_path, prefix, host_links):
    node = prefix + "n"
    host_links.append(node)
    with netlink.Session() as session:
        ipr = session.ns(None).ipr
        ipr.link("add", ifname=node, kind="bridge")
        index = ipr.link_lookup(ifname=node)[0]
        ipr.addr("add", index=index, address="192.168.77.11", prefixlen=24)
        ipr.link("set", index=index, state="up")
    # 600 routes: three batches of changes, so kills land between batches too.
    routes = [{"dst": "10.%d.%d.0/24" % (100 + i // 256, i % 256), "via": "192.168.77.12"} for i in range(600)]
    present = {"routes": routes, "purge": True}
    absent = {"routes": routes, "state": "absent"}
    runs = ModuleRuns(killer, tmp_path, "pod_route")
    assert runs.calibrate(("pod_route", "present"), present)["changed"] is True
    assert runs.calibrate(("pod_route", "absent"), absent)["changed"] is True
    for _round in range(3):
        _converge(runs, ("pod_route", "present"), present)
        with netlink.Session() as session:
            assert len([r for r in session.ns(None).routes(254) if r["proto"] == PROTO]) == 600
        _converge(runs, ("pod_route", "absent"), absent)
        with netlink.Session() as session:
            assert [r for r in session.ns(None).routes(254) if r["proto"] == PROTO] == []
    assert len([k for k in killer.kills if k[0][0] == "pod_route"]) >= 4, (killer.kills, killer.spared)
