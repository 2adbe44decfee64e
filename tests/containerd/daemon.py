# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""containerd as a node runs it, confined to a test directory and a test network namespace.

``Node`` makes a named network namespace (the node), a client namespace linked
to it by a veth pair (the rest of the network, for hostPort traffic), installs
the podnet plugin and its conflist with the cni role, builds the images, and
starts Debian's containerd 1.6 in the node namespace and a private mount
namespace with a fresh sysfs (the cgroup mounts are kept: bound aside, sysfs
mounted, moved back) and a /run of its own, with every path it uses (root,
state, gRPC, ttrpc and debug sockets, runc's root, the CNI directories, IPAM
state, pod logs) under one temporary directory. Its CRI plugin has two
runtime handlers on runc:

* ``runc`` (the default): the CNI configuration directory holds the podnet
  conflist the cni role wrote (podnet, then portmap with the portMappings
  capability: ``podnet_cni_chained_plugins``);
* ``reference``: a ``cni_conf_dir`` of its own holding Debian's reference
  plugins (bridge with host-local, then portmap), the same work on another
  bridge and subnet, so one daemon runs both side by side;
* ``dualstack`` (with ``Node(dual_stack=True)``): a ``cni_conf_dir`` of its own
  holding the podnet conflist the cni role wrote for a node with an IPv4 and
  an IPv6 pod CIDR (``podnet_pod_cidrs``: ``ipam.ranges``), on a bridge of its own.

``Node.close`` removes every sandbox (so CNI DEL runs), stops containerd, ends
the shims and pod processes it left, removes the namespaces, the pods' cgroups
and the directory, also after a failure halfway through ``start``.

Used by the suite (tests/containerd) and by benchmarks/containerd.py.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from ansible_collections.podnet.mesh.tests.containerd import cri, images

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
RUNC = "/usr/sbin/runc"
REFERENCE_DIR = "/usr/lib/cni"
REFERENCE_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The directory holding ansible_collections/podnet/mesh (this collection), for ansible-playbook.
COLLECTIONS = os.path.abspath(os.path.join(ROOT, "..", "..", ".."))
BUILD = os.path.join(ROOT, "roles", "cni", "files", "build_podnet.py")
NODE_PYTHON = "/usr/bin/python3"
PODNET, REFERENCE, DUAL = "runc", "reference", "dualstack"  # the runtime handlers
# The node and the client namespace: a /30 of documentation space that stays inside them.
NODE_IP, CLIENT_IP = "192.0.2.1", "192.0.2.2"

PLAYBOOK = """\
- name: Install the podnet CNI plugin for the node's containerd
  hosts: localhost
  gather_facts: false
  roles:
    - podnet.mesh.cni
"""

CONFIG = """\
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stats_collect_period = 60
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "{podnet}"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{podnet}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{podnet}.options]
        BinaryName = "{runc}"
        Root = "{d}/runc"
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{reference}]
      runtime_type = "io.containerd.runc.v2"
      cni_conf_dir = "{d}/net.d-reference"
      cni_max_conf_num = 1
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{reference}.options]
        BinaryName = "{runc}"
        Root = "{d}/runc"
        SystemdCgroup = false
{more_runtimes}  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/bin"
    conf_dir = "{d}/net.d"
    max_conf_num = 1
"""

# Run in the node's network namespace: a private mount namespace with a fresh sysfs
# (that of the node namespace), keeping the cgroup hierarchies runc needs, and a /run
# of its own (the shims put their sockets under /run/containerd whatever the configuration).
START = """\
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=0755,size=16m podnet-test-run /run
mkdir -p "$1/cgroup-aside"
mount --rbind /sys/fs/cgroup "$1/cgroup-aside"
mount -t sysfs sysfs /sys
mount --move "$1/cgroup-aside" /sys/fs/cgroup
exec "$2" --config "$1/config.toml"
"""


def run(argv, check=True, timeout=60, **kw):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and out.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv), out.returncode, out.stdout, out.stderr))
    return out


def in_shared_netns():
    """True unless this network namespace holds nothing but lo and test links (pnt*)."""
    out = run(["ip", "-j", "link", "show"])
    return any(link["ifname"] != "lo" and not link["ifname"].startswith("pnt") for link in json.loads(out.stdout))


