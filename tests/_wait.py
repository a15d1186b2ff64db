"""Waiting in tests without sleeping: check a condition once per loop turn."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


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
