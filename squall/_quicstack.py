"""The QUIC stack HTTP/3 runs on: qh3, or aioquic.

Every HTTP/3 module of Squall (server, client, WebTransport) imports the
stack from here and nowhere else. ``SQUALL_QUIC=qh3`` or
``SQUALL_QUIC=aioquic`` picks one (read once, at import); without it,
aioquic if it is installed, else qh3.

aioquic is the default although qh3 costs about 30% fewer instructions a
request (benchmarks/callgrind_h3.py) and serves about twice the requests
per CPU-second: qh3 2.1.0's server completes no handshake with Chromium
(156), so a default of qh3 would give Chrome's users no HTTP/3 at all.
It also stalls on each handshake with an aioquic client, loses a
connection at a client's fourth address change, and has no way to set the
stream credit or the later connection IDs (see below). Once a qh3 server
completes tests/h3/test_chromium.py, PREFERENCE puts it first.

Why Chromium fails: its client's source connection ID is zero-length
(RFC 9000 section 5.1 allows it; Chromium needs none), so its Initial
packets carry an empty Source Connection ID and its transport parameters
an empty ``initial_source_connection_id``. qh3 2.1.0 treats an empty ID
as no ID, twice:

- its Python connection learns the client's ID from a packet's header
  only when it is not empty (``QuicConnection._learn_remote_source_cid``,
  ``if header[4]:``), so the TLS layer compares the client's empty
  parameter with None and closes with TRANSPORT_PARAMETER_ERROR
  ("initial_source_connection_id does not match", in
  ``QuicTlsBridge.parse_transport_parameters``) on the client's first
  ClientHello. Chromium never sees that close (see the next point) and
  times out ("No recent network activity", ERR_QUIC_PROTOCOL_ERROR);
- its Rust core addresses the client by the client's first Destination
  Connection ID until a non-empty Source Connection ID replaces it (the
  first-flight branch of ``ConnectionCore::receive_one`` skips an empty
  one, and its peer ID store refuses zero-length IDs:
  ``PeerCidStore::replace_initial``, ``ConnectionId::for_new_connection_id``).
  Past the first point (tried with it mended), the server answers the
  ClientHello with its whole flight and derives its 1-RTT keys, but every
  packet it sends carries an 8-byte Destination Connection ID that
  Chromium does not know: it drops the long-header ones and cannot
  decrypt the short-header ones (its log counts them "undecryptable"),
  and times out the same way.

Nothing Squall passes to qh3 changes this (the certificate, the key
groups, the ClientHello over two Initial packets, ALPN and the transport
parameters all go through once the first point is mended; the packet
headers are authenticated, so the endpoint cannot rewrite them): qh3
needs to take a zero-length client ID as the peer's ID, in its core and
its Python connection. tests/h3/test_chromium.py checks it without
Chromium too, with a client that has a zero-length ID.

Why an aioquic client stalls: aioquic (1.7) pads its first Initial
datagram to 1,200 bytes with zeros after the packet (a 500-byte packet,
700 zero bytes). qh3's core counts only the packets it decrypts against
the anti-amplification limit (RFC 9000 section 8.1 counts the whole
datagram), so it may send 1,500 bytes, not 3,600. Its first flight (a
1,280-byte Initial with the ServerHello, then the Handshake packets with
the certificate) does not fit: the next packet is built in what is left
(about 220 bytes), which cannot hold its first CRYPTO frame, and the core
fails ("packet builder capacity exhausted"); qh3's ``datagrams_to_send``
raises and loses the Initial it had already built (the ServerHello), so
nothing leaves until the client's retransmission timer sends its Initial
again and so lifts the limit (about 0.3 s). The certificate's size is not
the cause (an ECDSA P-256 one stalls the same); Chromium, which pads
inside its Initial packets, is not affected.

Both stacks have aioquic's public API (qh3 is a fork with its packet
processing, TLS record protection and QPACK in Rust). What Squall needs
beyond that API is answered by the small functions below, one stack's way
each; where a stack has no way, the function says so (its docstring) and
the caller keeps that check on the stack that has one.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

__all__ = [
    "PREFERENCE",
    "STACK",
    "Buffer",
    "BufferReadError",
    "ConnectionTerminated",
    "DataReceived",
    "DatagramReceived",
    "FieldSectionTooLarge",
    "FrameType",
    "H3Connection",
    "H3Error",
    "H3Event",
    "H3Stream",
    "H3_ALPN",
    "HandshakeCompleted",
    "Header",
    "Headers",
    "HeadersReceived",
    "HeadersState",
    "MessageError",
    "ProtocolError",
    "ProtocolNegotiated",
    "QpackDecompressionFailed",
    "QuicConfiguration",
    "QuicConnection",
    "QuicConnectionProtocol",
    "QuicEvent",
    "QuicRetryTokenHandler",
    "QuicServer",
    "Setting",
    "StopSendingReceived",
    "StreamReset",
    "TransmitError",
    "WebTransportStreamDataReceived",
    "amplification_room",
    "encode_frame",
    "encode_uint_var",
    "ends_unacknowledged",
    "datagram_backlog",
    "datagram_stream_id",
    "describe",
    "pull_header",
    "qpack_decoder",
    "retry_packet",
    "send_backlog",
    "send_h3_datagram",
    "send_stopped",
    "set_stream_credit",
]


#: The stacks in the order they are tried when SQUALL_QUIC is not set.
PREFERENCE = ("aioquic", "qh3")


def _choose() -> str:
    forced = os.environ.get("SQUALL_QUIC", "").strip().lower()
    if forced not in ("", "aioquic", "qh3"):
        raise ImportError(f"SQUALL_QUIC={forced!r}: it is 'qh3' or 'aioquic'")
    # aioquic first when both are there: see the module's docstring.
    order = [forced] if forced else list(PREFERENCE)
    for name in order:
        try:
            __import__(f"{name}.h3.connection")
        except ImportError:
            continue
        return name
    wanted = forced or "aioquic or qh3"
    extra = "http3-qh3" if forced == "qh3" else "http3"
    raise ImportError(f"HTTP/3 needs a QUIC stack ({wanted}): pip install 'squall[{extra}]'")


#: The stack in use: "qh3" or "aioquic".
STACK = _choose()


def describe() -> str:
    """The stack in use and its version (``qh3 2.1.0``), for a log line."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{STACK} {version(STACK)}"
    except PackageNotFoundError:  # imported from a tree, not installed
        return STACK


