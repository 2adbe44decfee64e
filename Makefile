# Build and test entry points for the podnet.mesh collection.
# `make test` on a fresh Debian 12 machine, as root, installs what it needs
# (Debian packages, two virtual environments) and runs every suite.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON    ?= python3
VENV      := $(CURDIR)/.venv
VENV_PR07 := $(CURDIR)/.venv-pr07
# The documentation site's tools (requirements-docs.txt): antsibull-docs, Sphinx.
VENV_DOCS := $(CURDIR)/.venv-docs
# Packaging checks' tools (requirements-galaxy.txt): galaxy-importer, which pins its
# own ansible-core and ansible-lint, and ansible-builder.
VENV_GALAXY := $(CURDIR)/.venv-galaxy
# The SSH flow's controllers: the lowest ansible-core supported, and the newest, which
# needs Python >= 3.12 (the first found; without one the SSH flow uses .venv's 2.19).
VENV_CORE217 := $(CURDIR)/.venv-core217
VENV_NEWEST  := $(CURDIR)/.venv-core-newest
PYTHON_NEWEST ?= $(shell for p in $(HOME)/.pyenv/versions/3.13*/bin/python3.13 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 \
	python3.13 python3.12; do "$$p" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null \
	&& { command -v "$$p"; break; }; done)
# A managed node at the oldest versions supported (requirements-node-oldest.txt): Python 3.9
# with pyroute2 0.7, the interpreter of tests/kernel/test_node_python.py (skipped without one).
VENV_NODE_OLDEST := $(CURDIR)/.venv-node-oldest
PYTHON_NODE_OLDEST ?= $(shell for p in $(HOME)/.pyenv/versions/3.9*/bin/python3.9 python3.9; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null && { command -v "$$p"; break; }; done)
BUILD     := $(CURDIR)/.build
# ansible-test needs the collection below ansible_collections/NS/NAME.
COLL      := $(BUILD)/ansible_collections/podnet/mesh
UTILS     := $(CURDIR)/tests/utils
NETNS_RUN := $(UTILS)/netns-run.sh
SUITES    := unit kernel containerd libcni lint package docs integration flow sanity bench

# Kernel and netfilter tools, venv, shellcheck (sanity), git (the copy),
# podman, containerd and the reference CNI plugins (kernel, containerd and libcni
# suites, bench), Go and libcni's sources (the libcni suite's driver), sshd and sudo
# (the lab's SSH nodes), systemd's tools (the boot unit checked with systemd-analyze).
APT_PACKAGES := iproute2 nftables iptables python3-pyroute2 python3-venv procps \
	iputils-ping shellcheck git podman runc busybox-static containernetworking-plugins time \
	containerd golang-go golang-github-appc-cni-dev openssh-server sudo systemd iperf3

# pytest imports ansible_collections.podnet.mesh from the built copy.
PYTEST_ENV := PYTHONPATH=$(BUILD) PYTHONDONTWRITEBYTECODE=1 PODNET_TEST_STRICT=1
pytest = $(1)/bin/python -m pytest -q -p no:cacheprovider
pyroute2_of = $$($(1)/bin/python -c 'import pyroute2; print("pyroute2", pyroute2.__version__)')
# pip warns about every configured local index it cannot find.
PIP_QUIET := { grep -v "^WARNING: Location 'file:" || true; }
PLAYBOOK  := ANSIBLE_COLLECTIONS_PATH=$(BUILD) ANSIBLE_NOCOLOR=1 $(VENV)/bin/ansible-playbook -i $(COLL)/inventories/lab

.PHONY: help apt venv collection unit kernel containerd libcni integration flow sanity lint package docs bench profile test demo demo-down clean distclean

