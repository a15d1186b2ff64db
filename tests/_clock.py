"""A loop clock the test moves: timeouts tested by advancing time, not by waiting for it.

The server reads time from its loop (``loop.time()``: idle and send
timeouts, sweeps, drain deadlines) and schedules by it (``call_later``,
``call_at``). `LoopClock` shadows the running asyncio loop's ``time`` with
the real clock plus an offset the test adds to, so a test gives timeouts
far longer than any stall of a loaded machine and then steps past them:
whether a timeout fires no longer depends on how fast the machine is.
Real time still flows underneath. The test's own deadline (``gen_test``'s
timeout) is on the same clock: give it the time the test advances on top.

asyncio's loops only: uvloop's clock is its own (C), and cannot be moved.
"""

from __future__ import annotations

import asyncio
from typing import Any


class LoopClock:
    """The running loop's clock, moved by `advance`; `close` puts it back.

    Args:
        loop: an asyncio (not uvloop) event loop.
        io_loop: its IOLoop, whose ``time()`` (the wall clock, which
            ``call_at`` deadlines and the WebSocket ping wheel read) moves
            with it too; None leaves it alone.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, io_loop: Any = None) -> None:
        self.loop: Any = loop
        self.io_loop = io_loop
        self.offset = 0.0
        real = type(loop).time

        def time() -> float:
            return float(real(loop)) + self.offset

        # The instance attribute shadows the method: asyncio's own
        # scheduling calls self.time(), and so does every reader of it.
        self.loop.time = time
        if io_loop is not None:
            wall = type(io_loop).time

            def io_time() -> float:
                return float(wall(io_loop)) + self.offset

            io_loop.time = io_time

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, then let the timers now due run."""
        self.offset += seconds
        # The first turn moves the due timers to the ready queue and runs
        # them; the second runs what their callbacks scheduled with call_soon.
        for _ in range(3):
            await asyncio.sleep(0)

    def close(self) -> None:
        del self.loop.time
        if self.io_loop is not None:
            del self.io_loop.time
