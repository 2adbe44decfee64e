# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore a node from its state file: each concern read, planned and applied as its module does it.

For every concern the state holds (``node.state.CONCERNS`` order: kernel modules
and sysctls, masquerade and forwarding, bridge, overlay, routes, pods) the restore reads
the node as the module of that concern reads it, plans with the same planner
(``node.system.plan_kernel`` for the kernel settings, ``core.plan.nat.plan``,
``core.plan.links.plan_bridge``, ``core.plan.overlay.plan_overlay``, ``core.plan.routes.plan_routes`` with purge of
our routes, ``core.plan.pod.plan_pods``) and applies the plan through the same
session (``node.system``, ``kernel.nat``, ``kernel.netlink``). A node that is as recorded gets
empty plans: a second run changes nothing and says so.

A concern that fails does not stop the others (a missing NAT tool leaves the
pods reachable on the node). At boot the network may still be coming up: with
``wait`` a concern whose plan or change is refused is read and planned again,
once a second, until it succeeds or the time is up (a peer's node IP that is not
on a connected subnet yet, a bridge that is not there yet). A conflict (an object
of ours in the way of another tool's) is final at once.
"""

from __future__ import annotations

import time

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, PodnetError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links as link_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import nat as nat_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import overlay as overlay_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import pod as pod_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import routes as route_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import reads
from ansible_collections.podnet.mesh.plugins.module_utils.node import system

# How long a retry waits before reading again.
RETRY_INTERVAL = 1.0


# -------------------------------------------------------------------- reads
# As the modules read (kernel.reads for the bridge, routes and pods; the tools' sessions
# read NAT and the kernel settings themselves), in the namespace the program runs in.
def read_tools(session, want):
    """The NAT tools' and the kernel settings' sessions read for themselves."""
    return session.read(want)


READERS = {"kernel": read_tools, "masquerade": read_tools, "bridge": reads.bridge, "overlay": reads.overlay,
           "routes": reads.routes, "pods": reads.pods}
PLANNERS = {"kernel": system.plan_kernel, "masquerade": nat_plan.plan, "bridge": link_plan.plan_bridge,
            "overlay": overlay_plan.plan_overlay, "routes": route_plan.plan_routes, "pods": pod_plan.plan_pods}
# Which session a concern reads and changes through: kernel settings, the NAT tools, or netlink.
SYSTEM = "system"
NAT = "nat"
NETLINK = "netlink"
SESSION_OF = {"kernel": SYSTEM, "masquerade": NAT, "bridge": NETLINK, "overlay": NETLINK, "routes": NETLINK,
              "pods": NETLINK}


# --------------------------------------------------------------------- plan
def plan(concern, want, current, assume_missing=False):
    """The plan of one concern (pure): the planner its module uses, on what was read."""
    return PLANNERS[concern](want, current, assume_missing=assume_missing)


class Outcome:
    """What the restore did for one concern: actions (as text), warnings, and the error that stopped it."""

    def __init__(self, concern):
        self.concern = concern
        self.actions = []
        self.warnings = []
        self.error = None
        self.attempts = 0

    @property
    def changed(self):
        return bool(self.actions)

    def as_dict(self):
        return {"concern": self.concern, "changed": self.changed, "actions": list(self.actions),
                "warnings": list(self.warnings), "error": self.error, "attempts": self.attempts}


def restore_concern(concern, want, session, check=False, deadline=None, clock=time.monotonic, sleep=time.sleep):
    """Read, plan and (unless check) apply one concern; retried until deadline (a clock() value) on refusals."""
    outcome = Outcome(concern)
    while True:
        outcome.attempts += 1
        done = len(getattr(session, "applied", ()))
        try:
            planned = plan(concern, want, READERS[concern](session, want), assume_missing=check)
            outcome.warnings = list(planned.warnings)
            if planned.changed and not check:
                session.apply(planned.actions)
            outcome.actions += describe_all(planned.actions)
            outcome.error = None
            return outcome
        except ConflictError as exc:
            outcome.error = str(exc)
            return outcome
        except PodnetError as exc:
            # Changes made before the refusal are part of what was done.
            outcome.actions += describe_all(list(getattr(session, "applied", ()))[done:])
            outcome.error = str(exc)
            if deadline is None or clock() + RETRY_INTERVAL > deadline:
                return outcome
            sleep(RETRY_INTERVAL)


def restore(node_state, sessions, check=False, wait=0.0, clock=time.monotonic, sleep=time.sleep):
    """Every concern of node_state restored in order; a list of Outcome.

    sessions: {SYSTEM: a node.system.Session, NAT: a kernel.nat.Session, NETLINK: a
    kernel.netlink.Session} (or fakes of the same shape). wait: seconds a refused concern is retried for.
    """
    deadline = clock() + wait if wait else None
    outcomes = []
    for concern in node_state.concerns:
        outcomes.append(restore_concern(concern, node_state.wants[concern], sessions[SESSION_OF[concern]],
                                        check=check, deadline=deadline, clock=clock, sleep=sleep))
    return outcomes