# mypy checks against aioquic's names (it is typed and both have its API).
if TYPE_CHECKING or STACK == "aioquic":
    from aioquic._buffer import Buffer, BufferReadError
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.asyncio.server import QuicServer
    from aioquic.buffer import encode_uint_var
    from aioquic.h3.connection import (
        H3_ALPN,
        FrameType,
        H3Connection,
        H3Stream,
        HeadersState,
        MessageError,
        ProtocolError,
        QpackDecompressionFailed,
        Setting,
        encode_frame,
    )
    from aioquic.h3.connection import ErrorCode as H3Error
    from aioquic.h3.events import (
        DatagramReceived,
        DataReceived,
        H3Event,
        Headers,
        HeadersReceived,
        WebTransportStreamDataReceived,
    )
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.events import (
        ConnectionTerminated,
        HandshakeCompleted,
        ProtocolNegotiated,
        QuicEvent,
        StopSendingReceived,
        StreamReset,
    )
    from aioquic.quic.packet import QuicPacketType, encode_quic_retry
    from aioquic.quic.packet import pull_quic_header as _pull_quic_header
    from aioquic.quic.retry import QuicRetryTokenHandler

    if STACK == "aioquic":
        # aioquic's check of each received field section, in a few scans
        # of its bytes rather than a Python loop over them (squall._h3fields).
        import aioquic.h3.connection

        from squall._h3fields import install as _install_field_check

        _install_field_check(aioquic.h3.connection)
else:
    from qh3._hazmat import Buffer, BufferReadError, encode_uint_var
    from qh3.asyncio.protocol import QuicConnectionProtocol
    from qh3.asyncio.server import QuicServer
    from qh3.h3.connection import (
        H3_ALPN,
        FrameType,
        H3Connection,
        H3Stream,
        HeadersState,
        MessageError,
        ProtocolError,
        QpackDecompressionFailed,
        Setting,
        encode_frame,
    )
    from qh3.h3.connection import ErrorCode as H3Error
    from qh3.h3.events import (
        DatagramReceived,
        DataReceived,
        H3Event,
        Headers,
        HeadersReceived,
        WebTransportStreamDataReceived,
    )
    from qh3.quic.configuration import QuicConfiguration
    from qh3.quic.connection import QuicConnection
    from qh3.quic.events import (
        ConnectionTerminated,
        HandshakeCompleted,
        ProtocolNegotiated,
        QuicEvent,
        StopSendingReceived,
        StreamReset,
    )
    from qh3.quic.packet import QuicPacketType, encode_quic_retry
    from qh3.quic.retry import QuicRetryTokenHandler

    # qh3's check of each received field section lets through what RFC 9114
    # section 4.2 makes malformed (a space or colon in a name, whitespace
    # ending a value, Connection or Upgrade): squall._h3fields' check instead.
    from squall._h3fields import install_qh3 as _install_qh3_field_check

    _install_qh3_field_check(importlib.import_module("qh3.h3.connection"))

