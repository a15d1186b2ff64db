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
body pieces here, bounded by the body limit. Writes go to aioquic's
per-stream send buffer; a write's future waits while that buffer holds
more than `_HIGH_WATER` bytes the client has not acknowledged (so
``await self.flush()`` waits for a slow client), and a stream whose
buffer does not move for the server's ``write_timeout`` is reset. A
connection whose handshake does not complete within the header timeout
is dropped (QUIC's own idle timeout is the server's idle one, an hour by
default, far too long for a flood of half-open connections).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from squall._quicstack import (
    H3_ALPN,
    ConnectionTerminated,
    DataReceived,
    FrameType,
    H3Connection,
    H3Error,
    H3Event,
    HandshakeCompleted,
    Header,
    HeadersReceived,
    ProtocolNegotiated,
    QuicConfiguration,
    QuicConnection,
    QuicConnectionProtocol,
    QuicEvent,
    QuicRetryTokenHandler,
    QuicServer,
    StopSendingReceived,
    StreamReset,
    TransmitError,
    amplification_room,
    encode_frame,
    encode_uint_var,
    ends_unacknowledged,
    pull_header,
    retry_packet,
    send_backlog,
    set_stream_credit,
)
from squall.httpserver import _flow as flow
from squall.httpserver._context import _HTTPRequestContext
from squall.httpserver._h3conn import HeadersRefused
from squall.httpserver._h3setup import quic_configuration
from squall.httpserver._h3stream import _H3Stream
from squall.httpserver._h3websocket import _H3Tunnel, drain_tunnels
from squall.httpserver._h3webtransport import (
    WebTransportH3Connection,
    route_event,
    stream_reset,
)
from squall.httpserver._muxstream import StreamSlots, stream_census
from squall.httpserver._quicroute import adopt, issue_cid
from squall.httputil import HTTPInputError
from squall.iostream import StreamClosedError
from squall.log import app_log, gen_log

if TYPE_CHECKING:
    from squall.http1connection import HTTP1ConnectionParameters
    from squall.httpserver._h3stream import H3Driver
    from squall.httpserver._muxstream import MuxDriver
    from squall.httpserver._server import HTTPServer

# quic_configuration is listen-time setup (_h3setup), re-exported here.
__all__ = ["quic_configuration"]

_VERSION = "HTTP/3"
# HTTP/3's largest request body when the server sets none (aioquic's core
# has no body limit of its own): the same as HTTP/1.1's and HTTP/2's.
_MAX_BODY_SIZE = 100 * 1024 * 1024
_DEFAULT_MAX_STREAMS = 100
# Unacknowledged bytes a stream's send buffer may hold before its writes wait.
_HIGH_WATER = 256 * 1024
# Half-open connections (handshake not complete) before new Initials are
# answered with a Retry, and the most there may be (past it, Initials are
# dropped). One costs about 33 KiB (aioquic's connection state).
RETRY_THRESHOLD = 100
MAX_HALF_OPEN = 1000
# RFC 9000 section 14.1: a client's first Initial fills a 1,200-byte datagram.
_MIN_INITIAL = 1200


def _ignore(*args: object) -> None:
    """A callback that does nothing (a released connection's)."""


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
        self.half_open: set[_H3Protocol] = set()
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


