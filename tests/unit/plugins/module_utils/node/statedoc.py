# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A state document as the persistence role writes it, shared by the node tests."""
from __future__ import annotations

import copy

# What the persistence role writes for node1 of the classic lab.
DOC = {
    "version": 1,
    "node": "node1",
    "kernel": {"modules": [], "sysctls": {}},
    "masquerade": {"state": "present", "source": ["10.244.0.0/16"], "exempt": ["10.244.0.0/16"],
                   "backend": "auto", "foreign": "fail", "ip_forward": True},
    "bridge": {"name": "cni0", "addresses": ["10.244.1.1/24"], "mtu": None},
    "routes": {"routes": [{"dst": "10.244.2.0/24", "via": "192.168.1.12"},
                          {"dst": "10.244.3.0/24", "via": "192.168.1.13"}], "purge": True},
    "pods": {"bridge": "cni0", "pod_cidr": "10.244.1.0/24", "mtu": None,
             "pods": [{"name": "red", "address": "10.244.1.2/24", "veth": "veth-red", "interface": "eth0"},
                      {"name": "blue", "address": "10.244.1.3/24", "veth": "veth-blue", "interface": "eth0"}]},
}


def doc(**changes):
    result = copy.deepcopy(DOC)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
