"""`H2AsyncHTTPClient`: HTTP/2 streams, one shared connection per origin,
for the requests `SimpleAsyncHTTPClient` would otherwise send over HTTP/1.1
(its public home, and what it does, are in `squall.h2client`).

``_H2ClientProtocol`` drives the sans-I/O `squall._h2` client core on an
asyncio transport; what is sent and which redirects are followed is
decided by the client policy (`squall.simple_httpclient._policy`), as for
the HTTP/1.1 client.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from io import BytesIO
from typing import Any, Optional, Union, cast

from squall._h2 import (
    Data,
    Drained,
    EndOfStream,
    ErrorCode,
    GoAway,
    H2Limits,
    LocalProtocolError,
    RemoteProtocolError,
    StreamReset,
)
from squall._h2._client import H2ClientConnection, Response
from squall.httpclient import HTTPRequest, HTTPResponse, _RequestProxy
from squall.httputil import HTTPHeaders
from squall.log import app_log, gen_log
from squall.netutil import ssl_options_to_context
from squall.platform.asyncio import _bound_reads
from squall.simple_httpclient._client import SimpleAsyncHTTPClient, _Deadlines
from squall.simple_httpclient._connection import connect_socket
from squall.simple_httpclient._errors import HTTPStreamClosedError, HTTPTimeoutError
from squall.simple_httpclient._mux import CONNECTION_LOST, MuxConnection, StreamResponses
from squall.simple_httpclient._mux import StreamFetch as _Fetch
from squall.simple_httpclient._policy import (
    REDIRECT_CODES,
    ascii_target,
    fields_written_back,
    follows_redirects,
    options,
    redirected,
    request_fields,
)
from squall.tcpclient import _format_addr

__all__ = ["H2AsyncHTTPClient"]

# Request fields HTTP/2 does not carry (RFC 9113 §8.2.2) or carries as
# pseudo-header fields (Host is :authority).
_DROP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host")
)


def _opt(request: HTTPRequest, name: str) -> Any:
    return getattr(request, name)


class _Phase:
    """What the connect of `_connect` is doing, for a timeout's message
    (a `ConnectWatcher`)."""

    __slots__ = ("phase",)

    def __init__(self) -> None:
        self.phase: Union[str, Callable[[], str]] = "while connecting"

    def connect_phase(self, phase: Union[str, Callable[[], str]]) -> None:
        self.phase = phase

    def text(self) -> str:
        phase = self.phase
        return phase if isinstance(phase, str) else phase()


# (scheme, host, port) and, for https, the TLS settings.
_Key = tuple[Any, ...]

# URLs whose origin a client keeps (then it starts again).
_ORIGINS_KEPT = 256


def _origin(url: str) -> tuple[Any, ...]:
    """``(scheme, host, port)`` of an ``http`` or ``https`` URL, ``()`` for
    another scheme, no host or an invalid port."""
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    host = parsed.hostname
    if scheme not in ("http", "https") or not host:
        return ()
    try:
        port = parsed.port or (443 if scheme == "https" else 80)
    except ValueError:
        return ()
    return (scheme, host, port)


class _H2ClientProtocol(StreamResponses, asyncio.Protocol):
    """One HTTP/2 connection to an origin, shared by the fetches to it."""

    client: H2AsyncHTTPClient
    version_word = "HTTP/2.0"

    def __init__(self, client: H2AsyncHTTPClient, key: _Key, limits: H2Limits) -> None:
        self.client = client
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.h2 = H2ClientConnection(limits)
        self.transport: Optional[asyncio.Transport] = None
        self.streams: dict[int, _Fetch] = {}
        self.waiting: deque[_Fetch] = deque()
        self.closed = False
        self.goaway = False
        # Closes once its fetches are done (see `drain`).
        self.draining = False
        self.flush_handle: Optional[asyncio.Handle] = None
        self.idle_handle: Optional[asyncio.TimerHandle] = None

    # -- asyncio ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        _bound_reads(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() == "h2":
            # The preface goes first: the server's SETTINGS may arrive (and
            # be acknowledged) before create_connection() returns.
            self.h2.initiate()
            self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events: list[Any] = self.h2.receive_data(data, self.loop.time())
        except RemoteProtocolError as exc:
            gen_log.info("HTTP/2 error from server %s: %s", self.key[1], exc)
            self.fail_all(HTTPStreamClosedError(f"HTTP/2 protocol error: {exc}"))
            self.flush()
            self.abort()
            return
        for event in events:
            kind = type(event)
            if kind is Data:
                assert isinstance(event, Data)
                self.on_data(event)
            elif kind is Response:
                assert isinstance(event, Response)
                self.on_response(event)
            elif kind is EndOfStream:
                assert isinstance(event, EndOfStream)
                fetch = self.streams.pop(event.stream_id, None)
                if fetch is not None:
                    self.on_end(fetch)
            elif kind is StreamReset:
                assert isinstance(event, StreamReset)
                fetch = self.streams.pop(event.stream_id, None)
                if fetch is not None:
                    if event.remote:
                        said = f"stream reset by the server ({event.error_code})"
                    else:
                        said = f"stream reset by us: the server broke HTTP/2 ({event.error_code})"
                        if event.reason:
                            said += f": {event.reason}"
                    self.fail(fetch, HTTPStreamClosedError(said))
            elif kind is GoAway:
                assert isinstance(event, GoAway)
                self.goaway = True
                self.client.forget_connection(self)
                # Streams above the last one the server took were not
                # processed: they may go again on a new connection.
                # Once, and only after a graceful GOAWAY: a server that
                # refuses again is not asked a third time.
                unsent = [
                    self.streams.pop(s) for s in list(self.streams) if s > event.last_stream_id
                ]
                unsent += self.waiting
                self.waiting.clear()
                for fetch in unsent:
                    if event.error_code == ErrorCode.NO_ERROR and not fetch.retried:
                        fetch.retried = True
                        self.client.retry_fetch(fetch)
                    else:
                        self.fail(
                            fetch,
                            HTTPStreamClosedError(
                                f"the server closed the connection (GOAWAY {event.error_code})"
                            ),
                        )
            elif kind is Drained:
                pass
        self.send_waiting()
        self.flush()
        if self.goaway and not self.streams:
            self.abort()
        elif self.draining:
            self.close_if_done()
        elif not self.streams and not self.waiting and self.idle_handle is None:
            # The HTTP/1.1 pool's rule: an idle connection is kept for
            # idle_timeout seconds, then closed.
            self.idle_handle = self.loop.call_later(self.client.pool.idle_timeout, self.close_idle)

    def close_idle(self) -> None:
        self.idle_handle = None
        if not self.streams and not self.waiting:
            self.client.forget_connection(self)
            self.close()

    def drain(self) -> None:
        self.draining = True
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None
        self.close_if_done()

    def close_if_done(self) -> None:
        if not self.streams and not self.waiting:
            self.close()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None
        self.gone(CONNECTION_LOST)

    # -- requests --------------------------------------------------------------

    def submit(self, fetch: _Fetch) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None
        self.waiting.append(fetch)
        self.send_waiting()
        self.schedule_flush()

    def send_waiting(self) -> None:
        while self.waiting and not self.closed and not self.goaway:
            if len(self.streams) >= self.h2.max_streams:
                return
            fetch = self.waiting.popleft()
            try:
                self.send(fetch)
            except Exception as exc:
                # A request that cannot be encoded fails alone.
                self.fail(fetch, exc)

    def send(self, fetch: _Fetch) -> None:
        opts = fetch.opts
        host = ""
        fields = []
        for name, value in fetch.fields:
            low = name.lower()
            if low not in _DROP:
                fields.append((low, value))
            elif low == "host":
                # The policy's Host: the caller's, or this URL's authority.
                host = value
        body = fetch.body
        try:
            sid = self.h2.send_request(
                opts["method"], self.key[0], host, fetch.path, fields, not body
            )
            if body:
                self.h2.send_data(sid, body, end_stream=True)
        except LocalProtocolError as exc:
            self.fail(fetch, HTTPStreamClosedError(str(exc)))
            return
        fetch.stream_id = sid
        self.streams[sid] = fetch

    def on_response(self, event: Response) -> None:
        fetch = self.streams.get(event.stream_id)
        if fetch is not None:
            self.on_head(fetch, event.status, event.headers)

    def on_data(self, event: Data) -> None:
        self.h2.consumed(event.stream_id, event.flow_length)
        fetch = self.streams.get(event.stream_id)
        if fetch is not None:
            self.on_body(fetch, event.data)

    def reset_stream(self, stream_id: int) -> None:
        self.h2.reset(stream_id, ErrorCode.CANCEL)
        self.schedule_flush()

    def fail_all(self, error: BaseException) -> None:
        waiting = list(self.waiting)
        self.waiting.clear()
        self.fail_streams(error)
        for fetch in waiting:
            self.fail(fetch, error)

    def cancel(self, fetch: _Fetch) -> None:
        """Give up on ``fetch`` (timeout): reset its stream."""
        if fetch.stream_id and self.streams.pop(fetch.stream_id, None) is not None:
            self.h2.reset(fetch.stream_id, ErrorCode.CANCEL)
            self.schedule_flush()
        else:
            try:
                self.waiting.remove(fetch)
            except ValueError:
                pass
        if self.draining:
            self.close_if_done()

    # -- output ------------------------------------------------------------------

    def schedule_flush(self) -> None:
        if self.flush_handle is None:
            self.flush_handle = self.loop.call_soon(self.flush)

    def flush(self) -> None:
        handle = self.flush_handle
        if handle is not None:
            handle.cancel()
            self.flush_handle = None
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def close(self) -> None:
        if not self.closed:
            self.h2.goaway(ErrorCode.NO_ERROR)
            self.flush()
            self.abort()


class H2AsyncHTTPClient(SimpleAsyncHTTPClient):
    """`SimpleAsyncHTTPClient` with HTTP/2 for servers that offer it by ALPN.

    Args:
        http2_prior_knowledge: also speak HTTP/2 (h2c) to ``http`` URLs,
            without asking: only for servers known to accept it.
        http2_limits: `squall._h2.H2Limits` applied to what servers send.
        **kwargs: as for `SimpleAsyncHTTPClient` (``max_clients`` bounds
            the HTTP/1.1 fetches only; HTTP/2 ones are bounded by each
            server's concurrent-stream limit).
    """

    def initialize(  # type: ignore[override]
        self,
        http2_prior_knowledge: bool = False,
        http2_limits: Optional[H2Limits] = None,
        **kwargs: Any,
    ) -> None:
        super().initialize(**kwargs)
        self.http2_prior_knowledge = http2_prior_knowledge
        self.http2_limits = http2_limits or H2Limits()
        # HTTP/2 connections (and, in H3AsyncHTTPClient, QUIC ones) by key.
        self._h2_conns: dict[_Key, MuxConnection] = {}
        self._h2_connecting: dict[_Key, list[_Fetch]] = {}
        # Origins that answered ALPN with HTTP/1.1: not asked again.
        self._h1_only: set[_Key] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        # URL -> its `_origin`: a client asks the same URLs again and again,
        # and taking one apart (host and port each split the authority
        # again) was a tenth of the request side.
        self._origins: dict[str, tuple[Any, ...]] = {}
        # The stream fetches with a request timeout, behind one loop timer
        # (a TimerHandle made and cancelled per request cost more).
        self._timed: dict[_Fetch, _Fetch] = {}
        self._stream_deadlines = _Deadlines(self.loop, self._timed, self._deadline_passed)

    def close(self) -> None:
        """Close the HTTP/2 connections too (see `AsyncHTTPClient.close`):
        idle ones now, the others once their fetches in flight are done
        (those complete, as the HTTP/1.1 client's do)."""
        for conn in list(self._h2_conns.values()):
            conn.drain()
        self._h2_conns.clear()
        self._stream_deadlines.cancel()
        super().close()

    # -- routing ---------------------------------------------------------------

    def fetch_impl(self, request: HTTPRequest, callback: Callable[[HTTPResponse], None]) -> None:
        opts = options(request)
        key = self._h2_key(opts)
        if key is None:
            super().fetch_impl(request, callback)
            return
        fetch = self._new_fetch(request, callback, key, opts)
        if fetch is not None:
            self.route_fetch(fetch, key)

    def _new_fetch(
        self,
        request: HTTPRequest,
        callback: Callable[[HTTPResponse], None],
        key: _Key,
        opts: dict[str, Any],
    ) -> Optional[_Fetch]:
        """A fetch for a stream of the connection ``key`` names, its fields made
        by the client policy and its request timeout armed; None if the
        request cannot be sent (it has failed already)."""
        fetch = _Fetch(request, callback, time.time(), opts)
        parsed = urllib.parse.urlsplit(opts["url"])
        try:
            fetch.fields = request_fields(opts, parsed, parsed.netloc.rpartition("@")[2])[0]
        except ValueError as exc:
            self.fail_fetch(fetch, exc)
            return None
        own = request.headers
        if isinstance(own, HTTPHeaders):
            # What was sent, as the HTTP/1.1 client writes it (digest
            # requests go over HTTP/1.1).
            for name, value in fields_written_back(fetch.fields, own, False):
                own[name] = value
        if parsed.query:
            fetch.path = (parsed.path or "/") + "?" + parsed.query
        elif parsed.path:
            fetch.path = parsed.path
        if not fetch.path.isascii():
            # Percent-encoded as the HTTP/1.1 client sends it.
            fetch.path = ascii_target(fetch.path)
        if " " in fetch.path or not fetch.path.isprintable():
            # Refused before anything is sent, as the HTTP/1.1 client
            # refuses it (a space or a control in the URL's path or query).
            self.fail_fetch(fetch, ValueError(f"invalid request-target {fetch.path!r}"))
            return None
        fetch.follows = follows_redirects(opts)
        body = opts["body"]
        fetch.body = body.encode() if isinstance(body, str) else (body or b"")
        timeout = opts["request_timeout"]
        if timeout:
            fetch.key = key
            fetch.deadline = time.monotonic() + timeout
            self._timed[fetch] = fetch
            self._stream_deadlines.expect(fetch.deadline)
        return fetch

    def _untime(self, fetch: _Fetch) -> None:
        """``fetch`` no longer times out."""
        if fetch.deadline is not None:
            fetch.deadline = None
            self._timed.pop(fetch, None)

    def _deadline_passed(self, fetch: _Fetch) -> None:
        self._untime(fetch)
        self._timed_out(fetch, fetch.key)

    def route_fetch(self, fetch: _Fetch, key: _Key) -> None:
        conn = self._h2_conns.get(key)
        if conn is not None and not conn.closed and not conn.goaway:
            conn.submit(fetch)
            return
        pending = self._h2_connecting.get(key)
        if pending is not None:
            pending.append(fetch)
            return
        self._h2_connecting[key] = [fetch]
        task = asyncio.ensure_future(self._connect(key, fetch.request))
        # Held until done: the loop keeps only weak references to tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _h2_key(self, opts: dict[str, Any]) -> Optional[_Key]:
        key = self._stream_key(opts, self.http2_prior_knowledge)
        return None if key in self._h1_only else key

    def _stream_key(self, opts: dict[str, Any], plain: bool) -> Optional[_Key]:
        """``(scheme, host, port)`` and, for https, the TLS settings: what
        tells one multiplexed connection from another; None for a request
        (its `options`) that goes over HTTP/1.1 (proxied, streamed up,
        waiting for 100, digest auth, bound to an interface, or ``http``
        unless ``plain``)."""
        if (
            opts["proxy_host"]
            or opts["body_producer"] is not None
            or opts["expect_100_continue"]
            or opts["network_interface"]
            or opts["auth_mode"] == "digest"
        ):
            return None
        url = opts["url"]
        origin = self._origins.get(url)
        if origin is None:
            origin = _origin(url)
            if len(self._origins) >= _ORIGINS_KEPT:
                self._origins.clear()
            self._origins[url] = origin
        if not origin or (origin[0] == "http" and not plain):
            return None
        key: _Key = origin
        if origin[0] == "https":
            # A connection made with one set of TLS settings (say, no
            # certificate check) must not serve a request asking for others.
            tls = opts["ssl_options"]
            key += (
                bool(opts["validate_cert"]),
                opts["ca_certs"],
                opts["client_cert"],
                opts["client_key"],
                id(tls) if tls is not None else None,
            )
        return key

    async def _connect(self, key: _Key, request: HTTPRequest) -> None:
        scheme, host, port = key[:3]
        loop = asyncio.get_running_loop()
        limits = self.http2_limits
        timeout = _opt(request, "connect_timeout") or None
        try:
            ctx = self._tls_context(request) if scheme == "https" else None
        except (OSError, ValueError, ssl.SSLError) as exc:
            for fetch in self._h2_connecting.pop(key, []):
                self.fail_fetch(fetch, exc)
            return
        # The address comes from the client's resolver (hostname_mapping,
        # resolver=), and a host's addresses are raced, as over HTTP/1.1.
        af = socket.AF_INET if _opt(request, "allow_ipv6") is False else socket.AF_UNSPEC
        phase = _Phase()

        async def connect() -> tuple[asyncio.BaseTransport, _H2ClientProtocol]:
            sock, address = await connect_socket(loop, self.resolver, host, port, af, None, phase)
            if ctx is not None:
                phase.connect_phase(f"during TLS handshake with {_format_addr(address)}")
            try:
                return await loop.create_connection(
                    lambda: _H2ClientProtocol(self, key, limits),
                    sock=sock,
                    ssl=ctx,
                    server_hostname=host if ctx is not None else None,
                )
            except BaseException:
                sock.close()
                raise

        try:
            transport, proto = await asyncio.wait_for(connect(), timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            error: BaseException = exc
            if isinstance(exc, TimeoutError):
                error = HTTPTimeoutError(f"Timeout {phase.text()}")
            for fetch in self._h2_connecting.pop(key, []):
                self.fail_fetch(fetch, error)
            return
        fetches = self._h2_connecting.pop(key, [])
        if ctx is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
                # The server speaks HTTP/1.1: the inherited client serves it.
                transport.close()
                self._h1_only.add(key)
                for fetch in fetches:
                    self._to_http1(fetch)
                return
        self._h2_conns[key] = proto
        for fetch in fetches:
            if fetch.done:
                continue
            proto.submit(fetch)
        if self._closed:
            # Closed while connecting: this connection serves these only.
            self.forget_connection(proto)
            proto.drain()

    def _tls_context(self, request: HTTPRequest) -> ssl.SSLContext:
        options = _opt(request, "ssl_options")
        if options is not None:
            ctx = ssl_options_to_context(options, server_side=False)
        else:
            ctx = ssl.create_default_context(cafile=_opt(request, "ca_certs"))
            if not _opt(request, "validate_cert"):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            cert = _opt(request, "client_cert")
            if cert:
                ctx.load_cert_chain(cert, _opt(request, "client_key"))
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        return ctx

    def _to_http1(self, fetch: _Fetch) -> None:
        self._untime(fetch)
        if not fetch.done:
            fetch.done = True
            SimpleAsyncHTTPClient.fetch_impl(self, fetch.request, fetch.callback)

    def forget_connection(self, conn: MuxConnection) -> None:
        if self._h2_conns.get(conn.key) is conn:
            del self._h2_conns[conn.key]

    def retry_fetch(self, fetch: _Fetch) -> None:
        fetch.stream_id = 0
        fetch.chunks = []
        key = self._h2_key(fetch.opts)
        if key is None:
            self._to_http1(fetch)
        else:
            self.route_fetch(fetch, key)

    def _timed_out(self, fetch: _Fetch, key: _Key) -> None:
        conn = self._h2_conns.get(key)
        if conn is not None:
            conn.cancel(fetch)
        pending = self._h2_connecting.get(key)
        if pending is not None and fetch in pending:
            pending.remove(fetch)
        self.fail_fetch(fetch, HTTPTimeoutError("Timeout during request"))

    # -- responses ---------------------------------------------------------------

    def will_redirect(self, fetch: _Fetch) -> bool:
        return (
            fetch.follows
            and fetch.status in REDIRECT_CODES
            and fetch.headers is not None
            and "Location" in fetch.headers
        )

    def complete_fetch(self, fetch: _Fetch) -> None:
        if fetch.done:
            return
        if self.will_redirect(fetch):
            fetch.done = True
            self._untime(fetch)
            self._follow(fetch)
            return
        body = b"".join(fetch.chunks)
        headers = fetch.headers or HTTPHeaders()
        opts = fetch.opts
        response = HTTPResponse(
            opts.get("original_request") or fetch.request,
            fetch.status,
            headers=headers,
            buffer=BytesIO(body),
            effective_url=opts["url"],
            request_time=time.time() - fetch.start,
            start_time=fetch.start,
        )
        self._deliver(fetch, response)

    def _follow(self, fetch: _Fetch) -> None:
        """The redirect's next hop, through the public `fetch` (as the
        HTTP/1.1 client, and Tornado's, do): a wrapper of
        ``AsyncHTTPClient.fetch`` sees each hop with its request."""
        callback = fetch.callback
        request = fetch.request
        original = getattr(request, "original_request", None) or request

        def failed(error: BaseException) -> None:
            callback(
                HTTPResponse(
                    original,
                    599,
                    error=error,
                    request_time=time.time() - fetch.start,
                    start_time=fetch.start,
                )
            )

        try:
            new = cast(_RequestProxy, self._redirect_request(fetch)).request
            hop = self.fetch(new, raise_error=False)
        except Exception as exc:
            failed(exc)
            return

        def hop_done(done: asyncio.Future[HTTPResponse]) -> None:
            if done.cancelled():
                failed(HTTPStreamClosedError("Redirect cancelled"))
            elif done.exception() is not None:
                # raise_error=False still raises what has no status (599s).
                failed(cast(BaseException, done.exception()))
            else:
                callback(done.result())

        hop.add_done_callback(hop_done)

    def _redirect_request(self, fetch: _Fetch) -> HTTPRequest:
        req = fetch.request
        assert fetch.headers is not None
        original = getattr(req, "original_request", None) or (
            req.request if isinstance(req, _RequestProxy) else req
        )
        return redirected(req, fetch.status, fetch.headers["Location"], self.defaults, original)

    def fail_fetch(self, fetch: _Fetch, error: BaseException) -> None:
        if fetch.done:
            return
        code = getattr(error, "code", 599)
        self._deliver(
            fetch,
            HTTPResponse(
                fetch.opts.get("original_request") or fetch.request,
                code if isinstance(code, int) else 599,
                error=error,
                request_time=time.time() - fetch.start,
                start_time=fetch.start,
            ),
        )

    def _deliver(self, fetch: _Fetch, response: HTTPResponse) -> None:
        fetch.done = True
        self._untime(fetch)
        try:
            fetch.callback(response)
        except Exception:
            app_log.error("Exception in callback %r", fetch.callback, exc_info=True)
