"""The write buffer: a queue of pending output that never copies large pieces.

Small writes are joined into a growing ``bytearray`` so that a burst of tiny
writes leaves as one large send; a write above the threshold is queued by
reference (as a byte-cast ``memoryview``) and never copied. Views of the
caller's objects are released as soon as they are consumed, so a caller's
``bytearray`` becomes resizable again once its bytes are sent.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional, Union

__all__ = ["NO_WRITES", "_StreamBuffer"]

_Piece = Union[bytearray, memoryview]

# A piece larger than this is queued by reference; smaller pieces are joined.
_DEFAULT_LARGE_BUF_THRESHOLD = 64 * 1024


class _StreamBuffer:
    """A FIFO of bytes built from appended pieces, consumed from the front."""

    __slots__ = ("_buffers", "_first_pos", "_size", "_large_buf_threshold")

    def __init__(self) -> None:
        # Made at the first append: an empty deque costs 760 bytes, which
        # every idle connection (a WebSocket's stream) would carry.
        self._buffers: Optional[collections.deque[_Piece]] = None
        # Bytes of the first piece already consumed.
        self._first_pos = 0
        self._size = 0
        self._large_buf_threshold = _DEFAULT_LARGE_BUF_THRESHOLD

    def __len__(self) -> int:
        return self._size

    def append(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Queue ``data``; large pieces by reference, small ones by copy."""
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        buffers = self._buffers
        if buffers is None:
            if not size:
                return
            buffers = self._buffers = collections.deque()
        if size > self._large_buf_threshold:
            view = memoryview(data)
            if view.format != "B" or view.ndim != 1:
                flat = view.cast("B")
                view.release()
                view = flat
            buffers.append(view)
        elif size:
            last = buffers[-1] if buffers else None
            if isinstance(last, bytearray) and len(last) < self._large_buf_threshold:
                last += data
            else:
                buffers.append(bytearray(data))
        self._size += size

    def front(self, size: int) -> memoryview:
        """Return a view of up to ``size`` bytes from the front; the caller releases it."""
        buffers = self._buffers
        if not buffers:
            return memoryview(b"")
        start = self._first_pos
        with memoryview(buffers[0]) as whole:
            return whole[start : start + size]

    @contextmanager
    def peek(self, size: int) -> Iterator[memoryview]:
        """Yield a view of up to ``size`` bytes from the front.

        The view is non-empty while the buffer is, and is released when the
        ``with`` block ends; the buffer must not be changed before that.
        """
        view = self.front(size)
        try:
            yield view
        finally:
            view.release()

    def advance(self, size: int) -> None:
        """Drop ``size`` bytes from the front."""
        if size > self._size or size < 0:
            raise ValueError(f"cannot advance {size} bytes in a buffer of {self._size}")
        self._size -= size
        buffers = self._buffers
        if buffers is None:
            return
        pos = self._first_pos + size
        while buffers:
            first = buffers[0]
            length = len(first) if isinstance(first, bytearray) else first.nbytes
            if pos < length:
                break
            buffers.popleft()
            if isinstance(first, memoryview):
                first.release()
            pos -= length
        self._first_pos = pos if buffers else 0

    def clear(self) -> None:
        """Drop everything, releasing the views of the callers' objects."""
        buffers = self._buffers
        if buffers is not None:
            for piece in buffers:
                if isinstance(piece, memoryview):
                    piece.release()
            buffers.clear()
        self._first_pos = 0
        self._size = 0


class _NoWrites(_StreamBuffer):
    """The empty write buffer of a stream that has queued nothing yet.

    Shared, so nothing changes it: `append` refuses (the stream makes a
    buffer of its own first, see `BaseIOStream.write`) and `clear` has
    nothing to drop. A stream that writes mostly straight to its transport
    (the server's detached connections: `_TransportStream`) starts with it,
    and an idle one keeps no buffer of its own (memory per idle connection).
    """

    __slots__ = ()

    def append(self, data: Union[bytes, bytearray, memoryview]) -> None:
        raise RuntimeError("the shared empty write buffer takes no data")

    def advance(self, size: int) -> None:
        if size:
            super().advance(size)  # (raises: there is nothing to drop)

    def clear(self) -> None:
        pass


NO_WRITES = _NoWrites()
