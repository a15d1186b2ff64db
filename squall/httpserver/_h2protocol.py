"""HTTP/2 for `HTTPServer`: one `asyncio.Protocol` per connection over `squall._h2`.

Each stream is one request, served through the same seams as HTTP/1.1:
the server's ``start_request(server_conn, request_conn)`` gives an
`.HTTPMessageDelegate`, which gets ``headers_received``, ``data_received``
and ``finish``; the request's connection (`_H2Stream`) has the
``write_headers``/``write``/``finish`` API of `.HTTPConnection`. The
application learns nothing else (``request.version`` is ``"HTTP/2.0"``).

How a connection gets here (see `HTTPServer`'s ``http2`` argument): TLS
with ALPN ``h2``; a plain connection whose first bytes are the HTTP/2
preface (prior knowledge); or an HTTP/1.1 request with ``Upgrade: h2c``.
The HTTP/1.1 protocol object hands its transport over with `take_over`
(`squall.httpserver._negotiate` decides when).

Back-pressure: a write's Future resolves once its bytes fit in the
client's flow-control windows and the transport is not paused, so
``await self.flush()`` in a handler waits for a slow client. A delegate
that returns an awaitable from ``data_received`` holds that stream's
receive window until it is done. Limits and timeouts: `squall._h2.H2Limits`.

Trailers (RFC 9113 §8.1), where Tornado's API has no place for them, are on
the stream object (``request.connection``), over HTTP/2 and HTTP/3 alike:
``request.connection.trailers`` holds the request's trailer fields (an
`.HTTPHeaders`, or None) once the body has been read, so a handler sees
them in ``post()`` or, with ``@stream_request_body``, in the method that
runs after the last ``data_received``; ``request.connection.set_trailers``
sends response trailers when the response finishes. Under HTTP/1.1
request trailers are parsed and dropped, as before.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final, Optional

from squall._h1 import Request as H1Request
from squall._h2 import (
    INVALID_LENGTH,
    NO_LENGTH,
    Data,
    Drained,
    EndOfStream,
    ErrorCode,
    GoAway,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    StreamReset,
    Trailers,
    content_length,
)
from squall.httpserver._flow import (
    decompressing,
    fields_of,
    headers_from_pairs,
    known_host,
    present_websocket,
    request_line,
    wait_on,
    wrap_fields,
)
from squall.httpserver._h2session import _H2Session
from squall.httpserver._h2stream import _H2Stream
from squall.httpserver._h2websocket import _H2Tunnel

# The HTTP/1.1 driver: it accepts every connection and hands HTTP/2 ones over.
from squall.httpserver._protocol import _HTTPProtocol
from squall.httputil import HTTPHeaders, HTTPInputError, RequestStartLine
from squall.httputil._headers import _NAME_CACHE, _cache_name
from squall.log import app_log, gen_log

if TYPE_CHECKING:
    from squall.httpserver._h2stream import H2Driver


# Final: the compiled build reads these as C variables, not through the
# module's dict (a lookup each per request).
_VERSION: Final = "HTTP/2.0"
_names: Final = _NAME_CACHE

# Fields of an HTTP/1.1 upgrade request that belong to the upgrade itself.
_UPGRADE_FIELDS: Final = frozenset(("connection", "upgrade", "http2-settings", "keep-alive"))


class _H2Protocol(_H2Session):
    """One HTTP/2 connection, served by `HTTPServer`: the frames in."""

    __slots__ = ()

    # -- taking a transport over (what the HTTP/1.1 sniffers call: _negotiate) -----

    @classmethod
    def take_over(
        cls,
        old: _HTTPProtocol,
        transport: asyncio.Transport,
        data: bytes,
        upgrade: Optional[H1Request] = None,
    ) -> _H2Protocol:
        """Serve ``old``'s transport as HTTP/2 from now on.

        Args:
            old: the HTTP/1.1 protocol that accepted the connection.
            transport: its (possibly TLS) transport.
            data: bytes received and not yet parsed.
            upgrade: the ``Upgrade: h2c`` request, answered with 101 and
                served as stream 1.
        """
        server = old._server
        proto = cls(server, old._params, old.loop, old.context, server._h2_limits)
        # The HTTP/1.1 object steps aside without closing anything.
        paused = old._hand_over()
        server._connections.discard(old)
        server._connections.add(proto)
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if paused:
            transport.resume_reading()
        proto.start(data, upgrade)
        return proto

    def start(self, data: bytes, upgrade: Optional[H1Request]) -> None:
        """Serve the transport taken over (`take_over`): ``data`` is what
        was received and not parsed yet; ``upgrade`` the ``Upgrade: h2c``
        request, if the connection came that way."""
        transport = self.transport
        assert transport is not None
        if upgrade is None:
            self.core.initiate()
        else:
            settings = ""
            for name, value in upgrade.headers:
                if name.lower() == "http2-settings":
                    settings = value
            try:
                self.core.initiate(settings)
            except RemoteProtocolError as exc:
                gen_log.info("Malformed HTTP message from %s: %s", self.context, exc)
                transport.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                transport.close()
                self._on_lost(None)  # (closed: the server forgets it)
                return
            transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            )
        self._schedule_sweep()
        self._in_feed = True
        try:
            if upgrade is not None:
                self._on_upgrade_request(upgrade)
            if data:
                self._feed(data)
        finally:
            self._end_round()

    # -- asyncio callbacks ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closed or self._lingering:
            return
        self._in_feed = True
        try:
            self._feed(data)
        finally:
            self._end_round()

    # -- input --------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        now = self._loop.time()
        try:
            events = self.core.receive_data(data, now)
        except RemoteProtocolError as exc:
            if exc.too_large:
                # Worded as HTTP/1.1 words a head over its limit.
                gen_log.info("Unsatisfiable read from %s: %s", self.context, exc)
            else:
                gen_log.info("HTTP/2 error from %s: %s", self.context, exc)
            self._abort(linger=True)
            return
        except Exception:
            # h2 raising anything else on hostile input must not escape.
            gen_log.info("HTTP/2 error from %s", self.context, exc_info=True)
            self._abort(linger=True)
            return
        malformed = self.core.malformed
        if malformed:
            for sid, problem in malformed:
                gen_log.info(
                    "Malformed HTTP/2 request from %s (stream %d): %s", self.context, sid, problem
                )
            malformed.clear()
        for event in events:
            kind = type(event)
            try:
                if kind is Data:
                    assert isinstance(event, Data)
                    self._on_data(event, now)
                elif kind is Request:
                    assert isinstance(event, Request)
                    self._on_request(event, now)
                elif kind is EndOfStream:
                    assert isinstance(event, EndOfStream)
                    stream = self._streams.get(event.stream_id)
                    if stream is None:
                        pass
                    elif stream.tunnel is not None:
                        stream.tunnel.feed_eof()
                    else:
                        self._on_end(stream)
                elif kind is Drained:
                    assert isinstance(event, Drained)
                    self._waiting_window.pop(event.stream_id, None)
                    stream = self._streams.get(event.stream_id)
                    if stream is None:
                        pass
                    elif stream.tunnel is not None and stream.tunnel.detached:
                        stream.tunnel.window_opened()
                    elif stream.response_done:
                        if not stream.is_closed:
                            self._complete(stream)  # its END_STREAM went out
                    elif not self.write_paused:
                        self.wake_writers(stream)
                elif kind is StreamReset:
                    assert isinstance(event, StreamReset)
                    if event.remote:
                        # Browsers cancel streams all the time: not worth more.
                        gen_log.debug(
                            "HTTP/2 stream %d of %s reset by the client (error %d)",
                            event.stream_id,
                            self.context,
                            event.error_code,
                        )
                    stream = self._streams.get(event.stream_id)
                    if stream is not None:
                        self._lose_stream(stream)
                elif kind is Trailers:
                    assert isinstance(event, Trailers)
                    stream = self._streams.get(event.stream_id)
                    if stream is not None:
                        # Kept for the application (request.connection.trailers);
                        # the body's delegate API has no place for them.
                        stream.trailers = headers_from_pairs(event.headers)
                else:
                    assert isinstance(event, GoAway)
                    # The client is leaving (RFC 9113 §6.8): no new streams;
                    # the ones in flight are answered, then we close. Its
                    # WebSockets go now (RFC 8441 §6: as a TCP reset would).
                    self._closing = True
                    for stream in list(self._streams.values()):
                        if stream.tunnel is not None:
                            self.reset_stream(stream, ErrorCode.CANCEL)
                    if not self.slots.active:
                        self._abort(linger=True)
            except RemoteProtocolError as exc:
                gen_log.info("HTTP/2 error from %s: %s", self.context, exc)
                self._abort(linger=True)
                return
            except Exception:
                # The application's code runs inside these calls; nothing
                # it raises may escape data_received.
                app_log.error("Uncaught exception", exc_info=True)
                self._abort()
                return
            if self._closed:
                return

    def _on_request(self, event: Request, now: float) -> None:
        sid = event.stream_id
        # (The core's copy of the limit: a native field, not H2Limits' getattr.)
        if self._closing or self.slots.active >= self.core.max_concurrent_streams:
            # Streams whose handler still runs count, even after a reset:
            # a client cannot start more work by resetting (CVE-2023-44487).
            self.core.refuse(sid, now)
            return
        authority = event.authority
        start_line = request_line(event.method, event.target, _VERSION)
        # HTTPHeaders._from_pairs's loop, here where it is compiled: the
        # core checked every field already.
        as_list: dict[str, list[str]] = {}
        # RFC 9113 §8.3.1: :authority is the request's Host (h2 checked that
        # a host field agrees), first among the fields. Host fields are kept
        # aside: one is the authority again, dropped; two or more stay after
        # it, so that the host check refuses them as it does over HTTP/1.1.
        hosts: Optional[list[str]] = None
        if authority is not None:
            as_list["Host"] = [authority]
        names = _names
        for field in event.headers:
            name = field[0]
            if authority is not None and name == "host":
                if hosts is None:
                    hosts = [field[1]]
                else:
                    hosts.append(field[1])
                continue
            norm = names.get(name)
            if norm is None:
                norm = _cache_name(name)
            values = as_list.get(norm)
            if values is None:
                as_list[norm] = [field[1]]
            else:
                values.append(field[1])
        if hosts is not None and len(hosts) > 1:
            as_list["Host"].extend(hosts)
        headers = wrap_fields(as_list)
        declared = event.content_length
        self._begin(sid, start_line, headers, now, declared, event.expect_continue, event.protocol)

    def _on_upgrade_request(self, req: H1Request) -> None:
        fields = [(n, v) for n, v in req.headers if n.lower() not in _UPGRADE_FIELDS]
        start_line = request_line(req.method, req.target, _VERSION)
        headers = headers_from_pairs(fields)
        # Its body came over HTTP/1.1 whole: no 100 (Continue) to wait for.
        declared = content_length(fields_of(headers).get("Content-Length"))
        stream = self._begin(1, start_line, headers, self._loop.time(), declared, False)
        if stream is not None:
            self._on_end(stream)  # held if the delegate is not ready

    def _begin(
        self,
        sid: int,
        start_line: RequestStartLine,
        headers: HTTPHeaders,
        now: float,
        declared: int,
        expect_continue: bool,
        protocol: Optional[str] = None,
    ) -> Optional[_H2Stream]:
        """Start a request whose Content-Length (``declared``, see
        `squall._h2.Request.content_length`), Expect and ``:protocol`` (an
        extended CONNECT's, RFC 8441) the core read."""
        stream = _H2Stream(self, sid, now, self.context, self._loop, self._max_body, self.slots)
        self._streams[sid] = stream
        if declared != NO_LENGTH:
            if declared == INVALID_LENGTH:
                self.refuse_request(stream, 400, "invalid Content-Length")
                return None
        if expect_continue:
            stream.expect_continue = True
        if protocol is not None:
            stream.protocol = protocol
            stream.tunnel = _H2Tunnel(self, stream)
            if protocol == "websocket":
                present_websocket(headers)
        # The same check as HTTP/1.1's (RFC 9110 §7.2); a client sends the
        # same authority each time: checked once per connection.
        try:
            self._good_host = known_host(headers, self._good_host, _VERSION)
        except HTTPInputError as exc:
            self.refuse_request(stream, 400, str(exc))
            return None
        self._idle_since = now
        delegate = decompressing(self._start_request(self, stream), self._params, self._max_body)
        # (A Content-Length over the limit is refused once the delegate has
        # the head, which may raise the limit: see _MuxStream.start.)
        ret = stream.start(delegate, start_line, headers, declared)
        body_timeout = self._params.body_timeout
        if body_timeout is not None:
            # Cut at its time, as over HTTP/1.1 (see _MuxStream.set_body_timeout).
            self.check_timeouts_by(now + body_timeout)
        if ret is not None:
            self._block(stream, ret, 0)
        elif stream.expect_continue:
            self._continue(stream)  # (not if the delegate raised: closed)
        if protocol is not None and not stream.is_closed:
            # RFC 8441 §5: the head is the whole request; the DATA frames
            # that follow are the tunnel's (they go to stream.tunnel).
            self._on_end(stream)
        # (A stream whose delegate raised is closed: its end changes nothing.)
        return stream

    def _continue(self, stream: _H2Stream) -> None:
        # RFC 9110 §10.1.1: the delegate took the head; ask for the body.
        if stream.take_continue():
            try:
                self.core.send_informational(stream.stream_id, 100)
            except LocalProtocolError:
                pass

    def refuse_request(self, stream: _H2Stream, status: int, message: str) -> None:
        """Answer a bad request on its stream and stop reading it."""
        gen_log.info("Malformed HTTP message from %s: %s", self.context, message)
        try:
            self.core.send_headers(stream.stream_id, status, [("content-length", "0")], True)
        except LocalProtocolError:
            pass
        # RFC 9113 §8.1: a complete response, then no more request body.
        self.core.reset(stream.stream_id, ErrorCode.NO_ERROR)
        self._streams.pop(stream.stream_id, None)
        stream.refused()

    def _on_data(self, event: Data, now: float) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None and stream.tunnel is not None:
            stream.tunnel.feed(event.data, event.flow_length)
            return
        if stream is None or not stream.wants_body():
            self.core.consumed(event.stream_id, event.flow_length)
            return
        stream.last_active = now
        if not stream.took(len(event.data)):
            self.core.consumed(event.stream_id, event.flow_length)
            return
        if not stream.hold_if_busy(event):
            self._deliver(stream, event)

    def _deliver(self, stream: _H2Stream, event: Data) -> None:
        ret, rest = stream.deliver(event.data, self._params.chunk_size)
        if ret is None:
            self.core.consumed(event.stream_id, event.flow_length)
        else:
            if rest:
                stream.hold(Data(event.stream_id, rest, 0), True)
            # The window opens again only once the delegate has taken it.
            self._block(stream, ret, event.flow_length)

    def _on_end(self, stream: _H2Stream) -> None:
        if stream.end_request():
            self._retire(stream)  # else its response still waits (for window)

    def _block(self, stream: _H2Stream, awaitable: Awaitable[None], flow: int) -> None:
        stream.block()

        def unblock(f: asyncio.Future[None]) -> None:
            self._unblock(stream, f, flow)

        wait_on(awaitable, self._loop, unblock)

    def _unblock(self, stream: _H2Stream, future: asyncio.Future[None], flow: int) -> None:
        if self._closed:
            stream.unblocked(future)  # the stream is closed: only its slot
            return
        self._in_feed = True
        try:
            # (A stream reset meanwhile: the connection's share of the window.)
            self.core.consumed(stream.stream_id, flow)
            if not stream.unblocked(future):
                return
            if stream.expect_continue:
                self._continue(stream)
            stream.drain(self._deliver, self._on_end)
        finally:
            self._end_round()


if TYPE_CHECKING:
    # The driver offers what its streams call (mypy checks).
    _DRIVER: type[H2Driver] = _H2Protocol
