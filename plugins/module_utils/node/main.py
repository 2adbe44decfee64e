# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line of ``podnet-restore``: the program the boot-time unit runs.

    podnet-restore [--state FILE] [--check] [--wait SECONDS] [--json]
    podnet-restore --check-state FILE [--skip-pyroute2]

Reads the node's state file (``node.state``) and restores it (``node.restore``)
in the network namespace it runs in: kernel modules and sysctls, masquerade and
forwarding, the bridge, the routes to the peers, the pods. Every change is one line on standard
output, then one summary line ("no change" when the node was as recorded).
``--check`` plans and changes nothing; ``--json`` writes one JSON object
instead of lines; ``--check-state`` only checks a state file (the persistence
role validates the file with it before installing it; it also proves that the
Python running it imports pyroute2, unless ``--skip-pyroute2``).

Exit status: 0 restored (or nothing to do), 1 a concern failed (the others
were restored), 2 the state file cannot be used or the command line is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan.nat import SBIN_DIRS
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import nat as nat_tools
from ansible_collections.podnet.mesh.plugins.module_utils.node import state as node_state
from ansible_collections.podnet.mesh.plugins.module_utils.node import system

PROGRAM = "podnet-restore"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2
PYROUTE2_MISSING = ("pyroute2 cannot be imported by %s: install it for this Python "
                    "('apt-get install python3-pyroute2' or 'pip install pyroute2>=0.7')")


class Runner(nat_tools.Runner):
    """Commands and files of the node for the NAT tools, without Ansible: subprocess, the C locale."""

    def __init__(self):  # pylint: disable=super-init-not-called
        self.module = None

    def which(self, name):
        path = os.pathsep.join([os.environ.get("PATH") or "/usr/bin:/bin"] + SBIN_DIRS)
        return shutil.which(name, path=path)

    def run(self, argv, data=None):
        env = dict(os.environ, LC_ALL="C")
        try:
            proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
        except OSError as exc:
            return 127, "", "%s: %s" % (argv[0], exc)
        return proc.returncode, proc.stdout, proc.stderr


def _say(line, stream=None):
    (stream or sys.stdout).write("%s: %s\n" % (PROGRAM, line))


def sessions():
    """The sessions a restore works through: kernel settings, the NAT tools and netlink (which needs pyroute2)."""
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink  # pylint: disable=import-outside-toplevel
    from ansible_collections.podnet.mesh.plugins.module_utils.node import restore  # pylint: disable=import-outside-toplevel
    if not netlink.HAS_PYROUTE2:
        raise RuntimeError(PYROUTE2_MISSING % sys.executable)
    runner = Runner()
    return {restore.SYSTEM: system.Session(runner), restore.NAT: nat_tools.Session(runner),
            restore.NETLINK: netlink.Session()}


def summary(outcomes, check):
    """The last line: how many changes (or would be), and which concerns failed."""
    count = sum(len(o.actions) for o in outcomes)
    failed = [o.concern for o in outcomes if o.error]
    if count == 0:
        text = "no change"
    else:
        text = "%d change%s%s" % (count, "" if count == 1 else "s", " would be made" if check else "")
    if failed:
        text += "; failed: %s" % ", ".join(failed)
    return text


def run(args, make_sessions=sessions):
    """One run as the command line asked; returns the exit status."""
    try:
        loaded = node_state.load(args.check_state or args.state)
    except (OSError, ValidationError) as exc:
        _say("cannot use the state file %s: %s" % (args.check_state or args.state, exc), sys.stderr)
        return EXIT_UNUSABLE
    if args.check_state:
        if not args.skip_pyroute2:
            from ansible_collections.podnet.mesh.plugins.module_utils.kernel import pyroute2_parts  # pylint: disable=import-outside-toplevel
            if not pyroute2_parts.HAS_PYROUTE2:
                _say(PYROUTE2_MISSING % sys.executable, sys.stderr)
                return EXIT_FAILED
        _say("ok: state file %s (version %d, node %s): %s" % (
            args.check_state, loaded.version, loaded.node or "unnamed", ", ".join(loaded.concerns) or "nothing"))
        return EXIT_OK
    from ansible_collections.podnet.mesh.plugins.module_utils.node import restore  # pylint: disable=import-outside-toplevel
    try:
        made = make_sessions()
    except RuntimeError as exc:
        _say(str(exc), sys.stderr)
        return EXIT_FAILED
    try:
        outcomes = restore.restore(loaded, made, check=args.check, wait=args.wait)
    finally:
        for session in made.values():
            session.close()
    text = summary(outcomes, args.check)
    if args.json:
        sys.stdout.write(json.dumps({"state": args.state, "node": loaded.node, "check": args.check,
                                     "changed": any(o.changed for o in outcomes), "summary": text,
                                     "failed": any(o.error for o in outcomes),
                                     "concerns": [o.as_dict() for o in outcomes]}, sort_keys=True) + "\n")
    else:
        for outcome in outcomes:
            for action in outcome.actions:
                _say("%s: %s%s" % (outcome.concern, "would " if args.check else "", action))
            for warning in outcome.warnings:
                _say("%s: warning: %s" % (outcome.concern, warning), sys.stderr)
            if outcome.error:
                _say("%s: failed: %s" % (outcome.concern, outcome.error), sys.stderr)
        _say("%s %s: %s" % ("checked" if args.check else "restored", loaded.node or args.state, text))
    return EXIT_FAILED if any(o.error for o in outcomes) else EXIT_OK


def parser():
    result = argparse.ArgumentParser(
        prog=PROGRAM, description="Restore this node's pod network (bridge, NAT, routes, pods) from its state file.")
    result.add_argument("--state", default=node_state.DEFAULT_PATH, help="the state file (default %(default)s)")
    result.add_argument("--check", action="store_true", help="plan and print, change nothing")
    result.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="retry a refused concern for up to this long (the network coming up at boot)")
    result.add_argument("--json", action="store_true", help="one JSON object on standard output instead of lines")
    result.add_argument("--check-state", metavar="FILE",
                        help="only check that FILE is a state file this program reads, and that this Python has pyroute2")
    result.add_argument("--skip-pyroute2", action="store_true", help="with --check-state: do not check for pyroute2")
    return result


def main(argv=None):
    args = parser().parse_args(argv)
    if args.wait < 0:
        parser().error("--wait must not be negative")
    return run(args)
