"""A non-blocking HTTP/1.1 server (Tornado's ``tornado.httpserver``).

`HTTPServer` accepts connections on the asyncio loop with one
`asyncio.Protocol` per connection, which drives the sans-I/O core
``squall._h1`` directly: each read is parsed at once and complete events go
straight to the application's delegate, without a Future or Task per read.
``request.connection`` implements `.HTTPConnection` (``write_headers``,
``write``, ``finish``, ``set_close_callback``, ``detach``); ``detach()``
returns an `~squall.iostream.IOStream`-compatible stream over the same connection.

The httptools parser backend is used when installed, unless the environment
variable ``SQUALL_NO_SPEEDUPS=1`` is set.

Layout: ``_server`` (`HTTPServer`), ``_protocol`` (the per-connection
protocol and ``request.connection``), ``_stream`` (the transport-backed
stream ``detach`` returns), ``_context`` (remote address, X- headers, the
adapter for plain callables).
"""

from squall.httpserver._context import _CallableAdapter, _HTTPRequestContext, _ProxyAdapter
from squall.httpserver._server import HTTPServer
from squall.httputil import HTTPServerRequest

#: Tornado's old name for `.HTTPServerRequest`, kept for programs that use it.
HTTPRequest = HTTPServerRequest  # re-exported for compatibility

__all__ = ["HTTPServer"]

HTTPServer.__module__ = __name__

# Private names other Squall modules and tests use.
_PRIVATE = (_CallableAdapter, _HTTPRequestContext, _ProxyAdapter)
