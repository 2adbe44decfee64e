#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: netns
short_description: Create or remove a named network namespace (a pod)
version_added: 0.1.0
description:
  - Creates or removes a named network namespace under C(/run/netns), the same
    object C(ip netns add) makes. In podnet.mesh a pod is such a namespace.
  - Existence is decided by the exact path being a mounted namespace, never by
    a substring of C(ip netns list). A leftover file of that name that is not a
    mounted namespace (after a crash) is removed, and replaced for O(state=present).
author:
  - podnet.mesh maintainers (@podnet-mesh)
extends_documentation_fragment:
  - podnet.mesh.common
options:
  name:
    description:
      - Name of the namespace (a file name under C(/run/netns)).
    type: str
    required: true
  state:
    description:
      - V(present) creates the namespace if it is missing.
      - V(absent) removes it; links inside it are destroyed by the kernel with it
        (the host end of a veth pair goes too).
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Create the namespace of pod red
  podnet.mesh.netns:
    name: red

- name: Remove it again
  podnet.mesh.netns:
    name: red
    state: absent
"""

RETURN = r"""
netns:
  description: The namespace after the run (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    name:
      description: Namespace name.
      type: str
      sample: red
    path:
      description: Path of the namespace's mount.
      type: str
      sample: /run/netns/red
    exists:
      description: Whether the namespace exists.
      type: bool
      sample: true
actions:
  description: Kernel changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["create namespace red"]
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def validate(params):
    return {"name": v.netns_name(params["name"], "name"), "state": params["state"]}


def read(session, want):
    return _netns.netns_state(want["name"])


def render(want, exists, plan, predicted):
    if predicted:
        exists = plan.after["state"] == "present"
    return {"name": want["name"], "path": _netns.netns_path(want["name"]), "exists": exists is True}


def main():
    _module.run_module(
        {
            "name": {"type": "str", "required": True},
            "state": _module.STATE_OPTION,
        },
        validate, read, links.plan_netns, render, "netns")


if __name__ == "__main__":
    main()
