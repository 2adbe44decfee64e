# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: nsenter
short_description: Run tasks on a node of the podnet.mesh lab by entering its namespaces
version_added: 0.1.0
description:
  - Reaches a simulated node made by M(podnet.mesh.lab) (or the C(podnet.mesh.lab) role) on the
    controller. Every command runs under util-linux C(nsenter) inside the node's network,
    mount and UTS namespaces. There is no SSH and no address; the node is named by
    O(remote_addr).
  - Files are streamed through C(cat) inside the node. The node's file system is the
    controller's, with the node's own C(/run) (C(/run/netns) among it) and C(/sys), and
    copy-on-write layers of its own over C(/etc), C(/home), C(/opt), C(/usr/local) and
    C(/var/lib), so what a task writes there stays on that node.
  - With pipelining on (C(ansible_pipelining=true), as the lab inventory sets it), a module
    costs one C(nsenter) process and no file transfer.
author:
  - podnet.mesh maintainers (@podnet-mesh)
requirements:
  - Linux; root on the controller (entering namespaces needs CAP_SYS_ADMIN).
  - util-linux C(nsenter).
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description:
      - Name of the lab node (the lab inventory sets C(ansible_host) to it).
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  lab_name:
    description:
      - Name of the lab the node belongs to (option O(podnet.mesh.lab#module:name) of the module).
    type: str
    default: podnet
    vars:
      - name: podnet_lab_name
    env:
      - name: PODNET_LAB_NAME
  lab_root:
    description:
      - Directory holding the labs (option O(podnet.mesh.lab#module:root) of the module).
    type: str
    default: /run/podnet-lab
    vars:
      - name: podnet_lab_root
    env:
      - name: PODNET_LAB_ROOT
  executable:
    description:
      - Shell that runs each command inside the node.
    type: str
    default: /bin/sh
    vars:
      - name: ansible_executable
    env:
      - name: ANSIBLE_EXECUTABLE
    ini:
      - section: defaults
        key: executable
  inherit_environment:
    description:
      - Pass the controller's whole environment to the commands on the node.
      - By default a node gets a clean login-like environment, as an SSH login would
        (E(PATH), E(HOME), E(USER), E(LOGNAME), E(SHELL), plus E(LANG), E(LC_ALL),
        E(LC_CTYPE), E(LC_MESSAGES), E(TZ) and E(TERM) when the controller sets them).
        Variables such as a virtual environment's E(PATH) or E(PYTHONUNBUFFERED) (which makes
        a pipelined module read its code from standard input one byte at a time) stay on the
        controller. The task keyword C(environment) works either way.
    type: bool
    default: false
    vars:
      - name: podnet_nsenter_inherit_environment
  nsenter_exe:
    description:
      - The C(nsenter) program, by path or looked up in E(PATH).
    type: str
    default: nsenter
    vars:
      - name: ansible_nsenter_exe
    env:
      - name: PODNET_NSENTER_EXE
notes:
  - Privilege escalation is not needed (tasks run as root, the user running Ansible).
  - Files with a relative remote path are placed relative to C(/).
"""

EXAMPLES = r"""
# inventory (the podnet.mesh.lab inventory plugin generates these variables)
# podnet_nodes:
#   hosts:
#     node1:
#       ansible_connection: podnet.mesh.nsenter
#       ansible_host: node1
#       ansible_python_interpreter: /usr/bin/python3
#       ansible_pipelining: true

- name: Hostname of every lab node
  hosts: podnet_nodes
  gather_facts: false
  tasks:
    - name: Ask the node
      ansible.builtin.command: hostname
      changed_when: false

- name: One node from a play on localhost
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Add the node
      ansible.builtin.add_host:
        name: lab-node1
        ansible_host: node1
        ansible_connection: podnet.mesh.nsenter
        podnet_lab_name: podnet

    - name: Links of node1
      ansible.builtin.command: ip -brief link
      delegate_to: lab-node1
      changed_when: false
"""

import os
import pwd
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.process import get_bin_path
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# Namespace files of a node and the nsenter option that enters each.
NAMESPACES = (("net", "--net"), ("mnt", "--mount"), ("uts", "--uts"))


def node_files(lab_root, lab_name, node):
    """Directory of a lab node and its namespace files, as (directory, [(option, path)])."""
    directory = os.path.join(lab_root, lab_name, node)
    return directory, [(option, os.path.join(directory, kind)) for kind, option in NAMESPACES]


def nsenter_argv(nsenter, files, executable, cmd):
    """The argv that runs the shell command cmd inside the node."""
    return [nsenter] + ["%s=%s" % (option, path) for option, path in files] + [
        "--", executable, "-c", cmd]


def remote_path(path):
    """Remote paths are absolute: a relative one is taken from / (where nsenter starts)."""
    if not path.startswith("/"):
        path = "/" + path
    return os.path.normpath(path)


# A clean environment, like the one an SSH login to a node gets.
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEPT_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TERM")


def node_environment(controller, user):
    """The environment of commands on a node: a few of the controller's variables
    (controller: a mapping) and a login's for user (a pwd entry)."""
    env = dict((k, controller[k]) for k in KEPT_VARIABLES if k in controller)
    env.update(PATH=NODE_PATH, HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name,
               SHELL=user.pw_shell or "/bin/sh")
    return env


def missing_files(files):
    """Namespace files that are not mounted (the node is absent or half made)."""
    missing = []
    for _option, path in files:
        try:
            st = os.stat(path)
            parent = os.stat(os.path.dirname(path))
        except OSError:
            missing.append(path)
            continue
        # A namespace file is a bind mount of nsfs: another device than its directory.
        if st.st_dev == parent.st_dev:
            missing.append(path)
    return missing


class Connection(ConnectionBase):
    """Commands and files on a podnet.mesh lab node, through nsenter."""

    transport = "podnet.mesh.nsenter"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._node = None
        self._files = None
        self._nsenter = None
        self._env = None

    def _connect(self):
        if self._connected:
            return self
        node = self.get_option("remote_addr")
        root = self.get_option("lab_root")
        name = self.get_option("lab_name")
        if not node or "/" in node or node in (".", ".."):
            raise AnsibleConnectionFailure("%r is not a lab node name" % (node,))
        directory, files = node_files(root, name, node)
        missing = missing_files(files)
        if missing:
            if not os.path.isdir(directory):
                raise AnsibleConnectionFailure(
                    "lab node %s does not exist under %s: run the lab role first "
                    "(podnet.mesh.lab)" % (node, os.path.join(root, name)))
            raise AnsibleConnectionFailure(
                "lab node %s under %s is incomplete (%s not mounted): run the lab role again "
                "to rebuild it" % (node, os.path.join(root, name),
                                   ", ".join(os.path.basename(p) for p in missing)))
        nsenter = self.get_option("nsenter_exe")
        if not os.path.isabs(nsenter):
            try:
                nsenter = get_bin_path(nsenter)
            except ValueError as exc:
                raise AnsibleConnectionFailure(
                    "podnet.mesh.nsenter needs util-linux nsenter: %s" % to_native(exc))
        self._node, self._files, self._nsenter = node, files, nsenter
        if not self.get_option("inherit_environment"):
            self._env = node_environment(os.environ, pwd.getpwuid(os.geteuid()))
        display.vvv("ENTER lab node %s (%s)" % (node, directory), host=node)
        self._connected = True
        return self

    def _argv(self, cmd):
        return nsenter_argv(self._nsenter, self._files, self.get_option("executable"), cmd)

    def _popen(self, cmd, stdin, stdout=subprocess.PIPE):
        argv = self._argv(cmd)
        display.vvv("EXEC %s" % " ".join(shlex.quote(a) for a in argv), host=self._node)
        try:
            return subprocess.Popen([to_bytes(a, errors="surrogate_or_strict") for a in argv],
                                    stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                                    env=self._env)
        except OSError as exc:
            raise AnsibleConnectionFailure(
                "cannot run %s for lab node %s: %s" % (self._nsenter, self._node, to_native(exc)))

    def exec_command(self, cmd, in_data=None, sudoable=False):
        """Run cmd in the node; in_data (pipelining) goes to its standard input."""
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        proc = self._popen(cmd, subprocess.PIPE if in_data is not None else subprocess.DEVNULL)
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        """Copy a controller file into the node."""
        super().put_file(in_path, out_path)
        out_path = remote_path(out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._node)
        try:
            source = open(to_bytes(in_path, errors="surrogate_or_strict"), "rb")
        except OSError:
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        with source:
            proc = self._popen("cat > %s" % shlex.quote(out_path), source)
            _stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise AnsibleError("failed to transfer %s to %s on lab node %s: %s" % (
                in_path, out_path, self._node, to_native(stderr).strip()))

    def fetch_file(self, in_path, out_path):
        """Copy a node file to the controller."""
        super().fetch_file(in_path, out_path)
        in_path = remote_path(in_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._node)
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as target:
            proc = self._popen("cat < %s" % shlex.quote(in_path), subprocess.DEVNULL, target)
            _stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise AnsibleError("failed to transfer %s on lab node %s to %s: %s" % (
                in_path, self._node, out_path, to_native(stderr).strip()))

    def close(self):
        """Nothing stays open between commands."""
        self._connected = False
