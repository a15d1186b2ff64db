"""`broadcast`: one message to many WebSockets, framed once, written without waiting."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, NamedTuple, Optional, Union

from squall import _ws
from squall.escape import json_encode
from squall.iostream import StreamClosedError
from squall.websocket._protocol import WebSocketClosedError, WebSocketProtocol13

__all__ = ["BroadcastResult", "broadcast"]

# A client connection's stream (an fd-based IOStream) has no transport and
# so no high-water mark of its own: this stands in for asyncio's default.
CLIENT_HIGH_WATER = 64 * 1024


class BroadcastResult(NamedTuple):
    """What one `broadcast` did, connection by connection.

    Attributes:
        sent: connections the message was written to.
        skipped: open connections left out because their output was over
            its high-water mark (their peer is not reading fast enough);
            ``closed`` of them were closed for it.
        closed: skipped connections that reached ``max_skips`` or
            ``max_buffer`` and were sent a close frame (``close_code``).
        inactive: connections not open: not yet open, closing or closed.
    """

    sent: int
    skipped: int
    closed: int
    inactive: int


def broadcast(
    connections: Iterable[Any],
    message: Union[str, bytes, dict[str, Any]],
    binary: bool = False,
    *,
    max_skips: Optional[int] = None,
    max_buffer: Optional[int] = None,
    close_code: int = 1013,
) -> BroadcastResult:
    """Sends ``message`` to every open connection in ``connections`` at once, without waiting.

    Each connection is a `WebSocketHandler` (the server side), a
    `WebSocketClientConnection` or a `WebSocketProtocol13`; any iterable of
    them will do (a set the handlers add themselves to in ``open`` and
    remove themselves from in ``on_close`` is the usual one). Nothing is
    awaited and no Future or task is made per connection: the call returns
    once every frame is handed to its connection.

    The frame is built once. Server connections without compression all
    get the same bytes, written straight to their transport. Those that
    negotiated permessage-deflate with ``server_no_context_takeover``
    compress every message from a fresh context, so the message is
    compressed once per distinct setting (level, window, memLevel) and that
    frame is shared. Those with context takeover (the default of browsers
    and of `~squall.websocket.WebSocketHandler.get_compression_options`) get the uncompressed frame, which
    RFC 7692 section 6 allows for any message: compressing for each of them
    would cost a zlib pass per subscriber and, for one that had received
    nothing compressed yet, a compression context of a few hundred KB.
    Client connections mask each frame with a fresh key (RFC 6455 section
    5.3), so each gets its own.

    Slow readers do not hold the others or the loop: a connection whose
    output is over its high-water mark (its transport asked us to pause
    writing; for a client connection, over ``CLIENT_HIGH_WATER`` bytes
    buffered; for one carried by `~squall.asgi.ASGIAdapter`, 64 messages
    waiting for the ASGI server) is skipped for this message and counted.
    Skips in a row are counted per connection until a message reaches it;
    with ``max_skips`` or ``max_buffer`` set, a
    connection past either limit is sent a close frame with
    ``close_code`` (1013, "try again later", by default; 1008 says "policy
    violation") and, as with `WebSocketHandler.close`, cut off if it does
    not answer within a few seconds. Closes happen after the loop, so
    ``connections`` may be the set the handlers' ``on_close`` edits.

    Messages written by `broadcast` and by ``write_message`` on one
    connection keep their order. What a broadcast sends is not added to a
    connection's ``_message_bytes_out`` and ``_wire_bytes_out`` (private
    tallies, kept for Tornado's tests of compression), nor is what
    ``write_message`` sends straight to an open connection's transport:
    updating two counters per connection would cost as much as the rest of
    a delivery.
    A server connection is an HTTP/1.1 one, a WebSocket over HTTP/2 (RFC
    8441), or one carried by `~squall.asgi.ASGIAdapter` (which gets the
    message queued as a ``websocket.send``, unframed). Over HTTP/2 the same
    frame goes into the stream's DATA frames, in order with the
    connection's own writes and under the stream's flow control: its
    output is over the high-water mark when 64 KiB wait for the client's
    window (or the connection's transport is paused), and it is skipped
    then.

    Args:
        connections: the connections to send to.
        message: ``str`` (text), ``bytes``, or a dict sent as JSON text.
        binary: send a binary message instead of text.
        max_skips: close a connection skipped by this many broadcasts in a
            row (None: never for that).
        max_buffer: close a skipped connection holding more than this many
            bytes of unsent output (None: never for that).
        close_code: the close code for those.

    Returns:
        A `BroadcastResult` with the counts.

    Raises:
        TypeError: ``message`` is not str, bytes or dict.
    """
    if type(message) is str:
        payload = message.encode("utf-8")
    elif type(message) is bytes:
        payload = message
    elif isinstance(message, dict):
        payload = json_encode(message).encode("utf-8")
    elif isinstance(message, (str, bytes)):
        payload = message.encode("utf-8") if isinstance(message, str) else bytes(message)
    else:
        raise TypeError(f"a WebSocket message is str, bytes or dict, not {type(message).__name__}")
    frame = _ws.server_message_frame(payload, binary)
    if not isinstance(connections, Collection):
        connections = list(connections)
    if _lagging:
        _caught_up()
    # Sent is what is left of the total: one int fewer to update per delivery.
    total = len(connections)
    skipped = inactive = 0
    # Compressed frames by deflate setting (see PerMessageDeflate.shared_key).
    compressed: dict[tuple[int, int, int], bytes] = {}
    to_close: list[WebSocketProtocol13] = []
    protocol: Any
    sink: Any
    for item in connections:
        # The hot path, in as few steps as can be: a handler whose protocol
        # has a sink (an open server connection without compression, not
        # inside its own callbacks, whose writes are held to go out
        # together, and its transport not paused, so that nothing is
        # queued in its stream either: see WebSocketProtocol13._sink). The
        # frame goes straight to the transport, as the stream's own write
        # would send it; two attributes are read. A skip count needs no
        # reset here (see _caught_up).
        try:
            sink = item.ws_connection._sink
            if sink is not None:
                sink.write(frame)
                continue
            protocol = item.ws_connection
        except AttributeError:
            # Not a handler (a client connection, a protocol), or not open.
            protocol = _protocol_of(item)
            if protocol is None:
                inactive += 1
                continue
        except RuntimeError:
            # A transport closed under a stream not told yet.
            inactive += 1
            continue
        outcome = _deliver(protocol, payload, binary, frame, compressed)
        if outcome is _SKIPPED:
            skipped += 1
            skips = _lagging[protocol] = _lagging.get(protocol, 0) + 1
            if (max_skips is not None and skips >= max_skips) or (
                max_buffer is not None and _unsent(protocol.stream) > max_buffer
            ):
                to_close.append(protocol)
        elif outcome is _INACTIVE:
            inactive += 1
    closed = 0
    for protocol in to_close:
        if not protocol.is_closing():
            protocol.close(close_code, "too slow to read")
            closed += 1
    return BroadcastResult(total - skipped - inactive, skipped, closed, inactive)


# What _deliver did, besides sending.
_SENT = 0
_SKIPPED = 1
_INACTIVE = 2

# Connections skipped by broadcasts in a row, and how many times. A
# connection leaves once a message reaches it: by _deliver, or, for one
# that the hot path will reach (its transport has resumed writing), when a
# broadcast starts, so that the hot path has no count to reset.
_lagging: dict[WebSocketProtocol13, int] = {}


def _protocol_of(item: Any) -> Optional[WebSocketProtocol13]:
    """The protocol of a handler, a client connection or a protocol (None: not open)."""
    if isinstance(item, WebSocketProtocol13):
        return item
    protocol = getattr(item, "ws_connection", None)
    if protocol is None:
        protocol = getattr(item, "protocol", None)
    return protocol if isinstance(protocol, WebSocketProtocol13) else None


def _caught_up() -> None:
    """Forgets the lagging connections that have closed, or that the hot path will reach now."""
    for protocol in list(_lagging):
        if protocol._sink is not None or protocol.is_closing():
            del _lagging[protocol]


def _deliver(
    protocol: WebSocketProtocol13,
    payload: bytes,
    binary: bool,
    frame: bytes,
    compressed: dict[tuple[int, int, int], bytes],
) -> int:
    """Writes the message to a connection off the hot path, unless it is full or not open.

    Returns:
        _SENT, _SKIPPED (its output is over its high-water mark) or
        _INACTIVE (not open, closing or closed).
    """
    conn = protocol.conn
    stream = protocol.stream
    if (
        conn is None
        or protocol._closed
        or protocol._close_seen
        or conn.close_sent
        or stream is None
        or stream.closed()
    ):
        return _INACTIVE
    paused = getattr(stream, "writing_paused", None)
    # A server connection's transport says when it is full.
    if paused() if paused is not None else _unsent(stream) >= CLIENT_HIGH_WATER:
        return _SKIPPED
    if not _write(protocol, conn, payload, binary, frame, compressed):
        return _INACTIVE
    if _lagging:
        _lagging.pop(protocol, None)
    return _SENT


def _write(
    protocol: WebSocketProtocol13,
    conn: _ws.WSConnection,
    payload: bytes,
    binary: bool,
    frame: bytes,
    compressed: dict[tuple[int, int, int], bytes],
) -> bool:
    """Frames the message for one connection and writes it; False if it turned out closed."""
    if conn.client or type(conn) is not _ws.WSConnection:
        # A fresh mask key per frame (RFC 6455 section 5.3): framed here;
        # or a connection carried as messages (ASGIAdapter's): queued.
        data = conn.send_message(payload, binary)
    else:
        extension = conn.extension
        key = extension.shared_key if extension is not None else None
        if key is not None:
            assert extension is not None
            data = compressed.get(key, b"")
            if not data:
                data = compressed[key] = _ws.server_message_frame(
                    extension.compress(payload), binary, True
                )
        else:
            data = frame
    cork = protocol._cork
    if cork is not None:
        # Called from this connection's own callback: after what it wrote.
        cork.append(data)
        return True
    try:
        protocol._write(data)
    except (WebSocketClosedError, StreamClosedError):
        return False
    return True


def _unsent(stream: Any) -> int:
    """Bytes written to a connection and not yet handed to the kernel."""
    size = getattr(stream, "get_write_buffer_size", None)
    if size is not None:
        return int(size())
    # An fd-based stream (a client's) writes to its socket from its buffer.
    return int(stream._write_buffer._size)
