# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The containerd suite: pods started through the CRI as kubelet starts them.

One containerd (Debian's 1.6, tests/containerd/daemon.py) serves the whole
session, in a node namespace of its own with the podnet conflist as its default
network, Debian's reference plugins behind a second runtime handler and a
dual-stack podnet network behind a third. The
suite runs as root in a private network namespace (tests/utils/netns-run.sh)
and refuses to run anywhere else; every test's sandboxes are removed after it,
and the daemon, its namespaces and its directory at the end of the session,
also when a test fails.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.podnet.mesh.tests.containerd import daemon


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        reason = "the containerd suite needs root"
    elif daemon.in_shared_netns():
        reason = "the containerd suite runs only in a private network namespace (tests/utils/netns-run.sh)"
    elif daemon.missing():
        reason = "the containerd suite needs: %s" % ", ".join(daemon.missing())
        if os.environ.get("PODNET_TEST_STRICT") == "1":
            # make test installs everything: a missing tool there is a failure, not a skip.
            pytest.exit(reason, returncode=1)
    else:
        return
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def node():
    # PODNET_CNI_SOURCE: another module_utils directory to build the plugin from (an older tree, to bisect).
    with daemon.Node(plugin_source=os.environ.get("PODNET_CNI_SOURCE") or None, dual_stack=True) as started:
        yield started


@pytest.fixture(autouse=True)
def _no_sandbox_outlives_its_test(request):
    yield
    if "node" in request.fixturenames:
        request.getfixturevalue("node").remove_all()
