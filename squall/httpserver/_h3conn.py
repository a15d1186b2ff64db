"""The QUIC stack's HTTP/3 layer (aioquic's or qh3's, `squall._quicstack`)
with our QPACK settings and our limits, each checked before the work it
bounds (server and client use it alike).

- QPACK (RFC 9204 §5): a dynamic table of `QPACK_TABLE_CAPACITY` bytes and
  `QPACK_BLOCKED_STREAMS` blocked streams (none: a peer's encoder may use
  only entries we have acknowledged, so no stream ever waits here with its
  input piling up), announced in SETTINGS with SETTINGS_MAX_FIELD_SECTION_SIZE
  (RFC 9114 §7.2.4.1).
- A HEADERS frame longer than the field section limit is refused as soon
  as its length is read (a section never encodes to more than its
  decoded size counts), and its payload is skipped as it arrives, not
  gathered (RFC 9114 §4.2.2, §10.5). A SETTINGS or MAX_PUSH_ID frame
  longer than `CONTROL_FRAME_MAX`, or a PUSH_PROMISE over the limit, is a
  connection error (H3_EXCESSIVE_LOAD). On qh3, which reads a HEADERS
  frame whole before handing it over, a frame up to ``decode_budget``
  bytes is read and then refused (431), a longer one is refused as its
  length is read and what follows on its stream dropped as it arrives;
  a control frame is checked by its length as soon as that is read.
- A section whose decoded size could pass ``decode_budget`` (four times
  the limit), or with more field lines than allowed, is refused before
  the decoder sees it: ls-qpack decodes a section in one call that cannot
  be stopped, so the bound comes from the section's references
  (`squall._qpack.section_cost`). What passes is decoded, and refused
  after all if its real size or count is over the limit (before aioquic
  validates it byte by byte).

A section the stack's own checks find malformed (RFC 9114 section 4.1.2:
an uppercase name, a value ending in a space, a pseudo-header missing, out
of place or unknown), or a body not as long as its Content-Length said, is
refused the same way, as its stream's error: the stacks closed the whole
connection over it (H3_MESSAGE_ERROR), failing every other request or
fetch on it.

A refused section becomes a `HeadersRefused` event, and nothing else of
that stream is reported; the driver answers it (431 or 400 on a server, an
error for the client's fetch) and stops the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from squall._h1 import H1Limits
from squall._qpack import ENTRY_OVERHEAD, literal_section, section_cost
from squall._quicstack import (
    STACK,
    Buffer,
    BufferReadError,
    DataReceived,
    FieldSectionTooLarge,
    FrameType,
    H3Connection,
    H3Error,
    H3Event,
    H3Stream,
    Headers,
    HeadersReceived,
    HeadersState,
    MessageError,
    ProtocolError,
    QpackDecompressionFailed,
    QuicConnection,
    QuicEvent,
    Setting,
    qpack_decoder,
)

__all__ = [
    "CONTROL_FRAME_MAX",
    "GuardedH3Connection",
    "HeadersRefused",
    "MAX_FIELDS",
    "QPACK_BLOCKED_STREAMS",
    "QPACK_TABLE_CAPACITY",
]

# The dynamic table a peer's encoder may fill (the common 4 KiB: aioquic's,
# nghttp3's, Chrome's); each reference to it costs at most this much.
QPACK_TABLE_CAPACITY = 4096
QPACK_BLOCKED_STREAMS = 0
# Field lines in one section: HTTP/1.1's limit.
MAX_FIELDS = H1Limits().max_header_count
# SETTINGS and MAX_PUSH_ID are read whole; real ones are tens of bytes.
CONTROL_FRAME_MAX = 4096
# How many times the section limit the decoder may be asked to produce
# before the section's real size is known.
_BUDGET_FACTOR = 4
# A reserved frame type (RFC 9114 §7.2.8): aioquic drops such a frame's
# payload as it arrives, which is what a refused HEADERS frame needs.
_SKIPPED = 0x21


@dataclass
class HeadersRefused(H3Event):
    """A field section refused unread (or read and found over the limit);
    ``malformed``: one that breaks HTTP/3's rules (RFC 9114 section 4.1.2),
    refused as its stream's error."""

    stream_id: int
    reason: str
    malformed: bool = False


class _ExcessiveLoad(ProtocolError):
    error_code = H3Error.H3_EXCESSIVE_LOAD


class _Refused(Exception):
    pass


_QH3 = STACK == "qh3"


def _check_control_frame(head: bytes) -> None:
    """A control frame whose type and length start ``head``: refused if
    it is a SETTINGS or MAX_PUSH_ID longer than `CONTROL_FRAME_MAX`."""
    buf = Buffer(data=head)
    try:
        frame_type = buf.pull_uint_var()
        size = buf.pull_uint_var()
    except BufferReadError:
        return
    if frame_type in (FrameType.SETTINGS, FrameType.MAX_PUSH_ID) and size > CONTROL_FRAME_MAX:
        raise _ExcessiveLoad(f"control frame of {size} bytes")


