# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run loop every podnet.mesh module shares, and the only layer that knows Ansible.

``run`` is the whole life of a module:

1. make sure pyroute2 can be imported (re-running the module under a node
   interpreter that has it if needed), unless the module brings its own session;
2. ``validate(params) -> want`` (pure; raises ValidationError);
3. ``read(session, want) -> current`` (the kernel layer);
4. ``plan(want, current, assume_missing=check_mode) -> Plan`` (pure). A read-only
   module (node_info, pod_probe) has no planner: plan is None and nothing changes;
5. unless in check mode, ``session.apply(plan.actions)``, then read again;
6. ``render(want, current, plan, predicted) -> object``, returned under ``key``
   (key None: a dict merged into the result), with ``changed``, ``actions``, the
   plan's warnings and, in diff mode, ``diff``. In check mode the object is the
   prediction (predicted=True).

Every error of the collection ends in one ``fail_json`` whose message names what
failed; a failure after changes began lists the actions already done.
"""

from __future__ import annotations

import errno
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.respawn import (
    has_respawned,
    probe_interpreters_for_module,
    respawn_module,
)

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import (
    PodnetError, ValidationError)
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import pyroute2_parts

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


# What the kernel and the NAT tools say when the caller lacks CAP_NET_ADMIN.
PERMISSION_CODES = (errno.EPERM, errno.EACCES)
PERMISSION_TEXTS = ("Operation not permitted", "Permission denied")


def root_hint(exc, euid=None):
    """' ...needs root...' for an error that a run without root explains, else ''.

    Unprivileged, netlink changes fail with EPERM and nft/iptables with "Operation not
    permitted", which alone reads like a broken node or a missing tool.
    """
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return ""
    code = getattr(exc, "code", None)
    if code not in PERMISSION_CODES and not any(text in str(exc) for text in PERMISSION_TEXTS):
        return ""
    return (" (the module runs as uid %d, not root: changing and reading the node's network, netns and NAT "
            "rules needs root, run the task with become: true)" % euid)


def require_pyroute2(module):
    """Return when pyroute2 imports; otherwise respawn under a node Python that has it, or fail."""
    if pyroute2_parts.HAS_PYROUTE2:
        return
    if not has_respawned():
        interpreter = probe_interpreters_for_module(NODE_INTERPRETERS, "pyroute2")
        if interpreter:
            respawn_module(interpreter)  # does not return
    module.fail_json(
        msg=missing_required_lib("pyroute2 (>= 0.7)", url="https://pypi.org/project/pyroute2/")
        + " " + INSTALL_HINT,
        exception=pyroute2_parts.PYROUTE2_IMPORT_ERROR)


def netlink_session():
    """The default session: netlink (kernel.netlink), which needs pyroute2."""
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netlink import (  # pylint: disable=import-outside-toplevel
        Session)
    return Session()


def run(module, validate, read, plan, render, key, session_factory=None):
    """Drive one module run (see the module docstring); plan None: a read-only module."""
    if session_factory is None:
        require_pyroute2(module)
        session_factory = netlink_session
    session = session_factory()
    planned = None
    try:
        want = validate(module.params)
        current = read(session, want)
        if plan is not None:
            planned = plan(want, current, assume_missing=bool(module.check_mode))
        changed = planned is not None and planned.changed
        if changed and not module.check_mode:
            session.apply(planned.actions)
            current = read(session, want)
        obj = render(want, current, planned, module.check_mode and changed)
    except ValidationError as exc:
        module.fail_json(msg=str(exc) + root_hint(exc), changed=False)
    except PodnetError as exc:
        # Report what was already done before the failing step.
        done = describe_all(getattr(session, "applied", []))
        module.fail_json(msg=str(exc) + root_hint(exc), errno=getattr(exc, "code", None), changed=bool(done),
                         actions=done)
    finally:
        session.close()
    for warning in planned.warnings if planned is not None else ():
        module.warn(warning)
    result = {"changed": changed, "actions": describe_all(planned.actions) if planned is not None else []}
    if key is None:
        result.update(obj)
    else:
        result[key] = obj
    if module._diff and planned is not None:
        result["diff"] = {"before": planned.before, "after": planned.after}
    return module.exit_json(**result)


def run_module(argument_spec, validate, read, plan, render, key, session_factory=None):
    """A module's whole main(): its AnsibleModule (check mode supported), then run().

    session_factory, when given, is called with the AnsibleModule (the NAT tools run
    commands through it).
    """
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    factory = None if session_factory is None else (lambda: session_factory(module))
    return run(module, validate, read, plan, render, key, factory)


def public_link(link, fields):
    """The fields of a link dict a module returns, or None when the link is absent."""
    if link is None:
        return None
    return dict((f, link.get(f)) for f in fields)
