# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab on the machine: its current state (``read``) and the session that applies plans.

Namespace files are made by util-linux unshare(1), several at once; links,
addresses and routes by the netlink layer (``kernel.netlink``), opened on
namespace file paths only; mounts by mount(2)/umount2(2) (``lab.mounts``)
and the router's forwarding and the IPv6 settings of the lab's namespaces by
writing /proc/sys from inside the namespace (``kernel.netns``). IPv6 addresses
are added with IFA_F_NODAD (planned so by ``core.plan.links``): usable at once,
never tentative. pyroute2 is only needed when there is netlink work: teardown
runs without it.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError, ToolError
from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import MAIN_TABLE, Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import InNetns, read_sysctl, write_sysctl
from ansible_collections.podnet.mesh.plugins.module_utils.lab import boot
from ansible_collections.podnet.mesh.plugins.module_utils.lab.mounts import (
    SSHD, SSHD_SETUP, is_marked, members_from_files, mount_private, namespace_inodes, processes_in,
    read_lab_mounts, remove_member_files, remove_tree, sshd_processes, stop_processes, unknown_entries,
    unmount_all, unshare_command, write_marker)
from ansible_collections.podnet.mesh.plugins.module_utils.lab.plan import (
    BOOT, FORWARDING, FORWARDING6, IPV6_SETTINGS, SSH_KEY, SSHD_START, SSHD_STOP)
from ansible_collections.podnet.mesh.plugins.module_utils.lab.topology import (
    CONTROLLER, EXTERNAL, IPV6_CONF, NODE_LAYERS, NOT_NODES, ROUTER, SSH_UID, members, ns_file, router_interfaces,
    ssh_paths, topology)

IPV6_SYSCTL = "/proc/sys/net/ipv6/conf"
# Node and infrastructure namespaces made at once (unshare processes).
CREATE_PARALLEL = 64
# Seconds a boot unit's command may take (systemd's default TimeoutStartSec).
UNIT_TIMEOUT = 90


# --------------------------------------------------------------------- read
def read(session, want):
    """Current state of the lab (see lab.plan.plan() for the shape)."""
    lab = want["path"]
    exists = os.path.isdir(lab)
    mounts = read_lab_mounts(lab)
    dirs = []
    if exists:
        dirs = sorted(d for d in os.listdir(lab)
                      if not d.startswith(".") and os.path.isdir(os.path.join(lab, d)))
    cur = {
        "exists": exists or mounts["mounted"],
        "mounted": mounts["mounted"],
        "shared": mounts["shared"],
        "strays": list(mounts["strays"]),
        "dirs": dirs,
        "members": members_from_files(lab, mounts["files"], dirs),
        "marked": exists and is_marked(lab),
        "unknown": unknown_entries(lab) if exists else [],
        "links": {},
        "routes": {},
        "forwarding": {},
        "forwarding6": {},
        "ipv6_conf": {},
        "ssh_key": os.path.isfile(ssh_paths(lab)["key"]) and os.path.isfile(ssh_paths(lab)["key"] + ".pub"),
        "layered": [d for d in dirs if os.path.isdir(os.path.join(lab, d, NODE_LAYERS))],
        "sshd": [],
    }
    if want["state"] == "absent":
        return cur
    if want.get("ssh") or CONTROLLER in cur["members"]:
        cur["sshd"] = _sshd_nodes(lab, cur["members"])
    wanted = dict(members(want))
    conf = topology(want)["ipv6_conf"] if want.get("ipv6") else {}
    for label, kinds in cur["members"].items():
        if "net" not in kinds or label not in wanted or set(kinds) != set(wanted[label]):
            continue
        ns = session.ns(ns_file(lab, label))
        links = ns.links(with_addresses=router_interfaces(want) if label == ROUTER else ["eth0"])
        cur["links"][label] = links
        if label in (EXTERNAL, CONTROLLER) or label not in NOT_NODES:
            # IPv6 too, also without ipv6: routes of a lab that had it are removed.
            cur["routes"][label] = ns.routes(MAIN_TABLE, families=(4, 6), links=links)
        if label == ROUTER:
            cur["forwarding"][label] = read_sysctl(FORWARDING, ns_file(lab, label)) == "1"
        if label in conf:
            cur["ipv6_conf"][label], forwarding6 = _read_ipv6(ns_file(lab, label), conf[label])
            if label == ROUTER:
                cur["forwarding6"][label] = forwarding6
    return cur


