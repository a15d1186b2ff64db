"""An HTTP client that speaks HTTP/2 where the server offers it.

`H2AsyncHTTPClient` is a `~squall.simple_httpclient.SimpleAsyncHTTPClient`
that, for ``https`` URLs, offers ``h2`` by ALPN and, when the server picks
it, sends every request to that origin as a stream of one shared
connection (multiplexed, up to the server's concurrent-stream limit; more
wait their turn). Servers that answer with HTTP/1.1, proxied requests,
``body_producer`` and ``expect_100_continue`` requests go through the
HTTP/1.1 client it inherits, with its pool. ``http2_prior_knowledge=True``
speaks HTTP/2 to plain ``http`` URLs as well (h2c, no upgrade). HTTP/2 is
squall's own (`squall._h2`, the server's core), so no extra is needed::

    AsyncHTTPClient.configure("squall.h2client.H2AsyncHTTPClient")

Both clients make the same decisions (default fields, redirects, what a
redirect to another origin drops, decompression): see
``squall/simple_httpclient/_policy.py``. A caller gets what the HTTP/1.1
client gives it, except where HTTP/2 decides: ``header_callback``'s first
line has no reason phrase (``HTTP/2.0 200``), connection-specific fields
are not sent, and a stream the server resets fails with
``HTTPStreamClosedError("stream reset by the server (CODE)")``. The code lives beside the HTTP/1.1
client, in ``squall/simple_httpclient/_h2.py``.
"""

from squall.simple_httpclient._h2 import H2AsyncHTTPClient

__all__ = ["H2AsyncHTTPClient"]

H2AsyncHTTPClient.__module__ = __name__
