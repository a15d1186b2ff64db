"""`SimpleAsyncHTTPClient`: the request queue, timeouts, redirects and the pool.

Each fetch runs as one `_Fetch` task holding one of ``max_clients`` slots
for its whole life (redirects and a digest retry included). Each hop takes
an idle connection from the `ConnectionPool` or opens one, runs
`exchange`, and gives the connection back when the response allowed it.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import functools
import re
import socket
import time
import urllib.parse
from collections.abc import Callable, Hashable
from typing import Any, Optional, cast

from squall._h1 import H1Limits
from squall.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse, _RequestProxy
from squall.httputil import HTTPHeaders, split_host_and_port
from squall.iostream import StreamClosedError
from squall.log import gen_log
from squall.netutil import OverrideResolver, Resolver
from squall.simple_httpclient._auth import (
    basic_authorization,
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
    ExchangeResult,
    RequestSpec,
    StaleConnectionError,
    exchange,
)
from squall.simple_httpclient._pool import ConnectionPool

__all__ = ["SimpleAsyncHTTPClient"]

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE_RE = re.compile(r"[\x00\r\n]")
_REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
_USER_AGENT = "Tornado/" + __import__("squall").version


class SimpleAsyncHTTPClient(AsyncHTTPClient):
    """A non-blocking HTTP/1.1 client with a keep-alive connection pool.

    Unlike Tornado's, it reuses connections (per scheme, host, port, TLS and
    proxy settings) and supports HTTP proxies: http URLs are requested in
    absolute form from the proxy, https URLs through a CONNECT tunnel.

    Args:
        max_clients: Most requests in progress at once; others wait in
            ``queue`` (and time out there after ``connect_timeout``).
        hostname_mapping: Host (or ``(host, port)``) replacements, as for
            `~squall.netutil.OverrideResolver`.
        max_buffer_size: Largest single read from a connection.
        resolver: The `~squall.netutil.Resolver` (one of its own otherwise).
        defaults: Defaults for `~squall.httpclient.HTTPRequest` options.
        max_header_size: Largest response head (64 KiB).
        max_body_size: Largest response body, after decompression
            (``max_buffer_size``).
        idle_timeout: Seconds an idle pooled connection is kept.
        max_idle_per_host: Most idle connections kept per pool key
            (``max_clients``).
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
        self.active: dict[object, _Fetch] = {}
        self.waiting: dict[
            object, tuple[HTTPRequest, Callable[[HTTPResponse], None], Optional[object]]
        ] = {}
        self.max_buffer_size = max_buffer_size
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.own_resolver = resolver is None
        self.resolver: Resolver = Resolver() if resolver is None else resolver
        if hostname_mapping is not None:
            self.resolver = OverrideResolver(resolver=self.resolver, mapping=hostname_mapping)
        self.pool: ConnectionPool[ClientConnection] = ConnectionPool(
            self.io_loop.time,
            idle_timeout=idle_timeout,
            max_idle_per_key=max_clients if max_idle_per_host is None else max_idle_per_host,
        )
        self._pool_timer: Optional[object] = None
        body_limit = max_buffer_size if max_body_size is None else max_body_size
        self._limits = H1Limits(
            max_header_size=64 * 1024 if max_header_size is None else max_header_size,
            max_body_size=body_limit,
        )
        self._body_limit = body_limit
        self._read_size = max(1, min(65536, max_buffer_size))

    def close(self) -> None:
        """Close idle connections and the resolver if it is the client's own."""
        super().close()
        self.pool.close()
        if self._pool_timer is not None:
            self.io_loop.remove_timeout(self._pool_timer)
            self._pool_timer = None
        if self.own_resolver:
            self.resolver.close()

    # -- queue -----------------------------------------------------------

    def fetch_impl(self, request: HTTPRequest, callback: Callable[[HTTPResponse], None]) -> None:
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
        self.waiting[key] = (request, callback, timeout_handle)
        self._process_queue()
        if self.queue:
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
            fetch = _Fetch(self, key, request, callback)
            self.active[key] = fetch
            fetch.start()

    def _release_slot(self, key: object) -> None:
        if self.active.pop(key, None) is not None:
            self._process_queue()

    def _on_queue_timeout(self, key: object) -> None:
        request, callback, _ = self.waiting.pop(key)
        self.queue.remove((key, request, callback))
        response = HTTPResponse(
            request,
            599,
            error=HTTPTimeoutError("Timeout in request queue"),
            request_time=time.time() - request.start_time,
            start_time=request.start_time,
        )
        self.io_loop.add_callback(callback, response)

    # -- pool ------------------------------------------------------------

    def _keep(self, conn: ClientConnection) -> None:
        if self._closed:
            conn.close()
            return
        self.pool.release(conn.key, conn)
        if self._pool_timer is None:
            self._schedule_prune()

    def _schedule_prune(self) -> None:
        when = self.pool.next_expiry()
        if when is not None:
            self._pool_timer = self.io_loop.call_at(when, self._prune)

    def _prune(self) -> None:
        self._pool_timer = None
        self.pool.prune()
        self._schedule_prune()


