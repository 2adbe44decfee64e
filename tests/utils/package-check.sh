#!/usr/bin/env bash
# Packaging checks of the collection in the current directory (make package runs
# it in the copy .build/ansible_collections/podnet/mesh):
#  1. build the Galaxy artifact (ansible-galaxy collection build) from a copy of
#     the tree that also holds what a developer's checkout has (virtual
#     environments, test output, an older artifact, caches): none of it, nor the
#     development tooling, may end up in the tarball;
#  2. run Galaxy's importer on the tarball, offline (tests/utils/galaxy-importer.cfg:
#     ansible-doc of every plugin, ansible-lint's production profile, changelog,
#     role metadata and READMEs); any warning or error fails;
#  3. install the tarball with ansible-galaxy and use the installed copy alone
#     (ANSIBLE_COLLECTIONS_PATH): ansible-doc of the modules, filters and roles,
#     ansible-playbook --syntax-check of every playbook of the collection, with
#     the collection's lab inventory (its inventory plugin);
#  4. the execution environment: ansible-builder introspect reads the installed
#     collection as an execution environment build does (meta/execution-environment.yml),
#     and ansible-builder create writes a build context from that file; both must
#     carry meta/ee-requirements.txt and meta/ee-bindep.txt, never the nodes'
#     packages. No image is built.
#
# GALAXY_VENV holds galaxy-importer and ansible-builder (requirements-galaxy.txt);
# ANSIBLE_VENV the ansible-core that installs and uses the tarball.
#
# usage: package-check.sh GALAXY_VENV ANSIBLE_VENV
set -euo pipefail

usage="usage: package-check.sh GALAXY_VENV ANSIBLE_VENV"
galaxy_venv=$(cd -- "${1:?$usage}" && pwd)
ansible_venv=$(cd -- "${2:?$usage}" && pwd)
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
src=$PWD
[[ -f $src/galaxy.yml ]] || { echo "no galaxy.yml in $src: run in the collection's root" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/podnet-package.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

# Nothing here may reach the network, a user's configuration or another collection.
export ANSIBLE_NOCOLOR=1 ANSIBLE_LOCAL_TEMP=$tmp/ansible-tmp ANSIBLE_HOME=$tmp/ansible-home
export ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1 ANSIBLE_LINT_NODEPS=1 XDG_CACHE_HOME=$tmp/cache
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATHS
export ANSIBLE_COLLECTIONS_PATH=$tmp/none

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# run LOG CMD...: CMD's output goes to LOG, shown only when CMD fails
run() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        cat -- "$log" >&2
        fail "$*"
    fi
}

version=$("$ansible_venv/bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' \
    "$src/galaxy.yml")
name=podnet-mesh-$version.tar.gz
tarball=$tmp/$name
coll=$tmp/collections/ansible_collections/podnet/mesh

step "build $name from a tree with a developer's leftovers"
tree=$tmp/tree/ansible_collections/podnet/mesh
mkdir -p -- "$tree"
cp -a -- "$src/." "$tree/"
for f in .venv/bin/python .venv-galaxy/pyvenv.cfg .build/ansible_collections/x tests/output/junit.xml \
    .pytest_cache/CACHEDIR.TAG .hypothesis/examples/x plugins/modules/__pycache__/pods.cpython-311.pyc \
    .build/docs-site/html/index.html podnet-mesh-0.0.1.tar.gz; do
    mkdir -p -- "$(dirname -- "$tree/$f")"
    : >"$tree/$f"
done
run "$tmp/build.log" "$ansible_venv/bin/ansible-galaxy" collection build --output-path "$tmp" "$tree"
[[ -f $tarball ]] || fail "ansible-galaxy built no $name"
tar -tzf "$tarball" | sed 's,^\./,,' >"$tmp/members"
# Development files: dot files and folders (environments, .build, caches, git),
# test output, artifacts, the benchmark harness, the Makefile and the development
# requirements.
dev='^(\.[^/]+|benchmarks|tests/output)(/|$)|(^|/)__pycache__/|\.pyc$|\.tar\.gz$'
dev+='|^(Makefile|requirements-[^/]*\.txt)$'
if grep -E "$dev" "$tmp/members" >"$tmp/dev-files"; then
    cat -- "$tmp/dev-files" >&2
    fail "development files in $name (galaxy.yml build_ignore)"
fi
for f in MANIFEST.json FILES.json README.md LICENSE requirements.txt bindep.txt meta/runtime.yml \
    meta/execution-environment.yml meta/ee-requirements.txt meta/ee-bindep.txt changelogs/changelog.yaml \
    docs/packaging.md playbooks/site.yml; do
    grep -qxF -- "$f" "$tmp/members" || fail "$name has no $f"
done
echo "ok: $(grep -cv '/$' "$tmp/members") files, $(du -k "$tarball" | cut -f1) KiB, no development files"

step "galaxy-importer $("$galaxy_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("galaxy-importer"))')"
mkdir -p -- "$tmp/importer"
# The importer finds ansible-doc and ansible-lint on PATH; GALAXY_IMPORTER_*
# override single settings of its configuration.
(cd "$tmp/importer" && PATH=$galaxy_venv/bin:$PATH GALAXY_IMPORTER_CONFIG=$here/galaxy-importer.cfg \
    GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP=$tmp/importer-tmp GALAXY_IMPORTER_TMP_ROOT_DIR=$tmp/importer \
    "$galaxy_venv/bin/python" -m galaxy_importer.main "$tarball") >"$tmp/importer.log" 2>&1 ||
    { cat -- "$tmp/importer.log" >&2; fail "galaxy-importer failed"; }
