# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab on the file system: its directory, namespace files and the processes inside.

* the mount table (/proc/self/mountinfo) as the planner reads it: whether
  the lab directory is mounted (privately), which namespace files are
  mounted below it and which other mounts are in the way;
* the unshare(1) command that makes a member's namespace files, with the
  script a node runs inside its new namespaces;
* mount(2) and umount2(2) through the C library (``kernel.netns.libc``),
  unmounting stacked mounts, removing trees;
* the lab's marker file, and what else a lab directory holds;
* the processes still running inside namespaces about to go away, and
  stopping them.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import time

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ToolError
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import MOUNTINFO, check, libc, parse_mountinfo  # noqa: F401 (parse_mountinfo: part of this module's API)
from ansible_collections.podnet.mesh.plugins.module_utils.lab.topology import (
    LAYERED, MARKER, MARKER_TEXT, NODE_DIRS, NODE_FILES, NODE_LAYERS, SSH_DIR)

MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

# The node's own view, set up inside its new namespaces ($1 node name, $2 the
# labs' root, $3 the node's directory): hostname; the copies of the machine's
# named network namespaces unmounted; copy-on-write layers (overlayfs, upper and
# work directories below $3/layers, kept across a reboot) over the machine
# directories of LAYERED. When the node is new, its own system directories
# (NODE_DIRS) are made empty in its layers: they hide the machine's, and are
# plain directories the roles may also remove. Then every lab's namespace files
# unmounted (lazily, with their submounts) so that this node does not keep
# them alive; a private tmpfs on /run (cleared by a reboot, /run/netns for its
# pods); sysfs of its own network namespace on /sys.
NODE_SETUP = r"""
set -e
printf '%s\n' "$1" > /proc/sys/kernel/hostname
umount -R -l /run/netns 2>/dev/null || true
for top in @LAYERED@; do
    layer="$3/layers$top"
    mkdir -p "$layer/upper" "$layer/work"
    mount -t overlay -o "lowerdir=$top,upperdir=$layer/upper,workdir=$layer/work,index=off" podnet-lab "$top"
done
if [ ! -e "$3/layers/.made" ]; then
    for dir in @NODE_DIRS@; do
        rm -rf "$dir"
        mkdir -p "$dir"
    done
    grep -q "[[:space:]]$1\$" /etc/hosts 2>/dev/null || printf '127.0.1.1\t%s\n' "$1" >> /etc/hosts
    : > "$3/layers/.made"
fi
for dir in "$2"/*/; do umount -R -l "$dir" 2>/dev/null || true; done
mount -t tmpfs -o mode=0755,size=64m podnet-lab-run /run
mkdir -p /run/netns /run/lock
mount -t sysfs sysfs /sys
""".replace("@LAYERED@", " ".join(LAYERED)).replace("@NODE_DIRS@", " ".join(NODE_DIRS))

# sshd inside a node ($1 user, $2 uid, $3 the lab's public key, $4 the node's
# address, $5 sshd): the user in the node's own /etc (its copy-on-write layer)
# with passwordless sudo, its authorized key, the node's host key (made once,
# kept across reboots), a configuration of the lab's, and sshd listening on the
# node's address only. Its log is /run/podnet-lab-sshd.log inside the node.
SSHD_SETUP = r"""
set -e
user=$1 uid=$2 key=$3 ip=$4 home=/home/$1 conf=/etc/ssh/podnet-lab
for file in /etc/passwd /etc/shadow /etc/group; do
    grep -v "^$user:" "$file" > "$file.podnet-lab" || true
    cat "$file.podnet-lab" > "$file"
    rm -f "$file.podnet-lab"
done
printf '%s:x:%s:%s:podnet lab:%s:/bin/sh\n' "$user" "$uid" "$uid" "$home" >> /etc/passwd
printf '%s:*:19000:0:99999:7:::\n' "$user" >> /etc/shadow
printf '%s:x:%s:\n' "$user" "$uid" >> /etc/group
mkdir -p /etc/sudoers.d
printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$user" > /etc/sudoers.d/podnet-lab
chmod 0440 /etc/sudoers.d/podnet-lab
mkdir -p "$home/.ssh"
printf '%s\n' "$key" > "$home/.ssh/authorized_keys"
chmod 0755 "$home"
chmod 0700 "$home/.ssh"
chmod 0600 "$home/.ssh/authorized_keys"
chown -R "$uid:$uid" "$home"
mkdir -p "$conf"
test -s "$conf/ssh_host_ed25519_key" || ssh-keygen -q -t ed25519 -N '' -C "root@$(hostname)" -f "$conf/ssh_host_ed25519_key"
cat > "$conf/sshd_config" <<EOF
ListenAddress $ip
Port 22
HostKey $conf/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM no
PermitRootLogin no
AllowUsers $user
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
X11Forwarding no
PrintMotd no
UseDNS no
MaxSessions 100
MaxStartups 100:30:200
Subsystem sftp internal-sftp
EOF
mkdir -p /run/sshd
chmod 0755 /run/sshd
exec "$5" -f "$conf/sshd_config" -E /run/podnet-lab-sshd.log
"""
SSHD = "/usr/sbin/sshd"


