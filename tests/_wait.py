"""Waiting in tests without sleeping: check a condition once per loop turn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], limit: float = 2.0) -> None:
    """Yield to the loop until ``condition()`` holds; fail after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0)  # one loop turn, not a timed wait
