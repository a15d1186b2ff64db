PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: docs test test-compiled lint typecheck pytest coverage demo bench bench-callgrind callgrind bench-rss venv clean test-pythons

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,prebuilt]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check squall tests benchmarks demos speedups docs
	$(VENV)/bin/ruff format --check squall tests benchmarks demos speedups docs

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict squall

# Tests drive Debian's chromium (the demos' browser tests), h2load (HTTP/2),
# nginx (squall run behind a proxy), redis-server (squall.pubsub), ss
# (iproute2: listen backlogs), and mariadb-server and postgresql (the
# forum's tests on each database); the
# missing ones are installed in one apt run. Where they cannot be installed, their tests skip, saying why.
pytest: $(STAMP)
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v ss >/dev/null || [ -x /usr/sbin/ss ] || missing="$$missing iproute2"; \
	[ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null || missing="$$missing mariadb-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y -qq $$missing >/dev/null) || echo "could not install$$missing: their tests will skip"; \
	fi
	$(PY) -m coverage run -m pytest -W error $(PYTEST_FLAGS)
	$(PY) -m coverage report --fail-under=90

test: lint typecheck docs pytest

# The documentation site (docs/, Sphinx): API reference generated from the
# docstrings, the `squall run` reference from its argument parser; warnings
# are errors. Output in docs/_build/html.
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "== docs: $$(find docs/_build/html -name '*.html' | wc -l) pages in docs/_build/html"

# The whole suite against the compiled variant: squall-speedups (speedups/:
# squall._h1, squall._ws and httpserver._protocol compiled by mypyc, and a C
# head pass) rebuilt from the current sources into its own venv, then pytest with SQUALL_EXPECT_COMPILED=1 (a test fails
# unless the compiled modules are the ones loaded). Without coverage.
COMPILED_VENV := .venv-compiled

$(COMPILED_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(COMPILED_VENV)
	$(COMPILED_VENV)/bin/python -m pip install -q --upgrade pip
	$(COMPILED_VENV)/bin/python -m pip install -q -e '.[dev,prebuilt]'
	touch $@

test-compiled: $(COMPILED_VENV)/.installed
	start=$$(date +%s); $(COMPILED_VENV)/bin/python -m pip install -q --force-reinstall --no-deps ./speedups; \
	  echo "== squall-speedups built in $$(( $$(date +%s) - start ))s"
	$(COMPILED_VENV)/bin/python -c 'import squall.speedups as s; print("== compiled:", s.compiled, s.reason or sorted(s.compiled_modules()))'
	SQUALL_EXPECT_COMPILED=1 $(COMPILED_VENV)/bin/python -m pytest -W error -p no:cacheprovider $(PYTEST_FLAGS)

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

# The forum demo: one process on SQLite (`make demo`), or two `squall run`
# workers behind nginx sharing live updates through Redis (`make
# demo-cluster`; redis-server and nginx come from Debian's packages).
demo: $(STAMP)
	$(PY) demos/run.py

demo-cluster: $(STAMP)
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi
	$(PY) demos/forum/cluster.py $(CLUSTER_ARGS)

.PHONY: demo-cluster

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -r benchmarks/requirements.txt -e '.[prebuilt]'
	touch $(BENCH_STAMP)

# The "squall" (speedups) contender runs the compiled modules: squall-speedups
# is rebuilt when any source it compiles changes (a stale build would be
# ignored by squall, and the contender would quietly run pure Python). The
# list is read from speedups/setup.py (COMPILED_PACKAGES, COMPILED_MODULES and
# C_MODULES' pure modules), so a module added there is followed here.
BENCH_SPEEDUPS := $(BENCH_VENV)/.speedups
SPEEDUPS_SOURCES := $(shell $(PYTHON) speedups/sources.py 2>/dev/null)

$(BENCH_SPEEDUPS): $(BENCH_STAMP) speedups/setup.py $(wildcard speedups/c/*.c) $(SPEEDUPS_SOURCES)
	$(BENCH_VENV)/bin/python -m pip install -q --force-reinstall --no-deps ./speedups
	$(BENCH_VENV)/bin/python -c 'import squall.speedups as s; print("== squall-speedups compiled:", s.compiled, s.reason)'
	touch $@

# wrk generates the load; install it from Debian's packages when it is missing.
bench: $(BENCH_SPEEDUPS)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BENCH_VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)

# Instructions per request and per stage (callgrind, on a seeded varied
# request stream); valgrind comes from Debian's packages when missing.
bench-callgrind: $(BENCH_SPEEDUPS)
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	$(BENCH_VENV)/bin/python benchmarks/callgrind_hotpath.py $(BENCH_ARGS)

callgrind: bench-callgrind

# Server RSS per idle keep-alive connection (10,000 held).
bench-rss: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/idle_rss.py $(BENCH_ARGS)

# Many long-lived connections (issue 22): WebSocket subscribers, broadcast,
# long polls and a connection storm, Squall against aiohttp, Tornado and a
# bare uvloop floor, one table of medians (benchmarks/c10k/run.py).
bench-c10k: $(BENCH_SPEEDUPS)
	$(BENCH_VENV)/bin/python benchmarks/c10k/run.py $(BENCH_ARGS)

.PHONY: bench-c10k

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

differential: $(DIFF_VENV)/.installed
	$(DIFF_VENV)/bin/python compat/differential/run.py --grow-seconds $(GROW_SECONDS) --tornado-python $(DIFF_VENV)/bin/python

.venv-fuzz/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-fuzz
	.venv-fuzz/bin/python -m pip install -q -e '.[prebuilt]' atheris
	touch $@

fuzz: .venv-fuzz/.installed
	.venv-fuzz/bin/python fuzz/run.py --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

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

.PHONY: differential fuzz autobahn surface

# h2spec --strict (HTTP/2 conformance) against HTTPServer(http2=True), h2c
# and TLS; the same module runs in `make test`, skipping where h2spec cannot
# be built (it is found as $H2SPEC, on PATH, or ../shared/tools/h2spec).
h2spec: $(STAMP)
	$(PY) -m pytest -W error -p no:cacheprovider -s -v tests/h2/test_h2spec.py

.PHONY: h2spec

clean:
	rm -rf $(VENV) .venv-bench .venv-compiled build speedups/build *.egg-info .coverage .mypy_cache .ruff_cache