def _read_ipv6(path, interfaces):
    """(IPV6_CONF is set for all, default and the interfaces that exist, IPv6 forwarding is on) in path."""
    values = {}
    try:
        with InNetns(path):
            for name in ["all", "default"] + list(interfaces):
                for key, _value in IPV6_CONF:
                    try:
                        with open(os.path.join(IPV6_SYSCTL, name, key)) as handle:
                            values[(name, key)] = handle.read().strip()
                    except FileNotFoundError:
                        if name in ("all", "default"):
                            values[(name, key)] = None  # no IPv6 in this kernel: the plan sets it, and says so
            try:
                with open(os.path.join("/proc/sys", FORWARDING6)) as handle:
                    forwarding6 = handle.read().strip() == "1"
            except FileNotFoundError:
                forwarding6 = False
    except OSError as exc:
        raise ToolError("cannot read the IPv6 settings in %s: %s" % (path, exc.strerror or exc), exc.errno)
    wanted = dict(IPV6_CONF)
    return all(value == wanted[key] for (_name, key), value in values.items()), forwarding6


def _sshd_nodes(lab, members_):
    """Nodes with sshd running inside (sorted)."""
    files = dict((label, ns_file(lab, label)) for label, kinds in members_.items()
                 if label not in NOT_NODES and "net" in kinds)
    inodes = dict((key, label) for label, path in files.items() for key in namespace_inodes([path]))
    return sorted(inodes[key] for key in sshd_processes(set(inodes)))


# ------------------------------------------------------------------ session
def netlink_session():
    """The netlink session of the lab: it opens namespace files given by path only.

    The namespace the module runs in is refused: the lab never changes it.
    """
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netlink import (  # pylint: disable=import-outside-toplevel
        Session)
    return Session(named_only=True)


class LabSession(model.Session):
    """Executes lab plans: the lab's own operations here (``HANDLERS``), the rest via netlink.

    Reads go through ns(path), which opens (once) a netlink handle in a
    namespace file. ``applied`` lists the actions done so far.
    """

    def __init__(self, netlink_factory=None, unshare="unshare"):
        self._factory = netlink_factory or netlink_session
        self._netlink = None
        self.unshare = unshare
        self.applied = []

    def netlink(self):
        """The netlink session, opened on first use."""
        if self._netlink is None:
            self._netlink = self._factory()
        return self._netlink

    def ns(self, path):
        return self.netlink().ns(path)

    def forget(self, path):
        """Close the netlink handle of a namespace file about to go away (if one is open)."""
        if self._netlink is not None:
            self._netlink.forget(path)

    def close(self):
        if self._netlink is not None:
            self._netlink.close()
            self._netlink = None

    def apply(self, actions):
        # Processes still inside namespaces that go away (a probe left running,
        # a shell) would keep them alive: stop them first, in one pass over /proc.
        doomed = [os.path.join(a.args["path"], kind)
                  for a in actions if a.op == Op.NS_REMOVE for kind in a.args["files"]]
        if doomed:
            stop_processes(processes_in(namespace_inodes(doomed)))
        pending = []
        for action in actions:
            if action.op == Op.NS_CREATE:
                pending.append(action)
                continue
            self._create(pending)
            HANDLERS.get(action.op, _netlink_op)(self, action)
            self.applied.append(action)
        self._create(pending)

    def _create(self, pending):
        """Make the namespace files of several members at once."""
        if not pending:
            return
        batch, rest = pending[:CREATE_PARALLEL], pending[CREATE_PARALLEL:]
        procs = []
        try:
            for action in batch:
                path = action.args["path"]
                os.makedirs(path, mode=0o755, exist_ok=True)
                for kind in action.args["files"]:
                    open(os.path.join(path, kind), "a").close()
                argv = unshare_command(path, action.name, action.args["files"],
                                       action.args["root"], self.unshare)
                procs.append((action, subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)))
        except OSError as exc:
            for _action, proc in procs:
                proc.wait()
            raise ToolError("cannot create the namespaces of %s: %s"
                            % (pending[len(procs)].args["path"], exc.strerror or exc), exc.errno)
        failed = []
        for action, proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                failed.append("%s: %s" % (action.args["path"],
                                          (err or out).decode("utf-8", "replace").strip()))
            else:
                self.applied.append(action)
        if failed:
            raise ToolError("cannot create lab namespaces (unshare): %s" % "; ".join(failed))
        del pending[:]
        if rest:
            pending.extend(rest)
            self._create(pending)


