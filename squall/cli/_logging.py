"""Logging as ``squall run`` sets it up: one line per record on stderr.

The access log gets its own handler, which writes through a block buffer
flushed twice a second (and at exit) rather than once per line: at tens of
thousands of requests a second, a write system call per request is a large
share of the work. Timestamps are formatted once per second.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from typing import Optional, TextIO

__all__ = ["BufferedAccessHandler", "flush_access_log", "setup_logging"]

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}

_FORMAT = "[%(asctime)s] [%(process)d] %(levelname)s %(name)s: %(message)s"

# Seconds between flushes of the access log's buffer.
FLUSH_INTERVAL = 0.5


class _Formatter(logging.Formatter):
    """`logging.Formatter` with the date part of the time cached per second."""

    def __init__(self) -> None:
        super().__init__(_FORMAT)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._text},{int(record.msecs):03d}"


class BufferedAccessHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records to a block-buffered duplicate of stderr.

    `flush` does nothing; `flush_now` empties the buffer (the worker calls
    it every `FLUSH_INTERVAL` seconds and when it stops; `close` does too).
    """

    def __init__(self) -> None:
        self._own = True
        try:
            fd = os.dup(sys.stderr.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            # stderr is not a file (captured, replaced): write to it as it is.
            self._own = False
            stream: TextIO = sys.stderr
        else:
            stream = open(fd, "w", buffering=1 << 16, encoding="utf-8", errors="replace")  # noqa: SIM115
        super().__init__(stream)

    def flush(self) -> None:
        pass

    def flush_now(self) -> None:
        """Write out what is buffered."""
        with self.lock:  # type: ignore[union-attr]
            stream = self.stream
            if stream is not None and not stream.closed:
                stream.flush()

    def close(self) -> None:
        self.flush_now()
        stream = self.stream
        super().close()
        if self._own and stream is not None and not stream.closed:
            stream.close()


def flush_access_log() -> None:
    """Flush the buffered access-log handlers (see `BufferedAccessHandler`)."""
    for handler in logging.getLogger("squall.access").handlers:
        if isinstance(handler, BufferedAccessHandler):
            handler.flush_now()


def setup_logging(level: str) -> None:
    """Log at ``level`` to stderr; the access log through a buffer."""
    formatter = _Formatter()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    access = logging.getLogger("squall.access")
    for old in access.handlers[:]:
        if isinstance(old, BufferedAccessHandler):
            access.removeHandler(old)
            old.close()
    buffered = BufferedAccessHandler()
    buffered.setFormatter(formatter)
    access.addHandler(buffered)
    access.propagate = False
