"""Non-blocking HTTP/1.1 client with a keep-alive pool and HTTP proxy support.

`SimpleAsyncHTTPClient` is the default `squall.httpclient.AsyncHTTPClient`.
Its connections are asyncio protocols that feed the sans-I/O `squall._h1`
core and are driven by its events, with no Task or Future per request on a
pooled connection (see benchmarks/http_client.py):

* ``_client``: the client, its request queue (``max_clients``), timeouts
  (one loop timer for all deadlines), redirects, digest retry, and the
  per-client cache of request plans;
* ``_pool``: `ConnectionPool`, idle connections per key with an idle
  timeout and a bound per key;
* ``_connection``: resolve, connect, CONNECT tunnel, TLS;
* ``_exchange``: one request and its response on a connection;
* ``_auth``: Basic and Digest ``Authorization`` values.

Connection reuse: a connection goes back to the pool only after a response
read to its end on a keep-alive connection (HTTP/1.1 without
``Connection: close``, or HTTP/1.0 with ``Connection: keep-alive``) with
nothing extra received; never after an error, a timeout, a callback that
raised or an unsent ``100-continue`` body. An idle connection keeps reading,
so one the server closes (or sends anything on) is dropped at once; one
closed just as a request was sent is retried once on a new connection
(unless the body came from a ``body_producer``).

Proxies (``proxy_host``/``proxy_port``, basic ``proxy_username``/
``proxy_password``): http URLs are sent to the proxy in absolute form with
``Proxy-Authorization`` on each request, and their connections are pooled
per proxy; https URLs open a ``CONNECT host:port`` tunnel, then TLS with the
origin, and are pooled per origin and proxy.
"""

from squall.simple_httpclient._client import SimpleAsyncHTTPClient
from squall.simple_httpclient._errors import HTTPStreamClosedError, HTTPTimeoutError
from squall.simple_httpclient._pool import ConnectionPool

__all__ = [
    "ConnectionPool",
    "HTTPStreamClosedError",
    "HTTPTimeoutError",
    "SimpleAsyncHTTPClient",
]

for _obj in (SimpleAsyncHTTPClient, HTTPStreamClosedError, HTTPTimeoutError, ConnectionPool):
    _obj.__module__ = __name__
del _obj
