# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the CNI plugin podnet (or another program of the collection): one executable file, a Python zip application.

The archive holds the collection's module_utils that the plugin runs on, under
``ansible_collections/podnet/mesh/plugins/module_utils/``, with an empty
``__init__.py`` at every package level, and a ``__main__.py`` that calls
``cni.main.main()``; a shebang line naming the node's Python comes first
(with ``-IS`` for the plugin: it needs nothing beyond the standard library).
``--entry node/main.py`` builds another program the same way: its
``__main__.py`` calls that file's ``main()`` (the podnet-restore program of the
persistence role, which needs pyroute2).
Python runs such a file directly; its entries are stored uncompressed, so a
start inflates nothing.

Which files go in is derived, not listed: the build starts at the entry (``cni/main.py``)
and follows its imports of ``ansible_collections.podnet.mesh.plugins.module_utils``
(read with ``ast``, so imports inside functions count too) from file to file.
The plugin carries no Ansible code: a file of that closure that imports
``ansible`` (or another collection) stops the build with an error naming it.

The build is reproducible: same sources and interpreter, same bytes (fixed
timestamps and order), so Ansible's copy reports no change when nothing
changed.

usage: python3 build_podnet.py OUTPUT [--interpreter /usr/bin/python3] [--source DIR] [--entry FILE] [--encode]
       python3 build_podnet.py --list [--source DIR] [--entry FILE]    (the files it would take)

