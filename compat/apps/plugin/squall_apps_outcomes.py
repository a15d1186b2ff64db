"""A pytest plugin that writes one JSON line per test phase, as it happens.

Loaded by compat/apps/run.py with ``-p squall_apps_outcomes`` into an app's own
test run. The harness reads the lines back instead of a junit file because a
suite killed at its time limit writes no junit file at all, while these lines
are on disk up to the last test that ran.
"""

from __future__ import annotations

import json
import os
from typing import Any

_PATH_VAR = "SQUALL_APPS_OUTCOMES"
_LONGREPR_LIMIT = 30_000


def _crash_message(report: Any) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2])
    text = str(longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _captured(report: Any) -> str:
    """What the test logged and printed, less DEBUG/INFO log lines: server-side
    tracebacks ("Uncaught exception ...") are usually the cause of a client's 500."""
    parts = []
    for title, text in getattr(report, "sections", []):
        kept = [line for line in text.splitlines() if not line.startswith(("DEBUG ", "INFO "))]
        if kept:
            parts.append(f"--- {title} ---\n" + "\n".join(kept))
    return "\n".join(parts)[-_LONGREPR_LIMIT:]


def pytest_runtest_logreport(report: Any) -> None:
    path = os.environ.get(_PATH_VAR)
    if not path:
        return
    record = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": round(float(getattr(report, "duration", 0.0)), 3),
        "xfail": bool(getattr(report, "wasxfail", None) is not None),
    }
    if report.failed or report.skipped:
        record["message"] = _crash_message(report)
    if report.failed:
        record["longrepr"] = str(report.longrepr)[-_LONGREPR_LIMIT:]
        record["captured"] = _captured(report)
    # One write per line, appended and flushed, so that a killed run leaves
    # every finished phase on disk.
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def pytest_collection_finish(session: Any) -> None:
    # The full list lets the harness tell "not run" (the run ended early) from "not collected".
    path = os.environ.get(_PATH_VAR)
    if not path:
        return
    record = {"collected": [item.nodeid for item in session.items]}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def pytest_collectreport(report: Any) -> None:
    # A module that fails to import is a lost set of tests: record it too.
    path = os.environ.get(_PATH_VAR)
    if not path or not report.failed:
        return
    record = {
        "nodeid": report.nodeid or "<collection>",
        "when": "collect",
        "outcome": "failed",
        "duration": 0.0,
        "xfail": False,
        "message": _crash_message(report),
        "longrepr": str(report.longrepr)[-_LONGREPR_LIMIT:],
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