class _Fetch:
    """One fetch: its hops (redirects, digest retry), timeouts and result."""

    __slots__ = (
        "client",
        "key",
        "request",
        "callback",
        "io_loop",
        "task",
        "done",
        "phase",
        "abort",
        "timer",
        "start_mono",
    )

    def __init__(
        self,
        client: SimpleAsyncHTTPClient,
        key: object,
        request: HTTPRequest,
        callback: Callable[[HTTPResponse], None],
    ) -> None:
        self.client = client
        self.key = key
        self.request = request
        self.callback = callback
        self.io_loop = client.io_loop
        self.task: Optional[asyncio.Future[None]] = None
        self.done = False
        self.phase = "while connecting"
        self.abort: Optional[Callable[[], object]] = None
        self.timer: Optional[object] = None
        self.start_mono = time.monotonic()

    def start(self) -> None:
        loop = cast(Any, self.io_loop).asyncio_loop
        self.task = asyncio.ensure_future(self._run(), loop=loop)

    # ConnectWatcher
    def connect_phase(self, phase: str, abort: Optional[Callable[[], object]]) -> None:
        self.phase = phase
        self.abort = abort

    def cancelled(self) -> bool:
        return self.done

    def _arm(self, deadline: Optional[float], phase: str) -> None:
        if self.timer is not None:
            self.io_loop.remove_timeout(self.timer)
            self.timer = None
        self.phase = phase
        if deadline is not None:
            self.timer = self.io_loop.call_at(deadline, self._on_timeout)

    def _on_timeout(self) -> None:
        self.timer = None
        if self.done:
            return
        abort = self.abort
        self._finish(self._error_response(HTTPTimeoutError(f"Timeout {self.phase}")))
        if abort is not None:
            abort()

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
            request_time=time.monotonic() - self.start_mono,
            start_time=self.request.start_time,
        )

    def _finish(self, response: HTTPResponse) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.io_loop.remove_timeout(self.timer)
            self.timer = None
        self.abort = None
        self.client._release_slot(self.key)
        self.callback(response)

    async def _run(self) -> None:
        try:
            response = await self._hops()
        except _Abandoned:
            return
        except Exception as exc:
            response = self._error_response(exc)
        self._finish(response)

    async def _hops(self) -> HTTPResponse:
        original = self.request
        req = original
        digest: Optional[str] = None
        digest_tried = False
        while True:
            result = await self._hop(req, digest, not digest_tried)
            if self.done:
                raise _Abandoned()
            if result.superseded:
                if result.code == 401 and not digest_tried:
                    digest_tried = True
                    digest = self._digest_answer(req, result)
                    continue
                req = self._redirect(req, result)
                digest = None
                digest_tried = False
                continue
            return HTTPResponse(
                original,
                result.code,
                reason=result.reason,
                headers=result.headers,
                buffer=result.buffer,
                effective_url=req.url,
                request_time=time.monotonic() - self.start_mono,
                start_time=original.start_time,
            )

    # -- one hop -----------------------------------------------------------

    async def _hop(
        self, req: HTTPRequest, digest: Optional[str], may_digest: bool
    ) -> ExchangeResult:
        client = self.client
        parsed = urllib.parse.urlsplit(req.url)
        scheme = parsed.scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"Unsupported url scheme: {req.url}")
        netloc = parsed.netloc.rpartition("@")[2]
        host, port = split_host_and_port(netloc)
        if port is None:
            port = 443 if scheme == "https" else 80
        if re.match(r"^\[.*\]$", host):
            host = host[1:-1]
        af = socket.AF_INET if req.allow_ipv6 is False else socket.AF_UNSPEC
        ssl_context = None
        tls = None
        if scheme == "https":
            ssl_context = ssl_context_for(
                bool(req.validate_cert),
                req.ca_certs,
                req.client_cert,
                req.client_key,
                req.ssl_options,
            )
            tls = tls_key(
                bool(req.validate_cert),
                req.ca_certs,
                req.client_cert,
                req.client_key,
                req.ssl_options,
            )
        proxy = None
        proxy_auth = None
        if req.proxy_host:
            proxy_auth = proxy_authorization(
                req.proxy_username, req.proxy_password, req.proxy_auth_mode
            )
            proxy = (req.proxy_host, req.proxy_port or 80, proxy_auth)
        if proxy is not None and scheme == "http":
            # Absolute-form requests: one pool entry per proxy serves every origin.
            pool_key: Hashable = ("http-proxy", proxy, req.network_interface)
        else:
            pool_key = (scheme, host, port, tls, proxy, req.network_interface, af)
        via_proxy = proxy is not None and scheme == "http"
        if via_proxy:
            target = urllib.parse.urlunsplit((scheme, netloc, parsed.path or "/", parsed.query, ""))
        else:
            target = (parsed.path or "/") + ("?" + parsed.query if parsed.query else "")
        headers, wants_digest = self._headers(
            req, parsed, netloc, target, digest, proxy_auth if via_proxy else None
        )
        code_follows = self._will_follow(req)

        def superseded(code: int, response_headers: HTTPHeaders) -> bool:
            if code == 401 and wants_digest and may_digest:
                challenge = response_headers.get("WWW-Authenticate", "")
                return parse_digest_challenge(challenge) is not None
            return code_follows and code in _REDIRECT_CODES and "Location" in response_headers

        spec = RequestSpec(
            req.method,
            target,
            headers,
            req.body,
            req.body_producer,
            bool(req.expect_100_continue),
            bool(req.decompress_response),
            req.streaming_callback,
            req.header_callback,
            superseded,
            client._body_limit,
            client._read_size,
        )
        self._arm(None, "while connecting")
        start = self.io_loop.time()
        retryable = req.body_producer is None
        while True:
            conn = client.pool.acquire(pool_key)
            if conn is None:
                timeout = min(req.connect_timeout or 0, req.request_timeout or 0)
                self._arm(start + timeout if timeout else None, "while connecting")
                conn = await open_connection(
                    resolver=client.resolver,
                    key=pool_key,
                    scheme=scheme,
                    host=host,
                    port=port,
                    af=af,
                    source_ip=req.network_interface,
                    ssl_context=ssl_context,
                    proxy=proxy,
                    limits=client._limits,
                    max_buffer_size=client.max_buffer_size,
                    watcher=self,
                )
                if conn is None or self.done:
                    raise _Abandoned()
            self.abort = conn.stream.close
            if self.timer is None or self.phase != "during request":
                limit = req.request_timeout
                self._arm(start + limit if limit else None, "during request")
            try:
                result = await exchange(conn, spec)
            except StaleConnectionError:
                conn.close()
                if retryable and not self.done:
                    continue
                raise HTTPStreamClosedError("Connection closed") from None
            except BaseException:
                conn.close()
                raise
            if self.done:
                conn.close()
                raise _Abandoned()
            self.abort = None
            if conn.can_keep():
                client._keep(conn)
            else:
                conn.close()
            return result

    def _will_follow(self, req: HTTPRequest) -> bool:
        return bool(req.follow_redirects) and (req.max_redirects or 0) > 0

    def _headers(
        self,
        req: HTTPRequest,
        parsed: urllib.parse.SplitResult,
        netloc: str,
        target: str,
        digest: Optional[str],
        proxy_auth: Optional[str],
    ) -> tuple[list[tuple[str, str]], bool]:
        items: list[tuple[str, str]] = []
        names: set[str] = set()
        source = req.headers
        pairs = source.get_all() if isinstance(source, HTTPHeaders) else source.items()
        for name, value in pairs:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            elif not isinstance(value, str):
                value = str(value)
            # RFC 9112 §2.2, RFC 9110 §5.5: a CR or LF would inject fields.
            if _TOKEN_RE.fullmatch(name) is None:
                raise ValueError(f"Invalid header name {name!r}")
            if _BAD_VALUE_RE.search(value) is not None:
                raise ValueError(f"Invalid header value {value!r} for {name}")
            items.append((name, value))
            names.add(name.lower())

        def put(name: str, value: str) -> None:
            low = name.lower()
            if low in names:
                items[:] = [(n, v) for n, v in items if n.lower() != low]
            items.append((name, value))
            names.add(low)

        if "host" not in names:
            items.insert(0, ("Host", netloc))
            names.add("host")
        wants_digest = False
        if parsed.username is not None:
            username: Optional[str] = urllib.parse.unquote(parsed.username)
            password = urllib.parse.unquote(parsed.password or "")
        else:
            username = req.auth_username
            password = req.auth_password or ""
        if username is not None:
            mode = req.auth_mode
            if mode in (None, "basic"):
                put("Authorization", basic_authorization(username, password))
            elif mode == "digest":
                wants_digest = True
                if digest is not None:
                    put("Authorization", digest)
            else:
                raise ValueError(f"unsupported auth_mode {mode!r}")
        if req.user_agent:
            put("User-Agent", req.user_agent)
        elif "user-agent" not in names:
            items.append(("User-Agent", _USER_AGENT))
        if not req.allow_nonstandard_methods:
            body_expected = req.method in ("POST", "PATCH", "PUT")
            body_present = req.body is not None or req.body_producer is not None
            if body_expected != body_present:
                raise ValueError(
                    "Body must {}be None for method {} (unless allow_nonstandard_methods "
                    "is true)".format("not " if body_expected else "", req.method)
                )
        if req.expect_100_continue:
            put("Expect", "100-continue")
        if req.body is not None:
            put("Content-Length", str(len(req.body)))
        if req.method == "POST" and "content-type" not in names:
            items.append(("Content-Type", "application/x-www-form-urlencoded"))
        if req.decompress_response:
            put("Accept-Encoding", "gzip")
        if proxy_auth is not None:
            put("Proxy-Authorization", proxy_auth)
        return items, wants_digest

    def _digest_answer(self, req: HTTPRequest, result: ExchangeResult) -> str:
        challenge = parse_digest_challenge(result.headers.get("WWW-Authenticate", ""))
        assert challenge is not None
        parsed = urllib.parse.urlsplit(req.url)
        uri = (parsed.path or "/") + ("?" + parsed.query if parsed.query else "")
        if parsed.username is not None:
            username = urllib.parse.unquote(parsed.username)
            password = urllib.parse.unquote(parsed.password or "")
        else:
            username = req.auth_username or ""
            password = req.auth_password or ""
        return digest_authorization(challenge, req.method, uri, username, password)

    def _redirect(self, req: HTTPRequest, result: ExchangeResult) -> HTTPRequest:
        proxy = cast(_RequestProxy, req)
        new = copy.copy(proxy.request)
        new.url = urllib.parse.urljoin(req.url, result.headers["Location"])
        new.max_redirects = (req.max_redirects or 0) - 1
        new.headers = HTTPHeaders(new.headers)
        if "Host" in new.headers:
            del new.headers["Host"]
        code = result.code
        # RFC 9110 §15.4.4: 303 means GET; 301/302 turn POST into GET, as
        # browsers do.
        if (code == 303 and req.method != "HEAD") or (code in (301, 302) and req.method == "POST"):
            new.method = "GET"
            new.body = None
            new.body_producer = None
            for name in ("Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding"):
                if name in new.headers:
                    del new.headers[name]
        if _origin(new.url) != _origin(req.url):
            # Credentials for one origin must not leak to another.
            for name in ("Authorization", "Cookie"):
                if name in new.headers:
                    del new.headers[name]
            new.auth_username = None
            new.auth_password = None
        new.original_request = self.request
        return cast(HTTPRequest, _RequestProxy(new, self.client.defaults))


def _origin(url: str) -> tuple[str, str, Optional[int]]:
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, (parsed.hostname or ""), port


class _Abandoned(Exception):
    """The fetch already has its result (a timeout); stop quietly."""
