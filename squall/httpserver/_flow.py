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

Compiled with the HTTP/1.1 driver (speedups/squall_build.py): its checks
are on the request path.
"""

from __future__ import annotations

import asyncio
from typing import Optional

__all__ = ["ReadFlow"]


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
