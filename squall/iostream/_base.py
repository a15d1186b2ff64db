"""`BaseIOStream`: buffered, Future-returning reads and writes over a non-blocking fd.

How it works:

* The stream registers its fd with the `IOLoop` (``add_handler`` /
  ``update_handler``) and keeps in ``_state`` the event mask it asked for.
  Interest in READ is kept after a read completes, so a request/response
  connection does not toggle its registration for every message; if data
  then arrives with no read pending, one chunk is taken into the buffer and
  the interest is dropped (that is the flow control: nothing more is read
  until someone asks).
* Incoming bytes live in one ``bytearray`` with a read position; consumed
  bytes are cut off lazily, so consuming is amortised O(1) per byte.
* Outgoing bytes live in a `_StreamBuffer`: small writes are joined, large
  ones are queued by reference. Each ``write()`` future remembers the total
  byte count at which it completes.
* Only the user-facing calls create Futures; the internal steps are plain
  method calls driven by the IOLoop's events.
"""

from __future__ import annotations

import collections
import logging
import re
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, Optional, Union

from squall.concurrent import Future
from squall.ioloop import IOLoop
from squall.iostream._buffer import _StreamBuffer
from squall.iostream._errors import (
    StreamBufferFullError,
    StreamClosedError,
    UnsatisfiableReadError,
    is_connreset,
)

__all__ = ["BaseIOStream"]

gen_log = logging.getLogger("squall.general")

_ExcInfo = Union[
    None,
    bool,
    BaseException,
    tuple[Optional[type[BaseException]], Optional[BaseException], Optional[types.TracebackType]],
]

_READ = IOLoop.READ
_WRITE = IOLoop.WRITE
_ERROR = IOLoop.ERROR

# What the pending read is waiting for.
_BYTES = 1
_UNTIL = 2
_REGEX = 3
_CLOSE = 4
_INTO = 5

_DEFAULT_MAX_BUFFER_SIZE = 100 * 1024 * 1024
_DEFAULT_READ_CHUNK_SIZE = 64 * 1024
# Consumed bytes at the front of the read buffer are cut off once there are
# this many and they make up at least half of it.
_COMPACT_THRESHOLD = 64 * 1024

# Reads land in a per-thread scratch buffer and are appended to the stream's
# buffer from there: no allocation per read, and idle streams hold no chunk.
_scratch = threading.local()


def _scratch_view(size: int) -> memoryview:
    buf: Optional[bytearray] = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < size:
        buf = bytearray(max(size, _DEFAULT_READ_CHUNK_SIZE))
        _scratch.buf = buf
    return memoryview(buf)[:size]


def _mark_retrieved(future: Future[Any]) -> None:
    # A closed stream fails every pending Future; callers that never await
    # them (fire-and-forget writes) must not get "exception never retrieved".
    if not future.cancelled():
        future.exception()


