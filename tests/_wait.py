"""Waiting in tests without sleeping: check a condition once per loop turn."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the benchmarks that start brokers import this without pytest
    import pytest

# The hang guard: a bound that only turns a hang into a failure (never a
# measure of how fast something happened). gen_test's 5 s default is
# Tornado's, and a loaded machine (make test's stages side by side on two
# cores) took longer than that for tests whose waits are all on events.
HANG_GUARD = 30.0


async def until(condition: Callable[[], bool], limit: float = HANG_GUARD) -> None:
    """Yield to the loop until ``condition()`` holds; fail after ``limit``
    seconds (a hang guard: how soon it holds is no part of a test)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0)  # one loop turn, not a timed wait


async def until_answer(check: Callable[[], Awaitable[bool]], limit: float = HANG_GUARD) -> None:
    """Await ``check()`` once per loop turn until it answers True (a state
    only a broker or a clock holds: an expiry by TTL); fail after ``limit``
    seconds (a hang guard, as `until`'s)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await check():
        if loop.time() > end:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0)  # one loop turn, not a timed wait


def hang_guard_for_gen_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give `gen_test` the hang guard as its default limit (read when a test runs)."""
    given = os.environ.get("ASYNC_TEST_TIMEOUT", "")
    try:
        if float(given) >= HANG_GUARD:
            return
    except ValueError:
        pass
    monkeypatch.setenv("ASYNC_TEST_TIMEOUT", str(HANG_GUARD))


def waits_asked_by(module: str, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays that code of ``module`` (a module's ``__name__``) asks
    ``asyncio.sleep`` for, from now on: what a test of a retry loop checks
    instead of the time it took (a loaded machine makes the waits last
    longer, never makes the code ask for more)."""
    waits: list[float] = []
    sleep = asyncio.sleep

    def counted(delay: float, result: Any = None) -> Any:
        if sys._getframe(1).f_globals.get("__name__") == module:
            waits.append(delay)
        return sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", counted)
    return waits