help:
	@echo 'make test         venv, then every suite: $(SUITES); prints a summary'
	@echo 'make venv         Debian packages (if missing), .venv and .venv-pr07'
	@echo 'make collection   copy the working tree to .build/ansible_collections/podnet/mesh'
	@echo 'make unit         pytest tests/unit with .venv (pyroute2 0.9) and .venv-pr07 (pyroute2 0.7)'
	@echo 'make kernel       pytest tests/kernel, as root in a private network namespace, both venvs'
	@echo 'make containerd   pytest tests/containerd: sandboxes through containerd'"'"'s CRI, podnet beside the reference plugins'
	@echo 'make libcni       pytest tests/libcni: the plugin through libcni 1.1 (a Go driver) and as libcni 1.2 drives it'
	@echo 'make flow         pytest tests/flow: site, verify and teardown playbooks on a 3-node lab'
	@echo 'make integration  ansible-test integration in a private network namespace'
	@echo 'make sanity       ansible-test sanity (full default set)'
	@echo 'make lint         ansible-lint --profile production'
	@echo 'make package      the Galaxy artifact: contents, galaxy-importer, installed and used, execution environment'
	@echo 'make docs         the documentation site (guides and plugin/role reference) in .build/docs-site/html'
	@echo 'make bench        benchmarks/run.py: converge, pod_route and CNI side by side (QUICK=1: a tiny run)'
	@echo 'make profile      benchmarks/profile.py: import times and profiles of a module run and a CNI ADD'
	@echo 'make demo         the 3-node lab: lab up, site.yml, verify.yml (make demo-down removes it);'
	@echo '                  INVENTORY=inventories/lab-dualstack (or lab-ipv6) for IPv6, on demo and demo-down'
	@echo 'make clean        remove .build and test output; make distclean also removes the venvs'

apt:
	@$(UTILS)/ensure-apt.sh $(APT_PACKAGES)

venv: apt $(VENV)/.installed $(VENV_PR07)/.installed $(VENV_CORE217)/.installed $(VENV_NEWEST)/.installed \
	$(VENV_DOCS)/.installed $(VENV_GALAXY)/.installed $(VENV_NODE_OLDEST)/.installed

# make_venv DIR REQUIREMENTS [PYTHON]
make_venv = test -x $(1)/bin/python || $(or $(3),$(PYTHON)) -m venv $(1); \
	$(1)/bin/python -m pip install -q --disable-pip-version-check -r $(2) 2>&1 | $(PIP_QUIET); \
	$(1)/bin/python -m pip check; touch $(1)/.installed

$(VENV)/.installed: requirements-dev.txt requirements.txt benchmarks/requirements.txt
	$(call make_venv,$(VENV),requirements-dev.txt)

$(VENV_PR07)/.installed: requirements-pr07.txt requirements.txt
	$(call make_venv,$(VENV_PR07),requirements-pr07.txt)

$(VENV_CORE217)/.installed: requirements-core217.txt
	$(call make_venv,$(VENV_CORE217),requirements-core217.txt)

$(VENV_DOCS)/.installed: requirements-docs.txt
	$(call make_venv,$(VENV_DOCS),requirements-docs.txt)

$(VENV_GALAXY)/.installed: requirements-galaxy.txt
	$(call make_venv,$(VENV_GALAXY),requirements-galaxy.txt)

$(VENV_NEWEST)/.installed: requirements-core-newest.txt
	@if [ -z "$(PYTHON_NEWEST)" ]; then \
		echo "no Python >= 3.12 here: the SSH flow runs ansible-core 2.17 and .venv's"; \
	else $(call make_venv,$(VENV_NEWEST),requirements-core-newest.txt,$(PYTHON_NEWEST)); fi

$(VENV_NODE_OLDEST)/.installed: requirements-node-oldest.txt
	@if [ -z "$(PYTHON_NODE_OLDEST)" ]; then \
		echo "no Python 3.9 here (pyenv install 3.9): tests/kernel/test_node_python.py is skipped"; \
	else $(call make_venv,$(VENV_NODE_OLDEST),requirements-node-oldest.txt,$(PYTHON_NODE_OLDEST)); fi

# Every suite starts with a fresh copy of the working tree (tests/utils/build-collection.sh),
# under a lock on .build held until its recipe ends, so parallel make runs never
# delete each other's copy halfway through a suite.
copy = mkdir -p $(BUILD); exec 9>$(BUILD)/.lock; \
	flock -n 9 || { echo "waiting for another make run that uses $(BUILD) ..."; flock 9; }; \
	$(UTILS)/build-collection.sh $(COLL); cd $(COLL)

collection: venv
	@$(copy); echo "collection copied to $(COLL) (ANSIBLE_COLLECTIONS_PATH=$(BUILD))"

unit: venv
	@$(copy); for v in $(VENV) $(VENV_PR07); do \
		echo "== unit tests with $$(basename $$v): $(call pyroute2_of,$$v)"; \
		$(PYTEST_ENV) $(call pytest,$$v) tests/unit; done

