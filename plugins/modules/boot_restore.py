#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: boot_restore
short_description: Install or remove a node's boot-time restore of its pod network
version_added: 0.3.0
description:
  - Installs, in one call, what brings a node's pod network back after a reboot
    with no playbook run and no daemon; the persistence role calls it.
  - The podnet-restore program (mode 0755), built from the collection's
    module_utils by C(roles/cni/files/build_podnet.py --entry node/main.py --encode).
  - The node's state file (mode 0644), the options the roles gave their modules on
    this node, as podnet-restore reads it (C(docs/persistence.md)).
  - A systemd unit (mode 0644) that runs podnet-restore at boot, before the
    container runtime, and its enablement, the link in C(multi-user.target.wants)
    that C(systemctl enable) makes. When the unit or the link changes on a node
    whose init system is systemd, systemd's units are reloaded.
  - Before anything changes, the state is checked as podnet-restore checks it, and
    when the program or the state file is to change, the program is run with
    O(interpreter) on the new state (C(--check-state), in a temporary directory).
    A state, program or interpreter the restore would refuse fails the task with
    nothing changed, in check mode too.
  - Files are written through a temporary file renamed over the old one. A directory
    or another non-regular file where a file or the link should be is refused, and
    never removed.
author:
  - podnet.mesh maintainers (@podnet-mesh)
requirements:
  - Root privileges on the managed node (for the default paths).
  - pyroute2 >= 0.7 for O(interpreter) (the program it runs at boot needs it).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: linux
