# Build and test entry points for the podnet.mesh collection.
#
# `make test` on a fresh Debian 12 machine, as root, installs what it needs
# (Debian packages, two Python virtual environments) and runs every test suite.
# Run `make help` for the list of targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Python used to create the virtual environments (3.11).
PYTHON ?= python3

VENV      := $(CURDIR)/.venv
VENV_PR07 := $(CURDIR)/.venv-pr07
BUILD     := $(CURDIR)/.build
# ansible-test only works on a collection below ansible_collections/NS/NAME.
COLL      := $(BUILD)/ansible_collections/podnet/mesh
UTILS     := $(CURDIR)/tests/utils

# Point ansible (ansible-playbook, ansible-doc, ...) at the built copy with:
#   export ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.build
COLLECTIONS_ENV := ANSIBLE_COLLECTIONS_PATH=$(BUILD)

# Debian packages the tests need: netlink/netfilter tools for the kernel and
# integration tests, ensurepip for the virtual environments, shellcheck for
# ansible-test's shellcheck sanity test, git for copying the working tree.
APT_PACKAGES := iproute2 nftables iptables python3-pyroute2 python3-venv \
	procps iputils-ping shellcheck git \
	podman runc busybox-static containernetworking-plugins time

# pytest for the unit and kernel suites: run from inside the built copy, with
# the directory holding ansible_collections/ on sys.path, so that
# `import ansible_collections.podnet.mesh...` resolves to the copy.
PYTEST_ENV  := PYTHONPATH=$(BUILD) PYTHONDONTWRITEBYTECODE=1
PYTEST_ARGS := -q -p no:cacheprovider

# Sanity: a fresh venv per test made by ansible-test itself, with requirements.
SANITY_ARGS := --venv --requirements --python 3.11 --color no

# Integration: --local runs the controller and the (localhost) target with
# .venv's Python, so modules see pyroute2 0.9.7. Nothing is installed
# (no --requirements) as the tests run in a network namespace without network.
# Targets may carry the aliases destructive, needs/root and needs/privileged;
# we are root already, so only destructive needs allowing.
INTEGRATION_ARGS := --local --python 3.11 --allow-destructive --color no

# ansible-lint: production profile, no galaxy/network access (no dependency
# installs, no schema refresh). .venv/bin goes first on PATH, as ansible-lint
# wants its own tools (ansible, ansible-galaxy) found there.
LINT_ENV  := PATH=$(VENV)/bin:$$PATH ANSIBLE_LINT_NODEPS=1 ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1 $(COLLECTIONS_ENV)
LINT_ARGS := --profile production --offline --nocolor

# Suites run by `make test`, fastest first.
TEST_SUITES := unit kernel lint integration flow sanity bench

VENV_STAMP      := $(VENV)/.installed
VENV_PR07_STAMP := $(VENV_PR07)/.installed

# pip on this kind of machine warns about every configured local index it
# cannot find; keep those lines out of the output.
PIP_QUIET := { grep -v "^WARNING: Location 'file:" || true; }

.PHONY: help apt venv collection unit kernel integration flow sanity lint bench profile test demo _demo demo-down clean distclean

help:
	@echo 'make test         venv + collection, then: $(TEST_SUITES); prints a summary'
	@echo 'make venv         Debian packages (if missing), .venv and .venv-pr07'
	@echo 'make collection   copy the working tree to .build/ansible_collections/podnet/mesh'
	@echo 'make unit         pytest tests/unit with .venv (pyroute2 0.9) and .venv-pr07 (pyroute2 0.7)'
	@echo 'make kernel       pytest tests/kernel, as root in a private network namespace, both venvs'
	@echo 'make flow         pytest tests/flow: site, verify and teardown playbooks on a 3-node lab'
	@echo 'make integration  ansible-test integration in a private network namespace'
	@echo 'make sanity       ansible-test sanity (full default set)'
	@echo 'make lint         ansible-lint --profile production'
	@echo 'make bench        benchmarks/run.py: converge, pod_route and CNI side by side (QUICK=1: a tiny run)'
	@echo 'make profile      benchmarks/profile.py: import times and profiles of a module run and a CNI ADD'
	@echo 'make demo         the 3-node lab: lab up, site.yml, verify.yml (make demo-down removes it)'
	@echo 'make clean        remove .build and test output; make distclean also removes the venvs'

