# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin's built-in IPAM: addresses of one subnet, reserved in files.

State of a network lives in ``<data dir>/<network name>/``: one file per
reserved address, named after the address and holding the attachment that
owns it (``{"containerID": ..., "ifname": ...}``), plus ``last_reserved``
(the address handed out last; the next search starts after it, so a released
address is not reused at once) and ``lock``. Every read-modify-write happens
while holding an exclusive ``flock`` on ``lock``, so plugin processes running
in parallel never hand out one address twice.

Only the standard library is used (and the collection's error classes,
``core.errors``); nothing here touches the network.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import time

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import IpamError, LockTimeout, PoolExhausted

__all__ = ["DEFAULT_DATA_DIR", "IpamError", "LockTimeout", "Pool", "PoolExhausted", "Store"]

DEFAULT_DATA_DIR = "/var/lib/cni/podnet"
LOCK_FILE = "lock"
LAST_FILE = "last_reserved"
# How long an operation waits for the lock before giving up (CNI "try again later").
LOCK_TIMEOUT = 30.0


class Pool:
    """The addresses an IPv4 subnet can hand out: its hosts minus the gateway.

    The gateway defaults to the first host address (the bridge's address).
    range_start and range_end, when given, narrow the pool to that span of
    the subnet's host addresses (so that another allocator can own the rest).
    """

    def __init__(self, subnet, gateway=None, range_start=None, range_end=None):
        self.subnet = ipaddress.ip_network(subnet)
        if self.subnet.version != 4 or self.subnet.prefixlen > 30:
            raise ValueError("%s: the pool needs an IPv4 subnet of at least 4 addresses" % subnet)
        self.gateway = next(self.subnet.hosts()) if gateway is None else ipaddress.ip_address(gateway)
        if self.gateway not in self.subnet:
            raise ValueError("gateway %s is not inside %s" % (self.gateway, self.subnet))
        # Network and broadcast addresses are never handed out.
        self.first = int(self.subnet.network_address) + 1
        self.last = int(self.subnet.broadcast_address) - 1
        for name, bound in (("range start", range_start), ("range end", range_end)):
            if bound is not None and not self.first <= int(ipaddress.ip_address(bound)) <= self.last:
                raise ValueError("%s %s is not a host address of %s" % (name, bound, self.subnet))
        if range_start is not None:
            self.first = int(ipaddress.ip_address(range_start))
        if range_end is not None:
            self.last = int(ipaddress.ip_address(range_end))
        if self.first > self.last:
            raise ValueError("range start %s is after range end %s"
                             % (ipaddress.ip_address(self.first), ipaddress.ip_address(self.last)))
        if self.size < 1:
            raise ValueError("the range %s-%s holds no address but the gateway"
                             % (ipaddress.ip_address(self.first), ipaddress.ip_address(self.last)))

    def __contains__(self, ip):
        value = int(ipaddress.ip_address(ip))
        return self.first <= value <= self.last and value != int(self.gateway)

    @property
    def size(self):
        """How many addresses the pool holds."""
        count = self.last - self.first + 1
        return count - 1 if self.first <= int(self.gateway) <= self.last else count

    def describe(self):
        """'10.244.1.0/24' or '10.244.1.0/24 (10.244.1.128-10.244.1.254)' for a narrowed pool."""
        full = (int(self.subnet.network_address) + 1, int(self.subnet.broadcast_address) - 1)
        if (self.first, self.last) == full:
            return str(self.subnet)
        return "%s (%s-%s)" % (self.subnet, ipaddress.ip_address(self.first), ipaddress.ip_address(self.last))

    def candidates(self, after=None):
        """Every address of the pool once, starting after ``after`` and wrapping around."""
        start = self.first
        if after is not None and after in self:
            start = int(ipaddress.ip_address(after)) + 1
        span = self.last - self.first + 1
        gateway = int(self.gateway)
        for step in range(span):
            value = self.first + (start - self.first + step) % span
            if value != gateway:
                yield ipaddress.ip_address(value)


