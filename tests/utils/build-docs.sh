#!/usr/bin/env bash
# Build the documentation site into OUTDIR/html (index.html is its entry page):
#  1. lint the collection's plugin and role documentation (antsibull-docs);
#  2. assemble the Sphinx sources in OUTDIR/src: docs/site/ (conf.py, index.rst),
#     README.md and the guides docs/*.md where the repository has them (so their
#     relative links resolve), the files they link to, and the RST reference that
#     antsibull-docs generates from the collection (collections/);
#  3. build HTML with no warning allowed (nitpicky: every reference resolves);
#  4. check offline that every internal link and anchor of the HTML resolves
#     (external http(s) links are not checked).
#
# Needs antsibull-docs, sphinx-build and python3 with requirements-docs.txt on
# PATH (make docs puts .venv-docs/bin first). Run in a copy of the collection
# below .../ansible_collections/podnet/mesh (make docs), or in a checkout, which
# is then copied (tests/utils/build-collection.sh) to OUTDIR/collection.
#
# usage: build-docs.sh OUTDIR
set -euo pipefail

outdir=${1:?usage: build-docs.sh OUTDIR}
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$here/../.." && pwd)
mkdir -p -- "$outdir"
outdir=$(cd -- "$outdir" && pwd)

if [[ $root == */ansible_collections/podnet/mesh ]]; then
    coll=$root
else
    coll=$outdir/collection/ansible_collections/podnet/mesh
    (cd "$root" && "$here/build-collection.sh" "$coll")
fi
export ANSIBLE_COLLECTIONS_PATH=${coll%/ansible_collections/podnet/mesh}
export ANSIBLE_NOCOLOR=1

echo "== lint the collection's documentation"
antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs \
    --validate-collection-refs all --disallow-unknown-collection-refs "$coll"

echo "== assemble the sources in $outdir/src"
src=$outdir/src
rm -rf -- "$src" "$outdir/html" "$outdir/doctrees"
mkdir -p -- "$src/benchmarks"
cp -- "$coll"/docs/site/conf.py "$coll"/docs/site/*.rst "$src/"
cp -- "$coll/README.md" "$coll/LICENSE" "$src/"
# the release notes that antsibull-changelog writes
cp -- "$coll/CHANGELOG.rst" "$src/"
# the guides with their pictures; docs/site/guides.md is their index page
cp -R -- "$coll/docs" "$src/docs"
rm -rf -- "$src/docs/site"
cp -- "$coll/docs/site/guides.md" "$src/docs/index.md"
# docs/performance.md links to the benchmark results.
cp -R -- "$coll/benchmarks/results" "$src/benchmarks/results"

echo "== generate the collection reference (RST)"
# antsibull-docs wants its destination writable by its owner only.
mkdir -p -- "$src/collections"
chmod og-w -- "$src" "$src/collections"
antsibull-docs --config-file "$coll/docs/site/antsibull-docs.cfg" collection \
    --use-current --dest-dir "$src" podnet.mesh

echo "== build the HTML"
sphinx-build -b html -W --keep-going -n -q -d "$outdir/doctrees" "$src" "$outdir/html"

echo "== check internal links"
python3 "$coll/docs/site/check_links.py" "$outdir/html"
echo "documentation site: $outdir/html/index.html"