# Kernel, integration, flow and bench talk to the real kernel: as root, inside
# a fresh network namespace; pnt* namespaces they leave are removed.
# The node's Python of test_node_python.py: .venv-node-oldest, when there is one.
kernel: venv
	@$(copy); if [ -x $(VENV_NODE_OLDEST)/bin/python ]; then export PODNET_NODE_PYTHON=$(VENV_NODE_OLDEST)/bin/python; fi; \
	for v in $(VENV) $(VENV_PR07); do \
		echo "== kernel tests with $$(basename $$v): $(call pyroute2_of,$$v)"; \
		$(PYTEST_ENV) $(NETNS_RUN) $(call pytest,$$v) tests/kernel; done

# A containerd of their own (containerd suite) and a Go driver on Debian's libcni
# sources (libcni suite), each inside a fresh network namespace.
containerd: venv
	@$(copy); $(PYTEST_ENV) $(NETNS_RUN) $(call pytest,$(VENV)) tests/containerd

libcni: venv
	@$(copy); $(PYTEST_ENV) $(NETNS_RUN) $(call pytest,$(VENV)) tests/libcni

# All targets share one namespace, so each removes what it creates. --local:
# modules run with .venv's Python (pyroute2 0.9); nothing is installed.
integration: venv
	@$(copy); set -x; $(NETNS_RUN) $(VENV)/bin/ansible-test integration --local --python 3.11 --allow-destructive --color no

# On a lab of its own; lab nodes run modules with the system python3.
flow: venv
	@$(copy); $(PYTEST_ENV) $(NETNS_RUN) $(call pytest,$(VENV)) --durations=15 tests/flow

sanity: venv
	@$(copy); $(VENV)/bin/python $(UTILS)/seed-ansible-test.py; set -x; \
	$(VENV)/bin/ansible-test sanity --venv --requirements --python 3.11 --color no

# Offline: no dependency installs, no schema refresh; ansible-lint finds its tools on PATH.
lint: venv
	@$(copy); set -x; PATH=$(VENV)/bin:$$PATH ANSIBLE_LINT_NODEPS=1 ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1 \
	ANSIBLE_COLLECTIONS_PATH=$(BUILD) $(VENV)/bin/ansible-lint --profile production --offline --nocolor

# The artifact that ansible-galaxy builds, offline (docs/packaging.md): no development
# files in it, Galaxy's importer with no warning, installed and used from its copy
# alone, the execution environment's build context.
package: venv
	@$(copy); tests/utils/package-check.sh $(VENV_GALAXY) $(VENV)

# The documentation site (docs/site/), built offline: the plugin and role documentation
# linted (antsibull-docs), rendered with the guides, no Sphinx warning, no broken internal link.
docs: venv
	@$(copy); PATH=$(VENV_DOCS)/bin:$$PATH tests/utils/build-docs.sh $(BUILD)/docs-site

# See docs/performance.md; QUICK=1 (as in make test): tiny counts, no timing assertions.
bench: venv
	@$(NETNS_RUN) $(VENV)/bin/python benchmarks/run.py $(if $(filter 1,$(QUICK)),--quick,)

profile: venv
	@$(NETNS_RUN) $(VENV)/bin/python benchmarks/profile.py

# Every suite, even after a failure, then a summary; fails if any suite failed.
test: venv
	@failed=0; report=""; for s in $(SUITES); do start=$$SECONDS; \
		if QUICK=1 $(MAKE) --no-print-directory $$s; then r=passed; else r=FAILED; failed=$$((failed + 1)); fi; \
		report+=$$(printf '  %-12s %-6s %4ss' $$s $$r $$((SECONDS - start)))$$'\n'; done; \
	printf '\n== test suites\n%s' "$$report"; \
	echo "suites: $$(($(words $(SUITES)) - failed)) passed, $$failed failed"; ((failed == 0))

# Three simulated nodes on this machine, converged and verified; left up for a
# look around (docs/lab.md) until make demo-down.
# INVENTORY=inventories/lab-dualstack (or lab-ipv6): another lab inventory of the collection.
demo demo-down: INVENTORY ?= inventories/lab
demo demo-down: PLAYBOOK = ANSIBLE_COLLECTIONS_PATH=$(BUILD) ANSIBLE_NOCOLOR=1 $(VENV)/bin/ansible-playbook -i $(COLL)/$(INVENTORY)
demo: collection
	@$(PLAYBOOK) $(COLL)/playbooks/lab.yml

demo-down: collection
	@$(PLAYBOOK) $(COLL)/playbooks/teardown.yml

clean:
	rm -rf $(BUILD) tests/output .pytest_cache

distclean: clean
	rm -rf $(VENV) $(VENV_PR07) $(VENV_CORE217) $(VENV_NEWEST) $(VENV_DOCS) $(VENV_GALAXY) $(VENV_NODE_OLDEST)
