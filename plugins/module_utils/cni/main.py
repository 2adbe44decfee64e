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

``main`` reads standard input and writes standard output as file descriptors:
a closed or broken one costs the result (one line on standard error says so)
but never the exit code, and descriptors 0-2 that were closed are held open on
/dev/null, so no file the plugin opens can take their place.
"""

from __future__ import annotations

import errno
import json
import os
import select
import stat
import sys

from ansible_collections.podnet.mesh.plugins.module_utils.cni.protocol import (
    CURRENT_VERSION, ERR_CONFLICT, ERR_DECODE, ERR_INTERNAL, ERR_IO, ERR_KERNEL, ERR_NO_ADDRESS, ERR_TRY_AGAIN,
    MAX_INPUT, PLUGIN_TYPE, SUPPORTED_VERSIONS, CniError, decode, invalid, message, parse_command, parse_config,
    parse_env, version_info, version_key)
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import (
    KernelError, LockTimeout, PoolExhausted, ValidationError)


def as_cni_error(exc):
    """Any exception -> CniError with the most fitting code."""
    if isinstance(exc, CniError):
        return exc
    if isinstance(exc, ValidationError):  # ConflictError among them
        return CniError(ERR_CONFLICT, message(exc))
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
    raw = None
    try:
        command = parse_command(environ)
        if command == "VERSION":
            return 0, json.dumps(version_info())
        try:
            raw = read_stdin()
        except OSError as exc:
            raise CniError(ERR_IO, "cannot read the network configuration from stdin: %s" % (exc.strerror or exc))
        try:
            data, undecodable = decode(raw), None
        except CniError as exc:
            data, undecodable = None, exc
        # Every error, a refused environment's too, in the configuration's version.
        if data is not None and data.get("cniVersion") in SUPPORTED_VERSIONS:
            version = data["cniVersion"]
        req = parse_env(environ, command)
        if undecodable is not None:
            raise undecodable
        conf = parse_config(data, command)
        # The verbs and the planners, only now: VERSION and refused input do without them.
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.podnet.mesh.plugins.module_utils.cni.plugin import Plugin
        out = Plugin(conf, req, session_factory).run()
        return 0, None if out is None else json.dumps(out)
    except Exception as exc:  # pylint: disable=broad-except
        return 1, json.dumps(error_json(as_cni_error(exc), version))


def check_conflist(text, need_pyroute2=True, cni_path=None):  # pylint: disable=unused-argument
    """Validate a network configuration list for podnet; returns a summary line.

    Raises CniError like the plugin would for the same configuration.
    need_pyroute2 (--skip-pyroute2) is kept for callers of earlier releases:
    the plugin talks netlink on the standard library alone. cni_path: the
    directories of the chained plugins; when given, each is asked for the
    versions it speaks and a cniVersion or cniVersions entry that one of them
    does not speak is refused (``cni.chain``).
    """
    data = decode(text, "the network configuration list")
    versions = data.get("cniVersions")
    if versions is not None and not isinstance(versions, list):
        raise invalid("cniVersions", versions, "must be a list of versions")
    for index, item in enumerate(versions or []):
        if not isinstance(item, str):
            raise invalid("cniVersions[%d]" % index, item, "must be a version string such as 1.1.0")
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
    conf = found[0]
    spoken = ""
    if cni_path is not None:
        from ansible_collections.podnet.mesh.plugins.module_utils.cni.chain import check_chain  # pylint: disable=import-outside-toplevel
        spoken = "; the chain speaks %s" % ", ".join(check_chain(data, cni_path))
    return "network %s (cniVersion %s): bridge %s, %s, IPAM state in %s%s" % (
        conf["name"], conf["version"], conf["bridge"],
        ", ".join("subnet %s, gateway %s" % (item["subnet"], item["gateway"]) for item in conf["ranges"]),
        os.path.join(conf["data_dir"], conf["name"]), spoken)


def chain_report(text, cni_path):
    """--chain-versions: JSON of the versions the list's whole chain speaks and what each chained plugin said."""
    from ansible_collections.podnet.mesh.plugins.module_utils.cni.chain import chain_versions  # pylint: disable=import-outside-toplevel
    data = decode(text, "the network configuration list")
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise invalid("plugins", plugins, "must be a non-empty list of plugin configurations")
    common, asked = chain_versions(plugins, cni_path)
    return json.dumps({"versions": common, "plugins": [
        {"index": index, "type": kind, "path": path, "supportedVersions": versions}
        for index, (kind, path, versions) in sorted(asked.items())]})


