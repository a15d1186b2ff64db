"""WebSocket (RFC 6455) for servers (`WebSocketHandler`) and clients (`websocket_connect`).

Every protocol rule lives in the sans-I/O core ``squall._ws``; this module only
moves bytes between it and an `~squall.iostream.IOStream` and calls the
application:

* server: `WebSocketHandler.get` checks the upgrade, answers 101 through the
  ordinary response path, then takes the connection's stream over with
  `~squall.web.RequestHandler.detach`;
* client: `websocket_connect` opens a TCP (or TLS) stream with
  `~squall.tcpclient.TCPClient` (through an HTTP proxy's ``CONNECT`` tunnel
  when the request names ``proxy_host``), writes the upgrade request and
  reads the response head itself. A dedicated path is simpler and sturdier
  than bending the pooled HTTP client to hand its connection over.

In both roles one task per connection reads with ``read_bytes(partial=True)``
(one Future per read, however many frames a read holds), feeds the core and
dispatches the events in order; a coroutine ``on_message`` is awaited before
the next message is dispatched. Whatever the callbacks write while one read's
events are dispatched leaves in a single stream write (flushed before any
await), so a burst of echoes costs one system call.

`broadcast` sends one message to many connections: framed once, written to
each without awaiting, slow readers skipped and counted (and closed past a
limit the application sets).

Modules: ``_protocol`` (the per-connection driver, `WebSocketProtocol13`),
``_handler`` (`WebSocketHandler`), ``_client`` (`websocket_connect`),
``_broadcast`` (`broadcast`).

Errors::

    WebSocketError
     +-- WebSocketClosedError   write or ping on a closed connection
"""

from squall.websocket._broadcast import BroadcastResult, broadcast
from squall.websocket._client import WebSocketClientConnection, websocket_connect
from squall.websocket._deflate_compat import (  # noqa: F401  (Tornado's private names)
    _DecompressTooLargeError,
    _PerMessageDeflateCompressor,
    _PerMessageDeflateDecompressor,
)
from squall.websocket._handler import WebSocketHandler
from squall.websocket._protocol import (
    WebSocketClosedError,
    WebSocketError,
    WebSocketProtocol,
    WebSocketProtocol13,
)

__all__ = [
    "BroadcastResult",
    "WebSocketClientConnection",
    "WebSocketClosedError",
    "WebSocketError",
    "WebSocketHandler",
    "WebSocketProtocol",
    "WebSocketProtocol13",
    "broadcast",
    "websocket_connect",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
