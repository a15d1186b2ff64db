"""No reference to the project's private tracker in what a reader sees.

"Issue 77" means nothing to someone reading the README, the docs or the
code (the package, its tests, the speedups, the compatibility harnesses,
the benchmarks, the fuzzers): the reason it stood for belongs in the
sentence itself. The CHANGELOG keeps its own history and is not read here;
tests/ may name an issue only as test data (this file's own examples, the
one file of tests/ left out). Generated records and fetched files are left
out too: they are not ours to word.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# "issue 77", "Issue 22's", "issues 22 and 36", "issue #5".
REFERENCE = re.compile(r"\bissues? #?[0-9]", re.IGNORECASE)
# What a reader (of the README, the docs site, the code) reads: every
# top-level directory and file git lists but the CHANGELOG, the licence and
# git's own settings.
READ = (
    "README.md",
    "docs",
    "squall",
    "Makefile",
    "demos",
    "tests",
    "speedups",
    "compat",
    "benchmarks",
    "fuzz",
    ".ci",
    "_squall_pytest_plugin.py",
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
)
# Generated or fetched files that are not ours to word: the docs build,
# npm's packages and lock files, the benchmarks' recorded runs, Tornado's
# probed surface, the fuzzers' saved inputs; and this file, whose examples
# are test data.
LEFT_OUT = (
    "docs/_build/",
    "/node_modules/",
    "/package-lock.json",
    "/benchmarks/results/",
    "/compat/surface/tornado-",
    "/fuzz/regressions/",
    "/tests/test_no_tracker_references.py",
)

# What git lists of a checkout: the suite run against an installed squall
# (make test-compiled, make dist) runs from a copy without squall/ and
# without git, and the pure suite has read the checkout.
pytestmark = pytest.mark.skipif(
    not (ROOT / "squall").is_dir() or not (ROOT / ".git").exists(),
    reason="reads a checkout's files (the pure suite runs it); this is a copy beside an install",
)


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *READ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    files = []
    for name in listed:
        path = ROOT / name
        if any(part in f"/{name}" for part in LEFT_OUT) or not path.is_file():
            continue
        if path.suffix in {".png", ".jpg", ".so", ".ico", ".woff", ".woff2", ".gz", ".mo"}:
            continue
        files.append(path)
    return files


def references(text: str) -> list[str]:
    return [match.group(0) for match in REFERENCE.finditer(text)]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("as issue 77 showed", ["issue 7"]),
        ("Issue 22's handshake", ["Issue 2"]),
        ("issues 22 and 36", ["issues 2"]),
        ("see issue #5", ["issue #5"]),
        ("https://github.com/django/asgiref/issues/280", []),
        ("an issue with 3 workers", []),
    ],
)
def test_the_pattern_finds_a_reference(text: str, found: list[str]) -> None:
    assert references(text) == found


def test_the_files_read_are_found() -> None:
    names = {str(path.relative_to(ROOT)) for path in tracked_text_files()}
    assert "README.md" in names and "squall/__init__.py" in names
    assert any(name.startswith("docs/guide/") for name in names)
    assert {"tests/COMPAT.md", "speedups/squall_build.py", "compat/surface/known.json"} <= names
    assert "tests/test_no_tracker_references.py" not in names
    assert not any(name.startswith("benchmarks/results/") for name in names)


def test_no_tracker_reference_in_what_readers_read() -> None:
    found = []
    for path in tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if REFERENCE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "say the reason, not the issue's number:\n" + "\n".join(found)
