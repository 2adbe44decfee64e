# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kernel settings of a node the restore makes outside netlink and NAT: modules and sysctls.

``plan_kernel`` (pure) turns the state's ``kernel`` section and what was read
into actions: a module to load (``MODPROBE``), then each sysctl whose value
differs (``Op.SYSCTL``, as the masquerade planner sets ``ip_forward``).
``Session`` reads and applies them through a ``kernel.nat.Runner``-like runner
(``which``, ``run``, ``read_file``, ``write_file``).
"""

from __future__ import annotations

import os

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ToolError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op, Plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.nat import ToolSession

# Load a kernel module (modprobe); an operation of the restore's own.
MODPROBE = "modprobe"
PROC_SYS = "/proc/sys"
SYS_MODULE = "/sys/module"
# Modules whose features a directory proves present: built into the kernel, a module
# has no /sys/module entry (without parameters) and modprobe may not be there at all.
# node_network loads br_netfilter only when /proc/sys/net/bridge is missing; so does the restore.
PRESENT_WHEN = {"br_netfilter": "/proc/sys/net/bridge"}


def module_present(name, exists=os.path.isdir):
    """Whether a kernel module is there: loaded (/sys/module), or its feature's directory is (PRESENT_WHEN)."""
    return exists(os.path.join(SYS_MODULE, name)) or (name in PRESENT_WHEN and exists(PRESENT_WHEN[name]))


def sysctl_path(key):
    """/proc/sys path of a dotted sysctl name."""
    return os.path.join(PROC_SYS, *key.split("."))


def plan_kernel(want, current, assume_missing=False):  # pylint: disable=unused-argument
    """want: {modules, sysctls: [(key, value)]}; current: {modules: {name: loaded}, sysctls: {key: value or None}}."""
    before = {"modules": sorted(m for m, loaded in current["modules"].items() if loaded),
              "sysctls": dict(current["sysctls"])}
    plan = Plan(before, {"modules": sorted(set(before["modules"]) | set(want["modules"])),
                         "sysctls": dict(current["sysctls"], **dict(want["sysctls"]))})
    for name in want["modules"]:
        if not current["modules"].get(name):
            plan.add(MODPROBE, None, name, text="load kernel module %s" % name)
    for key, value in want["sysctls"]:
        if current["sysctls"].get(key) != value:
            plan.add(Op.SYSCTL, None, key, path=sysctl_path(key), value=value, text="set %s = %s" % (key, value))
    return plan


class Session(ToolSession):
    """Reads and sets kernel modules and sysctls with one runner."""

    def read(self, want):
        sysctls = {}
        for key, _value in want["sysctls"]:
            text = self.runner.read_file(sysctl_path(key))
            sysctls[key] = None if text is None else text.strip()
        return {"modules": dict((m, module_present(m)) for m in want["modules"]),
                "sysctls": sysctls}

    def apply(self, actions):
        for action in actions:
            if action.op == MODPROBE:
                modprobe = self.runner.which("modprobe")
                if not modprobe:
                    raise ToolError("cannot %s: modprobe was not found on the node" % describe(action))
                rc, out, err = self.runner.run([modprobe, action.name])
                if rc != 0:
                    raise ToolError("cannot %s: modprobe exited with %d: %s" % (describe(action), rc, (err or out).strip()),
                                    code=rc)
            else:
                try:
                    self.runner.write_file(action.args["path"], action.args["value"] + "\n")
                except OSError as exc:
                    raise ToolError("cannot %s: %s" % (describe(action), exc), code=exc.errno)
            self.applied.append(action)