def _stream_cancellation(decoder: Any, stream_id: int) -> bytes:
    """RFC 9204 section 4.4.2: the decoder's Stream Cancellation for
    ``stream_id`` (ls-qpack makes it; qh3's decoder has no call for it:
    01 and a 6-bit prefix integer)."""
    if not _QH3:
        cancellation: bytes = decoder.cancel_stream(stream_id)
        return cancellation
    if stream_id < 0x3F:
        return bytes([0x40 | stream_id])
    out = bytearray([0x40 | 0x3F])
    rest = stream_id - 0x3F
    while rest >= 0x80:
        out.append(0x80 | (rest & 0x7F))
        rest >>= 7
    out.append(rest)
    return bytes(out)


class GuardedH3Connection(H3Connection):
    """`H3Connection` with a field section limit enforced before decoding.

    Args:
        quic: the QUIC connection.
        max_field_section: largest header section, counted as RFC 9114
            §4.2.2 counts it (name + value + 32 per field).
        max_fields: most field lines in one section.
    """

    def __init__(
        self, quic: QuicConnection, max_field_section: int, max_fields: int = MAX_FIELDS
    ) -> None:
        self.max_field_section = max_field_section
        self.max_fields = max_fields
        self.decode_budget = _BUDGET_FACTOR * max_field_section
        self._refusals: list[H3Event] = []
        # Streams refused: their later events are not reported.
        self._refused: set[int] = set()
        super().__init__(quic)

    def _init_connection(self) -> None:
        # Runs at the end of H3Connection.__init__, before the SETTINGS
        # are sent and before the decoder has read anything.
        self._max_table_capacity = QPACK_TABLE_CAPACITY
        self._blocked_streams = QPACK_BLOCKED_STREAMS
        if _QH3:
            # qh3 reads a HEADERS frame whole before decoding it, up to
            # this many bytes (past it, its connection error, made the
            # stream's refusal by `_receive_request_or_push_data`).
            self._max_field_section_size = self.max_field_section
            self._max_encoded_field_section_size = self.decode_budget
        self._decoder = qpack_decoder(QPACK_TABLE_CAPACITY, QPACK_BLOCKED_STREAMS)
        super()._init_connection()

    def _get_local_settings(self) -> dict[int, int]:
        settings = super()._get_local_settings()
        settings[Setting.MAX_FIELD_SECTION_SIZE] = self.max_field_section
        # Extended CONNECT (RFC 9220: WebSockets, WebTransport): aioquic
        # offers it on its own, qh3 does not.
        settings[Setting.ENABLE_CONNECT_PROTOCOL] = 1
        return settings

    def handle_event(self, event: QuicEvent) -> list[H3Event]:
        events = super().handle_event(event)
        refused = self._refused
        if not refused:
            return events
        out = self._refusals
        self._refusals = []
        for h3_event in events:
            if not (
                isinstance(h3_event, (HeadersReceived, DataReceived))
                and h3_event.stream_id in refused
            ):
                out.append(h3_event)
        # Streams aioquic has let go of are done with.
        refused.intersection_update(self._stream)
        return out

    # -- limits, at the points aioquic reads frames ---------------------------------

    def _check_request_or_push_frame_type(self, frame_type: int, stream: H3Stream) -> None:
        super()._check_request_or_push_frame_type(frame_type, stream)
        if frame_type not in (FrameType.HEADERS, FrameType.PUSH_PROMISE):
            return
        size = stream.frame_size
        if size is not None and size > self.max_field_section:
            reason = f"header section of {size} bytes (limit {self.max_field_section})"
            if frame_type == FrameType.PUSH_PROMISE:
                raise _ExcessiveLoad(reason)
            self._refuse(stream, reason)
            stream.frame_type = _SKIPPED

    if _QH3:

        def _receive_request_or_push_data(
            self, stream: H3Stream, data: bytes, stream_ended: bool
        ) -> list[H3Event]:
            # qh3 reads what comes on a request stream here, a HEADERS frame
            # whole; one whose length is over decode_budget was a connection
            # error (H3_EXCESSIVE_LOAD), which failed every request on the
            # connection, and a client's fetch only once the close's drain
            # period had passed. It is the stream's refusal, as on aioquic
            # (`_check_request_or_push_frame_type`), and the rest of a
            # refused stream is dropped as it arrives, not gathered.
            if stream.stream_id in self._refused:
                if stream_ended:
                    stream.receiving_ended = True
                return []
            try:
                return super()._receive_request_or_push_data(stream, data, stream_ended)
            except FieldSectionTooLarge:
                if stream.frame_type != FrameType.HEADERS:
                    raise  # a PUSH_PROMISE: the connection's error
                size = stream.frame_size
                stream.frame_type = stream.frame_size = None
                gathered: Any = stream.buffer  # (qh3's is a bytearray)
                gathered.clear()
                if stream_ended:
                    stream.receiving_ended = True
                self._refuse(
                    stream, f"header section of {size} bytes (limit {self.max_field_section})"
                )
                return []

    if not _QH3:

        def _check_content_length(self, stream: H3Stream) -> None:
            # aioquic's check that a body is as long as its Content-Length
            # said (qh3 has none): a mismatch is a malformed message, its
            # stream's error like any other (RFC 9114 section 4.1.2), where
            # aioquic closed the connection over it.
            try:
                super()._check_content_length(stream)
            except MessageError as exc:
                self._refuse(stream, str(exc), malformed=True)

    def _check_control_frame_type(self, frame_type: int) -> None:
        # aioquic: called once a control frame's type and length are read.
        super()._check_control_frame_type(frame_type)
        if frame_type in (FrameType.SETTINGS, FrameType.MAX_PUSH_ID):
            sid = self._peer_control_stream_id
            size = self._stream[sid].frame_size if sid is not None else None
            if size is not None and size > CONTROL_FRAME_MAX:
                raise _ExcessiveLoad(f"control frame of {size} bytes")

    def _receive_stream_data_uni(
        self, stream: H3Stream, data: bytes, stream_ended: bool
    ) -> list[H3Event]:
        events = super()._receive_stream_data_uni(stream, data, stream_ended)
        if _QH3 and stream.stream_id == self._peer_control_stream_id and stream.buffer:
            # qh3 gathers a control frame whole, with no bound but flow
            # control: the frame waiting now is checked by its length
            # (what is gathered is at most that and one packet).
            _check_control_frame(bytes(stream.buffer[:16]))
        return events

    def _decode_headers(self, stream_id: int, frame_data: Optional[bytes], **where: Any) -> Headers:
        # (qh3 passes the frame's place in a larger buffer as offset= and
        # length=; aioquic passes the frame's payload alone.)
        bound = 0
        if frame_data is not None:
            section = frame_data
            if where:
                start = where.get("offset") or 0
                length = where.get("length")
                end = len(frame_data) if length is None else start + length
                section = frame_data[start:end]
            bound, fields, _ = section_cost(section, self._max_table_capacity, self.decode_budget)
            if bound > self.decode_budget:
                raise _Refused(f"header section could decode to more than {bound} bytes")
            if fields > self.max_fields:
                raise _Refused(f"{fields} header fields (limit {self.max_fields})")
        try:
            headers = super()._decode_headers(stream_id, frame_data, **where)
        except QpackDecompressionFailed:
            if frame_data is None or bound <= self.max_field_section:
                raise
            # qh3's decoder fails a section over its own size limit as it
            # fails a malformed one: this one may be over ours, so it is
            # the request's error (431), not the connection's.
            raise _Refused(f"header section over {self.max_field_section} bytes") from None
        size = 0
        for name, value in headers:
            size += len(name) + len(value) + ENTRY_OVERHEAD
        if size > self.max_field_section:
            raise _Refused(f"header section of {size} bytes (limit {self.max_field_section})")
        if len(headers) > self.max_fields:
            raise _Refused(f"{len(headers)} header fields (limit {self.max_fields})")
        return headers

    def _encode_headers(self, stream_id: int, headers: Headers) -> bytes:
        # aioquic hands the encoder's instructions to the encoder stream even
        # when there are none (most sections: their fields are in the table
        # already), a QUIC stream write per section for nothing.
        try:
            instructions, section = self._encoder.encode(stream_id, headers)
        except BaseException as exc:
            # qh3's encoder (Rust) fails on sections with a value of a few
            # KB: an EncoderStreamError, or a panic (pyo3's PanicException,
            # a BaseException); the response was dropped and its request
            # hung. A section that refers to no table says the same to any
            # decoder, and needs nothing of the encoder.
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            return literal_section(headers)
        encoder_stream = self._local_encoder_stream_id
        if instructions and encoder_stream is not None:
            self._encoder_bytes_sent += len(instructions)
            self._quic.send_stream_data(encoder_stream, instructions)
        return section

    def _handle_request_or_push_frame(
        self,
        frame_type: int,
        frame_data: Optional[bytes],
        stream: H3Stream,
        stream_ended: bool,
        **where: Any,
    ) -> list[H3Event]:
        try:
            return super()._handle_request_or_push_frame(
                frame_type, frame_data, stream, stream_ended, **where
            )
        except _Refused as exc:
            if frame_type != FrameType.HEADERS:
                raise _ExcessiveLoad(str(exc)) from None
            self._refuse(stream, str(exc))
            return []
        except MessageError as exc:
            if frame_type != FrameType.HEADERS:
                raise
            self._refuse(stream, str(exc), malformed=True)
            return []

    def _refuse(self, stream: H3Stream, reason: str, malformed: bool = False) -> None:
        sid = stream.stream_id
        # Whatever follows on the stream is passed over (DATA after a
        # refused head is not a protocol error), and not reported.
        stream.headers_recv_state = HeadersState.AFTER_HEADERS
        if sid in self._refused:
            return
        self._refused.add(sid)
        self._refusals.append(HeadersRefused(stream_id=sid, reason=reason, malformed=malformed))
        # RFC 9204 §4.4.2: the peer's encoder may release what this
        # section referenced.
        decoder_stream = self._local_decoder_stream_id
        if decoder_stream is not None:
            self._quic.send_stream_data(decoder_stream, _stream_cancellation(self._decoder, sid))
