# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the CNI plugin's unit tests: a fake kernel, a configuration, an in-process runner, a deadline."""
from __future__ import annotations

import contextlib
import signal

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import plugin
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.cni.fake_kernel import FakeKernel, Run


@pytest.fixture
def kernel(monkeypatch):
    k = FakeKernel()
    k.add_ns()
    monkeypatch.setattr(plugin, "_link_exists", lambda name: name in k.spaces[None])
    return k


@pytest.fixture
def conf(tmp_path):
    return {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "bridge": "cni0",
            "ipam": {"subnet": "10.244.1.0/24", "dataDir": str(tmp_path / "ipam")}}


@pytest.fixture
def run(kernel):
    return Run(kernel)


@pytest.fixture
def deadline():
    """deadline(seconds): a context that fails the test instead of letting it block (a named pipe opened)."""
    @contextlib.contextmanager
    def within(seconds):
        def expired(signum, frame):
            raise AssertionError("still blocked after %ss" % seconds)
        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return within
