"""The hooks differential against Tornado 6.6.1 (compat/hooks, `make hooks-diff`).

compat/hooks/program.py patches every hook agents and applications patch,
each way they do it, at each moment, and records what ran, with which Task
and context, and the response; it runs under Tornado (a venv of its own,
made here if missing: build/hooks-diff/venv-tornado, or the one
SQUALL_HOOKS_TORNADO names) and under this suite's interpreter, importing
``squall``. Every difference must be listed in tests/COMPAT.md with a
``<!-- hooks-diff: REGEX -->`` marker beside its reason.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "compat" / "hooks"


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hooks_run", HOOKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tornado_python() -> str:
    """Tornado 6.6.1's interpreter, its venv made if it is not there yet."""
    named = os.environ.get("SQUALL_HOOKS_TORNADO")
    venv = Path(named) if named else ROOT / "build" / "hooks-diff" / "venv-tornado"
    python = venv / "bin" / "python"
    if (venv / ".installed").exists():
        return str(python)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "tornado==6.6.1", "wrapt>=1.16"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"Tornado 6.6.1 could not be installed into {venv}: {exc}")
    (venv / ".installed").touch()
    return str(python)


def test_every_difference_from_tornado_in_the_hooks_is_listed() -> None:
    pytest.importorskip("wrapt")
    run = _runner()
    tornado = run.tornado_trace(_tornado_python(), None)
    squall = run.trace(sys.executable, "squall", run.BUILD / "squall-suite.json", None)
    assert len(squall) == len(tornado) > 1000
    listed, unknown = run.compare(tornado, squall, run.markers(run.COMPAT.read_text()))
    assert not unknown, "\n".join(f"{key}: {diff}" for key, diff in sorted(unknown.items()))
    # The markers are not a blanket: the at-once step's, at least, is met.
    assert listed


def test_the_comparison_sees_a_difference() -> None:
    # One hook less in a trace is a difference no marker lists.
    run = _runner()
    request = {
        "calls": ["wrap.prepare", "app.prepare"],
        "tasks": [0, 0],
        "context": ["-", "req"],
        "response": {"status": "200"},
    }
    case = "RequestHandler.prepare/wrapt/before-start/async"
    tornado = {case: {"requests": [request, request]}}
    squall = {case: {"requests": [dict(request, calls=["app.prepare", "app.prepare"]), request]}}
    listed, unknown = run.compare(tornado, squall, run.markers(run.COMPAT.read_text()))
    assert list(unknown) == [f"{case}:patched.calls"] and not listed


def test_the_summary_says_what_the_listed_differences_are() -> None:
    # The count alone (7,000 listed) reads as that many incompatibilities:
    # the summary names each kind, counted by the field that differs.
    run = _runner()
    case = "RequestHandler.prepare/wrapt/before-start/sync"
    keys = [
        f"{case}:patched.tasks@wrap.prepare",
        f"{case}:removed.tasks@app.get.resumed",
        f"{case}:patched.one_task",
        f"{case}:refused",
    ]
    assert run.kinds(keys) == (
        "2 the Task a hook ran in, 1 whether a request's hooks shared one Task, "
        "1 whether the patch was refused"
    )
