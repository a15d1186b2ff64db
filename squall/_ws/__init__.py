"""Sans-I/O WebSocket (RFC 6455, RFC 7692): bytes in, events out; calls in, bytes out.

Nothing here does I/O, reads a clock or imports asyncio, socket, ssl or time
(a test checks this). One layer per module:

* `_mask`: payload masking, fast for small and large payloads;
* `_frames`: `FrameParser` (bytes to `Frame`) and `build_frame`;
* `_connection`: `WSConnection`, frames to messages with the protocol's rules
  and limits, and messages to bytes;
* `_handshake`: the opening handshake for both roles;
* `_deflate`: permessage-deflate negotiation and (de)compression;
* `_packing`: an open connection's upgrade header fields packed into one
  string (for `squall.websocket`, which keeps them while the socket idles).

A driver, after the handshake::

    conn = WSConnection(client=False, extension=ext, max_message_size=limit)
    for event in conn.receive_data(data):
        if type(event) is Message: ...        # str (text) or bytes (binary)
        elif type(event) is Ping: write(conn.send_pong(event.payload))
        elif type(event) is CloseReceived: write(conn.send_close(event.code)); close()
        elif type(event) is ProtocolFailed: write(conn.send_close(event.code, event.reason)); close()
    write(conn.send_message("hello"))

A peer's protocol violation never raises: it is a `ProtocolFailed` event with
the close code to send (1002, 1007 or 1009).
"""

from squall._ws._connection import (
    DEFAULT_MAX_MESSAGE_SIZE,
    FRAME_CACHE_LIMIT,
    CloseReceived,
    ConnectionState,
    Event,
    Message,
    Ping,
    Pong,
    ProtocolFailed,
    WSConnection,
    server_frame,
    server_message_frame,
)
from squall._ws._deflate import (
    PerMessageDeflate,
    client_accept,
    client_offer,
    parse_extensions,
    server_accept,
)
from squall._ws._errors import (
    HandshakeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from squall._ws._frames import (
    Frame,
    FrameParser,
    Opcode,
    build_close_payload,
    build_frame,
    parse_close_payload,
)
from squall._ws._handshake import (
    VERSION,
    accept_key,
    check_key,
    check_request,
    check_response,
    client_headers,
    new_key,
    parse_subprotocols,
    server_headers,
)
from squall._ws._mask import mask

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "FRAME_CACHE_LIMIT",
    "CloseReceived",
    "ConnectionState",
    "Event",
    "Frame",
    "FrameParser",
    "HandshakeError",
    "LocalProtocolError",
    "Message",
    "Opcode",
    "PerMessageDeflate",
    "Ping",
    "Pong",
    "ProtocolError",
    "ProtocolFailed",
    "RemoteProtocolError",
    "WSConnection",
    "VERSION",
    "accept_key",
    "build_close_payload",
    "build_frame",
    "check_key",
    "check_request",
    "check_response",
    "client_accept",
    "client_headers",
    "client_offer",
    "mask",
    "new_key",
    "parse_close_payload",
    "parse_extensions",
    "parse_subprotocols",
    "server_accept",
    "server_frame",
    "server_headers",
    "server_message_frame",
]
