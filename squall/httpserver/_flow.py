"""The server drivers' one request read path: what HTTP/1.1 (``_protocol``),
HTTP/2 (``_h2protocol``) and HTTP/3 (``_h3protocol``) do alike between the
bytes their core parsed and the request's `.HTTPMessageDelegate`.

* Taking a request head: `checked_host` (RFC 9110 section 7.2, the Host
  check, remembered per connection by the driver: `known_host`),
  `body_limit` (the server's ``max_body_size`` or the protocol's default);
  `decompressing` puts a multiplexed stream's delegate behind a gzip decoder.
* A head's fields: `wrap_fields`, `headers_from_pairs` make a request's
  `.HTTPHeaders` from what a core checked; `fields_of` reads the dict they
  hold. `.HTTPHeaders` keeps it private: the drivers reach it here only.
* Body delivery: `deliver` hands a body piece on in ``chunk_size`` pieces
  and stops at the first piece the delegate answers with an awaitable.
* Blocking on a delegate: `wait_on` waits on that awaitable, `sort_outcome`
  sorts what it ended with: the request's fault (`.HTTPInputError`,
  answered 400) or the application's (logged, and the exchange aborted).
  The multiplexed drivers' streams keep a busy delegate's body in their
  inbox meanwhile (``_muxstream``'s `_MuxStream`, which owns that side);
  HTTP/2 slows the stream by its window.
* The body timer: `body_overdue`, for the drivers that sweep their
  streams (HTTP/1.1 arms one timer per request).
* Read-side flow control: `ReadFlow`, the one place a driver pauses and
  resumes reading from its transport. A driver stops reading when taking
  more input would only pile up work it cannot pass on: the HTTP/1.1
  driver while a delegate's awaitable is pending, while pipelined requests
  wait for their responses to drain, or while the parser holds more
  pipelined bytes than it should; both TCP drivers while the transport is
  over its write high-water mark. The drivers decide *when*; `ReadFlow`
  remembers *whether* reading is paused by us, so that a pause is never
  doubled, a resume never reaches a transport we did not pause, and nothing
  reaches a transport the driver has let go.

The 100-continue stays with each driver: how an interim head is sent is
the protocol's.

Compiled with the HTTP/1.1 driver (speedups/squall_build.py): its checks
are on the request path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Optional

from squall._fastpaths import new_instance
from squall.concurrent import _held_future
from squall.httputil import HTTPHeaders, HTTPInputError, RequestStartLine
from squall.httputil._drivers import _check_host, _GzipMessageDelegate
from squall.httputil._headers import fields_of  # the drivers take it from here too
from squall.log import app_log

if TYPE_CHECKING:
    from squall.http1connection import HTTP1ConnectionParameters
    from squall.httputil import HTTPMessageDelegate

__all__ = [
    "APP_ERROR",
    "BAD_REQUEST",
    "FINISHED",
    "ReadFlow",
    "body_limit",
    "body_overdue",
    "checked_host",
    "deliver",
    "decompressing",
    "fields_of",
    "headers_from_pairs",
    "known_host",
    "request_line",
    "sort_outcome",
    "wait_on",
    "wrap_fields",
]

# C variables in the compiled build (a module global is a dict lookup).
_new_object: Final[Any] = new_instance
_new_tuple: Final[Any] = tuple.__new__
_HTTPHeaders: Final = HTTPHeaders
_RequestStartLine: Final = RequestStartLine

# What a delegate's awaitable ended with (`sort_outcome`).
FINISHED: Final = 0  # it finished: hand on the next event
BAD_REQUEST: Final = 1  # HTTPInputError: the request is at fault, answered 400
APP_ERROR: Final = 2  # anything else, cancelled included: logged; the exchange is aborted


def request_line(method: str, target: str, version: str) -> RequestStartLine:
    """A request's start line, as every server driver makes one per request:
    ``tuple.__new__``, past the namedtuple's Python-level constructor."""
    line: RequestStartLine = _new_tuple(_RequestStartLine, (method, target, version))
    return line


def wrap_fields(fields: dict[str, list[str]]) -> HTTPHeaders:
    """A request head's fields (names canonical, values checked) as its
    `.HTTPHeaders`, which owns that dict from now on.

    `.HTTPHeaders._from_fields` without its Python frame: both server
    drivers make one per request (measured with callgrind: see the
    CHANGELOG entry that added this).
    """
    headers: Any = _new_object(_HTTPHeaders)
    headers._as_list = fields
    wrapped: HTTPHeaders = headers
    return wrapped


def headers_from_pairs(pairs: Iterable[tuple[str, str]]) -> HTTPHeaders:
    """A request's (or its trailers') `.HTTPHeaders` from ``(name, value)``
    pairs a core has checked already: `.HTTPHeaders._from_pairs`, nothing
    checked again."""
    return HTTPHeaders._from_pairs(pairs)


def present_websocket(headers: HTTPHeaders) -> None:
    """An extended CONNECT for a WebSocket (RFC 8441, RFC 9220) shown to the
    application as HTTP/1.1's upgrade shows: with ``Upgrade: websocket``,
    which handlers written for HTTP/1.1 read to tell a WebSocket from a
    plain GET (a proxy's ``get()`` that relays either). The protocol's own
    ``:protocol`` field is what it stands for; Connection stays absent."""
    if "Upgrade" not in headers:
        headers.add("Upgrade", "websocket")


