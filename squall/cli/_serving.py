"""What ``squall run`` puts between a connection and the application.

`ServingDelegate` wraps the application's delegate when any of these is on:
proxy headers (``X-Forwarded-For``/``X-Forwarded-Proto`` or RFC 7239
``Forwarded``, as configured, from trusted peers only: see
`squall.httputil._proxy`), a root path, the access log, a
concurrency limit (503 beyond it) and the request count behind
``--max-requests``. Without any, the application is served directly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any, Optional, Union

from squall.httpserver._context import _CallableAdapter
from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPServerConnectionDelegate,
    HTTPServerRequest,
    RequestStartLine,
    ResponseStartLine,
)
from squall.httputil._delegates import _Forwarding
from squall.httputil._exchange import BODY, close_by_attribute
from squall.httputil._proxy import ProxyHeaders, TrustedPeers, parse_forwarded
from squall.httputil._startline import StartLine
from squall.httputil._wrapped import WrappedConnection
from squall.log import log_from_caller

__all__ = [
    "ProxyHeaders",
    "RequestIdTransform",
    "RequestIds",
    "ServingDelegate",
    "TrustedPeers",
    "parse_forwarded",
    "request_logger",
    "wsgi_logger",
]

access_log = logging.getLogger("squall.access")


class RequestIds:
    """``--request-id``: the id a trusted proxy gave the request, else a new one.

    The id is put in the request's headers (so the application, its logs
    and the access log see it) and in the response's.

    Args:
        trusted: the peers whose ``X-Request-ID`` is kept (``--forwarded-allow-ips``).
    """

    #: Longer ids, or ids with characters outside visible ASCII, are replaced.
    MAX_LENGTH = 200

    def __init__(self, trusted: TrustedPeers) -> None:
        self.trusted = trusted
        # New ids: a random prefix per process and a counter, 32 hex digits
        # like a UUID's, unique across workers and restarts, and cheaper
        # than asking the kernel for randomness per request.
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def assign(self, ctx: Any, headers: HTTPHeaders) -> str:
        given = headers.get("X-Request-ID")
        if given is not None and self._acceptable(given) and self._from_trusted(ctx):
            return given
        new = f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFFFFFF:016x}"
        headers["X-Request-ID"] = new
        return new

    def _from_trusted(self, ctx: Any) -> bool:
        if ctx is None:
            return False
        if getattr(ctx, "address_family", None) == socket.AF_UNIX:
            return True
        ip = getattr(ctx, "_orig_remote_ip", None)
        return isinstance(ip, str) and ip in self.trusted

    @classmethod
    def _acceptable(cls, value: str) -> bool:
        return 0 < len(value) <= cls.MAX_LENGTH and all("!" <= c <= "~" for c in value)


class _Reject(HTTPMessageDelegate):
    """Answers 503 at once: the worker is at its concurrency limit."""

    def __init__(self, connection: HTTPConnection) -> None:
        self.connection = connection

    def headers_received(
        self, start_line: StartLine, headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        return None

    def finish(self) -> None:
        body = b"Service Unavailable: too many requests in progress\n"
        headers = HTTPHeaders(
            {
                "Content-Type": "text/plain; charset=utf-8",
                "Content-Length": str(len(body)),
                "Retry-After": "1",
            }
        )
        self.connection.write_headers(
            ResponseStartLine("HTTP/1.1", 503, "Service Unavailable"), headers, body
        )
        self.connection.finish()


def proxied(
    ctx: Any, fields: dict[str, list[str]], trusted: Union[TrustedPeers, ProxyHeaders]
) -> Optional[tuple[Optional[str], Optional[str]]]:
    """The client's address and scheme that trusted proxy headers name
    (`ProxyHeaders.resolve`; a bare `TrustedPeers` reads X-Forwarded-*)."""
    return _model(trusted).resolve(ctx, fields)


def _model(proxy: Union[TrustedPeers, ProxyHeaders]) -> ProxyHeaders:
    if isinstance(proxy, ProxyHeaders):
        return proxy
    return ProxyHeaders("x-forwarded", proxy)


def _apply_proxy(ctx: Any, headers: HTTPHeaders, proxy: ProxyHeaders) -> bool:
    """Set ``ctx.remote_ip``/``protocol`` from proxy headers (see `proxied`); True if changed."""
    named = proxy.resolve(ctx, headers._as_list)
    if named is None:
        return False
    address, protocol = named
    if address is not None:
        ctx.remote_ip = address
    if protocol is not None:
        ctx.protocol = protocol
    return True


def _strip_root(start_line: RequestStartLine, root: str) -> RequestStartLine:
    path = start_line.path
    if path == root or path.startswith(root + "/") or path.startswith(root + "?"):
        rest = path[len(root) :] or "/"
        if rest.startswith("?"):
            rest = "/" + rest
        return RequestStartLine(start_line.method, rest, start_line.version)
    return start_line


class _Front(_Forwarding):
    """Our delegate in front of the application's: proxy headers, root path.

    The request's address and scheme are copied from the connection's
    context when the application reads the head (``HTTPServerRequest``,
    an ASGI scope, a WSGI environ), so the context is changed for that call
    only and restored at once: the next request on the connection starts
    from the peer's own address.
    """

    __slots__ = ("serving", "context", "delegate", "start_line", "headers", "client", "request_id")

    def __init__(self, serving: ServingDelegate, context: Any) -> None:
        self.serving = serving
        self.context = context
        self.delegate: Optional[HTTPMessageDelegate] = None
        self.start_line: Optional[RequestStartLine] = None
        self.headers: Optional[HTTPHeaders] = None
        # The client's address from proxy headers, if they named one.
        self.client: Optional[str] = None
        # With ``--request-id``: the request's id (`RequestIds.assign`).
        self.request_id = ""

    def headers_received(
        self, start_line: StartLine, headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        assert isinstance(start_line, RequestStartLine) and self.delegate is not None
        serving = self.serving
        if serving.request_ids is not None:
            self.request_id = serving.request_ids.assign(self.context, headers)
        if serving.strip_root:
            start_line = _strip_root(start_line, serving.strip_root)
        self.start_line = start_line
        self.headers = headers
        ctx = self.context
        trusted = serving.proxy_headers
        if trusted is None or ctx is None or not _apply_proxy(ctx, headers, trusted):
            return self.delegate.headers_received(start_line, headers)
        try:
            return self.delegate.headers_received(start_line, headers)
        finally:
            self.client = ctx.remote_ip
            ctx.remote_ip = ctx._orig_remote_ip
            ctx.protocol = ctx._orig_protocol


class RequestIdTransform:
    """An Application transform: the request's ``X-Request-ID`` in its response.

    Cheaper than following the response through a wrapped connection.
    """

    __slots__ = ("request",)

    def __init__(self, request: HTTPServerRequest) -> None:
        self.request = request

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, HTTPHeaders, bytes]:
        rid = self.request.headers.get("X-Request-ID")
        if rid is not None and "X-Request-ID" not in headers:
            headers["X-Request-ID"] = rid
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        return chunk


def header_editor(
    added: Sequence[str], server_header: bool
) -> Optional[Callable[[HTTPHeaders], None]]:
    """What ``--header`` and ``--no-server-header`` do to a response's head, or None.

    Args:
        added: ``"name:value"`` headers added to every response.
        server_header: False to drop the ``Server`` header.
    """
    fields = [(h.partition(":")[0], h.partition(":")[2]) for h in added]
    if not fields and server_header:
        return None

    def edit(headers: HTTPHeaders) -> None:
        if not server_header and "Server" in headers:
            del headers["Server"]
        for name, value in fields:
            headers.add(name, value)

    return edit


def headers_transform(edit: Callable[[HTTPHeaders], None]) -> type:
    """An Application transform (see `RequestIdTransform`) that applies ``edit``."""

    class HeadersTransform:
        __slots__ = ()

        def __init__(self, request: HTTPServerRequest) -> None:
            pass

        def transform_first_chunk(
            self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
        ) -> tuple[int, HTTPHeaders, bytes]:
            edit(headers)
            return status_code, headers, chunk

        def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
            return chunk

    return HeadersTransform


class _Tracked(_Front):
    """A `_Front` that also follows the response (through `_AppConnection`):
    status and size for the access log, the end for the concurrency limit
    and the request count."""

    __slots__ = ("conn", "app_conn", "started", "status", "size", "done")

    def __init__(self, serving: ServingDelegate, conn: Any) -> None:
        super().__init__(serving, getattr(conn, "context", None))
        self.conn = conn
        self.app_conn: Optional[_AppConnection] = None
        self.started = time.monotonic()
        self.status = 0
        self.size = 0
        self.done = False
        if close_by_attribute(conn):
            conn.close_callback = self._on_close
        else:
            conn.set_close_callback(self._on_close)

    def _on_close(self) -> None:
        if not self.done and self.status == 0:
            self.status = 499  # the client went away before the response
        self.end()
        app = self.app_conn
        if app is not None:
            # Its close callback, if the response is unfinished (one that the
            # handler sets after its first step hears of it on the next turn:
            # an HTTP/2 stream may be reset by that step's own calls).
            app._report_gone()

    def end(self) -> None:
        if self.done:
            return
        self.done = True
        self.serving.request_done(self)


class _AppConnection(WrappedConnection):
    """``request.connection`` as the application sees it, over an `_Tracked`.

    `HTTPConnection.finish` and `HTTPMessageDelegate.finish` share a name,
    so the exchange cannot be both; this small `.WrappedConnection` is the
    connection. Its emit hooks follow status and size and call the server's
    connection itself (no hop through the exchange); it keeps that
    connection's close_callback_attribute capability, so that a handler's
    fast path holds under ``squall run`` too: the server's connection
    reports its close through `_Tracked._on_close`, which reports it here
    (`.Exchange._report_gone`).
    """

    def __init__(self, exchange: _Tracked) -> None:
        WrappedConnection.__init__(self, exchange.conn)
        self._exchange = exchange
        exchange.app_conn = self

    def _emit_head(
        self, start_line: ResponseStartLine, headers: HTTPHeaders, chunk: bytes
    ) -> asyncio.Future[None]:
        exchange = self._exchange
        exchange.status = start_line.code
        exchange.size += len(chunk)
        if exchange.request_id and "X-Request-ID" not in headers:
            headers["X-Request-ID"] = exchange.request_id
        edit = exchange.serving.edit_head
        if edit is not None:
            edit(headers)
        return super()._emit_head(start_line, headers, chunk)

    def _emit_body(self, chunk: bytes) -> asyncio.Future[None]:
        self._exchange.size += len(chunk)
        return self._conn.write(chunk)

    def _emit_raw(self, chunk: bytes) -> asyncio.Future[None]:
        return self._emit_body(chunk)

    def _emit_end(self, phase: int) -> None:
        try:
            self._conn.finish()
        finally:
            self._exchange.end()

    def sendfile(self, file: IO[bytes], count: int) -> Optional[Awaitable[None]]:
        """The server's connection's (see `HTTPConnection.sendfile`), counted
        for the access log."""
        sent = self._conn.sendfile(file, count)
        if sent is not None:
            self._phase = BODY
            self._exchange.size += count
        return sent

    def detach(self) -> Any:
        stream = self._conn.detach()
        self._exchange.end()
        return stream


class ServingDelegate(HTTPServerConnectionDelegate):
    """The application behind proxy headers, root path, access log and limits.

    Args:
        app: an `HTTPServerConnectionDelegate` or a ``callback(request)``.
        proxy_headers: which proxy headers count from which peers (a bare
            `TrustedPeers` reads X-Forwarded-*), or None to ignore them.
        strip_root: a path prefix removed from request paths (for apps that
            route on the full path; ASGI apps get ``root_path`` instead).
        access_format: the access-log line (``str.format``), or None.
        limit_concurrency: requests in progress beyond which 503 is answered.
        on_request_done: called with the count of finished requests.
        track: follow each response (needed by the three above and the two
            below); without it only the head is looked at, which costs less.
        request_ids: give each request an ``X-Request-ID`` (see `RequestIds`).
        metrics: the worker's `squall.cli._metrics.WorkerMetrics`, told of
            each finished request.
        edit_head: applied to each response's headers (`header_editor`); needs ``track``.
    """

    def __init__(
        self,
        app: Any,
        proxy_headers: Union[ProxyHeaders, TrustedPeers, None] = None,
        strip_root: str = "",
        access_format: Optional[str] = None,
        limit_concurrency: Optional[int] = None,
        on_request_done: Optional[Callable[[int], None]] = None,
        track: bool = True,
        request_ids: Optional[RequestIds] = None,
        metrics: Any = None,
        edit_head: Optional[Callable[[HTTPHeaders], None]] = None,
    ) -> None:
        self.app = app
        self.edit_head = edit_head
        self.request_ids = request_ids
        self.metrics = metrics
        self.track = track
        self.proxy_headers = None if proxy_headers is None else _model(proxy_headers)
        self.strip_root = strip_root.rstrip("/")
        self.access_format = access_format
        self.limit_concurrency = limit_concurrency
        self.on_request_done = on_request_done
        self.active = 0
        self.finished = 0

    def start_request(
        self, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        app = self.app
        if not self.track:
            front = _Front(self, getattr(request_conn, "context", None))
            if isinstance(app, HTTPServerConnectionDelegate):
                front.delegate = app.start_request(server_conn, request_conn)
            else:
                front.delegate = _CallableAdapter(app, server_conn, request_conn)
            return front
        limit = self.limit_concurrency
        if limit is not None and self.active >= limit:
            return _Reject(request_conn)
        self.active += 1
        exchange = _Tracked(self, request_conn)
        conn = _AppConnection(exchange)
        if isinstance(app, HTTPServerConnectionDelegate):
            exchange.delegate = app.start_request(server_conn, conn)
        else:
            exchange.delegate = _CallableAdapter(app, server_conn, conn)
        return exchange

    def on_close(self, server_conn: object) -> None:
        app = self.app
        if isinstance(app, HTTPServerConnectionDelegate):
            app.on_close(server_conn)

    def request_done(self, exchange: _Tracked) -> None:
        """Count a finished request; log it and tell the metrics."""
        self.active -= 1
        self.finished += 1
        fmt = self.access_format
        if fmt is not None and access_log.isEnabledFor(logging.INFO):
            self._log(fmt, exchange)
        if self.on_request_done is not None:
            self.on_request_done(self.finished)
        if self.metrics is not None:
            self.metrics.observe(exchange)

    def _log(self, fmt: str, exchange: _Tracked) -> None:
        start_line = exchange.start_line
        ctx = exchange.context
        target = start_line.path if start_line else "-"
        _access_line(
            fmt,
            exchange.client or getattr(ctx, "remote_ip", "-"),
            start_line.method if start_line else "-",
            target,
            target.split("?", 1)[0],
            start_line.version if start_line else "HTTP/1.1",
            exchange.status,
            exchange.size,
            time.monotonic() - exchange.started,
            exchange.headers or HTTPHeaders(),
        )


class _Clock:
    """The local time as ISO 8601 with milliseconds, the date part cached per second."""

    second = -1
    text = ""

    @classmethod
    def now(cls) -> str:
        now = time.time()
        second = int(now)
        if second != cls.second:
            cls.second = second
            cls.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        return f"{cls.text}.{int((now - second) * 1000):03d}"


def _access_line(
    fmt: str,
    client: Any,
    method: Any,
    target: str,
    path: str,
    version: Optional[str],
    status: int,
    size: Any,
    seconds: float,
    headers: HTTPHeaders,
) -> None:
    """Log one request on ``squall.access`` in ``fmt`` (``str.format``, or ``json``)."""
    fields = {
        "time": _Clock.now(),
        "pid": os.getpid(),
        "client": client,
        "method": method,
        "target": target,
        "path": path,
        "version": (version or "HTTP/1.1").replace("HTTP/", ""),
        "status": status,
        "size": size,
        # Three decimals: microseconds, which is what the clock is good for.
        "duration_ms": round(seconds * 1000.0, 3),
        "user_agent": headers.get("User-Agent", "-"),
        "referer": headers.get("Referer", "-"),
        "host": headers.get("Host", "-"),
        "request_id": headers.get("X-Request-ID", "-"),
    }
    if fmt == "json":
        # Every value escaped: a client's quote or newline cannot end the
        # object or the line, nor forge another.
        log_from_caller(access_log, logging.INFO, "%s", (json.dumps(fields),))
        return
    try:
        line = fmt.format(**fields)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        line = f"(bad --access-log-format: {exc}) {json.dumps(fields)}"
    log_from_caller(access_log, logging.INFO, "%s", (line,))


def _request_line(fmt: str, request: HTTPServerRequest, status: int, size: Any) -> None:
    _access_line(
        fmt,
        request.remote_ip,
        request.method,
        request.uri,
        request.path,
        request.version,
        status,
        size,
        request.request_time(),
        request.headers,
    )


def request_logger(
    fmt: Optional[str],
    on_request_done: Optional[Callable[[int], None]] = None,
    metrics: Any = None,
) -> Callable[[Any], None]:
    """An Application ``log_function``: our access-log line, request count and metrics.

    Cheaper than following the response through a wrapped connection: the
    Application calls it once per request with the finished handler.
    """
    count = 0

    def log_function(handler: Any) -> None:
        nonlocal count
        if fmt is not None and access_log.isEnabledFor(logging.INFO):
            _request_line(
                fmt,
                handler.request,
                handler.get_status(),
                handler._headers.get("Content-Length", "-"),
            )
        if metrics is not None:
            request = handler.request
            metrics.record(
                request.method, type(handler), handler.get_status(), request.request_time()
            )
        if on_request_done is not None:
            count += 1
            on_request_done(count)

    return log_function


def wsgi_logger(
    fmt: Optional[str],
    on_request_done: Optional[Callable[[int], None]] = None,
    metrics: Any = None,
) -> Callable[[int, HTTPServerRequest], None]:
    """The same for `WSGIContainer` (its per-request log hook)."""
    count = 0

    def log(status: int, request: HTTPServerRequest) -> None:
        nonlocal count
        if fmt is not None and access_log.isEnabledFor(logging.INFO):
            _request_line(fmt, request, status, "-")
        if metrics is not None:
            metrics.record(request.method, None, status, request.request_time())
        if on_request_done is not None:
            count += 1
            on_request_done(count)

    return log
