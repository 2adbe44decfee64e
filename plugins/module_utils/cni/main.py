# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Entry points of the CNI plugin ``podnet``: one invocation, the error mapping, the command line.

``run`` is one plugin invocation as a runtime makes it (environment and
standard input in; exit code and JSON out); every exception leaves it as the
SPEC's error JSON with the most fitting code. ``check_conflist`` validates a
network configuration list with the plugin's own parser (the ``cni`` role
runs it before it installs one). ``main`` is what the installed zipapp runs.

pyroute2 is loaded only by the verbs that talk to the kernel, and the verbs
and planners (``cni.plugin``) only once the input is accepted, so VERSION,
STATUS and input errors answer quickly.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import sys

from ansible_collections.podnet.mesh.plugins.module_utils.cni.protocol import (
    CURRENT_VERSION, ERR_CONFLICT, ERR_INTERNAL, ERR_IO, ERR_KERNEL, ERR_NO_ADDRESS, ERR_TRY_AGAIN,
    PLUGIN_TYPE, SUPPORTED_VERSIONS, CniError, decode, invalid, parse_command, parse_config, parse_env,
    pyroute2_missing, version_info, version_key)
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import (
    KernelError, LockTimeout, PoolExhausted, ValidationError)


def as_cni_error(exc):
    """Any exception -> CniError with the most fitting code."""
    if isinstance(exc, CniError):
        return exc
    if isinstance(exc, ValidationError):  # ConflictError among them
        return CniError(ERR_CONFLICT, str(exc))
    if isinstance(exc, PoolExhausted):
        return CniError(ERR_NO_ADDRESS, str(exc))
    if isinstance(exc, LockTimeout):
        return CniError(ERR_TRY_AGAIN, str(exc))
    if isinstance(exc, KernelError):
        return CniError(ERR_KERNEL, str(exc), errno.errorcode.get(exc.code or 0, ""))
    if isinstance(exc, OSError):
        return CniError(ERR_IO, "I/O error: %s" % exc)
    import traceback  # pylint: disable=import-outside-toplevel
    return CniError(ERR_INTERNAL, "internal error: %s: %s" % (type(exc).__name__, exc),
                    traceback.format_exc(limit=5))


def error_json(err, version):
    out = {"cniVersion": version, "code": err.code, "msg": err.msg}
    if err.details:
        out["details"] = err.details
    return out


def run(environ, read_stdin, session_factory=None):
    """One plugin invocation -> (exit code, text for stdout or None).

    read_stdin: a callable returning the bytes of standard input (only
    called by verbs that take a configuration). session_factory: makes the
    session plans run against (default: kernel.netlink's Session).
    """
    version = CURRENT_VERSION
    try:
        command = parse_command(environ)
        if command == "VERSION":
            return 0, json.dumps(version_info())
        req = parse_env(environ, command)
        try:
            raw = read_stdin()
        except OSError as exc:
            raise CniError(ERR_IO, "cannot read the network configuration from stdin: %s" % exc)
        data = decode(raw)
        if data.get("cniVersion") in SUPPORTED_VERSIONS:
            version = data["cniVersion"]
        conf = parse_config(data, command)
        # The verbs and the planners, only now: VERSION and refused input do without them.
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.podnet.mesh.plugins.module_utils.cni.plugin import Plugin
        out = Plugin(conf, req, session_factory).run()
        return 0, None if out is None else json.dumps(out)
    except Exception as exc:  # pylint: disable=broad-except
        return 1, json.dumps(error_json(as_cni_error(exc), version))


def check_conflist(text, need_pyroute2=True):
    """Validate a network configuration list for podnet; returns a summary line.

    Raises CniError like the plugin would for the same configuration.
    """
    data = decode(text)
    versions = data.get("cniVersions")
    if versions is not None and not isinstance(versions, list):
        raise invalid("cniVersions", versions, "must be a list of versions")
    candidates = [x for x in (versions or []) if x in SUPPORTED_VERSIONS]
    version = max(candidates, key=version_key) if candidates else data.get("cniVersion")
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise invalid("plugins", plugins, "must be a non-empty list of plugin configurations")
    found = []
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise invalid("plugins[%d]" % index, plugin, "must be an object")
        if plugin.get("type") != PLUGIN_TYPE:
            continue
        conf = dict(plugin, name=data.get("name"), cniVersion=version)
        found.append(parse_config(conf, "ADD"))
    if not found:
        raise invalid("plugins", [p.get("type") for p in plugins], "has no plugin of type %s" % PLUGIN_TYPE)
    if need_pyroute2 and importlib.util.find_spec("pyroute2") is None:
        raise pyroute2_missing()
    conf = found[0]
    return "network %s (cniVersion %s): bridge %s, subnet %s, gateway %s, IPAM state in %s" % (
        conf["name"], conf["version"], conf["bridge"], conf["subnet"], conf["gateway"],
        os.path.join(conf["data_dir"], conf["name"]))


USAGE = """usage: podnet                       CNI plugin (CNI_COMMAND etc. in the environment)
       podnet --check-conflist FILE [--skip-pyroute2]
                                    validate a network configuration list (FILE - : stdin)
"""


def _cli(args):
    if args and args[0] == "--check-conflist" and len(args) in (2, 3):
        if len(args) == 3 and args[2] != "--skip-pyroute2":
            sys.stderr.write(USAGE)
            return 2
        try:
            if args[1] == "-":
                text = sys.stdin.buffer.read()
            else:
                with open(args[1], "rb") as handle:
                    text = handle.read()
            sys.stdout.write("ok: %s\n" % check_conflist(text, need_pyroute2=len(args) == 2))
            return 0
        except OSError as exc:
            sys.stderr.write("podnet: cannot read %s: %s\n" % (args[1], exc))
        except CniError as exc:
            sys.stderr.write("podnet: %s: %s\n" % ("conflist on stdin" if args[1] == "-" else args[1], exc.msg))
        return 1
    sys.stderr.write(USAGE)
    return 2


def main(argv=None):
    argv = sys.argv if argv is None else argv
    if len(argv) > 1:
        return _cli(argv[1:])
    code, text = run(os.environ, sys.stdin.buffer.read)
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return code