_QH3 = STACK == "qh3"
# qh3's own calls beyond aioquic's API (untyped for mypy, which checks
# against aioquic).
_HAZMAT: Any = importlib.import_module("qh3._hazmat") if _QH3 else None
_INITIAL: Any = QuicPacketType.INITIAL
if _QH3:
    _INITIAL = int(_INITIAL)

if _QH3:
    #: What a stack raises when it fails to build its datagrams (qh3 2.1's
    #: core: "packet builder capacity exhausted", on a server's first
    #: flight past its anti-amplification limit, see the module's
    #: docstring; the next datagram in lets it go on).
    TransmitError: type[Exception] = importlib.import_module(
        "qh3.quic.connection"
    ).QuicConnectionError
else:

    class TransmitError(Exception):  # type: ignore[no-redef]
        """(aioquic raises none: never raised.)"""


if _QH3:
    #: What a stack raises on a HEADERS frame whose length is over what it
    #: reads (qh3 2.1: four times its field section limit, checked as the
    #: length is read, a connection error; squall._h3conn refuses the
    #: stream instead).
    FieldSectionTooLarge: type[Exception] = importlib.import_module(
        "qh3.h3.connection"
    ).FieldSectionTooLarge
else:

    class FieldSectionTooLarge(Exception):  # type: ignore[no-redef]
        """(aioquic reads a frame's length without a limit: never raised.)"""


class Header(NamedTuple):
    """What the UDP endpoint reads of a datagram's first packet."""

    destination_cid: bytes
    source_cid: bytes
    version: Optional[int]
    initial: bool
    token: bytes


def pull_header(data: bytes, cid_length: int) -> Optional[Header]:
    """The first packet's header (RFC 9000 section 17), None if malformed."""
    try:
        if _QH3:
            raw = _HAZMAT.pull_quic_header(data, 0, cid_length)
            version, ptype, dcid, scid, token = raw[0], raw[1], raw[3], raw[4], raw[5]
        else:
            found = _pull_quic_header(Buffer(data=data), host_cid_length=cid_length)
            version, ptype = found.version, found.packet_type
            dcid, scid, token = found.destination_cid, found.source_cid, found.token
    except ValueError:
        return None
    return Header(dcid, scid, version, ptype == _INITIAL, token or b"")


def retry_packet(
    tokens: QuicRetryTokenHandler, header: Header, addr: Any, cid: bytes, now: float
) -> bytes:
    """RFC 9000 section 17.2.5: a Retry for ``header``'s Initial from
    ``addr``, with ``cid`` the ID the client is to come back to; its token
    is ``tokens``' (each stack checks its own when the client returns)."""
    if _QH3:
        create: Any = tokens.create_token
        token = create(addr, header.destination_cid, cid)
    else:
        token = tokens.create_token(
            address=addr,
            original_destination_connection_id=header.destination_cid,
            retry_source_connection_id=cid,
            now=now,
        )
    assert header.version is not None
    return encode_quic_retry(
        version=header.version,
        source_cid=cid,
        destination_cid=header.source_cid,
        original_destination_cid=header.destination_cid,
        retry_token=token,
    )


def qpack_decoder(table_capacity: int, blocked_streams: int) -> Any:
    """A QPACK decoder (RFC 9204): ls-qpack's for aioquic, qh3's own for
    qh3. Neither is given a section limit: the caller bounds a section's
    decoded size before decoding it (`squall._qpack.section_cost`) and
    checks the real size after, the same way on both (qh3's decoder
    would fail an oversized section as QPACK_DECOMPRESSION_FAILED, a
    connection error, where an oversized head is the request's error)."""
    if _QH3:
        return _HAZMAT.QpackDecoder(table_capacity, blocked_streams)
    import pylsqpack

    return pylsqpack.Decoder(table_capacity, blocked_streams)


