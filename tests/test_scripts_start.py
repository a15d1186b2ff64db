"""Every script with options (benchmarks, the compatibility harnesses, the
fuzzers, the demos) starts when run as a file, the way the Makefile and
the guides run it (``python benchmarks/chaos.py --help``, from another
directory): it finds the checkout's own helpers it imports (``tests/``,
``benchmarks/``, ``compat/``). The tests that import a script do so with
the checkout on ``sys.path`` already, so a helper gaining an import of
``tests`` can break ``make chaos`` while every test of the checker passes.

A script passes when it prints its usage, or refuses with a message of its
own (a script that needs a newer Python), or lacks a third-party package
this venv does not hold (the benchmark venvs install their peers'). A
traceback for anything else, a module of the checkout's first of all, fails.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._wait import HANG_GUARD

ROOT = Path(__file__).resolve().parent.parent
PLACES = ("benchmarks", "compat", "fuzz", "demos")
MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


def scripts() -> list[Path]:
    found = []
    paths = [
        path
        for place in PLACES
        for pattern in ("*.py", "*/*.py")
        for path in (ROOT / place).glob(pattern)
    ]
    for path in sorted(paths):
        text = path.read_text()
        if "argparse.ArgumentParser" in text and '__name__ == "__main__"' in text:
            found.append(path)
    return found


def in_checkout(name: str) -> bool:
    """Whether ``name`` (a top-level module) is one of the checkout's own: a
    package or module at its root or in its tests, scripts or demos."""
    top = name.split(".")[0]
    folders = [ROOT]
    for place in ("tests", *PLACES):
        folders.append(ROOT / place)
        folders += [
            p for p in (ROOT / place).rglob("*") if p.is_dir() and "node_modules" not in p.parts
        ]
    return any((f / top / "__init__.py").is_file() or (f / f"{top}.py").is_file() for f in folders)


def test_the_scripts_are_found() -> None:
    names = {str(path.relative_to(ROOT)) for path in scripts()}
    # The checker the pubsub guide tells users to run, the headline run, a
    # harness against Tornado and the cluster demo.
    assert {
        "benchmarks/chaos.py",
        "benchmarks/run.py",
        "compat/hooks/run.py",
        "demos/forum/many.py",
    } <= names
    assert len(names) > 20


@pytest.mark.parametrize("script", scripts(), ids=lambda path: str(path.relative_to(ROOT)))
def test_a_script_starts_from_another_directory(script: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    if done.returncode == 0:
        assert "usage:" in done.stdout
        return
    missing = MISSING.search(done.stderr)
    if missing:
        name = missing.group(1)
        assert not in_checkout(name), (
            f"{script.name} cannot import the checkout's {name}:\n{done.stderr}"
        )
        assert importlib.util.find_spec(name.split(".")[0]) is None, done.stderr
        pytest.skip(f"{name} is not installed in this venv")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() or done.stdout.strip(), f"{script.name} failed saying nothing"
