"""Seed ansible-test's pip bootstrap cache so ``--venv``/``--requirements`` work offline.

ansible-test bootstraps pip in each virtual environment it creates by running
``get-pip-<version>.py``, which it downloads from a host that is not reachable
from every machine (https://github.com/ansible/ansible/issues/77304). It first
looks for ``~/.ansible/test/cache/get_pip_<version>.py`` though, so this script
writes a small stand-in there for every pip version the installed ansible-test
asks for. The stand-in:

* unsets ``PIP_CONFIG_FILE`` (ensurepip points it at /dev/null, which would
  hide the machine's pip configuration, such as its CA certificate and index),
* bootstraps pip from the interpreter's bundled wheel with ``ensurepip``,
* then runs ``python -m pip install`` with the arguments ansible-test passed to
  get-pip (e.g. ``pip==24.2``), minus the get-pip-only ``--no-setuptools`` and
  ``--no-wheel`` flags.

Run it with the Python that has ansible-test installed (``.venv/bin/python``).
"""

from __future__ import annotations

import inspect
import os
import re
import sys

MARKER = 'podnet.mesh offline get-pip stand-in'

STAND_IN = '''\
"""{marker}: bootstrap pip with ensurepip, then pip install."""
import os
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ('--no-setuptools', '--no-wheel')


def main():
    os.environ.pop('PIP_CONFIG_FILE', None)
    subprocess.run([sys.executable, '-m', 'ensurepip', '--default-pip'], check=True, stdout=subprocess.DEVNULL)
    os.environ.pop('PIP_CONFIG_FILE', None)
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args))


if __name__ == '__main__':
    main()
'''.format(marker=MARKER)


def wanted_pip_versions() -> set[str]:
    """Return the pip versions the installed ansible-test bootstraps virtual environments with."""
    from ansible_test._internal import python_requirements  # pylint: disable=import-outside-toplevel

    source = inspect.getsource(python_requirements.get_venv_packages)
    versions = set(re.findall(r'''\bpip\s*[=:]\s*['"]([0-9][0-9A-Za-z.]*)['"]''', source))

    if not versions:
        raise SystemExit('cannot find the pip version in ansible_test get_venv_packages(); has ansible-test changed?')

    return versions


def main() -> None:
    cache_dir = os.path.expanduser('~/.ansible/test/cache')
    os.makedirs(cache_dir, exist_ok=True)

    for version in sorted(wanted_pip_versions()):
        path = os.path.join(cache_dir, 'get_pip_%s.py' % version.replace('.', '_'))

        try:
            with open(path, encoding='utf-8') as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None

        if current == STAND_IN:
            continue

        if current is not None and MARKER not in current:
            # a real get-pip script someone downloaded by hand: it works as well
            print('keeping existing %s' % path, file=sys.stderr)
            continue

        with open(path + '.tmp', 'w', encoding='utf-8') as handle:
            handle.write(STAND_IN)

        os.replace(path + '.tmp', path)
        print('seeded %s (pip %s)' % (path, version), file=sys.stderr)


if __name__ == '__main__':
    main()
