"""`H3AsyncHTTPClient`: HTTP/3 over QUIC (qh3 or aioquic, ``squall[http3]``) for the
``https`` origins that offer it, HTTP/2 or HTTP/1.1 over TCP for the rest
(its public home, and what it does, are in `squall.h3client`).

``_H3ClientProtocol`` drives aioquic's QUIC connection and H3 layer on a
UDP endpoint; what a response's head, body and end do is shared with the
HTTP/2 client (`squall.simple_httpclient._mux`), and what is sent and
which redirects are followed is the client policy's, as for every client.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Optional, cast

from squall._h2._rules import content_length, length_mismatch
from squall._quicstack import (
    H3_ALPN,
    ConnectionTerminated,
    DataReceived,
    H3Error,
    HandshakeCompleted,
    HeadersReceived,
    QuicConfiguration,
    QuicConnection,
    QuicConnectionProtocol,
    QuicEvent,
    StreamReset,
)
from squall._ws._deflate import split_outside_quotes
from squall.httpclient import HTTPRequest, HTTPResponse
from squall.httpserver._h3conn import GuardedH3Connection, HeadersRefused
from squall.iostream import UnsatisfiableReadError
from squall.log import gen_log
from squall.simple_httpclient._errors import HTTPStreamClosedError, HTTPTimeoutError
from squall.simple_httpclient._h2 import H2AsyncHTTPClient, _Key
from squall.simple_httpclient._mux import CONNECTION_LOST, StreamFetch, StreamResponses
from squall.simple_httpclient._policy import options

__all__ = ["H3AsyncHTTPClient", "parse_alt_svc"]

# Request fields HTTP/3 does not carry (RFC 9114 §4.2) or carries as
# pseudo-header fields (Host is :authority).
_DROP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host")
)

# How long an origin whose HTTP/3 alternative failed to connect is served
# over TCP before HTTP/3 is tried again.
BROKEN_FOR = 300.0

# RFC 7838 §3.1: an alternative advertised without "ma" is fresh for 24 hours.
_DEFAULT_MAX_AGE = 86400.0


def parse_alt_svc(value: str) -> Optional[list[tuple[str, str, int, float]]]:
    """The alternatives of an ``Alt-Svc`` field value (RFC 7838 §3).

    Returns:
        ``[(protocol id, host, port, max age in seconds), ...]`` in the order
        given (host is ``""`` where the alternative keeps the origin's);
        ``[]`` for ``clear``; None when nothing in the value can be read.
        An entry that cannot be read is skipped, as the RFC asks.
    """
    value = value.strip()
    if value == "clear":
        return []
    found: list[tuple[str, str, int, float]] = []
    read_any = False
    for entry in split_outside_quotes(value, ","):
        parts = split_outside_quotes(entry, ";")
        protocol, eq, authority = parts[0].strip().partition("=")
        authority = authority.strip()
        if not eq or len(authority) < 2 or authority[0] != '"' or authority[-1] != '"':
            continue
        host, colon, port_text = authority[1:-1].rpartition(":")
        if not colon or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            continue
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        max_age = _DEFAULT_MAX_AGE
        for param in parts[1:]:
            name, _, number = param.strip().partition("=")
            if name.strip().lower() == "ma":
                number = number.strip().strip('"')
                if number.isdigit():
                    max_age = float(number)
        read_any = True
        found.append((urllib.parse.unquote(protocol), host, int(port_text), max_age))
    return found if read_any else None


class _ClientH3Connection(GuardedH3Connection):
    """The client's H3 layer: a response that has no body (to a HEAD, a 304)
    may still carry the ``Content-Length`` of the body it would have had
    (RFC 9110 §8.6). A body and its ``Content-Length`` are compared by the
    protocol (`_H3ClientProtocol.lengths`), which fails that fetch with
    what was wrong, on either stack: aioquic's check (made a refusal of the
    stream by `GuardedH3Connection`) ran only when a DATA frame ended the
    stream, and was reported as an invalid response head or trailers; qh3
    has none."""

    def __init__(self, quic: QuicConnection, max_field_section: int) -> None:
        # Request streams whose response has no body, whatever it says.
        self.bodiless: set[int] = set()
        super().__init__(quic, max_field_section)

    def _decode_headers(self, stream_id: int, frame_data: Optional[bytes], **where: Any) -> Any:
        headers = super()._decode_headers(stream_id, frame_data, **where)
        for name, value in headers:
            if name == b":status":
                if value in (b"204", b"304"):
                    self.bodiless.add(stream_id)
                break
        return headers

    def _check_content_length(self, stream: Any) -> None:
        pass  # aioquic's, made by the protocol per fetch


def _length_error(received: int, declared: int) -> HTTPStreamClosedError:
    return HTTPStreamClosedError(f"HTTP/3 response: {length_mismatch(received, declared)}")


class _H3ClientProtocol(StreamResponses, QuicConnectionProtocol):
    """One QUIC connection to an origin's HTTP/3 alternative, shared by the
    fetches to it (QUIC's stream credit holds back streams beyond the
    server's limit until it grants more)."""

    client: H3AsyncHTTPClient
    version_word = "HTTP/3"

    def __init__(self, quic: QuicConnection, client: H3AsyncHTTPClient, key: _Key) -> None:
        QuicConnectionProtocol.__init__(self, quic)
        self.client = client
        self.key = key
        # A response head is held to max_header_size, else to the HTTP/2
        # path's limit (64 KiB), refused before it is decoded when it could
        # be larger (the limit is stated to the server in SETTINGS).
        limit = client.max_header_size or client.http2_limits.max_header_list_size
        self.h3 = _ClientH3Connection(quic, limit)
        self.streams: dict[int, StreamFetch] = {}
        # (Content-Length, body bytes so far) of each response that has both
        # a body and a valid Content-Length: they must agree (RFC 9114
        # section 4.1.2).
        self.lengths: dict[int, tuple[int, int]] = {}
        self.closed = False
        # A draining server's GOAWAY frame is read and dropped by aioquic's
        # H3 layer; its refusal of a new stream (H3_REQUEST_REJECTED) says it.
        self.goaway = False
        # Closes once its fetches are done (see `drain`).
        self.draining = False
        # Why the connection ended, as QUIC reported it.
        self.ended_by = ""
        # Done when the QUIC handshake is (ConnectionError if it failed).
        # aioquic's wait_connected() misses a handshake that completed
        # before it was called (under uvloop, about one first connection in
        # three here, which then waited out its connect timeout).
        self.handshake: asyncio.Future[None] = self._loop.create_future()

    # -- QUIC ------------------------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._quic.receive_datagram(cast(bytes, data), addr, now=self._loop.time())
        self._process_events()
        if self.draining and not self.streams:
            self.close()
            return
        # One transmit per loop turn, not one per datagram: the requests the
        # responses' callers send next (woken by this datagram, run before
        # the transmit) leave with the acknowledgement, in as few datagrams
        # as they fit.
        self._transmit_soon()

    def error_received(self, exc: Exception) -> None:
        # The system's word on a datagram sent (an ICMP port unreachable:
        # nothing listens on that UDP port). Before the handshake, the
        # connect fails with it at once, as a TCP connect that is refused
        # does, rather than waiting out its timeout.
        if not self.handshake.done():
            self.handshake.set_exception(exc)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self._terminated(event)
            return
        if isinstance(event, HandshakeCompleted):
            if not self.handshake.done():
                self.handshake.set_result(None)
            return
        if isinstance(event, StreamReset):
            self._reset_by_server(event)
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, (HeadersReceived, DataReceived)):
                self._stream_event(h3_event)
            elif isinstance(h3_event, HeadersRefused):
                self._refused(h3_event)

    def _refused(self, event: HeadersRefused) -> None:
        fetch = self.streams.get(event.stream_id)
        if fetch is None:
            return
        if event.malformed:
            # As a field value HTTPHeaders refuses fails it (see on_head).
            gen_log.warning("Malformed HTTP message from server: %s", event.reason)
            part = "head" if fetch.headers is None else "trailers"
            self.abandon(fetch, HTTPStreamClosedError(f"invalid response {part}: {event.reason}"))
            return
        if self.client.max_header_size and "header fields" not in event.reason:
            # Over the caller's max_header_size (not over the count of
            # fields): the HTTP/1.1 client's error for it (what a caller of
            # either catches).
            gen_log.info("Unsatisfiable read, closing connection: Header block too large")
            self.abandon(fetch, UnsatisfiableReadError("Header block too large"))
            return
        # Over the protocol's limit: refused as the HTTP/2 path refuses it.
        gen_log.warning("Malformed HTTP message from server: %s", event.reason)
        self.abandon(fetch, HTTPStreamClosedError(f"HTTP/3 response head refused: {event.reason}"))

    def _stream_event(self, event: HeadersReceived | DataReceived) -> None:
        sid = event.stream_id
        fetch = self.streams.get(sid)
        if fetch is None:
            return
        if isinstance(event, HeadersReceived):
            if fetch.headers is None:
                self._head(fetch, event.headers)
            # else trailers: a client of this API has nowhere to put them
        elif event.data:
            if fetch.headers is None:
                self.abandon(fetch, HTTPStreamClosedError("HTTP/3 body before the response head"))
                return
            length = self.lengths.get(sid)
            if length is not None:
                declared, received = length
                received += len(event.data)
                if received > declared:
                    self.abandon(fetch, _length_error(received, declared))
                    return
                self.lengths[sid] = (declared, received)
            self.on_body(fetch, event.data)
        if event.stream_ended and self.streams.get(sid) is fetch:
            del self.streams[sid]
            self.h3.bodiless.discard(sid)
            length = self.lengths.pop(sid, None)
            if fetch.headers is None:
                self.fail(fetch, HTTPStreamClosedError("HTTP/3 stream ended without a response"))
            elif length is not None and length[0] != length[1]:
                self.fail(fetch, _length_error(length[1], length[0]))
            else:
                self.on_end(fetch)

    def _head(self, fetch: StreamFetch, raw: list[tuple[bytes, bytes]]) -> None:
        status = 0
        fields: list[tuple[str, str]] = []
        for name, value in raw:
            if name == b":status":
                status = int(value) if value.isdigit() else 0
            elif not name.startswith(b":"):
                fields.append((name.decode("latin-1"), value.decode("latin-1")))
        if not 100 <= status <= 599:
            self.abandon(fetch, HTTPStreamClosedError(f"HTTP/3 response with status {status!r}"))
        elif status >= 200:
            sid = fetch.stream_id
            if sid not in self.h3.bodiless:
                values = [value for name, value in fields if name == "content-length"]
                declared = content_length(values or None)
                if declared >= 0:
                    self.lengths[sid] = (declared, 0)
            self.on_head(fetch, status, fields)
        # 1xx (103 Early Hints, say): interim, the final head follows

    def _reset_by_server(self, event: StreamReset) -> None:
        fetch = self.streams.pop(event.stream_id, None)
        if fetch is None:
            return
        self.h3.bodiless.discard(event.stream_id)
        self.lengths.pop(event.stream_id, None)
        if event.error_code == H3Error.H3_REQUEST_REJECTED and not fetch.retried:
            # Not processed (RFC 9114 §4.1.1): safe to send again, once,
            # on a new connection; this one takes no more.
            self.goaway = True
            self.client.forget_connection(self)
            fetch.retried = True
            fetch.stream_id = 0
            fetch.chunks = []
            self.client.route_fetch(fetch, self.key)
            return
        self.fail(fetch, HTTPStreamClosedError(f"stream reset by the server ({event.error_code})"))

    def _terminated(self, event: ConnectionTerminated) -> None:
        reason = event.reason_phrase or f"error {event.error_code}"
        self.ended_by = reason
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(reason))
        if event.error_code in (0, H3Error.H3_NO_ERROR):
            # Closed by the server without an error: as a TCP connection
            # closed under its fetches (see CONNECTION_LOST).
            self.gone(CONNECTION_LOST)
        else:
            self.gone(HTTPStreamClosedError(f"HTTP/3 connection closed ({reason})"))
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transmit_task is not None:
            self._transmit_task.cancel()
            self._transmit_task = None
        self.gone(CONNECTION_LOST)

    # -- requests --------------------------------------------------------------

    def submit(self, fetch: StreamFetch) -> None:
        sid = self._quic.get_next_available_stream_id()
        try:
            head, body = self._message(fetch)
            self.h3.send_headers(sid, head, end_stream=not body)
            if body:
                self.h3.send_data(sid, body, end_stream=True)
        except (ValueError, UnicodeError) as exc:
            # A field HTTP/3 cannot carry (aioquic checks names and values)
            # fails this fetch alone.
            self.fail(fetch, HTTPStreamClosedError(f"cannot send over HTTP/3: {exc}"))
            return
        fetch.stream_id = sid
        self.streams[sid] = fetch
        if fetch.opts["method"] == "HEAD":
            self.h3.bodiless.add(sid)
        # Sent at the end of the loop turn, with the other requests made in it.
        self._transmit_soon()

    @staticmethod
    def _message(fetch: StreamFetch) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The request's header section (pseudo-header fields first) and body."""
        opts = fetch.opts
        # (The policy always gives a Host field: the caller's, or this
        # URL's authority.)
        authority = ""
        fields: list[tuple[bytes, bytes]] = []
        for name, value in fetch.fields:
            low = name.lower()
            if low not in _DROP:
                fields.append((low.encode("latin-1"), value.encode("latin-1")))
            elif low == "host":
                authority = value
        head = [
            (b":method", opts["method"].encode("latin-1")),
            (b":scheme", b"https"),
            (b":authority", authority.encode("latin-1")),
            (b":path", fetch.path.encode("latin-1")),
        ]
        return head + fields, fetch.body

    def reset_stream(self, stream_id: int) -> None:
        self.h3.bodiless.discard(stream_id)
        self.lengths.pop(stream_id, None)
        try:
            self._quic.reset_stream(stream_id, H3Error.H3_REQUEST_CANCELLED)
            self._quic.stop_stream(stream_id, H3Error.H3_REQUEST_CANCELLED)
        except Exception:
            return  # the stream is already gone both ways
        self._transmit_soon()

    def cancel(self, fetch: StreamFetch) -> None:
        """Give up on ``fetch`` (timeout): reset its stream."""
        if self.streams.pop(fetch.stream_id, None) is not None:
            self.reset_stream(fetch.stream_id)
        if self.draining and not self.streams:
            self.close()

    def drain(self) -> None:
        self.draining = True
        if not self.streams:
            self.close()

    def close(self, error_code: int = H3Error.H3_NO_ERROR, reason_phrase: str = "") -> None:
        """Close the connection now: CONNECTION_CLOSE, then the socket."""
        if self.closed:
            return
        self.closed = True
        self.client.forget_connection(self)
        # (qh3's QuicConnectionProtocol.close takes no code: the connection's does.)
        self._quic.close(error_code=error_code, reason_phrase=reason_phrase)
        self.transmit()
        if self._transport is not None:
            self._transport.close()


