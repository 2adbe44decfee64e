#!/usr/bin/env bash
# This target shares its name with the role podnet.mesh.pods: as a role
# target, ansible-test's "roles: [pods]" would resolve to the collection's
# role. So it runs as a playbook, with the targets directory as roles path
# (for setup_podnet).
set -eux
ANSIBLE_ROLES_PATH=.. ansible-playbook runme.yml -i "${INVENTORY_PATH}" "$@"