USAGE = """usage: podnet                       CNI plugin (CNI_COMMAND etc. in the environment)
       podnet --check-conflist FILE [--cni-path DIRS] [--skip-pyroute2]
                                    validate a network configuration list (FILE - : stdin);
                                    with --cni-path, also that every chained plugin in DIRS
                                    (':'-separated) speaks its cniVersion and cniVersions
       podnet --chain-versions FILE --cni-path DIRS
                                    the versions every plugin of the list speaks, as JSON
"""


def _options(args):
    """args after the verb -> (FILE, {option: value}); None when they are not FILE [options]."""
    if not args:
        return None
    options, rest = {}, list(args[1:])
    while rest:
        flag = rest.pop(0)
        if flag == "--skip-pyroute2":
            options[flag] = True
        elif flag == "--cni-path" and rest:
            options[flag] = [d for d in rest.pop(0).split(":") if d]
        else:
            return None
    return args[0], options


# ------------------------------------------------------- standard streams
def hold_std_fds():
    """Hold descriptors 0, 1 and 2 open: a closed one gets /dev/null. Returns those that were closed."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
            try:
                null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: fd itself
            except OSError:
                continue
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    return closed


def _wait(fd, writing):
    """Wait until a non-blocking descriptor is ready (a runtime may hand over such a pipe)."""
    select.select([] if writing else [fd], [fd] if writing else [], [])


def read_input(fd=0, limit=MAX_INPUT, what="the network configuration on stdin"):
    """All bytes of descriptor fd (at most limit: more is refused); never waits on a terminal."""
    if os.isatty(fd):
        raise CniError(ERR_IO, "standard input is a terminal: the network configuration is expected there "
                               "as JSON, written by the container runtime")
    chunks, size = [], 0
    while size <= limit:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            _wait(fd, False)
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    if len(data) > limit:
        raise CniError(ERR_DECODE, "cannot decode %s: it is larger than %d bytes" % (what, limit))
    return data


def write_output(fd, data):
    """Write all of data to fd; False (and nothing raised) when the descriptor takes no more."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            _wait(fd, True)
        except OSError:
            return False
    return True


def note(text):
    """One line on standard error, if it is there."""
    write_output(2, ("podnet: %s\n" % text).encode("utf-8", "backslashreplace"))


def _read_file(path):
    """The bytes of a regular file, opened without waiting (a FIFO or device is refused, not read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return read_input(fd, what="the network configuration list")
    finally:
        os.close(fd)


def _cli(args, closed=()):
    parsed = _options(args[1:]) if args and args[0] in ("--check-conflist", "--chain-versions") else None
    if parsed is None or (args[0] == "--chain-versions" and "--cni-path" not in parsed[1]):
        write_output(2, USAGE.encode())
        return 2
    name, options = parsed
    where = "conflist on stdin" if name == "-" else name
    try:
        if name == "-":
            if 0 in closed:
                raise OSError(errno.EBADF, "standard input is closed")
            text = read_input(0, what="the network configuration list")
        else:
            text = _read_file(name)
        if args[0] == "--chain-versions":
            line = chain_report(text, options["--cni-path"]) + "\n"
        else:
            line = "ok: %s\n" % check_conflist(text, cni_path=options.get("--cni-path"))
    except OSError as exc:
        note("cannot read %s: %s" % (name, exc.strerror or exc))
        return 1
    except CniError as exc:
        note("%s: %s" % (where, exc.msg))
        return 1
    if 1 in closed or not write_output(1, line.encode("utf-8")):
        note("standard output is closed; the configuration list is valid")
    return 0


def main(argv=None):
    """What the installed plugin runs: returns the exit code."""
    argv = sys.argv if argv is None else argv
    closed = hold_std_fds()
    if len(argv) > 1:
        return _cli(argv[1:], closed)

    def read_stdin():
        if 0 in closed:
            raise OSError(errno.EBADF, "standard input is closed")
        return read_input(0)

    code, text = run(os.environ, read_stdin)
    if text and (1 in closed or not write_output(1, (text + "\n").encode("utf-8"))):
        note("cannot write the %s to standard output: it is closed" % ("result" if code == 0 else "error"))
    return code
