"""One request and its response on an open `ClientConnection`, driven by
callbacks: the connection feeds bytes to the parser and calls `Exchange.pump`,
which turns the parser's events into the response. Nothing waits on a
Future unless a user callback returns an awaitable (reading then pauses
until it is done) or the body comes from a ``body_producer``.

Any error leaves the connection unusable: the exchange closes it. After a
normal end the connection is reusable exactly when
`ClientConnection.can_keep` says so.

A connection that closes before any of the response is an error for the
request (`HTTPStreamClosedError`, or the connection's `OSError`), since the
server may have acted on it, with one exception: `ResendableError`, a
connection reset (ECONNRESET or EPIPE) before the request had been handed
to the kernel in full, for an idempotent method (RFC 9110 §9.2.2) and no
``body_producer``. The caller may then send it again.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any, Optional, Union

from squall._content_coding import ContentCodingError, Decoder
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
from squall.concurrent import _held_future
from squall.httputil import HTTPHeaders
from squall.iostream import UnsatisfiableReadError
from squall.log import app_log, gen_log
from squall.simple_httpclient._connection import ClientConnection
from squall.simple_httpclient._errors import HTTPStreamClosedError
from squall.simple_httpclient._policy import DECOMPRESS_STEP, take_decoder

__all__ = ["Exchange", "Outcome", "RequestSpec", "ResendableError", "field_value"]

# Statuses for which `RequestSpec.superseded` may say yes (redirects, and a
# digest challenge).
_MAY_SUPERSEDE = frozenset((301, 302, 303, 307, 308, 401))

# RFC 9110 §9.2.2: the methods a client may send again after a failure.
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))

BodyProducer = Callable[[Callable[[bytes], Awaitable[None]]], Any]


class ResendableError(Exception):
    """The connection was reset (ECONNRESET or EPIPE) while the request was
    still being written, before any of the response: the server's kernel
    refused the rest, so its application never had the request whole.
    Raised only
    for an idempotent method without a ``body_producer``; the request may be
    sent once more on another connection.

    Attributes:
        error: The connection's error, for when it is not sent again.
    """

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


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


Outcome = Union["Exchange", BaseException]


def field_value(pairs: list[tuple[str, str]], name: str) -> Optional[str]:
    """The value of field ``name`` (lowercase) in a head's pairs, repeated
    fields joined by commas as `HTTPHeaders` does; None if absent.

    Cheaper than building `HTTPHeaders` for one lookup.
    """
    found: Optional[str] = None
    size = len(name)
    for key, value in pairs:
        if len(key) == size and key.lower() == name:
            found = value if found is None else found + "," + value
    return found


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


def _ignore(conn: ClientConnection, outcome: Outcome) -> None:
    pass


class Exchange:
    """Sends ``spec`` on ``conn`` and calls ``on_done(conn, outcome)`` once,
    with itself when the response is complete (read ``response``,
    ``headers``, ``superseded``, ``body`` and ``bio``), or with the exception
    that ended it.

    ``headers`` is only built when the exchange needed it (a redirect or
    digest challenge, a gzip body); otherwise it is None and the fields are
    the pairs of ``response.headers``. The body is ``body`` (bytes), or
    ``bio`` when it came in several pieces; both None for a streamed or
    superseded response.

    Exceptions ``on_done`` may get: `HTTPStreamClosedError` (the connection
    closed early, a malformed response -- logged at INFO -- or a callback
    that raised -- logged), `UnsatisfiableReadError` (a head over
    ``max_header_size``), `ResendableError`, the connection's `OSError`.
    """

    __slots__ = (
        "conn",
        "spec",
        "on_done",
        "response",
        "headers",
        "superseded",
        "decompressor",
        "decoding",
        "body_pending",
        "sent",
        "waiting",
        "ended",
        "finished",
        "received",
        "body",
        "bio",
    )

    def __init__(
        self,
        conn: ClientConnection,
        spec: RequestSpec,
        on_done: Callable[[ClientConnection, Outcome], None],
    ) -> None:
        self.conn = conn
        self.spec = spec
        self.on_done = on_done
        self.response: Optional[Response] = None
        self.headers: Optional[HTTPHeaders] = None
        self.superseded = False
        self.decompressor: Optional[Decoder] = None
        # Decoded output may be pending: read it before the next event.
        self.decoding = False
        self.body_pending = False
        # The whole request reached the kernel (a write that failed never does).
        self.sent = False
        self.waiting = self.ended = self.finished = False
        self.received = 0
        self.body: Optional[bytes] = None
        self.bio: Optional[BytesIO] = None

    def start(self) -> None:
        """Send the request (its body too, unless it waits for 100-continue).

        Raises:
            ValueError: An invalid method, target or header; nothing was sent.
        """
        conn = self.conn
        spec = self.spec
        h1 = conn.h1
        try:
            head = h1.send_request_head(spec.method, spec.target, spec.headers)
        except LocalProtocolError as exc:
            raise ValueError(str(exc)) from None
        conn.uses += 1
        conn.handler = self
        if spec.expect_continue:
            conn.write(head)
            self.body_pending = True
        elif spec.body_producer is not None:
            conn.write(head)
            self._produce()
        else:
            body = spec.body
            data = head + h1.send_data(body) + h1.send_end() if body else head + h1.send_end()
            transport = conn.transport
            if transport is not None and not conn.closed:
                transport.write(data)
                # A small request is nearly always taken by the kernel at once.
                if transport.get_write_buffer_size() or transport.is_closing():
                    self.sent = conn.flushed(self._on_sent)
                else:
                    self.sent = True
        if conn.closed:
            # Nothing else would wake us: the connection already ended. (An
            # open one has nothing buffered: data that came while it was
            # idle closed it.)
            self.pump()

    # -- sending -------------------------------------------------------------

    def _produce(self) -> None:
        conn = self.conn
        producer = self.spec.body_producer
        assert producer is not None

        def write(chunk: bytes) -> Awaitable[None]:
            conn.write(conn.h1.send_data(chunk))
            return conn.drain()

        async def run() -> None:
            result = producer(write)
            if result is not None and inspect.isawaitable(result):
                await result
            if not self.finished:
                conn.write(conn.h1.send_end())

        def done(task: asyncio.Future[None]) -> None:
            if task.cancelled():
                self._fail(HTTPStreamClosedError("body_producer was cancelled"))
            elif task.exception() is not None:
                exc = task.exception()
                assert exc is not None
                self._fail(exc)

        _held_future(run()).add_done_callback(done)

    def _send_body(self) -> None:
        if self.spec.body_producer is not None:
            self._produce()
            return
        conn = self.conn
        h1 = conn.h1
        body = self.spec.body
        conn.write(h1.send_data(body) + h1.send_end() if body else h1.send_end())
        self.sent = conn.flushed(self._on_sent)

    def _on_sent(self) -> None:
        self.sent = True

    # -- receiving -----------------------------------------------------------

    def pump(self) -> None:
        """Process the parser's events until it needs data, a callback's
        awaitable must finish first, or the response is complete."""
        try:
            h1 = self.conn.h1
            while not self.waiting and not self.finished:
                if self.decoding:
                    decompressor = self.decompressor
                    assert decompressor is not None
                    try:
                        piece = decompressor.read(DECOMPRESS_STEP)
                    except ContentCodingError as exc:
                        raise _malformed(str(exc)) from None
                    if piece:
                        self._feed(piece)
                    else:
                        self.decoding = False
                    continue
                if self.ended:
                    self._complete()
                    return
                try:
                    event = h1.next_event()
                except RemoteProtocolError as exc:
                    # The core keeps its error (to raise it again); with this
                    # frame in its traceback it would hold the exchange, and
                    # the body read so far, in a cycle with the connection.
                    raise self._protocol_error(exc.with_traceback(None)) from None
                if event is NEED_DATA:
                    return
                # Checked by type() (mypy narrows on it; no assert per event).
                if type(event) is Data:
                    if self.superseded:
                        continue
                    if (
                        self.body is None
                        and self.bio is None
                        and self.decompressor is None
                        and self.spec.streaming_callback is None
                    ):
                        # _feed's common case, inlined: the first piece of a
                        # plain body is kept as it is.
                        self.body = event.data
                        self.received = len(event.data)
                        continue
                    if self.decompressor is not None:
                        # One step at a time, so that a compression bomb never
                        # holds more than one step's output.
                        self.decompressor.feed(event.data)
                        self.decoding = True
                    else:
                        self._feed(event.data)
                elif type(event) is Response:
                    self._head(event)
                elif type(event) is EndOfMessage:
                    self.ended = True
                    if self.decompressor is not None and not self.superseded:
                        try:
                            self.decompressor.finish()
                        except ContentCodingError as exc:
                            raise _malformed(str(exc)) from None
                elif type(event) is InformationalResponse:
                    if event.status == 100 and self.spec.expect_continue:
                        if self.body_pending:
                            self.body_pending = False
                            self._send_body()
                    elif self.spec.header_callback is not None:
                        # An interim head (103 Early Hints...) reaches the
                        # callback too, as on Tornado (and libcurl).
                        self._give_head(event, HTTPHeaders._from_pairs(event.headers))
                elif type(event) is ConnectionClosed:
                    error = self.conn.error
                    if error is None:
                        # Tornado's wording, which callers' retry checks
                        # match: "Stream closed" when no response head came,
                        # "Connection closed" once one had.
                        raise HTTPStreamClosedError(
                            "Stream closed" if self.response is None else "Connection closed"
                        )
                    if (
                        isinstance(error, (ConnectionResetError, BrokenPipeError))
                        and not self.sent
                        and self.response is None
                        and not event.truncated
                        and self.spec.method in IDEMPOTENT_METHODS
                        and self.spec.body_producer is None
                    ):
                        raise ResendableError(error)
                    # As Tornado: the socket's own error, in a 599 response.
                    raise error
                else:
                    # PAUSED cannot happen with a request outstanding.
                    raise HTTPStreamClosedError(f"unexpected connection state: {event!r}")
        except BaseException as exc:
            self._fail(exc)

    def _protocol_error(self, exc: RemoteProtocolError) -> Exception:
        message = str(exc)
        if exc.status_hint == 431:
            gen_log.info("Unsatisfiable read, closing connection: %s", message)
            return UnsatisfiableReadError(message)
        response = self.response
        if message == "Content-Length too long" and response is not None:
            if field_value(response.headers, "content-length") is None:
                message = "Body too long"
        return _malformed(message)

    def _head(self, event: Response) -> None:
        spec = self.spec
        self.response = event
        status = event.status
        if status in _MAY_SUPERSEDE:
            if spec.superseded(status, self._headers_of(event)):
                self.superseded = True
                return
        if spec.decompress and field_value(event.headers, "content-encoding") is not None:
            self.decompressor = take_decoder(self._headers_of(event))
        if spec.header_callback is not None:
            self._give_head(event, self._headers_of(event))

    def _give_head(
        self, event: Union[Response, InformationalResponse], headers: HTTPHeaders
    ) -> None:
        # The lines are those of the response's headers, as Tornado gives
        # them: names normalized, a repeated field's lines together,
        # Content-Encoding renamed once the client decodes it.
        spec = self.spec
        callback = spec.header_callback
        assert callback is not None
        try:
            results = [callback(f"{event.version} {event.status} {event.reason}\r\n")]
            results += [callback(f"{name}: {value}\r\n") for name, value in headers.get_all()]
            results.append(callback("\r\n"))
        except Exception as exc:
            raise _callback_failed("header_callback", spec, exc) from exc
        pending = [r for r in results if r is not None and inspect.isawaitable(r)]
        if pending:
            self._wait(asyncio.gather(*pending), "header_callback")

    def _headers_of(self, event: Response) -> HTTPHeaders:
        # Built only when the exchange needs them (see the class docstring).
        headers = self.headers
        if headers is None:
            headers = self.headers = HTTPHeaders._from_pairs(event.headers)
        return headers

    def _feed(self, piece: bytes) -> None:
        spec = self.spec
        self.received += len(piece)
        # The wire size is bounded by the parser; this bounds what it expands to.
        if self.decompressor is not None and self.received > spec.max_body_size:
            raise _malformed("decompressed body too large")
        callback = spec.streaming_callback
        if callback is not None:
            try:
                result = callback(piece)
            except Exception as exc:
                raise _callback_failed("streaming_callback", spec, exc) from exc
            if result is not None and inspect.isawaitable(result):
                self._wait(result, "streaming_callback")
        elif self.bio is not None:
            self.bio.write(piece)
        elif self.body is None:
            # Most bodies arrive in one piece: keep it without copying.
            self.body = piece
        else:
            self.bio = BytesIO()
            self.bio.write(self.body)
            self.bio.write(piece)
            self.body = None

    def _wait(self, awaitable: Awaitable[Any], what: str) -> None:
        # Back-pressure: stop reading until the callback's work is done.
        future = _held_future(awaitable)
        self.waiting = True
        transport = self.conn.transport
        if transport is not None and not self.conn.closed:
            transport.pause_reading()

        def resume(done: asyncio.Future[Any]) -> None:
            self.waiting = False
            if self.finished:
                return
            try:
                done.result()
            except BaseException as exc:  # noqa: BLE001 - a cancelled callback too
                self._fail(_callback_failed(what, self.spec, exc))
                return
            if transport is not None and not self.conn.closed:
                transport.resume_reading()
            self.pump()

        future.add_done_callback(resume)

    # -- ending ----------------------------------------------------------------

    def _complete(self) -> None:
        self.finished = True
        conn = self.conn
        conn.handler = None
        if self.superseded:
            self.body = None
            self.bio = None
        elif self.spec.streaming_callback is not None:
            # The body went to the callback; the response's buffer is an
            # empty BytesIO (as on Tornado), not None.
            self.body = b""
            self.bio = None
        elif self.bio is not None:
            self.bio.seek(0)
        elif self.body is None:
            self.body = b""
        self.on_done(conn, self)

    def _fail(self, exc: BaseException) -> None:
        if self.finished:
            return
        self.finished = True
        # The error's traceback holds this exchange (pump's frame) for as
        # long as the caller keeps the error: the body read so far goes now.
        self.body = None
        self.bio = None
        self.decompressor = None
        conn = self.conn
        conn.close()
        on_done = self.on_done
        # And the exchange no longer leads to the fetch, whose callback
        # leads to the Future that holds the error: no cycle for the
        # collector to find.
        self.on_done = _ignore
        on_done(conn, exc)

    def abort(self) -> None:
        """Give up (a timeout): close the connection; ``on_done`` is not called."""
        self.finished = True
        self.conn.close()
