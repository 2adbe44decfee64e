#!/usr/bin/env bash
# Run a command inside a fresh, anonymous network namespace that only has an
# "up" loopback interface, so tests can never add links, addresses or routes
# to the machine's own (root) network namespace.
#
# Named namespaces (ip netns add) made by the tests live in /run/netns and so
# outlive the command: afterwards, whatever the outcome, every one whose name
# starts with the test prefix (pnt) and that did not exist when the run began
# is deleted. Runs of this script are serialised machine-wide with a lock, so
# one run's cleanup never deletes another run's namespaces; namespaces that
# already existed (a developer's, or left by a killed run) are left alone.
#
# usage: netns-run.sh COMMAND [ARG...]
set -euo pipefail

NETNS_PREFIX=${NETNS_PREFIX:-pnt}
LOCK=${NETNS_RUN_LOCK:-/run/lock/podnet-mesh-netns-run.lock}

list_ours() {
    ip netns list 2>/dev/null | awk -v p="$NETNS_PREFIX" 'index($1, p) == 1 {print $1}' | sort
}

cleanup() {
    local ns
    for ns in $(comm -13 <(printf '%s\n' "${before[@]}") <(list_ours)); do
        echo "netns-run: removing leftover network namespace $ns" >&2
        ip netns del "$ns" || true
    done
}

if [[ $(id -u) -ne 0 ]]; then
    echo "netns-run: needs root (unshare --net)" >&2
    exit 1
fi

mkdir -p "$(dirname "$LOCK")"
exec 8>"$LOCK"
if ! flock -n 8; then
    echo "netns-run: waiting for another run that uses network namespaces ..." >&2
    flock 8
fi

mapfile -t before < <(list_ours)
trap cleanup EXIT

# shellcheck disable=SC2016  # $@ is expanded by the inner shell
unshare --net -- bash -c 'set -e; ip link set lo up; exec "$@"' netns-run "$@"
