# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Netlink on the wire: a plain NETLINK_ROUTE socket, requests, and one receive loop.

pyroute2 encodes and decodes the messages (its message classes) or, for the CNI
plugin, ``kernel.rtnl``; this file only frames them: ``receive`` walks the
kernel's answers to requests of known sequence numbers, and ``dump``, ``get``
and ``send_all`` are built on it (``dump_raw``, ``get_raw`` and ``ack`` take
and give bytes). A read is then one request and one pass over the answers, with
no pyroute2 socket machinery in between, and many route changes go out as a few
large writes whose acknowledgements are read together.
"""

from __future__ import annotations

import os
import socket
import struct

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
# Flags of an NLMSG_ERROR answer: the request echoed as its header alone; attributes follow.
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
# The kernel's message among those attributes (extended acknowledgements).
NLMSGERR_ATTR_MSG = 1
RTM_GETLINK = 18
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTM_NEWNSID = 88
RTM_GETNSID = 90
RTM_GETNEIGH = 30
# Attributes of RTM_*NSID (linux/net_namespace.h).
NETNSA_NSID = 1
NETNSA_FD = 3
# Address scope "link": IPv6 fe80::/10 addresses the kernel manages itself.
RT_SCOPE_LINK = 253
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_NOWHERE = 255
RTN_UNICAST = 1
# Route types (rtm_type) by number, as route dicts name them.
# rtmsg flag of a route whose gateway is on its device without a route to it.
RTNH_F_ONLINK = 0x04
ROUTE_TYPES = {0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
               6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat", 11: "xresolve"}
AF_INET = 2
AF_INET6 = 10
AF_BRIDGE = 7
# Neighbour states (ndmsg): an entry set by hand that never expires.
NUD_PERMANENT = 0x80
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_HEADER = struct.Struct("=IHHI")
_ERRNO = struct.Struct("=i")
_NLA = struct.Struct("=HH")
# struct nlmsghdr in full: length, type, flags, sequence number, port id.
_NLMSGHDR = struct.Struct("=IHHII")
# struct rtgenmsg (one byte of family), padded to 4 bytes.
_RTGEN_SIZE = 4


class Interrupted(Exception):
    """A dump was answered with NLM_F_DUMP_INTR: the table changed meanwhile; read again."""


def open_socket():
    """A plain NETLINK_ROUTE socket in the calling thread's namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    try:
        sock.bind((0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def receive(sock, pending):
    """Yield (type, flags, seq, errno, message bytes) for answers to the sequence numbers in pending.

    pending is a set the caller shrinks (discard a number once its answer is
    complete); the loop ends when it is empty. errno is the NLMSG_ERROR code
    (0 for an acknowledgement), None for other messages. Answers to other
    sequence numbers (a late answer to an earlier request) are skipped.
    """
    while pending:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind, flags, seq = _HEADER.unpack_from(data, offset)
            if seq in pending:
                code = -_ERRNO.unpack_from(data, offset + 16)[0] if kind == NLMSG_ERROR else None
                yield kind, flags, seq, code, data[offset:offset + length]
            if length < _HEADER.size:
                break
            offset += (length + 3) & ~3


def request(msg_class, msg_type, header_flags, seq, **fields):
    """The bytes of one request built by pyroute2's msg_class; attrs among fields."""
    msg = msg_class()
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = header_flags
    msg["header"]["sequence_number"] = seq
    for key, value in fields.items():
        msg[key] = value
    msg.encode()
    return bytes(msg.data)


def _decode(msg_class, data):
    msg = msg_class(data)
    msg.decode()
    return msg


def dump(sock, msg_class, msg_type, family, seq):
    """One RTM_GET* dump, every answer decoded by msg_class.

    An answer carrying NLM_F_DUMP_INTR is read to its end and then reported as
    Interrupted, so that the caller reads again.
    """
    message = request(msg_class, msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, family=family)
    return [_decode(msg_class, data) for data in dump_raw(sock, message, msg_type - 2, seq)]


def dump_raw(sock, message, answer, seq):
    """Send one encoded dump request (sequence number seq): the bytes of every answer of type answer.

    answer is the type of the objects' messages (RTM_NEWLINK for RTM_GETLINK, and so
    on). Interrupted, and OSError(errno) on refusal, as for ``dump``.
    """
    sock.sendall(message)
    result, interrupted, pending = [], False, {seq}
    for kind, flags, _seq, code, data in receive(sock, pending):
        interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
        if kind == NLMSG_DONE:
            if interrupted:
                raise Interrupted()
            pending.clear()
        elif code:
            raise OSError(code, os.strerror(code))
        elif kind == answer:
            result.append(data)
    return result


def get(sock, msg_class, msg_type, seq, **fields):
    """One RTM_GET* request for a single object: its decoded answer; OSError(errno) on refusal."""
    data = get_raw(sock, request(msg_class, msg_type, NLM_F_REQUEST, seq, **fields), seq)
    return None if data is None else _decode(msg_class, data)


def get_raw(sock, message, seq):
    """Send one encoded request for a single object (sequence number seq): the bytes of its answer.

    OSError(errno) on refusal.
    """
    sock.sendall(message)
    for _kind, _flags, _seq, code, data in receive(sock, {seq}):
        if code:
            raise OSError(code, os.strerror(code))
        return data
    return None


def ack(sock, message, seq):
    """Send one encoded change (sequence number seq, NLM_F_ACK set) and wait for its acknowledgement.

    A refusal is an OSError(errno, text): the errno's text and, when the socket
    asked for extended acknowledgements (NETLINK_EXT_ACK) and the kernel said
    more, its message in parentheses.
    """
    sock.sendall(message)
    for kind, _flags, _seq, code, data in receive(sock, {seq}):
        if kind != NLMSG_ERROR:
            continue
        if code:
            detail = ack_message(data)
            raise OSError(code, os.strerror(code) + (" (%s)" % detail if detail else ""))
        return


def ack_message(data):
    """The kernel's message (NLMSGERR_ATTR_MSG) in an NLMSG_ERROR answer, or None.

    The attributes follow the error code and the request as echoed: its header
    alone (NLM_F_CAPPED), or all of it.
    """
    flags = _HEADER.unpack_from(data, 0)[2]
    start = _NLMSGHDR.size + _ERRNO.size
    if not flags & NLM_F_ACK_TLVS or len(data) < start + _NLMSGHDR.size:
        return None
    echoed = _HEADER.unpack_from(data, start)[0]
    offset = start + (_NLMSGHDR.size if flags & NLM_F_CAPPED else (echoed + 3) & ~3)
    while offset + _NLA.size <= len(data):
        length, attr_type = _NLA.unpack_from(data, offset)
        if length < _NLA.size:
            break
        if attr_type & 0x3fff == NLMSGERR_ATTR_MSG:
            text = data[offset + _NLA.size:offset + length].split(b"\0", 1)[0]
            return text.decode("utf-8", "replace") or None
        offset += (length + 3) & ~3
    return None


def nsid(sock, fd, seq):
    """The id the socket's namespace gives the namespace of file descriptor fd; None: it has none.

    RTM_GETNSID with NETNSA_FD only looks the id up, it never assigns one. The
    kernel reports a veth peer in another namespace by such an id
    (IFLA_LINK_NETNSID), so equal ids prove the peer is in that namespace.
    """
    attr = _NLA.pack(8, NETNSA_FD) + struct.pack("=I", fd)
    body = b"\0" * _RTGEN_SIZE + attr
    sock.sendall(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETNSID, NLM_F_REQUEST, seq, 0) + body)
    for kind, _flags, _seq, code, data in receive(sock, {seq}):
        if code:
            raise OSError(code, os.strerror(code))
        if kind != RTM_NEWNSID:
            return None
        offset = _NLMSGHDR.size + _RTGEN_SIZE
        while offset + _NLA.size <= len(data):
            length, attr_type = _NLA.unpack_from(data, offset)
            if length < _NLA.size:
                break
            if attr_type & 0x3fff == NETNSA_NSID:
                value = struct.unpack_from("=i", data, offset + _NLA.size)[0]
                return None if value < 0 else value
            offset += (length + 3) & ~3
        return None
    return None


def send_all(sock, messages):
    """Send encoded requests numbered 1..n (each asking for an ACK) in one write.

    Returns {seq: errno} of the refused ones; every request is answered.
    """
    sock.sendall(b"".join(messages))
    pending = set(range(1, len(messages) + 1))
    errors = {}
    for kind, _flags, seq, code, _data in receive(sock, pending):
        if kind == NLMSG_ERROR:
            pending.discard(seq)
            if code:
                errors[seq] = code
    return errors
