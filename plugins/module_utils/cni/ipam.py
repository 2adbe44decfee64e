# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin's built-in IPAM: addresses of a subnet per address family, reserved in files.

A network has one pool per range set (``Pool``: an IPv4 or an IPv6 subnet,
optionally narrowed to a range), at most one per address family. State of a
network lives in ``<data dir>/<network name>/``, for all its pools: one file
per reserved address, named after the address (IPv4 dotted, IPv6 in its
compressed form, such as ``fd00:10:244:1::2``) and holding the attachment that
owns it (``{"containerID": ..., "ifname": ..., "netns": ...}``), plus
``last_reserved`` for the first range set and ``last_reserved.<index>`` for
the others (the address handed out last; the next search starts after it, so
a released address is not reused at once) and ``lock``. An ADD reserves one
address per range set under the lock, all or none (``reserve_all``). Every
read-modify-write happens while holding an exclusive ``flock`` on ``lock``, so
plugin processes running in parallel never hand out one address twice.

Ownership: a reservation belongs to its attachment, (containerID, ifname) in
the network namespace it was made for. Only that attachment releases it (a
release that names another namespace releases nothing), or a GC that does not
list the attachment. Files written before the namespace was recorded name no
namespace; they keep working, and the next ADD of their attachment records it.

The state is the plugin's own: the data directory and the network's
directory must be directories (not links) owned by the plugin's user and not
writable by group or others, or the store refuses to touch them
(``StateError``, naming the path and why). Directories it creates get mode
0700 and files 0600, whatever the umask; its missing ancestors get 0755.
Everything inside the network's directory is opened relative to that
directory's descriptor and never through a link: new files with
``O_CREAT | O_EXCL | O_NOFOLLOW``, the others with ``O_NOFOLLOW |
O_NONBLOCK``, and only regular files are read, so a link, a named pipe or a
device node planted there is neither followed nor opened. Files are
replaced by renaming a temporary file over them, so a process killed at any
point leaves the old content or the new one; the temporary files such a
process leaves behind are removed by the next operation under the lock.

A reservation entry of unexpected shape (not JSON, JSON that is no owner
record, a directory, a pipe, a link) still reserves its address: the store
never hands out an address whose entry it cannot prove free. Such entries are
listed by ``damaged()`` and kept by GC; only their removal by hand frees them.

Only the standard library is used (and the collection's error classes,
``core.errors``); nothing here touches the network.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import stat
import time

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import (
    DuplicateAttachment, IpamError, LockTimeout, PoolExhausted, StateError)

__all__ = ["DEFAULT_DATA_DIR", "DuplicateAttachment", "IpamError", "LockTimeout", "Pool", "PoolExhausted",
           "Reservation", "StateError", "Store", "address_key", "last_file", "same_netns"]

DEFAULT_DATA_DIR = "/var/lib/cni/podnet"
LOCK_FILE = "lock"
LAST_FILE = "last_reserved"
# How long an operation waits for the lock before giving up (CNI "try again later").
LOCK_TIMEOUT = 30.0
# Modes of what the store creates, whatever the umask.
DIR_MODE = 0o700
FILE_MODE = 0o600
PARENT_MODE = 0o755
# The smallest pools (prefix lengths): 4 addresses.
MAX_PREFIX = {4: 30, 6: 126}
# A reservation file is a line of JSON; anything larger is not one of ours.
MAX_RECORD = 4096

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


Reservation = collections.namedtuple("Reservation", "address new legacy")
Reservation.__doc__ = """What reserve() did: address (ipaddress), new (reserved by this call: a failed ADD
releases it), legacy (the attachment's entry names no namespace yet, the call did: adopt() records it)."""


def last_file(index):
    """The file that remembers the last address handed out of range set index.

    The first set keeps the name of the one-subnet state (``last_reserved``),
    so a network that gains a second family keeps its pointer.
    """
    return LAST_FILE if not index else "%s.%d" % (LAST_FILE, index)


