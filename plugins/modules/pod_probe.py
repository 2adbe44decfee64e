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
    connection with the source address it saw, and returns the pods' addresses. The listener
    accepts IPv4 and IPv6 (one IPv6 socket that also takes IPv4, or an IPv4 socket where the
    kernel has no IPv6) and reports an IPv4 peer in its plain form.
  - With O(mode=check), from every listed pod pings every target and external address and opens
    a TCP connection to every target's listener. A connection whose seen source differs from the
    pod's own address was NATed, which must never happen between pods.
  - Works per address family. A pod probes each address of a target whose family (IPv4 or IPv6)
    it has itself, and each external address of a family it has, from its own address of that
    family; that address is also what the seen source is compared with. Addresses of a family the
    pod lacks are not probed, and that is no failure.
  - A source address the kernel will not use (an IPv6 address that duplicate address detection
    holds as tentative, or found duplicated) makes the probe fail with a message that says so.
  - Only reads state and sends probe traffic to the addresses it is given; it changes no
    configuration and always reports C(changed=false).
author:
  - podnet.mesh maintainers (@podnet-mesh)
requirements:
  - C(nsenter) (util-linux) and C(ping) (iputils, or one that takes C(-4), C(-6) and C(-I) alike) on the node.
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
    description:
      - The pods' interface whose global addresses are the pod's addresses (IPv6 link-local
        addresses never count).
    type: str
    default: eth0
  targets:
    description:
      - Pods to reach, each with C(name) and C(addresses) (a list, any mix of IPv4 and IPv6) or
        C(address) (one address, used when C(addresses) is missing or empty); other fields are
        passed through. The RV(pods) that O(mode=listen) returns fit as they are.
      - A target whose address is null (a pod whose address could not be read) is reported as a
        failure of every source pod.
    type: list
    elements: dict
    default: []
  external:
    description:
      - Addresses outside the cluster to ping (reachable only through masquerade), IPv4 and IPv6
        mixed as needed; each is pinged from the pods that have an address of its family.
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

- name: Dual-stack pods, targets as the listeners returned them, both families outside
  podnet.mesh.pod_probe:
    pods: [red, blue]
    node: node1
    targets: "{{ listen.pods }}"
    external: [203.0.113.10, "2001:db8::10"]
"""

RETURN = r"""
pods:
  description:
    - The local pods. C(addresses) are all global addresses of the pod's interface, IPv4 first,
      then IPv6 (never link-local); C(address) is the first of them (null when there is none, and
      C(problem) says why).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "red", "address": "10.244.1.2", "addresses": ["10.244.1.2", "fd00:10:244:1::2"],
            "node": "node1", "problem": null}]
results:
  description:
    - One entry per probe (O(mode=check)) with its C(family) (4 or 6); C(src_address) is the source
      pod's address of that family. C(kind) is C(pod) or C(external) (ping only; C(tcp) and C(seen)
      are null). C(seen) is the source the listener saw, C(nat) true when it differs from
      C(src_address). C(ping_error) and C(tcp_error) say why ping could not run or the connection
      failed (null otherwise).
  returned: always
  type: list
  elements: dict
  sample: [{"src": "red", "src_address": "fd00:10:244:1::2", "dst": "red@node2", "dst_address": "fd00:10:244:2::2",
            "kind": "pod", "family": 6, "ping": true, "ping_error": null, "tcp": true, "tcp_error": null,
            "seen": "fd00:10:244:1::2", "nat": false, "ok": true}]
failures:
  description: Readable lines for the probes that failed, naming the addresses of the probe's family.
  returned: always
  type: list
  elements: str
  sample: ["red (10.244.1.2) -> blue@node3 (10.244.3.3): no ping answer",
           "red (fd00:10:244:1::2) -> blue@node3 (fd00:10:244:3::3): source NATed to fd00:10:244:1::1"]
