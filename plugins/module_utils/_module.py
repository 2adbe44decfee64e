# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every podnet.mesh module does around its own logic.

``run`` is the whole life of a module: make sure pyroute2 can be imported
(re-running the module under a node interpreter that has it if needed),
validate, read, plan, apply unless in check mode, read back, and exit with
``changed``, ``actions``, the resulting object and, in diff mode, ``diff``.
Every failure ends in one ``fail_json`` whose message names what failed.
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.respawn import (
    has_respawned,
    probe_interpreters_for_module,
    respawn_module,
)

from ansible_collections.podnet.mesh.plugins.module_utils import _netlink
from ansible_collections.podnet.mesh.plugins.module_utils._plan import describe
from ansible_collections.podnet.mesh.plugins.module_utils._validate import ValidationError


class OperationError(Exception):
    """A non-netlink operation (nft, iptables, sysctl) failed; str() is the message."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


# The state option every module of the collection takes.
STATE_OPTION = {"type": "str", "choices": ["present", "absent"], "default": "present"}

# Interpreters that may carry the distribution's pyroute2 package
# (Debian/Ubuntu python3-pyroute2, Fedora/RHEL python3-pyroute2).
NODE_INTERPRETERS = (
    "/usr/bin/python3",
    "/usr/libexec/platform-python",
    "/usr/bin/python3.13",
    "/usr/bin/python3.12",
    "/usr/bin/python3.11",
    "/usr/bin/python3.9",
)
INSTALL_HINT = (
    "Install it on the node for the Python that runs the module: "
    "'apt-get install python3-pyroute2' (Debian/Ubuntu), 'dnf install python3-pyroute2' "
    "(Fedora/RHEL) or 'pip install \"pyroute2>=0.7\"'.")


def require_pyroute2(module):
    """Return when pyroute2 imports; otherwise respawn under a node Python that has it, or fail."""
    if _netlink.HAS_PYROUTE2:
        return
    if not has_respawned():
        interpreter = probe_interpreters_for_module(NODE_INTERPRETERS, "pyroute2")
        if interpreter:
            respawn_module(interpreter)  # does not return
    module.fail_json(
        msg=missing_required_lib("pyroute2 (>= 0.7)", url="https://pypi.org/project/pyroute2/")
        + " " + INSTALL_HINT,
        exception=_netlink.PYROUTE2_IMPORT_ERROR)


def run(module, validate, read, plan, render, key, session_factory=None):
    """Drive one module run.

    validate(params) -> want; read(session, want) -> current;
    plan(want, current) -> Plan; render(want, current, plan, predicted) -> object
    returned under ``key`` (key None: a dict merged into the result). In check mode nothing is applied and the object is
    the prediction (predicted=True).

    session_factory makes the object passed to read() and whose apply(actions)
    performs the plan (it records them in ``applied`` and has close()); the
    default is a netlink Session, which needs pyroute2.
    """
    if session_factory is None:
        require_pyroute2(module)
        session_factory = _netlink.Session
    session = session_factory()
    try:
        want = validate(module.params)
        if isinstance(want, dict):
            # In check mode, objects that earlier tasks of the same play would
            # create (a namespace, a bridge) are taken as there.
            want["assume_missing"] = bool(module.check_mode)
        current = read(session, want)
        planned = plan(want, current)
        predicted = module.check_mode and planned.changed
        if planned.changed and not module.check_mode:
            session.apply(planned.actions)
            current = read(session, want)
        obj = render(want, current, planned, predicted)
    except ValidationError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except (_netlink.NetlinkOpError, OperationError) as exc:
        # Report what was already done before the failing step.
        done = [describe(a) for a in session.applied]
        module.fail_json(msg=str(exc), errno=exc.code, changed=bool(done), actions=done)
    finally:
        session.close()
    result = {"changed": planned.changed, "actions": planned.descriptions()}
    if key is None:
        result.update(obj)
    else:
        result[key] = obj
    if module._diff:
        result["diff"] = {"before": planned.before, "after": planned.after}
    module.exit_json(**result)


def public_link(link, fields):
    """The fields of a link dict a module returns, or None when the link is absent."""
    if link is None:
        return None
    return dict((f, link.get(f)) for f in fields)
