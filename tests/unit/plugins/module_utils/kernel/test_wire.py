# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Netlink framing the kernel answers in ways hard to provoke: namespace ids."""
from __future__ import annotations

import errno
import struct

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.kernel import wire
from ansible_collections.podnet.mesh.tests.helpers.netlink_fakes import FakeSocket


def newnsid(seq, nsid):
    body = b"\0\0\0\0" + struct.pack("=HHi", 8, wire.NETNSA_NSID, nsid)
    return struct.pack("=IHHII", 16 + len(body), wire.RTM_NEWNSID, 0, seq, 0) + body


def refusal(seq, code):
    return struct.pack("=IHHIIi", 36, wire.NLMSG_ERROR, 0, seq, 0, -code) + b"\0" * 16


@pytest.mark.parametrize("value, expected", [(0, 0), (7, 7), (-1, None)])
def test_nsid_asks_by_file_descriptor_and_reads_the_id(value, expected):
    sock = FakeSocket([newnsid(5, value)])
    assert wire.nsid(sock, 9, 5) == expected
    length, kind, flags, seq, _port = struct.unpack_from("=IHHII", sock.sent[0])
    assert (length, kind, flags, seq) == (len(sock.sent[0]), wire.RTM_GETNSID, wire.NLM_F_REQUEST, 5)
    assert struct.unpack_from("=HHI", sock.sent[0], 20) == (8, wire.NETNSA_FD, 9)


def test_nsid_refusal_is_an_oserror():
    with pytest.raises(OSError) as err:
        wire.nsid(FakeSocket([refusal(3, errno.EBADF)]), 9, 3)
    assert err.value.errno == errno.EBADF