"""

import ipaddress
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

def server():
    # One IPv6 socket that also accepts IPv4 (IPV6_V6ONLY off) where the kernel has IPv6,
    # else an IPv4 one: pods with IPv4 only, IPv6 only or both are served alike.
    try:
        srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return srv, "::"
    except OSError:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM), "0.0.0.0"

def plain(host):
    # ::ffff:10.0.0.2 (an IPv4 peer on the IPv6 socket) as 10.0.0.2; IPv6 without a scope.
    host = host.split("%", 1)[0]
    return host[7:] if host.lower().startswith("::ffff:") and "." in host else host

srv, anywhere = server()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for attempt in range(20):
    try:
        srv.bind((anywhere, port))
        break
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or attempt == 19:
            raise
        # An earlier run's listener: ask it to stop, then try again.
        for local in ("127.0.0.1", "::1"):
            try:
                with socket.create_connection((local, port), timeout=1) as old:
                    old.makefile().readline()
                    old.sendall(b"STOP\n")
                break
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
    seen = plain(peer[0])
    try:
        conn.sendall((seen + "\n").encode())
        conn.settimeout(0.5)
        stop = conn.recv(16).startswith(b"STOP") and seen in ("127.0.0.1", "::1")
    except OSError:
        pass
    finally:
        conn.close()
    if stop:
        break
"""

PROBER = r"""
import errno, json, os, socket, subprocess, sys, threading
jobs, port, timeout = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = [None] * len(jobs)

def reason(exc):
    if isinstance(exc, socket.timeout) or exc.errno is None:
        return "timed out"
    return "%s (%s)" % (errno.errorcode.get(exc.errno, exc.errno), os.strerror(exc.errno))

def run(i, job):
    res = dict(job)
    # From the pod's own address of the family: a source the kernel cannot use (an IPv6
    # address still tentative, or one that failed duplicate address detection) is an error.
    ping = subprocess.run(["ping", "-%d" % job["family"], "-n", "-c", "1", "-W", str(timeout),
                           "-I", job["src_address"], job["dst_address"]],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    res["ping"] = ping.returncode == 0
    res["ping_error"] = None
    if ping.returncode not in (0, 1):
        res["ping_error"] = (ping.stderr.strip().splitlines() or ["exit code %d" % ping.returncode])[-1]
    res["tcp"] = res["seen"] = res["tcp_error"] = None
    if job["kind"] == "pod":
        try:
            with socket.create_connection((job["dst_address"], port), timeout=timeout,
                                          source_address=(job["src_address"], 0)) as conn:
                conn.settimeout(timeout)
                res["seen"] = conn.makefile().readline().strip() or None
            res["tcp"] = res["seen"] is not None
            if not res["tcp"]:
                res["tcp_error"] = "no answer from the listener"
        except OSError as exc:
            res["tcp"] = False
            res["tcp_error"] = reason(exc)
    out[i] = res

threads = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.stdout.write(json.dumps(out))
"""

# A source address the kernel will not bind: not on the pod, or an IPv6 address that
# duplicate address detection still holds as tentative (or found duplicated).
UNUSABLE = ("EADDRNOTAVAIL", "Cannot assign requested address")


def enter(pod, argv):
    return ["nsenter", "--net=%s" % _netns.netns_path(pod), "--"] + argv


def family(address):
    return ipaddress.ip_address(str(address).split("/", 1)[0]).version


def ordered(cidrs):
    """Addresses of CIDRs (or plain addresses) as text, IPv4 first, then IPv6; never IPv6 link-local."""
    found = []
    for cidr in cidrs:
        ip = ipaddress.ip_address(str(cidr).split("/", 1)[0])
        if ip.version == 6 and ip.is_link_local:
            continue
        if ip not in found:
            found.append(ip)
    return [str(ip) for ip in sorted(found, key=lambda ip: ip.version)]


def target_addresses(target):
    """A target's addresses: its addresses list, else its one address; [] when it has none."""
    if target.get("addresses"):
        return ordered(target["addresses"])
    if target.get("address") is not None:
        return ordered([target["address"]])
    return []


def validate(params):
    """Every pod name, target and external address checked before anything runs."""
    for index, pod in enumerate(params["pods"]):
        v.netns_name(pod, "pods[%d]" % index)
    for index, target in enumerate(params["targets"]):
        if "name" not in target or ("address" not in target and "addresses" not in target):
            raise ValidationError("targets[%d]" % index, target, "needs name and address (or addresses)")
        if target.get("address") is not None:
            v.ip_address(str(target["address"]).split("/", 1)[0], "targets[%d].address" % index)
        addresses = target.get("addresses")
        if addresses is not None and not isinstance(addresses, list):
            raise ValidationError("targets[%d].addresses" % index, addresses, "is not a list")
        for position, address in enumerate(addresses or []):
            v.ip_address(str(address).split("/", 1)[0], "targets[%d].addresses[%d]" % (index, position))
    for index, address in enumerate(params["external"]):
        v.ip_address(address, "external[%d]" % index)
    return params


