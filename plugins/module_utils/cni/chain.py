# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The versions a whole plugin chain speaks, asked of each plugin (CNI VERSION).

A runtime sends one cniVersion to every plugin of a network configuration
list. libcni >= 1.2 picks it from ``cniVersions`` (the highest it supports)
without asking the plugins, so a version that one chained plugin does not
speak fails that plugin's ADD and DEL. ``chain_versions`` runs each chained
plugin's VERSION command, as the runtime would run the plugin, and returns the
versions they all speak with podnet; ``check_chain`` refuses a configuration
list that names any other.
"""

from __future__ import annotations

import json
import os
import subprocess

from ansible_collections.podnet.mesh.plugins.module_utils.cni.protocol import (
    ERR_INCOMPATIBLE_VERSION, PLUGIN_TYPE, SUPPORTED_VERSIONS, CniError, show, version_key)

# How long a plugin may take to say its versions.
VERSION_TIMEOUT = 10
# The cniVersion a VERSION request carries (the SPEC: any the runtime speaks).
ASK_VERSION = "1.0.0"


def find_plugin(kind, paths):
    """The executable named kind in the first directory of paths that has one; None when none does."""
    if not kind or "/" in kind or kind in (".", ".."):
        return None
    for directory in paths:
        candidate = os.path.join(directory, kind)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def plugin_versions(path, paths):
    """The supportedVersions a plugin binary answers to VERSION; CniError naming it when it answers none."""
    env = {"CNI_COMMAND": "VERSION", "CNI_PATH": os.pathsep.join(paths), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    try:
        proc = subprocess.run([path], input=json.dumps({"cniVersion": ASK_VERSION}).encode(), env=env,
                              capture_output=True, timeout=VERSION_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CniError(ERR_INCOMPATIBLE_VERSION, "plugin %s did not answer VERSION: %s" % (path, exc))
    try:
        answer = json.loads(proc.stdout.decode("utf-8", "replace") or "null")
    except ValueError:
        answer = None
    versions = answer.get("supportedVersions") if isinstance(answer, dict) else None
    if proc.returncode != 0 or not isinstance(versions, list) or not all(isinstance(x, str) for x in versions):
        raise CniError(ERR_INCOMPATIBLE_VERSION, "plugin %s answered VERSION with exit code %d and %s, not a "
                                                 "list of supportedVersions" % (path, proc.returncode,
                                                                                show(proc.stdout.decode("utf-8", "replace").strip())))
    return versions


def chain_versions(plugins, paths):
    """(versions every plugin of the list speaks, {index: (type, path, versions)} of the chained ones).

    plugins: the configuration list's plugin entries; podnet's own entries
    speak SUPPORTED_VERSIONS. A chained plugin that is not found in paths is
    an error naming it and the directories looked in.
    """
    common = set(SUPPORTED_VERSIONS)
    asked = {}
    for index, entry in enumerate(plugins):
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind == PLUGIN_TYPE:
            continue
        path = find_plugin(kind, paths)
        if path is None:
            raise CniError(ERR_INCOMPATIBLE_VERSION, "plugins[%d]: no executable plugin %s in %s, so the versions it "
                                                     "speaks are unknown" % (index, show(kind), ":".join(paths)))
        versions = plugin_versions(path, paths)
        asked[index] = (kind, path, versions)
        common &= set(versions)
    return sorted(common, key=version_key), asked


def check_chain(data, paths):
    """Refuse (error 1) a cniVersion or cniVersions entry that some plugin of the list does not speak.

    Returns the versions the chain speaks.
    """
    common, asked = chain_versions(data.get("plugins") or [], paths)
    wanted = [("cniVersion", data.get("cniVersion"))] + [
        ("cniVersions[%d]" % i, item) for i, item in enumerate(data.get("cniVersions") or [])]
    for field, version in wanted:
        if version is None or version in common:
            continue
        silent = [(index, kind, versions) for index, (kind, _path, versions) in sorted(asked.items())
                  if version not in versions]
        who = "; ".join("plugins[%d] (%s) speaks %s" % (index, kind, ", ".join(versions) or "none")
                        for index, kind, versions in silent) or "podnet speaks %s" % ", ".join(SUPPORTED_VERSIONS)
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       "%s %s is not spoken by every plugin of the chain (%s); a runtime that sends it fails ADD "
                       "and DEL; the chain speaks %s" % (field, show(version), who, ", ".join(common) or "no common version"))
    return common
