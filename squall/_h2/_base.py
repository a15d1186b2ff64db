"""One HTTP/2 connection's framing, stream states and flow control (RFC 9113).

What the server (`squall._h2._connection`) and the client
(`squall._h2._client`) have in common: frames in and out, the stream states
of `squall._h2._state`, both directions of flow control, SETTINGS, PING,
RST_STREAM, GOAWAY, header blocks split over CONTINUATION frames, HPACK
(`squall._h2._hpack`), and what an endpoint exposed to a hostile peer needs:

* the limits of `H2Limits`, checked as each frame header is read, so a
  flood costs a few integer operations per frame and the whole read is
  refused before any of it reaches the application;
* outbound flow control: body bytes over the peer's window wait here, per
  stream, and go out as WINDOW_UPDATE frames arrive (`Drained` says when a
  stream's queue is empty, for back-pressure);
* plain events (`squall._h2._events`).

A subclass says what a complete header block means (`_headers_done`: a
request, a response, trailers). A connection error queues GOAWAY and
raises `RemoteProtocolError`. No I/O and no clock: the driver passes the
current time to `receive_data`.
"""

from __future__ import annotations

import struct
from typing import Final, NoReturn, Optional

from squall._h2._errors import LocalProtocolError, RemoteProtocolError
from squall._h2._events import Data, Drained, EndOfStream, Event, Fields, GoAway, StreamReset
from squall._h2._framing import frame
from squall._h2._hpack import Decoder, DecodingError, HeaderListTooLarge, StatelessEncoder
from squall._h2._limits import H2Limits
from squall._h2._rules import length_mismatch
from squall._h2._state import CLOSED, OPEN

__all__ = ["PREFACE", "ErrorCode", "H2Base"]

#: The client connection preface (RFC 9113 §3.4).
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class ErrorCode:
    """The error codes of RFC 9113 §7 that this package uses."""

    NO_ERROR: Final = 0x0
    PROTOCOL_ERROR: Final = 0x1
    INTERNAL_ERROR: Final = 0x2
    FLOW_CONTROL_ERROR: Final = 0x3
    FRAME_SIZE_ERROR: Final = 0x6
    STREAM_CLOSED: Final = 0x5
    REFUSED_STREAM: Final = 0x7
    CANCEL: Final = 0x8
    COMPRESSION_ERROR: Final = 0x9
    ENHANCE_YOUR_CALM: Final = 0xB


# Frame types (RFC 9113 §6) and flags. Final, one name a line: the compiled
# build inlines them (a name bound by tuple unpacking is a dict lookup).
_DATA: Final = 0
_HEADERS: Final = 1
_PRIORITY: Final = 2
_RST_STREAM: Final = 3
_SETTINGS: Final = 4
_PUSH_PROMISE: Final = 5
_PING: Final = 6
_GOAWAY: Final = 7
_WINDOW_UPDATE: Final = 8
_CONTINUATION: Final = 9
_END_STREAM: Final = 0x1
_ACK: Final = 0x1
_END_HEADERS: Final = 0x4
_PADDED: Final = 0x8
_PRIORITY_FLAG: Final = 0x20

# SETTINGS identifiers (RFC 9113 §6.5.2).
_TABLE_SIZE: Final = 1
_ENABLE_PUSH: Final = 2
_MAX_STREAMS: Final = 3
_INITIAL_WINDOW: Final = 4
_MAX_FRAME: Final = 5
_MAX_HEADER_LIST: Final = 6
_ENABLE_CONNECT: Final = 8
_MAX_WINDOW: Final = 2**31 - 1
_DEFAULT_WINDOW: Final = 65535


_u32: Final = struct.Struct(">L")
_settings_entry: Final = struct.Struct(">HL")
# A block cut short can also index past its end.
_HPACK_ERRORS: Final = (DecodingError, IndexError)


def _goaway(last: int, code: int, message: str) -> bytes:
    payload = _u32.pack(last) + _u32.pack(code) + message.encode("ascii", "replace")
    return frame(_GOAWAY, 0, 0, payload)