options:
  state:
    description:
      - V(present) installs the program, the state file, the unit and its link.
      - V(absent) removes the four (systemd's units are then reloaded).
    type: str
    choices: [present, absent]
    default: present
  program:
    description:
      - The podnet-restore program, zlib-compressed and base64-encoded, as
        C(build_podnet.py - --entry node/main.py --encode) prints it.
      - Required with O(state=present).
    type: str
  node_state:
    description:
      - The node's state document (version 1, C(docs/persistence.md)), written as
        sorted JSON with two-space indentation.
      - Required with O(state=present).
    type: dict
  program_path:
    description: Where the program is installed.
    type: path
    default: /usr/local/libexec/podnet/podnet-restore
  state_file:
    description: Where the state file is written.
    type: path
    default: /etc/podnet/state.json
  interpreter:
    description: The Python that runs the program at boot (it needs pyroute2).
    type: path
    default: /usr/bin/python3
  unit_dir:
    description: The directory of the unit and of its C(multi-user.target.wants) link.
    type: path
    default: /etc/systemd/system
  unit:
    description: The unit's file name.
    type: str
    default: podnet-restore.service
  before:
    description: Units the restore runs before (the container runtime, the kubelet).
    type: list
    elements: str
    default: [containerd.service, crio.service, kubelet.service]
  wait:
    description: Seconds the restore retries a concern the kernel refuses while the network comes up.
    type: int
    default: 60
notes:
  - Missing directories above the four paths are created with mode 0755.
  - The persistence role builds the program on the controller once per play and calls
    this module with each node's state.
"""

EXAMPLES = r"""
- name: Build podnet-restore once, on the controller
  ansible.builtin.command:
    argv: [python3, "{{ collection_path }}/roles/cni/files/build_podnet.py", "-", --entry, node/main.py, --encode]
  delegate_to: localhost
  run_once: true
  changed_when: false
  no_log: true
  register: restore_build

- name: Install the boot-time restore of the node
  podnet.mesh.boot_restore:
    program: "{{ restore_build.stdout }}"
    node_state:
      version: 1
      bridge: {name: cni0, addresses: [10.244.1.1/24]}
      pods: {bridge: cni0, pod_cidr: 10.244.1.0/24, pods: [{name: red}]}

- name: Remove it
  podnet.mesh.boot_restore:
    state: absent
"""

RETURN = r"""
boot_restore:
  description: The four paths, and each one before and after the run (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    paths:
      description: The path of each entry.
      type: dict
      sample: {program: /usr/local/libexec/podnet/podnet-restore, state_file: /etc/podnet/state.json,
               unit: /etc/systemd/system/podnet-restore.service,
               link: /etc/systemd/system/multi-user.target.wants/podnet-restore.service}
    before:
      description: Each entry before the run, V(absent), C(sha256 ..., mode ...) or C(link to ...).
      type: dict
    after:
      description: Each entry after the run, in the same form.
      type: dict
    systemd:
      description: Whether systemd is the node's init system (its units are reloaded after a change of the unit).
      type: bool
actions:
  description: Changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/podnet/state.json (812 bytes, mode 0644)", "reload systemd's units"]
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError, shown
from ansible_collections.podnet.mesh.plugins.module_utils.node import install
from ansible_collections.podnet.mesh.plugins.module_utils.node import state as node_state

UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.service$")


def validate(params):
    """The module's options -> want (the program decoded, the state checked and as text)."""
    for option in ("program_path", "state_file", "interpreter", "unit_dir"):
        if not os.path.isabs(params[option]):
            raise ValidationError(option, params[option], "must be an absolute path")
    if not UNIT_NAME.match(params["unit"]):
        raise ValidationError("unit", params["unit"], "must be a unit file name ending in .service, with no /")
    for index, name in enumerate(params["before"]):
        if not name or any(c.isspace() for c in name):
            raise ValidationError("before[%d]" % index, name, "must be a unit name without spaces")
    if params["wait"] < 0:
        raise ValidationError("wait", params["wait"], "must not be negative")
    want = dict((k, params[k]) for k in ("program_path", "state_file", "interpreter", "unit_dir", "unit",
                                         "before", "wait"))
    if params["state"] == "present":
        for option in ("program", "node_state"):
            if params[option] is None:
                raise ValidationError(option, None, "is required with state=present")
        want["program"] = install.decode_program(params["program"])
        try:
            node_state.parse(params["node_state"])
        except ValidationError as exc:
            path = "node_state" + exc.path[len("state"):] if exc.path.split(".")[0] == "state" \
                else "node_state." + exc.path
            raise ValidationError(path, exc.value, exc.reason)
        want["state_text"] = node_state.dumps(params["node_state"])
    return want


def check_with_program(module, want):
    """Run the new program with the node's interpreter on the new state, from a temporary directory."""
    if not os.access(want["interpreter"], os.X_OK):
        raise ValidationError("interpreter", want["interpreter"], "is no executable on the node")
    program = os.path.join(module.tmpdir, "podnet-restore")
    state_path = os.path.join(module.tmpdir, "state.json")
    install.write_file(program, want["program"], install.PROGRAM_MODE)
    install.write_file(state_path, want["state_text"].encode("utf-8"), install.FILE_MODE)
    rc, out, err = module.run_command([want["interpreter"], program, "--check-state", state_path])
    if rc != 0:
        raise ValidationError("interpreter", want["interpreter"], "cannot run podnet-restore on this state: %s"
                              % ((err or out).strip() or "exit status %d" % rc))


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "program": {"type": "str", "no_log": True},
            "node_state": {"type": "dict"},
            "program_path": {"type": "path", "default": "/usr/local/libexec/podnet/podnet-restore"},
            "state_file": {"type": "path", "default": node_state.DEFAULT_PATH},
            "interpreter": {"type": "path", "default": "/usr/bin/python3"},
            "unit_dir": {"type": "path", "default": "/etc/systemd/system"},
            "unit": {"type": "str", "default": "podnet-restore.service"},
            "before": {"type": "list", "elements": "str",
                       "default": ["containerd.service", "crio.service", "kubelet.service"]},
            "wait": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    state = module.params["state"]
    done, actions = [], []

    def reload_units():
        rc, out, err = module.run_command(["systemctl", "daemon-reload"])
        if rc != 0:
            raise OSError(None, "systemctl daemon-reload: %s" % ((err or out).strip() or "exit status %d" % rc))

    try:
        want = validate(module.params)
        items = install.entries(want)
        current = install.read(items)
        actions = install.plan(state, items, current)
        if state == "present" and any(a.op == "write" and a.entry.key in ("program", "state_file") for a in actions):
            check_with_program(module, want)
        if actions and not module.check_mode:
            for action in actions:
                install.apply([action], reload_units)
                done.append(action.describe())
    except ValidationError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except OSError as exc:
        failed = actions[len(done)].describe() if actions[len(done):] else "read %s" % shown(exc.filename)
        module.fail_json(msg="cannot %s: %s" % (failed, exc.strerror or exc),
                         changed=bool(done), actions=done)
    before, after = install.views(items, current, state)
    result = {
        "changed": bool(actions),
        "actions": [a.describe() for a in actions],
        "boot_restore": {"paths": dict((e.key, e.path) for e in items), "before": before, "after": after,
                         "systemd": current["systemd"]},
    }
    if module._diff:
        result["diff"] = install.diffs(items, current, state)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
