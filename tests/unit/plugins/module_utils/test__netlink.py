# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Error handling of the netlink layer that the kernel cannot easily produce on demand."""
from __future__ import annotations

import errno

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils import _netlink


def namespace(name=None):
    handle = object.__new__(_netlink.Namespace)
    handle.name = name
    return handle


def test_interrupted_dumps_are_read_again():
    calls = []

    def read(*args, **kwargs):
        calls.append((args, kwargs))
        if len(calls) < 3:
            raise _netlink.NetlinkDumpInterrupted()
        return ["lo"]

    assert namespace().call("list links", read, 254, families=(4,)) == ["lo"]
    assert calls == [((254,), {"families": (4,)})] * 3


def test_a_dump_interrupted_every_time_fails_clearly():
    def read():
        raise _netlink.NetlinkDumpInterrupted()

    with pytest.raises(_netlink.NetlinkOpError) as err:
        namespace("red").call("list links", read)
    assert str(err.value).startswith("cannot list links (namespace red)")


def test_other_errors_are_not_retried():
    calls = []

    def read():
        calls.append(1)
        raise _netlink.NetlinkError(errno.EPERM, "Operation not permitted")

    with pytest.raises(_netlink.NetlinkOpError) as err:
        namespace().call("list links", read)
    assert calls == [1]
    assert err.value.code == errno.EPERM
    assert str(err.value) == "cannot list links (namespace host): Operation not permitted [EPERM]"
