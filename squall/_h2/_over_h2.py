"""An HTTP/2 connection over the ``h2`` package: the base of the client side.

(The server side, `squall._h2._connection`, has its own framing: it is on
every request's hot path.) ``h2`` (python-hyper) does the framing, HPACK
and the stream state machines. This layer adds around it:

* the limits of `H2Limits`, checked on frame headers before ``h2`` parses
  anything, so that a flood costs a few integer operations per frame and
  the whole read is refused before a single handler starts;
* outbound flow control: body bytes over the peer's window wait here, per
  stream, and go out as WINDOW_UPDATE frames arrive (`Drained` says when a
  stream's queue is empty, for back-pressure);
* plain events (`squall._h2._events`) in place of ``h2``'s.

No I/O and no clock: the driver passes the current time to `receive_data`.
"""

from __future__ import annotations

import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

from squall._h2._connection import ErrorCode, _Bucket
from squall._h2._errors import LocalProtocolError, RemoteProtocolError
from squall._h2._events import Drained, Event
from squall._h2._limits import H2Limits

# Frame types (RFC 9113 §6) and the flags the limits look at.
_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS = 0, 1, 2, 3, 4
_PING, _WINDOW_UPDATE, _CONTINUATION = 6, 8, 9
_END_STREAM, _END_HEADERS = 0x1, 0x4
_KNOWN_TYPES = 10

__all__ = ["H2PackageConnection"]

_SettingCodes = h2.settings.SettingCodes


class _Outbox:
    """Body bytes of one stream waiting for flow-control window."""

    __slots__ = ("chunks", "size", "end")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.end = False


