# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the CNI plugin podnet: one executable file, a Python zip application.

The archive holds the collection's module_utils that the plugin runs on
(``ansible_collections/podnet/mesh/plugins/module_utils/{_validate,_plan,_setns,
_netlink,_ipam,_cni}.py``, with an empty ``__init__.py`` at every package
level) and a ``__main__.py`` that calls ``_cni.main()``; a shebang line
naming the node's Python comes first. Python runs such a file directly, and
the node needs nothing but Python and pyroute2.

The build is reproducible: same sources and interpreter, same bytes (fixed
timestamps and order), so Ansible's copy reports no change when nothing
changed.

usage: python3 build_podnet.py OUTPUT [--interpreter /usr/bin/python3] [--source DIR]

DIR is the module_utils directory; by default the one of the collection this
file belongs to (roles/cni/files/ -> plugins/module_utils/).
"""

from __future__ import annotations

import argparse
import importlib.util
import marshal
import os
import stat
import struct
import sys
import tempfile
import zipfile

MODULES = ("_validate.py", "_plan.py", "_setns.py", "_netlink.py", "_ipam.py", "_cni.py")
PACKAGE = ("ansible_collections", "podnet", "mesh", "plugins", "module_utils")
DEFAULT_INTERPRETER = "/usr/bin/python3"
MAIN = (
    "# Entry point of the podnet CNI plugin (built by podnet.mesh roles/cni/files/build_podnet.py).\n"
    "import sys\n"
    "from ansible_collections.podnet.mesh.plugins.module_utils import _cni\n"
    "sys.exit(_cni.main())\n"
)
# 1980-01-01, the earliest time a zip entry can carry.
EPOCH = (1980, 1, 1, 0, 0, 0)


def default_source():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "plugins", "module_utils"))


def _entry(name):
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def _bytecode(source, name):
    """The module compiled by this Python as an unchecked hash-based .pyc (PEP 552).

    zipimport cannot cache bytecode, so without it every plugin run would
    compile the modules again. A node whose Python has another bytecode
    version ignores the .pyc and compiles the .py next to it.
    """
    code = compile(source, name, "exec", dont_inherit=True, optimize=0)
    flags = 0b01  # hash-based, not checked against the source
    return (importlib.util.MAGIC_NUMBER + struct.pack("<I", flags)
            + importlib.util.source_hash(source) + marshal.dumps(code))


def build(output, source=None, interpreter=DEFAULT_INTERPRETER):
    """Write the plugin to output (mode 0755, atomically); returns output."""
    source = source or default_source()
    missing = [m for m in MODULES if not os.path.isfile(os.path.join(source, m))]
    if missing:
        raise FileNotFoundError("%s lacks %s" % (source, ", ".join(missing)))
    directory = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(prefix=".podnet-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"#!" + interpreter.encode("utf-8") + b"\n")
            with zipfile.ZipFile(handle, "w") as archive:
                for depth in range(1, len(PACKAGE) + 1):
                    archive.writestr(_entry("/".join(PACKAGE[:depth] + ("__init__.py",))), b"")
                for module in MODULES:
                    with open(os.path.join(source, module), "rb") as src:
                        code = src.read()
                    archive.writestr(_entry("/".join(PACKAGE + (module,))), code)
                    archive.writestr(_entry("/".join(PACKAGE + (module[:-3] + ".pyc",))),
                                     _bytecode(code, module))
                archive.writestr(_entry("__main__.py"), MAIN.encode("utf-8"))
        os.chmod(tmp, 0o755)
        os.rename(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the podnet CNI plugin (a Python zip application).")
    parser.add_argument("output", help="file to write, e.g. /opt/cni/bin/podnet")
    parser.add_argument("--interpreter", default=DEFAULT_INTERPRETER,
                        help="Python of the node that runs the plugin (default %(default)s)")
    parser.add_argument("--source", help="module_utils directory (default: this collection's)")
    args = parser.parse_args(argv)
    try:
        build(args.output, args.source, args.interpreter)
    except OSError as exc:
        sys.stderr.write("build_podnet: %s\n" % exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