if grep -E '^(WARNING|ERROR|CRITICAL)|Traceback' "$tmp/importer.log" >"$tmp/importer-findings"; then
    cat -- "$tmp/importer-findings" >&2
    fail "galaxy-importer reported the above"
fi
grep -qx 'Importer processing completed successfully' "$tmp/importer.log" ||
    { cat -- "$tmp/importer.log" >&2; fail "galaxy-importer did not complete"; }
# Every module and plugin has documentation Galaxy shows; every role a description.
# (A filter file holds several filters: the importer's ansible-doc already fails
# on an undocumented one.)
"$galaxy_venv/bin/python" - "$tmp/importer/importer_result.json" <<'EOF'
import json
import sys

result = json.load(open(sys.argv[1]))
undocumented = [
    f"{c['content_type']} {c['content_name']}" for c in result["docs_blob"]["contents"]
    if c["content_type"] not in ("role", "playbook", "module_utils", "doc_fragments", "filter", "test")
    and not c.get("doc_strings")
]
undescribed = [c["name"] for c in result["contents"] if c["content_type"] == "role" and not c.get("description")]
if undocumented or undescribed:
    sys.exit(f"FAIL: no documentation for {undocumented}, no description for roles {undescribed}")
kinds = {}
for c in result["contents"]:
    kinds[c["content_type"]] = kinds.get(c["content_type"], 0) + 1
print("ok: imported", ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), "with no warning")
EOF

step "install $name and use the installed copy alone"
run "$tmp/install.log" "$ansible_venv/bin/ansible-galaxy" collection install "$tarball" -p "$tmp/collections"
[[ -f $coll/MANIFEST.json ]] || fail "ansible-galaxy installed nothing in $coll"
export ANSIBLE_COLLECTIONS_PATH=$tmp/collections
cd "$tmp"
adoc=$ansible_venv/bin/ansible-doc
installed() {  # installed TYPE NAME...: ansible-doc takes NAME from the installed copy
    local type=$1
    shift
    "$adoc" -t "$type" --json "$@" | "$ansible_venv/bin/python" -c '
import json, sys
prefix, names, docs = sys.argv[1], sys.argv[2:], json.load(sys.stdin)
bad = [n for n in names if not docs.get(n, {}).get("doc", {}).get("filename", "").startswith(prefix)]
sys.exit(f"FAIL: not documented from {prefix}: {bad}" if bad else 0)' "$coll/" "$@"
}
mapfile -t modules < <(cd "$coll/plugins/modules" && for f in [!_]*.py; do echo "podnet.mesh.${f%.py}"; done)
installed module "${modules[@]}"
"$adoc" podnet.mesh.pods >"$tmp/doc-pods.txt"
grep -q '^> MODULE podnet.mesh.pods' "$tmp/doc-pods.txt" || fail "ansible-doc podnet.mesh.pods: $(head -3 "$tmp/doc-pods.txt")"
"$adoc" -t filter -l podnet.mesh >"$tmp/filters.txt"
grep -q '^podnet.mesh.mesh_table ' "$tmp/filters.txt" || fail "ansible-doc -t filter -l lists no podnet.mesh.mesh_table"
mapfile -t roles < <(cd "$coll/roles" && for r in */; do echo "${r%/}"; done)
"$adoc" -t role -l podnet.mesh >"$tmp/roles.txt"
for r in "${roles[@]}"; do
    grep -q "^podnet.mesh.$r:$" "$tmp/roles.txt" || fail "ansible-doc -t role -l podnet.mesh lists no $r"
