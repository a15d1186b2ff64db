"""What concurrency.py and streams.py share: a Hypothesis property run as a hunt."""

from __future__ import annotations

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
