# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The boot-time restore as files on a node: planned (pure), read and written.

Four entries make it (``podnet.mesh.boot_restore``, the persistence role):

* the podnet-restore program (mode 0755), built by ``roles/cni/files/build_podnet.py``;
* the state file (mode 0644), the text ``node.state.dumps`` gives;
* the systemd unit (mode 0644), ``unit_text``;
* the unit's enablement, a symbolic link in ``multi-user.target.wants``, the
  link ``systemctl enable`` makes.

``plan`` compares what is wanted with what ``read`` found and lists the
actions, in an order where the unit never names a program or a state file that
is not there yet (removal: the other way round). ``apply`` carries them out:
each file is written to a temporary file beside it and renamed over the old
one, so a reader sees the old bytes or the new ones, never a part.
A directory, device or FIFO where an entry should be is refused, never removed.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import stat
import tempfile
import zlib

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, ValidationError

WANTS_DIR = "multi-user.target.wants"
# The directory that exists only when systemd is the init system (sd_booted(3)).
SD_BOOTED = "/run/systemd/system"
PROGRAM_MODE = 0o755
FILE_MODE = 0o644
DIR_MODE = 0o755
# The program is ~0.7 MB; anything much bigger is no podnet-restore.
MAX_PROGRAM = 64 * 1024 * 1024

UNIT = """\
# Installed by podnet.mesh (boot_restore); changes here are overwritten.
# Restores this node's pod network (bridge, masquerade, routes, pods) from
# {state_file} at boot, before the container runtime starts.
[Unit]
Description=Restore the podnet.mesh pod network of this node
Wants=network-online.target
After=network-online.target nftables.service
Before={before}
ConditionPathExists={state_file}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={interpreter} {program} --state {state_file} --wait {wait}

[Install]
WantedBy=multi-user.target
"""


def unit_text(program, state_file, interpreter, before, wait):
    """The unit that runs the program at boot, before the units of ``before``."""
    return UNIT.format(program=program, state_file=state_file, interpreter=interpreter,
                       before=" ".join(before), wait=wait)


def decode_program(text, name="program"):
    """The program's bytes from its text form (zlib, then base64); ValidationError naming ``name`` if it is none."""
    shown = "%d characters" % len(text)
    try:
        data = zlib.decompressobj().decompress(base64.b64decode(text, validate=True), MAX_PROGRAM + 1)
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise ValidationError(name, shown, "is not a program as build_podnet.py --encode writes it (%s)" % exc)
    if len(data) > MAX_PROGRAM:
        raise ValidationError(name, shown, "decodes to more than %d bytes, no podnet-restore" % MAX_PROGRAM)
    if not data.startswith(b"#!"):
        raise ValidationError(name, shown, "decodes to no program: it does not start with #!")
    return data


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Entry:
    """One path of the boot-time restore: a file (data, mode) or a symbolic link (target)."""

    def __init__(self, key, option, path, data=None, mode=None, target=None):
        self.key = key          # program, state_file, unit, link
        self.option = option    # the module option that names the path (errors name it)
        self.path = path
        self.data = data
        self.mode = mode
        self.target = target

    @property
    def kind(self):
        return "link" if self.target is not None else "file"


def entries(want):
    """want: {program_path, program (bytes), state_file, state_text, interpreter, unit_dir, unit, before, wait}.

    The entries in install order; with state=absent only the paths count.
    """
    unit_path = os.path.join(want["unit_dir"], want["unit"])
    unit = unit_text(want["program_path"], want["state_file"], want["interpreter"], want["before"], want["wait"])
    state_text = want.get("state_text")
    return [
        Entry("program", "program_path", want["program_path"], want.get("program"), PROGRAM_MODE),
        Entry("state_file", "state_file", want["state_file"],
              None if state_text is None else state_text.encode("utf-8"), FILE_MODE),
        Entry("unit", "unit", unit_path, unit.encode("utf-8"), FILE_MODE),
        Entry("link", "unit", os.path.join(want["unit_dir"], WANTS_DIR, want["unit"]), target=unit_path),
    ]


# --------------------------------------------------------------------- read
def read_path(path, max_size=MAX_PROGRAM):
    """What is at path: None, {kind: file, data, mode}, {kind: link, target} or {kind: other, what}."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return {"kind": "link", "target": os.readlink(path)}
    if stat.S_ISREG(info.st_mode):
        if info.st_size > max_size:
            return {"kind": "file", "data": None, "size": info.st_size, "mode": stat.S_IMODE(info.st_mode)}
        with open(path, "rb") as handle:
            return {"kind": "file", "data": handle.read(), "mode": stat.S_IMODE(info.st_mode)}
    what = "a directory" if stat.S_ISDIR(info.st_mode) else "no regular file"
    return {"kind": "other", "what": what}


def missing_dirs(path):
    """The directories above path that do not exist, outermost first."""
    missing = []
    parent = os.path.dirname(path)
    while parent and parent != os.path.dirname(parent) and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    return list(reversed(missing))


def read(items, sd_booted=SD_BOOTED):
    """Every entry's path as found, the directories each one lacks, and whether systemd is the init system."""
    return {
        "paths": {e.path: read_path(e.path) for e in items},
        "missing": {e.path: missing_dirs(e.path) for e in items},
        "systemd": os.path.isdir(sd_booted),
    }