class _AltSvcWatch:
    """A fetch's callback that first reads the response's ``Alt-Svc``."""

    __slots__ = ("client", "callback")

    def __init__(self, client: H3AsyncHTTPClient, callback: Callable[[HTTPResponse], None]):
        self.client = client
        self.callback = callback

    def __call__(self, response: HTTPResponse) -> None:
        value = response.headers.get("Alt-Svc") if response.headers is not None else None
        if value is not None:
            self.client.note_alt_svc(response.effective_url or response.request.url, value)
        self.callback(response)


class H3AsyncHTTPClient(H2AsyncHTTPClient):
    """`H2AsyncHTTPClient` with HTTP/3 for the ``https`` origins that offer it.

    An origin offers HTTP/3 with an ``Alt-Svc: h3=":PORT"`` field on a
    response (RFC 7838, RFC 9114 §3.1.1): requests to that origin after it
    go over QUIC, to the alternative's port, for as long as the field's
    ``ma`` says; the certificate must be valid for the origin's host. If
    the QUIC handshake fails, the request goes over TCP (HTTP/2 or
    HTTP/1.1, as `H2AsyncHTTPClient` would send it) and HTTP/3 is not tried
    for that origin for `BROKEN_FOR` seconds. Requests that HTTP/2 would
    not carry (proxied, ``body_producer``, ``expect_100_continue``) go over
    TCP too.

    Args:
        http3_prior_knowledge: send every ``https`` request over HTTP/3 to
            the URL's own port, without waiting for an ``Alt-Svc``; a failed
            handshake fails the request (no fallback).
        http3_handshake_timeout: the longest a QUIC handshake to an
            advertised alternative may take before the request falls back to
            TCP (the request's ``connect_timeout`` applies when shorter, and
            alone with ``http3_prior_knowledge``).
        **kwargs: as for `H2AsyncHTTPClient`.
    """

    def initialize(  # type: ignore[override]
        self,
        http3_prior_knowledge: bool = False,
        http3_handshake_timeout: float = 3.0,
        **kwargs: Any,
    ) -> None:
        super().initialize(**kwargs)
        self.http3_prior_knowledge = http3_prior_knowledge
        self.http3_handshake_timeout = http3_handshake_timeout
        # (scheme, host, port) -> (alternative host, port, expiry on time.monotonic()).
        self._alt_svc: dict[tuple[str, str, int], tuple[str, int, float]] = {}
        # Origins whose alternative failed: not tried until the time given.
        self._h3_broken: dict[tuple[str, str, int], float] = {}

    # -- routing ---------------------------------------------------------------

    def fetch_impl(self, request: HTTPRequest, callback: Callable[[HTTPResponse], None]) -> None:
        opts = options(request)
        key = self._h3_key(opts)
        if key is None:
            self._over_tcp(request, callback)
            return
        fetch = self._new_fetch(request, callback, key, opts)
        if fetch is not None:
            self.route_fetch(fetch, key)

    def _over_tcp(self, request: HTTPRequest, callback: Callable[[HTTPResponse], None]) -> None:
        if not isinstance(callback, _AltSvcWatch) and request.url[:6].lower() == "https:":
            callback = _AltSvcWatch(self, callback)
        H2AsyncHTTPClient.fetch_impl(self, request, callback)

    def _h3_key(self, opts: dict[str, Any]) -> Optional[_Key]:
        """``("h3", host, port, alternative host, alternative port, TLS
        settings...)`` for a request (its `options`) HTTP/3 carries, else None."""
        key = self._stream_key(opts, plain=False)
        if key is None or key[0] != "https":
            return None
        origin = (key[0], key[1], key[2])
        if self.http3_prior_knowledge:
            alt_host, alt_port = key[1], key[2]
        else:
            now = time.monotonic()
            alternative = self._alt_svc.get(origin)
            if alternative is None or self._h3_broken.get(origin, 0.0) > now:
                return None
            if alternative[2] <= now:
                del self._alt_svc[origin]
                return None
            alt_host, alt_port = alternative[0] or key[1], alternative[1]
        return ("h3", key[1], key[2], alt_host, alt_port) + key[3:]

    def note_alt_svc(self, url: str, value: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme.lower() != "https" or not parsed.hostname:
            return  # RFC 7838 §2.1: only an authenticated origin's alternatives
        try:
            origin = ("https", parsed.hostname, parsed.port or 443)
        except ValueError:
            return
        alternatives = parse_alt_svc(value)
        if alternatives is None:
            return
        if not alternatives:
            self._alt_svc.pop(origin, None)  # "clear"
            return
        for protocol, host, port, max_age in alternatives:
            if protocol == "h3":
                self._alt_svc[origin] = (host, port, time.monotonic() + max_age)
                return

    async def _connect(self, key: _Key, request: HTTPRequest) -> None:
        if key[0] != "h3":
            await super()._connect(key, request)
            return
        loop = asyncio.get_running_loop()
        host, alt_host, alt_port = key[1], key[3], key[4]
        timeout: Optional[float] = request.connect_timeout or None
        if not self.http3_prior_knowledge:
            timeout = min(timeout or self.http3_handshake_timeout, self.http3_handshake_timeout)
        transport: Optional[asyncio.BaseTransport] = None
        try:
            configuration = self._quic_configuration(request, host)
            addresses = await self.resolver.resolve(alt_host, alt_port)
            family, address = addresses[0]
            transport, proto = await loop.create_datagram_endpoint(
                lambda: _H3ClientProtocol(QuicConnection(configuration=configuration), self, key),
                remote_addr=address,
                family=family,
            )
            proto.connect(transport.get_extra_info("peername"))
            try:
                await asyncio.wait_for(proto.handshake, timeout)
            except ConnectionRefusedError:
                raise  # nothing listens there (see error_received)
            except ConnectionError:
                raise ConnectionError(
                    f"HTTP/3 handshake with {alt_host}:{alt_port} failed: {proto.ended_by}"
                ) from None
        except (OSError, TimeoutError, ValueError, ssl.SSLError, ConnectionError) as exc:
            if transport is not None:
                transport.close()
            self._connect_failed(key, exc)
            return
        fetches = self._h2_connecting.pop(key, [])
        self._h2_conns[key] = proto
        for fetch in fetches:
            if not fetch.done:
                proto.submit(fetch)
        if self._closed:
            # Closed while connecting: this connection serves these only.
            self.forget_connection(proto)
            proto.drain()

    def _connect_failed(self, key: _Key, exc: BaseException) -> None:
        fetches = self._h2_connecting.pop(key, [])
        if self.http3_prior_knowledge:
            error: BaseException = exc
            if isinstance(exc, TimeoutError):
                error = HTTPTimeoutError("Timeout while connecting (HTTP/3)")
            for fetch in fetches:
                self.fail_fetch(fetch, error)
            return
        gen_log.info("HTTP/3 to %s:%s failed (%r): falling back to TCP", key[3], key[4], exc)
        self._h3_broken[("https", key[1], key[2])] = time.monotonic() + BROKEN_FOR
        for fetch in fetches:
            if fetch.done:
                continue
            fetch.done = True
            self._untime(fetch)
            self._over_tcp(fetch.request, fetch.callback)

    def _quic_configuration(self, request: HTTPRequest, host: str) -> QuicConfiguration:
        """The request's TLS settings, as the QUIC stack takes them."""
        config = QuicConfiguration(
            is_client=True,
            alpn_protocols=list(H3_ALPN),
            server_name=host,
            idle_timeout=self.pool.idle_timeout,
        )
        options = request.ssl_options
        ca_certs = request.ca_certs
        certfile, keyfile = request.client_cert, request.client_key
        verify = bool(request.validate_cert)
        if isinstance(options, ssl.SSLContext):
            verify = options.verify_mode != ssl.CERT_NONE
            if verify:
                loaded = options.get_ca_certs(binary_form=True)
                if loaded:
                    config.cadata = "".join(
                        ssl.DER_cert_to_PEM_cert(der) for der in loaded
                    ).encode()
        elif isinstance(options, dict):
            verify = options.get("cert_reqs", ssl.CERT_REQUIRED) != ssl.CERT_NONE
            ca_certs = options.get("ca_certs", ca_certs)
            certfile = options.get("certfile", certfile)
            keyfile = options.get("keyfile", keyfile)
        config.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
        if verify and config.cadata is None:
            if ca_certs:
                config.cafile = ca_certs
            else:
                # The system's trust store, as the TCP clients use it.
                paths = ssl.get_default_verify_paths()
                # The directory only without the bundle file (it holds
                # the same certificates; qh3 2.1 fails on a subdirectory
                # in it, as Debian's /etc/ssl/certs/java).
                if paths.cafile and os.path.exists(paths.cafile):
                    config.cafile = paths.cafile
                elif paths.capath and os.path.isdir(paths.capath):
                    config.capath = paths.capath
        if certfile:
            config.load_cert_chain(certfile, keyfile)
        return config