DIR is the module_utils directory; by default the one of the collection this
file belongs to (roles/cni/files/ -> plugins/module_utils/). FILE is the entry,
relative to DIR, a module with a main() function (default cni/main.py).
"""

from __future__ import annotations

import argparse
import ast
import base64
import io
import importlib.util
import marshal
import os
import stat
import struct
import sys
import tempfile
import zipfile
import zlib

PACKAGE = ("ansible_collections", "podnet", "mesh", "plugins", "module_utils")
PREFIX = ".".join(PACKAGE)
# Where the closure starts (relative to module_utils) and what __main__ calls.
ENTRY = "cni/main.py"
DEFAULT_INTERPRETER = "/usr/bin/python3"
MAIN = (
    "# Entry point of the podnet CNI plugin (built by podnet.mesh roles/cni/files/build_podnet.py).\n"
    "# It writes with os.write, unbuffered: exiting at once skips the interpreter's shutdown.\n"
    "import os\n"
    "from ansible_collections.podnet.mesh.plugins.module_utils.cni import main\n"
    "os._exit(main.main())\n"
)
# The plugin needs nothing but the standard library: its interpreter starts isolated
# (-I: no PYTHON* variables, no user site) and without site (-S: no site-packages to scan).
PLUGIN_FLAGS = "-IS"
# __main__.py of a program built from another entry: its main() is the program.
MAIN_OF = (
    "# Entry point of %(entry)s (built by podnet.mesh roles/cni/files/build_podnet.py).\n"
    "import sys\n"
    "from %(package)s import %(module)s as entry\n"
    "sys.exit(entry.main())\n"
)
# 1980-01-01, the earliest time a zip entry can carry.
EPOCH = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """The sources cannot make a plugin (a missing file, an import the zipapp cannot carry)."""


def main_source(entry=ENTRY):
    """The __main__.py of a program that starts at entry ('package/module.py' below module_utils)."""
    if entry == ENTRY:
        return MAIN
    parts = entry[:-3].split("/") if entry.endswith(".py") else []
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise BuildError("entry %r is no module below module_utils (e.g. node/main.py)" % entry)
    return MAIN_OF % {"entry": entry, "package": ".".join(PACKAGE + tuple(parts[:-1])), "module": parts[-1]}


def default_source():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "plugins", "module_utils"))


# ------------------------------------------------------------------ closure
def _resolve(source, module):
    """module_utils-relative path of a dotted module below PREFIX: 'x/y.py', 'x/' for a package, or None."""
    parts = module.split(".")[len(PACKAGE):]
    if not parts:
        return ""
    base = os.path.join(source, *parts)
    if os.path.isfile(base + ".py"):
        return "/".join(parts) + ".py"
    if os.path.isdir(base):
        return "/".join(parts) + "/"
    return None


def _imports(path, rel):
    """(line, dotted module, names) for every import in a file; names is () for 'import x'."""
    with open(path, "rb") as handle:
        tree = ast.parse(handle.read(), filename=rel)
    package = ".".join(PACKAGE + tuple(rel.split("/")[:-1]))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name, ()))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            found.append((node.lineno, module, tuple(a.name for a in node.names)))
    return found


def closure(source, entry=ENTRY):
    """Sorted module_utils-relative paths of entry and every file it imports, directly or not.

    BuildError when a file of the closure imports Ansible, another collection or
    a module_utils file that does not exist.
    """
    seen, todo = set(), [entry]
    if not os.path.isfile(os.path.join(source, entry)):
        raise BuildError("%s lacks %s, where the %s starts" % (source, entry, "plugin" if entry == ENTRY else "program"))
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        for line, module, names in _imports(os.path.join(source, rel), rel):
            where = "module_utils/%s line %d" % (rel, line)
            if module == "ansible" or module.startswith("ansible."):
                raise BuildError("%s imports %s: the plugin carries no Ansible code, and nothing it "
                                 "runs may import ansible" % (where, module))
            if module != "ansible_collections" and not module.startswith("ansible_collections."):
                continue
            if module != PREFIX and not module.startswith(PREFIX + "."):
                raise BuildError("%s imports %s, which is not part of this collection's module_utils"
                                 % (where, module))
            target = _resolve(source, module)
            if target is None:
                raise BuildError("%s imports %s, which is no file of %s" % (where, module, source))
            if target.endswith(".py"):
                todo.append(target)
                continue
            # A package: 'from package import name' names its submodules.
            for name in names:
                sub = _resolve(source, "%s.%s" % (module, name))
                if sub is None or not sub.endswith(".py"):
                    raise BuildError("%s imports %s from %s, which is no file of %s"
                                     % (where, name, module, source))
                todo.append(sub)
    return sorted(seen)


def packages(files):
    """Every package directory (archive path) the files need an __init__.py in, sorted."""
    dirs = set()
    for depth in range(1, len(PACKAGE) + 1):
        dirs.add("/".join(PACKAGE[:depth]))
    for rel in files:
        parts = rel.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            dirs.add("/".join(PACKAGE + tuple(parts[:depth])))
    return sorted(dirs)


# ------------------------------------------------------------------ archive
def _entry(name):
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    # Stored, not compressed: nothing to inflate at each start (the file is a few hundred kB).
    info.compress_type = zipfile.ZIP_STORED
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


def program_bytes(source=None, interpreter=DEFAULT_INTERPRETER, entry=ENTRY):
    """The plugin (or the program that starts at entry): a shebang line, then the zip archive."""
    source = source or default_source()
    main_py = main_source(entry)
    files = closure(source, entry)
    buffer = io.BytesIO()
    flags = " " + PLUGIN_FLAGS if entry == ENTRY else ""
    buffer.write(b"#!" + (interpreter + flags).encode("utf-8") + b"\n")
    with zipfile.ZipFile(buffer, "w") as archive:
        for package in packages(files):
            archive.writestr(_entry(package + "/__init__.py"), b"")
        for rel in files:
            with open(os.path.join(source, rel), "rb") as src:
                code = src.read()
            name = "/".join(PACKAGE) + "/" + rel
            archive.writestr(_entry(name), code)
            archive.writestr(_entry(name[:-3] + ".pyc"), _bytecode(code, name))
        archive.writestr(_entry("__main__.py"), main_py.encode("utf-8"))
    return buffer.getvalue()


def encode(data):
    """The program as text for a module option: zlib-compressed (level 9), then base64 (podnet.mesh.boot_restore)."""
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


def build(output, source=None, interpreter=DEFAULT_INTERPRETER, entry=ENTRY, encoded=False):
    """Write the plugin (or the program that starts at entry) to output (mode 0755, atomically); returns output.

    encoded: write the program as ``encode`` gives it (text, mode 0644); output ``-``
    writes that text to standard output instead.
    """
    data = program_bytes(source, interpreter, entry)
    if encoded:
        data = encode(data).encode("ascii")
        if output == "-":
            sys.stdout.write(data.decode("ascii") + "\n")
            return output
    directory = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(prefix=".podnet-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644 if encoded else 0o755)
        os.rename(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the podnet CNI plugin (a Python zip application).")
    parser.add_argument("output", nargs="?", help="file to write, e.g. /opt/cni/bin/podnet")
    parser.add_argument("--interpreter", default=DEFAULT_INTERPRETER,
                        help="Python of the node that runs the plugin (default %(default)s)")
    parser.add_argument("--source", help="module_utils directory (default: this collection's)")
    parser.add_argument("--list", action="store_true", help="print the files the plugin is made of and stop")
    parser.add_argument("--encode", action="store_true",
                        help="write the program zlib-compressed and base64-encoded, as text (OUTPUT - : to standard "
                             "output), the form podnet.mesh.boot_restore takes it in")
    parser.add_argument("--entry", default=ENTRY,
                        help="module_utils file whose main() the program runs (default %(default)s: the CNI plugin)")
    args = parser.parse_args(argv)
    if args.output is None and not args.list:
        parser.error("OUTPUT is required (or --list)")
    try:
        if args.list:
            for rel in closure(args.source or default_source(), args.entry):
                sys.stdout.write(rel + "\n")
            return 0
        build(args.output, args.source, args.interpreter, args.entry, encoded=args.encode)
    except (OSError, SyntaxError, BuildError) as exc:
        sys.stderr.write("build_podnet: %s\n" % exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
