"""HTTP/3 for `HTTPServer` (``http3=True``): QUIC and QPACK from aioquic.

``pip install squall[http3]``. One UDP endpoint (`_H3Endpoint`) per TLS
listening address, on the same port number; one `_H3Protocol` per QUIC
connection; one `_H3Stream` (`.Exchange`) per request. Requests reach the
application through the same seams as HTTP/1.1 and HTTP/2: the server's
``start_request(server_conn, request_conn)`` gives an
`.HTTPMessageDelegate`, which gets ``headers_received``,
``data_received`` and ``finish``; ``request.version`` is ``"HTTP/3"``.

Limits, as over HTTP/2: concurrent streams (QUIC's MAX_STREAMS credit,
and a stream over the limit is refused with H3_REQUEST_REJECTED), the
header section (431 beyond the server's ``max_header_size``), the body
(413 beyond ``max_body_size``), the connection's idle timeout (QUIC's),
and a request whose head or body does not arrive in time (reset). A
draining server sends GOAWAY (RFC 9114 section 5.2) and closes each
connection once its streams are done.

aioquic credits flow-control windows as data arrives, not as the
application takes it: a delegate that returns an awaitable holds the
body pieces here, bounded by the body limit. The output side (writes
and their wait for a slow client, the write timeout, the handshake
timeout, GOAWAY and close) is the base class's, ``_h3session``'s
`_H3Session`; this module is the UDP endpoint and what comes in.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from squall._h2 import bad_value
from squall._quicstack import (
    H3_ALPN,
    ConnectionTerminated,
    DataReceived,
    H3Error,
    H3Event,
    HandshakeCompleted,
    Header,
    HeadersReceived,
    ProtocolNegotiated,
    QuicConfiguration,
    QuicConnectionProtocol,
    QuicEvent,
    QuicRetryTokenHandler,
    QuicServer,
    StopSendingReceived,
    StreamReset,
    pull_header,
    retry_packet,
)
from squall.httpserver import _flow as flow
from squall.httpserver._context import _HTTPRequestContext
from squall.httpserver._h3conn import HeadersRefused
from squall.httpserver._h3session import _H3Session
from squall.httpserver._h3setup import quic_configuration
from squall.httpserver._h3stream import _H3Stream
from squall.httpserver._h3websocket import _H3Tunnel
from squall.httpserver._h3webtransport import (
    WebTransportH3Connection,
    route_event,
    stream_reset,
)
from squall.httpserver._quicroute import adopt, issue_cid
from squall.httputil import HTTPInputError
from squall.log import app_log, gen_log

if TYPE_CHECKING:
    from squall.httpserver._h3stream import H3Driver
    from squall.httpserver._muxstream import MuxDriver
    from squall.httpserver._server import HTTPServer

# quic_configuration is listen-time setup (_h3setup), re-exported here,
# and _H3Session (the connection's state and output) is _H3Protocol's base.
__all__ = ["quic_configuration"]

_VERSION = "HTTP/3"
# Half-open connections (handshake not complete) before new Initials are
# answered with a Retry, and the most there may be (past it, Initials are
# dropped). One costs about 33 KiB (aioquic's connection state).
RETRY_THRESHOLD = 100
MAX_HALF_OPEN = 1000
# RFC 9000 section 14.1: a client's first Initial fills a 1,200-byte datagram.
_MIN_INITIAL = 1200


class _H3Endpoint(QuicServer):
    """The UDP endpoint: routes datagrams to connections by connection ID.

    Under a flood of Initials from addresses that may be spoofed, the
    state they create is bounded (RFC 9000 sections 8.1, 21.2): once
    ``retry_threshold`` connections are half-open (handshake not
    complete), a new Initial without a token is answered with a stateless
    Retry (section 17.2.5) whose token, authenticated and valid for 30 s,
    binds the client's address and port and the connection IDs; a client
    that comes back with it has shown that it receives at its address. At
    ``max_half_open`` half-open connections, Initials are dropped without
    state or answer. A connection counts as half-open from its first
    Initial until its handshake completes or aioquic forgets it (after
    its close's draining period), so the count bounds aioquic's table.
    """

    def __init__(
        self, server: HTTPServer, configuration: QuicConfiguration, slot: Optional[int] = None
    ) -> None:
        super().__init__(configuration=configuration, create_protocol=self._new_connection)
        self._server = server
        # The worker's slot in squall run's UDP groups (squall.httpserver._quicroute).
        self._slot = slot
        self.accepting = True
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The server's HTTP/3 limits, which each connection takes too.
        limits = self._limits = server._h3_limits
        self.retry_threshold: int = limits.get("retry_threshold", RETRY_THRESHOLD)
        self.max_half_open: int = limits.get("max_half_open", MAX_HALF_OPEN)
        self.half_open: set[_H3Session] = set()
        self._tokens = QuicRetryTokenHandler()
        # What the flood cost: Retries sent, Initials dropped at the cap.
        self.retries_sent = 0
        self.initials_dropped = 0

    def _new_connection(self, quic: Any, stream_handler: Any = None) -> _H3Protocol:
        if self._slot is not None:
            adopt(quic, self._slot)
        protocol = _H3Protocol(quic, self._server, self._limits, self.half_open)
        self.half_open.add(protocol)
        return protocol

    def _connection_terminated(self, protocol: QuicConnectionProtocol) -> None:
        # aioquic drops the connection from its table (after the draining
        # period): only now is its state gone.
        self.half_open.discard(protocol)
        super()._connection_terminated(protocol)
        if isinstance(protocol, _H3Protocol):
            # (aioquic goes on using it until this event's handling returns.)
            self._loop.call_soon(protocol.release)

    def datagram_received(self, data: Union[bytes, str], addr: Any) -> None:
        assert isinstance(data, bytes)
        header = pull_header(data, self._configuration.connection_id_length)
        if header is None:
            return
        protocol = self._protocols.get(header.destination_cid)
        if protocol is not None:
            self._pass(protocol, data, addr)
            return
        if not self.accepting:
            # Stopped: only the connections already open are served.
            return
        if header.initial and len(data) >= _MIN_INITIAL:
            # A new connection: the only datagram that makes state.
            if len(self.half_open) >= self.max_half_open:
                self.initials_dropped += 1
                return
            if not header.token and len(self.half_open) >= self.retry_threshold:
                self._send_retry(header, addr)
                return
            # aioquic checks a token when its handler is set (the client
            # was sent a Retry: its connection IDs follow from the token);
            # (it leaves the handler None when built without retry).
            self._retry = self._tokens if header.token else None  # type: ignore[assignment]
        self._pass(None, data, addr)

    def _send_retry(self, header: Header, addr: Any) -> None:
        """RFC 9000 section 17.2.5: a Retry, and no state kept."""
        # Under squall run's routing the client's next Initial, sent to
        # this ID, must come back to this worker (whose key checks it).
        cid = issue_cid(self._slot) if self._slot is not None else os.urandom(8)
        packet = retry_packet(self._tokens, header, addr, cid, self._loop.time())
        assert self._transport is not None
        self._transport.sendto(packet, addr)
        self.retries_sent += 1

    def _pass(self, protocol: Optional[QuicConnectionProtocol], data: bytes, addr: Any) -> None:
        try:
            if protocol is not None:
                protocol.datagram_received(data, addr)
            else:
                super().datagram_received(data, addr)
        except Exception:
            # aioquic raising on hostile input must not escape the loop's callback.
            gen_log.info("HTTP/3: datagram from %s dropped", addr, exc_info=True)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for one peer (port unreachable...): its connection
        # times out by itself; the endpoint serves on.
        pass

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def set_configuration(self, configuration: QuicConfiguration) -> None:
        """New connections use ``configuration`` (a reloaded certificate)."""
        self._configuration = configuration

    def stop(self) -> None:
        """Accept no new connection; the open ones go on."""
        self.accepting = False

    def close_transport(self) -> None:
        transport = self._transport
        if transport is not None:
            transport.close()


class _H3Protocol(_H3Session):
    """One QUIC connection carrying HTTP/3, served by `HTTPServer`: what
    comes in (the base, `_H3Session`, holds the state and the output)."""

    # -- datagrams in ---------------------------------------------------------------

    def datagram_received(self, data: Union[bytes, str], addr: Any) -> None:
        if self.context is None:
            family = socket.AF_INET6 if ":" in str(addr[0]) else socket.AF_INET
            server = self._server
            self.context = _HTTPRequestContext(
                family, tuple(addr[:2]), server.protocol, server.trusted_downstream, True
            )
        if self._gone:
            # Closing: aioquic's draining timer is armed by its transmit.
            super().datagram_received(data, addr)
            return
        self._quic.receive_datagram(cast(bytes, data), addr, now=self._loop.time())
        self._process_events()
        # One transmit per loop iteration, after the requests this datagram
        # started have run: their responses leave with the acknowledgement,
        # and each of aioquic's passes over the streams serves them all.
        self.flush_soon()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            if self._half_open is not None:
                self._half_open.discard(self)
            timer = self._handshake_timer
            if timer is not None:
                self._handshake_timer = None
                timer.cancel()
            return
        if isinstance(event, ProtocolNegotiated):
            if event.alpn_protocol in H3_ALPN:
                self.h3 = WebTransportH3Connection(self._quic, self.max_header_size)
            return
        if isinstance(event, ConnectionTerminated):
            self._on_lost()
            return
        if isinstance(event, (StreamReset, StopSendingReceived)):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                gen_log.debug(
                    "HTTP/3 stream %d of %s reset by the client", event.stream_id, self.context
                )
                if isinstance(event, StopSendingReceived):
                    self.reset_stream(stream, H3Error.H3_REQUEST_CANCELLED)
                else:
                    self._lose_stream(stream)
            elif self._webtransport:
                stream_reset(self, event.stream_id)
        h3 = self.h3
        if h3 is None:
            return
        for h3_event in h3.handle_event(event):
            try:
                self._on_h3_event(h3_event)
            except Exception:
                # The application's code runs inside these calls.
                app_log.error("Uncaught exception", exc_info=True)
                stream = self._streams.get(getattr(h3_event, "stream_id", -1))
                if stream is not None:
                    self.reset_stream(stream, H3Error.H3_INTERNAL_ERROR)

    def _on_h3_event(self, event: H3Event) -> None:
        if self._webtransport is not None and route_event(self, event):
            return
        if isinstance(event, HeadersRefused):
            self._on_refused_head(event)
        elif isinstance(event, HeadersReceived):
            stream = self._streams.get(event.stream_id)
            if stream is None:
                self._on_request(event)
            else:
                # Trailers (checked by the QUIC stack), kept for the
                # application as over HTTP/2: request.connection.trailers.
                stream.trailers = flow.headers_from_pairs(
                    [
                        (name.decode("latin-1"), value.decode("latin-1"))
                        for name, value in event.headers
                    ]
                )
                if event.stream_ended:
                    self._on_end(stream)
        elif isinstance(event, DataReceived):
            stream = self._streams.get(event.stream_id)
            if stream is None:
                return
            tunnel = stream.tunnel
            if tunnel is not None:
                self._tunnel_input(tunnel, event.data, event.stream_ended)
                return
            if event.data:
                self._on_data(stream, event.data)
            if event.stream_ended and not stream.is_closed:
                self._on_end(stream)

    # -- requests -------------------------------------------------------------------

    def _on_request(self, event: HeadersReceived) -> None:
        sid = event.stream_id
        quic = self._quic
        if sid % 4 != 0:
            return  # not a client-initiated bidirectional stream
        if self._closing or self.slots.active >= self.max_streams:
            # RFC 9114 section 4.1.1: refused before any processing.
            quic.reset_stream(sid, H3Error.H3_REQUEST_REJECTED)
            quic.stop_stream(sid, H3Error.H3_REQUEST_REJECTED)
            return
        self._next_stream = max(self._next_stream, sid + 4)
        loop = self._loop
        now = loop.time()
        stream = _H3Stream(self, sid, now, self.context, loop, self._max_body, self.slots)
        self._streams[sid] = stream
        size = 0
        method = path = authority = protocol = None
        fields: list[tuple[str, str]] = []
        for raw_name, raw_value in event.headers:
            size += len(raw_name) + len(raw_value) + 32
            if raw_name.startswith(b":"):
                if raw_name == b":method":
                    method = raw_value.decode("latin-1")
                elif raw_name == b":path":
                    path = raw_value.decode("latin-1")
                elif raw_name == b":authority":
                    authority = raw_value.decode("latin-1")
                elif raw_name == b":protocol":
                    protocol = raw_value.decode("latin-1")
                continue
            if not raw_name:
                # The QUIC stacks let an empty name through; a name is a
                # token of one character at least (RFC 9110 section 5.1),
                # and HTTP/1.1 and HTTP/2 refuse one.
                self.refuse_request(stream, 400, "empty header name")
                return
            fields.append((raw_name.decode("latin-1"), raw_value.decode("latin-1")))
        if size > self.max_header_size:
            self.refuse_request(stream, 431, "header section too large")
            return
        # The QUIC stack refuses NUL, CR and LF in a value; HTTP/1.1 (and
        # HTTP/2) refuse every control character but HTAB, so a handler sees
        # the same fields whatever the version. One scan of all the values
        # settles the common request; the check by value runs only on those
        # a tab or obs-text makes less simple.
        if not "".join([field[1] for field in fields]).isprintable() and any(
            value and bad_value(value) for _, value in fields
        ):
            self.refuse_request(stream, 400, "invalid header value")
            return
        if method is None or not path or (method == "CONNECT") != (protocol is not None):
            # A plain CONNECT (a proxy's) is not served; :protocol comes
            # only with CONNECT (RFC 9220 section 3, RFC 8441 section 4).
            self.refuse_request(stream, 400, "unsupported request")
            return
        if authority is not None:
            rest = [f for f in fields if f[0] != "host"]
            if len(fields) - len(rest) < 2:
                fields = [("host", authority), *rest]
        headers = flow.headers_from_pairs(fields)
        start_line = flow.request_line(method, path, _VERSION)
        try:
            self._good_host = flow.known_host(headers, self._good_host, _VERSION)
        except HTTPInputError as exc:
            self.refuse_request(stream, 400, str(exc))
            return
        as_list = flow.fields_of(headers)
        cookies = as_list.get("Cookie")
        if cookies is not None and len(cookies) > 1:
            # RFC 9114 §4.2.1: a client may split its Cookie into several
            # fields (browsers do, for QPACK); they are one field again, as
            # over HTTP/2, or HTTPHeaders would join them with commas.
            cookies[:] = ["; ".join(cookies)]
        lengths = as_list.get("Content-Length")
        length = -1
        if lengths is not None:
            if len(lengths) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
                self.refuse_request(stream, 400, "invalid Content-Length")
                return
            # Over the limit: refused once the delegate has the head, which
            # may raise the limit (see _MuxStream.start).
            length = int(lengths[0])
        if protocol is not None:
            stream.protocol = protocol
            stream.tunnel = _H3Tunnel(self, stream)
            if protocol == "websocket":
                flow.present_websocket(headers)
        else:
            expect = as_list.get("Expect")
            if expect is not None and expect[0].lower() == "100-continue":
                stream.expect_continue = True
        delegate = flow.decompressing(
            self._start_request(self, stream), self._params, self._max_body
        )
        ret = stream.start(delegate, start_line, headers, length)
        body_timeout = self._params.body_timeout
        if body_timeout is not None and not event.stream_ended:
            # Cut at its time, as over HTTP/1.1 (see _MuxStream.set_body_timeout).
            self.check_timeouts_by(now + body_timeout)
        if ret is not None:
            self._block(stream, ret)
        elif stream.is_closed:
            return  # refused or reset: the delegate raised
        if protocol is not None:
            # The head is the whole request; DATA that follows is the tunnel's.
            self._on_end(stream)
            if stream.tunnel is not None:
                self._tunnel_input(stream.tunnel, b"", event.stream_ended)
        elif event.stream_ended:
            self._on_end(stream)
        if stream.expect_continue and ret is None:
            self._continue(stream)

    def _continue(self, stream: _H3Stream) -> None:
        # RFC 9110 section 10.1.1, as HTTP/1.1 and HTTP/2 do: the delegate
        # took the head and the body is still to come: a 100 asks for it.
        if stream.take_continue():
            self.send_interim(stream, [(b":status", b"100")])

    def _tunnel_input(self, tunnel: _H3Tunnel, data: bytes, ended: bool) -> None:
        """What the client sent on an extended CONNECT's stream after its
        head: the tunnel's bytes, and its end."""
        if data:
            tunnel.feed(data)
        if ended:
            tunnel.feed_eof()

    def _on_refused_head(self, event: HeadersRefused) -> None:
        """A header section refused: over the limit before it was decoded
        (431 for a request's head, RFC 9114 section 4.2.2, as HTTP/2 answers
        an HPACK bomb), or malformed (400, as HTTP/1.1 answers a bad head;
        section 4.1.2 makes it the stream's error, H3_MESSAGE_ERROR). A
        request's trailers refused reset its stream."""
        sid = event.stream_id
        malformed = event.malformed
        stream = self._streams.get(sid)
        if stream is not None:
            gen_log.info("Malformed HTTP/3 request from %s: %s", self.context, event.reason)
            code = H3Error.H3_MESSAGE_ERROR if malformed else H3Error.H3_EXCESSIVE_LOAD
            self.reset_stream(stream, code)
            return
        if sid % 4 != 0:
            return
        if malformed:
            status, stop = b"400", H3Error.H3_MESSAGE_ERROR
            gen_log.info("Malformed HTTP/3 request from %s: %s", self.context, event.reason)
        else:
            status, stop = b"431", H3Error.H3_NO_ERROR
            gen_log.info(
                "Malformed HTTP/3 request from %s: header section too large (%s)",
                self.context,
                event.reason,
            )
        h3 = self.h3
        assert h3 is not None
        try:
            h3.send_headers(sid, [(b":status", status), (b"content-length", b"0")], True)
            self._quic.stop_stream(sid, stop)
        except Exception:
            pass  # the stream is gone in aioquic already
        self.flush_soon()

    def refuse_request(self, stream: _H3Stream, status: int, message: str) -> None:
        """Answer a bad request on its stream and read no more of it."""
        gen_log.info("Malformed HTTP/3 request from %s: %s", self.context, message)
        sid = stream.stream_id
        h3 = self.h3
        assert h3 is not None
        self._streams.pop(sid, None)
        try:
            h3.send_headers(
                sid, [(b":status", str(status).encode()), (b"content-length", b"0")], True
            )
            self._quic.stop_stream(sid, H3Error.H3_NO_ERROR)
        except Exception:
            pass  # the stream is gone in aioquic already
        stream.refused()
        self.flush_soon()

    def _on_data(self, stream: _H3Stream, data: bytes) -> None:
        if not stream.wants_body():
            return
        if not stream.took(len(data)):
            return
        if stream.off_its_length(False):
            self._malformed_body(stream)
        elif not stream.hold_if_busy(data):
            self._deliver(stream, data)

    def _malformed_body(self, stream: _H3Stream) -> None:
        # aioquic's H3 layer makes the same check (and refuses the stream
        # before this sees it); qh3's makes none, and the handler got the
        # body as sent whatever its Content-Length said.
        gen_log.info(
            "Malformed HTTP/3 request from %s: body not as long as its Content-Length",
            self.context,
        )
        self.reset_stream(stream, H3Error.H3_MESSAGE_ERROR)

    def _deliver(self, stream: _H3Stream, data: bytes) -> None:
        ret, rest = stream.deliver(data, self._params.chunk_size)
        if ret is not None:
            if rest:
                stream.hold(rest, True)
            self._block(stream, ret)

    def _on_end(self, stream: _H3Stream) -> None:
        if stream.off_its_length(True):
            self._malformed_body(stream)
        elif stream.end_request():
            self._retire(stream)

    def _block(self, stream: _H3Stream, awaitable: Awaitable[None]) -> None:
        stream.block()

        def unblock(f: asyncio.Future[None]) -> None:
            self._unblock(stream, f)

        flow.wait_on(awaitable, self._loop, unblock)

    def _unblock(self, stream: _H3Stream, future: asyncio.Future[None]) -> None:
        try:
            if stream.unblocked(future) and not self._gone:
                if stream.expect_continue:
                    self._continue(stream)
                stream.drain(self._deliver, self._on_end)
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.reset_stream(stream, H3Error.H3_INTERNAL_ERROR)
        finally:
            self.flush_soon()


if TYPE_CHECKING:
    # The driver offers what its streams call (mypy checks).
    _DRIVER: type[H3Driver] = _H3Protocol
    _MUX_DRIVER: type[MuxDriver] = _H3Protocol
