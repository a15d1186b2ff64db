"""The pipe from a worker to its supervisor: ready, heartbeats, draining, or why it failed.

One byte per event, so that the supervisor reads them in any grouping:
``R`` the worker serves; ``.`` its event loop turned (a heartbeat); ``D``
it started draining; ``F`` then a kind (``U`` for a bad target or option,
``S`` for any other start-up failure) and the message, up to the end of
the pipe. The worker's end is non-blocking: a supervisor that stopped
reading must not stall the worker's loop (a lost heartbeat is harmless, the
supervisor reads continuously).
"""

from __future__ import annotations

import os
import time
from typing import Optional

__all__ = ["LinkReader", "WorkerLink"]

READY = b"R"
BEAT = b"."
DRAINING = b"D"
FAILED = b"F"
USAGE = "U"
STARTUP = "S"


class WorkerLink:
    """The worker's end: ``fd`` is the write end of the pipe."""

    def __init__(self, fd: int) -> None:
        self.fd: Optional[int] = fd
        self.sent_ready = False
        os.set_blocking(fd, False)

    def _send(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, data)
        except BlockingIOError:
            pass
        except OSError:
            self.close()

    def ready(self) -> None:
        self.sent_ready = True
        self._send(READY)

    def beat(self) -> None:
        self._send(BEAT)

    def draining(self) -> None:
        self._send(DRAINING)

    def fail(self, kind: str, message: str) -> None:
        """Report a start-up failure and close the pipe."""
        if self.fd is None:
            return
        data = FAILED + kind.encode() + message.encode("utf-8", "replace")
        os.set_blocking(self.fd, True)
        try:
            os.write(self.fd, data)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class LinkReader:
    """The supervisor's end: `feed` what was read, then look at the state."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False
        self.last_beat = time.monotonic()
        self.failure: Optional[tuple[str, str]] = None
        self._failed = False
        self._text = bytearray()

    def feed(self, data: bytes) -> None:
        if self._failed:
            self._text += data
            return
        at = data.find(FAILED)
        if at >= 0:
            self._failed = True
            self._text += data[at + 1 :]
            data = data[:at]
        if BEAT in data:
            self.last_beat = time.monotonic()
        if READY in data:
            self.ready = True
            self.last_beat = time.monotonic()
        if DRAINING in data:
            self.draining = True

    def closed(self) -> None:
        """The pipe ended: settle the failure message, if one came."""
        if self._failed:
            text = self._text.decode("utf-8", "replace")
            kind, message = text[:1], text[1:]
            self.failure = (kind or STARTUP, message.strip())
