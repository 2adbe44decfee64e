# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A lab node's boot (pure): its enabled systemd units, in the order systemd starts them.

PID 1 is not systemd on the machine that runs the lab, so a lab node "boots"
by running the units enabled in its own /etc/systemd/system the way systemd
would: the units linked in the ``.wants/`` and ``.requires/`` directories of
the boot targets (``multi-user.target`` and what it pulls in, see
``BOOT_TARGETS``) and, in turn, of those units; ordered by ``After=`` and
``Before=`` between them; services only. What is read inside the node comes
from ``LIST_UNITS`` (run there with the module's Python); running the commands
is the session's (``lab.session``).

Supported: ``Type=`` oneshot (every ``ExecStartPre=``, ``ExecStart=``,
``ExecStartPost=`` line in turn, waited for), simple, exec, notify and idle
(``ExecStart=`` started in the background), forking (waited for);
``Environment=``, ``EnvironmentFile=``, ``WorkingDirectory=``, the command
prefixes ``-`` (a failure is ignored) and ``@``, ``:``, ``+``, ``!`` (no
effect here), the specifiers ``%n %N %p %i %%`` and ``$VAR``/``${VAR}``,
``ConditionPathExists=``, ``ConditionPathIsDirectory=``,
``ConditionFileNotEmpty=``, ``ConditionDirectoryNotEmpty=`` (also negated with
``!``); ``User=`` only as root.
"""

from __future__ import annotations

import re
import shlex

# Targets a default boot (multi-user.target) reaches.
BOOT_TARGETS = ("local-fs.target", "sysinit.target", "basic.target", "network-pre.target", "network.target",
                "network-online.target", "remote-fs.target", "timers.target", "sockets.target",
                "multi-user.target", "default.target")
# systemd's default PATH for services.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONDITIONS = {
    "ConditionPathExists": "-e",
    "ConditionPathIsDirectory": "-d",
    "ConditionFileNotEmpty": "-s",
    "ConditionDirectoryNotEmpty": "dir-not-empty",
}
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost")
BACKGROUND = ("simple", "exec", "notify", "notify-reload", "idle")

# Run inside the node with the module's Python: the enabled units reachable from
# the boot targets, as JSON {units: {name: {path, text}}, missing: [link names]}.
LIST_UNITS = r"""
import json, os, sys
base = "/etc/systemd/system"
todo = list(sys.argv[1:])
seen, units, missing = set(), {}, []
while todo:
    owner = todo.pop(0)
    if owner in seen:
        continue
    seen.add(owner)
    for suffix in (".wants", ".requires"):
        d = os.path.join(base, owner + suffix)
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            if name in units:
                continue
            path = os.path.realpath(os.path.join(d, name))
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                missing.append(name)
                continue
            units[name] = {"path": path, "text": text}
            todo.append(name)
print(json.dumps({"units": units, "missing": missing}))
"""


class BootError(Exception):
    """A unit that cannot be run as written (parse or order error)."""


def parse_unit(text):
    """systemd unit text -> {section: {key: [values]}} (an empty value resets the list)."""
    sections = {}
    current = None
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        while line.endswith("\\") and index < len(lines):
            line = line[:-1] + " " + lines[index].strip()
            index += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if value == "":
            current[key] = []
        else:
            current.setdefault(key, []).append(value)
    return sections


def _words(values):
    result = []
    for value in values:
        result.extend(value.split())
    return result


def unit_info(name, text):
    """The parts of a unit the boot uses."""
    sections = parse_unit(text)
    unit = sections.get("Unit", {})
    service = sections.get("Service", {})
    info = {
        "name": name,
        "after": _words(unit.get("After", [])),
        "before": _words(unit.get("Before", [])),
        "conditions": [],
        "type": (service.get("Type") or ["simple" if service.get("ExecStart") else "oneshot"])[-1],
        "exec": [(key, value) for key in EXEC_KEYS for value in service.get(key, [])],
        "environment": [],
        "environment_files": list(service.get("EnvironmentFile", [])),
        "directory": (service.get("WorkingDirectory") or [None])[-1],
        "user": (service.get("User") or [None])[-1],
    }
    for key in sorted(CONDITIONS):
        for value in unit.get(key, []):
            negate = value.startswith("!")
            info["conditions"].append((key, value.lstrip("|!"), negate))
    for value in service.get("Environment", []):
        for word in shlex.split(value):
            if "=" in word:
                info["environment"].append(tuple(word.split("=", 1)))
    if info["type"] not in BACKGROUND + ("oneshot", "forking"):
        raise BootError("unit %s: Type=%s is not supported by the lab's boot" % (name, info["type"]))
    if info["user"] not in (None, "root", "0"):
        raise BootError("unit %s: User=%s is not supported by the lab's boot (units run as root)"
                        % (name, info["user"]))
    if info["type"] != "oneshot" and not any(key == "ExecStart" for key, _value in info["exec"]):
        raise BootError("unit %s: Type=%s needs ExecStart=" % (name, info["type"]))
    return info


def order(infos):
    """Services of infos (list of unit_info) in start order: After=/Before= between them, else by name."""
    services = dict((i["name"], i) for i in infos if i["name"].endswith(".service"))
    before = dict((name, set()) for name in services)  # name -> units that must run first
    for name, info in services.items():
        for other in info["after"]:
            if other in services and other != name:
                before[name].add(other)
        for other in info["before"]:
            if other in services and other != name:
                before[other].add(name)
    result = []
    done = set()
    while len(result) < len(services):
        ready = sorted(n for n in services if n not in done and before[n] <= done)
        if not ready:
            cycle = sorted(n for n in services if n not in done)
            raise BootError("ordering cycle between the units %s (After=/Before=)" % ", ".join(cycle))
        result.append(services[ready[0]])
        done.add(ready[0])
    return result


def _specifiers(text, unit):
    prefix, _dot, _suffix = unit.rpartition(".")
    instance = prefix.split("@", 1)[1] if "@" in prefix else ""
    values = {"n": unit, "N": prefix, "p": prefix.split("@", 1)[0], "i": instance, "%": "%"}
    return re.sub(r"%(.)", lambda m: values.get(m.group(1), m.group(0)), text)


def command(line, unit, environment):
    """An Exec line -> (argv, ignore_failure); prefixes, specifiers and variables applied."""
    ignore = False
    while line[:1] in ("-", "@", ":", "+", "!"):
        ignore = ignore or line[0] == "-"
        line = line[1:]
    try:
        words = shlex.split(_specifiers(line, unit))
    except ValueError as exc:
        raise BootError("unit %s: cannot parse %r: %s" % (unit, line, exc))
    argv = []
    for word in words:
        whole = re.match(r"^\$([A-Za-z_][A-Za-z0-9_]*)$", word)
        if whole:
            argv.extend(environment.get(whole.group(1), "").split())
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: environment.get(m.group(1), ""), word))
    if not argv:
        raise BootError("unit %s: empty command line %r" % (unit, line))
    return argv, ignore


def environment_file(text):
    """KEY=value lines of an EnvironmentFile= (comments and blank lines skipped)."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[key.strip()] = value
    return result