def checked_host(headers: HTTPHeaders, version: str) -> Optional[str]:
    """Checks a request's Host field (RFC 9110 section 7.2, RFC 9112 section
    3.2) and returns it (None if absent), for the driver to remember: a
    client sends the same Host each time, and a driver checks it again only
    when it differs from the last one.

    Raises:
        HTTPInputError: several Host fields, an invalid one, or none where
            the version requires one.
    """
    _check_host(headers, version)
    hosts = fields_of(headers).get("Host")
    return hosts[0] if hosts else None


def known_host(headers: HTTPHeaders, known: Optional[str], version: str) -> Optional[str]:
    """The request's Host, checked by `checked_host` unless it is the single
    Host field the connection's last request had (``known``): what the
    driver remembers for the next one.

    Raises:
        HTTPInputError: as `checked_host`.
    """
    # (Read here, not through fields_of: a call fewer on every request.)
    hosts = headers._as_list.get("Host")
    if hosts is not None and len(hosts) == 1 and hosts[0] == known:
        return known
    _check_host(headers, version)  # (checked_host, its fields read once)
    return hosts[0] if hosts else None


def decompressing(
    delegate: HTTPMessageDelegate, params: HTTP1ConnectionParameters, max_body: int
) -> HTTPMessageDelegate:
    """A request's ``delegate`` (the server's), behind a gzip decoder if the
    server decompresses request bodies (``params.decompress``), which holds
    the decoded body to ``max_body`` bytes."""
    if params.decompress:
        return _GzipMessageDelegate(delegate, params.chunk_size, max_body)
    return delegate


def body_limit(params: HTTP1ConnectionParameters, default: int) -> int:
    """The largest request body a connection takes: the server's
    ``max_body_size`` if set, else the protocol's ``default`` (its core's
    limits: `.H1Limits`, `.H2Limits`)."""
    size = params.max_body_size
    return default if size is None else size


def body_overdue(timeout: Optional[float], default: Optional[float], waited: float) -> bool:
    """Whether a request body read for ``waited`` seconds is past its time:
    the request's own ``timeout`` (`HTTPConnection.set_body_timeout`), else
    the server's ``default``; no limit if neither is set."""
    limit = timeout or default
    return limit is not None and waited > limit


def deliver(
    delegate: HTTPMessageDelegate, data: bytes, size: int
) -> tuple[Optional[Awaitable[None]], bytes]:
    """Hands ``data`` to ``delegate.data_received`` in pieces of at most
    ``size`` bytes (the server's ``chunk_size``), stopping at the first
    piece whose call returns an awaitable.

    Returns:
        That awaitable (None if every piece was taken at once), and the
        bytes not handed on yet: the driver holds them until it is done.

    Raises:
        What ``data_received`` raises: the driver sorts it (`sort_outcome`).
    """
    if len(data) <= size:
        return delegate.data_received(data), b""
    for i in range(0, len(data), size):
        ret = delegate.data_received(data[i : i + size])
        if ret is not None:
            return ret, data[i + size :]
    return None, b""


def wait_on(
    awaitable: Awaitable[None],
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[asyncio.Future[None]], None],
) -> None:
    """Calls ``callback(future)`` once a delegate's ``awaitable`` is done
    (a coroutine gets a Task; a future is waited on as it is)."""
    _held_future(awaitable, loop).add_done_callback(callback)


def sort_outcome(future: asyncio.Future[None]) -> tuple[int, str]:
    """Sorts what a delegate's awaitable ended with: `FINISHED`, `BAD_REQUEST`
    (with the message for the 400) or `APP_ERROR` (logged here). Call it only
    while the exchange is still served: an error is logged once, by it."""
    if future.cancelled():
        exc: Optional[BaseException] = asyncio.CancelledError()
    else:
        exc = future.exception()
    if exc is None:
        return FINISHED, ""
    if isinstance(exc, HTTPInputError):
        return BAD_REQUEST, str(exc)
    app_log.error("Uncaught exception", exc_info=exc)
    return APP_ERROR, ""


class ReadFlow:
    """Whether we paused a transport's reading; pauses and resumes it once each."""

    __slots__ = ("transport", "paused")

    def __init__(self) -> None:
        #: The transport read from; ``None`` before it is known and once the
        #: driver has let it go (`release`).
        self.transport: Optional[asyncio.Transport] = None
        #: Reading is paused by us.
        self.paused = False

    def pause(self) -> None:
        """Stop reading (nothing if already paused, or no transport)."""
        transport = self.transport
        if not self.paused and transport is not None:
            self.paused = True
            transport.pause_reading()

    def resume(self) -> None:
        """Read again, if we paused reading (the driver checks its reasons first)."""
        if self.paused:
            self.paused = False
            transport = self.transport
            if transport is not None:
                transport.resume_reading()

    def release(self) -> bool:
        """The driver lets the transport go (lost, or handed to another
        protocol): no more pauses or resumes reach it. Returns whether reading
        was paused by us (a new owner resumes it)."""
        paused = self.paused
        self.paused = False
        self.transport = None
        return paused