class Store:
    """Reservations of one network, in ``data_dir/network``.

    Methods other than ``locked`` and ``reservations`` change state and must
    be called inside ``with store.locked():``.
    """

    def __init__(self, data_dir, network):
        if not os.path.isabs(data_dir):
            raise ValueError("%s: the data directory must be an absolute path" % data_dir)
        self.dir = os.path.join(data_dir, network)
        self._lock_fd = None

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def locked(self, timeout=None):
        """Hold the network's lock (creating its directory first if needed).

        Waits at most timeout seconds (default LOCK_TIMEOUT), then LockTimeout.
        """
        timeout = LOCK_TIMEOUT if timeout is None else timeout
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + timeout
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        "the IPAM lock %s was held by another process for more than %ss"
                        % (os.path.join(self.dir, LOCK_FILE), timeout))
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            self._lock_fd = fd
            yield self
        finally:
            self._lock_fd = None
            os.close(fd)  # closing the descriptor drops the lock

    def _require_lock(self):
        if self._lock_fd is None:
            raise RuntimeError("IPAM state changed without holding the lock")

    # ----------------------------------------------------------------- reads
    def reservations(self):
        """{address (str): {"containerID": ..., "ifname": ...}} of every reserved address.

        A file that cannot be parsed still reserves its address (owner None),
        until a GC that does not list it or an explicit release.
        """
        try:
            names = os.listdir(self.dir)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return {}
            raise
        result = {}
        for name in names:
            try:
                ip = ipaddress.ip_address(name)
            except ValueError:
                continue
            owner = {"containerID": None, "ifname": None}
            try:
                with open(os.path.join(self.dir, name)) as handle:
                    data = json.load(handle)
                if isinstance(data, dict):
                    owner = {"containerID": data.get("containerID"), "ifname": data.get("ifname")}
            except (OSError, ValueError):
                pass
            result[str(ip)] = owner
        return result

    def owned_by(self, container_id, ifname):
        """Addresses reserved for one attachment (normally one)."""
        return sorted(
            (ip for ip, owner in self.reservations().items()
             if owner["containerID"] == container_id and owner["ifname"] == ifname),
            key=ipaddress.ip_address)

    def free_count(self, pool):
        """How many addresses of the pool are not reserved."""
        taken = sum(1 for ip in self.reservations() if ip in pool)
        return pool.size - taken

    def _last(self):
        try:
            with open(os.path.join(self.dir, LAST_FILE)) as handle:
                return ipaddress.ip_address(handle.read().strip())
        except (OSError, ValueError):
            return None

    # ---------------------------------------------------------------- writes
    def _write(self, name, text):
        path = os.path.join(self.dir, name)
        tmp = os.path.join(self.dir, ".%s.tmp" % name)
        with open(tmp, "w") as handle:
            handle.write(text)
        os.rename(tmp, path)

    def reserve(self, pool, container_id, ifname):
        """Reserve an address for (container_id, ifname); returns (address, new).

        An attachment that holds an address of the pool already gets that
        address again (new is False). Otherwise the first free address after
        the last one handed out is reserved; PoolExhausted when there is none.
        """
        self._require_lock()
        taken = self.reservations()
        for ip, owner in sorted(taken.items()):
            if owner["containerID"] == container_id and owner["ifname"] == ifname and ip in pool:
                return ipaddress.ip_address(ip), False
        for ip in pool.candidates(self._last()):
            if str(ip) not in taken:
                self._write(str(ip), json.dumps({"containerID": container_id, "ifname": ifname}) + "\n")
                self._write(LAST_FILE, "%s\n" % ip)
                return ip, True
        raise PoolExhausted(
            "no free address in %s: all %d addresses are reserved" % (pool.describe(), pool.size))

    def release_ip(self, ip):
        """Release one address; False when it was not reserved."""
        self._require_lock()
        try:
            os.unlink(os.path.join(self.dir, str(ipaddress.ip_address(ip))))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def release(self, container_id, ifname):
        """Release every address of one attachment; returns them (none is fine)."""
        self._require_lock()
        released = []
        for ip in self.owned_by(container_id, ifname):
            if self.release_ip(ip):
                released.append(ip)
        return released

    def stale(self, valid):
        """Reservations whose (containerID, ifname) is not in valid: {address: owner}."""
        return dict((ip, owner) for ip, owner in self.reservations().items()
                    if (owner["containerID"], owner["ifname"]) not in valid)
