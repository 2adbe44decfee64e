# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # What every podnet.mesh netlink module shares.
    DOCUMENTATION = r"""
options: {}
requirements:
  - pyroute2 >= 0.7 on the managed node (Debian/Ubuntu package C(python3-pyroute2)).
    When the Python running the module lacks it, the module re-runs itself under
    the node's system Python if that one has it.
  - Root privileges on the managed node.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Namespaces are only opened, never created, so check mode leaves the node untouched.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: linux
notes:
  - Every input is validated before the first change; a refused value fails the task with a
    message that names the parameter and changes nothing.
  - The result's C(actions) lists, in order, the kernel changes made (or, in check mode, the
    ones that would be made).
  - In check mode, a namespace, bridge or interface the module needs but that does not exist yet
    is taken as created by an earlier task of the same play, so a whole play can be checked on a
    fresh node; the real run fails, naming the parameter, if it is still missing then.
"""
