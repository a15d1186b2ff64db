"""`BaseIOStream`: buffered, Future-returning reads and writes over a non-blocking fd.

How it works:

* The stream registers its fd with the `IOLoop` (``add_handler`` /
  ``update_handler``) and keeps in ``_state`` the event mask it asked for.
  Interest in READ is kept after a read completes, so a request/response
  connection does not toggle its registration for every message; if data
  then arrives with no read pending, one chunk is taken into the buffer and
  the interest is dropped (that is the flow control: nothing more is read
  until someone asks).
* The read side (the read buffer and the pending read) is in `_reading`.
* Outgoing bytes live in a `_StreamBuffer`: small writes are joined, large
  ones are queued by reference. Each ``write()`` future remembers the total
  byte count at which it completes.
* Only the user-facing calls create Futures; the internal steps are plain
  method calls driven by the IOLoop's events. A write the fd takes in full
  returns the stream's one already-resolved Future.
* The per-message path (READ event -> read_until -> write) is kept flat:
  one Python call per step where possible; ``benchmarks/tcp_echo.py``
  measures it against Tornado.
"""

from __future__ import annotations

import collections
import sys
import types
from collections.abc import Callable
from typing import Any, Optional, Union

from squall._sizes import byte_count
from squall.concurrent import Future
from squall.ioloop import IOLoop
from squall.iostream._buffer import NO_WRITES, _StreamBuffer
from squall.iostream._errors import (
    StreamBufferFullError,
    StreamClosedError,
    UnsatisfiableReadError,
    is_connreset,
)
from squall.iostream._reading import (
    _CLOSE,
    _ERROR,
    _READ,
    _UNTIL,
    _WRITE,
    READ_SLOTS,
    _Reading,
)

__all__ = [
    "BaseIOStream",
    "FD_SLOTS",
    "_ERROR",
    "_READ",
    "_WRITE",
    "_mark_retrieved",
    "gen_log",
]
from squall.log import gen_log

# The slots of a stream over its own fd (`IOStream`, `PipeIOStream`), with
# class defaults for other streams: the read under way (READ_SLOTS) and a
# connect's state and a socket's ``send`` (BaseIOStream's defaults).
FD_SLOTS = (*READ_SLOTS, "_connect_future", "_connecting", "_send")

_DEFAULT_MAX_BUFFER_SIZE = 100 * 1024 * 1024
_DEFAULT_READ_CHUNK_SIZE = 64 * 1024

_ExcInfo = Union[
    None,
    bool,
    BaseException,
    tuple[Optional[type[BaseException]], Optional[BaseException], Optional[types.TracebackType]],
]


def _mark_retrieved(future: Future[Any]) -> None:
    # A closed stream fails every pending Future; callers that never await
    # them (fire-and-forget writes) must not get "exception never retrieved".
    if not future.cancelled():
        future.exception()