# --- environment -------------------------------------------------------------

# Debian packages: apt is only run when one of them is missing.
apt:
	@$(UTILS)/ensure-apt.sh $(APT_PACKAGES)

venv: apt $(VENV_STAMP) $(VENV_PR07_STAMP)

$(VENV_STAMP): requirements.txt requirements-dev.txt benchmarks/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | $(PIP_QUIET)
	$(VENV)/bin/python -m pip check
	touch $@

$(VENV_PR07_STAMP): requirements.txt requirements-pr07.txt
	test -x $(VENV_PR07)/bin/python || $(PYTHON) -m venv $(VENV_PR07)
	$(VENV_PR07)/bin/python -m pip install -q --disable-pip-version-check -r requirements-pr07.txt 2>&1 | $(PIP_QUIET)
	$(VENV_PR07)/bin/python -m pip check
	touch $@

# --- built collection --------------------------------------------------------

# with_copy: recipe prologue that takes the lock on .build (held until the
# recipe's shell ends, so two make runs in one tree cannot delete each other's
# copy halfway through a suite), then makes a fresh copy of the collection:
# tracked files plus untracked, not ignored ones.
with_copy = mkdir -p $(BUILD); exec 9>$(BUILD)/.lock; \
	flock -n 9 || { echo "waiting for another make run that uses $(BUILD) ..."; flock 9; }; \
	$(UTILS)/build-collection.sh $(COLL)

collection: venv
	@$(with_copy); echo "collection copied to $(COLL) (ANSIBLE_COLLECTIONS_PATH=$(BUILD))"

# --- test suites -------------------------------------------------------------
# Each suite makes its own fresh copy under the lock (see with_copy), so it can
# be run on its own. A suite whose test directory holds no test_*.py yet is
# skipped (and reported so by `make test`) instead of failing with pytest's
# "no tests ran".

# has_tests DIR: true if DIR (in the built copy) contains a pytest test file.
has_tests = [[ -n "$$(find $(COLL)/$(1) -name 'test_*.py' -print -quit 2>/dev/null)" ]]
# skip NAME WHY: report a skipped suite (recorded for the summary of make test).
skip = echo "SKIPPED $(1): $(2)"; if [[ -n "$${SUITE_SKIP_DIR:-}" ]]; then touch "$$SUITE_SKIP_DIR/$(1)"; fi
# pyroute2_of VENV: "pyroute2 X.Y.Z" as installed in that venv.
pyroute2_of = $$($(1)/bin/python -c 'import pyroute2; print("pyroute2", pyroute2.__version__)')

unit: venv
	@$(with_copy); \
	if ! $(call has_tests,tests/unit); then $(call skip,unit,no test files in tests/unit); exit 0; fi; \
	for venv in $(VENV) $(VENV_PR07); do \
		echo "== unit tests with $$(basename $$venv): $(call pyroute2_of,$$venv)"; \
		(cd $(COLL) && $(PYTEST_ENV) $$venv/bin/python -m pytest $(PYTEST_ARGS) tests/unit); \
	done

# Kernel tests talk netlink to the real kernel: root, inside a fresh network
# namespace (see tests/utils/netns-run.sh), pnt* namespaces removed afterwards.
kernel: venv
	@$(with_copy); \
	if ! $(call has_tests,tests/kernel); then $(call skip,kernel,no test files in tests/kernel); exit 0; fi; \
	for venv in $(VENV) $(VENV_PR07); do \
		echo "== kernel tests with $$(basename $$venv): $(call pyroute2_of,$$venv)"; \
		(cd $(COLL) && $(PYTEST_ENV) $(UTILS)/netns-run.sh $$venv/bin/python -m pytest $(PYTEST_ARGS) tests/kernel); \
	done

