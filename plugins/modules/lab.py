#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: lab
short_description: Simulated pod-network nodes on one machine, made of namespaces
version_added: 0.1.0
description:
  - Builds, converges or removes a lab of simulated nodes on the machine the module runs on
    (normally C(localhost)). Each node is its own network, mount and UTS namespace with a
    private C(/run/netns) (pods named alike on two nodes never collide), its own sysfs and
    its own hostname. The connection plugin P(podnet.mesh.nsenter#connection) runs Ansible tasks on a node.
  - The nodes hang off a switch (a bridge called C(switch) in a namespace of its own, one port
    per node, named after it). A router namespace holds the O(gateway) address on the switch,
    forwards IPv4, and links to an external host (O(external)) whose only route leads back to
    the switch network through the router. The external host has no route to pod CIDRs, so only
    masqueraded pod traffic gets answers from it.
  - Every node gets eth0 with its address on the switch, C(lo) up and a default route via the
    gateway (routing protocol C(static)).
  - With O(ipv6), the lab's network is dual-stack. The router has O(gateway6) on the switch
    and forwards IPv6. The external host has O(external6), with a route back to the switch's
    IPv6 network only, none to any pod prefix. Every node has its C(address6) beside its IPv4
    address, and an IPv6 default route via O(gateway6). Every IPv6 address is added without
    duplicate address detection (C(IFA_F_NODAD)), and C(accept_dad=0), C(accept_ra=0) are set in
    those namespaces (all, default and their lab interfaces). So the addresses are usable at
    once and never tentative.
  - "The lab lives below O(root)/O(name): a private bind mount of itself, holding one
    directory per node (files C(net), C(mnt), C(uts)) and C(switch/net), C(router/net),
    C(external/net). Nothing is added to the network namespace the module runs in."
  - The module writes a marker file, C(.podnet-lab), into the lab directory when it makes it,
    and only ever builds on or removes a directory holding it. An existing directory without
    the marker fails the task, naming its path, and is left as it is. There are two exceptions.
    An empty directory becomes the lab. A lab made by a release that wrote no marker is
    recognised (and marked) when it is provably one, a private mount of itself whose
    C(switch), C(router) and C(external) namespace files are mounted and that holds nothing
    but member directories of namespace files.
  - The node list is complete, so nodes of the lab that are not listed are removed (with their
    layers). A node that is half there (for example after an interrupted run) is made again and
    boots.
  - "Each node behaves like a machine of its own for what the roles write. C(/etc), C(/home),
    C(/opt), C(/usr/local) and C(/var/lib) are copy-on-write layers (overlayfs) over the machine's,
    below O(root)/O(name)/NODE/layers: what a task writes there stays on the node, and the
    machine's files are never changed. On a new node, C(/etc/podnet), C(/etc/cni/net.d),
    C(/etc/systemd/system), C(/opt/cni/bin), C(/var/lib/cni), C(/var/lib/podnet) and
    C(/usr/local/libexec/podnet) are empty (the machine's are hidden). C(/run) is a tmpfs of the
    node's. Other directories, C(/usr) with the installed packages among them, are the machine's."
  - "A node made again, or rebooted (O(reboot)), boots: its network namespace is new, with only
    its uplink to the switch, its C(/run) is empty (pods' named namespaces are gone), its layers
    stay, then sshd starts (O(ssh)) and the units enabled in its own C(/etc/systemd/system)
    run as systemd would run them (services in the C(.wants/) and C(.requires/) directories of
    C(multi-user.target) and the targets it pulls in, ordered by C(After=) and C(Before=);
    C(Type=oneshot) commands are waited for). A unit that fails fails the task with its name and
    output."
author:
  - podnet.mesh maintainers (@podnet-mesh)
requirements:
  - Linux, root on the machine running the module.
  - util-linux C(unshare) (to make the namespace files) and C(umount).
  - pyroute2 >= 0.7 for O(state=present) (the module re-runs itself under the system Python
    if that one has it). Removing a lab needs no pyroute2.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: full
    platforms: linux
options:
  name:
    description:
      - Name of the lab, its directory below O(root). The connection plugin
        P(podnet.mesh.nsenter#connection) finds nodes with the same name (variable C(podnet_lab_name)).
    type: str
    default: podnet
  root:
    description:
      - Directory that holds labs (one subdirectory per lab). Matches the connection
        plugin's C(podnet_lab_root).
    type: path
    default: /run/podnet-lab
  nodes:
    description:
      - The nodes, in full. Ignored when O(state=absent).
      - The C(podnet.mesh.lab) inventory plugin generates this list as C(podnet_lab_nodes).
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Node name, its hostname and the name of its switch port; 1-15 letters, digits
            or C(-). V(switch), V(router), V(external) and V(lo) are reserved.
        type: str
        required: true
      address:
        description: The node's address on the switch, in CIDR form, inside the network of O(gateway) or of one of O(subnets).
        type: str
        required: true
      address6:
        description:
          - The node's IPv6 address on the switch, in CIDR form, inside the network of O(gateway6).
          - Required with O(ipv6), refused without it.
          - The lab inventory gives node I(i) the address that reads like its IPv4 twin
            (V(2001:db8:1::11/64) beside V(192.168.1.11/24)).
        type: str
  gateway:
    description:
      - The router's address on the switch, in CIDR form; its network is the switch network
        every node address must be in. The nodes' default route points at it.
    type: str
    default: 192.168.1.1/24
  subnets:
    description:
      - The routed lab. The router's addresses (CIDR form) on the lab's further subnets, 2, 3, ...;
        O(gateway) is subnet 1. Every subnet is a bridge of its own in the switch namespace (C(switch),
        C(switch.2), C(switch.3), ...) with a port of the router (C(router.2) to its C(eth2), ...), so nodes
        of different subnets are not layer-2 adjacent and the router forwards between them.
      - A node is on the subnet its C(address) is in, and its default route points at the router's address
        there. A node whose address moves to another subnet is moved in place. Its switch port joins that
        subnet's bridge, its address and default route change, and nothing else on the node is touched.
      - The external host has a route back to every subnet; with O(ssh), the controller (on subnet 1) has
        routes to the others through the router.
    type: list
    elements: str
    default: []
  subnets6:
    description:
      - With O(ipv6) and O(subnets), the router's IPv6 addresses (CIDR form) on subnets 2, 3, ...; one per
        entry of O(subnets). A node's C(address6) is on the same subnet as its C(address).
    type: list
    elements: str
    default: []
  external:
    description:
      - Address of the external host in CIDR form. The router takes the first host address
        of that network (V(203.0.113.1)), or the last one if the external host has the first.
    type: str
    default: 203.0.113.10/24
  ipv6:
    description:
      - IPv6 beside IPv4 on the lab's network (switch, router, external host, nodes). IPv4 stays
        in any case; the nodes are reached over it.
      - V(false) on a lab that has IPv6 removes the lab's IPv6 addresses and routes.
    type: bool
    default: false
  gateway6:
    description:
      - With O(ipv6), the router's IPv6 address on the switch, in CIDR form; its network is the
        switch's IPv6 network every node's C(address6) must be in. The nodes' IPv6 default route
        points at it.
    type: str
    default: 2001:db8:1::1/64
  external6:
    description:
      - With O(ipv6), the external host's IPv6 address in CIDR form. The router takes the first
        address of that network (V(2001:db8:113::1)), or the last one if the external host has the
        first.
    type: str
    default: 2001:db8:113::10/64
  ssh:
    description:
      - Every node runs OpenSSH's C(sshd), listening on the node's address only, for the user
        O(ssh_user) (key login, passwordless C(sudo)); the user exists in the nodes' own C(/etc)
        only, never on the machine. Host keys are made once per node and kept.
      - A namespace C(controller) gets the last host address of the switch network
        (V(192.168.1.254/24)). Run C(ansible-playbook) inside it to reach the nodes over SSH
        (C(nsenter --net=ROOT/NAME/controller/net ansible-playbook ...)).
      - The client key, C(known_hosts) and the SSH control sockets are below O(root)/O(name)/.ssh.
      - V(false) stops the nodes' sshd and removes the controller.
    type: bool
    default: false
  ssh_user:
    description: The nodes' SSH user (with O(ssh)).
    type: str
    default: podnet
  reboot:
    description:
      - Nodes to reboot, after the lab is converged. A node that is rebooted gets a new network
        namespace with only its uplink (address, MAC and default route as when it was made),
        its processes are stopped, its C(/run) is cleared (pods and their namespaces are gone),
        and it boots (see above). Its layers stay.
      - A reboot always reports a change; in check mode nothing is rebooted.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(absent) removes the whole lab, also a half-built one; processes still running in
        its namespaces are stopped (SIGTERM, then SIGKILL after a second). A directory that is
        no lab (see the marker above) is refused, and nothing is unmounted or removed.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Packages installed on a node go to the machine's C(/usr) (not layered), so the lab inventory
    keeps C(podnet_install_prerequisites=false).
  - Namespaces of the lab are created in parallel; building 50 nodes takes a second or two.
  - O(ssh) needs C(sshd) and C(sudo) on the machine (Debian C(openssh-server), C(sudo)); sshd only
    runs inside the nodes.
seealso:
  - plugin: podnet.mesh.nsenter
    plugin_type: connection
  - plugin: podnet.mesh.lab
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Three nodes on a switch, a router and an external host
  podnet.mesh.lab:
    nodes:
      - {name: node1, address: 192.168.1.11/24}
      - {name: node2, address: 192.168.1.12/24}
      - {name: node3, address: 192.168.1.13/24}

- name: The same lab with IPv6 beside IPv4 (router 2001:db8:1::1, external host 2001:db8:113::10)
  podnet.mesh.lab:
    ipv6: true
    nodes:
      - {name: node1, address: 192.168.1.11/24, address6: "2001:db8:1::11/64"}
      - {name: node2, address: 192.168.1.12/24, address6: "2001:db8:1::12/64"}
      - {name: node3, address: 192.168.1.13/24, address6: "2001:db8:1::13/64"}

- name: The same lab, every node reachable over SSH from the controller namespace
  podnet.mesh.lab:
    ssh: true
    nodes:
      - {name: node1, address: 192.168.1.11/24}
      - {name: node2, address: 192.168.1.12/24}
      - {name: node3, address: 192.168.1.13/24}

- name: The routed lab, two subnets joined by the router (node3 on 192.168.2.0/24)
  podnet.mesh.lab:
    subnets: [192.168.2.1/24]
    nodes:
      - {name: node1, address: 192.168.1.11/24}
      - {name: node2, address: 192.168.1.12/24}
      - {name: node3, address: 192.168.2.13/24}

- name: Reboot node2 (new network namespace, then its enabled boot units)
  podnet.mesh.lab:
    reboot: [node2]
    nodes:
      - {name: node1, address: 192.168.1.11/24}
      - {name: node2, address: 192.168.1.12/24}
      - {name: node3, address: 192.168.1.13/24}

- name: Remove the lab
  podnet.mesh.lab:
    state: absent

- name: Run a command on a node
  ansible.builtin.command: hostname
  delegate_to: node1
  vars:
    ansible_connection: podnet.mesh.nsenter
"""

RETURN = r"""
lab:
  description: The lab after the run (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    name:
      description: Lab name.
      type: str
      sample: podnet
    path:
      description: The lab's directory.
      type: str
      sample: /run/podnet-lab/podnet
    state:
      description: V(present) or V(absent).
      type: str
      sample: present
    gateway:
      description: The router's address on the switch.
      type: str
      sample: 192.168.1.1/24
    external:
      description: The external host's address.
      type: str
      sample: 203.0.113.10/24
    subnets:
      description: The router's addresses on subnets 2, 3, ... (O(subnets)); empty for a lab of one subnet.
      type: list
      elements: str
      sample: [192.168.2.1/24]
    subnets6:
      description: With O(ipv6), the router's IPv6 addresses on subnets 2, 3, ...
      type: list
      elements: str
      returned: with O(ipv6)
      sample: ["2001:db8:2::1/64"]
    gateway6:
      description: With O(ipv6), the router's IPv6 address on the switch.
      type: str
      returned: with O(ipv6)
      sample: 2001:db8:1::1/64
    external6:
      description: With O(ipv6), the external host's IPv6 address.
      type: str
      returned: with O(ipv6)
      sample: 2001:db8:113::10/64
    nodes:
      description: The nodes with their address (with O(ipv6) also C(address6)) and namespace files.
      type: list
      elements: dict
      sample:
        - name: node1
          address: 192.168.1.11/24
          net: /run/podnet-lab/podnet/node1/net
          mnt: /run/podnet-lab/podnet/node1/mnt
          uts: /run/podnet-lab/podnet/node1/uts
    namespaces:
      description: Network namespace files of the switch, the router and the external host.
      type: dict
      sample:
        switch: /run/podnet-lab/podnet/switch/net
        router: /run/podnet-lab/podnet/router/net
        external: /run/podnet-lab/podnet/external/net
    rebooted:
      description: Nodes rebooted by this run (in check mode, to be rebooted).
      type: list
      elements: str
      sample: [node2]
    ssh:
      description: With O(ssh), how to reach the nodes over SSH; else V(null).
      type: dict
      sample:
        user: podnet
        controller: 192.168.1.254/24
        controller_net: /run/podnet-lab/podnet/controller/net
        key: /run/podnet-lab/podnet/.ssh/id_ed25519
        known_hosts: /run/podnet-lab/podnet/.ssh/known_hosts
        control_dir: /run/podnet-lab/podnet/.ssh/cp
actions:
  description: Changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample: ["mount /run/podnet-lab/podnet privately on itself", "create node /run/podnet-lab/podnet/node1"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podnet.mesh.plugins.module_utils.lab import plan as lab_plan
from ansible_collections.podnet.mesh.plugins.module_utils.lab import session as lab_session
from ansible_collections.podnet.mesh.plugins.module_utils.lab import topology
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def render(want, cur, plan, predicted):
    return topology.render(want, cur, predicted)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "default": topology.DEFAULT_NAME},
            "root": {"type": "path", "default": topology.DEFAULT_ROOT},
            "nodes": {
                "type": "list", "elements": "dict",
                "options": {
                    "name": {"type": "str", "required": True},
                    "address": {"type": "str", "required": True},
                    "address6": {"type": "str"},
                },
            },
            "gateway": {"type": "str", "default": topology.DEFAULT_GATEWAY},
            "external": {"type": "str", "default": topology.DEFAULT_EXTERNAL},
            "subnets": {"type": "list", "elements": "str", "default": []},
            "subnets6": {"type": "list", "elements": "str", "default": []},
            "ipv6": {"type": "bool", "default": False},
            "gateway6": {"type": "str", "default": topology.DEFAULT_GATEWAY6},
            "external6": {"type": "str", "default": topology.DEFAULT_EXTERNAL6},
            "ssh": {"type": "bool", "default": False},
            "ssh_user": {"type": "str", "default": topology.DEFAULT_SSH_USER},
            "reboot": {"type": "list", "elements": "str", "default": []},
            "state": _module.STATE_OPTION,
        },
        supports_check_mode=True,
    )
    if module.params["state"] == "present":
        _module.require_pyroute2(module)
    _module.run(module, topology.validate, lab_session.read, lab_plan.plan, render, "lab",
                session_factory=lab_session.LabSession)


if __name__ == "__main__":
    main()
