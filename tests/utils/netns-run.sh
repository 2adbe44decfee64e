#!/usr/bin/env bash
# Run a command inside a fresh, anonymous network namespace that only has an
# "up" loopback interface, so tests can never add links, addresses or routes
# to the machine's own (root) network namespace.
#
# Named namespaces (ip netns add) made by the tests live in /run/netns and so
# outlive the command: afterwards, whatever the outcome, every one whose name
# starts with the test prefix (pnt) is deleted.
#
# usage: netns-run.sh COMMAND [ARG...]
set -euo pipefail

NETNS_PREFIX=${NETNS_PREFIX:-pnt}

cleanup() {
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        if [[ $ns == "$NETNS_PREFIX"* ]]; then
            echo "netns-run: removing leftover network namespace $ns" >&2
            ip netns del "$ns" || true
        fi
    done
}

if [[ $(id -u) -ne 0 ]]; then
    echo "netns-run: needs root (unshare --net)" >&2
    exit 1
fi

trap cleanup EXIT
cleanup

# shellcheck disable=SC2016  # $0/$@ are expanded by the inner shell
unshare --net -- bash -c 'set -e; ip link set lo up; exec "$@"' netns-run "$@"