# Same network namespace treatment as the kernel tests; all targets of one run
# share that namespace, so targets should remove what they create.
integration: venv
	@$(with_copy); \
	if [[ -z "$$(find $(COLL)/tests/integration/targets -mindepth 1 -maxdepth 1 -type d -print -quit 2>/dev/null)" ]]; then \
		$(call skip,integration,no targets in tests/integration/targets); exit 0; fi; \
	cd $(COLL); set -x; \
	$(UTILS)/netns-run.sh $(VENV)/bin/ansible-test integration $(INTEGRATION_ARGS)

# The whole flow (lab, site.yml, verify.yml, teardown.yml) on a lab of its own,
# once (the nodes run modules with the system python3 and its pyroute2).
flow: venv
	@$(with_copy); \
	if ! $(call has_tests,tests/flow); then $(call skip,flow,no test files in tests/flow); exit 0; fi; \
	cd $(COLL) && $(PYTEST_ENV) $(UTILS)/netns-run.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS) tests/flow

sanity: venv
	@$(with_copy); \
	$(VENV)/bin/python $(UTILS)/seed-ansible-test.py; \
	cd $(COLL); set -x; \
	$(VENV)/bin/ansible-test sanity $(SANITY_ARGS)

lint: venv
	@$(with_copy); \
	cd $(COLL); set -x; \
	$(LINT_ENV) $(VENV)/bin/ansible-lint $(LINT_ARGS)

# The benchmark harness (see docs/performance.md), in a private network
# namespace like the kernel tests; results under benchmarks/results/. In
# `make test` it runs as QUICK=1 (tiny counts, no timing assertions) so that
# the harness itself is exercised on every change.
bench: venv
	@cd $(CURDIR) && $(UTILS)/netns-run.sh $(VENV)/bin/python benchmarks/run.py $(if $(filter 1,$(QUICK)),--quick,)

# Where the time goes: import times and pyinstrument profiles of a module run
# and of a CNI ADD (benchmarks/results/profile.txt).
profile: venv
	@cd $(CURDIR) && $(UTILS)/netns-run.sh $(VENV)/bin/python benchmarks/profile.py

# Runs every suite, even after a failure, then prints a summary; fails if any
# suite failed.
test: venv
	@skipdir=$$(mktemp -d); trap 'rm -rf "$$skipdir"' EXIT; \
	passed=0; failed=0; skipped=0; report=""; \
	for suite in $(TEST_SUITES); do \
		start=$$(date +%s); \
		if SUITE_SKIP_DIR=$$skipdir QUICK=1 $(MAKE) --no-print-directory $$suite; then \
			if [[ -e $$skipdir/$$suite ]]; then result=skipped; skipped=$$((skipped + 1)); \
			else result=passed; passed=$$((passed + 1)); fi; \
		else result=FAILED; failed=$$((failed + 1)); fi; \
		report+=$$(printf '  %-12s %-8s %4ss' $$suite $$result $$(($$(date +%s) - start)))$$'\n'; \
	done; \
	echo; echo "== test suites"; printf '%s' "$$report"; \
	if ((skipped)); then echo "suites: $$passed passed, $$failed failed, $$skipped skipped"; \
	else echo "suites: $$passed passed, $$failed failed"; fi; \
	((failed == 0))

# --- demo --------------------------------------------------------------------

# The demo: three simulated nodes on this machine (each its own network, mount
# and UTS namespace; a switch, a router and an external host, all namespaces),
# converged with site.yml and proven with verify.yml. The lab stays up for a
# look around (see docs/lab.md); `make demo-down` removes it.
LAB_PLAY = $(COLLECTIONS_ENV) ANSIBLE_NOCOLOR=1 $(VENV)/bin/ansible-playbook -i $(COLL)/inventories/lab

demo: venv collection
	@$(MAKE) -s _demo

_demo:
	$(LAB_PLAY) $(COLL)/playbooks/lab.yml

demo-down: venv collection
	$(LAB_PLAY) $(COLL)/playbooks/teardown.yml

# --- cleanup -----------------------------------------------------------------

clean:
	rm -rf $(BUILD) tests/output .pytest_cache

distclean: clean
	rm -rf $(VENV) $(VENV_PR07)