# ------------------------------------------------------------------ handlers
def _netlink_op(session, action):
    """Links, addresses and routes: one action at a time through the netlink session."""
    netlink = session.netlink()
    try:
        netlink.apply([action])
    except KernelError as exc:
        # A link the kernel removed meanwhile with its namespace (or veth
        # peer) is as deleted as we wanted it; so is a route that went with
        # its address.
        if action.op == Op.LINK_DEL and exc.code == errno.ENODEV:
            return
        if action.op == Op.ROUTE_DEL and exc.code == errno.ESRCH:
            return
        raise
    finally:
        del netlink.applied[:]


def _ipv6_conf(session, action):  # pylint: disable=unused-argument
    """IPV6_CONF for all, default and the member's lab interfaces that exist (links made later inherit default)."""
    path = action.args["path"]
    try:
        with InNetns(path):
            if not os.path.isdir(IPV6_SYSCTL):
                raise ToolError("the lab's ipv6 needs IPv6 in the kernel, and %s has none (%s is missing; "
                                "booted with ipv6.disable=1?)" % (path, IPV6_SYSCTL))
            for name in ["all", "default"] + list(action.args["interfaces"]):
                directory = os.path.join(IPV6_SYSCTL, name)
                if name not in ("all", "default") and not os.path.isdir(directory):
                    continue  # made later, from default
                for key, value in action.args["settings"]:
                    with open(os.path.join(directory, key), "w") as handle:
                        handle.write(value)
    except OSError as exc:
        raise ToolError("cannot set the IPv6 settings in %s: %s" % (path, exc.strerror or exc), exc.errno)


def _lab_mount(session, action):  # pylint: disable=unused-argument
    # The marker first: a directory this run made is a lab from its first moment on.
    write_marker(action.name)
    mount_private(action.name)


def _ns_remove(session, action):
    path = action.args["path"]
    for kind in action.args["files"]:
        name = os.path.join(path, kind)
        session.forget(name)
        unmount_all(name)
    if action.args.get("keep"):
        remove_member_files(path, action.args["files"])
    else:
        remove_tree(path)


def _umount(session, action):  # pylint: disable=unused-argument
    unmount_all(action.name)


def _lab_remove(session, action):  # pylint: disable=unused-argument
    unmount_all(action.name)
    remove_tree(action.name)


def _sysctl(session, action):  # pylint: disable=unused-argument
    args = action.args
    try:
        write_sysctl(args["key"], args["value"], netns=args["path"])
    except OSError as exc:
        raise ToolError("cannot set %s=%s in %s: %s" % (
            args["key"], args["value"], args["path"], exc.strerror or exc), exc.errno)


def _run(argv, what, timeout=120, env=None):
    """Run argv; ToolError naming what (and the output) when it fails."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError("%s: %s" % (what, getattr(exc, "strerror", None) or exc))
    if proc.returncode != 0:
        output = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
        raise ToolError("%s failed (exit code %d)%s" % (what, proc.returncode, ": " + output if output else ""))
    return proc.stdout.decode("utf-8", "replace")


def in_node(path, argv):
    """argv that runs argv inside the node at path (network, mount and UTS namespace)."""
    return ["nsenter", "--net=%s" % os.path.join(path, "net"), "--mount=%s" % os.path.join(path, "mnt"),
            "--uts=%s" % os.path.join(path, "uts"), "--"] + list(argv)


def _ssh_key(session, action):  # pylint: disable=unused-argument
    paths = ssh_paths(action.name)
    try:
        os.makedirs(paths["control_dir"], mode=0o700, exist_ok=True)
        os.chmod(paths["dir"], 0o700)
        for name in (paths["key"], paths["key"] + ".pub"):
            if os.path.lexists(name):
                os.unlink(name)
        open(paths["known_hosts"], "a").close()
    except OSError as exc:
        raise ToolError("cannot prepare %s: %s" % (paths["dir"], exc.strerror or exc), exc.errno)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "podnet-lab", "-f", paths["key"]],
         "making the lab's SSH key %s (ssh-keygen)" % paths["key"])


def _sshd_start(session, action):  # pylint: disable=unused-argument
    args = action.args
    if not os.access(SSHD, os.X_OK):
        raise ToolError("the lab's ssh option needs OpenSSH's sshd (%s) on this machine: "
                        "apt-get install openssh-server sudo" % SSHD)
    try:
        with open(args["key"] + ".pub") as handle:
            key = handle.read().strip()
    except OSError as exc:
        raise ToolError("cannot read %s.pub: %s" % (args["key"], exc.strerror), exc.errno)
    _run(in_node(args["path"], ["/bin/sh", "-c", SSHD_SETUP, "podnet-lab", args["user"], str(SSH_UID), key,
                                args["ip"], SSHD]),
         "starting sshd on node %s" % action.name)


def _sshd_stop(session, action):  # pylint: disable=unused-argument
    inodes = namespace_inodes([os.path.join(action.args["path"], "net")])
    stop_processes([pid for pids in sshd_processes(inodes).values() for pid in pids])


def _boot(session, action):  # pylint: disable=unused-argument
    """Run the node's enabled boot units, in order; the first that fails fails the task."""
    path = action.args["path"]
    if not _has_enabled_units(os.path.join(path, NODE_LAYERS, "etc", "upper", "systemd", "system")):
        return
    found = json.loads(_run(in_node(path, [sys.executable, "-c", boot.LIST_UNITS] + list(boot.BOOT_TARGETS)),
                            "listing the boot units of node %s" % action.name))
    if found["missing"]:
        raise ToolError("node %s: enabled unit(s) %s point at no unit file"
                        % (action.name, ", ".join(sorted(found["missing"]))))
    try:
        units = boot.order([boot.unit_info(name, unit["text"]) for name, unit in sorted(found["units"].items())])
    except boot.BootError as exc:
        raise ToolError("node %s: %s" % (action.name, exc))
    for unit in units:
        _start_unit(path, action.name, unit)


