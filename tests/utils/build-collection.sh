#!/usr/bin/env bash
# Copy the working tree (tracked files plus untracked files that are not
# ignored) to DEST, which is deleted first. ansible-test needs a collection to
# live under .../ansible_collections/<namespace>/<name>/.
#
# The copy gets a git repository of its own, with every file staged: ansible-test
# and ansible-lint list a project's files with git, and would otherwise find
# the enclosing work tree, where .build/ is ignored, and so see no files.
#
# usage: build-collection.sh DEST
set -euo pipefail

dest=${1:?usage: build-collection.sh DEST}
src=$(git rev-parse --show-toplevel)

rm -rf -- "$dest"
mkdir -p -- "$dest"

cd "$src"
# tracked files deleted in the working tree are still listed: skip them
git ls-files -z -co --exclude-standard |
    while IFS= read -r -d '' f; do
        if [[ -e $f || -L $f ]]; then
            printf '%s\0' "$f"
        fi
    done |
    tar --null -T - -cf - |
    tar -xf - -C "$dest"

cd "$dest"
git init -q
git add -A