class H2PackageConnection:
    """An HTTP/2 connection over ``h2``: bytes in, events out (subclassed by
    the client, which sets up its own ``h2`` connection and events).

    Args:
        conn: The ``h2`` connection, configured by the subclass.
        limits: The limits in force.
    """

    def __init__(self, conn: h2.connection.H2Connection, limits: H2Limits) -> None:
        self.limits = limits
        self._conn = conn
        conn.max_inbound_frame_size = limits.max_frame_size
        conn.decoder.max_header_list_size = limits.max_header_list_size
        self._pending: dict[int, _Outbox] = {}
        # Frame-header scanner state: payload bytes still to skip, and a
        # frame header split across reads.
        self._skip = 0
        self._head = b""
        self._block_size = -1  # encoded header block so far; -1: not in one
        self._block_frames = 0
        self._resets = _Bucket(limits.max_resets_per_second)
        self._settings = _Bucket(limits.max_settings_per_second)
        self._pings = _Bucket(limits.max_pings_per_second)
        self._window_updates = _Bucket(limits.max_window_updates_per_second)
        self._empty = _Bucket(limits.max_empty_frames_per_second)
        self._goaway_sent = False
        self._terminated = False
        self._extra = b""  # frames built here, sent before h2's next bytes

    # -- starting ----------------------------------------------------------------

    # -- receiving ---------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Take bytes read from the peer; return the events they complete.

        Args:
            data: The bytes.
            now: The current time in seconds (any monotonic clock), for rates.

        Raises:
            RemoteProtocolError: the peer broke HTTP/2 or a limit. The
                GOAWAY is queued; send `data_to_send` and close.
        """
        if self._terminated:
            return []
        self._scan(data, now)
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._terminated = True
            raise RemoteProtocolError(
                str(exc),
                int(exc.error_code),
                too_large=isinstance(exc, h2.exceptions.DenialOfServiceError),
            ) from None
        return self._translate(events) if events else []

    def _scan(self, data: bytes, now: float) -> None:
        """Walk the frame headers in ``data`` and apply the rate and size limits."""
        skip = self._skip
        n = len(data)
        if skip >= n:
            self._skip = skip - n
            return
        if self._head:
            data = self._head + data
            n = len(data)
            pos = 0
        else:
            pos = skip
        while pos + 9 <= n:
            length = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
            kind = data[pos + 3]
            # A DATA frame with a payload is the common case and costs nothing.
            if kind != _DATA or length == 0:
                self._frame(kind, data[pos + 4], length, now)
            pos += 9 + length
        if pos >= n:
            self._skip = pos - n
            self._head = b""
        else:
            self._skip = 0
            self._head = data[pos:]

    def _frame(self, kind: int, flags: int, length: int, now: float) -> None:
        if kind == _HEADERS:
            if not flags & _END_HEADERS:
                self._block_size = length
                self._block_frames = 0
            self._check_block(length)
        elif kind == _CONTINUATION:
            if self._block_size >= 0:
                self._block_size += length
                self._block_frames += 1
                if self._block_frames > self.limits.max_continuation_frames:
                    self._calm(
                        f"more than {self.limits.max_continuation_frames} CONTINUATION frames"
                        " in one header block"
                    )
                self._check_block(self._block_size)
                if flags & _END_HEADERS:
                    self._block_size = -1
                elif length == 0 and not self._empty.take(now):
                    self._calm("too many empty frames")
        elif kind == _RST_STREAM:
            if not self._resets.take(now):
                self._calm(
                    f"more than {self.limits.max_resets_per_second:g} stream resets a second"
                )
        elif kind == _SETTINGS:
            if not self._settings.take(now):
                self._calm(
                    f"more than {self.limits.max_settings_per_second:g} SETTINGS frames a second"
                )
        elif kind == _PING:
            if not self._pings.take(now):
                self._calm(f"more than {self.limits.max_pings_per_second:g} PING frames a second")
        elif kind == _WINDOW_UPDATE:
            if not self._window_updates.take(now):
                self._calm(
                    f"more than {self.limits.max_window_updates_per_second:g}"
                    " WINDOW_UPDATE frames a second"
                )
        elif kind == _DATA:
            # Only empty DATA frames get here; the last one of a body is work.
            if not flags & _END_STREAM and not self._empty.take(now):
                self._calm("too many empty frames")
        elif kind == _PRIORITY or kind >= _KNOWN_TYPES:
            if not self._empty.take(now):
                self._calm("too many PRIORITY or unknown frames")

    def _check_block(self, size: int) -> None:
        if size > self.limits.max_header_list_size:
            self._calm(
                f"header block larger than {self.limits.max_header_list_size} bytes",
                too_large=True,
            )

    def _calm(self, message: str, too_large: bool = False) -> None:
        """Answer a flood: GOAWAY ENHANCE_YOUR_CALM, and raise."""
        self._terminated = True
        try:
            self._conn.close_connection(
                ErrorCode.ENHANCE_YOUR_CALM, additional_data=message.encode("ascii")
            )
        except h2.exceptions.ProtocolError:
            pass  # the connection was already closing
        raise RemoteProtocolError(message, ErrorCode.ENHANCE_YOUR_CALM, too_large)

    def _translate(self, events: list[h2.events.Event]) -> list[Event]:
        raise NotImplementedError

    def consumed(self, stream_id: int, flow_length: int) -> None:
        """Give ``flow_length`` bytes of receive window back (the body was read)."""
        if flow_length and not self._terminated:
            # h2 returns the connection's share even when the stream is gone.
            self._conn.acknowledge_received_data(flow_length, stream_id)

    # -- sending -------------------------------------------------------------------

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> bool:
        """Send body bytes, as far as the peer's windows allow; queue the rest.

        Returns:
            True if everything went into frames, False if some waits for
            window (a `Drained` event follows when it has gone).

        Raises:
            LocalProtocolError: the stream is closed.
        """
        box = self._pending.get(stream_id)
        if box is not None:
            if data:
                box.chunks.append(data)
                box.size += len(data)
            box.end = box.end or end_stream
            return False
        conn = self._conn
        try:
            window = conn.local_flow_control_window(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError):
            raise LocalProtocolError(f"stream {stream_id} is closed") from None
        size = len(data)
        frame = conn.max_outbound_frame_size
        if size <= window and size <= frame:
            conn.send_data(stream_id, data, end_stream=end_stream)
            self._window_updates.credit(2.0)
            return True
        box = self._pending[stream_id] = _Outbox()
        box.chunks.append(data)
        box.size = size
        box.end = end_stream
        self._send_some(stream_id, box)
        if box.size == 0 and not box.end:
            del self._pending[stream_id]
            return True
        return False

    def _send_some(self, stream_id: int, box: _Outbox) -> None:
        """Move as much of ``box`` into frames as the windows allow."""
        conn = self._conn
        frame = conn.max_outbound_frame_size
        window = conn.local_flow_control_window(stream_id)
        chunks = box.chunks
        while chunks and window > 0:
            chunk = chunks[0]
            n = min(len(chunk), window, frame)
            if n == len(chunk):
                chunks.pop(0)
                piece = chunk
            else:
                piece = chunk[:n]
                chunks[0] = chunk[n:]
            box.size -= n
            window -= n
            last = box.end and not chunks
            conn.send_data(stream_id, piece, end_stream=last)
            self._window_updates.credit(2.0)
            if last:
                box.end = False
                return
        if not chunks and box.end:
            # An end with nothing left to carry it (an empty final write).
            conn.end_stream(stream_id)
            box.end = False

    def _pump(self) -> list[Event]:
        done: list[Event] = []
        pending = self._pending
        for stream_id in list(pending):
            box = pending[stream_id]
            try:
                self._send_some(stream_id, box)
            except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError):
                del pending[stream_id]
                continue
            if not box.chunks and not box.end:
                del pending[stream_id]
                done.append(Drained(stream_id))
            if self._conn.outbound_flow_control_window <= 0:
                break
        return done

    def reset(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> None:
        """Reset ``stream_id`` (RST_STREAM); a closed stream is left alone."""
        self._pending.pop(stream_id, None)
        try:
            self._conn.reset_stream(stream_id, error_code)
        except h2.exceptions.ProtocolError:
            pass

    def goaway(self, error_code: int = ErrorCode.NO_ERROR, message: str = "") -> None:
        """Send GOAWAY with the last stream we took; no new streams after it.

        The streams already taken go on: the frame is built here rather
        than by ``h2``, whose state machine refuses to send anything after
        its own GOAWAY (RFC 9113 §6.8 lets them finish).
        """
        if self._goaway_sent or self._terminated:
            return
        self._goaway_sent = True
        frame = hyperframe.frame.GoAwayFrame(
            0,
            last_stream_id=self._conn.highest_inbound_stream_id,
            error_code=error_code,
            additional_data=message.encode("ascii", "replace"),
        )
        self._extra = self._conn.data_to_send() + frame.serialize()

    def data_to_send(self) -> bytes:
        """The bytes to write to the client now (and forget)."""
        extra = self._extra
        if extra:
            self._extra = b""
            return extra + self._conn.data_to_send()
        return self._conn.data_to_send()
