"""Frames: bytes to `Frame` objects and back (RFC 6455 section 5).

The parser keeps one buffer and an offset; `FrameParser.next_frame` returns a
complete frame or None when it needs more bytes, so any split of a byte stream
yields the same frames. Header rules are checked as soon as the header is
complete, before the payload is buffered, so an oversized frame is refused
without reading it.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final, Optional

from squall._ws._errors import LocalProtocolError, RemoteProtocolError
from squall._ws._mask import mask

__all__ = [
    "CONTROL_OPCODES",
    "Frame",
    "FrameParser",
    "Opcode",
    "build_close_payload",
    "build_frame",
    "parse_close_payload",
]


class Opcode(IntEnum):
    """Frame opcodes (RFC 6455 section 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


CONTROL_OPCODES: Final = frozenset((0x8, 0x9, 0xA))
_KNOWN_OPCODES: Final = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))
_UNPACK_16: Final = struct.Struct("!H").unpack_from
_UNPACK_64: Final = struct.Struct("!Q").unpack_from
_PACK_16: Final = struct.Struct("!BBH").pack
_PACK_64: Final = struct.Struct("!BBQ").pack

# RFC 6455 section 7.4.1 and the IANA registry: codes a peer may put on the
# wire. 1004 is reserved; 1005, 1006 and 1015 are for reporting only.
_VALID_CLOSE_CODES: Final = frozenset(
    (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
)


class Frame:
    """One frame, unmasked.

    Attributes:
        opcode: the frame's opcode (an int, see `Opcode`).
        payload: the unmasked payload.
        fin: whether this frame ends its message.
        rsv1: the RSV1 bit ("compressed" under permessage-deflate).
    """

    __slots__ = ("fin", "opcode", "payload", "rsv1")

    def __init__(self, opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> None:
        self.opcode = opcode
        self.payload = payload
        self.fin = fin
        self.rsv1 = rsv1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (self.opcode, self.payload, self.fin, self.rsv1) == (
            other.opcode,
            other.payload,
            other.fin,
            other.rsv1,
        )

    def __repr__(self) -> str:
        return f"Frame(opcode={self.opcode:#x}, payload={self.payload[:20]!r}, fin={self.fin}, rsv1={self.rsv1})"


# The buffer of every parser with nothing buffered: never written to (feed
# replaces it), so that an idle connection's parser holds no buffer of its own.
_EMPTY_BUFFER: Final = bytearray()


class FrameParser:
    """Incremental frame parser for one direction of a connection.

    Args:
        masked: True to require masked frames (a server reading a client),
            False to require unmasked ones (a client reading a server).
        allow_rsv1: whether RSV1 may be set on data frames (permessage-deflate
            was negotiated).

    Attributes:
        max_payload: the largest data-frame payload accepted next (None for no
            limit); the connection lowers it as a message grows. A larger frame
            fails with close code 1009 before its payload is buffered.
    """

    __slots__ = ("buf", "pos", "allow_rsv1", "masked", "max_payload", "wire_bytes")

    def __init__(self, masked: bool, allow_rsv1: bool = False) -> None:
        self.buf = _EMPTY_BUFFER
        self.pos = 0
        self.masked = masked
        self.allow_rsv1 = allow_rsv1
        self.max_payload: Optional[int] = None
        self.wire_bytes = 0

    def feed(self, data: bytes) -> None:
        """Appends received bytes."""
        buf = self.buf
        if self.pos == len(buf):
            # Everything before is parsed (or nothing came yet): a buffer
            # of its own for these bytes; the shared empty one is never
            # written to.
            self.buf = bytearray(data)
            self.pos = 0
            return
        if self.pos > 65536:
            del buf[: self.pos]
            self.pos = 0
        buf += data

    def release(self) -> None:
        """Drops the buffer once everything in it is parsed (an idle connection keeps none)."""
        if self.pos == len(self.buf):
            self.buf = _EMPTY_BUFFER
            self.pos = 0

    @property
    def buffered(self) -> int:
        """The number of bytes received and not yet parsed."""
        return len(self.buf) - self.pos

    def next_frame(self) -> Optional[Frame]:
        """Parses the next complete frame.

        Returns:
            The frame, or None when more bytes are needed.

        Raises:
            RemoteProtocolError: the frame breaks RFC 6455 or ``max_payload``.
        """
        buf = self.buf
        pos = self.pos
        head = self._header(buf, pos)
        if head is None:
            return None
        header, length = head
        end = pos + header + length
        if len(buf) < end:
            return None
        b0 = buf[pos]
        if buf[pos + 1] & 0x80:
            # (Unmasked from the buffer's slice: no copy of it first.)
            payload = mask(bytes(buf[pos + header - 4 : pos + header]), buf[pos + header : end])
        else:
            payload = bytes(buf[pos + header : end])
        self.pos = end
        self.wire_bytes += header + length
        return Frame(b0 & 0x0F, payload, bool(b0 & 0x80), bool(b0 & 0x40))

    def partial(self) -> Optional[tuple[int, bool, Optional[bytes], int, int]]:
        """The frame still arriving, once its header is here (after `next_frame`).

        Returns:
            ``(opcode, rsv1, mask key or None, offset of its payload in the
            buffer, payload length)``, or None while the header is incomplete.

        Raises:
            RemoteProtocolError: as `next_frame` (never after a `next_frame`
                that returned None: the header it checked is this one).
        """
        buf = self.buf
        pos = self.pos
        head = self._header(buf, pos)
        # (The mask key, ending the header, may still be on its way.)
        if head is None or len(buf) - pos < head[0]:
            return None
        header, length = head
        b0 = buf[pos]
        key: Optional[bytes] = None
        if buf[pos + 1] & 0x80:
            key = bytes(buf[pos + header - 4 : pos + header])
        return b0 & 0x0F, bool(b0 & 0x40), key, pos + header, length

    def _header(self, buf: bytearray, pos: int) -> Optional[tuple[int, int]]:
        """Reads and checks the header of the frame at ``buf[pos]`` (the next one).

        Returns:
            ``(header size with the mask key, payload length)``, or None
            while the bytes up to the length are incomplete (the mask key
            may be too: the caller sees it from the size).

        Raises:
            RemoteProtocolError: the header breaks RFC 6455 or ``max_payload``.
        """
        available = len(buf) - pos
        if available < 2:
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        opcode = b0 & 0x0F
        length = b1 & 0x7F
        header = 2
        if length == 126:
            header = 4
            if available < 4:
                return None
            length = _UNPACK_16(buf, pos + 2)[0]
            if length < 126:
                raise RemoteProtocolError("frame length not minimally encoded")
        elif length == 127:
            header = 10
            if available < 10:
                return None
            length = _UNPACK_64(buf, pos + 2)[0]
            if length >> 63:
                raise RemoteProtocolError("frame length has its most significant bit set")
            if length < 65536:
                raise RemoteProtocolError("frame length not minimally encoded")
        # Section 5.2: reserved opcodes and RSV bits without an extension
        # that defines them fail the connection.
        if opcode not in _KNOWN_OPCODES:
            raise RemoteProtocolError(f"reserved opcode {opcode:#x}")
        if b0 & 0x30 or (b0 & 0x40 and not (self.allow_rsv1 and opcode in (1, 2))):
            raise RemoteProtocolError("reserved bits set")
        # Section 5.1: clients mask every frame, servers none.
        if bool(b1 & 0x80) != self.masked:
            raise RemoteProtocolError("frame masked" if b1 & 0x80 else "frame not masked")
        if opcode >= 8:
            # Section 5.5: control frames are not fragmented, at most 125 bytes.
            if not b0 & 0x80:
                raise RemoteProtocolError("fragmented control frame")
            if length > 125:
                raise RemoteProtocolError("control frame payload over 125 bytes")
        elif self.max_payload is not None and length > self.max_payload:
            raise RemoteProtocolError("message too big", 1009)
        if b1 & 0x80:
            header += 4
        return header, length


def build_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: Optional[bytes] = None,
) -> bytes:
    """Serializes one frame.

    Args:
        opcode: the opcode.
        payload: the payload, unmasked.
        fin: whether the frame ends its message.
        rsv1: the RSV1 bit.
        mask_key: the 4-byte masking key (clients), or None (servers).

    Returns:
        The frame's bytes.

    Raises:
        LocalProtocolError: a control frame that is fragmented or over 125 bytes.
    """
    length = len(payload)
    if opcode >= 8 and (length > 125 or not fin):
        raise LocalProtocolError("control frames must be unfragmented and at most 125 bytes")
    b0 = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    bit = 0x80 if mask_key is not None else 0
    if length < 126:
        head = bytes((b0, bit | length))
    elif length < 65536:
        head = _PACK_16(b0, bit | 126, length)
    else:
        head = _PACK_64(b0, bit | 127, length)
    if mask_key is not None:
        return head + mask_key + mask(mask_key, payload)
    return head + payload


def parse_close_payload(payload: bytes) -> tuple[Optional[int], Optional[str]]:
    """Reads a close frame's code and reason (RFC 6455 section 5.5.1).

    Returns:
        ``(code, reason)``; ``(None, None)`` for an empty payload.

    Raises:
        RemoteProtocolError: a 1-byte payload or a code not allowed on the wire
            (1002), or a reason that is not UTF-8 (1007).
    """
    if not payload:
        return None, None
    if len(payload) == 1:
        raise RemoteProtocolError("close frame payload of 1 byte")
    code = _UNPACK_16(payload)[0]
    if code not in _VALID_CLOSE_CODES and not 3000 <= code <= 4999:
        raise RemoteProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("close reason is not UTF-8", 1007) from None
    return code, reason


def build_close_payload(code: Optional[int] = None, reason: Optional[str] = None) -> bytes:
    """Serializes a close frame's payload.

    Args:
        code: the close code, or None for an empty payload.
        reason: the reason; needs a code.

    Raises:
        LocalProtocolError: a reason without a code, a code that may not be sent,
            or a payload over 125 bytes.
    """
    if code is None:
        if reason:
            raise LocalProtocolError("a close reason needs a close code")
        return b""
    if code not in _VALID_CLOSE_CODES and not 3000 <= code <= 4999:
        raise LocalProtocolError(f"close code {code} may not be sent")
    payload = struct.pack("!H", code) + (reason or "").encode("utf-8")
    if len(payload) > 125:
        raise LocalProtocolError("close reason over 123 bytes")
    return payload
