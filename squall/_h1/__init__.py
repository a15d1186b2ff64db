"""Sans-I/O HTTP/1.1 for both roles: bytes in, events out; calls in, bytes out.

Nothing here does I/O, reads a clock or imports asyncio, socket, ssl or time
(a test checks this). A driver owns the transport and moves bytes::

    conn = H1Connection("server")             # or "client"
    conn.receive_data(data)                   # b"" when the peer closed
    while True:
        event = conn.next_event()
        if event is NEED_DATA:                # read more, then loop again
            break
        if event is PAUSED:                   # finish our response first
            break
        ...                                   # Request, Data, EndOfMessage...
    transport.write(conn.send_response(200, "OK", [("Content-Type", "text/plain")], b"hi"))
    if not conn.keep_alive:
        transport.close()

Events (``__slots__`` classes, compared by value):

* `Request` (method, target, version, headers, fields) -- server role;
  ``fields`` groups the headers by canonical name (`Fields`, the shape of
  ``HTTPHeaders``' dict), and ``headers`` is built from the head only when
  read.
* `InformationalResponse` / `Response` (version, status, reason, headers) --
  client role; 101 is a `Response` after which the connection is switched.
* `Data` (data) -- body bytes, chunked coding removed; several chunks found in
  one read are joined into one event (up to `H1Limits.max_data_event`).
* `EndOfMessage` (trailers) -- every message ends with one, bodiless or not.
* `ConnectionClosed` (truncated) -- the peer's EOF; truncated if mid-message.

`next_event` also returns the sentinels `NEED_DATA` and `PAUSED`. Headers
are ``list[tuple[str, str]]`` in arrival order, decoded as latin-1, values
stripped of surrounding spaces and tabs.

Sending (each returns the bytes to write):

* server: `H1Connection.send_informational` (e.g. 100 when
  `H1Connection.expects_continue`), `send_response_head`, `send_data`,
  `send_end`, or all at once with `send_response`;
* client: `send_request_head`, `send_data`, `send_end`, or `send_request`.

Rules kept (RFC 9112 unless noted):

* §2.2: empty lines before a message are skipped; lines end with CRLF (a bare
  LF is rejected unless ``allow_bare_lf``; a bare CR always).
* §3: request-line = method SP request-target SP HTTP-version, single spaces;
  the method is a token, the target visible ASCII; HTTP/1.x only (505 for
  another major version). §4: a status line may omit the reason phrase
  and its SP (as real servers do); status codes 100-999 are accepted.
* §5: field-name token, no whitespace before the colon, no control character
  or NUL in a value; §5.2 obs-fold rejected in requests, replaced by SP in
  responses.
* §6.1, §6.3: Transfer-Encoding with Content-Length is rejected on receipt
  (a server whose application sets both sends them as given and closes after
  the response, as Tornado does; a client refuses to send them); the only
  transfer coding is a single ``chunked`` (anything else is 400, not §6.1's
  optional 501, as in Tornado); Content-Length is digits only, repeated
  identical values merged (RFC 9110 §8.6); a request without either has no
  body; a response without either is read until close; HEAD, 1xx, 204 and
  304 responses have no body (a 204 with a non-zero Content-Length is an
  error); a response with a transfer coding other than ``chunked`` is
  refused (we decode none other). Chunked bodies sent over HTTP/1.0 are
  accepted (Tornado does).
* §7.1: chunk-size is 1*HEXDIG (no sign, prefix or underscore; at most 16
  significant digits); extensions allowed but bounded; CRLF after each chunk;
  trailers parsed like fields and reported in `EndOfMessage`.
* §9.3: HTTP/1.1 persists unless ``Connection: close``; HTTP/1.0 only with
  ``Connection: keep-alive``. §9.6: nothing after a close is read. §9.3.2:
  pipelined requests are all parsed, but a request is only released once the
  response to the previous one is complete (`PAUSED` meanwhile).
* RFC 9110 §10.1.1: ``Expect: 100-continue`` (HTTP/1.1, with a body) sets
  `H1Connection.expects_continue`; a final response sent while the request
  body is unread makes the connection close afterwards (so does a response
  that ends before the client's request body, for a client).
* RFC 9110 §15.2: no 1xx response is sent to an HTTP/1.0 client; a client
  accepts at most `H1Limits.max_informational` of them per request.
* A client sends one request at a time (no pipelining); bytes that arrive
  with no request outstanding wait, and `next_event` returns `PAUSED`.
* RFC 9110 §15.2.2, §9.3.6: after a 101 response, or a 2xx to CONNECT, the
  connection is switched: `detach` returns the bytes already received.

Limits: `H1Limits` names every bound (start line 414, head 431, field count
431, body 413, chunk line 400, trailers 431, 1xx count); a driver may raise
the body limit for one message with `H1Connection.set_max_body_size` (after
the head event, before the body events, as Tornado's streaming handlers do).

Errors: `ProtocolError` (with ``status_hint``) is the root;
`RemoteProtocolError` for the peer's faults (the connection is then
unusable: `next_event` raises it again; a server may still send one error
response), `LocalProtocolError` for our misuse.

Backends: ``parser="python"`` parses heads with ``bytes.find``/``split`` and
one regex match per field block, straight into `Request.fields`. A pass
that finds and parses a head in its common shape (``squall._h1._quick``:
a few C-level string calls in one Python frame in pure Python, C in the
compiled build) runs first and leaves anything else to
that parser, so every error is still worded by it. ``parser="httptools"`` parses
heads with llhttp; ``"auto"`` picks the faster, which benchmarks/h1_parse.py
shows to be the Python parser (llhttp pays one Python callback per header
field). The connection finds each head's extent itself and both backends get
the same bytes; where llhttp is stricter (unknown methods, "5, 5" lists,
obs-fold in responses) the Python parser decides, where it is more lenient
extra checks run, so both accept and reject the same inputs with the same
messages (a Hypothesis property checks it). Bodies (Content-Length slices,
chunked decoding, trailers) are shared code, so chunk-line limits hold for
both.
"""

from . import _events
from ._connection import H1Connection
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._events import *  # noqa: F403 (the events are the package's API; _events.__all__ lists them)
from ._limits import H1Limits

__all__ = [
    "H1Connection",
    "H1Limits",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]
__all__ += _events.__all__
