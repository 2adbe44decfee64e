# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commands and pings inside a named network namespace the test made (kernel suite)."""
from __future__ import annotations

import subprocess


def ns_path(name):
    """/run/netns/<name>, or the path as given."""
    return name if name.startswith("/") else "/run/netns/" + name


def in_ns(name, *argv, timeout=60):
    """argv run inside namespace name (network only); the completed process."""
    return subprocess.run(["nsenter", "--net=" + ns_path(name)] + list(argv), capture_output=True, text=True,
                          timeout=timeout, check=False)


def pings(name, address):
    """Whether one ping from namespace name to address is answered within 2 s."""
    return in_ns(name, "ping", "-c1", "-W2", address).returncode == 0
