"""Non-blocking HTTP/1.1 client with a keep-alive pool and HTTP proxy support.

`SimpleAsyncHTTPClient` is the default `squall.httpclient.AsyncHTTPClient`.
Its connections are asyncio protocols that feed the sans-I/O ``squall._h1``
core and are driven by its events, with no Task or Future per request on a
pooled connection (see benchmarks/http_client.py):

* ``_client``: the client, its request queue (``max_clients``), timeouts
  (one loop timer for all deadlines), redirects, digest retry, and the
  per-client cache of request plans;
* ``_pool``: ``ConnectionPool``, idle connections per key with an idle
  timeout and a bound per key;
* ``_connection``: resolve, connect, CONNECT tunnel, TLS;
* ``_exchange``: one request and its response on a connection;
* ``_auth``: Basic and Digest ``Authorization`` values;
* ``_policy``: what every client here decides alike (default fields,
  redirects, credentials kept from other origins, decompression), used by
  the HTTP/2 and curl clients too;
* ``_h2``: the HTTP/2 client, public as ``squall.h2client.H2AsyncHTTPClient``.

Connection reuse: a connection goes back to the pool only after a response
read to its end on a keep-alive connection (HTTP/1.1 without
``Connection: close``, or HTTP/1.0 with ``Connection: keep-alive``) with
nothing extra received; never after an error, a timeout, a callback that
raised or an unsent ``100-continue`` body. An idle connection keeps reading,
so one the server closes (or sends anything on) is dropped as soon as the
loop sees it; and before one is reused, the kernel is asked (a zero-timeout
poll) whether a FIN, a reset or bytes arrived that the loop has not seen
yet. A request is never sent on a connection known to be closed.

No request is sent twice if the server may have acted on it. Once a
request has been written (even in part), a connection that closes before
any of the response fails the fetch with a 599: `HTTPStreamClosedError`
for a close, or the socket's own `OSError` (``ConnectionResetError``...)
as Tornado gives it, raised by ``fetch`` whatever ``raise_error`` is. The
one retry: a connection reset (ECONNRESET or EPIPE) while the request was
still being written (not all of it handed to the kernel yet, as the
transport reports), for an idempotent method (GET, HEAD, OPTIONS, TRACE,
PUT, DELETE: RFC 9110 §9.2.2) whose body is not from a ``body_producer``.
The server's kernel refused the data, so the application did not see the
request whole; it is sent once more, on another connection.

Proxies (``proxy_host``/``proxy_port``, basic ``proxy_username``/
``proxy_password``): http URLs are sent to the proxy in absolute form with
``Proxy-Authorization`` on each request, and their connections are pooled
per proxy; https URLs open a ``CONNECT host:port`` tunnel, then TLS with the
origin, and are pooled per origin and proxy. Without ``proxy_port``, port
80 is used (the curl client uses no proxy then). Failures are the simple
client's own: a refused proxy raises the connection's `OSError`, and a
tunnel the proxy does not open (407, 502...) is a 599 whose message gives
the proxy's status line.
"""

from squall.simple_httpclient._client import SimpleAsyncHTTPClient
from squall.simple_httpclient._errors import HTTPStreamClosedError, HTTPTimeoutError
from squall.simple_httpclient._pool import ConnectionPool

__all__ = [
    "HTTPStreamClosedError",
    "HTTPTimeoutError",
    "SimpleAsyncHTTPClient",
]

# The pool is internal: importable for tests, not part of the public API.
_ConnectionPool = ConnectionPool
del ConnectionPool

for _obj in (SimpleAsyncHTTPClient, HTTPStreamClosedError, HTTPTimeoutError):
    _obj.__module__ = __name__
del _obj