def address_key(text):
    """Sort key of an address (text or ipaddress) of either family: IPv4 first, then by value."""
    ip = ipaddress.ip_address(text)
    return ip.version, int(ip)


def same_netns(first, second):
    """Whether two CNI_NETNS paths name one network namespace (the same path, or one namespace inode)."""
    if first == second:
        return True
    try:
        one, other = os.stat(first), os.stat(second)
    except (OSError, TypeError, ValueError):
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def owner_record(container_id, ifname, netns):
    return {"containerID": container_id, "ifname": ifname, "netns": netns}


def _parse_owner(data):
    """A decoded reservation file -> owner dict, or a reason why it is none."""
    if not isinstance(data, dict):
        kind = ("JSON null" if data is None else "a JSON boolean" if isinstance(data, bool) else "a JSON array"
                if isinstance(data, list) else "a JSON string" if isinstance(data, str) else "a JSON number")
        return None, "%s, not an owner record" % kind
    cid, ifname, netns = data.get("containerID"), data.get("ifname"), data.get("netns")
    if not isinstance(cid, str) or not cid or not isinstance(ifname, str) or not ifname:
        return None, "an owner record without containerID and ifname (strings)"
    if netns is not None and not isinstance(netns, str):
        return None, "an owner record whose netns is not a string"
    return owner_record(cid, ifname, netns), None


def _damaged(reason):
    return {"containerID": None, "ifname": None, "netns": None, "problem": reason}


def _address_name(name):
    """The address a state file is named after, or None (then it is no reservation).

    Only the canonical text counts (as ``str()`` of the address writes it: IPv4
    dotted without leading zeros, IPv6 compressed and lower case), so that one
    address has exactly one possible file: ``10.244.1.07``, ``FD00::5``,
    ``fd00:0::5`` or ``fd00::5%eth0`` are no reservations.
    """
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return None
    if getattr(ip, "scope_id", None) is not None:  # fd00::5%eth0: a zone is no part of an address of ours
        return None
    return ip if str(ip) == name else None


def _temporary(name):
    return ".%s.tmp" % name


def _is_temporary(name):
    return name.startswith(".") and name.endswith(".tmp") and len(name) > 5


def _shape(mode):
    """What a file of that mode is, in words."""
    for test, what in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device node"), (stat.S_ISBLK, "a device node")):
        if test(mode):
            return what
    return "of an unknown kind"