def lab_mounts(mounts, lab):
    """From parsed mountinfo: {mounted, shared, files: {path: ns type}, strays: [path]}.

    The last mount on a point is the visible one. files holds namespace
    files (nsfs mounts) below the lab directory; strays any other mount below it.
    """
    prefix = lab.rstrip("/") + "/"
    state = {"mounted": False, "shared": False, "files": {}, "strays": []}
    below = {}
    for mount_ in mounts:
        point = mount_["point"]
        if point == lab:
            state["mounted"] = True
            state["shared"] = mount_["shared"]
        elif point.startswith(prefix):
            below[point] = mount_
    for point, mount_ in below.items():
        if mount_["fstype"] == "nsfs":
            state["files"][point] = mount_["root"].split(":", 1)[0]
        else:
            state["strays"].append(point)
    state["strays"].sort(reverse=True)
    return state


def read_lab_mounts(lab):
    """lab_mounts() of the mount table this process sees."""
    with open(MOUNTINFO) as handle:
        return lab_mounts(parse_mountinfo(handle.read()), lab)


def members_from_files(lab, files, dirs=()):
    """{label: [kinds]} of namespace files mounted in the expected places."""
    result = {}
    prefix = lab.rstrip("/") + "/"
    for path, nstype in files.items():
        rest = path[len(prefix):].split("/")
        if len(rest) != 2 or rest[1] not in NODE_FILES or rest[1] != nstype:
            continue
        result.setdefault(rest[0], []).append(rest[1])
    for label in dirs:
        result.setdefault(label, [])
    return dict((label, sorted(kinds)) for label, kinds in result.items())


# ------------------------------------------------------------------- marker
def is_marked(lab):
    """Whether the directory lab holds the lab's marker file (a regular file with the lab's text)."""
    path = os.path.join(lab, MARKER)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path) as handle:
            return handle.read(len(MARKER_TEXT) + 1) == MARKER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def write_marker(lab):
    """Make directory lab (if it is not there) and write the lab's marker file into it."""
    try:
        os.makedirs(lab, mode=0o755, exist_ok=True)
        with open(os.path.join(lab, MARKER), "w") as handle:
            handle.write(MARKER_TEXT)
    except OSError as exc:
        raise ToolError("cannot write the lab's marker file into %s: %s" % (lab, exc.strerror or exc), exc.errno)


def unknown_entries(lab):
    """What the directory lab holds that no lab holds, as paths relative to it (sorted).

    A lab holds its marker, its SSH client directory (.ssh) and member
    directories; a member directory holds namespace files (net, mnt, uts:
    regular files, bind-mounted or not) and a node's layers directory. Nothing is followed: a symbolic link is unknown.
    """
    unknown = []
    try:
        entries = sorted(os.listdir(lab))
    except OSError:
        return unknown
    for entry in entries:
        path = os.path.join(lab, entry)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if entry == MARKER and stat.S_ISREG(mode) or entry == SSH_DIR and stat.S_ISDIR(mode):
            continue
        if not stat.S_ISDIR(mode):
            unknown.append(entry)
            continue
        try:
            inner = sorted(os.listdir(path))
        except OSError:
            unknown.append(entry + "/")
            continue
        for name in inner:
            try:
                inner_mode = os.lstat(os.path.join(path, name)).st_mode
            except OSError:
                continue
            if name in NODE_FILES and stat.S_ISREG(inner_mode):
                continue
            if name == NODE_LAYERS and stat.S_ISDIR(inner_mode):
                continue
            unknown.append("%s/%s" % (entry, name))
    return unknown


