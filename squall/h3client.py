"""An HTTP client that speaks HTTP/3 to the servers that offer it.

`H3AsyncHTTPClient` is a `~squall.h2client.H2AsyncHTTPClient` that also
speaks HTTP/3 (QUIC, RFC 9114) to ``https`` origins: an origin that
answered with ``Alt-Svc: h3=":PORT"`` (RFC 7838) is asked over QUIC from
then on, for as long as the field's ``ma`` allows, every request a stream
of one shared QUIC connection. Where the QUIC handshake fails (UDP
blocked, say), the request goes over TCP as `H2AsyncHTTPClient` would
send it, and that origin is not tried over QUIC for a while.
``http3_prior_knowledge=True`` sends every ``https`` request over HTTP/3
at once, with no fallback. Redirects, default fields, credential
stripping and decompression are the client policy's, as for the other
clients (``squall/simple_httpclient/_policy.py``). It needs a QUIC stack, aioquic or qh3
(``pip install squall[http3]``)::

    AsyncHTTPClient.configure("squall.h3client.H3AsyncHTTPClient")

The code lives beside the other clients, in
``squall/simple_httpclient/_h3.py``.
"""

from squall.simple_httpclient._h3 import H3AsyncHTTPClient, parse_alt_svc

__all__ = ["H3AsyncHTTPClient", "parse_alt_svc"]

H3AsyncHTTPClient.__module__ = __name__
parse_alt_svc.__module__ = __name__