def _unlink(name, dir_fd):
    """Remove a file (a link itself, never its target); False when it was not there."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


class Pool:
    """The addresses a subnet (IPv4 or IPv6) can hand out: its hosts minus the gateway.

    IPv4: the subnet without its network and broadcast addresses; IPv6: without
    the subnet-router anycast address (the network address), as the reference
    host-local IPAM counts them. The gateway defaults to the first host
    address (the bridge's address). range_start and range_end, when given,
    narrow the pool to that span of the subnet's host addresses (so that
    another allocator can own the rest).

    Everything is arithmetic on the addresses' integers: an IPv6 /64 holds
    2^64 addresses, and nothing here enumerates a pool (``candidates`` is lazy).
    """

    def __init__(self, subnet, gateway=None, range_start=None, range_end=None):
        self.subnet = ipaddress.ip_network(subnet)
        self.version = self.subnet.version
        if self.subnet.prefixlen > MAX_PREFIX[self.version]:
            raise ValueError("%s: the pool needs an IPv%d subnet of at least 4 addresses (at most a /%d)"
                             % (subnet, self.version, MAX_PREFIX[self.version]))
        # Never handed out: the network address, and IPv4's broadcast address.
        low = int(self.subnet.network_address) + 1
        high = int(self.subnet.broadcast_address) - (1 if self.version == 4 else 0)
        self._hosts = (low, high)
        self.gateway = self._address(low) if gateway is None else ipaddress.ip_address(gateway)
        if self.gateway.version != self.version or self.gateway not in self.subnet:
            raise ValueError("gateway %s is not inside %s" % (self.gateway, self.subnet))
        self.first, self.last = low, high
        bounds = {}
        for name, bound in (("range start", range_start), ("range end", range_end)):
            if bound is None:
                continue
            ip = ipaddress.ip_address(bound)
            if ip.version != self.version or not low <= int(ip) <= high:
                raise ValueError("%s %s is not a host address of %s" % (name, bound, self.subnet))
            bounds[name] = int(ip)
        self.first = bounds.get("range start", low)
        self.last = bounds.get("range end", high)
        if self.first > self.last:
            raise ValueError("range start %s is after range end %s"
                             % (self._address(self.first), self._address(self.last)))
        if self.size < 1:
            raise ValueError("the range %s-%s holds no address but the gateway"
                             % (self._address(self.first), self._address(self.last)))

    def _address(self, value):
        return ipaddress.IPv4Address(value) if self.version == 4 else ipaddress.IPv6Address(value)

    def __contains__(self, ip):
        ip = ipaddress.ip_address(ip)
        return ip.version == self.version and self.first <= int(ip) <= self.last and ip != self.gateway

    @property
    def size(self):
        """How many addresses the pool holds (counted, never enumerated)."""
        count = self.last - self.first + 1
        return count - 1 if self.first <= int(self.gateway) <= self.last else count

    def describe(self):
        """'10.244.1.0/24' or '10.244.1.0/24 (10.244.1.128-10.244.1.254)' for a narrowed pool."""
        if (self.first, self.last) == self._hosts:
            return str(self.subnet)
        return "%s (%s-%s)" % (self.subnet, self._address(self.first), self._address(self.last))

    def candidates(self, after=None):
        """Every address of the pool once, lazily, starting after ``after`` and wrapping around."""
        start = self.first
        if after is not None and after in self:
            start = int(ipaddress.ip_address(after)) + 1
        span = self.last - self.first + 1
        gateway = int(self.gateway)
        for step in range(span):  # a range object: lazy for any size
            value = self.first + (start - self.first + step) % span
            if value != gateway:
                yield self._address(value)

    def exhausted(self, reservations):
        """The message for a pool without a free address, naming entries that hold addresses unreadably."""
        msg = "no free address in %s: all %d addresses are reserved" % (self.describe(), self.size)
        damaged = sorted((ip for ip, owner in reservations.items() if owner.get("problem") and ip in self),
                         key=address_key)
        if damaged:
            msg += (" (%d of them by state entries that are no reservation records: %s; remove those by hand "
                    "once no container uses their addresses)"
                    % (len(damaged), ", ".join("%s (%s)" % (ip, reservations[ip]["problem"]) for ip in damaged[:5])
                       + (", ..." if len(damaged) > 5 else "")))
        return msg

    def taken(self, reservations):
        """How many of the reserved addresses are of this pool."""
        return sum(1 for ip in reservations if ip in self)


# ------------------------------------------------------------- directories
def _refusal(path, why):
    return StateError("the IPAM state directory %s %s; refusing to use it" % (path, why))


def _lock_refusal(path, mode):
    """The refusal of a lock file that is not a regular file (mode: what it is instead)."""
    if stat.S_ISLNK(mode):
        return StateError("the IPAM lock %s is a symbolic link; refusing to follow it" % path)
    return StateError("the IPAM lock %s is %s, not a regular file" % (path, _shape(mode)))


def _check_dir(fd, path):
    """The directory behind fd is the plugin's own: owned by its user, writable by nobody else."""
    info = os.fstat(fd)
    uid = os.geteuid()
    if info.st_uid != uid:
        raise _refusal(path, "is owned by uid %d, not by uid %d that runs the plugin (another user could change "
                             "the plugin's state); check its contents, then chown it or remove it"
                       % (info.st_uid, uid))
    if info.st_mode & 0o022:
        who = {0o020: "its group", 0o002: "others", 0o022: "its group and others"}[info.st_mode & 0o022]
        raise _refusal(path, "is writable by %s (mode %04o: another user could plant files or links in it); "
                             "check its contents, then 'chmod go-w %s'"
                       % (who, stat.S_IMODE(info.st_mode), path))