# ------------------------------------------------------------------ unshare
def unshare_command(path, label, files, root, unshare="unshare"):
    """argv that makes the namespace files of one member below path."""
    argv = [unshare] + ["--%s=%s" % ({"mnt": "mount"}.get(k, k), os.path.join(path, k))
                        for k in files]
    if "mnt" in files:
        argv += ["--propagation", "private", "--", "/bin/sh", "-c", NODE_SETUP,
                 "podnet-lab", label, root, path]
    else:
        argv += ["--", "true"]
    return argv


# ------------------------------------------------------------------- mounts
def mount(source, target, fstype, flags):
    check(libc().mount(source and source.encode(), target.encode(),
                       fstype and fstype.encode(), flags, None),
          "mount %s" % target)


def umount(target, lazy=False):
    check(libc().umount2(target.encode(), MNT_DETACH if lazy else 0), "umount %s" % target)


def mount_private(path):
    """Make directory path a bind mount of itself (if it is none yet) that does not propagate."""
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
        if not read_lab_mounts(path)["mounted"]:
            mount(path, path, None, MS_BIND)
        mount(None, path, None, MS_PRIVATE)
    except OSError as exc:
        raise ToolError("cannot mount the lab directory %s privately on itself: %s"
                        % (path, exc.strerror or exc), exc.errno)


def unmount_all(path):
    """Unmount everything mounted on path (stacked mounts too); lazily if busy."""
    for _attempt in range(16):
        try:
            umount(path)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return  # not (or no longer) a mount point
            if exc.errno != errno.EBUSY:
                raise ToolError("cannot unmount %s: %s" % (path, exc.strerror), exc.errno)
            try:
                umount(path, lazy=True)
            except OSError as lazy:
                raise ToolError("cannot unmount %s: %s" % (path, lazy.strerror), lazy.errno)
    raise ToolError("cannot unmount %s: still mounted after 16 unmounts" % path, errno.EBUSY)


def remove_member_files(path, files):
    """Remove the (unmounted) namespace files of a member, keeping its layers."""
    for kind in files:
        try:
            os.unlink(os.path.join(path, kind))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ToolError("cannot remove %s: %s" % (os.path.join(path, kind), exc.strerror), exc.errno)


def remove_tree(path):
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ToolError("cannot remove %s: %s" % (exc.filename or path, exc.strerror), exc.errno)


# ---------------------------------------------------------------- processes
def namespace_inodes(paths):
    """{(st_dev, st_ino)} of mounted namespace files (to find processes inside)."""
    found = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def ancestors(pid=None, proc="/proc"):
    """pid (default: this process) and the PIDs of its parents, up to PID 1."""
    pid = os.getpid() if pid is None else pid
    found = []
    while pid > 1 and pid not in found:
        found.append(pid)
        try:
            with open(os.path.join(proc, str(pid), "stat")) as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def processes_in(inodes, proc="/proc"):
    """PIDs whose net, mnt or uts namespace is one of inodes.

    Never this process nor its parents: a playbook that runs inside the lab's
    controller namespace removes it without stopping itself.
    """
    pids = []
    if not inodes:
        return pids
    spare = set(ancestors(proc=proc)) | {os.getpid()}
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) in spare:
            continue
        for kind in NODE_FILES:
            try:
                st = os.stat(os.path.join(proc, entry, "ns", kind))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in inodes:
                pids.append(int(entry))
                break
    return pids


def sshd_processes(inodes, proc="/proc"):
    """{(st_dev, st_ino) of a network namespace: [PIDs of sshd inside]} for the given inodes."""
    found = {}
    if not inodes:
        return found
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "comm")) as handle:
                if handle.read().strip() != "sshd":
                    continue
            st = os.stat(os.path.join(proc, entry, "ns", "net"))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            found.setdefault((st.st_dev, st.st_ino), []).append(int(entry))
    return found


def stop_processes(pids, grace=1.0):
    """SIGTERM, wait up to grace seconds, then SIGKILL what is left."""
    if not pids:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            # A zombie has exited already; it holds no namespace any more.
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
