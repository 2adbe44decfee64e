# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugin podnet driven by container runtimes' CNI library, libcni.

Two runtimes call the plugin here:

* libcni 1.1 itself (what containerd 1.6 and podman's CNI backend link): a
  small Go program of ours (``driver/main.go``), built once per session in
  GOPATH mode with Debian's Go against Debian's libcni sources
  (``golang-go``, ``golang-github-appc-cni-dev``), runs AddNetworkList,
  CheckNetworkList, DelNetworkList or GetNetworkListCachedResult on a
  conflist file and prints what libcni returned as JSON;
* ``Runtime12``, a Python runtime that speaks the plugin protocol (CNI_*
  variables, the configuration on stdin) the way libcni 1.2.3 does what
  libcni 1.1 cannot: ``cniVersions`` negotiation, GC and STATUS (CNI SPEC 1.1).

Every test runs in namespaces of its own, made and removed by the fixtures
(also when the test fails): a "node" network namespace in which the runtime
and the plugins run (the bridge, the host ends of the veths and the iptables
rules of portmap live there), container namespaces, and temporary
directories for the IPAM state, the libcni cache and the plugins' own state.
The suite runs as root in a private network namespace (tests/utils/netns-run.sh)
and refuses to run anywhere else. Named namespaces start with ``pntl``.
"""
from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD_PLUGIN = os.path.join(ROOT, "roles", "cni", "files", "build_podnet.py")
DRIVER_SOURCE = os.path.join(HERE, "driver", "main.go")
GOPATH_SYSTEM = "/usr/share/gocode"
LIBCNI_SOURCES = os.path.join(GOPATH_SYSTEM, "src", "github.com", "containernetworking", "cni", "libcni")
REFERENCE_PLUGINS = "/usr/lib/cni"
CHAINED = ("portmap", "tuning", "bandwidth")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What libcni 1.2.3 implements (version.Current()): the highest version it sends.
LIBCNI12_CURRENT = "1.1.0"
SUBNET = "10.252.0.0/24"
GATEWAY = "10.252.0.1"


# ------------------------------------------------------------ where we run
def _in_shared_netns():
    """True unless this network namespace holds nothing but lo and test links (see tests/kernel/conftest.py)."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return True
    with IPRoute() as ipr:
        names = [m.get_attr("IFLA_IFNAME") for m in ipr.get_links()]
    return any(n != "lo" and not n.startswith("pnt") for n in names)


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        reason = "libcni tests need root"
    elif _in_shared_netns():
        reason = "libcni tests run only in a private network namespace (tests/utils/netns-run.sh)"
    else:
        return
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


# ------------------------------------------------------------ builds (once per session)
@pytest.fixture(scope="session")
def session_dir():
    path = tempfile.mkdtemp(prefix="podnet-libcni-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def plugin_dir(session_dir):
    """A directory with the podnet zipapp, built from this checkout as the cni role installs it.

    PODNET_CNI_PLUGIN=FILE tests that file instead (an installed plugin, another build).
    """
    path = os.path.join(session_dir, "bin")
    os.mkdir(path)
    given = os.environ.get("PODNET_CNI_PLUGIN")
    if given:
        shutil.copy(given, os.path.join(path, "podnet"))
    else:
        subprocess.run([sys.executable, BUILD_PLUGIN, os.path.join(path, "podnet")], check=True)
    return path


def _skip_or_fail(reason):
    """make test installs everything (PODNET_TEST_STRICT=1): a missing tool there fails the suite."""
    if os.environ.get("PODNET_TEST_STRICT") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def libcni_driver(session_dir):
    """The Go driver, built offline in GOPATH mode against Debian's libcni 1.1 sources."""
    go = shutil.which("go")
    if go is None or not os.path.isdir(LIBCNI_SOURCES):
        _skip_or_fail("Go and libcni's sources are not installed (Debian: apt-get install golang-go "
                      "golang-github-appc-cni-dev)")
    work = os.path.join(session_dir, "go")
    os.mkdir(work)
    out = os.path.join(work, "libcni-driver")
    env = {"PATH": PATH, "HOME": work, "GO111MODULE": "off", "GOPATH": "%s:%s" % (GOPATH_SYSTEM, work),
           "GOCACHE": os.path.join(work, "cache"), "GOFLAGS": "", "GOPROXY": "off", "GOTOOLCHAIN": "local",
           "CGO_ENABLED": "0"}
    build = subprocess.run([go, "build", "-o", out, DRIVER_SOURCE], env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert build.returncode == 0, "building the libcni driver failed:\n" + build.stdout + build.stderr
    return out


@pytest.fixture(scope="session")
def reference_plugins():
    missing = [p for p in CHAINED if not os.access(os.path.join(REFERENCE_PLUGINS, p), os.X_OK)]
    if missing:
        _skip_or_fail("the reference plugins %s are not installed (Debian: apt-get install "
                      "containernetworking-plugins)" % ", ".join(missing))
    return REFERENCE_PLUGINS


# ------------------------------------------------------------ a node and its containers
def ns_path(name):
    return "/run/netns/" + name


def nsenter(name):
    return ["nsenter", "--net=" + ns_path(name)]


class Node:
    """A node: its own network namespace, containers, and the state directories of one test."""

    def __init__(self, prefix, state, plugin_dir):
        self.prefix = prefix
        self.name = prefix + "n"
        self.state = state
        self.data_dir = os.path.join(state, "ipam")
        self.cache_dir = os.path.join(state, "libcni-cache")
        self.tuning_dir = os.path.join(state, "tuning")
        self.plugin_dir = plugin_dir
        self.bin_dirs = [plugin_dir, REFERENCE_PLUGINS]
        self.bridge = prefix + "b"
        self.subnet = SUBNET
        self.gateway = GATEWAY
        self.namespaces = []
        self.processes = []

    # -------------------------------------------------------- namespaces
    def netns(self, suffix):
        """A new named network namespace with lo up; removed at teardown."""
        name = self.prefix + suffix
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    def pod(self, suffix="p"):
        """A container: a network namespace; returns its path (CNI_NETNS)."""
        return ns_path(self.netns(suffix))

    def remove_netns(self, name):
        subprocess.run(["ip", "netns", "del", os.path.basename(name)], check=True)

    def ip(self, *argv, ns=None, check=True):
        """`ip` in the node's namespace (or in ns, a container's name or path)."""
        target = os.path.basename(ns) if ns else self.name
        out = subprocess.run(["ip", "-n", target] + list(argv), capture_output=True, text=True, timeout=30,
                             check=False)
        if check:
            assert out.returncode == 0, "ip %s: %s" % (" ".join(argv), out.stderr)
        return out.stdout

    def run_in(self, ns, argv, check=False, **kwargs):
        """A command in namespace ns (name or path)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        return subprocess.run(nsenter(os.path.basename(ns)) + list(argv), check=check, **kwargs)

    def start_in(self, ns, argv):
        """A background process in namespace ns; killed at teardown."""
        proc = subprocess.Popen(nsenter(os.path.basename(ns)) + list(argv), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.processes.append(proc)
        return proc

    # -------------------------------------------------------- configuration
    def podnet(self, **extra):
        """podnet's entry of a conflist: the node's bridge, IPAM state in the test's directory."""
        conf = {"type": "podnet", "bridge": self.bridge, "ipam": {"subnet": SUBNET, "dataDir": self.data_dir}}
        conf.update(extra)
        return conf

    def network(self, plugins, version="1.0.0", name=None, **top):
        """Write a network configuration list; returns its content (as a dict)."""
        data = {"cniVersion": version, "name": name or self.prefix, "plugins": plugins}
        data.update(top)
        os.makedirs(os.path.join(self.state, "net.d"), exist_ok=True)
        path = os.path.join(self.state, "net.d", "%s.conflist" % data["name"])
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        return data

    def conflist(self, plugins, version="1.0.0", name=None, **top):
        """Write a network configuration list; returns its path."""
        data = self.network(plugins, version, name, **top)
        return os.path.join(self.state, "net.d", "%s.conflist" % data["name"])

    # -------------------------------------------------------- state
    def reservations(self, network=None):
        """{address: owner} of a network's IPAM state (addresses only, no other files)."""
        directory = os.path.join(self.data_dir, network or self.prefix)
        if not os.path.isdir(directory):
            return {}
        out = {}
        for entry in os.listdir(directory):
            if entry.count(".") == 3 and all(part.isdigit() for part in entry.split(".")):
                with open(os.path.join(directory, entry), encoding="utf-8") as handle:
                    out[entry] = json.load(handle)
        return out

    def links(self, ns=None):
        """{name: link info} of the node's namespace (or a container's), from `ip -j -d link`."""
        return {link["ifname"]: link for link in json.loads(self.ip("-j", "-d", "link", "show", ns=ns) or "[]")}

    def routes(self, ns):
        return json.loads(self.ip("-j", "-4", "route", "show", ns=ns) or "[]")

    def default_routes(self, ns):
        return [(r.get("gateway"), r.get("dev")) for r in self.routes(ns) if r.get("dst") == "default"]

    def close(self):
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate()
        for name in reversed(self.namespaces):
            if os.path.exists(ns_path(name)):
                subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def prefix():
    return "pntl" + secrets.token_hex(3)


@pytest.fixture
def node(prefix, plugin_dir):
    """A node namespace (forwarding on), the test's state directory; everything removed at teardown."""
    state = tempfile.mkdtemp(prefix="podnet-libcni-%s-" % prefix)
    made = Node(prefix, state, plugin_dir)
    try:
        made.netns("n")
        made.run_in(made.name, ["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        yield made
    finally:
        made.close()
        shutil.rmtree(state, ignore_errors=True)


# ------------------------------------------------------------ libcni 1.1 (the Go driver)
class Libcni:
    """libcni 1.1.2 as a runtime links it: one driver process per operation, run in the node's namespace."""

    def __init__(self, driver, node):
        self.driver = driver
        self.node = node

    def __call__(self, op, conflist, netns=None, cid="c1", ifname="eth0", caps=None, args=None):
        request = {"op": op, "conflist": conflist, "binDirs": self.node.bin_dirs, "cacheDir": self.node.cache_dir,
                   "containerID": cid, "netns": netns or "", "ifname": ifname, "args": args or [],
                   "capabilityArgs": caps or {}}
        out = self.node.run_in(self.node.name, [self.driver], input=json.dumps(request), env={"PATH": PATH})
        assert out.returncode == 0 and out.stdout.strip(), "libcni driver: %s%s" % (out.stdout, out.stderr)
        return json.loads(out.stdout)

    def cache_file(self, network, cid="c1", ifname="eth0"):
        return os.path.join(self.node.cache_dir, "results", "%s-%s-%s" % (network, cid, ifname))


@pytest.fixture
def libcni(libcni_driver, node):
    return Libcni(libcni_driver, node)


# ------------------------------------------------------------ what libcni 1.2.3 does (CNI SPEC 1.1)
def version_key(version):
    return tuple(int(part) for part in version.split("."))


def negotiate(conflist, current=LIBCNI12_CURRENT):
    """The cniVersion libcni 1.2.3 uses for a conflist (libcni/conf.go, NetworkConfFromBytes).

    Without cniVersions: cniVersion as it is. With it: the highest of cniVersions and cniVersion
    that is not above what libcni implements; the plugins are not asked.
    """
    version = conflist.get("cniVersion", "")
    if "cniVersions" not in conflist:
        return version
    candidates = [v for v in conflist["cniVersions"] if version_key(v) <= version_key(current)]
    if version and version_key(version) <= version_key(current):
        candidates.append(version)
    return max(candidates, key=version_key) if candidates else version


class Runtime12:
    """A runtime that drives the plugins as libcni 1.2.3 does, for what libcni 1.1 cannot do.

    Each call returns [(plugin type, exit code, parsed stdout or None, stderr)], one per plugin run.
    The environment is libcni's: every CNI_* variable set (empty when not given).
    """

    negotiate = staticmethod(negotiate)

    def __init__(self, node):
        self.node = node

    def exec(self, plugin_type, command, conf, cid="", netns="", ifname="", args=""):
        env = {"PATH": PATH, "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
               "CNI_ARGS": args, "CNI_IFNAME": ifname, "CNI_PATH": os.pathsep.join(self.node.bin_dirs)}
        path = next(os.path.join(d, plugin_type) for d in self.node.bin_dirs
                    if os.access(os.path.join(d, plugin_type), os.X_OK))
        out = self.node.run_in(self.node.name, [path], input=json.dumps(conf), env=env)
        return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None), out.stderr

    @staticmethod
    def plugin_conf(conflist, plugin, version, **inject):
        conf = copy.deepcopy(plugin)
        conf.update(name=conflist["name"], cniVersion=version)
        conf.update(inject)
        return conf

    def runtime_config(self, plugin, caps):
        wanted = dict((k, v) for k, v in (caps or {}).items() if (plugin.get("capabilities") or {}).get(k))
        return {"runtimeConfig": wanted} if wanted else {}

    def add(self, conflist, netns, cid="c1", ifname="eth0", caps=None):
        """AddNetworkList: the plugins in order, each with the previous result; stops at the first error."""
        version, prev, runs = negotiate(conflist), None, []
        for plugin in conflist["plugins"]:
            inject = self.runtime_config(plugin, caps)
            if prev is not None:
                inject["prevResult"] = prev
            code, out, err = self.exec(plugin["type"], "ADD", self.plugin_conf(conflist, plugin, version, **inject),
                                       cid, netns, ifname)
            runs.append((plugin["type"], code, out, err))
            if code != 0:
                break
            prev = out
        return runs

    def verb(self, command, conflist, netns, cid="c1", ifname="eth0", prev=None, caps=None):
        """CHECK (plugins in order) or DEL (in reverse order); stops at the first error."""
        version, runs = negotiate(conflist), []
        plugins = conflist["plugins"] if command == "CHECK" else list(reversed(conflist["plugins"]))
        for plugin in plugins:
            inject = self.runtime_config(plugin, caps)
            if prev is not None:
                inject["prevResult"] = prev
            code, out, err = self.exec(plugin["type"], command, self.plugin_conf(conflist, plugin, version, **inject),
                                       cid, netns, ifname)
            runs.append((plugin["type"], code, out, err))
            if code != 0:
                break
        return runs

    VALID_ABSENT = object()

    def gc(self, conflist, valid=VALID_ABSENT, keys=("cni.dev/valid-attachments", "cni.dev/attachments")):
        """GCNetworkList's GC step (cniVersion >= 1.1.0): every plugin, going on after errors.

        valid: a list of (containerID, ifname) or None (sent as JSON null, Go's encoding of a nil list),
        under the two keys libcni 1.2.3 sets (or those of keys); VALID_ABSENT: libcni called without
        GC arguments, so no key is sent.
        """
        version, runs = negotiate(conflist), []
        inject = {}
        if valid is not self.VALID_ABSENT:
            items = None if valid is None else [{"containerID": c, "ifname": i} for c, i in valid]
            inject = dict((key, items) for key in keys)
        for plugin in conflist["plugins"]:
            code, out, err = self.exec(plugin["type"], "GC", self.plugin_conf(conflist, plugin, version, **inject))
            runs.append((plugin["type"], code, out, err))
        return runs

    def status(self, conflist):
        """GetStatusNetworkList: STATUS to every plugin (cniVersion >= 1.1.0); stops at the first error."""
        version, runs = negotiate(conflist), []
        for plugin in conflist["plugins"]:
            code, out, err = self.exec(plugin["type"], "STATUS", self.plugin_conf(conflist, plugin, version))
            runs.append((plugin["type"], code, out, err))
            if code != 0:
                break
        return runs


@pytest.fixture
def runtime(node):
    return Runtime12(node)
