# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error hierarchy of the collection (pure: no Ansible, no pyroute2).

    PodnetError
    +-- ValidationError     input refused before anything was read or changed (path, value, reason)
    |   +-- ConflictError   the input meets something on the host that is in the way
    +-- KernelError         a netlink operation failed (operation, namespace, errno)
    +-- ToolError           a command or system call other than netlink failed (nft, iptables,
    |                       sysctl, mount, unshare); code: the errno or exit status when known
    +-- IpamError           the CNI plugin's address store
        +-- PoolExhausted   no free address left
        +-- LockTimeout     the store's lock was not had in time
        +-- StateError      the state directory or a file in it cannot be used safely
        +-- DuplicateAttachment  an ADD of an attachment that holds an address in another namespace

Every str() is a message ready for a user: it names the object, the value and why.
"""

from __future__ import annotations

import errno
import json
import os

# How the namespace the code runs in is named in messages.
HOST = "host"


def shown(value):
    """A value as messages show it: text quoted, everything else as JSON (null, true, [1]), never a Python literal."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


class PodnetError(Exception):
    """Base of every error the collection raises on purpose."""


class ValidationError(PodnetError, ValueError):
    """A parameter value was refused; the message names path, value and reason."""

    def __init__(self, path, value, reason):
        self.path = path
        self.value = value
        self.reason = reason
        super().__init__("%s: %s %s" % (path, shown(value), reason))


class ConflictError(ValidationError):
    """The wanted object collides with one that exists (another kind, another owner)."""


class KernelError(PodnetError):
    """A kernel operation failed; the message names operation, namespace and errno."""

    def __init__(self, operation, ns, code, text, scoped=True):
        self.operation = operation
        self.ns = ns
        self.code = code
        self.text = text
        name = errno.errorcode.get(code, "errno %s" % code) if code else "error"
        where = " (namespace %s)" % (HOST if ns is None else ns) if scoped else ""
        super().__init__("cannot %s%s: %s [%s]" % (operation, where, text, name))

    @classmethod
    def from_exception(cls, operation, ns, exc, scoped=True):
        """A KernelError for an OSError or a pyroute2 NetlinkError (code, text)."""
        code = getattr(exc, "code", None) or getattr(exc, "errno", None)
        text = None
        args = getattr(exc, "args", ())
        if len(args) >= 2 and isinstance(args[1], str):
            text = args[1]
        if not text and code:
            text = os.strerror(code)
        return cls(operation, ns, code, text or str(exc), scoped)


class ToolError(PodnetError):
    """A non-netlink operation failed; str() is the message, code the errno or exit status."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class IpamError(PodnetError):
    """The IPAM store cannot do what was asked."""


class PoolExhausted(IpamError):
    """Every address of the pool is reserved."""


class LockTimeout(IpamError):
    """The store's lock could not be taken in time."""


class StateError(IpamError):
    """The state directory or a file in it cannot be used safely; the message names the path and why."""


class DuplicateAttachment(IpamError):
    """An ADD for an attachment that holds an address already, made for another network namespace."""

    def __init__(self, container_id, ifname, address, netns, wanted):
        self.container_id = container_id
        self.ifname = ifname
        self.address = address
        self.netns = netns
        self.wanted = wanted
        super().__init__(
            "container %s already has interface %s with address %s in the network namespace %s; an ADD of "
            "the same attachment in %s is refused (duplicate allocation): DEL it first"
            % (container_id, ifname, address, netns, wanted))