done
"$adoc" -t role podnet.mesh.node_network >"$tmp/doc-role.txt"
grep -q 'podnet_pod_cidr' "$tmp/doc-role.txt" || fail "ansible-doc -t role podnet.mesh.node_network shows no podnet_pod_cidr"
echo "ok: ansible-doc of ${#modules[@]} modules, the filters and ${#roles[@]} roles from $coll"
playbooks=()
for p in "$coll"/playbooks/*.yml; do
    playbooks+=("podnet.mesh.$(basename -- "$p" .yml)")
done
for p in "${playbooks[@]}"; do
    run "$tmp/syntax.log" "$ansible_venv/bin/ansible-playbook" --syntax-check -i "$coll/inventories/lab" "$p"
done
echo "ok: ansible-playbook --syntax-check ${playbooks[*]}"

step "execution environment: ansible-builder $("$galaxy_venv/bin/ansible-builder" --version)"
builder=$galaxy_venv/bin/ansible-builder
# What an execution environment build that installs the collection takes from it.
run "$tmp/introspect.log" "$builder" introspect --sanitize "$tmp/collections"
ee_pip=$(grep -vE '^[[:space:]]*(#|$)' "$coll/meta/ee-requirements.txt")
ee_sys=$(grep -vE '^[[:space:]]*(#|$)' "$coll/meta/ee-bindep.txt")
while IFS= read -r req; do
    grep -qF -- "$req  # from collection podnet.mesh" "$tmp/introspect.log" ||
        { cat -- "$tmp/introspect.log" >&2; fail "ansible-builder introspect misses '$req'"; }
done <<<"$ee_pip"$'\n'"$ee_sys"
if grep -E 'pyroute2|nftables|iptables|ansible-core' "$tmp/introspect.log"; then
    fail "ansible-builder introspect takes the nodes' packages or ansible-core into the execution environment"
fi
# A build context from meta/execution-environment.yml as it stands in the collection
# (its paths are relative to the collection root).
mkdir -p -- "$tmp/ee"
cp -- "$coll/meta/execution-environment.yml" "$tmp/ee/"
ln -s -- "$coll/meta" "$tmp/ee/meta"
run "$tmp/create.log" "$builder" create -f "$tmp/ee/execution-environment.yml" -c "$tmp/ee/context" \
    --output-filename Containerfile
ctx=$tmp/ee/context
[[ -f $ctx/Containerfile ]] || fail "ansible-builder create wrote no Containerfile"
for f in requirements.txt bindep.txt; do
    grep -q "^COPY _build/$f $f\$" "$ctx/Containerfile" || fail "the Containerfile does not copy _build/$f"
done
while IFS= read -r req; do grep -qxF -- "$req" "$ctx/_build/requirements.txt" || fail "_build/requirements.txt misses $req"; done <<<"$ee_pip"
while IFS= read -r req; do grep -qxF -- "$req" "$ctx/_build/bindep.txt" || fail "_build/bindep.txt misses $req"; done <<<"$ee_sys"
echo "ok: introspect and create carry $(echo "$ee_pip" | wc -l) Python and $(echo "$ee_sys" | wc -l) system requirements"
# docs/packaging.md's example: an image with the collection installed from the artifact.
mkdir -p -- "$tmp/ee-doc"
sed -n '/^<!-- example: execution-environment.yml -->$/,/^```$/p' "$coll/docs/packaging.md" |
    sed '1,2d;$d' >"$tmp/ee-doc/execution-environment.yml"
grep -q "$name" "$tmp/ee-doc/execution-environment.yml" ||
    fail "docs/packaging.md's execution environment example does not install $name"
cp -- "$tarball" "$tmp/ee-doc/"
run "$tmp/create-doc.log" "$builder" create -f "$tmp/ee-doc/execution-environment.yml" -c "$tmp/ee-doc/context" \
    --output-filename Containerfile
ctx=$tmp/ee-doc/context
cmp -s -- "$tarball" "$ctx/_build/collections/$name" || fail "docs/packaging.md's example leaves $name out of the build context"
for step in 'ansible-galaxy collection install .*-r requirements.yml' 'introspect.py introspect'; do
    grep -q -- "$step" "$ctx/Containerfile" || fail "the example's Containerfile has no $step"
done
echo "ok: docs/packaging.md's example builds a context that installs $name"
echo "== packaging checks passed in ${SECONDS}s"