def missing():
    """What the suite needs and the machine lacks (Debian package names), empty when all is there."""
    need = {CONTAINERD: "containerd", CTR: "containerd", RUNC: "runc", images.BUSYBOX_BIN: "busybox-static",
            os.path.join(REFERENCE_DIR, "bridge"): "containernetworking-plugins", "/usr/bin/nsenter": "util-linux"}
    lacking = sorted(set(pkg for path, pkg in need.items() if not os.access(path, os.X_OK)))
    if cri.grpc is None:
        lacking.append("grpcio (PyPI)")
    return lacking


def _die_with_parent():
    """containerd gets SIGTERM should the test process die without its cleanup (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


DUAL_RUNTIME = """\
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{dual}]
      runtime_type = "io.containerd.runc.v2"
      cni_conf_dir = "{d}/net.d-dual"
      cni_max_conf_num = 1
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{dual}.options]
        BinaryName = "{runc}"
        Root = "{d}/runc"
        SystemdCgroup = false
"""


class Network:
    """One side of the comparison: handler, bridge, pod CIDR, gateway and the conflist (and an IPv6 pod CIDR)."""

    def __init__(self, handler, name, bridge, subnet, conf_dir, plugins, subnet6=None):
        self.handler, self.name, self.bridge = handler, name, bridge
        self.subnet = ipaddress.ip_network(subnet)
        self.gateway = str(self.subnet.network_address + 1)
        self.subnet6 = None if subnet6 is None else ipaddress.ip_network(subnet6)
        self.gateway6 = None if subnet6 is None else str(self.subnet6.network_address + 1)
        self.conf_dir = conf_dir
        self.conflist = {"cniVersion": "1.0.0", "name": name, "plugins": plugins}


class Sandbox:
    """A pod sandbox the node started: its ID, pod address, network namespace and host veth."""

    def __init__(self, node, sandbox_id, name, network, config):
        self.node, self.id, self.name, self.network, self.config = node, sandbox_id, name, network, config
        status = node.cri.pod_sandbox_status(sandbox_id, verbose=True)
        self.status = status["status"]
        self.ip = self.status["network"]["ip"]
        # A dual-stack pod's other addresses (the CRI reports the IPv4 one as ip).
        self.additional_ips = [item["ip"] for item in self.status["network"].get("additional_ips") or []]
        info = status["info"]["info"]
        self.pid = info["pid"]
        # The path containerd gave the plugins (CNI_NETNS), under its state directory, in its mount
        # namespace; the test reaches the same namespace through the pause process.
        self.netns_path = [ns["path"] for ns in info["runtimeSpec"]["linux"]["namespaces"] if ns["type"] == "network"][0]
        self.netns = "/proc/%d/ns/net" % self.pid
        self.cni_result = info.get("cniResult")

    def run(self, argv, check=True, timeout=30):
        """A command of the node's own in the pod's network namespace."""
        return run(["nsenter", "--net=" + self.netns] + list(argv), check=check, timeout=timeout)

    def popen(self, argv, **kw):
        return subprocess.Popen(["nsenter", "--net=" + self.netns] + list(argv), **kw)

    def host_veth(self):
        """Name and MAC of the veth end on the node's bridge (found by the peer's ifindex)."""
        link = json.loads(self.run(["ip", "-j", "link", "show", "eth0"]).stdout)[0]
        peer = link.get("link_index")
        for host in self.node.links():
            if host["ifindex"] == peer:
                return host["ifname"], host["address"]
        raise AssertionError("no host end of %s's eth0 (peer ifindex %s) on the node" % (self.name, peer))

    def ping(self, address, count=1, wait=2):
        return self.run(["ping", "-n", "-q", "-c", str(count), "-W", str(wait), address], check=False)


class Node:
    """containerd with the CRI plugin in a node namespace; see the module's description."""

    def __init__(self, workdir=None, podnet_subnet="10.244.7.0/24", reference_subnet="10.245.7.0/24",
                 python=NODE_PYTHON, plugin_source=None, dual_stack=False, dual_subnets=("10.246.7.0/24", "fd00:10:246:7::/64")):
        """plugin_source: a module_utils directory to build podnet from, over the one the role installed.

        dual_stack: a third runtime handler (DUAL) whose network has dual_subnets (IPv4, IPv6) as pod CIDRs.
        """
        self.tag = secrets.token_hex(3)
        # Short: unix socket paths must stay under 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="pntc%s." % self.tag, dir=workdir)
        if os.path.realpath(self.dir).startswith("/run/"):
            os.rmdir(self.dir)
            raise ValueError("the test directory must not be under /run (containerd gets a /run of its own)")
        os.chmod(self.dir, 0o755)
        self.ns = "pntc%sn" % self.tag
        self.client_ns = "pntc%sc" % self.tag
        self.socket = os.path.join(self.dir, "containerd.sock")
        self.cgroup_root = "/pntc%s" % self.tag
        self.python = python
        self.plugin_source = plugin_source
        self.proc = None
        self.cri = None
        # The podnet side as the cni role installs it (its conflist is read back once written).
        self.podnet = Network(PODNET, "podnet", "cni0", podnet_subnet, os.path.join(self.dir, "net.d"), None)
        self.role_vars = {
            "podnet_pod_cidr": podnet_subnet, "podnet_cluster_cidr": str(ipaddress.ip_network(podnet_subnet).supernet(8)),
            "podnet_bridge": "cni0", "podnet_cni_network_name": "podnet", "podnet_cni_bin_dir": os.path.join(self.dir, "bin"),
            "podnet_cni_conf_dir": self.podnet.conf_dir, "podnet_cni_data_dir": os.path.join(self.dir, "ipam"),
            "podnet_cni_interpreter": python,
            "podnet_cni_chained_plugins": [{"type": "portmap", "capabilities": {"portMappings": True}}]}
        self.reference = Network(REFERENCE, "reference", "cniref0", reference_subnet, os.path.join(self.dir, "net.d-reference"), [
            {"type": "bridge", "bridge": "cniref0", "isGateway": True,
             "ipam": {"type": "host-local", "subnet": reference_subnet, "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": os.path.join(self.dir, "ipam-reference")}},
            {"type": "portmap", "capabilities": {"portMappings": True}}])
        self.networks = {PODNET: self.podnet, REFERENCE: self.reference}
        self.dual = None
        if dual_stack:
            self.dual = Network(DUAL, "podnet-dual", "cni1", dual_subnets[0], os.path.join(self.dir, "net.d-dual"), None,
                                subnet6=dual_subnets[1])
            self.networks[DUAL] = self.dual

    # ------------------------------------------------------------------------- start
    def start(self):
        try:
            self._namespaces()
            self._files()
            self._daemon()
            self._import_images()
        except BaseException:
            self.close()
            raise
        return self

    def _namespaces(self):
        run(["ip", "netns", "add", self.ns])
        run(["ip", "netns", "add", self.client_ns])
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.client_ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", self.client_ns])
        run(["ip", "-n", self.ns, "addr", "add", NODE_IP + "/30", "dev", "eth0"])
        run(["ip", "-n", self.client_ns, "addr", "add", CLIENT_IP + "/30", "dev", "eth0"])
        run(["ip", "-n", self.ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", self.client_ns, "link", "set", "eth0", "up"])
        # The client reaches pods through the node (hostPort replies go back this way).
        run(["ip", "-n", self.client_ns, "route", "add", "default", "via", NODE_IP])
        run(["ip", "netns", "exec", self.ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])

    def _files(self):
        d = self.dir
        for sub in ("bin", "net.d", "net.d-reference", "net.d-dual", "pods", "images"):
            os.mkdir(os.path.join(d, sub))
        for plugin in REFERENCE_PLUGINS:
            os.symlink(os.path.join(REFERENCE_DIR, plugin), os.path.join(d, "bin", plugin))
        self._install_podnet()
        with open(os.path.join(self.reference.conf_dir, "10-reference.conflist"), "w") as handle:
            json.dump(self.reference.conflist, handle, indent=2)
        with open(os.path.join(d, "config.toml"), "w") as handle:
            more = DUAL_RUNTIME.format(d=d, dual=DUAL, runc=RUNC) if self.dual is not None else ""
            handle.write(CONFIG.format(d=d, pause=images.PAUSE, podnet=PODNET, reference=REFERENCE, runc=RUNC,
                                       more_runtimes=more))

    def _install_podnet(self):
        """The cni role installs the plugin and its conflist (ansible-playbook against localhost).

        With a dual-stack network, a second run installs its conflist for a node with an IPv4
        and an IPv6 pod CIDR (podnet_pod_cidrs), in that network's configuration directory.
        """
        self._cni_role(self.role_vars)
        with open(os.path.join(self.podnet.conf_dir, "10-podnet.conflist")) as handle:
            self.podnet.conflist = json.load(handle)
        if self.dual is not None:
            cidrs = [str(self.dual.subnet), str(self.dual.subnet6)]
            dual_vars = dict(self.role_vars, podnet_pod_cidrs=cidrs,
                             podnet_cluster_cidrs=[str(ipaddress.ip_network(c).supernet(8)) for c in cidrs],
                             podnet_bridge=self.dual.bridge, podnet_cni_network_name=self.dual.name,
                             podnet_cni_conf_dir=self.dual.conf_dir, podnet_cni_chained_plugins=[])
            del dual_vars["podnet_pod_cidr"], dual_vars["podnet_cluster_cidr"]
            self._cni_role(dual_vars)
            with open(os.path.join(self.dual.conf_dir, "10-podnet.conflist")) as handle:
                self.dual.conflist = json.load(handle)
        if self.plugin_source:
            run([sys.executable, BUILD, os.path.join(self.dir, "bin", "podnet"), "--interpreter", self.python,
                 "--source", self.plugin_source])

    def _cni_role(self, role_vars):
        playbook = os.path.join(self.dir, "cni.yml")
        with open(playbook, "w") as handle:
            handle.write(PLAYBOOK)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_HOST_KEY_CHECKING="0",
                   ANSIBLE_LOCAL_TEMP=os.path.join(self.dir, "ansible-local"),
                   ANSIBLE_REMOTE_TEMP=os.path.join(self.dir, "ansible-remote"), ANSIBLE_NOCOLOR="1")
        extra = dict(role_vars, ansible_python_interpreter=sys.executable, ansible_connection="local")
        ansible = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        out = run([ansible, "-i", "localhost,", playbook, "-e", json.dumps(extra)], check=False, timeout=300,
                  env=env, cwd=self.dir)
        if out.returncode != 0:
            raise RuntimeError("the cni role failed:\n%s%s" % (out.stdout[-4000:], out.stderr[-2000:]))

    def _daemon(self):
        logfile = open(os.path.join(self.dir, "containerd.log"), "w")
        try:
            self.proc = subprocess.Popen(
                ["nsenter", "--net=/run/netns/" + self.ns, "unshare", "--mount", "--propagation", "private", "--",
                 "sh", "-c", START, "start", self.dir, CONTAINERD],
                stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent)
        finally:
            logfile.close()
        self.cri = cri.RuntimeService(self.socket)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited with %s:\n%s" % (self.proc.returncode, self.daemon_log()))
            if os.path.exists(self.socket):
                try:
                    self.version = self.cri.version(timeout=2)
                    return
                except cri.CRIError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("containerd did not answer on %s within 30 s:\n%s" % (self.socket, self.daemon_log()))
            time.sleep(0.05)

    def _import_images(self):
        for name, path in images.build(os.path.join(self.dir, "images")).items():
            run([CTR, "-a", self.socket, "-n", "k8s.io", "images", "import", path])

    def daemon_log(self, tail=6000):
        try:
            with open(os.path.join(self.dir, "containerd.log")) as handle:
                return handle.read()[-tail:]
        except OSError:
            return ""

    # ------------------------------------------------------------------------- pods
    def sandbox_config(self, name, uid=None, port_mappings=()):
        """PodSandboxConfig of a pod, and its log directory made (kubelet makes it before RunPodSandbox)."""
        uid = uid or secrets.token_hex(8)
        log_directory = os.path.join(self.dir, "pods", "default_%s_%s" % (name, uid))
        os.makedirs(log_directory, mode=0o755)
        return cri.sandbox_config(
            name, uid, namespace="default", attempt=0, log_directory=log_directory,
            cgroup_parent="%s/kubepods/besteffort/pod%s" % (self.cgroup_root, uid),
            port_mappings=port_mappings, labels={"podnet.test/run": self.tag, "io.kubernetes.pod.name": name,
                                                 "io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": uid})

    def run_pod(self, name, handler=PODNET, port_mappings=()):
        """RunPodSandbox, then the sandbox's status: a Sandbox."""
        config = self.sandbox_config(name, port_mappings=port_mappings)
        sandbox_id = self.cri.run_pod_sandbox(config, handler)
        return Sandbox(self, sandbox_id, name, self.networks[handler], config)

    def run_pods(self, names, handler=PODNET, workers=None):
        """RunPodSandbox of every name at once (one thread each, as kubelet's pod workers)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers or len(names)) as pool:
            return list(pool.map(lambda name: self.run_pod(name, handler), names))

    def remove_pod(self, sandbox):
        """StopPodSandbox then RemovePodSandbox, as kubelet ends a pod."""
        sandbox_id = getattr(sandbox, "id", sandbox)
        self.cri.stop_pod_sandbox(sandbox_id)
        self.cri.remove_pod_sandbox(sandbox_id)

    def run_container(self, sandbox, name, command, image=images.BUSYBOX):
        """CreateContainer and StartContainer of a busybox container in the sandbox."""
        config = cri.container_config(name, image, command=command, log_path="%s.log" % name)
        container_id = self.cri.create_container(sandbox.id, config, sandbox.config)
        self.cri.start_container(container_id)
        return container_id

    # ------------------------------------------------------------------------- the node's state
    def links(self):
        return json.loads(run(["ip", "-n", self.ns, "-j", "link", "show"]).stdout)

    def host_veths(self):
        """Names of the veth ends on the node (the node's own eth0 aside)."""
        out = run(["ip", "-n", self.ns, "-j", "link", "show", "type", "veth"]).stdout
        return sorted(link["ifname"] for link in json.loads(out) if link["ifname"] != "eth0")

    def bridge(self, network):
        for link in self.links():
            if link["ifname"] == network.bridge:
                return link
        return None

    def reservations(self, network=None):
        """Addresses the podnet IPAM holds (both families): files named after an address in <dataDir>/<name>/."""
        network = network or self.podnet
        state = os.path.join(network.conflist["plugins"][0]["ipam"]["dataDir"], network.name)
        try:
            names = os.listdir(state)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                continue
            out.append(name)
        return sorted(out, key=lambda text: (":" in text, text))

    def in_node(self, argv, check=True, timeout=30):
        return run(["ip", "netns", "exec", self.ns] + list(argv), check=check, timeout=timeout)

    def in_client(self, argv, check=True, timeout=30):
        return run(["ip", "netns", "exec", self.client_ns] + list(argv), check=check, timeout=timeout)

    # ------------------------------------------------------------------------- end
    def remove_all(self):
        """Stop and remove every sandbox of this run (CNI DEL for each), in parallel."""
        if self.cri is None:
            return
        ids = [s["id"] for s in self.cri.list_pod_sandbox(labels={"podnet.test/run": self.tag})]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(12, len(ids)))) as pool:
            list(pool.map(self.remove_pod, ids))

    def close(self):
        errors = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.remove_all()
            except Exception as error:  # pylint: disable=broad-except
                errors.append("removing the sandboxes: %s" % error)
        if self.cri is not None:
            self.cri.close()
            self.cri = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.proc = None
        # Shims outlive containerd when a sandbox was left, and so do the processes they hold:
        # this run's are those whose command line names its directory (the shims) and those
        # in its cgroups (pause processes, containers).
        self._end_processes()
        self._remove_cgroups()
        for ns in (self.ns, self.client_ns):
            if os.path.exists("/run/netns/" + ns):
                run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise RuntimeError("; ".join(errors))

    def _cgroup_tops(self):
        base = "/sys/fs/cgroup"
        tops = [os.path.join(base, h, self.cgroup_root.lstrip("/")) for h in sorted(os.listdir(base))]
        return [top for top in tops if os.path.isdir(top)]

    def _processes_of_run(self):
        pids = set()
        needle = self.dir.encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as handle:
                        if needle in handle.read():
                            pids.add(int(entry))
                except OSError:
                    pass
        for top in self._cgroup_tops():
            for dirpath, _dirs, files in os.walk(top):
                if "cgroup.procs" in files:
                    try:
                        with open(os.path.join(dirpath, "cgroup.procs")) as handle:
                            pids.update(int(line) for line in handle if line.strip())
                    except OSError:
                        pass
        return sorted(pids)

    def _end_processes(self):
        for _attempt in range(50):
            pids = self._processes_of_run()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def _remove_cgroups(self):
        """The pods' cgroup parents (runc made them under cgroup_root in every hierarchy), deepest first."""
        for top in self._cgroup_tops():
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