class _ConnectionError(Exception):
    """Raised inside frame handling; `receive_data` turns it into GOAWAY."""

    def __init__(self, code: int, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.too_large = too_large


class _Bucket:
    """A token bucket: ``rate`` a second on average, bursts up to ``rate``."""

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = 0.0

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.rate:
            tokens = self.rate
        self.stamp = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True

    def credit(self, amount: float) -> None:
        tokens = self.tokens + amount
        self.tokens = tokens if tokens < self.rate else self.rate


class _Stream:
    """One stream: its state (RFC 9113 §5.1), windows, queued output."""

    __slots__ = (
        "state",
        "send_window",
        "recv_window",
        "unacked",
        "declared",
        "received",
        "chunks",
        "size",
        "end",
        "trailers",
    )

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.state = OPEN  # squall._h2._state
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0  # body bytes consumed, not yet given back
        self.declared = -1  # the message's Content-Length, -1 if none
        self.received = 0
        # Output waiting for window: chunks, their size, then the end
        # (an END_STREAM, or trailers: an encoded header block).
        self.chunks: list[bytes] = []
        self.size = 0
        self.end = False
        self.trailers: Optional[bytes] = None


class H2Base:
    """An HTTP/2 connection, either end: bytes in, events out.

    Args:
        limits: The limits in force (`H2Limits` defaults if None).
        peer_opens: The peer opens the streams (a server); else we do.
    """

    def __init__(self, limits: Optional[H2Limits], peer_opens: bool) -> None:
        self.limits = limits = limits or H2Limits()
        # The limits read for every request, as the connection's own fields
        # (H2Limits is interpreted: each read of it is a getattr).
        self.max_header_list_size: int = limits.max_header_list_size
        self.max_concurrent_streams: int = limits.max_concurrent_streams
        self._decoder = Decoder(limits.max_header_list_size)
        self._encoder = StatelessEncoder()
        self._streams: dict[int, _Stream] = {}
        self._pending: dict[int, _Stream] = {}  # streams with queued output
        # Streams we reset lately: what the peer sent before it knew is
        # dropped quietly (RFC 9113 §5.4.2), not answered as an error.
        self._reset_by_us: dict[int, None] = {}
        self._highest = 0  # the highest stream id opened, by either side
        self._peer_opens = peer_opens
        self._preface_left = len(PREFACE) if peer_opens else 0
        self._buf = b""
        self._out: list[bytes] = []
        # Windows: ours towards the peer (send) and the peer's towards us.
        self._send_window = _DEFAULT_WINDOW
        self._peer_initial = _DEFAULT_WINDOW
        self._peer_max_frame = 16384
        self._peer_max_streams = 2**31  # none announced: no limit (§6.5.2)
        self._recv_window = _DEFAULT_WINDOW
        self._recv_unacked = 0
        # Until the peer acknowledges our SETTINGS it may assume the
        # default stream window; new streams get the larger of the two.
        self._settings_acked = False
        self._stream_window = max(_DEFAULT_WINDOW, limits.initial_window_size)
        # The peer changed SETTINGS_HEADER_TABLE_SIZE: our next header
        # block starts with a table size update (RFC 7541 §4.2).
        self._table_update = False
        # A header block in progress (HEADERS without END_HEADERS).
        self._block_sid = 0
        self._block_flags = 0
        self._block_parts: list[bytes] = []
        self._block_size = 0
        self._block_frames = 0
        self._resets = _Bucket(limits.max_resets_per_second)
        self._settings = _Bucket(limits.max_settings_per_second)
        self._pings = _Bucket(limits.max_pings_per_second)
        self._window_updates = _Bucket(limits.max_window_updates_per_second)
        self._empty = _Bucket(limits.max_empty_frames_per_second)
        self._goaway_sent = False
        self._goaway_last = _MAX_WINDOW
        self._terminated = False

    def _send_settings(self, first: tuple[tuple[int, int], ...] = ()) -> None:
        """Queue our SETTINGS (``first``, then the limits both ends send, and
        no push), and open the connection's receive window."""
        limits = self.limits
        settings = first + (
            (_MAX_HEADER_LIST, limits.max_header_list_size),
            (_INITIAL_WINDOW, limits.initial_window_size),
            (_MAX_FRAME, limits.max_frame_size),
            (_ENABLE_PUSH, 0),
        )
        self._out.append(
            frame(_SETTINGS, 0, 0, b"".join(_settings_entry.pack(k, v) for k, v in settings))
        )
        extra = self.limits.connection_window_size - _DEFAULT_WINDOW
        if extra > 0:
            self._out.append(frame(_WINDOW_UPDATE, 0, 0, _u32.pack(extra)))
            self._recv_window += extra

    def _new_stream(self, sid: int) -> _Stream:
        stream = self._streams[sid] = _Stream(self._peer_initial, self._stream_window)
        return stream

    # A complete header block on a stream (sid, flags, its decoded fields,
    # whether it depends on itself, events, now): the subclass says what it
    # is (a request, a response, trailers). Every block is decoded first,
    # here (HPACK's state is the connection's, whatever happens to the
    # stream next); a block HPACK refuses goes to _undecodable.
    def _headers_done(
        self, sid: int, flags: int, fields: Fields, cyclic: bool, events: list[Event], now: float
    ) -> None:
        # A method, not an annotated attribute: mypyc compiles this module,
        # and a compiled attribute cannot be overridden by a method.
        raise NotImplementedError

    def _undecodable(self, exc: Exception) -> NoReturn:
        """A header block HPACK refused: the connection cannot go on (§4.3)."""
        if isinstance(exc, HeaderListTooLarge):
            self._calm(
                f"header list larger than {self.limits.max_header_list_size} bytes",
                too_large=True,
            )
        raise _ConnectionError(ErrorCode.COMPRESSION_ERROR, f"bad HPACK block: {exc}") from None

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
        buf = self._buf + data if self._buf else data
        pos = 0
        if self._preface_left:
            used = min(self._preface_left, len(buf))
            start = len(PREFACE) - self._preface_left
            if buf[:used] != PREFACE[start : start + used]:
                self._terminated = True
                raise RemoteProtocolError("invalid connection preface")
            self._preface_left -= used
            pos = used
        events: list[Event] = []
        n = len(buf)
        max_frame = self.limits.max_frame_size
        try:
            while n - pos >= 9:
                length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                if length > max_frame:
                    raise _ConnectionError(
                        ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes is over the limit"
                    )
                end = pos + 9 + length
                if end > n:
                    break
                kind = buf[pos + 3]
                flags = buf[pos + 4]
                sid = _u32.unpack_from(buf, pos + 5)[0] & 0x7FFFFFFF
                payload = buf[pos + 9 : end]
                pos = end
                if self._block_sid and kind != _CONTINUATION:
                    raise _ConnectionError(
                        ErrorCode.PROTOCOL_ERROR, "header block interrupted by another frame"
                    )
                if kind == _HEADERS:
                    self._on_headers(sid, flags, payload, events, now)
                elif kind == _DATA:
                    self._on_data(sid, flags, payload, events, now)
                else:
                    self._on_control(kind, sid, flags, payload, events, now)
        except _ConnectionError as exc:
            self._fail(exc.code, str(exc))
            raise RemoteProtocolError(str(exc), exc.code, exc.too_large) from None
        self._buf = buf[pos:] if pos < n else b""
        return events

    def _fail(self, code: int, message: str) -> None:
        """A connection error: queue GOAWAY with ``code``; nothing more is read."""
        self._terminated = True
        if not self._goaway_sent:
            self._goaway_sent = True
            self._out.append(_goaway(self._last_taken(), code, message))

    def _calm(self, message: str, too_large: bool = False) -> NoReturn:
        raise _ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, message, too_large)

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & _PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - payload[0]]

    def _on_data(
        self, sid: int, flags: int, payload: bytes, events: list[Event], now: float
    ) -> None:
        flow = len(payload)
        if sid == 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        if flow == 0 and not flags & _END_STREAM and not self._empty.take(now):
            self._calm("too many empty frames")
        data = self._unpad(flags, payload)
        self._recv_window -= flow
        if self._recv_window < 0:
            raise _ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window exceeded")
        stream = self._streams.get(sid)
        if stream is None or not stream.state.peer_open:
            self.consumed(sid, flow)  # only the connection's share: no stream to give it
            if stream is None and sid > self._highest:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            if sid not in self._reset_by_us:
                self._stream_error(sid, ErrorCode.STREAM_CLOSED, events)
            return
        stream.recv_window -= flow
        if stream.recv_window < 0:
            self.consumed(sid, flow)
            self._stream_error(sid, ErrorCode.FLOW_CONTROL_ERROR, events)
            return
        received = stream.received = stream.received + len(data)
        declared = stream.declared
        if declared >= 0 and (
            received > declared or (flags & _END_STREAM and received != declared)
        ):
            # RFC 9113 §8.1.1: a body that disagrees with Content-Length.
            self.consumed(sid, flow)
            self._stream_error(
                sid, ErrorCode.PROTOCOL_ERROR, events, length_mismatch(received, declared)
            )
            return
        if data:
            events.append(Data(sid, data, flow))
        elif flow:
            self.consumed(sid, flow)  # padding only
        if flags & _END_STREAM:
            self._remote_end(sid, stream, events)

    def _remote_end(self, sid: int, stream: _Stream, events: list[Event]) -> None:
        state = stream.state = stream.state.after_recv_end or CLOSED
        events.append(EndOfStream(sid))
        if state is CLOSED:
            self._forget(sid)

    def _on_headers(
        self, sid: int, flags: int, payload: bytes, events: list[Event], now: float
    ) -> None:
        if sid == 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        fragment = self._unpad(flags, payload)
        self_dependent = False
        if flags & _PRIORITY_FLAG:
            if len(fragment) < 5:
                raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "HEADERS priority too short")
            self_dependent = _u32.unpack_from(fragment)[0] & 0x7FFFFFFF == sid
            fragment = fragment[5:]
        if len(fragment) > self.max_header_list_size:
            self._calm(
                f"header block larger than {self.max_header_list_size} bytes",
                too_large=True,
            )
        if flags & _END_HEADERS:
            try:
                fields = self._decoder.decode(fragment)
            except _HPACK_ERRORS as exc:
                self._undecodable(exc)
            self._headers_done(sid, flags, fields, self_dependent, events, now)
            return
        self._block_sid = sid
        self._block_flags = flags | (0x100 if self_dependent else 0)
        self._block_parts = [fragment]
        self._block_size = len(fragment)
        self._block_frames = 0

    def _on_continuation(
        self, sid: int, flags: int, payload: bytes, events: list[Event], now: float
    ) -> None:
        if not self._block_sid or sid != self._block_sid:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        limits = self.limits
        self._block_frames += 1
        if self._block_frames > limits.max_continuation_frames:
            self._calm(
                f"more than {limits.max_continuation_frames} CONTINUATION frames"
                " in one header block"
            )
        self._block_size += len(payload)
        if self._block_size > self.max_header_list_size:
            self._calm(f"header block larger than {self.max_header_list_size} bytes", True)
        self._block_parts.append(payload)
        if not flags & _END_HEADERS:
            if not payload and not self._empty.take(now):
                self._calm("too many empty frames")
            return
        block = b"".join(self._block_parts)
        flags = self._block_flags
        self._block_sid = 0
        self._block_parts = []
        try:
            fields = self._decoder.decode(block)
        except _HPACK_ERRORS as exc:
            self._undecodable(exc)
        self._headers_done(sid, flags, fields, bool(flags & 0x100), events, now)

    def _stream_error(self, sid: int, code: int, events: list[Event], reason: str = "") -> None:
        """Reset ``sid`` for a stream error; tell the driver if it knew the
        stream, and ``reason``, what the peer broke."""
        if sid in self._streams:
            self.reset(sid, code)
            events.append(StreamReset(sid, code, False, reason))
        elif sid <= self._highest and sid not in self._reset_by_us and not self._terminated:
            # A closed stream that the peer still sends on.
            self._send_reset(sid, code)

    def _on_control(
        self, kind: int, sid: int, flags: int, payload: bytes, events: list[Event], now: float
    ) -> None:
        if kind == _CONTINUATION:
            self._on_continuation(sid, flags, payload, events, now)
        elif kind == _WINDOW_UPDATE:
            self._on_window_update(sid, payload, events, now)
        elif kind == _SETTINGS:
            if sid:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
            if not self._settings.take(now):
                self._calm(
                    f"more than {self.limits.max_settings_per_second:g} SETTINGS frames a second"
                )
            if flags & _ACK:
                if payload:
                    raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ack with a body")
                self._on_settings_ack()
                return
            old_initial = self._peer_initial
            self._apply_settings(payload)
            self._out.append(frame(_SETTINGS, _ACK, 0, b""))
            if self._peer_initial != old_initial and self._pending:
                events.extend(self._pump())
        elif kind == _RST_STREAM:
            if len(payload) != 4:
                raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM not 4 bytes")
            if sid == 0:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if not self._resets.take(now):
                self._calm(
                    f"more than {self.limits.max_resets_per_second:g} stream resets a second"
                )
            if sid > self._highest:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
            if self._streams.pop(sid, None) is not None:
                self._pending.pop(sid, None)
                events.append(StreamReset(sid, _u32.unpack(payload)[0], True))
        elif kind == _PING:
            if len(payload) != 8:
                raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PING not 8 bytes")
            if sid:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
            if not self._pings.take(now):
                self._calm(f"more than {self.limits.max_pings_per_second:g} PING frames a second")
            if not flags & _ACK:
                self._out.append(frame(_PING, _ACK, 0, payload))
        elif kind == _GOAWAY:
            if sid:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
            if len(payload) < 8:
                raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            last, code = _u32.unpack_from(payload)[0] & 0x7FFFFFFF, _u32.unpack_from(payload, 4)[0]
            events.append(GoAway(code, last))
        elif kind == _PUSH_PROMISE:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE, but push is off")
        else:
            # PRIORITY (deprecated by RFC 9113 §5.3.2, still checked) and
            # unknown types (ignored, §5.5): work-free frames, rate-limited.
            if not self._empty.take(now):
                self._calm("too many PRIORITY or unknown frames")
            if kind == _PRIORITY:
                if sid == 0:
                    raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0")
                if len(payload) != 5:
                    self._stream_error(sid, ErrorCode.FRAME_SIZE_ERROR, events)
                elif _u32.unpack_from(payload)[0] & 0x7FFFFFFF == sid:
                    # RFC 7540 §5.3.1: a stream error, but an idle stream
                    # cannot be reset (RFC 9113 §6.4): the connection goes.
                    if sid > self._highest:
                        raise _ConnectionError(
                            ErrorCode.PROTOCOL_ERROR, f"idle stream {sid} depends on itself"
                        )
                    self._stream_error(sid, ErrorCode.PROTOCOL_ERROR, events)

    def _apply_settings(self, payload: bytes) -> None:
        """The peer's SETTINGS (RFC 9113 §6.5.2)."""
        if len(payload) % 6:
            raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes")
        for pos in range(0, len(payload), 6):
            key, value = _settings_entry.unpack_from(payload, pos)
            if key == _INITIAL_WINDOW:
                if value > _MAX_WINDOW:
                    raise _ConnectionError(
                        ErrorCode.FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE {value}"
                    )
                delta = value - self._peer_initial
                self._peer_initial = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > _MAX_WINDOW:
                        raise _ConnectionError(
                            ErrorCode.FLOW_CONTROL_ERROR, "stream window over 2^31-1"
                        )
            elif key == _MAX_FRAME:
                if not 16384 <= value < 2**24:
                    raise _ConnectionError(
                        ErrorCode.PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value}"
                    )
                self._peer_max_frame = value
            elif key == _MAX_STREAMS:
                self._peer_max_streams = value
            elif key == _TABLE_SIZE:
                self._table_update = True
            elif key in (_ENABLE_PUSH, _ENABLE_CONNECT) and value > 1:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, f"SETTINGS {key} = {value}")
            # MAX_HEADER_LIST_SIZE (advisory) and unknown settings
            # (§6.5.2) need nothing.

    def _on_settings_ack(self) -> None:
        if self._settings_acked:
            return
        self._settings_acked = True
        # Our INITIAL_WINDOW_SIZE is in force: streams opened under the
        # default window take the difference.
        delta = self.limits.initial_window_size - self._stream_window
        self._stream_window = self.limits.initial_window_size
        if delta:
            for stream in self._streams.values():
                stream.recv_window += delta

    def _on_window_update(self, sid: int, payload: bytes, events: list[Event], now: float) -> None:
        if len(payload) != 4:
            raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 bytes")
        if not self._window_updates.take(now):
            self._calm(
                f"more than {self.limits.max_window_updates_per_second:g}"
                " WINDOW_UPDATE frames a second"
            )
        increment = _u32.unpack(payload)[0] & 0x7FFFFFFF
        if sid == 0:
            if not increment:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > _MAX_WINDOW:
                raise _ConnectionError(
                    ErrorCode.FLOW_CONTROL_ERROR, "connection window over 2^31-1"
                )
        else:
            stream = self._streams.get(sid)
            if stream is None:
                if sid > self._highest:
                    raise _ConnectionError(
                        ErrorCode.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}"
                    )
                return  # a closed stream: the peer had not heard yet
            if not increment:
                self._stream_error(sid, ErrorCode.PROTOCOL_ERROR, events)
                return
            stream.send_window += increment
            if stream.send_window > _MAX_WINDOW:
                self._stream_error(sid, ErrorCode.FLOW_CONTROL_ERROR, events)
                return
        if self._pending:
            events.extend(self._pump())

    def consumed(self, stream_id: int, flow_length: int) -> None:
        """Give ``flow_length`` bytes of receive window back (the body was read).

        WINDOW_UPDATE frames go out once half a window has been read, not
        per frame.
        """
        if not flow_length or self._terminated:
            return
        unacked = self._recv_unacked + flow_length
        if unacked >= self.limits.connection_window_size // 2:
            self._out.append(frame(_WINDOW_UPDATE, 0, 0, _u32.pack(unacked)))
            self._recv_window += unacked
            unacked = 0
        self._recv_unacked = unacked
        stream = self._streams.get(stream_id)
        if stream is not None and stream.state.peer_open:
            n = stream.unacked + flow_length
            if n >= self._stream_window // 2:
                self._out.append(frame(_WINDOW_UPDATE, 0, stream_id, _u32.pack(n)))
                stream.recv_window += n
                n = 0
            stream.unacked = n

    # -- sending -------------------------------------------------------------------

    def _header_frames(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        if self._table_update:
            # RFC 7541 §4.2, §6.3: we never use the dynamic table; say its
            # size is 0, which fits whatever the peer allows.
            self._table_update = False
            block = b"\x20" + block
        size = self._peer_max_frame
        flags = _END_STREAM if end_stream else 0
        if len(block) <= size:
            self._out.append(frame(_HEADERS, flags | _END_HEADERS, stream_id, block))
            return
        self._out.append(frame(_HEADERS, flags, stream_id, block[:size]))
        for pos in range(size, len(block), size):
            last = pos + size >= len(block)
            self._out.append(
                frame(
                    _CONTINUATION, _END_HEADERS if last else 0, stream_id, block[pos : pos + size]
                )
            )

    def _open_stream(self, stream_id: int) -> _Stream:
        # (Inlined in send_data and send_headers, which run per request.)
        stream = self._streams.get(stream_id)
        if stream is None or not stream.state.self_open:
            raise LocalProtocolError(f"stream {stream_id} is closed")
        return stream

    def _local_end(self, stream_id: int, stream: _Stream) -> None:
        state = stream.state = stream.state.after_send_end or CLOSED
        if state is CLOSED:
            self._forget(stream_id)

    def _forget(self, stream_id: int) -> None:
        del self._streams[stream_id]
        self._pending.pop(stream_id, None)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> bool:
        """Send body bytes, as far as the peer's windows allow; queue the rest.

        Returns:
            True if everything went into frames, False if some waits for
            window (a `Drained` event follows when it has gone).

        Raises:
            LocalProtocolError: the stream is closed.
        """
        stream = self._streams.get(stream_id)
        if stream is None or not stream.state.self_open or stream.end:
            raise LocalProtocolError(f"stream {stream_id} is closed")
        size = len(data)
        if stream.size == 0 and (
            size <= self._send_window
            and size <= stream.send_window
            and size <= self._peer_max_frame
        ):
            # The common case: one frame, windows open.
            self._send_window -= size
            stream.send_window -= size
            self._out.append(frame(_DATA, _END_STREAM if end_stream else 0, stream_id, data))
            self._window_updates.credit(2.0)
            if end_stream:
                self._local_end(stream_id, stream)
            return True
        if data:
            stream.chunks.append(data)
            stream.size += size
        stream.end = end_stream
        self._pending[stream_id] = stream
        self._send_some(stream_id, stream)
        return stream_id not in self._pending

    def _send_some(self, stream_id: int, stream: _Stream) -> None:
        """Move as much of ``stream``'s queue into frames as the windows allow."""
        chunks = stream.chunks
        max_frame = self._peer_max_frame
        while chunks:
            window = min(self._send_window, stream.send_window)
            if window <= 0:
                return
            chunk = chunks[0]
            n = min(len(chunk), window, max_frame)
            if n == len(chunk):
                chunks.pop(0)
                piece = chunk
            else:
                piece = chunk[:n]
                chunks[0] = chunk[n:]
            stream.size -= n
            self._send_window -= n
            stream.send_window -= n
            last = stream.end and not chunks and stream.trailers is None
            self._out.append(frame(_DATA, _END_STREAM if last else 0, stream_id, piece))
            self._window_updates.credit(2.0)
            if last:
                del self._pending[stream_id]
                self._local_end(stream_id, stream)
                return
        # Everything went; an end still to send has no data to carry it.
        del self._pending[stream_id]
        if stream.end:
            trailers = stream.trailers
            stream.trailers = None
            if trailers is not None:
                self._header_frames(stream_id, trailers, True)
            else:
                self._out.append(frame(_DATA, _END_STREAM, stream_id, b""))
            self._local_end(stream_id, stream)

    def _pump(self) -> list[Event]:
        done: list[Event] = []
        for stream_id, stream in list(self._pending.items()):
            self._send_some(stream_id, stream)
            if stream_id not in self._pending:
                done.append(Drained(stream_id))
            if self._send_window <= 0:
                break
        return done

    def end_stream(self, stream_id: int) -> bool:
        """End the response on ``stream_id`` (after what is queued).

        Returns:
            True if the end went out, False if it waits behind queued data.
        """
        return self.send_data(stream_id, b"", end_stream=True)

    def pending(self, stream_id: int) -> int:
        """Body bytes queued on ``stream_id`` for want of window."""
        stream = self._pending.get(stream_id)
        return 0 if stream is None else stream.size

    def _send_reset(self, stream_id: int, code: int) -> None:
        self._out.append(frame(_RST_STREAM, 0, stream_id, _u32.pack(code)))
        reset = self._reset_by_us
        reset[stream_id] = None
        if len(reset) > 2 * self.limits.max_concurrent_streams + 100:
            del reset[next(iter(reset))]

    def reset(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> None:
        """Reset ``stream_id`` (RST_STREAM) if it is still open.

        A closed stream is left alone: one the peer reset above all,
        since a reset is never answered with one (RFC 9113 §5.4.2).
        """
        if self._terminated:
            return
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._pending.pop(stream_id, None)
            self._send_reset(stream_id, error_code)

    def goaway(self, error_code: int = ErrorCode.NO_ERROR, message: str = "") -> None:
        """Send GOAWAY with the last stream we took; no new streams after it.

        The streams already taken go on (RFC 9113 §6.8).
        """
        if self._goaway_sent or self._terminated:
            return
        self._goaway_sent = True
        self._goaway_last = last = self._last_taken()
        self._out.append(_goaway(last, error_code, message))

    def _last_taken(self) -> int:
        """The last stream id a GOAWAY of ours names: the highest the peer
        opened (RFC 9113 §6.8); 0 on a client, whose peer opens none."""
        return self._highest if self._peer_opens else 0

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (and forget)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)
