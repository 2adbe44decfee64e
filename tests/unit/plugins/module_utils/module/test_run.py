# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run loop says a task needs root when an unprivileged run is why it failed."""
from __future__ import annotations

import errno

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError, ToolError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _run


class Failed(Exception):
    pass


class FakeModule:
    params = {}
    check_mode = False
    _diff = False

    def fail_json(self, **kw):
        raise Failed(kw)


class FakeSession:
    applied = []

    def __init__(self, exc):
        self.exc = exc

    def close(self):
        pass


def failure(exc, euid, monkeypatch):
    monkeypatch.setattr(_run.os, "geteuid", lambda: euid)

    def read(session, want):
        raise session.exc

    with pytest.raises(Failed) as err:
        _run.run(FakeModule(), lambda params: {}, read, None, lambda *a: {}, None,
                 session_factory=lambda: FakeSession(exc))
    return err.value.args[0]["msg"]


EPERM = KernelError("add bridge cni0", None, errno.EPERM, "Operation not permitted")
NO_NAT_TOOL = ValidationError(
    "backend", "auto", "found no usable NAT tool: nft does not work on the node: Error: Could not process rule: "
    "Operation not permitted, and iptables-save/iptables-restore does not work on the node: iptables-save v1.8.9 "
    "(nf_tables): Permission denied (you must be root); install nftables or iptables")


@pytest.mark.parametrize("exc", [EPERM, NO_NAT_TOOL, ToolError("cannot set x: [Errno 13] Permission denied", 13)],
                         ids=["netlink EPERM", "masquerade without root", "sysctl EACCES"])
def test_unprivileged_failures_say_the_task_needs_root(exc, monkeypatch):
    msg = failure(exc, 1000, monkeypatch)
    assert msg.startswith(str(exc))
    assert "runs as uid 1000, not root" in msg and "become: true" in msg


@pytest.mark.parametrize("exc, euid", [(EPERM, 0), (NO_NAT_TOOL, 0),
                                       (ValidationError("name", "x" * 20, "is longer than 15 bytes"), 1000),
                                       (KernelError("add bridge cni0", None, errno.EEXIST, "File exists"), 1000)])
def test_other_failures_are_left_as_they_are(exc, euid, monkeypatch):
    assert failure(exc, euid, monkeypatch) == str(exc)
