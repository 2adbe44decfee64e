# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kernel tests: the netlink layer against the real kernel, as root.

They must run in a private network namespace (``make kernel`` uses
``unshare --net``): links made "in the host namespace" then live in that
throwaway namespace. Named namespaces the tests make start with ``pntk`` and
are removed after each test, also when it fails.
"""
from __future__ import annotations

import os
import secrets

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink


def _in_shared_netns():
    """True unless this namespace holds nothing but lo and test links.

    A machine's own namespace always has a real interface; the private one
    ``make kernel`` runs in starts with lo alone.
    """
    names = os.listdir("/sys/class/net") if os.path.isdir("/sys/class/net") else []
    try:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            names = [m.get_attr("IFLA_IFNAME") for m in ipr.get_links()]
    except ImportError:
        pass
    return any(n != "lo" and not n.startswith("pnt") for n in names)


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        reason = "kernel tests need root"
    elif _in_shared_netns():
        reason = "kernel tests run only in a private network namespace (make kernel)"
    else:
        return
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def prefix():
    return "pntk" + secrets.token_hex(3)


@pytest.fixture
def named_ns(prefix):
    """Factory for named namespaces, all removed at teardown."""
    from pyroute2 import netns as pr_netns

    made = []

    def make(suffix="a", create=True):
        name = "%s%s" % (prefix, suffix)
        if create:
            pr_netns.create(name)
        made.append(name)
        return name

    yield make
    for name in made:
        if os.path.exists(os.path.join("/run/netns", name)):
            pr_netns.remove(name)


@pytest.fixture
def session():
    with _netlink.Session() as s:
        yield s


@pytest.fixture
def host_links():
    """Names of links in the test's own namespace, removed at teardown."""
    from pyroute2 import IPRoute

    names = []
    yield names
    with IPRoute() as ipr:
        for name in names:
            for index in ipr.link_lookup(ifname=name):
                try:
                    ipr.link("del", index=index)
                except Exception:  # pylint: disable=broad-except
                    pass


@pytest.fixture
def module(monkeypatch):
    """Run a module's main() in this process, as Ansible would run it: (kind, result)."""
    from ansible_collections.podnet.mesh.tests.helpers.module_runner import run_main, stub_exits

    stub_exits(monkeypatch)
    return lambda mod, args: run_main(mod.main, args)