def pod_addresses(session, want):
    """Each pod with its addresses; a broken pod gets none and a problem, not a failure."""
    result = []
    for pod in want["pods"]:
        entry = {"name": pod, "address": None, "addresses": [], "node": want["node"], "problem": None}
        result.append(entry)
        if not _netns.netns_exists(pod):
            entry["problem"] = "namespace does not exist"
            continue
        link = session.ns(pod).links(with_addresses=[want["interface"]]).get(want["interface"])
        entry["addresses"] = ordered((link or {}).get("addresses", []))
        if not entry["addresses"]:
            entry["problem"] = "no IPv4 or IPv6 address on %s" % want["interface"]
            continue
        entry["address"] = entry["addresses"][0]
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


def jobs_of(pod, targets, external):
    """The probes from one pod, one per target address and external address of a family the pod has.

    Returns (jobs, failures): failures for targets that have no address at all.
    """
    own = dict((family(a), a) for a in reversed(pod["addresses"]))
    jobs, failures = [], []
    for target in targets:
        addresses = target_addresses(target)
        if not addresses:
            failures.append("%s (%s) -> %s: %s" % (label(pod), ", ".join(pod["addresses"]), label(target),
                                                   target.get("problem") or "has no address"))
            continue
        jobs += [{"src": pod["name"], "src_address": own[family(a)], "dst": label(target), "dst_address": a,
                  "kind": "pod", "family": family(a)}
                 for a in addresses if family(a) in own and a not in pod["addresses"]]
    jobs += [{"src": pod["name"], "src_address": own[family(a)], "dst": a, "dst_address": a,
              "kind": "external", "family": family(a)}
             for a in ordered(external) if family(a) in own]
    return jobs, failures


def judge(res):
    """nat and ok of one probe result; the failure line ("" when it passed)."""
    res["nat"] = res["seen"] is not None and not _same(res["seen"], res["src_address"])
    res["ok"] = bool(res["ping"]) and res["tcp"] is not False and not res["nat"]
    if res["ok"]:
        return ""
    errors = [res.get("ping_error") or "", res.get("tcp_error") or ""]
    if any(text in error for error in errors for text in UNUSABLE):
        why = ["source address %s is not usable (EADDRNOTAVAIL: not on the pod, or IPv6 duplicate address "
               "detection holds it as tentative or found it duplicated)" % res["src_address"]]
    else:
        why = []
        if not res["ping"]:
            why.append("no ping answer" + (" (%s)" % res["ping_error"] if res.get("ping_error") else ""))
        if res["tcp"] is False:
            why.append("no TCP connection")
        if res["nat"]:
            why.append("source NATed to %s" % res["seen"])
    return ", ".join(why)


def _same(one, other):
    try:
        return ipaddress.ip_address(one) == ipaddress.ip_address(other)
    except ValueError:
        return one == other


def check(module, pods):
    p = module.params
    results, failures = [], []
    for pod in pods:
        if pod["address"] is None:
            failures.append("%s: %s, it reaches nothing" % (label(pod), pod["problem"]))
            continue
        jobs, missing = jobs_of(pod, p["targets"], p["external"])
        failures += missing
        if not jobs:
            continue
        # One process per pod, probing all its targets at once.
        rc, out, err = module.run_command(
            enter(pod["name"], [sys.executable, "-c", PROBER, json.dumps(jobs), str(p["port"]),
                                str(p["timeout"])]))
        if rc != 0:
            raise ToolError("probing from pod %s failed: %s" % (pod["name"], err.strip()), rc)
        for res in json.loads(out):
            why = judge(res)
            results.append(res)
            if why:
                failures.append("%s (%s) -> %s (%s): %s" % (
                    label(pod), res["src_address"], res["dst"], res["dst_address"], why))
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
