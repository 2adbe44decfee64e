# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab on the machine: its current state (``read``) and the session that applies plans.

Namespace files are made by util-linux unshare(1), several at once; links,
addresses and routes by the netlink layer (``kernel.netlink``), opened on
namespace file paths only; mounts by mount(2)/umount2(2) (``lab.mounts``)
and the router's forwarding by writing /proc/sys from inside its namespace
(``kernel.netns``). pyroute2 is only needed when there is netlink work:
teardown runs without it.
"""

from __future__ import annotations

import errno
import os
import subprocess

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError, ToolError
from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import MAIN_TABLE, Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import read_sysctl, write_sysctl
from ansible_collections.podnet.mesh.plugins.module_utils.lab.mounts import (
    is_marked, members_from_files, mount_private, namespace_inodes, processes_in, read_lab_mounts, remove_tree,
    stop_processes, unknown_entries, unmount_all, unshare_command, write_marker)
from ansible_collections.podnet.mesh.plugins.module_utils.lab.topology import (
    EXTERNAL, INFRA, ROUTER, members, ns_file)

FORWARDING = "net/ipv4/ip_forward"
# Node and infrastructure namespaces made at once (unshare processes).
CREATE_PARALLEL = 64


# --------------------------------------------------------------------- read
def read(session, want):
    """Current state of the lab (see lab.plan.plan() for the shape)."""
    lab = want["path"]
    exists = os.path.isdir(lab)
    mounts = read_lab_mounts(lab)
    dirs = []
    if exists:
        dirs = sorted(d for d in os.listdir(lab) if os.path.isdir(os.path.join(lab, d)))
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
    }
    if want["state"] == "absent":
        return cur
    wanted = dict(members(want))
    for label, kinds in cur["members"].items():
        if "net" not in kinds or label not in wanted or set(kinds) != set(wanted[label]):
            continue
        ns = session.ns(ns_file(lab, label))
        links = ns.links(with_addresses=["eth0", "eth1"])
        cur["links"][label] = links
        if label == EXTERNAL or label not in INFRA:
            cur["routes"][label] = ns.routes(MAIN_TABLE, families=(4,), links=links)
        if label == ROUTER:
            cur["forwarding"][label] = read_sysctl(FORWARDING, ns_file(lab, label)) == "1"
    return cur


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
        # peer) is as deleted as we wanted it.
        if action.op == Op.LINK_DEL and exc.code == errno.ENODEV:
            return
        raise
    finally:
        del netlink.applied[:]


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


# op -> handler(session, action): the lab's own operations; every other op goes to netlink.
HANDLERS = {
    Op.LAB_MOUNT: _lab_mount,
    Op.NS_REMOVE: _ns_remove,
    Op.UMOUNT: _umount,
    Op.LAB_REMOVE: _lab_remove,
    Op.SYSCTL: _sysctl,
}
