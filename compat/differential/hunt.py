"""What the differential's runners share: a Hypothesis property run as a
hunt, a run of generated examples, a server process started."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any, Optional

from hypothesis import HealthCheck, seed, settings


def hunt(prop: Callable[..., Any], examples: int, chosen: Optional[int] = None) -> Optional[str]:
    """Runs ``prop`` (a ``@given`` test) on ``examples`` inputs, from the
    seed ``chosen`` if given; returns None, or the message of the
    difference it found (its smallest input, as Hypothesis shrinks it)."""
    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )(prop)
    try:
        (seed(chosen)(test) if chosen is not None else test)()
    except AssertionError as exc:
        return str(exc)
    return None


def generated(examples: int, chosen: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A ``@given`` test run on ``examples`` inputs from the seed ``chosen``,
    generated only (no shrinking: the runner sorts what it finds itself)."""

    def apply(test: Callable[..., Any]) -> Callable[..., Any]:
        return seed(chosen)(
            settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=["generate"],
            )(test)
        )

    return apply


def launch(args: list[str], what: str) -> tuple[subprocess.Popen[str], int]:
    """Starts a server process that prints its port first; the process and the port."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit(f"{what} did not start (said {line!r})")
    return proc, int(line)
