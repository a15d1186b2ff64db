"""Read-side flow control: the one place a server's driver pauses and
resumes reading from its transport.

A driver stops reading when taking more input would only pile up work it
cannot pass on: the HTTP/1.1 driver while a delegate's awaitable is pending
(a busy delegate), while pipelined requests wait for their responses to
drain, or while the parser holds more pipelined bytes than it should; both
drivers while the transport is over its write high-water mark (a client
that does not read must not make us produce more). The drivers decide *when*
(each has its own reasons); `ReadFlow` remembers *whether* reading is paused
by us, so that a pause is never doubled, a resume never reaches a transport
we did not pause, and nothing reaches a transport the driver has let go
(lost, or handed to another protocol). HTTP/2 slows a busy stream by its
window instead (``_h2protocol``), not by reading.

Both drivers also wait on a delegate's awaitable the same way here
(`wait_on`) and sort what it ended with (`sort_outcome`): the request's
fault (`.HTTPInputError`, answered 400) or the application's (logged, and
the exchange aborted).

Compiled with the HTTP/1.1 driver (speedups/squall_build.py): its checks
are on the request path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Optional

from squall.httputil import HTTPInputError

__all__ = ["APP_ERROR", "BAD_REQUEST", "FINISHED", "ReadFlow", "sort_outcome", "wait_on"]

app_log = logging.getLogger("squall.application")

# What a delegate's awaitable ended with (`sort_outcome`).
FINISHED: Final = 0  # it finished: hand on the next event
BAD_REQUEST: Final = 1  # HTTPInputError: the request is at fault, answered 400
APP_ERROR: Final = 2  # anything else, cancelled included: logged; the exchange is aborted


def wait_on(
    awaitable: Awaitable[None],
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[asyncio.Future[None]], None],
) -> None:
    """Calls ``callback(future)`` once a delegate's ``awaitable`` is done
    (a coroutine gets a Task; a future is waited on as it is)."""
    if isinstance(awaitable, asyncio.Future):
        future: asyncio.Future[None] = awaitable
    else:
        future = asyncio.ensure_future(awaitable, loop=loop)
    future.add_done_callback(callback)


def sort_outcome(future: asyncio.Future[None]) -> tuple[int, str]:
    """Sorts what a delegate's awaitable ended with: `FINISHED`, `BAD_REQUEST`
    (with the message for the 400) or `APP_ERROR` (logged here). Call it only
    while the exchange is still served: an error is logged once, by it."""
    if future.cancelled():
        exc: Optional[BaseException] = asyncio.CancelledError()
    else:
        exc = future.exception()
    if exc is None:
        return FINISHED, ""
    if isinstance(exc, HTTPInputError):
        return BAD_REQUEST, str(exc)
    app_log.error("Uncaught exception", exc_info=exc)
    return APP_ERROR, ""


class ReadFlow:
    """Whether we paused a transport's reading; pauses and resumes it once each."""

    __slots__ = ("transport", "paused")

    def __init__(self) -> None:
        #: The transport read from; ``None`` before it is known and once the
        #: driver has let it go (`release`).
        self.transport: Optional[asyncio.Transport] = None
        #: Reading is paused by us.
        self.paused = False

    def pause(self) -> None:
        """Stop reading (nothing if already paused, or no transport)."""
        transport = self.transport
        if not self.paused and transport is not None:
            self.paused = True
            transport.pause_reading()

    def resume(self) -> None:
        """Read again, if we paused reading (the driver checks its reasons first)."""
        if self.paused:
            self.paused = False
            transport = self.transport
            if transport is not None:
                transport.resume_reading()

    def release(self) -> bool:
        """The driver lets the transport go (lost, or handed to another
        protocol): no more pauses or resumes reach it. Returns whether reading
        was paused by us (a new owner resumes it)."""
        paused = self.paused
        self.paused = False
        self.transport = None
        return paused
