"""`SimpleAsyncHTTPClient`: the request queue, timeouts, redirects and the pool.

Each fetch is one `_Fetch`, driven by callbacks, that holds one of
``max_clients`` slots for its whole life (redirects and a digest retry
included). Each hop takes an idle connection from the `ConnectionPool` or
opens one (the only step that runs as a Task), runs an ``Exchange``, and gives
the connection back when the response allowed it.

What the fetch path does per request is kept small (benchmarks/http_client.py
measures it against aiohttp):

* a fetch that finds a free slot skips the queue;
* what a hop sends and where (`_Hop`) is cached per client, keyed by the
  request's options, for requests without headers, a body or digest auth of
  their own: a repeated fetch of a URL parses and validates nothing again;
* request deadlines are one attribute per fetch behind one loop timer, which
  scans the active fetches only when it fires.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import operator
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Hashable
from typing import Any, Optional, Union, cast

from squall import util
from squall._h1 import H1Limits
from squall._sizes import byte_count
from squall.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse, _RequestProxy
from squall.httputil import HTTPHeaders, split_host_and_port
from squall.iostream import StreamClosedError
from squall.log import gen_log
from squall.netutil import OverrideResolver, Resolver
from squall.simple_httpclient._auth import (
    digest_authorization,
    parse_digest_challenge,
)
from squall.simple_httpclient._connection import (
    ClientConnection,
    open_connection,
    proxy_authorization,
    ssl_context_for,
    tls_key,
)
from squall.simple_httpclient._errors import HTTPStreamClosedError, HTTPTimeoutError
from squall.simple_httpclient._exchange import (
    Exchange,
    Outcome,
    RequestSpec,
    ResendableError,
)
from squall.simple_httpclient._policy import (
    REDIRECT_CODES,
    ascii_target,
    fields_written_back,
    follows_redirects,
    options,
    redirected,
    request_fields,
)
from squall.simple_httpclient._pool import ConnectionPool

__all__ = ["SimpleAsyncHTTPClient"]

# Every HTTPRequest attribute `_Fetch._plan` reads, apart from the headers
# and body (a cached plan has neither). Equal values (and equal client
# defaults) give an equal plan.
_PLAN_FIELDS = (
    "url",
    "method",
    "auth_username",
    "auth_password",
    "auth_mode",
    "connect_timeout",
    "request_timeout",
    "follow_redirects",
    "max_redirects",
    "user_agent",
    "decompress_response",
    "network_interface",
    "streaming_callback",
    "header_callback",
    "allow_nonstandard_methods",
    "expect_100_continue",
    "allow_ipv6",
    "validate_cert",
    "ca_certs",
    "client_key",
    "client_cert",
    "ssl_options",
    "proxy_host",
    "proxy_port",
    "proxy_username",
    "proxy_password",
    "proxy_auth_mode",
)
_plan_signature = operator.itemgetter(*_PLAN_FIELDS)
_PLAN_CACHE_SIZE = 512


class SimpleAsyncHTTPClient(AsyncHTTPClient):
    """A non-blocking HTTP/1.1 client with a keep-alive connection pool.

    Unlike Tornado's, it reuses connections (per scheme, host, port, TLS and
    proxy settings) and supports HTTP proxies: http URLs are requested in
    absolute form from the proxy, https URLs through a CONNECT tunnel.

    ``HTTPResponse.time_info`` is empty, as with Tornado's simple client,
    except for a request that waited for a slot: ``{"queue": seconds}``.

    Args:
        max_clients: Most requests in progress at once; others wait in
            ``queue`` (and time out there after ``connect_timeout``).
        hostname_mapping: Host (or ``(host, port)``) replacements, as for
            `~squall.netutil.OverrideResolver`.
        max_buffer_size: The default ``max_body_size``. (Reads are the
            transport's, at most 256 KiB each; no single read is larger.)
        resolver: The `~squall.netutil.Resolver` (one of its own otherwise).
        defaults: Defaults for `~squall.httpclient.HTTPRequest` options.
        max_header_size: Largest response head (64 KiB).
        max_body_size: Largest response body, after decompression
            (``max_buffer_size``).
        idle_timeout: Seconds an idle pooled connection is kept.
        max_idle_per_host: Most idle connections kept per pool key
            (``max_clients``; 0, as Tornado's client, in a program run as
            Tornado through `squall.compat`). With 0 nothing is pooled and
            each request says ``Connection: close``.
    """

    def initialize(  # type: ignore[override]
        self,
        max_clients: int = 10,
        hostname_mapping: Optional[dict[Any, Any]] = None,
        max_buffer_size: int = 104857600,
        resolver: Optional[Resolver] = None,
        defaults: Optional[dict[str, Any]] = None,
        max_header_size: Optional[int] = None,
        max_body_size: Optional[int] = None,
        idle_timeout: float = 60.0,
        max_idle_per_host: Optional[int] = None,
    ) -> None:
        super().initialize(defaults=defaults)
        self.max_clients = max_clients
        self.queue: collections.deque[
            tuple[object, HTTPRequest, Callable[[HTTPResponse], None]]
        ] = collections.deque()
        # Slot holders by key; a fetch that never queued is its own key.
        self.active: dict[object, _Fetch] = {}
        # Queued requests by key: (request, callback, queue timeout, when queued).
        self.waiting: dict[
            object,
            tuple[HTTPRequest, Callable[[HTTPResponse], None], Optional[object], float],
        ] = {}
        # (None or 0: the default, as the stream takes them.)
        max_buffer_size = byte_count("max_buffer_size", max_buffer_size) or 104857600
        max_header_size = byte_count("max_header_size", max_header_size)
        max_body_size = byte_count("max_body_size", max_body_size)
        self.max_buffer_size = max_buffer_size
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.own_resolver = resolver is None
        self.resolver: Resolver = Resolver() if resolver is None else resolver
        if hostname_mapping is not None:
            self.resolver = OverrideResolver(resolver=self.resolver, mapping=hostname_mapping)
        # Deadlines and idle times are on the monotonic clock, and timers
        # go straight to the asyncio loop (IOLoop.time is the wall clock).
        self.loop: asyncio.AbstractEventLoop = cast(Any, self.io_loop).asyncio_loop
        if max_idle_per_host is None:
            # A program written for Tornado gets Tornado's client: one
            # connection per request. Its tests stop a server and start the
            # next on the same port, and a pooled connection to the stopped
            # server (still open: stop() only stops listening) would carry
            # the next test's requests to the old application (Bokeh's suite).
            max_idle_per_host = 0 if util.running_as_tornado else max_clients
        self.pool: ConnectionPool[ClientConnection] = ConnectionPool(
            time.monotonic, idle_timeout=idle_timeout, max_idle_per_key=max_idle_per_host
        )
        # What the fetches of this client share (their own instance
        # attributes, not methods: the class is Tornado's):
        self.keep_alive = max_idle_per_host > 0 and idle_timeout > 0
        self.idle = _IdleKeeper(self.pool, self.loop)
        # One timer for every request deadline; each fetch keeps its own.
        self.deadlines = _Deadlines(self.loop, self.active)
        self.plans = _PlanCache(self.defaults)
        head_size = 64 * 1024 if max_header_size is None else max_header_size
        self.limits = H1Limits(
            max_header_size=head_size,
            # No count of its own: a response's fields are bounded by the
            # head's size alone, as on Tornado (a field line takes 3 bytes
            # at least), where the server's default (256) would refuse a
            # response with many Set-Cookie fields.
            max_header_count=head_size // 3 + 1,
            max_body_size=max_buffer_size if max_body_size is None else max_body_size,
        )
        # IOLoop.close(all_fds=True) closes our connections (_close_fds).
        owners = getattr(self.io_loop, "_fd_owners", None)
        if owners is not None:
            owners.add(self)

    def _close_fds(self) -> None:
        # The loop closes with all_fds=True: idle and in-use connections go
        # now, as IOStream-based connections would with the loop's fds.
        self.idle.close()
        for fetch in list(self.active.values()):
            exchange = fetch.exchange
            if exchange is not None:
                exchange.conn.close()

    def close(self) -> None:
        """Close idle connections and the resolver if it is the client's own."""
        super().close()
        self.idle.shut()
        self.deadlines.cancel()
        self.plans.clear()
        if self.own_resolver:
            self.resolver.close()

    # -- queue -----------------------------------------------------------

    def fetch_impl(self, request: HTTPRequest, callback: Callable[[HTTPResponse], None]) -> None:
        if not self.queue and len(self.active) < self.max_clients:
            fetch = _Fetch(self, None, request, callback, None)
            self.active[fetch] = fetch
            fetch.start()
            return
        key = object()
        self.queue.append((key, request, callback))
        timeout_handle = None
        if len(self.active) >= self.max_clients:
            timeout = min(request.connect_timeout or 0, request.request_timeout or 0)
            if timeout:
                timeout_handle = self.io_loop.add_timeout(
                    self.io_loop.time() + timeout,
                    functools.partial(self._on_queue_timeout, key),
                )
        self.waiting[key] = (request, callback, timeout_handle, time.monotonic())
        self._process_queue()
        if self.queue and gen_log.isEnabledFor(logging.DEBUG):
            gen_log.debug(
                "max_clients limit reached, request queued. %d active, %d queued requests.",
                len(self.active),
                len(self.queue),
            )

    def _process_queue(self) -> None:
        while self.queue and len(self.active) < self.max_clients:
            key, request, callback = self.queue.popleft()
            entry = self.waiting.pop(key, None)
            if entry is None:
                continue
            if entry[2] is not None:
                self.io_loop.remove_timeout(entry[2])
            fetch = _Fetch(self, key, request, callback, time.monotonic() - entry[3])
            self.active[key] = fetch
            fetch.start()

    def _on_queue_timeout(self, key: object) -> None:
        request, callback, _, _ = self.waiting.pop(key)
        self.queue.remove((key, request, callback))
        response = HTTPResponse(
            request,
            599,
            error=HTTPTimeoutError("Timeout in request queue"),
            request_time=time.time() - request.start_time,
            start_time=request.start_time,
        )
        self.io_loop.add_callback(callback, response)

    # -- slots -----------------------------------------------------------

    def _release_fetch(self, key: object) -> None:
        # A fetch gives its slot back (under Tornado's name).
        if self.active.pop(key, None) is not None and self.queue:
            self._process_queue()


class _Deadlines:
    """The request deadlines of a client's fetches behind one loop timer.

    The timer is armed for the earliest deadline it was told of; each fetch
    keeps its own (``_Fetch.deadline``), and only when the timer fires are
    the fetches in progress scanned.
    """

    __slots__ = ("loop", "active", "handle", "when", "expire")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        active: dict[Any, Any],
        expire: Optional[Callable[[Any], None]] = None,
    ) -> None:
        self.loop = loop
        # Values with a ``deadline`` (None: none); an expired one is given
        # to ``expire``, or its own ``on_timeout()`` is called (the HTTP/1.1
        # fetches; the multiplexed clients' StreamFetch has no client to ask).
        self.active = active
        self.handle: Optional[asyncio.TimerHandle] = None
        self.when = 0.0
        self.expire = expire

    def expect(self, when: float) -> None:
        """Make sure the timer fires by ``when`` (monotonic seconds)."""
        if self.handle is None or when < self.when:
            self.set(when)

    def set(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.when = when
        self.handle = self.loop.call_later(max(0.0, when - time.monotonic()), self.fire)

    def fire(self) -> None:
        self.handle = None
        now = time.monotonic()
        expired: list[Any] = []
        earliest: Optional[float] = None
        for fetch in self.active.values():
            when = fetch.deadline
            if when is None:
                continue
            if when <= now:
                expired.append(fetch)
            elif earliest is None or when < earliest:
                earliest = when
        if earliest is not None:
            self.set(earliest)
        expire = self.expire
        for fetch in expired:
            if expire is None:
                fetch.on_timeout()
            else:
                expire(fetch)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class _IdleKeeper:
    """The pool's connections kept for reuse, and the timer that closes expired ones."""

    __slots__ = ("pool", "loop", "handle", "closed")

    def __init__(self, pool: ConnectionPool[ClientConnection], loop: asyncio.AbstractEventLoop):
        self.pool = pool
        self.loop = loop
        self.handle: Optional[asyncio.TimerHandle] = None
        self.closed = False

    def keep(self, conn: ClientConnection) -> None:
        """Put ``conn`` back in the pool if it may be reused, or close it."""
        if self.closed or not conn.can_keep():
            conn.close()
            return
        self.pool.release(conn.key, conn)
        if self.handle is None:
            self.schedule()

    def schedule(self) -> None:
        when = self.pool.next_expiry()
        if when is not None:
            self.handle = self.loop.call_later(max(0.0, when - time.monotonic()), self.prune)

    def prune(self) -> None:
        self.handle = None
        self.pool.prune()
        self.schedule()

    def close(self) -> None:
        """Close the idle connections (the client may still make new ones)."""
        self.pool.close()
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def shut(self) -> None:
        """Close the idle connections and keep none from now on (the client is closed)."""
        self.closed = True
        self.close()


class _PlanCache:
    """The client's `_Hop` per request options, for requests that may share one."""

    __slots__ = ("defaults", "seen_defaults", "plans")

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.seen_defaults = dict(defaults)
        self.plans: dict[tuple[Any, ...], _Hop] = {}

    def key(self, req: HTTPRequest) -> Optional[tuple[Any, ...]]:
        """The cache key of ``req``'s plan, or None if it cannot be cached."""
        proxy: Any = req
        if type(proxy) is not _RequestProxy or proxy.defaults is not self.defaults:
            return None
        attrs = vars(proxy.request)
        try:
            if (
                attrs.get("_body") is not None
                or attrs["body_producer"] is not None
                or attrs.get("_headers")
            ):
                return None
            # allow_ipv6 is tested with "is False" (as Tornado does), which
            # tells False from 0 where the tuple's equality would not.
            key: tuple[Any, ...] = (_plan_signature(attrs), attrs["allow_ipv6"] is False)
        except KeyError:
            return None
        if self.defaults != self.seen_defaults:
            # Someone changed the defaults in place: plans made with the old
            # ones no longer apply.
            self.plans.clear()
            self.seen_defaults = dict(self.defaults)
        return key

    def lookup(self, req: HTTPRequest) -> tuple[Optional[tuple[Any, ...]], Optional[_Hop]]:
        """``req``'s cache key (None if not cacheable) and its cached plan, if any."""
        key = self.key(req)
        if key is None:
            return None, None
        try:
            return key, self.plans.get(key)
        except TypeError:
            # An unhashable option (an ssl_options dict): not cached.
            return None, None

    def keep(self, key: tuple[Any, ...], hop: _Hop) -> None:
        plans = self.plans
        if len(plans) >= _PLAN_CACHE_SIZE:
            plans.clear()
        plans[key] = hop

    def clear(self) -> None:
        self.plans.clear()


class _Hop:
    """What one hop sends, and where (computed before any connection is used).

    It holds nothing of one fetch, so that requests with the same options
    share it (see `_PlanCache.key`).
    """

    __slots__ = (
        "key",
        "scheme",
        "host",
        "port",
        "af",
        "ssl_context",
        "proxy",
        "source_ip",
        "spec",
        "url",
        "connect_limit",
        "request_timeout",
        "cacheable",
        "own_fields",
    )

    def __init__(
        self,
        key: Hashable,
        scheme: str,
        host: str,
        port: int,
        af: socket.AddressFamily,
        ssl_context: Optional[ssl.SSLContext],
        proxy: Optional[tuple[str, int, Optional[str]]],
        source_ip: Optional[str],
        spec: RequestSpec,
        url: str,
        connect_timeout: Optional[float],
        request_timeout: Optional[float],
        cacheable: bool,
        own_fields: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.key = key
        self.scheme = scheme
        self.host = host
        self.port = port
        self.af = af
        self.ssl_context = ssl_context
        self.proxy = proxy
        self.source_ip = source_ip
        self.spec = spec
        self.url = url
        # Connecting is bounded by both timeouts; 0 or None means no limit.
        self.connect_limit = min(connect_timeout or 0, request_timeout or 0)
        self.request_timeout = request_timeout or 0
        self.cacheable = cacheable
        # The fields the client added or set, which each fetch writes into
        # its request's own headers (see _Fetch._start_hop).
        self.own_fields = own_fields


class _Fetch:
    """One fetch: its hops (redirects, digest retry), timeouts and result.

    Driven by callbacks: a hop on a pooled connection runs without a Task;
    only opening a connection runs as one (``connect_task``).
    """

    __slots__ = (
        "client",
        "key",
        "request",
        "callback",
        "done",
        "phase",
        "deadline",
        "started",
        "time_info",
        "hop",
        "req",
        "hop_start",
        "digest",
        "digest_tried",
        "connect_task",
        "exchange",
        "retried",
    )

    def __init__(
        self,
        client: SimpleAsyncHTTPClient,
        key: Optional[object],
        request: HTTPRequest,
        callback: Callable[[HTTPResponse], None],
        queued: Optional[float],
    ) -> None:
        self.client = client
        # None: the fetch is its own key in ``client.active`` (a reference
        # to itself would be a cycle for the garbage collector).
        self.key = key
        self.request = request
        self.callback = callback
        self.done = False
        self.phase: Union[str, Callable[[], str]] = "while connecting"
        self.deadline: Optional[float] = None
        self.started = time.monotonic()
        self.time_info = None if queued is None else {"queue": queued}
        self.hop: Optional[_Hop] = None
        self.req = request
        self.hop_start = self.started
        self.digest: Optional[str] = None
        self.digest_tried = False
        self.connect_task: Optional[asyncio.Future[None]] = None
        self.exchange: Optional[Exchange] = None
        self.retried = False

    def start(self) -> None:
        self._start_hop(self.request, self.started)

    # ConnectWatcher
    def connect_phase(self, phase: Union[str, Callable[[], str]]) -> None:
        self.phase = phase

    # -- timeouts and the end ------------------------------------------------

    def _arm(self, deadline: Optional[float], phase: str) -> None:
        self.phase = phase
        self.deadline = deadline
        if deadline is not None:
            self.client.deadlines.expect(deadline)

    def on_timeout(self) -> None:
        self.deadline = None
        if self.done:
            return
        phase = self.phase
        if not isinstance(phase, str):
            phase = phase()
        self._finish(self._error_response(HTTPTimeoutError(f"Timeout {phase}")))

    def _error_response(self, exc: BaseException) -> HTTPResponse:
        if isinstance(exc, StreamClosedError):
            exc = (
                exc.real_error
                if exc.real_error is not None
                else HTTPStreamClosedError("Stream closed")
            )
        return HTTPResponse(
            self.request,
            599,
            error=exc,
            request_time=time.monotonic() - self.started,
            start_time=self.request.start_time,
            time_info=self.time_info,
        )

    def _fail(self, exc: BaseException) -> None:
        self._finish(self._error_response(exc))

    def _finish(self, response: HTTPResponse) -> None:
        if self.done:
            return
        self.done = True
        self.deadline = None
        # Whatever is still in progress belongs to a response nobody wants.
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        if self.exchange is not None:
            self.exchange.abort()
            self.exchange = None
        self._give_back()
        self.callback(response)

    def _give_back(self) -> None:
        key = self.key
        self.client._release_fetch(self if key is None else key)

    # -- hops ----------------------------------------------------------------

    def _start_hop(self, req: HTTPRequest, now: Optional[float] = None) -> None:
        plans = self.client.plans
        key, hop = plans.lookup(req)
        if hop is None:
            try:
                hop = self._plan(req)
            except Exception as exc:
                self._fail(exc)
                return
            if key is not None and hop.cacheable:
                plans.keep(key, hop)
        own = req.headers
        if hop.own_fields and isinstance(own, HTTPHeaders):
            # As Tornado's client does: the request's headers (the copy
            # fetch made) end up holding what was sent, Host, User-Agent,
            # Accept-Encoding and the rest; tracers and tests read them
            # back from response.request.headers. Here and not in _plan,
            # so that a fetch whose plan came from the cache gets them too.
            for name, value in hop.own_fields:
                own[name] = value
        self.hop = hop
        self.req = req
        self.retried = False
        self.hop_start = time.monotonic() if now is None else now
        self.deadline = None
        self.phase = "while connecting"
        self._attempt()

    def _attempt(self) -> None:
        hop = self.hop
        assert hop is not None
        conn = self.client.pool.acquire(hop.key)
        if conn is not None:
            self._exchange(conn)
            return
        timeout = hop.connect_limit
        self._arm(self.hop_start + timeout if timeout else None, "while connecting")
        self.connect_task = asyncio.ensure_future(self._connect(hop), loop=self.client.loop)

    async def _connect(self, hop: _Hop) -> None:
        client = self.client
        try:
            conn = await open_connection(
                resolver=client.resolver,
                key=hop.key,
                scheme=hop.scheme,
                host=hop.host,
                port=hop.port,
                af=hop.af,
                source_ip=hop.source_ip,
                ssl_context=hop.ssl_context,
                proxy=hop.proxy,
                limits=client.limits,
                watcher=self,
            )
        except asyncio.CancelledError:
            return
        except Exception as exc:
            self.connect_task = None
            self._fail(exc)
            return
        self.connect_task = None
        if self.done:
            conn.close()
            return
        self._exchange(conn)

    def _exchange(self, conn: ClientConnection) -> None:
        hop = self.hop
        assert hop is not None
        if self.deadline is None or self.phase != "during request":
            self.phase = "during request"
            limit = hop.request_timeout
            if limit:
                deadline = self.deadline = self.hop_start + limit
                self.client.deadlines.expect(deadline)
            else:
                self.deadline = None
        exchange = Exchange(conn, hop.spec, self._on_exchange_done)
        self.exchange = exchange
        try:
            exchange.start()
        except Exception as exc:
            self.exchange = None
            conn.close()
            self._fail(exc)

    def _on_exchange_done(self, conn: ClientConnection, outcome: Outcome) -> None:
        self.exchange = None
        if self.done:
            conn.close()
            return
        hop = self.hop
        assert hop is not None
        if isinstance(outcome, BaseException):
            conn.close()
            if isinstance(outcome, ResendableError):
                if not self.retried:
                    # The server's kernel refused the request: once more.
                    self.retried = True
                    self._attempt()
                    return
                outcome = outcome.error
            self._fail(outcome)
            return
        self.client.idle.keep(conn)
        response = outcome.response
        assert response is not None
        if outcome.superseded:
            try:
                if response.status == 401 and not self.digest_tried:
                    self.digest_tried = True
                    self.digest = self._digest_answer(outcome)
                    self._start_hop(self.req)
                    return
                new = self._redirect(outcome)
            except Exception as exc:
                self._fail(exc)
                return
            self._follow(new)
            return
        request = self.request
        if isinstance(request, _RequestProxy):
            request = request.request
        # A redirect's hop answers for the request the caller made.
        request = request.original_request or request
        headers = outcome.headers
        self._finish(
            HTTPResponse._received(
                request,
                response.status,
                response.reason,
                response.headers if headers is None else None,
                headers,
                outcome.body,
                outcome.bio,
                hop.url,
                time.monotonic() - self.started,
                request.start_time,
                self.time_info,
            )
        )

    def _follow(self, new: HTTPRequest) -> None:
        """Fetch a redirect's next hop through the client's public `fetch`.

        As Tornado's client does: this fetch gives its slot back and the
        next hop is a fetch of its own, so whatever wraps
        ``AsyncHTTPClient.fetch`` (an instrumentation's span per request)
        sees every hop, with the hop's request. Its response (or error)
        answers this fetch's caller.
        """
        self.done = True
        self.deadline = None
        client = self.client
        self._give_back()
        try:
            hop = client.fetch(new, raise_error=False)
        except Exception as exc:
            self.callback(self._error_response(exc))
            return
        hop.add_done_callback(self._on_hop_done)

    def _on_hop_done(self, hop: asyncio.Future[HTTPResponse]) -> None:
        if hop.cancelled():
            response = self._error_response(HTTPStreamClosedError("Redirect cancelled"))
        elif hop.exception() is not None:
            # raise_error=False still raises what has no status (599s).
            response = self._error_response(cast(BaseException, hop.exception()))
        else:
            response = hop.result()
        self.callback(response)

    # -- planning a hop --------------------------------------------------------

    def _plan(self, req: HTTPRequest) -> _Hop:
        client = self.client
        opts = options(req)
        url = opts["url"]
        parsed = urllib.parse.urlsplit(url)
        scheme = parsed.scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"Unsupported url scheme: {url}")
        netloc = parsed.netloc.rpartition("@")[2]
        host, port = split_host_and_port(netloc)
        if port is None:
            port = 443 if scheme == "https" else 80
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        af = socket.AF_INET if opts["allow_ipv6"] is False else socket.AF_UNSPEC
        ssl_context = None
        tls = None
        if scheme == "https":
            tls_args = (
                bool(opts["validate_cert"]),
                opts["ca_certs"],
                opts["client_cert"],
                opts["client_key"],
                opts["ssl_options"],
            )
            ssl_context = ssl_context_for(*tls_args)
            tls = tls_key(*tls_args)
        proxy = None
        if opts["proxy_host"]:
            proxy_auth = proxy_authorization(
                opts["proxy_username"], opts["proxy_password"], opts["proxy_auth_mode"]
            )
            proxy = (opts["proxy_host"], opts["proxy_port"] or 80, proxy_auth)
        via_proxy = proxy is not None and scheme == "http"
        source_ip = opts["network_interface"]
        if via_proxy:
            # Absolute-form requests: one pool entry per proxy serves every origin.
            key: Hashable = ("http-proxy", proxy, source_ip)
            target = urllib.parse.urlunsplit((scheme, netloc, parsed.path or "/", parsed.query, ""))
        else:
            key = (scheme, host, port, tls, proxy, source_ip, af)
            target = (parsed.path or "/") + ("?" + parsed.query if parsed.query else "")
        if not target.isascii():
            target = ascii_target(target)
        headers, wants_digest = request_fields(
            opts,
            parsed,
            netloc,
            digest=self.digest,
            keep_alive=client.keep_alive,
            proxy_auth=proxy[2] if via_proxy and proxy is not None else None,
        )
        own = req.headers
        own_fields: tuple[tuple[str, str], ...] = ()
        if isinstance(own, HTTPHeaders):
            # A cached plan is only made for a request without fields of its
            # own, so this holds for every fetch that reuses it.
            own_fields = fields_written_back(headers, own, wants_digest)
        follows = follows_redirects(opts)
        may_digest = wants_digest and not self.digest_tried

        def superseded(code: int, response_headers: HTTPHeaders) -> bool:
            if code == 401 and may_digest:
                challenge = response_headers.get("WWW-Authenticate", "")
                return parse_digest_challenge(challenge) is not None
            return follows and code in REDIRECT_CODES and "Location" in response_headers

        spec = RequestSpec(
            opts["method"],
            target,
            headers,
            opts["body"],
            # With both, the body is sent and the producer never called.
            opts["body_producer"] if opts["body"] is None else None,
            bool(opts["expect_100_continue"]),
            bool(opts["decompress_response"]),
            opts["streaming_callback"],
            opts["header_callback"],
            superseded,
            client.limits.max_body_size,
        )
        return _Hop(
            key,
            scheme,
            host,
            port,
            af,
            ssl_context,
            proxy,
            source_ip,
            spec,
            url,
            opts["connect_timeout"],
            opts["request_timeout"],
            not wants_digest,
            own_fields,
        )

    def _digest_answer(self, result: Exchange) -> str:
        # A superseded exchange has built its headers.
        assert result.headers is not None
        challenge = parse_digest_challenge(result.headers.get("WWW-Authenticate", ""))
        assert challenge is not None
        opts = options(self.req)
        parsed = urllib.parse.urlsplit(opts["url"])
        uri = (parsed.path or "/") + ("?" + parsed.query if parsed.query else "")
        if not uri.isascii():
            uri = ascii_target(uri)
        if parsed.username is not None:
            username = urllib.parse.unquote(parsed.username)
            password = urllib.parse.unquote(parsed.password or "")
        else:
            username = opts["auth_username"] or ""
            password = opts["auth_password"] or ""
        return digest_authorization(challenge, opts["method"], uri, username, password)

    def _redirect(self, result: Exchange) -> HTTPRequest:
        assert result.headers is not None and result.response is not None
        request = self.request
        if isinstance(request, _RequestProxy):
            request = request.request
        hop = redirected(
            self.req,
            result.response.status,
            result.headers["Location"],
            self.client.defaults,
            request.original_request or request,
        )
        # The plain request: `fetch` applies the client's defaults again.
        return cast(_RequestProxy, hop).request
