"""Waiting in tests without sleeping: check a condition once per loop turn."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest


async def until(condition: Callable[[], bool], limit: float = 2.0) -> None:
    """Yield to the loop until ``condition()`` holds; fail after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0)  # one loop turn, not a timed wait


async def until_answer(check: Callable[[], Awaitable[bool]], limit: float = 2.0) -> None:
    """Await ``check()`` once per loop turn until it answers True (a state
    only a broker or a clock holds: an expiry by TTL); fail after ``limit``
    seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await check():
        if loop.time() > end:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0)  # one loop turn, not a timed wait


# A hang guard for the tests that run real protocol stacks over sockets
# (HTTP/2, HTTP/3): gen_test's 5 s default is Tornado's, and a loaded
# machine (make test's stages side by side on two cores) took longer than
# that for tests whose waits are all on events. 30 s only ends a hang.
HANG_GUARD = 30.0


def hang_guard_for_gen_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give `gen_test` the hang guard as its default limit (read when a test runs)."""
    given = os.environ.get("ASYNC_TEST_TIMEOUT", "")
    try:
        if float(given) >= HANG_GUARD:
            return
    except ValueError:
        pass
    monkeypatch.setenv("ASYNC_TEST_TIMEOUT", str(HANG_GUARD))
