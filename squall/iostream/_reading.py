"""The read side of `BaseIOStream`: the read buffer and the pending read.

Incoming bytes live in one ``bytearray`` with a read position; consumed bytes
are cut off lazily, so consuming costs amortised O(1) per byte. At most one
read is pending; it is described by a kind (bytes, delimiter, regex, close,
into) and its parameters, and completed from the buffer as soon as the
buffer satisfies it. Searches resume where the previous one stopped (a
delimiter) or wait for the buffer to double (a regex), so a large read stays
linear. A large read_bytes is received straight into the bytes object it
resolves with; a read_until on an empty buffer of a plain socket takes the
chunk ``recv`` returns as its result when that chunk is exactly one message.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, Optional

from squall.concurrent import Future
from squall.ioloop import IOLoop
from squall.iostream._errors import (
    StreamBufferFullError,
    StreamClosedError,
    UnsatisfiableReadError,
    is_connreset,
)
from squall.log import gen_log

_READ = IOLoop.READ
_WRITE = IOLoop.WRITE
_ERROR = IOLoop.ERROR

# What the pending read is waiting for.
_BYTES = 1
_UNTIL = 2
_REGEX = 3
_CLOSE = 4
_INTO = 5

_DEFAULT_READ_CHUNK_SIZE = 64 * 1024
# Consumed bytes at the front of the read buffer are cut off once there are
# this many and they make up at least half of it.
_COMPACT_THRESHOLD = 64 * 1024

# Reads land in a per-thread scratch buffer and are appended to the stream's
# buffer from there: no allocation per read, and idle streams hold no chunk.
_scratch = threading.local()


# A read_bytes this large is received straight into the bytes object it
# resolves with, so a body costs its size once rather than twice.
_DIRECT_READ_MIN = 256 * 1024

_new_bytes: Optional[Callable[[int], tuple[bytes, memoryview]]] = None
_new_bytes_checked = False


def _allocate_bytes(size: int) -> Optional[tuple[bytes, memoryview]]:
    """Return a new ``bytes`` of ``size`` bytes and a writable view of its contents.

    This is C's ``PyBytes_FromStringAndSize(NULL, size)``: the object is
    fresh and unshared, so it may be filled before anyone else sees it. The
    view must be released before the object is handed out. Returns None
    where the C API is not reachable (not CPython).
    """
    global _new_bytes, _new_bytes_checked
    if not _new_bytes_checked:
        _new_bytes_checked = True
        try:
            import ctypes

            from_size = ctypes.pythonapi.PyBytes_FromStringAndSize
            from_size.restype = ctypes.py_object
            from_size.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
            as_string = ctypes.pythonapi.PyBytes_AsString
            as_string.restype = ctypes.c_void_p
            as_string.argtypes = (ctypes.py_object,)
        except (ImportError, AttributeError):
            return None

        def new_bytes(n: int) -> tuple[bytes, memoryview]:
            obj: bytes = from_size(None, n)
            array = (ctypes.c_char * n).from_address(as_string(obj))
            with memoryview(array) as raw:
                return obj, raw.cast("B")

        _new_bytes = new_bytes
    if _new_bytes is None:
        return None
    return _new_bytes(size)


def _scratch_view(size: int) -> memoryview:
    view: Optional[memoryview] = getattr(_scratch, "view", None)
    if view is None or len(view) < size:
        view = memoryview(bytearray(max(size, _DEFAULT_READ_CHUNK_SIZE)))
        _scratch.view = view
    return view[:size]


# The parameters of the read under way, and a plain socket's ``recv``:
# slots of the streams that read their own fd (`IOStream`, `PipeIOStream`
# list these in their ``__slots__``), class defaults below for the others.
# A stream whose reads usually go elsewhere (the server's detached
# connection, whose WebSocket takes the bytes as they arrive) then holds
# them in its instance dict, made by its first read: an idle one keeps
# none (idle connections are what a server of many holds most).
READ_SLOTS = (
    "_read_kind",
    "_read_bytes",
    "_read_partial",
    "_read_delimiter",
    "_read_regex",
    "_read_max_bytes",
    "_read_scanned",
    "_read_into",
    "_read_into_filled",
    "_read_target",
    "_recv",
)


def _unsatisfiable(what: object, max_bytes: int) -> UnsatisfiableReadError:
    # One wording for both kinds (a regex shows as its compiled pattern),
    # as Tornado's, which programs' tests match.
    return UnsatisfiableReadError(f"delimiter {what!r} not found within {max_bytes} bytes")


class _Reading:
    """The read state and read methods of `BaseIOStream`.

    `BaseIOStream` derives from this class and provides the fd, the close
    and the event registration declared at the end.
    """

    # (The instance dict is BaseIOStream's: declared here, where the read
    # methods may store READ_SLOTS in it.)
    __slots__ = ("_rbuf", "_rpos", "_read_future", "_drained", "__dict__")

    # Whether the class has READ_SLOTS among its slots (set by the classes
    # that list them): _init_reading then sets them.
    _read_slots = False
    # READ_SLOTS' values where they are not slots (see READ_SLOTS).
    _read_kind = 0
    _read_bytes = 0
    _read_partial = False
    _read_delimiter = b""
    _read_regex: Optional[re.Pattern[bytes]] = None
    _read_max_bytes: Optional[int] = None
    _read_scanned = 0
    _read_into: Optional[memoryview] = None
    _read_into_filled = 0
    _read_target: Optional[bytes] = None
    _recv: Optional[Callable[[int], bytes]] = None

    # Provided by BaseIOStream.
    error: Optional[BaseException]
    max_buffer_size: int
    read_chunk_size: int
    _closed: bool
    _state: Optional[int]
    _short_io_means_blocked: bool
    _aloop: Any

    def _init_reading(self) -> None:
        self._rbuf = bytearray()
        self._rpos = 0
        self._read_future: Optional[Future[Any]] = None
        # True once a read found nothing to read and no READ event came since.
        self._drained = False
        if self._read_slots:
            self._read_kind = 0
            self._read_bytes = 0
            self._read_partial = False
            self._read_delimiter = b""
            self._read_regex = None
            self._read_max_bytes = None
            # How much of the buffer a delimiter or regex search has covered.
            self._read_scanned = 0
            self._read_into = None
            self._read_into_filled = 0
            # The bytes object a direct read_bytes fills through _read_into.
            self._read_target = None
            # A plain socket's ``recv``, for streams whose read_from_fd is
            # just ``recv_into`` on it (`IOStream`); lets a read_until take
            # a chunk as a ready-made ``bytes``.
            self._recv = None

    # -- reading ------------------------------------------------------------------------

    def read_until_regex(self, regex: bytes, max_bytes: Optional[int] = None) -> Future[bytes]:
        """Read until ``regex`` matches; resolve with the data up to the end of the match.

        Args:
            regex: the pattern, as bytes.
            max_bytes: the most bytes the match may end within: once more
                than this many are buffered without one, the stream is
                closed (logged at INFO) and the read fails.
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
            max_bytes: the most bytes the delimiter may end within: once
                more than this many are buffered without it, the stream is
                closed (logged at INFO) and the read fails.
        """
        if not delimiter:
            raise ValueError("read_until needs a non-empty delimiter")
        loop = self._aloop
        if self._read_future is None and loop is not None:
            # _start_read, inlined.
            future: Future[bytes] = loop.create_future()
            self._read_future = future
            self._read_kind = _UNTIL
        else:
            future = self._start_read(_UNTIL)
        self._read_delimiter = delimiter
        self._read_max_bytes = max_bytes
        self._read_scanned = 0
        if self._drained and self._rpos == len(self._rbuf) and not self._closed:
            # The per-message case: nothing buffered and the fd known empty
            # while registered for READ, so the next event serves the read.
            # (During a connect or handshake the event also comes later.)
            state = self._state
            if state is not None and state & _READ:
                return future
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
        if (
            not partial
            and num_bytes >= _DIRECT_READ_MIN
            and num_bytes <= self.max_buffer_size
            and num_bytes > self._buffered()
        ):
            allocated = _allocate_bytes(num_bytes)
            if allocated is not None:
                self._read_target, view = allocated
                self._start_into(view)
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
        self._read_partial = partial
        self._start_into(view)
        self._try_inline_read()
        return future

    def _start_into(self, view: memoryview) -> None:
        """Make the pending read fill ``view``, starting with the buffered bytes."""
        self._read_into = view
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

    def hold_reading_ahead(self) -> None:
        """Stops listening for bytes until the next read asks for them.

        With no read pending, a stream listens to notice an EOF between
        reads, and an EOF seen that way closes it at once. A caller that
        makes no read for a moment but has something left to write (a
        WebSocket answering a close frame after the application's turn)
        holds that off: a peer's half-close is then seen by its next read,
        after the answer has gone out.
        """
        if self._read_future is None:
            self._unwant(_READ)

    def _start_read(self, kind: int) -> Future[Any]:
        current = self._read_future
        if current is not None:
            if self._closed:
                raise StreamClosedError(real_error=self.error)
            if not current.cancelled():
                raise RuntimeError("Already reading")
            # The caller gave up on the previous read; let this one replace it.
            self._clear_read()
        loop = self._aloop
        future: Future[Any] = loop.create_future() if loop is not None else self._new_future()
        self._read_future = future
        self._read_kind = kind
        return future

    def _try_inline_read(self) -> None:
        """Complete the new read from the buffer, or start reading from the fd for it."""
        if self._maybe_finish(True):
            return
        if self._closed:
            if self._read_into_filled:
                self._keep_unfinished_into()
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
                last = short_means_drained and n < len(into) - filled
                if last:
                    self._drained = True
                if self._maybe_finish(True) or last:
                    return
                continue
            recv = self._recv
            if (
                recv is not None
                and self._read_kind == _UNTIL
                and self._rpos == len(self._rbuf)
                and "read_from_fd" not in self.__dict__
            ):
                if self._recv_until(recv):
                    return
                continue
            # _read_chunk and _read_fd, inlined: this runs once per message.
            rbuf = self._rbuf
            buffered = len(rbuf) - self._rpos
            want = self.max_buffer_size - buffered + 1
            if want > self.read_chunk_size:
                want = self.read_chunk_size
            scratch: Optional[memoryview] = getattr(_scratch, "view", None)
            if scratch is None or len(scratch) < want:
                scratch = _scratch_view(want)
            view = scratch[:want]
            try:
                try:
                    got = self.read_from_fd(view)
                except Exception as e:
                    if is_connreset(e):
                        self.close(exc_info=e)
                        return
                    raise
                if got is None:
                    self._drained = True
                    self._maybe_finish(True)
                    return
                if got == 0:
                    self.close()
                    return
                rbuf += view[:got]
            finally:
                view.release()
            n = got
            buffered += n
            if buffered > self.max_buffer_size:
                gen_log.error("Reached maximum read buffer size")
                raise StreamBufferFullError("Reached maximum read buffer size")
            last = short_means_drained and n < want
            if last:
                # Known empty: the next read can wait for an event instead
                # of trying the fd first.
                self._drained = True
            if self._read_kind == _UNTIL:
                done = self._find_delimiter(buffered)
            else:
                done = self._maybe_finish(last)
            if done or last:
                return

    def _recv_until(self, recv: Callable[[int], bytes]) -> bool:
        """Serve a read_until with an empty buffer by ``recv``; return whether to stop.

        A chunk that ends with its first delimiter (one message per packet,
        the request/response case) becomes the result as it is: no copy
        through the scratch buffer and the read buffer.
        """
        want = self.read_chunk_size
        try:
            data = recv(want)
        except BlockingIOError:
            self._drained = True
            return True
        except Exception as e:
            if is_connreset(e):
                self.close(exc_info=e)
                return True
            raise
        n = len(data)
        if not n:
            self.close()
            return True
        last = self._short_io_means_blocked and n < want
        if last:
            self._drained = True
        delimiter = self._read_delimiter
        found = data.find(delimiter)
        max_bytes = self._read_max_bytes
        if found >= 0 and found + len(delimiter) == n and (max_bytes is None or n <= max_bytes):
            future = self._read_future
            self._read_future = None
            self._read_kind = 0
            state = self._state
            if state is None or not state & _READ:
                # As _consume_raw does when the buffer empties.
                self._want(_READ)
            if future is not None and not future.done():
                future.set_result(data)
            return True
        self._rbuf += data
        return self._find_delimiter(n) or last

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
        into = self._read_into
        if into is not None:
            filled = self._read_into_filled
            if filled == len(into) or (self._read_partial and filled):
                self._finish_read_into()
                return True
            return False
        available = len(self._rbuf) - self._rpos
        if not available:
            if kind == _BYTES and not self._read_bytes:
                self._finish_read(0)
                return True
            return False
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
        return False

    def _find_delimiter(self, available: int) -> bool:
        delimiter = self._read_delimiter
        max_bytes = self._read_max_bytes
        rbuf = self._rbuf
        start = self._rpos
        limit = available if max_bytes is None or available < max_bytes else max_bytes
        # Resume where the last search stopped, less a delimiter's worth of overlap.
        scanned = self._read_scanned
        offset = scanned - len(delimiter) + 1 if scanned >= len(delimiter) else 0
        found = rbuf.find(delimiter, start + offset, start + limit)
        if found >= 0:
            end = found + len(delimiter)
            if start or end != len(rbuf):
                self._finish_read(end - start)
                return True
            # _finish_read, inlined for the common case of a read that
            # takes the whole buffer (one message per packet).
            future = self._read_future
            data = bytes(rbuf)
            rbuf.clear()
            state = self._state
            if state is None or not state & _READ:
                self._want(_READ)
            self._read_future = None
            self._read_kind = 0
            if future is not None and not future.done():
                future.set_result(data)
            return True
        return self._not_found(limit, available, delimiter)

    def _find_regex(self, available: int) -> bool:
        regex = self._read_regex
        assert regex is not None
        max_bytes = self._read_max_bytes
        start = self._rpos
        match = regex.search(self._rbuf, start, start + available)
        if match is not None:
            end = match.end() - start
            if max_bytes is not None and end > max_bytes:
                raise _unsatisfiable(regex, max_bytes)
            self._finish_read(end)
            return True
        return self._not_found(available, available, regex)

    def _not_found(self, scanned: int, available: int, what: object) -> bool:
        # A delimiter or regex search that has not matched yet: remember how
        # far it looked (the next search resumes there); refuse the read
        # once more than its max_bytes are buffered, as Tornado does (with
        # exactly max_bytes and no match the read waits on, though no
        # match can end within them).
        self._read_scanned = scanned
        max_bytes = self._read_max_bytes
        if max_bytes is not None and available > max_bytes:
            raise _unsatisfiable(what, max_bytes)
        return False

    def _finish_read(self, size: int) -> None:
        future = self._read_future
        data = self._consume(size)
        self._clear_read()
        if future is not None and not future.done():
            future.set_result(data)

    def _finish_read_into(self) -> None:
        future = self._read_future
        result: Any = self._read_into_filled
        if self._read_target is not None:
            result = self._read_target
        self._clear_read()
        if future is not None and not future.done():
            future.set_result(result)

    def _finish_on_close(self) -> None:
        """Resolve a pending read_until_close when the stream has closed."""
        error = self.error
        if error is None or is_connreset(error):
            self._finish_read(self._buffered())

    def _keep_unfinished_into(self) -> None:
        """Put the bytes a read into a buffer had taken (``_read_into_filled``,
        not 0: the callers look first) back into the stream's buffer: the
        stream closed before the read was done, so its future fails and the
        caller never learns how many it holds. A later read of the closed
        stream then finds them, as on Tornado, rather than losing them with
        the failed read."""
        into = self._read_into
        if into is not None:  # (a read_into or a direct read_bytes)
            filled = self._read_into_filled
            self._rbuf = bytearray(into[:filled]) + self._rbuf[self._rpos :]
            self._rpos = 0
            self._read_into_filled = 0

    def _clear_read(self) -> None:
        self._read_future = None
        self._read_kind = 0
        self._read_regex = None
        into = self._read_into
        if into is not None:
            self._read_into = None
            # The caller may resize its buffer once the read is over.
            into.release()
            self._read_target = None

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
            state = self._state
            if state is None or not state & _READ:
                # Drained: listen again, to see an EOF while idle.
                self._want(_READ)
        elif pos >= _COMPACT_THRESHOLD and 2 * pos >= len(rbuf):
            del rbuf[:pos]
            pos = 0
        self._rpos = pos

    def _close_unsatisfiable(self, error: UnsatisfiableReadError) -> None:
        gen_log.info("Unsatisfiable read, closing connection: %s", error)
        if self._closed:
            # A read on a stream closed already, that what it left buffered
            # cannot satisfy: close() has nothing left to do, so the read
            # fails here, as Tornado's does (it was left pending forever).
            self._fail_pending()
            return
        self.close(exc_info=error)

    # -- provided by BaseIOStream ---------------------------------------------------------

    def read_from_fd(self, buf: bytearray | memoryview) -> Optional[int]:
        raise NotImplementedError()

    def close(self, exc_info: Any = False) -> None:
        raise NotImplementedError()

    def _new_future(self) -> Future[Any]:
        raise NotImplementedError()

    def _fail_pending(self) -> None:
        raise NotImplementedError()

    def _in_setup(self) -> bool:
        raise NotImplementedError()

    def _want(self, events: int) -> None:
        raise NotImplementedError()

    def _unwant(self, events: int) -> None:
        raise NotImplementedError()
