"""The connection state machine: frames to messages and events, calls to bytes.

Rules kept (RFC 6455 unless noted), each failing the connection with the
close code in brackets through a `ProtocolFailed` event:

* 5.4: a continuation frame needs a message in progress, a new data frame
  needs none [1002]; control frames may come between fragments.
* 5.5.1: a close payload is empty or holds a valid code and a UTF-8
  reason [1002 / 1007]. After a close frame nothing more is read.
* 5.6, 8.1: text messages are UTF-8, checked incrementally across
  fragments so an invalid sequence fails as soon as it is seen [1007].
* 10.4: a message over ``max_message_size`` bytes (after decompression)
  fails [1009], checked before an uncompressed frame's payload is buffered
  and while inflating a compressed one.
* RFC 7692 6.1: RSV1 marks the first frame of a compressed message.

States: OPEN, then CLOSING once one side sent a close frame, then CLOSED
once both have (or the connection failed).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable
from enum import Enum
from typing import ClassVar, Final, Optional, Union, cast

from squall._ws._deflate import PerMessageDeflate
from squall._ws._errors import LocalProtocolError, RemoteProtocolError
from squall._ws._frames import (
    _EMPTY_BUFFER,
    _VALID_CLOSE_CODES,
    Frame,
    FrameParser,
    build_close_payload,
    build_frame,
    parse_close_payload,
)
from squall._ws._mask import _LOW_BYTES, _REPEAT, mask

__all__ = [
    "FRAME_CACHE_LIMIT",
    "CloseReceived",
    "ConnectionState",
    "Event",
    "Message",
    "Ping",
    "Pong",
    "ProtocolFailed",
    "WSConnection",
    "server_frame",
    "server_message_frame",
]

DEFAULT_MAX_MESSAGE_SIZE: Final = 10 * 1024 * 1024
# Text frames up to this size are checked for UTF-8 while they arrive.
_EARLY_CHECK_LIMIT: Final = 65536

# The 2-byte headers of a server's unfragmented, uncompressed frames under 126 bytes.
# (Final: the compiled build reads them as native statics, not through the
# module's dict, once per message sent.)
_TEXT_HEADS: Final = [bytes((0x81, n)) for n in range(126)]
_BINARY_HEADS: Final = [bytes((0x82, n)) for n in range(126)]
# The last frame server_frame made, with the message (a str or bytes:
# immutable) and flag it was made of: a program that sends one message to
# its subscribers, connection by connection (a loop of write_message), has
# it made once, as broadcast() has, instead of encoding and copying it for
# each (callgrind_broadcast.py, squall-loop, 2,000 subscribers: 2,521 ->
# 2,161 instructions per delivery, the floor's 1,459). Matched by identity;
# kept for messages of at most FRAME_CACHE_LIMIT bytes. In a Final list: the
# compiled build reads a Final as a native static, a plain global through
# the module's dict.
_LAST_FRAME: Final = [(cast(object, None), False, b"")]
# The largest payload whose frame server_frame keeps (the native
# write_message of speedups/c/wswrite.c keeps its own under the same limit):
# what is held after the last send is bounded by the message and a page.
FRAME_CACHE_LIMIT: Final = 4096
# A server's close frame with a code of RFC 6455's and no reason, by code:
# what it sends to echo a peer's close (see send_close), made once.
_SERVER_CLOSES: Final = {
    code: build_frame(0x8, build_close_payload(code, None)) for code in _VALID_CLOSE_CODES
}


def server_message_frame(payload: bytes, binary: object = False, compressed: bool = False) -> bytes:
    """A whole message as the one unmasked frame a server sends (section 5.2).

    The same bytes go to every server connection that sends this payload
    the same way (uncompressed, or compressed from a fresh context), which is
    what lets a broadcast build a frame once for all of them.

    Args:
        payload: the message's bytes (already compressed when ``compressed``).
        binary: a binary message instead of text: any value, by its truth
            (as Tornado's ``write_message`` takes it), here and in
            `server_frame` and `WSConnection.send_message`.
        compressed: set RSV1 (RFC 7692 section 6: a compressed message).
    """
    if not compressed and len(payload) < 126:
        return (_BINARY_HEADS if binary else _TEXT_HEADS)[len(payload)] + payload
    return build_frame(2 if binary else 1, payload, True, compressed)


def server_frame(message: Union[str, bytes], binary: object = False) -> bytes:
    """A whole message (``str`` as UTF-8) as the one uncompressed frame a server sends.

    The frame made last is reused when the same message object comes again
    with the same flag (see _LAST_FRAME). Counts nothing: a connection's
    tallies are `WSConnection.send_message`'s, which calls this.
    """
    last = _LAST_FRAME[0]
    if last[0] is message and last[1] is binary:
        return last[2]
    # The flag's truth before the message's encoding, as Tornado (and the
    # native write_message) tell them: of a flag whose truth raises and a
    # str that is not UTF-8-encodable, the flag's error is the one raised.
    flag = bool(binary)
    payload = message.encode("utf-8") if isinstance(message, str) else message
    frame = server_message_frame(payload, flag)
    if len(payload) <= FRAME_CACHE_LIMIT and (type(message) is str or type(message) is bytes):
        _LAST_FRAME[0] = (message, flag, frame)
    return frame


class ConnectionState(Enum):
    """Where the closing handshake stands."""

    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


class Event:
    """Base of the events `WSConnection.receive_data` returns."""

    __slots__: tuple[str, ...] = ()
    # The field names for == and repr: a class compiled by mypyc (the
    # speedups build) keeps no __slots__ attribute, so each event names them.
    _fields: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"


class Message(Event):
    """A complete data message: ``str`` for text, ``bytes`` for binary."""

    _fields = ("data",)
    __slots__ = _fields

    def __init__(self, data: Union[str, bytes]) -> None:
        self.data = data


class Ping(Event):
    """A ping; answer it with `WSConnection.send_pong` (section 5.5.2)."""

    _fields = ("payload",)
    __slots__ = _fields

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Pong(Event):
    """A pong (section 5.5.3)."""

    _fields = ("payload",)
    __slots__ = _fields

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class CloseReceived(Event):
    """The peer sent a close frame; ``code`` is None for an empty one.

    Unless we had sent ours first, answer with `WSConnection.send_close`
    (section 5.5.1); then the TCP connection may be closed.
    """

    _fields = ("code", "reason")
    __slots__ = _fields

    def __init__(self, code: Optional[int], reason: Optional[str]) -> None:
        self.code = code
        self.reason = reason


class ProtocolFailed(Event):
    """The peer broke the protocol or a limit (section 7.1.7).

    Send ``send_close(code, reason)`` and close the TCP connection.
    """

    _fields = ("code", "reason")
    __slots__ = _fields

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class _MessageReader(FrameParser):
    """A connection's frame parser and the message it is assembling.

    Made by the connection's first read (`WSConnection.receive_data`): an
    idle connection keeps none of this state (memory per idle WebSocket).
    """

    __slots__ = (
        "decoder",
        "fragments",
        "in_compressed",
        "in_opcode",
        "in_size",
        "partial_checked",
        "partial_decoder",
        "partial_id",
        "message_bytes_in",
    )

    def __init__(self, masked: bool, allow_rsv1: bool = False) -> None:
        # (Not super(): its lookup costs the pure build more than the call.)
        FrameParser.__init__(self, masked, allow_rsv1)
        # The opcode of the message under way (0: between messages).
        self.in_opcode = 0
        self.in_compressed = False
        self.in_size = 0
        # A fragmented message's pieces so far; None between messages.
        self.fragments: Optional[list[bytes]] = None
        self.decoder: Optional[codecs.IncrementalDecoder] = None
        # The text frame under way checked so far (_check_partial_text).
        self.partial_decoder: Optional[codecs.IncrementalDecoder] = None
        self.partial_id = -1
        self.partial_checked = 0
        self.message_bytes_in = 0


# What a connection holds before its first read (see receive_data): never
# fed; its counts stay 0.
_NO_PARSER: Final = _MessageReader(masked=True)


class WSConnection:
    """One WebSocket connection, after the opening handshake.

    Args:
        client: True on the client side (we mask, the peer must not).
        extension: the negotiated permessage-deflate, if any.
        max_message_size: the largest message accepted, in bytes (None: no limit).
        mask_key_source: where client mask keys come from (``os.urandom``).
    """

    __slots__ = (
        "_client",
        "_extension",
        "_key_source",
        "_parser",
        "_plain_server",
        "close_received",
        "close_sent",
        "max_message_size",
        "message_bytes_out",
        "wire_bytes_out",
    )

    def __init__(
        self,
        client: bool,
        extension: Optional[PerMessageDeflate] = None,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        mask_key_source: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._client = client
        self._extension = extension
        # A server without compression: frames need no mask and no deflate.
        self._plain_server = not client and extension is None
        # Made by the first receive_data, with the state of the message
        # being read: an idle connection keeps none.
        self._parser = _NO_PARSER
        self._key_source = mask_key_source
        self.max_message_size = max_message_size
        self.close_sent = self.close_received = False
        self.message_bytes_out = self.wire_bytes_out = 0

    def _frame_limit(self, remaining: Optional[int]) -> Optional[int]:
        if remaining is None or self._extension is None:
            return remaining
        # Deflate can expand incompressible data slightly (5 bytes per
        # 16 KiB block); the exact limit is checked while inflating.
        return remaining + (remaining >> 6) + 1024

    @property
    def state(self) -> ConnectionState:
        """OPEN, CLOSING (one close frame sent or received) or CLOSED."""
        if self.close_sent and self.close_received:
            return ConnectionState.CLOSED
        if self.close_sent or self.close_received:
            return ConnectionState.CLOSING
        return ConnectionState.OPEN

    @property
    def wire_bytes_in(self) -> int:
        """Bytes of complete frames received, headers included."""
        return self._parser.wire_bytes

    @property
    def message_bytes_in(self) -> int:
        """Bytes of complete messages received (after decompression)."""
        return self._parser.message_bytes_in

    @property
    def extension(self) -> Optional[PerMessageDeflate]:
        """The negotiated permessage-deflate, or None."""
        return self._extension

    @property
    def client(self) -> bool:
        """Whether this is the client side (its frames are masked)."""
        return self._client

    @property
    def compressed(self) -> bool:
        """Whether permessage-deflate is in use."""
        return self._extension is not None

    # -- receiving

    def receive_data(self, data: bytes) -> list[Event]:
        """Feeds bytes read from the peer.

        Returns:
            The events completed by these bytes, in order. A protocol
            violation ends the list with a `ProtocolFailed`; after it, or
            after a `CloseReceived`, further bytes are ignored.
        """
        if self.close_received:
            return []
        parser = self._parser
        if parser is _NO_PARSER:
            parser = self._parser = _MessageReader(
                masked=not self._client, allow_rsv1=self._extension is not None
            )
            parser.max_payload = self._frame_limit(self.max_message_size)
        if (
            len(data) == 8
            and data[0] == 0x88
            and data[1] == 0x82
            and parser.masked
            and parser.pos == len(parser.buf)
        ):
            # A read that is one masked close frame with a code and no
            # reason, nothing before it: how a browser leaving the page
            # ends a connection (1001). Its code, unmasked, without the
            # frame parser's round (what next_frame and _handle_control
            # would find: a reconnect storm is mostly such closes).
            code = ((data[6] ^ data[2]) << 8) | (data[7] ^ data[3])
            if code in _VALID_CLOSE_CODES or 3000 <= code <= 4999:
                parser.wire_bytes += 8
                self.close_received = True
                return [CloseReceived(code, "")]
        parser.feed(data)
        events: list[Event] = []
        try:
            while True:
                if not parser.in_opcode:
                    self._take_small_messages(events)
                if parser.pos == len(parser.buf):
                    # All parsed (the usual end of a read, with no frame
                    # parse to find it): an idle connection keeps no copy
                    # of its last read (up to a read's size) until the next
                    # (FrameParser.release, inline).
                    parser.buf = _EMPTY_BUFFER
                    parser.pos = 0
                    return events
                frame = parser.next_frame()
                if frame is None:
                    self._check_partial_text()
                    return events
                event = self._handle_frame(frame)
                if event is not None:
                    events.append(event)
                    if type(event) is CloseReceived:
                        return events
        except RemoteProtocolError as exc:
            # Section 7.1.7: stop reading; the driver sends the close frame.
            self.close_received = True
            events.append(ProtocolFailed(exc.close_code, exc.reason))
            return events

    def _check_partial_text(self) -> None:
        """Section 8.1, failing fast: invalid UTF-8 in a text frame still arriving.

        Only uncompressed frames up to ``_EARLY_CHECK_LIMIT`` bytes: what
        arrives of them is checked as it comes (each byte once), and checked
        again as a whole when the frame is complete.
        """
        parser = self._parser
        info = parser.partial()
        if info is None:
            return
        opcode, rsv1, key, start, length = info
        if length > _EARLY_CHECK_LIMIT or rsv1:
            return
        if opcode == 1:
            if parser.in_opcode:
                return  # a protocol error, found when the frame is complete
            previous = None
        elif opcode == 0 and parser.in_opcode == 1 and not parser.in_compressed:
            previous = parser.decoder
        else:
            return
        frame_id = parser.wire_bytes
        decoder = parser.partial_decoder
        if decoder is None or parser.partial_id != frame_id:
            decoder = parser.partial_decoder = codecs.getincrementaldecoder("utf-8")()
            if previous is not None:
                # Go on from the message's earlier fragments.
                decoder.setstate(previous.getstate())
            parser.partial_id = frame_id
            parser.partial_checked = 0
        checked = parser.partial_checked
        end = len(parser.buf)
        if end - start <= checked:
            return
        chunk: bytes = bytes(parser.buf[start + checked : end])
        if key is not None:
            turn = checked & 3
            chunk = mask(key[turn:] + key[:turn], chunk)
        try:
            decoder.decode(chunk, False)
        except UnicodeDecodeError:
            raise RemoteProtocolError("invalid UTF-8 in a text message", 1007) from None
        parser.partial_checked = end - start

    def _take_small_messages(self, events: list[Event]) -> None:
        """The hot path: whole text or binary messages in one frame under 64 KiB.

        Consumes frames from the parser's buffer while they are FIN data
        frames without RSV bits, correctly masked, with a 7- or 16-bit length
        (minimally encoded) within the size limit; stops (consuming nothing
        more) at any other frame, which `FrameParser.next_frame` then parses
        with every rule.
        """
        parser = self._parser
        buf = parser.buf
        pos = parser.pos
        end = len(buf)
        masked = parser.masked
        key_size = 4 if masked else 0
        limit = self.max_message_size
        if limit is None or limit > 65535:
            limit = 65535
        mask_bit = 0x80 if masked else 0
        append = events.append
        received = 0
        wire = 0
        while end - pos >= 2:
            b0 = buf[pos]
            if b0 != 0x81 and b0 != 0x82:
                break
            length = buf[pos + 1] ^ mask_bit
            if length < 126:
                start = pos + 2 + key_size
            elif length == 126 and end - pos >= 4:
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                if length < 126:
                    break  # not minimally encoded: next_frame fails it
                start = pos + 4 + key_size
            else:
                # Wrong masking bit, a 64-bit length, or the length not here yet.
                break
            if length > limit:
                break
            stop = start + length
            if stop > end:
                break
            if not masked or not length:
                payload = bytes(buf[start:stop])
            elif length < 126:
                # Section 5.3 on one int: the key, as a little-endian int,
                # times 1 + 2**32 + 2**64 + ... repeats it over the payload.
                payload = (
                    int.from_bytes(buf[start:stop], "little")
                    ^ (int.from_bytes(buf[start - 4 : start], "little") * _REPEAT[length])
                    & _LOW_BYTES[length]
                ).to_bytes(length, "little")
            else:
                payload = mask(bytes(buf[start - 4 : start]), buf[start:stop])
            if b0 == 0x81:
                try:
                    append(Message(payload.decode("utf-8")))
                except UnicodeDecodeError:
                    parser.pos = pos
                    parser.wire_bytes += wire
                    parser.message_bytes_in += received
                    raise RemoteProtocolError("invalid UTF-8 in a text message", 1007) from None
            else:
                append(Message(payload))
            received += length
            wire += stop - pos
            pos = stop
        parser.pos = pos
        parser.wire_bytes += wire
        parser.message_bytes_in += received

    def _handle_frame(self, frame: Frame) -> Optional[Event]:
        opcode = frame.opcode
        if opcode >= 8:
            return self._handle_control(frame)
        parser = self._parser
        if opcode == 0:
            if not parser.in_opcode:
                raise RemoteProtocolError("continuation frame without a message in progress")
        else:
            if parser.in_opcode:
                raise RemoteProtocolError("new message before the previous one ended")
            parser.in_opcode = opcode
            parser.in_compressed = frame.rsv1
            parser.in_size = 0
        payload = frame.payload
        limit = self.max_message_size
        if parser.in_compressed:
            assert self._extension is not None
            remaining = None if limit is None else limit - parser.in_size
            payload = self._extension.decompress(payload, frame.fin, remaining)
        parser.in_size += len(payload)
        if limit is not None:
            if parser.in_size > limit:
                raise RemoteProtocolError("message too big", 1009)
            parser.max_payload = self._frame_limit(
                limit - parser.in_size if not frame.fin else limit
            )
        if frame.fin and not parser.fragments:
            # The common case: one frame, one message.
            parser.in_opcode = 0
            parser.message_bytes_in += len(payload)
            if opcode == 1:
                try:
                    return Message(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    raise RemoteProtocolError("invalid UTF-8 in a text message", 1007) from None
            return Message(payload)
        if parser.in_opcode == 1:
            decoder = parser.decoder
            if decoder is None:
                decoder = parser.decoder = codecs.getincrementaldecoder("utf-8")()
            try:
                decoder.decode(payload, frame.fin)
            except UnicodeDecodeError:
                raise RemoteProtocolError("invalid UTF-8 in a text message", 1007) from None
        fragments = parser.fragments
        if fragments is None:
            fragments = parser.fragments = [payload]
        else:
            fragments.append(payload)
        if not frame.fin:
            return None
        whole = b"".join(fragments)
        text = parser.in_opcode == 1
        parser.fragments = None
        parser.decoder = None
        parser.in_opcode = 0
        parser.message_bytes_in += len(whole)
        # Already validated fragment by fragment.
        return Message(whole.decode("utf-8") if text else whole)

    def _handle_control(self, frame: Frame) -> Event:
        if frame.opcode == 0x9:
            return Ping(frame.payload)
        if frame.opcode == 0xA:
            return Pong(frame.payload)
        code, reason = parse_close_payload(frame.payload)
        self.close_received = True
        return CloseReceived(code, reason)

    # -- sending

    def _frame(self, opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
        key = self._key_source(4) if self._client else None
        data = build_frame(opcode, payload, fin, rsv1, key)
        self.wire_bytes_out += len(data)
        return data

    def _check_open(self) -> None:
        if self.close_sent:
            raise LocalProtocolError("the connection is closing: a close frame was sent")

    def send_message(self, data: Union[str, bytes], binary: object = False) -> bytes:
        """Serializes a whole message as one frame (compressed if negotiated).

        Args:
            data: the message; ``str`` is encoded as UTF-8.
            binary: send a binary message instead of text.

        Raises:
            LocalProtocolError: we already sent a close frame.
        """
        if self.close_sent:
            raise LocalProtocolError("the connection is closing: a close frame was sent")
        if self._plain_server:
            # The hot path of a server: no mask, no compression.
            frame = server_frame(data, binary)
            size = len(frame)
            second = frame[1]  # the payload's length, or 126 / 127: 2 or 8 more bytes of it
            self.wire_bytes_out += size
            self.message_bytes_out += size - (2 if second < 126 else 4 if second == 126 else 10)
            return frame
        opcode = 2 if binary else 1
        payload = data.encode("utf-8") if isinstance(data, str) else data
        self.message_bytes_out += len(payload)
        if self._extension is not None:
            return self._frame(opcode, self._extension.compress(payload), True, True)
        return self._frame(opcode, payload)

    def send_frame(
        self, opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False
    ) -> bytes:
        """Serializes one raw frame (masked on the client side).

        Fragmented messages are sent this way: a data opcode with
        ``fin=False``, then continuation frames (opcode 0).
        """
        self._check_open()
        return self._frame(opcode, payload, fin, rsv1)

    def send_ping(self, payload: bytes = b"") -> bytes:
        """Serializes a ping.

        Raises:
            LocalProtocolError: a payload over 125 bytes, or the connection is closing.
        """
        self._check_open()
        return self._frame(0x9, payload)

    def send_pong(self, payload: bytes = b"") -> bytes:
        """Serializes a pong (the answer to a `Ping` carries its payload)."""
        self._check_open()
        return self._frame(0xA, payload)

    def send_close(self, code: Optional[int] = None, reason: Optional[str] = None) -> bytes:
        """Serializes our close frame; returns b"" if it was already sent.

        Args:
            code: the close code, or None for an empty close frame.
            reason: the reason phrase (needs a code).

        Raises:
            LocalProtocolError: an invalid code or a reason over 123 bytes.
        """
        if self.close_sent:
            return b""
        if not reason and not self._client and code is not None:
            frame = _SERVER_CLOSES.get(code)
            if frame is not None:
                self.close_sent = True
                self.wire_bytes_out += len(frame)
                return frame
        payload = build_close_payload(code, reason)
        self.close_sent = True
        return self._frame(0x8, payload)
