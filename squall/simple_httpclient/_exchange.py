"""One request and its response on an open `ClientConnection`.

The driver writes what `squall._h1.H1Connection` serializes and feeds it
what the stream reads, one partial read at a time, until the response's
`~squall._h1.EndOfMessage`. Any exception leaves the connection unusable;
the caller closes it. After a normal end the connection is reusable exactly
when `ClientConnection.is_reusable` says so.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any, Optional

from squall._h1 import (
    NEED_DATA,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
)
from squall.httputil import HTTPHeaders
from squall.iostream import StreamClosedError, UnsatisfiableReadError
from squall.log import app_log, gen_log
from squall.simple_httpclient._connection import ClientConnection
from squall.simple_httpclient._errors import HTTPStreamClosedError
from squall.util import GzipDecompressor

__all__ = ["ExchangeResult", "RequestSpec", "StaleConnectionError", "exchange"]

# Decompressed output per step: bounds memory for a compression bomb.
_DECOMPRESS_STEP = 64 * 1024

BodyProducer = Callable[[Callable[[bytes], Awaitable[None]]], Any]


class RequestSpec:
    """What to send, and where the response's parts go."""

    __slots__ = (
        "method",
        "target",
        "headers",
        "body",
        "body_producer",
        "expect_continue",
        "decompress",
        "streaming_callback",
        "header_callback",
        "superseded",
        "max_body_size",
        "read_size",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: Optional[bytes],
        body_producer: Optional[BodyProducer],
        expect_continue: bool,
        decompress: bool,
        streaming_callback: Optional[Callable[[bytes], Any]],
        header_callback: Optional[Callable[[str], Any]],
        superseded: Callable[[int, HTTPHeaders], bool],
        max_body_size: int,
        read_size: int,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.body_producer = body_producer
        self.expect_continue = expect_continue
        self.decompress = decompress
        self.streaming_callback = streaming_callback
        self.header_callback = header_callback
        # True for a response that another request will replace (a redirect
        # that is followed, a digest challenge): its body and headers reach
        # no callback.
        self.superseded = superseded
        self.max_body_size = max_body_size
        self.read_size = read_size


class ExchangeResult:
    """A complete response."""

    __slots__ = ("code", "reason", "version", "headers", "buffer", "superseded")

    def __init__(
        self,
        code: int,
        reason: str,
        version: str,
        headers: HTTPHeaders,
        buffer: Optional[BytesIO],
        superseded: bool,
    ) -> None:
        self.code = code
        self.reason = reason
        self.version = version
        self.headers = headers
        self.buffer = buffer
        self.superseded = superseded


class StaleConnectionError(Exception):
    """A reused connection was closed by the server before any of the
    response arrived (it timed out the idle connection as we sent): the
    request may be retried on a new connection."""


def _malformed(reason: str) -> HTTPStreamClosedError:
    prefix = "Malformed HTTP message: "
    if reason.startswith(prefix):
        reason = reason[len(prefix) :]
    # Tornado's wording, which callers' log filters look for.
    gen_log.info("Malformed HTTP message from None: %s", reason)
    return HTTPStreamClosedError("Connection closed")


def _callback_failed(what: str, spec: RequestSpec, exc: BaseException) -> HTTPStreamClosedError:
    app_log.error(
        "Uncaught exception in %s for %s %s",
        what,
        spec.method,
        spec.target,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return HTTPStreamClosedError("Connection closed")


class _BodySink:
    """Where body bytes go: the streaming callback, or a buffer."""

    __slots__ = ("spec", "decompressed", "received", "first", "bio")

    def __init__(self, spec: RequestSpec) -> None:
        self.spec = spec
        self.decompressed = False
        self.received = 0
        self.first: Optional[bytes] = None
        self.bio: Optional[BytesIO] = None

    async def feed(self, piece: bytes) -> None:
        spec = self.spec
        self.received += len(piece)
        # The wire size is bounded by the parser; this bounds what it expands to.
        if self.decompressed and self.received > spec.max_body_size:
            raise _malformed("decompressed body too large")
        callback = spec.streaming_callback
        if callback is not None:
            try:
                await _maybe_await(callback(piece))
            except BaseException as exc:  # noqa: BLE001 - a cancelled callback too
                raise _callback_failed("streaming_callback", spec, exc) from exc
        elif self.bio is not None:
            self.bio.write(piece)
        elif self.first is None:
            # Most bodies arrive in one piece: keep it without copying.
            self.first = piece
        else:
            self.bio = BytesIO()
            self.bio.write(self.first)
            self.bio.write(piece)
            self.first = None

    def buffer(self) -> Optional[BytesIO]:
        if self.spec.streaming_callback is not None:
            return None
        if self.bio is not None:
            self.bio.seek(0)
            return self.bio
        return BytesIO(self.first or b"")


async def _maybe_await(value: Any) -> None:
    if value is not None and inspect.isawaitable(value):
        await value


async def _send_body(conn: ClientConnection, spec: RequestSpec) -> None:
    h1 = conn.h1
    stream = conn.stream
    if spec.body_producer is not None:

        def write(chunk: bytes) -> Awaitable[None]:
            return stream.write(h1.send_data(chunk))

        await _maybe_await(spec.body_producer(write))
        await stream.write(h1.send_end())
    else:
        await stream.write(h1.send_data(spec.body or b"") + h1.send_end())


async def exchange(conn: ClientConnection, spec: RequestSpec) -> ExchangeResult:
    """Send ``spec`` on ``conn`` and read the whole response.

    Raises:
        ValueError: Invalid method, target or header (nothing was sent).
        HTTPStreamClosedError: The connection closed early, the response was
            malformed (logged at INFO), or a callback raised (logged).
        UnsatisfiableReadError: The response head is over ``max_header_size``.
        OSError: The socket's error.
    """
    h1 = conn.h1
    stream = conn.stream
    conn.uses += 1
    try:
        head = h1.send_request_head(spec.method, spec.target, spec.headers)
    except LocalProtocolError as exc:
        raise ValueError(str(exc)) from None
    try:
        if spec.expect_continue:
            await stream.write(head)
            body_pending = True
        elif spec.body_producer is not None:
            await stream.write(head)
            await _send_body(conn, spec)
            body_pending = False
        else:
            await stream.write(head + h1.send_data(spec.body or b"") + h1.send_end())
            body_pending = False
    except StreamClosedError as exc:
        if conn.uses > 1 and not h1.buffered:
            raise StaleConnectionError() from exc
        raise

    read_size = spec.read_size
    response: Optional[Response] = None
    headers: Optional[HTTPHeaders] = None
    superseded = False
    decompressor: Optional[GzipDecompressor] = None
    sink = _BodySink(spec)
    while True:
        try:
            event = h1.next_event()
        except RemoteProtocolError as exc:
            message = str(exc)
            if exc.status_hint == 431:
                gen_log.info("Unsatisfiable read, closing connection: %s", message)
                raise UnsatisfiableReadError(message) from None
            if message == "Content-Length too long" and headers is not None:
                if "Content-Length" not in headers:
                    message = "Body too long"
            raise _malformed(message) from None
        if event is NEED_DATA:
            try:
                data = await stream.read_bytes(read_size, partial=True)
            except StreamClosedError:
                data = b""
            h1.receive_data(data)
            continue
        kind = type(event)
        if kind is Data:
            assert isinstance(event, Data)
            if superseded:
                continue
            if decompressor is None:
                await sink.feed(event.data)
                continue
            data = event.data
            # One step at a time, so that a compression bomb never holds
            # more than one step's output.
            while data:
                try:
                    piece = decompressor.decompress(data, _DECOMPRESS_STEP)
                except zlib.error:
                    raise _malformed("invalid gzip data") from None
                if piece:
                    await sink.feed(piece)
                data = decompressor.unconsumed_tail
        elif kind is Response:
            assert isinstance(event, Response)
            response = event
            headers = HTTPHeaders._from_pairs(event.headers)
            superseded = spec.superseded(event.status, headers)
            if superseded:
                continue
            if spec.decompress and headers.get("Content-Encoding", "").lower() == "gzip":
                decompressor = GzipDecompressor()
                sink.decompressed = True
                headers.add("X-Consumed-Content-Encoding", headers["Content-Encoding"])
                del headers["Content-Encoding"]
            if spec.header_callback is not None:
                callback = spec.header_callback
                try:
                    await _maybe_await(
                        callback(f"{event.version} {event.status} {event.reason}\r\n")
                    )
                    for name, value in event.headers:
                        await _maybe_await(callback(f"{name}: {value}\r\n"))
                    await _maybe_await(callback("\r\n"))
                except BaseException as exc:  # noqa: BLE001
                    raise _callback_failed("header_callback", spec, exc) from exc
        elif kind is InformationalResponse:
            assert isinstance(event, InformationalResponse)
            if event.status == 100 and body_pending:
                body_pending = False
                await _send_body(conn, spec)
        elif kind is EndOfMessage:
            break
        elif kind is ConnectionClosed:
            assert isinstance(event, ConnectionClosed)
            if response is None and not event.truncated and conn.uses > 1:
                raise StaleConnectionError()
            if stream.error is not None and not isinstance(stream.error, StreamClosedError):
                raise stream.error
            raise HTTPStreamClosedError("Connection closed")
        else:
            # PAUSED cannot happen with a request outstanding.
            raise HTTPStreamClosedError(f"unexpected connection state: {event!r}")
    assert response is not None and headers is not None
    if decompressor is not None:
        try:
            tail = decompressor.flush()
        except zlib.error:
            raise _malformed("invalid gzip data") from None
        if tail:
            await sink.feed(tail)
    buffer = None if superseded else sink.buffer()
    return ExchangeResult(
        response.status, response.reason, response.version, headers, buffer, superseded
    )