class BaseIOStream(_Reading):
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
        "_write_buffer",
        "_write_futures",
        "_total_queued",
        "_total_written",
        "_close_callback",
        "_state",
        "_closed",
        "_aloop",
        "_done_write",
        "__weakref__",
    )

    # FD_SLOTS' values where they are not slots (see READ_SLOTS).
    _connect_future: Optional[Future[Any]] = None
    _connecting = False
    _send: Optional[Callable[[memoryview], int]] = None

    # Whether a read or write that moves fewer bytes than offered shows that
    # the fd is drained (or full). True for sockets and pipes; not for TLS,
    # where decrypted bytes can wait inside the TLS object.
    _short_io_means_blocked = False
    # Whether _in_setup can be true when _connecting is not (a TLS handshake).
    _has_setup_phase = False
    # Whether the stream starts with the shared empty write buffer (NO_WRITES)
    # and makes its own at the first write that queues: for streams whose
    # writes go out at once (_TransportStream). Not IOStream's: applications
    # (dask's distributed) append to its _write_buffer themselves.
    _lazy_write_buffer = False

    def __init__(
        self,
        max_buffer_size: Optional[int] = None,
        read_chunk_size: Optional[int] = None,
        max_write_buffer_size: Optional[int] = None,
    ) -> None:
        self.io_loop = IOLoop.current()
        self.max_buffer_size: int = (
            byte_count("max_buffer_size", max_buffer_size) or _DEFAULT_MAX_BUFFER_SIZE
        )
        chunk = byte_count("read_chunk_size", read_chunk_size) or _DEFAULT_READ_CHUNK_SIZE
        if max_buffer_size is not None:
            # A chunk is at most half of what the buffer may hold, as
            # Tornado's (the default buffer is far above two chunks): a
            # partial read_bytes returns what one chunk brought, so the
            # same stream answers it with as many bytes on both.
            chunk = min(chunk, max(1, self.max_buffer_size // 2))
        self.read_chunk_size: int = chunk
        self.max_write_buffer_size: Optional[int] = max_write_buffer_size
        self.error: Optional[BaseException] = None
        self._init_reading()
        self._write_buffer = NO_WRITES if self._lazy_write_buffer else _StreamBuffer()
        # Made at the first write that waits (an empty deque is 760 bytes,
        # carried by every idle connection otherwise).
        self._write_futures: Optional[collections.deque[tuple[int, Future[None]]]] = None
        self._total_queued = 0
        self._total_written = 0
        self._close_callback: Optional[Callable[[], None]] = None
        if self._read_slots:
            self._connect_future = None
            self._connecting = False
            # A plain socket's ``send``, for streams whose write_to_fd is
            # just that (`IOStream`): the direct write calls it without the
            # method.
            self._send = None
        self._state: Optional[int] = None
        self._closed = False
        self._aloop: Any = getattr(self.io_loop, "asyncio_loop", None)
        self._done_write: Optional[Future[None]] = None

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
        if self._closed:
            raise StreamClosedError(real_error=self.error)
        if isinstance(data, memoryview):
            size = data.nbytes
        elif isinstance(data, (bytes, bytearray)):
            size = len(data)
        else:
            raise TypeError(
                f"write() takes bytes, bytearray or memoryview, not {type(data).__name__}"
            )
        buffer = self._write_buffer
        queued = buffer._size
        limit = self.max_write_buffer_size
        if limit is not None and queued + size > limit:
            raise StreamBufferFullError("Reached maximum write buffer size")
        if (
            queued
            or self._write_futures
            or self._connecting
            or (self._has_setup_phase and self._in_setup())
        ):
            future: Future[None] = self._new_future()
            if size:
                if buffer is NO_WRITES:
                    buffer = self._write_buffer = _StreamBuffer()
                buffer.append(data)
                self._total_queued += size
            self._wait_for_write(future)
            if not self._in_setup():
                self._handle_write()
                self._want_write_if_queued()
            return future
        # Nothing is queued: offer the data to the fd straight away, and
        # buffer only what it does not take.
        self._total_queued += size
        if size:
            view = memoryview(data)
            if view.format != "B" or view.ndim != 1:
                flat = view.cast("B")
                view.release()
                view = flat
            send = self._send
            try:
                if send is not None and "write_to_fd" not in self.__dict__:
                    sent = send(view)
                else:
                    sent = self.write_to_fd(view) or 0
            except BlockingIOError:
                sent = 0
            except Exception as e:
                view.release()
                future = self._new_future()
                self._wait_for_write(future)
                self._write_failed(e)
                return future
            self._total_written += sent
            if sent < size:
                rest = view[sent:]
                if buffer is NO_WRITES:
                    buffer = self._write_buffer = _StreamBuffer()
                buffer.append(rest)
                rest.release()
            view.release()
            if sent < size:
                future = self._new_future()
                self._wait_for_write(future)
                if not self._short_io_means_blocked:
                    self._handle_write()
                self._want_write_if_queued()
                return future
        # Written in full: every such write shares one resolved Future. A
        # done Future keeps no state that callers can change (callbacks
        # added to it are scheduled at once), and this saves creating and
        # resolving one per message.
        done = self._done_write
        if done is None:
            done = self._done_write = self._new_future()
            done.set_result(None)
        return done

    def _want_write_if_queued(self) -> None:
        # After a write the fd did not take whole: wait until it can take more.
        if not self._closed and self._write_buffer._size:
            self._want(_WRITE)

    def _handle_write(self) -> None:
        """Send as much of the write buffer as the fd takes; resolve finished writes."""
        buffer = self._write_buffer
        short_means_full = self._short_io_means_blocked
        try:
            while True:
                remaining = buffer._size
                if not remaining:
                    break
                view = buffer.front(remaining)
                offered = len(view)
                try:
                    n = self.write_to_fd(view)
                finally:
                    view.release()
                if not n:
                    break
                buffer.advance(n)
                self._total_written += n
                if short_means_full and n < offered:
                    break
        except BlockingIOError:
            pass
        except Exception as e:
            self._write_failed(e)
            return
        futures = self._write_futures
        written = self._total_written
        while futures and futures[0][0] <= written:
            future = futures.popleft()[1]
            if not future.done():
                future.set_result(None)

    def _wait_for_write(self, future: Future[None]) -> None:
        """Resolve ``future`` once everything queued so far is written."""
        waiting = self._write_futures
        if waiting is None:
            waiting = self._write_futures = collections.deque()
        waiting.append((self._total_queued, future))

    def _write_failed(self, error: Exception) -> None:
        if not is_connreset(error):
            gen_log.warning("Write error on %s: %s", self._fd_label(), error)
        self.close(exc_info=error)

    # -- events -------------------------------------------------------------------------

    def _handle_events(self, fd: Any, events: int) -> None:
        if self._closed:
            return
        try:
            if self._connecting:
                self._handle_connect()
                return
            if events & _READ:
                self._drained = False
                if self._read_future is None:
                    self._read_ahead()
                else:
                    # _pump_read, inlined: this is the per-message hot path.
                    try:
                        recv = self._recv
                        if (
                            recv is None
                            or self._read_kind != _UNTIL
                            or self._rpos != len(self._rbuf)
                            or "read_from_fd" in self.__dict__
                            or not self._recv_until(recv)
                        ):
                            self._service_read()
                    except Exception as e:
                        self._read_failed(e)
                if self._closed:
                    return
            if events & _WRITE:
                self._handle_write()
                if self._closed:
                    return
                if not len(self._write_buffer):
                    self._unwant(_WRITE)
            if events & _ERROR:
                self.close(exc_info=self.get_fd_error())
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
        except Exception as e:
            self._read_failed(e)

    def _read_failed(self, e: Exception) -> None:
        # Serving a read raised: a read that cannot be satisfied closes the
        # stream quietly; anything else is logged first.
        if isinstance(e, UnsatisfiableReadError):
            self._close_unsatisfiable(e)
        else:
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
        if self._read_future is not None or self._write_futures or self._connect_future is not None:
            # (Tested first: most streams close with nothing pending, and
            # a closed WebSocket's is one per handshake.)
            self._fail_pending()
        self._fail_setup_futures()
        # Release the callers' large buffers now rather than when we are collected.
        # (Buffered input stays: reads it can satisfy still succeed after a close.)
        buffer = self._write_buffer
        if buffer is not NO_WRITES:
            buffer.clear()
        callback = self._close_callback
        if callback is not None:
            self._close_callback = None
            self.io_loop.add_callback(callback)

    def _fail_pending(self) -> None:
        """Fail the pending read, writes and connect: the stream closed."""
        futures: list[Future[Any]] = []
        if self._read_future is not None:
            futures.append(self._read_future)
            if self._read_into_filled:
                self._keep_unfinished_into()
            self._clear_read()
        waiting = self._write_futures
        if waiting:
            futures.extend(future for _, future in waiting)
            waiting.clear()
        if self._connect_future is not None:
            futures.append(self._connect_future)
            self._connect_future = None
        for future in futures:
            if not future.done():
                future.set_exception(StreamClosedError(real_error=self.error))
                _mark_retrieved(future)

    def _fail_setup_futures(self) -> None:
        """Fail subclass Futures (like a TLS handshake) when the stream closes."""

    def closed(self) -> bool:
        """Whether the stream has been closed."""
        return self._closed

    # Dask's distributed queues frames itself: it appends memoryviews to
    # ``_write_buffer``, adds their size to ``_total_write_index`` and calls
    # ``write(b"")`` to send them. These two names are Tornado's for our
    # counters of bytes queued and bytes written.
    @property
    def _total_write_index(self) -> int:
        return self._total_queued

    @_total_write_index.setter
    def _total_write_index(self, value: int) -> None:
        self._total_queued = value

    @property
    def _total_write_done_index(self) -> int:
        return self._total_written

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