class BaseIOStream:
    """Reads and writes on a non-blocking file or socket, returning Futures.

    Every read and write method returns a Future. When the stream closes,
    every pending Future fails with `StreamClosedError`; the cause of the
    close, if it was an error, is in ``error`` and in the exception's
    ``real_error``.

    Subclasses implement `fileno`, `close_fd`, `read_from_fd`,
    `write_to_fd` and optionally `get_fd_error`.

    Args:
        max_buffer_size: most bytes to hold unread; default 100 MB.
        read_chunk_size: most bytes to read from the fd at once; default 64 KB.
        max_write_buffer_size: most bytes to hold unsent; default unlimited.
    """

    __slots__ = (
        "io_loop",
        "max_buffer_size",
        "read_chunk_size",
        "max_write_buffer_size",
        "error",
        "_rbuf",
        "_rpos",
        "_read_future",
        "_read_kind",
        "_read_bytes",
        "_read_partial",
        "_read_delimiter",
        "_read_regex",
        "_read_max_bytes",
        "_read_scanned",
        "_read_into",
        "_read_into_filled",
        "_write_buffer",
        "_write_futures",
        "_total_queued",
        "_total_written",
        "_close_callback",
        "_connect_future",
        "_connecting",
        "_state",
        "_closed",
        "_drained",
        "_aloop",
        "__dict__",
        "__weakref__",
    )

    # Whether a read or write that moves fewer bytes than offered shows that
    # the fd is drained (or full). True for sockets and pipes; not for TLS,
    # where decrypted bytes can wait inside the TLS object.
    _short_io_means_blocked = False

    def __init__(
        self,
        max_buffer_size: Optional[int] = None,
        read_chunk_size: Optional[int] = None,
        max_write_buffer_size: Optional[int] = None,
    ) -> None:
        self.io_loop = IOLoop.current()
        self.max_buffer_size: int = max_buffer_size or _DEFAULT_MAX_BUFFER_SIZE
        # A chunk never exceeds what the buffer may hold.
        self.read_chunk_size: int = min(
            read_chunk_size or _DEFAULT_READ_CHUNK_SIZE, self.max_buffer_size
        )
        self.max_write_buffer_size: Optional[int] = max_write_buffer_size
        self.error: Optional[BaseException] = None
        self._rbuf = bytearray()
        self._rpos = 0
        self._read_future: Optional[Future[Any]] = None
        self._read_kind = 0
        self._read_bytes = 0
        self._read_partial = False
        self._read_delimiter = b""
        self._read_regex: Optional[re.Pattern[bytes]] = None
        self._read_max_bytes: Optional[int] = None
        # How much of the buffer a delimiter or regex search has covered.
        self._read_scanned = 0
        self._read_into: Optional[memoryview] = None
        self._read_into_filled = 0
        self._write_buffer = _StreamBuffer()
        self._write_futures: collections.deque[tuple[int, Future[None]]] = collections.deque()
        self._total_queued = 0
        self._total_written = 0
        self._close_callback: Optional[Callable[[], None]] = None
        self._connect_future: Optional[Future[Any]] = None
        self._connecting = False
        self._state: Optional[int] = None
        self._closed = False
        # True once a read found nothing to read and no READ event came since.
        self._drained = False
        self._aloop: Any = getattr(self.io_loop, "asyncio_loop", None)

    # -- methods for subclasses ---------------------------------------------------------

    def fileno(self) -> Any:
        """Return the file descriptor (or an object with ``fileno()``) of the stream."""
        raise NotImplementedError()

    def close_fd(self) -> None:
        """Close the underlying file descriptor."""
        raise NotImplementedError()

    def write_to_fd(self, data: memoryview) -> int:
        """Write ``data`` to the fd without blocking; return how many bytes went out.

        Returns 0 (or raises `BlockingIOError`) when nothing can be written now.
        """
        raise NotImplementedError()

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        """Read into ``buf`` without blocking.

        Returns:
            the number of bytes read, 0 at end of file, or None if nothing
            can be read now.
        """
        raise NotImplementedError()

    def get_fd_error(self) -> Optional[Exception]:
        """Return the error pending on the fd, if any (for example a failed connect)."""
        return None

    # -- reading ------------------------------------------------------------------------

    def read_until_regex(self, regex: bytes, max_bytes: Optional[int] = None) -> Future[bytes]:
        """Read until ``regex`` matches; resolve with the data up to the end of the match.

        Args:
            regex: the pattern, as bytes.
            max_bytes: if the match does not end within this many bytes, the
                stream is closed (logged at INFO) and the read fails.
        """
        compiled = re.compile(regex)
        future = self._start_read(_REGEX)
        self._read_regex = compiled
        self._read_max_bytes = max_bytes
        return self._run_delimited_read(future)

    def read_until(self, delimiter: bytes, max_bytes: Optional[int] = None) -> Future[bytes]:
        """Read until ``delimiter``; resolve with the data including it.

        Args:
            delimiter: the bytes to look for.
            max_bytes: if the delimiter does not end within this many bytes,
                the stream is closed (logged at INFO) and the read fails.
        """
        if not delimiter:
            raise ValueError("read_until needs a non-empty delimiter")
        future = self._start_read(_UNTIL)
        self._read_delimiter = delimiter
        self._read_max_bytes = max_bytes
        return self._run_delimited_read(future)

    def _run_delimited_read(self, future: Future[bytes]) -> Future[bytes]:
        self._read_scanned = 0
        try:
            self._try_inline_read()
        except UnsatisfiableReadError as e:
            # Reported through the Future, like the same failure found later.
            self._close_unsatisfiable(e)
        return future

    def read_bytes(self, num_bytes: int, partial: bool = False) -> Future[bytes]:
        """Read ``num_bytes`` bytes.

        Args:
            num_bytes: how many bytes to read.
            partial: resolve as soon as any bytes are available (at most
                ``num_bytes``) instead of waiting for all of them.
        """
        if not isinstance(num_bytes, int) or num_bytes < 0:
            raise ValueError(f"num_bytes must be a non-negative int, not {num_bytes!r}")
        future = self._start_read(_BYTES)
        self._read_bytes = num_bytes
        self._read_partial = partial
        self._try_inline_read()
        return future

    def read_into(self, buf: bytearray, partial: bool = False) -> Future[int]:
        """Read into ``buf`` until it is full; resolve with the number of bytes read.

        ``buf`` must not be touched until the Future resolves.

        Args:
            buf: a writable buffer (``bytearray``, writable ``memoryview``, ...).
            partial: resolve as soon as any bytes have been read.
        """
        view = memoryview(buf)
        if view.format != "B" or view.ndim != 1:
            flat = view.cast("B")
            view.release()
            view = flat
        try:
            future = self._start_read(_INTO)
        except BaseException:
            view.release()
            raise
        self._read_into = view
        self._read_partial = partial
        # Bytes already buffered go into the caller's buffer at once.
        available = len(self._rbuf) - self._rpos
        if available:
            take = min(available, len(view))
            start = self._rpos
            with memoryview(self._rbuf) as source:
                view[:take] = source[start : start + take]
            self._consume_raw(take)
            self._read_into_filled = take
        else:
            self._read_into_filled = 0
        self._try_inline_read()
        return future

    def read_until_close(self) -> Future[bytes]:
        """Read everything until the stream closes; resolve with all of it.

        If the stream is closed by an error other than a connection reset,
        the read fails instead (the data could be truncated).
        """
        future = self._start_read(_CLOSE)
        if self._closed:
            self._finish_on_close()
            if self._read_future is not None:
                self._clear_read()
                future.set_exception(StreamClosedError(real_error=self.error))
            return future
        self._try_inline_read()
        return future

    def _start_read(self, kind: int) -> Future[Any]:
        current = self._read_future
        if current is not None:
            if self._closed:
                raise StreamClosedError(real_error=self.error)
            if not current.cancelled():
                raise RuntimeError("Already reading")
            # The caller gave up on the previous read; let this one replace it.
            self._clear_read()
        future = self._new_future()
        self._read_future = future
        self._read_kind = kind
        return future

    def _try_inline_read(self) -> None:
        """Complete the new read from the buffer, or start reading from the fd for it."""
        if self._maybe_finish(True):
            return
        if self._closed:
            self._clear_read()
            raise StreamClosedError(real_error=self.error)
        if self._in_setup():
            return
        state = self._state
        if not (self._drained and state is not None and state & _READ):
            try:
                self._service_read()
            except UnsatisfiableReadError:
                raise
            except Exception as e:
                self.close(exc_info=e)
                raise
            if self._read_future is None or self._closed:
                return
        self._want(_READ)

    def _service_read(self) -> None:
        """Read from the fd for the pending read until it completes or the fd runs dry.

        Raises UnsatisfiableReadError, StreamBufferFullError and the fd's
        errors (other than resets, which close the stream like an EOF).
        """
        short_means_drained = self._short_io_means_blocked
        while self._read_future is not None and not self._closed:
            into = self._read_into
            if into is not None:
                filled = self._read_into_filled
                part = into[filled:]
                try:
                    n = self._read_fd(part)
                finally:
                    part.release()
                if n <= 0:
                    return
                self._read_into_filled = filled + n
                if self._maybe_finish(True):
                    return
                if short_means_drained and n < len(into) - filled:
                    self._drained = True
                    return
                continue
            want = min(self.read_chunk_size, self.max_buffer_size - self._buffered() + 1)
            n = self._read_chunk(want)
            if n <= 0:
                if n == 0:
                    self._maybe_finish(True)
                return
            if self._buffered() > self.max_buffer_size:
                gen_log.error("Reached maximum read buffer size")
                raise StreamBufferFullError("Reached maximum read buffer size")
            last = short_means_drained and n < want
            if self._maybe_finish(last):
                return
            if last:
                self._drained = True
                return

    def _read_fd(self, buf: memoryview) -> int:
        """Call read_from_fd; return bytes read, 0 if it would block, -1 once closed by EOF."""
        try:
            n = self.read_from_fd(buf)
        except Exception as e:
            if is_connreset(e):
                self.close(exc_info=e)
                return -1
            raise
        if n is None:
            self._drained = True
            return 0
        if n == 0:
            self.close()
            return -1
        return n

    def _read_chunk(self, size: int) -> int:
        """Read up to ``size`` bytes into the read buffer; same returns as `_read_fd`."""
        view = _scratch_view(size)
        try:
            n = self._read_fd(view)
            if n > 0:
                self._rbuf += view[:n]
        finally:
            view.release()
        return n

    def _buffered(self) -> int:
        return len(self._rbuf) - self._rpos

    def _maybe_finish(self, thorough: bool) -> bool:
        """Complete the pending read if the buffered data satisfies it.

        With ``thorough`` false, an expensive regex search may be put off
        until more data has arrived.

        Raises:
            UnsatisfiableReadError: if a delimiter cannot be found within max_bytes.
        """
        kind = self._read_kind
        if self._read_future is None:
            return False
        available = len(self._rbuf) - self._rpos
        if kind == _BYTES:
            wanted = self._read_bytes
            if available >= wanted:
                self._finish_read(wanted)
                return True
            if self._read_partial and available:
                self._finish_read(available)
                return True
            return False
        if kind == _UNTIL:
            return self._find_delimiter(available)
        if kind == _REGEX:
            if not thorough and available < 2 * self._read_scanned:
                return False
            return self._find_regex(available)
        if kind == _INTO:
            assert self._read_into is not None
            filled = self._read_into_filled
            if filled == len(self._read_into) or (self._read_partial and filled):
                self._finish_read_into()
                return True
        return False

    def _find_delimiter(self, available: int) -> bool:
        delimiter = self._read_delimiter
        max_bytes = self._read_max_bytes
        start = self._rpos
        limit = available if max_bytes is None else min(available, max_bytes)
        # Resume where the last search stopped, less a delimiter's worth of overlap.
        offset = max(0, self._read_scanned - len(delimiter) + 1)
        found = self._rbuf.find(delimiter, start + offset, start + limit)
        if found >= 0:
            self._finish_read(found - start + len(delimiter))
            return True
        self._read_scanned = limit
        if max_bytes is not None and available >= max_bytes:
            raise UnsatisfiableReadError(
                f"delimiter {delimiter!r} not found within {max_bytes} bytes"
            )
        return False

    def _find_regex(self, available: int) -> bool:
        regex = self._read_regex
        assert regex is not None
        max_bytes = self._read_max_bytes
        start = self._rpos
        match = regex.search(self._rbuf, start, start + available)
        if match is not None:
            end = match.end() - start
            if max_bytes is not None and end > max_bytes:
                raise UnsatisfiableReadError(
                    f"regex {regex.pattern!r} not matched within {max_bytes} bytes"
                )
            self._finish_read(end)
            return True
        self._read_scanned = available
        if max_bytes is not None and available >= max_bytes:
            raise UnsatisfiableReadError(
                f"regex {regex.pattern!r} not matched within {max_bytes} bytes"
            )
        return False

    def _finish_read(self, size: int) -> None:
        future = self._read_future
        data = self._consume(size)
        self._clear_read()
        if future is not None and not future.done():
            future.set_result(data)

    def _finish_read_into(self) -> None:
        future = self._read_future
        filled = self._read_into_filled
        self._clear_read()
        if future is not None and not future.done():
            future.set_result(filled)

    def _finish_on_close(self) -> None:
        """Resolve a pending read_until_close when the stream has closed."""
        error = self.error
        if error is None or is_connreset(error):
            self._finish_read(self._buffered())

    def _clear_read(self) -> None:
        self._read_future = None
        self._read_kind = 0
        self._read_regex = None
        into = self._read_into
        if into is not None:
            self._read_into = None
            # The caller may resize its buffer once the read is over.
            into.release()

    def _consume(self, size: int) -> bytes:
        if not size:
            return b""
        rbuf = self._rbuf
        start = self._rpos
        if start == 0 and size == len(rbuf):
            data = bytes(rbuf)
        else:
            with memoryview(rbuf) as view:
                data = view[start : start + size].tobytes()
        self._consume_raw(size)
        return data

    def _consume_raw(self, size: int) -> None:
        rbuf = self._rbuf
        pos = self._rpos + size
        if pos >= len(rbuf):
            rbuf.clear()
            pos = 0
        elif pos >= _COMPACT_THRESHOLD and 2 * pos >= len(rbuf):
            del rbuf[:pos]
            pos = 0
        self._rpos = pos

    def _close_unsatisfiable(self, error: UnsatisfiableReadError) -> None:
        gen_log.info("Unsatisfiable read, closing connection: %s", error)
        self.close(exc_info=error)

    # -- writing ------------------------------------------------------------------------

    def write(self, data: Union[bytes, bytearray, memoryview]) -> Future[None]:
        """Queue ``data`` for writing; resolve when all of it has been written.

        Large ``bytearray`` or ``memoryview`` data is sent from the caller's
        object without copying, so it must not be changed until the Future
        resolves.

        Raises:
            StreamClosedError: if the stream is closed.
            StreamBufferFullError: if ``max_write_buffer_size`` would be exceeded.
            TypeError: if ``data`` is not a bytes-like object.
        """
        self._check_closed()
        if isinstance(data, memoryview):
            size = data.nbytes
        elif isinstance(data, (bytes, bytearray)):
            size = len(data)
        else:
            raise TypeError(
                f"write() takes bytes, bytearray or memoryview, not {type(data).__name__}"
            )
        if size:
            limit = self.max_write_buffer_size
            if limit is not None and len(self._write_buffer) + size > limit:
                raise StreamBufferFullError("Reached maximum write buffer size")
            self._write_buffer.append(data)
            self._total_queued += size
        future: Future[None] = self._new_future()
        self._write_futures.append((self._total_queued, future))
        if not self._in_setup():
            self._handle_write()
            if not self._closed and len(self._write_buffer):
                self._want(_WRITE)
        return future

    def _handle_write(self) -> None:
        """Send as much of the write buffer as the fd takes; resolve finished writes."""
        buffer = self._write_buffer
        short_means_full = self._short_io_means_blocked
        try:
            while True:
                remaining = len(buffer)
                if not remaining:
                    break
                with buffer.peek(remaining) as view:
                    offered = len(view)
                    n = self.write_to_fd(view)
                if not n:
                    break
                buffer.advance(n)
                self._total_written += n
                if short_means_full and n < offered:
                    break
        except BlockingIOError:
            pass
        except Exception as e:
            if not is_connreset(e):
                gen_log.warning("Write error on %s: %s", self._fd_label(), e)
            self.close(exc_info=e)
            return
        futures = self._write_futures
        written = self._total_written
        while futures and futures[0][0] <= written:
            future = futures.popleft()[1]
            if not future.done():
                future.set_result(None)

    # -- events -------------------------------------------------------------------------

    def _handle_events(self, fd: Any, events: int) -> None:
        if self._closed:
            return
        try:
            if self._connecting:
                self._handle_connect()
                return
            if events & _READ:
                self._handle_read()
                if self._closed:
                    return
            if events & _WRITE:
                self._handle_write()
                if self._closed:
                    return
                if not len(self._write_buffer):
                    self._unwant(_WRITE)
            if events & _ERROR:
                self.close(exc_info=self.get_fd_error() or StreamClosedError())
        except Exception as e:
            gen_log.error("Uncaught exception, closing connection.", exc_info=True)
            self.close(exc_info=e)

    def _handle_read(self) -> None:
        self._drained = False
        if self._read_future is None:
            self._read_ahead()
            return
        self._pump_read()

    def _pump_read(self) -> None:
        """Serve the pending read from the fd, logging and closing on errors."""
        try:
            self._service_read()
        except UnsatisfiableReadError as e:
            self._close_unsatisfiable(e)
        except Exception as e:
            gen_log.warning("error on read: %s", e)
            self.close(exc_info=e)

    def _read_ahead(self) -> None:
        """Take one chunk that arrived with no read pending, then stop listening.

        With the buffer empty this is how an EOF is noticed between reads.
        """
        if not self._buffered():
            try:
                self._read_chunk(self.read_chunk_size)
            except Exception as e:
                gen_log.warning("error on read: %s", e)
                self.close(exc_info=e)
                return
        if not self._closed and self._buffered():
            self._unwant(_READ)

    def _handle_connect(self) -> None:
        try:
            error = self.get_fd_error()
        except OSError as e:
            error = e
        if error is not None:
            self.close(exc_info=error)
            return
        self._connecting = False
        future = self._connect_future
        self._connect_future = None
        if future is not None and not future.done():
            future.set_result(self)
        self._on_connected()

    def _on_connected(self) -> None:
        """Start the queued work once the connection (and any handshake) is up."""
        if len(self._write_buffer) or self._write_futures:
            self._handle_write()
            if self._closed:
                return
        if self._read_future is not None:
            self._pump_read()
            if self._closed:
                return
        self._refresh_state()

    def _in_setup(self) -> bool:
        """Whether a connect (or handshake) still owns the event registration."""
        return self._connecting

    def _refresh_state(self) -> None:
        state = _ERROR
        if len(self._write_buffer):
            state |= _WRITE
        # An idle stream with nothing buffered listens too: that is how it
        # sees an EOF, and how TLS takes in post-handshake messages (which,
        # left unread, would make our close a reset that loses data in flight).
        if self._read_future is not None or not self._buffered():
            state |= _READ
        self._set_state(state)

    def _set_state(self, state: int) -> None:
        current = self._state
        if current == state or self._closed:
            return
        self._state = state
        if current is None:
            self.io_loop.add_handler(self.fileno(), self._handle_events, state)
        else:
            self.io_loop.update_handler(self.fileno(), state)

    def _want(self, events: int) -> None:
        current = self._state
        if current is None:
            current = _ERROR
        elif current & events == events:
            return
        if not self._in_setup():
            self._set_state(current | events)

    def _unwant(self, events: int) -> None:
        current = self._state
        if current is not None and current & events and not self._in_setup():
            self._set_state(current & ~events)

    def _fd_label(self) -> Any:
        try:
            fd = self.fileno()
            return fd.fileno() if hasattr(fd, "fileno") else fd
        except Exception:
            return "(closed)"

    # -- state --------------------------------------------------------------------------

    def set_close_callback(self, callback: Optional[Callable[[], None]]) -> None:
        """Call ``callback`` (with no arguments) once the stream closes.

        Pending Futures already fail with `StreamClosedError`; the callback is
        for code that wants to know about a close without a pending operation.
        """
        self._close_callback = callback
        if callback is None:
            return
        if self._closed:
            self._close_callback = None
            self.io_loop.add_callback(callback)
        elif not self._buffered():
            # Listen for EOF, which only a read can see.
            self._want(_READ)

    def close(self, exc_info: _ExcInfo = False) -> None:
        """Close the stream.

        Args:
            exc_info: the error that closed it: an exception, an exc_info
                tuple, or True for the exception being handled. It becomes
                ``error`` and the ``real_error`` of the failed Futures.
        """
        if self._closed:
            return
        if exc_info:
            if isinstance(exc_info, tuple):
                error = exc_info[1]
            elif isinstance(exc_info, BaseException):
                error = exc_info
            else:
                error = sys.exc_info()[1]
            if error is not None:
                self.error = error
        self._closed = True
        if self._read_future is not None:
            if self._read_kind == _CLOSE:
                self._finish_on_close()
            else:
                try:
                    self._maybe_finish(True)
                except UnsatisfiableReadError:
                    pass
        if self._state is not None:
            self._state = None
            self.io_loop.remove_handler(self.fileno())
        close_error: Optional[OSError] = None
        try:
            self.close_fd()
        except OSError as e:
            # The fd was closed behind our back. Finish closing, then say so.
            close_error = e
            if self.error is None:
                self.error = e
        self._signal_closed()
        if close_error is not None:
            raise close_error

    def _signal_closed(self) -> None:
        futures: list[Future[Any]] = []
        if self._read_future is not None:
            futures.append(self._read_future)
            self._clear_read()
        futures.extend(future for _, future in self._write_futures)
        self._write_futures.clear()
        if self._connect_future is not None:
            futures.append(self._connect_future)
            self._connect_future = None
        for future in futures:
            if not future.done():
                future.set_exception(StreamClosedError(real_error=self.error))
                _mark_retrieved(future)
        self._fail_setup_futures()
        # Release the callers' large buffers now rather than when we are collected.
        # (Buffered input stays: reads it can satisfy still succeed after a close.)
        self._write_buffer.clear()
        callback = self._close_callback
        if callback is not None:
            self._close_callback = None
            self.io_loop.add_callback(callback)

    def _fail_setup_futures(self) -> None:
        """Fail subclass Futures (like a TLS handshake) when the stream closes."""

    def closed(self) -> bool:
        """Whether the stream has been closed."""
        return self._closed

    def reading(self) -> bool:
        """Whether a read is pending."""
        return self._read_future is not None

    def writing(self) -> bool:
        """Whether written data is still waiting to be sent."""
        return bool(len(self._write_buffer))

    def set_nodelay(self, value: bool) -> None:
        """Turn Nagle's algorithm off (``True``) or on, where the transport has one.

        With it off, small writes go out at once instead of being held back
        to be joined; use it for latency-sensitive request/response traffic.
        """

    def _check_closed(self) -> None:
        if self._closed:
            raise StreamClosedError(real_error=self.error)

    def _new_future(self) -> Future[Any]:
        loop = self._aloop
        if loop is not None:
            future: Future[Any] = loop.create_future()
            return future
        return Future()