# --------------------------------------------------------------------- plan
class Action:
    """One change of the files: op (mkdir, write, chmod, link, remove, reload) on path."""

    def __init__(self, op, path, entry=None, mode=None):
        self.op = op
        self.path = path
        self.entry = entry
        self.mode = mode

    def describe(self):
        if self.op == "mkdir":
            return "create directory %s" % self.path
        if self.op == "write":
            return "write %s (%d bytes, mode %04o)" % (self.path, len(self.entry.data), self.entry.mode)
        if self.op == "chmod":
            return "set the mode of %s to %04o" % (self.path, self.mode)
        if self.op == "link":
            return "link %s to %s" % (self.path, self.entry.target)
        if self.op == "remove":
            return "remove %s" % self.path
        return "reload systemd's units"


def _refuse_other(entry, found):
    if found is not None and found["kind"] == "other":
        raise ConflictError(entry.option, entry.path, "is %s; the boot-time restore needs a %s there"
                            % (found["what"], "symbolic link" if entry.kind == "link" else "file"))


def _install(entry, found):
    """Actions that make one entry so."""
    if entry.kind == "link":
        if found is not None and found["kind"] == "link" and found["target"] == entry.target:
            return []
        return [Action("link", entry.path, entry)]
    if found is not None and found["kind"] == "file" and found["data"] == entry.data:
        return [] if found["mode"] == entry.mode else [Action("chmod", entry.path, entry, entry.mode)]
    return [Action("write", entry.path, entry)]


def plan(state, items, current):
    """The actions for state present (items' data set) or absent; current from ``read``.

    The unit and its link changing (made, rewritten or removed) on a node run by
    systemd ends with a reload of systemd's units.
    """
    actions = []
    paths = current["paths"]
    if state == "present":
        made = set()
        for entry in items:
            _refuse_other(entry, paths[entry.path])
            for directory in current["missing"][entry.path]:
                if directory not in made:
                    made.add(directory)
                    actions.append(Action("mkdir", directory))
            actions.extend(_install(entry, paths[entry.path]))
    else:
        for entry in reversed(items):
            found = paths[entry.path]
            if found is not None and found["kind"] != "other":
                actions.append(Action("remove", entry.path, entry))
    if current["systemd"] and any(a.entry is not None and a.entry.key in ("unit", "link") and a.op != "chmod"
                                  for a in actions):
        actions.append(Action("reload", None))
    return actions


def views(items, current, state):
    """before and after per entry key: absent, a link's target, a file's sha256 and mode."""
    def view(found):
        if found is None:
            return "absent"
        if found["kind"] == "link":
            return "link to %s" % found["target"]
        if found["kind"] == "file":
            digest = sha256(found["data"]) if found.get("data") is not None else "size %d" % found["size"]
            return "sha256 %s, mode %04o" % (digest, found["mode"])
        return found["what"]
    before, after = {}, {}
    for entry in items:
        found = current["paths"][entry.path]
        before[entry.key] = view(found)
        if state == "absent":
            after[entry.key] = view(found) if found is not None and found["kind"] == "other" else "absent"
        elif entry.kind == "link":
            after[entry.key] = "link to %s" % entry.target
        else:
            after[entry.key] = "sha256 %s, mode %04o" % (sha256(entry.data), entry.mode)
    return before, after


# -------------------------------------------------------------------- apply
def write_file(path, data, mode):
    """Write data to path through a temporary file beside it, renamed over it (mode set before the rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".podnet-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def make_link(path, target):
    """A symbolic link path -> target, replacing what is there through a link renamed over it."""
    tmp = os.path.join(os.path.dirname(path), ".podnet-%s" % os.urandom(6).hex())
    os.symlink(target, tmp)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def apply(actions, reload_units):
    """Carry the actions out in order; reload_units() for a reload action."""
    for action in actions:
        if action.op == "mkdir":
            try:
                os.mkdir(action.path, DIR_MODE)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
        elif action.op == "write":
            write_file(action.path, action.entry.data, action.entry.mode)
        elif action.op == "chmod":
            os.chmod(action.path, action.mode)
        elif action.op == "link":
            make_link(action.path, action.entry.target)
        elif action.op == "remove":
            os.unlink(action.path)
        else:
            reload_units()


def diffs(items, current, state):
    """Ansible's before/after, one per entry that changes: the state file's and the unit's texts, the others in short."""
    before, after = views(items, current, state)
    result = []
    for entry in items:
        if before[entry.key] == after[entry.key]:
            continue
        found = current["paths"][entry.path]
        text = entry.key in ("state_file", "unit")
        if text and found is not None and found.get("data") is not None:
            old = found["data"].decode("utf-8", "replace")
        else:
            old = "" if before[entry.key] == "absent" else before[entry.key] + "\n"
        if state == "absent":
            new = ""
        else:
            new = entry.data.decode("utf-8") if text else after[entry.key] + "\n"
        result.append({"before_header": entry.path, "after_header": entry.path, "before": old, "after": new})
    return result