def send_h3_datagram(h3: H3Connection, stream_id: int, data: bytes) -> None:
    """An HTTP Datagram for the request stream ``stream_id`` (RFC 9297
    section 2.1: its Quarter Stream ID goes on the wire). aioquic takes the
    stream ID; qh3 takes the quarter."""
    if _QH3:
        h3.send_datagram(stream_id // 4, data)
    else:
        h3.send_datagram(stream_id, data)


def datagram_backlog(quic: QuicConnection) -> Optional[int]:
    """DATAGRAM frames the stack holds that it has not yet sent, or None
    where that is not visible (qh3 keeps them in its core).

    aioquic: its queue of pending datagrams (no public count), which only
    the congestion window empties.
    """
    if _QH3:
        return None
    pending: Any = quic._datagrams_pending
    return len(pending)


def datagram_stream_id(event: DatagramReceived) -> int:
    """The request stream an HTTP Datagram event is for (qh3 gives the
    Quarter Stream ID as ``flow_id``)."""
    if _QH3:
        qh3_event: Any = event
        quarter: int = qh3_event.flow_id
        return quarter * 4
    return event.stream_id


def set_stream_credit(quic: QuicConnection, streams: int) -> bool:
    """Announce ``streams`` as the client's initial bidirectional stream
    credit (RFC 9000 section 4.6), before the handshake.

    aioquic has no option for it: its counter is set. qh3's core announces
    100 and has no way to change it: False (the caller refuses streams
    over its own limit when they open instead).
    """
    if _QH3:
        return False
    credit = quic._local_max_streams_bidi
    credit.value = credit.sent = streams
    return True


def send_backlog(quic: QuicConnection, stream_id: int) -> int:
    """Bytes of ``stream_id``'s output the client has not yet taken.

    aioquic: what its send buffer holds until acknowledged (no public
    count). qh3: what waits for its first transmission
    (``get_send_buffer_size``), which grows as the client's flow-control
    credit and the congestion window stop it, so it serves the same
    high-water mark and stall detection.
    """
    if _QH3:
        return quic.get_send_buffer_size(stream_id)  # type: ignore[attr-defined,no-any-return]
    stream = _aioquic_streams(quic).get(stream_id)
    return len(stream.sender._buffer) if stream is not None else 0


def send_stopped(quic: QuicConnection, stream_id: int) -> bool:
    """Whether the stack takes nothing more on ``stream_id``'s sending part:
    it was reset, or the stream is over both ways. A client's STOP_SENDING
    resets it as the frame is read, before the stack reports it: a write
    between the two raises.

    aioquic: the stream's sender holds a reset code, or the stream is
    discarded. qh3: its core says it cannot send on the stream.
    """
    if _QH3:
        qh3_quic: Any = quic
        return not qh3_quic._stream_can_send(stream_id)
    stream = _aioquic_streams(quic).get(stream_id)
    if stream is None:
        discarded: bool = quic._stream_is_discarded(stream_id)
        return discarded
    return stream.sender._reset_error_code is not None


def _aioquic_streams(quic: QuicConnection) -> dict[int, Any]:
    # aioquic's table of the connection's QUIC streams (no public one).
    streams: dict[int, Any] = quic._streams
    return streams


def ends_unacknowledged(quic: QuicConnection) -> bool:
    """Whether output the server sent may still be lost if it closed now.

    aioquic: a request stream whose end (FIN or reset) is not yet
    acknowledged. qh3 keeps no per-stream state in Python: anything queued
    or in flight (its core's bytes in flight) counts.
    """
    if _QH3:
        if quic.get_send_buffer_size():  # type: ignore[attr-defined]
            return True
        # (its Python connection keeps the core as _core, with no
        # public count of what is in flight)
        qh3_quic: Any = quic
        core = qh3_quic._core
        return bool(core is not None and core.bytes_in_flight)
    for sid, qstream in _aioquic_streams(quic).items():
        sender = qstream.sender
        if sid % 4 == 0 and not sender.is_finished:
            if sender._buffer_fin is not None or sender._reset_error_code is not None:
                return True
    return False


def amplification_room(quic: QuicConnection) -> Optional[int]:
    """Bytes the server may still send to an unvalidated client address
    (RFC 9000 section 8.1: three times what it received), or None when the
    address is validated or the stack limits a close by itself (qh3's core
    counts every datagram it sends against the limit; aioquic does not
    count a CONNECTION_CLOSE)."""
    if _QH3:
        return None
    paths = quic._network_paths
    if not paths or paths[0].is_validated:
        return None
    path = paths[0]
    return 3 * path.bytes_received - path.bytes_sent
