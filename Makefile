PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: test lint typecheck pytest coverage demo bench venv clean

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

pytest: $(STAMP)
	$(PY) -m coverage run -m pytest -W error $(PYTEST_FLAGS)
	$(PY) -m coverage report --fail-under=85

test: lint typecheck pytest

demo: $(STAMP)
	$(PY) demos/run.py

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .venv-bench build *.egg-info .coverage .mypy_cache .ruff_cache
