PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: test lint typecheck pytest coverage demo bench bench-callgrind callgrind bench-rss venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,speedups]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check squall tests benchmarks demos
	$(VENV)/bin/ruff format --check squall tests benchmarks demos

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict squall

# The chat demo's browser test drives Debian's chromium; install it when missing
# (it skips, saying why, where the package cannot be installed).
pytest: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed: the browser test will skip"
	command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null) || echo "nghttp2-client could not be installed: the h2load tests will skip"
	$(PY) -m coverage run -m pytest -W error $(PYTEST_FLAGS)
	$(PY) -m coverage report --fail-under=90

test: lint typecheck pytest

# Real Tornado applications' own test suites, on Tornado 6.6.1 and on Squall
# (compat/apps/apps.py lists them). Slow, so outside `make test`; venvs and
# results go to $SQUALL_APPS_CACHE (default ~/.cache/squall-apps). Examples:
#   make apps APPS_ARGS="--app terminado"
#   make apps APPS_ARGS="--app jupyter_server --squall-only -k login"
.PHONY: apps
APPS_ARGS ?=

apps:
	$(PYTHON) compat/apps/run.py $(APPS_ARGS)

demo: $(STAMP)
	$(PY) demos/run.py

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -r benchmarks/requirements.txt -e '.[speedups]'
	touch $(BENCH_STAMP)

# wrk generates the load; install it from Debian's packages when it is missing.
bench: $(BENCH_STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BENCH_VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)

# Instructions per request and per stage (callgrind, on a seeded varied
# request stream); valgrind comes from Debian's packages when missing.
bench-callgrind: $(BENCH_STAMP)
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	$(BENCH_VENV)/bin/python benchmarks/callgrind_hotpath.py $(BENCH_ARGS)

callgrind: bench-callgrind

# Server RSS per idle keep-alive connection (10,000 held).
bench-rss: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/idle_rss.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-bench build *.egg-info .coverage .mypy_cache .ruff_cache