class _H3Protocol(QuicConnectionProtocol):
    """One QUIC connection carrying HTTP/3, served by `HTTPServer`."""

    INTERNAL_ERROR = H3Error.H3_INTERNAL_ERROR
    REQUEST_CANCELLED = H3Error.H3_REQUEST_CANCELLED

    def __init__(
        self,
        quic: Any,
        server: HTTPServer,
        limits: dict[str, int],
        half_open: Optional[set[_H3Protocol]] = None,
    ) -> None:
        super().__init__(quic)
        self._server = server
        # The endpoint's half-open connections: this one leaves it when its
        # handshake completes.
        self._half_open = half_open
        params: HTTP1ConnectionParameters = server.conn_params
        self._params = params
        self.max_streams: int = limits.get("max_concurrent_streams", _DEFAULT_MAX_STREAMS)
        self.max_header_size: int = params.max_header_size or 65536
        # The initial MAX_STREAMS credit (a transport parameter), set before
        # the handshake where the stack lets it be (see _quicstack); where
        # not, streams over the limit are refused as they open.
        self.stream_credit = set_stream_credit(quic, self.max_streams)
        self.h3: Optional[H3Connection] = None
        self._streams: dict[int, _H3Stream] = {}
        #: The streams served at once (their slots: see ``_muxstream``).
        self.slots = StreamSlots()
        self._max_body = flow.body_limit(params, _MAX_BODY_SIZE)
        self.context: Optional[_HTTPRequestContext] = None
        self._start_request = server._request_starter(alt_svc=False)
        self._good_host: Optional[str] = None
        # The first request stream not processed (GOAWAY's identifier).
        self._next_stream = 0
        # WebTransport sessions by CONNECT stream (squall.httpserver._h3webtransport).
        self._webtransport: Optional[dict[int, Any]] = None
        self._closing = False
        # Draining, done, waiting for the client to acknowledge the last bytes.
        self._close_pending = False
        self._gone = False
        self._done_future: Optional[asyncio.Future[None]] = None
        self._closed_waiter: Optional[asyncio.Future[None]] = None
        self._flush_handle: Optional[asyncio.Handle] = None
        self._sweep_handle: Optional[asyncio.TimerHandle] = None
        # Writes waiting for the client to take a stream's output, by
        # stream; since when, and how much it held at the last sweep.
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        # Response heads (and first chunks) not yet given to aioquic, by
        # stream: see `_send_head`.
        self._held: dict[int, tuple[list[tuple[bytes, bytes]], bytes]] = {}
        self._stalled: dict[int, tuple[float, int]] = {}
        # Since when no request has been in progress (the idle timeout).
        self._idle_since = self._loop.time()
        server._connections.add(self)
        self._schedule_sweep()
        self._handshake_timer: Optional[asyncio.TimerHandle] = self._loop.call_later(
            params.header_timeout or 10.0, self._handshake_timed_out
        )

    @property
    def transport(self) -> Optional[asyncio.DatagramTransport]:
        """The UDP transport the connection's datagrams go through (shared
        with the endpoint's other connections); None before it is known."""
        return self._transport

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
            elif event.stream_ended:
                self._on_end(stream)  # trailers: dropped, as over HTTP/1.1
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
            fields.append((raw_name.decode("latin-1"), raw_value.decode("latin-1")))
        if size > self.max_header_size:
            self.refuse_request(stream, 431, "header section too large")
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
        lengths = flow.fields_of(headers).get("Content-Length")
        if lengths is not None:
            if len(lengths) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
                self.refuse_request(stream, 400, "invalid Content-Length")
                return
            if int(lengths[0]) > self._max_body:
                self.refuse_request(stream, 413, "Content-Length too long")
                return
        if protocol is not None:
            stream.protocol = protocol
            stream.tunnel = _H3Tunnel(self, stream)
        delegate = flow.decompressing(
            self._start_request(self, stream), self._params, self._max_body
        )
        ret = stream.start(delegate, start_line, headers)
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

    def _tunnel_input(self, tunnel: _H3Tunnel, data: bytes, ended: bool) -> None:
        """What the client sent on an extended CONNECT's stream after its
        head: the tunnel's bytes, and its end."""
        if data:
            tunnel.feed(data)
        if ended:
            tunnel.feed_eof()

    def _on_refused_head(self, event: HeadersRefused) -> None:
        """A header section over the limit, refused before it was decoded:
        431 for a request's head (RFC 9114 section 4.2.2, as HTTP/2 answers
        an HPACK bomb); a request's trailers over it reset the stream."""
        sid = event.stream_id
        stream = self._streams.get(sid)
        if stream is not None:
            gen_log.info("Malformed HTTP/3 request from %s: %s", self.context, event.reason)
            self.reset_stream(stream, H3Error.H3_EXCESSIVE_LOAD)
            return
        if sid % 4 != 0:
            return
        gen_log.info(
            "Malformed HTTP/3 request from %s: header section too large (%s)",
            self.context,
            event.reason,
        )
        h3 = self.h3
        assert h3 is not None
        try:
            h3.send_headers(sid, [(b":status", b"431"), (b"content-length", b"0")], True)
            self._quic.stop_stream(sid, H3Error.H3_NO_ERROR)
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
        if stream.took(len(data)) and not stream.hold_if_busy(data):
            self._deliver(stream, data)

    def _deliver(self, stream: _H3Stream, data: bytes) -> None:
        ret, rest = stream.deliver(data, self._params.chunk_size)
        if ret is not None:
            if rest:
                stream.hold(rest, True)
            self._block(stream, ret)

    def _on_end(self, stream: _H3Stream) -> None:
        if stream.end_request():
            self._retire(stream)

    def _block(self, stream: _H3Stream, awaitable: Awaitable[None]) -> None:
        stream.block()

        def unblock(f: asyncio.Future[None]) -> None:
            self._unblock(stream, f)

        flow.wait_on(awaitable, self._loop, unblock)

    def _unblock(self, stream: _H3Stream, future: asyncio.Future[None]) -> None:
        try:
            if stream.unblocked(future) and not self._gone:
                stream.drain(self._deliver, self._on_end)
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.reset_stream(stream, H3Error.H3_INTERNAL_ERROR)
        finally:
            self.flush_soon()

    # -- responses (called by _H3Stream) ----------------------------------------------

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._gone:
            return
        # Debug, as HTTP/1.1's head timeout: a flood of Initials that never
        # complete (23,625 in a 10-minute make soak) would otherwise write a
        # line each, a log volume the sender decides.
        gen_log.debug("HTTP/3: handshake from %s not completed in time; dropped", self.context)
        # RFC 9000 section 8.1: until the client's address is validated it
        # gets at most three times what it sent, and aioquic does not count
        # a CONNECTION_CLOSE against that: the datagrams of the close that
        # do not fit are not sent (the client's own timeout ends it then).
        quic = self._quic
        room = amplification_room(quic)
        transport = self._transport
        if room is None or transport is None:
            self._close_quic()
            return
        quic.close(error_code=H3Error.H3_NO_ERROR)
        for data, addr in quic.datagrams_to_send(now=self._loop.time()):
            if len(data) <= room:
                room -= len(data)
                transport.sendto(data, addr)
        # The connection's timer, for its draining period (what else aioquic
        # would send now is held to the limit by aioquic itself).
        self.transmit()
        self._on_lost()

    def transmit(self) -> None:
        try:
            super().transmit()
        except TransmitError as exc:
            # The stack could not build this turn's datagrams (see
            # _quicstack.TransmitError); the client's next datagram (its
            # own retransmission at worst) brings another try.
            gen_log.debug("HTTP/3: nothing sent to %s this turn: %s", self.context, exc)
        if self._close_pending and not self._unfinished():
            self._close_pending = False
            self._close_quic()
        if self._waiters:
            # Acknowledgements came in: wake the writes whose stream took them.
            for sid in list(self._waiters):
                if self._unacked(sid) <= _HIGH_WATER:
                    self._stalled.pop(sid, None)
                    self._wake(sid)

    def _unacked(self, sid: int) -> int:
        return send_backlog(self._quic, sid)

    def _wake(self, sid: int, exc: Optional[BaseException] = None) -> None:
        for waiter in self._waiters.pop(sid, ()):
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
                    waiter.exception()

    def stream_writable(self, sid: int) -> asyncio.Future[None]:
        """What a write on stream ``sid`` returns (a response's, a WebTransport
        stream's): done, or a wait while the stream holds more than the
        high-water mark of output the client has not acknowledged."""
        if self._unacked(sid) <= _HIGH_WATER:
            return self.write_ready()
        waiter = self._loop.create_future()
        self._waiters.setdefault(sid, []).append(waiter)
        self._stalled.setdefault(sid, (self._loop.time(), self._unacked(sid)))
        return waiter

    def write_ready(self) -> asyncio.Future[None]:
        done = self._done_future
        if done is None:
            done = self._done_future = self._loop.create_future()
            done.set_result(None)
        return done

    def send_head(
        self, stream: _H3Stream, fields: list[tuple[bytes, bytes]], chunk: bytes
    ) -> asyncio.Future[None]:
        if stream.tunnel is None:
            # Held until the response ends or the loop turns, whichever is
            # first: most responses end in the call that starts them, and
            # then HEADERS, DATA and the FIN go to aioquic at once (one
            # QUIC stream write fewer, and no empty DATA frame to end it).
            self._held[stream.stream_id] = (fields, chunk)
            self.flush_soon()
            return self.write_ready()
        h3 = self.h3
        assert h3 is not None
        try:
            h3.send_headers(stream.stream_id, fields, False)
            if chunk:
                h3.send_data(stream.stream_id, chunk, False)
        except Exception:
            # The stream is gone in aioquic (reset by the client meanwhile).
            self._lose_stream(stream)
        self.flush_soon()
        return self.stream_writable(stream.stream_id)

    def _release(self, sid: int, end: bool) -> None:
        """Gives a held head (and its chunk) to aioquic; ``end``: with the FIN."""
        h3 = self.h3
        assert h3 is not None
        fields, chunk = self._held.pop(sid)
        h3.send_headers(sid, fields, end and not chunk)
        if chunk:
            h3.send_data(sid, chunk, end)

    def _release_held(self) -> None:
        for sid in list(self._held):
            try:
                self._release(sid, False)
            except Exception:
                stream = self._streams.get(sid)
                if stream is not None:
                    self._lose_stream(stream)

    def send_body(self, stream: _H3Stream, chunk: bytes) -> asyncio.Future[None]:
        h3 = self.h3
        assert h3 is not None
        try:
            if stream.stream_id in self._held:
                self._release(stream.stream_id, False)
            h3.send_data(stream.stream_id, chunk, False)
        except Exception:
            self._lose_stream(stream)
        self.flush_soon()
        return self.stream_writable(stream.stream_id)

    def send_interim(self, stream: _H3Stream, fields: list[tuple[bytes, bytes]]) -> bool:
        h3 = self.h3
        assert h3 is not None
        try:
            h3.send_headers(stream.stream_id, fields, False)
        except Exception:
            return False
        self.flush_soon()
        return True

    def end_response(self, stream: _H3Stream) -> None:
        h3 = self.h3
        assert h3 is not None
        try:
            if stream.stream_id in self._held:
                self._release(stream.stream_id, True)
            else:
                h3.send_data(stream.stream_id, b"", True)
        except Exception:
            self._lose_stream(stream)
            return
        if stream.response_sent():
            self._retire(stream)
        else:
            # RFC 9114 section 4.1.1: the response is complete; the rest of
            # the request is not wanted.
            try:
                self._quic.stop_stream(stream.stream_id, H3Error.H3_NO_ERROR)
            except Exception:
                pass
            stream.mark_closed()
            self._retire(stream)
        self.flush_soon()

    def end_tunnel(self, stream: _H3Stream) -> None:
        """The WebSocket closed its tunnel: FIN after what is queued."""
        h3 = self.h3
        assert h3 is not None
        try:
            h3.send_data(stream.stream_id, b"", True)
        except Exception:
            pass
        stream.mark_closed()
        stream.free_slot()
        self._retire(stream)
        self.flush_soon()

    def streams_idle(self) -> None:
        """The last stream gave its slot back (see `StreamSlots`)."""
        self._idle_since = self._loop.time()
        if self._closing:
            self._loop.call_soon(self._close_when_acknowledged)

    def _retire(self, stream: _H3Stream) -> None:
        """The exchange is over on our side: forget the stream."""
        self._streams.pop(stream.stream_id, None)
        stream.retire()

    def reset_stream(self, stream: _H3Stream, code: int) -> None:
        """Reset ``stream`` on our side and tell its delegate."""
        if stream.is_closed:
            return
        try:
            self._quic.reset_stream(stream.stream_id, code)
            if not stream.read_done:
                self._quic.stop_stream(stream.stream_id, code)
        except Exception:
            pass
        self._lose_stream(stream)
        self.flush_soon()

    def _lose_stream(self, stream: _H3Stream) -> None:
        if stream.is_closed:
            return
        self._stalled.pop(stream.stream_id, None)
        self._held.pop(stream.stream_id, None)
        if stream.stream_id in self._waiters:
            self._wake(stream.stream_id, StreamClosedError())
        self._streams.pop(stream.stream_id, None)
        stream.lost()  # (and its tunnel, if any)

    def flush_soon(self) -> None:
        if self._flush_handle is None and not self._gone:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._gone and self._transport is not None:
            if self._held:
                self._release_held()
            self.transmit()

    # -- timeouts ---------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        interval = self._params.header_timeout or 10.0
        for timeout in (self._server.write_timeout, self._server.idle_connection_timeout):
            if timeout is not None:
                interval = min(interval, timeout)
        interval /= 4
        self._sweep_handle = self._loop.call_later(max(interval, 0.01), self._sweep)

    def _sweep(self) -> None:
        """A request whose head came but whose body does not, in time: reset.

        (QUIC's idle timeout ends a connection that sends nothing at all.)
        """
        self._sweep_handle = None
        if self._gone:
            return
        now = self._loop.time()
        write_timeout = self._server.write_timeout
        for sid, (since, held) in list(self._stalled.items()):
            unacked = self._unacked(sid)
            if unacked < held:
                self._stalled[sid] = (now, unacked)  # slow, not stopped
            elif write_timeout is not None and now - since > write_timeout:
                stalled = self._streams.get(sid)
                gen_log.info(
                    "HTTP/3 stream %d of %s: the client took nothing for %gs; reset",
                    sid,
                    self.context,
                    write_timeout,
                )
                if stalled is not None:
                    self.reset_stream(stalled, H3Error.H3_REQUEST_CANCELLED)
                else:
                    self._stalled.pop(sid, None)
        body_timeout = self._params.body_timeout
        for stream in list(self._streams.values()):
            if stream.reading() and stream.body_overdue(now, body_timeout):
                gen_log.info(
                    "HTTP/3 stream %d of %s: request not completed in time; reset",
                    stream.stream_id,
                    self.context,
                )
                self.reset_stream(stream, H3Error.H3_REQUEST_CANCELLED)
        # HTTPServer's idle_connection_timeout: no request for that long.
        # (QUIC's own idle timeout counts packets: a client that only
        # sends PINGs would keep the connection for ever.)
        idle = self._server.idle_connection_timeout
        if not self.slots.active and idle is not None and now - self._idle_since > idle:
            gen_log.debug("HTTP/3 connection of %s idle for %gs; closed", self.context, idle)
            self._goaway()
            self._close_quic()
            return
        self._schedule_sweep()

    # -- closing ------------------------------------------------------------------------

    def _goaway(self) -> None:
        h3 = self.h3
        control = getattr(h3, "_local_control_stream_id", None)
        if h3 is None or control is None:
            return
        # RFC 9114 section 5.2: requests on streams from this one on were
        # not processed (aioquic has no call for it: the frame is written
        # on its control stream).
        frame = encode_frame(FrameType.GOAWAY, encode_uint_var(self._next_stream))
        try:
            self._quic.send_stream_data(control, frame)
        except Exception:
            pass

    def _drain(self, params: Any = None) -> None:
        """The server drains: GOAWAY, close once the streams in flight are done."""
        if self._gone or self._closing:
            return
        self._closing = True
        drain_tunnels(self)  # their close frames first, then the GOAWAY
        self._goaway()
        if not self.slots.active:
            self._close_when_acknowledged()
        else:
            self.flush_soon()

    def _unfinished(self) -> bool:
        """Whether a response stream's end (FIN or reset) is not yet acknowledged."""
        return ends_unacknowledged(self._quic)

    def _close_when_acknowledged(self) -> None:
        # A CONNECTION_CLOSE sent with response bytes in flight would lose
        # them (the client discards its streams): wait for the acknowledgements
        # (each datagram in comes through transmit); the drain's deadline
        # bounds the wait.
        if self._gone:
            return
        if self._unfinished():
            self._close_pending = True
            self.flush_soon()
        else:
            self._close_quic()

    def _close_quic(self, code: int = H3Error.H3_NO_ERROR) -> None:
        if self._gone:
            return
        self._quic.close(error_code=code)
        self.transmit()
        # The QUIC close lingers for its drain period in aioquic (three
        # probe timeouts); the server is done with the connection now.
        self._on_lost()

    def census(self) -> tuple[str, int, int]:
        """What this connection carries, for metrics: ``("h3", requests in
        flight, WebSocket tunnels)`` (see `stream_census`)."""
        return ("h3", *stream_census(self._streams.values()))

    def _hard_close(self) -> None:
        self._close_quic()

    async def close(self) -> None:  # type: ignore[override]
        """GOAWAY, close the connection now (streams in flight are reset)."""
        if not self._gone:
            self._goaway()
            self._close_quic()

    def release(self) -> None:
        """Free aioquic's state of this terminated connection now.

        That state is a web of reference cycles (its frame handler table,
        TLS callbacks and loss recovery hold bound methods of the
        connection; aioquic's server gave this protocol callbacks that hold
        it), so without this an ended connection's state (tens of KiB)
        waits for a full collection, which CPython runs by object counts,
        not bytes: under ``make soak``'s HTTP/3 clients alone RSS settled
        about 30 MB higher. Emptying the connection's attributes breaks
        every cycle at once, whatever aioquic's version keeps. Skipped while
        a WebTransport session has yet to see its end (its tasks may still
        reach the connection): the collector frees that one.
        """
        if not self._gone or self._webtransport:
            return
        vars(self._quic).clear()
        self._connection_id_issued_handler = _ignore
        self._connection_id_retired_handler = _ignore
        self._connection_terminated_handler = _ignore

    def _on_lost(self) -> None:
        if self._gone:
            return
        self._gone = True
        for handle in (self._sweep_handle, self._flush_handle, self._handshake_timer):
            if handle is not None:
                handle.cancel()
        self._sweep_handle = self._flush_handle = self._handshake_timer = None
        for stream in list(self._streams.values()):
            self._lose_stream(stream)
        self._streams.clear()
        self._server._forget(self)

    # -- what tunnels and WebTransport sessions ask (_h3websocket, _h3webtransport) -----

    @property
    def quic(self) -> QuicConnection:
        """aioquic's connection (QuicConnectionProtocol keeps it as ``_quic``)."""
        return self._quic

    def tunnels(self) -> list[_H3Tunnel]:
        """The tunnels of the connection's streams (accepted or not yet)."""
        return [s.tunnel for s in list(self._streams.values()) if s.tunnel is not None]

    def webtransport_sessions(self) -> dict[int, Any]:
        """The WebTransport sessions by CONNECT stream (the dict made on first use)."""
        found = self._webtransport
        if found is None:
            found = self._webtransport = {}
        return found


if TYPE_CHECKING:
    # The driver offers what its streams call (mypy checks).
    _DRIVER: type[H3Driver] = _H3Protocol
    _MUX_DRIVER: type[MuxDriver] = _H3Protocol