def _not_a_directory(parent_fd, name, path):
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return _refusal(path, "is not a directory")
    if stat.S_ISLNK(info.st_mode):
        return _refusal(path, "is a symbolic link (a link could send the plugin's writes anywhere); "
                              "make it a directory")
    return _refusal(path, "is %s, not a directory" % _shape(info.st_mode))


def _make_parents(path):
    """Create the missing ancestors of the data directory, mode 0755 whatever the umask."""
    missing = []
    while not os.path.isdir(path):  # an ancestor may well be a link (/var/run -> /run)
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for item in reversed(missing):
        try:
            os.mkdir(item, DIR_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StateError("cannot create the directory %s for the IPAM state: %s" % (item, exc.strerror))
        fd = os.open(item, _DIR_FLAGS)
        try:
            os.fchmod(fd, PARENT_MODE)
        finally:
            os.close(fd)


def _open_dir(parent_fd, name, path, create):
    """A descriptor of the checked directory name (relative to parent_fd, or an absolute path).

    None when it does not exist and create is false. A directory made here
    starts as 0700 under any umask and gets DIR_MODE through its descriptor.
    """
    made = False
    if create:
        if parent_fd is None:
            _make_parents(os.path.dirname(path))
        try:
            os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
            made = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateError("cannot create the IPAM state directory %s: %s" % (path, exc.strerror))
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            return None
        raise StateError("the IPAM state directory %s vanished while it was being opened" % path)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _not_a_directory(parent_fd, name, path)
        raise StateError("cannot open the IPAM state directory %s: %s" % (path, exc.strerror))
    try:
        if made:
            os.fchmod(fd, DIR_MODE)
        _check_dir(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Store:
    """Reservations of one network, in ``data_dir/network``.

    Methods that change state must be called inside ``with store.locked():``;
    the reads (reservations, damaged, owned_by, free_count) work with or
    without the lock.
    """

    def __init__(self, data_dir, network):
        if not isinstance(data_dir, str) or not os.path.isabs(data_dir):
            raise ValueError("%s: the data directory must be an absolute path" % data_dir)
        if not isinstance(network, str) or not network or "/" in network or "\0" in network \
                or network in (".", ".."):
            raise ValueError("%r: a network name cannot name a path" % (network,))
        self.data_dir = os.path.normpath(data_dir)
        self.network = network
        self.dir = os.path.join(self.data_dir, network)
        self._fd = None       # the network's directory, while the lock is held
        self._lock_fd = None

    # -------------------------------------------------------- directories
    def _open(self, create):
        """A descriptor of the network's directory, both levels checked; None when there is no state yet."""
        top = _open_dir(None, self.data_dir, self.data_dir, create)
        if top is None:
            return None
        try:
            return _open_dir(top, self.network, self.dir, create)
        finally:
            os.close(top)

    @contextlib.contextmanager
    def _directory(self):
        """The locked directory's descriptor, or one opened for a read (None: no state yet)."""
        if self._fd is not None:
            yield self._fd
            return
        fd = self._open(create=False)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def exists(self):
        """Whether the network has state (its directory exists; checked when it does)."""
        with self._directory() as fd:
            return fd is not None

    def check(self):
        """Refuse (StateError) existing state directories that are not safe to use; creates nothing."""
        self.exists()

    def check_writable(self):
        """Refuse (StateError) a state directory that ADD could not write or make, as ADD would find it.

        An existing directory must take new files; a missing one, its nearest
        existing ancestor must take a new directory: one is made there and
        removed again (a file system such as /proc or /sys takes none, whatever
        its permission bits say).
        """
        with self._directory() as fd:
            if fd is not None:
                if not os.access(self.dir, os.W_OK | os.X_OK):
                    raise _refusal(self.dir, "is not writable")
                self._check_lock(fd)
                return
        parent = self.dir
        while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
            parent = os.path.dirname(parent)
        probe = os.path.join(parent, ".podnet-status-%d" % os.getpid())
        try:
            os.mkdir(probe, DIR_MODE)
        except OSError as exc:
            raise StateError("cannot create the IPAM state directory %s: %s cannot hold a new directory (%s)"
                             % (self.dir, parent, exc.strerror))
        try:
            os.rmdir(probe)
        except OSError:
            pass

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def locked(self, timeout=None):
        """Hold the network's lock (creating its directory first if needed).

        Waits at most timeout seconds (default LOCK_TIMEOUT), then LockTimeout.
        """
        timeout = LOCK_TIMEOUT if timeout is None else timeout
        fd = self._open(create=True)
        try:
            lock = self._open_lock(fd)
            try:
                deadline = time.monotonic() + timeout
                delay = 0.002
                while True:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
                self._fd, self._lock_fd = fd, lock
                yield self
            finally:
                self._fd = self._lock_fd = None
                os.close(lock)  # closing the descriptor drops the lock
        finally:
            os.close(fd)

    def _check_lock(self, fd):
        """Refuse (StateError) a lock file that _open_lock would refuse; a missing one is fine."""
        path = os.path.join(self.dir, LOCK_FILE)
        try:
            mode = os.stat(LOCK_FILE, dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            raise _lock_refusal(path, mode)

    def _open_lock(self, fd):
        path = os.path.join(self.dir, LOCK_FILE)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        for _attempt in range(3):
            try:
                lock = os.open(LOCK_FILE, flags | os.O_CREAT | os.O_EXCL, FILE_MODE, dir_fd=fd)
                os.fchmod(lock, FILE_MODE)
                return lock
            except FileExistsError:
                pass
            except OSError as exc:
                raise StateError("cannot create the IPAM lock %s: %s" % (path, exc.strerror))
            try:
                lock = os.open(LOCK_FILE, flags, dir_fd=fd)
            except FileNotFoundError:
                continue  # removed in between: create it
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _lock_refusal(path, stat.S_IFLNK)
                raise StateError("cannot open the IPAM lock %s: %s" % (path, exc.strerror))
            mode = os.fstat(lock).st_mode
            if not stat.S_ISREG(mode):
                os.close(lock)
                raise _lock_refusal(path, mode)
            return lock
        raise StateError("the IPAM lock %s keeps vanishing" % path)

    def _require_lock(self):
        if self._lock_fd is None:
            raise RuntimeError("IPAM state changed without holding the lock")

    # ----------------------------------------------------------------- reads
    def _read_small(self, fd, name, limit):
        """(bytes, None) of a regular file in the directory, or (None, what it is instead).

        Never follows a link and never opens anything but a regular file, so a
        named pipe or a device node cannot block or trigger anything.
        """
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None, None
        if not stat.S_ISREG(info.st_mode):
            return None, _shape(info.st_mode)
        try:
            handle = os.open(name, _READ_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, "unreadable (%s)" % (exc.strerror or exc)
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode):  # swapped in between
                return None, _shape(info.st_mode)
            chunks, size = [], 0
            while size <= limit:
                chunk = os.read(handle, limit + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            return None, "unreadable (%s)" % (exc.strerror or exc)
        finally:
            os.close(handle)
        data = b"".join(chunks)
        if len(data) > limit:
            return None, "larger than %d bytes" % limit
        return data, None

    def _owner(self, fd, name):
        """Owner dict of one reservation entry; damaged entries carry 'problem'; None if it vanished."""
        data, shape = self._read_small(fd, name, MAX_RECORD)
        if data is None:
            return None if shape is None else _damaged(shape)
        try:
            decoded = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _damaged("not JSON" if data.strip() else "empty")
        owner, problem = _parse_owner(decoded)
        return owner if owner is not None else _damaged(problem)

    def _scan(self, fd):
        result = {}
        sweep = self._lock_fd is not None
        for name in os.listdir(fd):
            if _address_name(name) is None:
                if sweep and _is_temporary(name):
                    # Every write happens under the lock: one there now was left by a killed process.
                    try:
                        _unlink(name, fd)
                    except OSError:
                        pass
                continue
            owner = self._owner(fd, name)
            if owner is not None:
                result[name] = owner
        return result

    def reservations(self):
        """{address (str): owner} of every reserved address.

        owner: {"containerID", "ifname", "netns"} (netns None in files written
        before it was recorded). An entry that is no owner record (not JSON,
        another shape, a directory, a pipe, a link) still reserves its address:
        its owner has containerID, ifname and netns None and "problem" says
        what the entry is. Names that are not addresses in their canonical
        text are not reservations and are ignored.
        """
        with self._directory() as fd:
            return {} if fd is None else self._scan(fd)

    def damaged(self):
        """{address: what is wrong} of the entries that reserve an address but name no owner."""
        return dict((ip, owner["problem"]) for ip, owner in self.reservations().items() if owner.get("problem"))

    def owned_by(self, container_id, ifname, netns=None):
        """Addresses reserved for one attachment (normally one); with netns, only those made for it."""
        return sorted(
            (ip for ip, owner in self.reservations().items() if _owns(owner, container_id, ifname, netns)),
            key=address_key)

    def free_count(self, pool):
        """How many addresses of the pool are not reserved (entries of unexpected shape count as reserved)."""
        return pool.size - pool.taken(self.reservations())

    def _last(self, index=0):
        data, _shape_of = self._read_small(self._fd, last_file(index), 64)
        try:
            return ipaddress.ip_address(data.decode("ascii").strip()) if data else None
        except (UnicodeDecodeError, ValueError):
            return None

    # ---------------------------------------------------------------- writes
    def _write(self, name, text):
        """Replace the file name with text: a new temporary file (O_EXCL, never through a link), renamed."""
        fd = self._fd
        tmp = _temporary(name)
        try:
            _unlink(tmp, fd)  # left by a process killed in the middle of a write
            handle = os.open(tmp, _NEW_FLAGS, FILE_MODE, dir_fd=fd)
            try:
                os.fchmod(handle, FILE_MODE)
                data = text.encode("utf-8")
                while data:
                    data = data[os.write(handle, data):]
            finally:
                os.close(handle)
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as exc:
            try:
                _unlink(tmp, fd)
            except OSError:
                pass
            raise StateError("cannot write the IPAM state file %s: %s"
                             % (os.path.join(self.dir, name), exc.strerror or exc))

    def _record(self, ip, container_id, ifname, netns):
        self._write(str(ip), json.dumps(owner_record(container_id, ifname, netns)) + "\n")

    def reserve(self, pool, container_id, ifname, netns=None, index=0):
        """Reserve an address for the attachment (container_id, ifname) in netns; returns a Reservation.

        An attachment that holds an address of the pool already gets that
        address again (new False), unless its reservation was made for another
        namespace: then DuplicateAttachment, and nothing changes. Otherwise the
        first free address after the last one handed out of range set index is
        reserved; PoolExhausted when there is none. The search looks at one
        address more than the pool's reserved ones at most: it never walks a
        large pool.
        """
        self._require_lock()
        return self._reserve(self._scan(self._fd), pool, container_id, ifname, netns, index)

    def reserve_all(self, pools, container_id, ifname, netns=None):
        """One address of each pool (range set, in order) for the attachment: all of them, or none.

        Returns the Reservations in the pools' order. When a later pool fails
        (exhausted, or the attachment is a duplicate), the addresses this call
        reserved in the earlier ones are released again before the error goes
        on: nothing half-done stays.
        """
        taken = self._scan(self._fd)
        done = []
        try:
            for index, pool in enumerate(pools):
                reservation = self._reserve(taken, pool, container_id, ifname, netns, index)
                done.append(reservation)
                if reservation.new:
                    taken[str(reservation.address)] = owner_record(container_id, ifname, netns)
        except BaseException:
            for reservation in done:
                if reservation.new:
                    self.release_ip(reservation.address, (container_id, ifname))
            raise
        return done

    def _reserve(self, taken, pool, container_id, ifname, netns, index):
        self._require_lock()
        mine = sorted((ip for ip, owner in taken.items()
                       if owner["containerID"] == container_id and owner["ifname"] == ifname),
                      key=address_key)
        for ip in mine:
            recorded = taken[ip]["netns"]
            if netns is not None and recorded is not None and not same_netns(recorded, netns):
                raise DuplicateAttachment(container_id, ifname, ip, recorded, netns)
        for ip in mine:
            if ip in pool:
                legacy = netns is not None and taken[ip]["netns"] is None
                return Reservation(ipaddress.ip_address(ip), False, legacy)
        if pool.taken(taken) >= pool.size:
            raise PoolExhausted(pool.exhausted(taken))
        for ip in pool.candidates(self._last(index)):
            if str(ip) not in taken:
                self._record(ip, container_id, ifname, netns)
                try:
                    self._write(last_file(index), "%s\n" % ip)
                except StateError:
                    pass  # only a hint where the next search starts
                return Reservation(ip, True, False)
        raise PoolExhausted(pool.exhausted(taken))

    def adopt(self, ip, container_id, ifname, netns):
        """Record netns in a reservation of the attachment that names none yet; False if it is not such."""
        self._require_lock()
        owner = self._owner(self._fd, str(ipaddress.ip_address(ip)))
        if owner is None or owner.get("problem") or owner["netns"] is not None \
                or (owner["containerID"], owner["ifname"]) != (container_id, ifname):
            return False
        self._record(ip, container_id, ifname, netns)
        return True

    def release_ip(self, ip, owner=None):
        """Release one address; owner (containerID, ifname): only while it is that attachment's.

        False when it was not reserved (or not by owner).
        """
        self._require_lock()
        name = str(ipaddress.ip_address(ip))
        if owner is not None:
            held = self._owner(self._fd, name)
            if held is None or held.get("problem") or (held["containerID"], held["ifname"]) != tuple(owner):
                return False
        try:
            return _unlink(name, self._fd)
        except OSError as exc:
            raise StateError("cannot release %s: %s" % (os.path.join(self.dir, name), exc.strerror or exc))

    def has_leftovers(self):
        """Whether a killed writer left a temporary file (the next locked scan sweeps it)."""
        with self._directory() as fd:
            return fd is not None and any(_is_temporary(name) for name in os.listdir(fd))

    def release(self, container_id, ifname, netns=None):
        """Release the addresses of one attachment; returns them (none is fine).

        With netns (a DEL that names its namespace) only reservations made
        for that namespace, or for none recorded, are released: a DEL for an
        attachment of that name in another namespace is not its owner's.
        """
        self._require_lock()
        released = []
        for ip in self.owned_by(container_id, ifname, netns):
            if self.release_ip(ip, (container_id, ifname)):
                released.append(ip)
        return released

    def stale(self, valid):
        """Reservations whose (containerID, ifname) is not in valid: {address: owner}.

        Entries that name no owner are never stale: nothing proves them free.
        """
        return dict((ip, owner) for ip, owner in self.reservations().items()
                    if not owner.get("problem") and (owner["containerID"], owner["ifname"]) not in valid)


def _owns(owner, container_id, ifname, netns):
    if owner.get("problem") or owner["containerID"] != container_id or owner["ifname"] != ifname:
        return False
    return netns is None or owner["netns"] is None or same_netns(owner["netns"], netns)
