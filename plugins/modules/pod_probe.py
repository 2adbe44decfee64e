#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_probe
short_description: Probe pod connectivity from inside pod namespaces (ping, TCP, NAT)
version_added: 0.1.0
description:
  - With O(mode=listen), starts in every listed pod a short-lived TCP listener that answers each
    connection with the source address it saw, and returns the pods' addresses.
  - With O(mode=check), from every listed pod pings every target and external address and opens
    a TCP connection to every target's listener. A connection whose seen source differs from the
    pod's own address was NATed, which must never happen between pods.
  - Only reads state and sends probe traffic to the addresses it is given; it changes no
    configuration and always reports C(changed=false).
author:
  - podnet.mesh maintainers (@podnet-mesh)
requirements:
  - C(nsenter) (util-linux) and C(ping) on the node.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - It changes nothing in either mode; listeners are started in check mode too.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
options:
  mode:
    description: V(listen) starts listeners; V(check) probes.
    type: str
    choices: [listen, check]
    default: check
  pods:
    description: Names of the local pods (network namespaces) to probe from or listen in.
    type: list
    elements: str
    required: true
  node:
    description: Name of this node, added to the returned pods and to probe labels (C(red@node1)).
    type: str
  interface:
    description: The pods' interface whose IPv4 address is their address.
    type: str
    default: eth0
  targets:
    description: Pods to reach, each with C(name) and C(address) (other fields are passed through).
    type: list
    elements: dict
    default: []
  external:
    description: Addresses outside the cluster to ping (reachable only through masquerade).
    type: list
    elements: str
    default: []
  port:
    description: TCP port of the listeners.
    type: int
    default: 31007
  duration:
    description: Seconds a listener stays up.
    type: int
    default: 60
  timeout:
    description: Seconds to wait for each ping answer or TCP connection.
    type: int
    default: 2
"""

EXAMPLES = r"""
- name: Listeners in the local pods
  podnet.mesh.pod_probe:
    mode: listen
    pods: [red, blue]
  register: listen

- name: Every pod to every pod and to the external host
  podnet.mesh.pod_probe:
    pods: [red, blue]
    targets: [{name: red@node2, address: 10.244.2.2}]
    external: [203.0.113.10]
"""

RETURN = r"""
pods:
  description: The local pods and their addresses.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "red", "address": "10.244.1.2", "node": "node1", "problem": null}]
results:
  description: One entry per probe (O(mode=check)).
  returned: always
  type: list
  elements: dict
  sample: [{"src": "red", "src_address": "10.244.1.2", "dst": "red@node2", "dst_address": "10.244.2.2",
            "kind": "pod", "ping": true, "tcp": true, "seen": "10.244.1.2", "nat": false, "ok": true}]
failures:
  description: Readable lines for the probes that failed.
  returned: always
  type: list
  elements: str
  sample: ["red (10.244.1.2) -> blue@node3 (10.244.3.3): no ping answer"]