def _has_enabled_units(system):
    try:
        entries = os.listdir(system)
    except OSError:
        return False
    for entry in entries:
        if entry.endswith((".wants", ".requires")):
            try:
                if os.listdir(os.path.join(system, entry)):
                    return True
            except OSError:
                continue
    return False


def _start_unit(path, node, unit):
    name = unit["name"]
    for key, target, negate in unit["conditions"]:
        test = boot.CONDITIONS[key]
        script = ('[ -n "$(ls -A "$1" 2>/dev/null)" ]' if test == "dir-not-empty" else 'test %s "$1"' % test)
        met = subprocess.run(in_node(path, ["/bin/sh", "-c", script, "podnet-lab", target]),
                             stdin=subprocess.DEVNULL, capture_output=True, check=False).returncode == 0
        if met == negate:
            return  # as systemd: a unit whose condition fails is skipped
    environment = {"PATH": boot.DEFAULT_PATH, "LANG": "C.UTF-8", "HOME": "/root", "USER": "root",
                   "LOGNAME": "root", "SHELL": "/bin/sh", "INVOCATION_ID": "podnet-lab"}
    for item in unit["environment_files"]:
        optional = item.startswith("-")
        item = item.lstrip("-")
        try:
            text = _run(in_node(path, ["cat", item]), "reading %s" % item)
        except ToolError:
            if optional:
                continue
            raise ToolError("node %s: unit %s failed: cannot read its EnvironmentFile %s" % (node, name, item))
        environment.update(boot.environment_file(text))
    environment.update(unit["environment"])
    prefix = ["env", "-i"] + ["%s=%s" % item for item in sorted(environment.items())]
    if unit["directory"]:
        prefix = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "podnet-lab", unit["directory"].lstrip("-")] + prefix
    for key, line in unit["exec"]:
        try:
            argv, ignore = boot.command(line, name, environment)
        except boot.BootError as exc:
            raise ToolError("node %s: %s" % (node, exc))
        if unit["type"] in boot.BACKGROUND and key == "ExecStart":
            try:
                subprocess.Popen(in_node(path, prefix + argv), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                raise ToolError("node %s: unit %s failed: %s: %s" % (node, name, argv[0], exc.strerror or exc))
            continue
        try:
            proc = subprocess.run(in_node(path, prefix + argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, check=False, timeout=UNIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ToolError("node %s: boot unit %s failed: %s=%s did not finish within %d seconds"
                            % (node, name, key, line, UNIT_TIMEOUT))
        except OSError as exc:
            raise ToolError("node %s: boot unit %s failed: %s" % (node, name, exc.strerror or exc))
        if proc.returncode != 0 and not ignore:
            raise ToolError("node %s: boot unit %s failed: %s=%s exited with code %d: %s" % (
                node, name, key, line, proc.returncode, proc.stdout.decode("utf-8", "replace").strip()))


# op -> handler(session, action): the lab's own operations; every other op goes to netlink.
HANDLERS = {
    Op.LAB_MOUNT: _lab_mount,
    Op.NS_REMOVE: _ns_remove,
    Op.UMOUNT: _umount,
    Op.LAB_REMOVE: _lab_remove,
    Op.SYSCTL: _sysctl,
    IPV6_SETTINGS: _ipv6_conf,
    SSH_KEY: _ssh_key,
    SSHD_START: _sshd_start,
    SSHD_STOP: _sshd_stop,
    BOOT: _boot,
}