"""

import json
import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ToolError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module

LISTENER = r"""
import errno, os, socket, sys, time
port, duration = int(sys.argv[1]), float(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for attempt in range(20):
    try:
        srv.bind(("0.0.0.0", port))
        break
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or attempt == 19:
            raise
        # An earlier run's listener: ask it to stop, then try again.
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as old:
                old.makefile().readline()
                old.sendall(b"STOP\n")
        except OSError:
            pass
        time.sleep(0.1)
srv.listen(64)
if os.fork():
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os._exit(0)
# The listener itself: detached, with no tie to the module's pipes.
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
deadline = time.time() + duration
while time.time() < deadline:
    srv.settimeout(max(0.1, deadline - time.time()))
    try:
        conn, peer = srv.accept()
    except OSError:
        continue
    stop = False
    try:
        conn.sendall((peer[0] + "\n").encode())
        conn.settimeout(0.5)
        stop = conn.recv(16).startswith(b"STOP") and peer[0] == "127.0.0.1"
    except OSError:
        pass
    finally:
        conn.close()
    if stop:
        break
"""

PROBER = r"""
import json, socket, subprocess, sys, threading
jobs, port, timeout = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = [None] * len(jobs)
def run(i, job):
    res = dict(job)
    res["ping"] = subprocess.run(["ping", "-c", "1", "-W", str(timeout), job["dst_address"]],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    res["tcp"] = res["seen"] = None
    if job["kind"] == "pod":
        try:
            with socket.create_connection((job["dst_address"], port), timeout=timeout) as conn:
                conn.settimeout(timeout)
                res["seen"] = conn.makefile().readline().strip() or None
            res["tcp"] = res["seen"] is not None
        except OSError:
            res["tcp"] = False
    out[i] = res
threads = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.stdout.write(json.dumps(out))
"""


def enter(pod, argv):
    return ["nsenter", "--net=%s" % _netns.netns_path(pod), "--"] + argv


def validate(params):
    """Every pod name, target and external address checked before anything runs."""
    for index, pod in enumerate(params["pods"]):
        v.netns_name(pod, "pods[%d]" % index)
    for index, target in enumerate(params["targets"]):
        if "name" not in target or "address" not in target:
            raise ValidationError("targets[%d]" % index, target, "needs name and address")
        if target["address"] is not None:
            v.ip_address(str(target["address"]).split("/", 1)[0], "targets[%d].address" % index)
    for index, address in enumerate(params["external"]):
        v.ip_address(address, "external[%d]" % index)
    return params


def pod_addresses(session, want):
    """Each pod with its address; a broken pod gets address None and a problem, not a failure."""
    result = []
    for pod in want["pods"]:
        entry = {"name": pod, "address": None, "node": want["node"], "problem": None}
        result.append(entry)
        if not _netns.netns_exists(pod):
            entry["problem"] = "namespace does not exist"
            continue
        link = session.ns(pod).links(with_addresses=[want["interface"]]).get(want["interface"])
        ips = [a.split("/", 1)[0] for a in (link or {}).get("addresses", []) if ":" not in a]
        if not ips:
            entry["problem"] = "no IPv4 address on %s" % want["interface"]
            continue
        entry["address"] = ips[0]
    return result


def label(pod):
    return "%s@%s" % (pod["name"], pod["node"]) if pod.get("node") else pod["name"]


def listen(module, pods):
    for pod in pods:
        if pod["address"] is None:
            continue
        rc, out, err = module.run_command(
            enter(pod["name"], [sys.executable, "-c", LISTENER, str(module.params["port"]),
                                str(module.params["duration"])]))
        if rc != 0 or out.strip() != "ready":
            raise ToolError("cannot listen on TCP port %d in pod %s: %s"
                            % (module.params["port"], pod["name"], err.strip() or out.strip()), rc)


def check(module, pods):
    p = module.params
    results, failures = [], []
    for pod in pods:
        if pod["address"] is None:
            failures.append("%s: %s, it reaches nothing" % (label(pod), pod["problem"]))
            continue
        for target in p["targets"]:
            if target.get("address") is None:
                failures.append("%s (%s) -> %s: %s" % (label(pod), pod["address"], label(target),
                                                       target.get("problem") or "has no address"))
        jobs = [{"src": pod["name"], "src_address": pod["address"], "dst": label(t),
                 "dst_address": str(t["address"]).split("/", 1)[0], "kind": "pod"}
                for t in p["targets"]
                if t.get("address") is not None and str(t["address"]).split("/", 1)[0] != pod["address"]]
        jobs += [{"src": pod["name"], "src_address": pod["address"], "dst": address,
                  "dst_address": address, "kind": "external"} for address in p["external"]]
        # One process per pod, probing all its targets at once.
        rc, out, err = module.run_command(
            enter(pod["name"], [sys.executable, "-c", PROBER, json.dumps(jobs), str(p["port"]),
                                str(p["timeout"])]))
        if rc != 0:
            raise ToolError("probing from pod %s failed: %s" % (pod["name"], err.strip()), rc)
        for res in json.loads(out):
            res["nat"] = res["seen"] is not None and res["seen"] != res["src_address"]
            res["ok"] = bool(res["ping"]) and res["tcp"] is not False and not res["nat"]
            results.append(res)
            if not res["ok"]:
                why = []
                if not res["ping"]:
                    why.append("no ping answer")
                if res["tcp"] is False:
                    why.append("no TCP connection")
                if res["nat"]:
                    why.append("source NATed to %s" % res["seen"])
                failures.append("%s (%s) -> %s (%s): %s" % (
                    label(pod), res["src_address"], res["dst"], res["dst_address"], ", ".join(why)))
    return results, failures


def prober(module):
    """read() of the run loop: probing observes the network and changes nothing on the node."""
    def read(session, want):
        pods = pod_addresses(session, want)
        results, failures = [], []
        if want["mode"] == "listen":
            listen(module, pods)
        else:
            results, failures = check(module, pods)
        return {"pods": pods, "results": results, "failures": failures}
    return read


def render(want, current, planned, predicted):
    return current


def main():
    module = AnsibleModule(
        argument_spec={
            "mode": {"type": "str", "choices": ["listen", "check"], "default": "check"},
            "pods": {"type": "list", "elements": "str", "required": True},
            "node": {"type": "str"},
            "interface": {"type": "str", "default": "eth0"},
            "targets": {"type": "list", "elements": "dict", "default": []},
            "external": {"type": "list", "elements": "str", "default": []},
            "port": {"type": "int", "default": 31007},
            "duration": {"type": "int", "default": 60},
            "timeout": {"type": "int", "default": 2},
        },
        supports_check_mode=True,
    )
    _module.run(module, validate, prober(module), None, render, None)


if __name__ == "__main__":
    main()
