"""HTTP/1.1 over an `~squall.iostream.IOStream`, for clients and for code that drives a stream itself.

`HTTP1Connection` implements `.HTTPConnection` for both roles: a client
writes a request with `~HTTP1Connection.write_headers` / `~squall.httputil.HTTPConnection.write` / `~squall.httputil.HTTPConnection.finish`
and reads the response with `~HTTP1Connection.read_response`; a server (see
`HTTP1ServerConnection`) reads requests and writes responses. It is a thin
driver over the sans-I/O core ``squall._h1``: bytes read from the stream are
fed to an ``H1Connection``, its events go to the `.HTTPMessageDelegate`, and
what we send is serialized by the same core. `.HTTPServer` serves listening
sockets through a faster protocol-based driver (see `squall.httpserver`)
built from the same pieces.

Parser choice: the httptools backend of ``_h1`` is used when importable,
unless the environment variable ``SQUALL_NO_SPEEDUPS=1`` is set.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any, Optional

from squall import gen
from squall._h1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Connection,
    InformationalResponse,
    LocalProtocolError,
    ProtocolError,
    Request,
    Response,
)
from squall._sizes import required_byte_count
from squall.concurrent import Future
from squall.httputil import (
    HTTPHeaders,
    HTTPInputError,
    HTTPMessageDelegate,
    HTTPOutputError,
    RequestStartLine,
    ResponseStartLine,
)

# What the drivers share is in httputil/_drivers; the names stay importable from here.
from squall.httputil._drivers import (
    _DEFAULT_MAX_BODY_SIZE,
    _SLICE,
    HTTP1ConnectionParameters,
    _body,
    _check_host,
    _end,
    _error_message,
    _error_response,
    _GzipMessageDelegate,
    _log_malformed,
    _new_h1,
    _response_head,
)
from squall.httputil._drivers import _MAX_1XX_RESPONSES as _MAX_1XX_RESPONSES
from squall.httputil._drivers import _header_pairs as _header_pairs
from squall.httputil._drivers import _lenient_after as _lenient_after
from squall.httputil._drivers import _limits as _limits
from squall.httputil._drivers import _parser_choice as _parser_choice
from squall.httputil._exchange import BODY, DONE, HEAD, IDLE, Exchange
from squall.httputil._startline import StartLine
from squall.iostream import IOStream, StreamClosedError
from squall.log import app_log, gen_log

__all__ = ["HTTP1Connection", "HTTP1ConnectionParameters", "HTTP1ServerConnection"]

#: A CR or LF, which may not appear in a header value or start-line field.
CR_OR_LF_RE = re.compile(b"\r|\n")
#: One or more decimal digits (the only form of a Content-Length, RFC 9110 §8.6).
DIGITS = re.compile(r"[0-9]+")
#: One or more hex digits (the form of a chunk size, RFC 9112 §7.1).
HEXDIGITS = re.compile(r"[0-9a-fA-F]+")


def parse_int(s: str) -> int:
    """Parse a non-negative decimal integer with no sign, space or underscore.

    Raises:
        ValueError: if ``s`` is not only decimal digits.
    """
    if DIGITS.fullmatch(s) is None:
        raise ValueError(f"not a decimal integer: {s[:40]!r}")
    return int(s)


def parse_hex_int(s: str) -> int:
    """Parse a non-negative hexadecimal integer with no prefix, sign or space.

    Raises:
        ValueError: if ``s`` is not only hex digits.
    """
    if HEXDIGITS.fullmatch(s) is None:
        raise ValueError(f"not a hexadecimal integer: {s[:40]!r}")
    return int(s, 16)


def is_transfer_encoding_chunked(headers: HTTPHeaders) -> bool:
    """Whether a message's body is in the chunked coding (RFC 9112 §6.1).

    Returns:
        False without a ``Transfer-Encoding`` header, True when it is ``chunked``.

    Raises:
        HTTPInputError: for any other transfer coding (only ``chunked`` is
            supported) or when ``Content-Length`` is present too (§6.3).
    """
    if "Transfer-Encoding" not in headers:
        return False
    if "Content-Length" in headers:
        raise HTTPInputError("Message with both Transfer-Encoding and Content-Length")
    value = headers["Transfer-Encoding"]
    if value.strip().lower() == "chunked":
        return True
    raise HTTPInputError(f"Unsupported Transfer-Encoding {value[:100]}")


# Defined with the drivers' shared code, which reads it; its home is here.
HTTP1ConnectionParameters.__module__ = __name__


def _unread(stream: IOStream, data: bytes) -> None:
    """Put bytes the parser read ahead back in front of the stream's buffer,
    so that whoever takes the stream over (`HTTP1Connection.detach`) sees them."""
    rbuf: Optional[bytearray] = getattr(stream, "_rbuf", None)
    if rbuf is None or not data:
        return
    del rbuf[: stream._rpos]
    rbuf[0:0] = data
    stream._rpos = 0


class HTTP1Connection(Exchange):
    """One HTTP/1.x message exchange over an `.IOStream`, client or server side.

    An ``Exchange`` (its phase, close callback,
    `~squall.httputil.HTTPConnection.write`,
    `~squall.httputil.HTTPConnection.finish` and
    `~squall.httputil.HTTPConnection.head_written`); like the server's
    protocol path, it writes its own `write_headers`, and its Content-Length
    accounting is the sans-I/O core's (``squall._h1``, which frames the
    message by it).

    Args:
        stream: the connected stream.
        is_client: True to send requests and read responses.
        params: the `HTTP1ConnectionParameters` (defaults if None).
        context: an object describing the peer; servers pass one with
            ``remote_ip`` and ``protocol``, which end up on the request.
    """

    def __init__(
        self,
        stream: IOStream,
        is_client: bool,
        params: Optional[HTTP1ConnectionParameters] = None,
        context: Optional[object] = None,
    ) -> None:
        self._setup(stream, is_client, params, context, None)

    @classmethod
    def _next_on(
        cls,
        stream: IOStream,
        params: HTTP1ConnectionParameters,
        context: Optional[object],
        h1: H1Connection,
    ) -> HTTP1Connection:
        """The server side of the next exchange on a kept-alive connection,
        continuing the sans-I/O state ``h1`` of the previous one."""
        conn = cls.__new__(cls)
        conn._setup(stream, False, params, context, h1)
        return conn

    def _setup(
        self,
        stream: IOStream,
        is_client: bool,
        params: Optional[HTTP1ConnectionParameters],
        context: Optional[object],
        h1: Optional[H1Connection],
    ) -> None:
        Exchange.__init__(self, context)
        self.is_client = is_client
        self.stream: Optional[IOStream] = stream
        self.params = params if params is not None else HTTP1ConnectionParameters()
        #: Tornado's name for ``params.no_keep_alive``, read by some callers.
        self.no_keep_alive = self.params.no_keep_alive
        self._h1 = (
            h1 if h1 is not None else _new_h1("client" if is_client else "server", self.params)
        )
        self._body_timeout = self.params.body_timeout
        self._max_body_size: Optional[int] = None
        buffer_size = getattr(stream, "max_buffer_size", None)
        if self.params.max_body_size is None and buffer_size not in (None, _DEFAULT_MAX_BODY_SIZE):
            # No body limit given: a body may fill the stream's read buffer,
            # as large or as small as the caller made it.
            self._max_body_size = buffer_size
        self._request_start_line: Optional[RequestStartLine] = None
        self._response_headers: Optional[HTTPHeaders] = None
        self._read_finished = False
        self._pending_write: Optional[Future[None]] = None
        self._finish_future: Future[None] = Future()
        # Bytes read from the stream and not yet given to the parser.
        self._wire = b""
        stream.set_close_callback(self._on_connection_close)

    # -- reading --------------------------------------------------------------

    def read_response(self, delegate: HTTPMessageDelegate) -> Awaitable[bool]:
        """Read one message (a response on a client, a request on a server).

        Returns:
            An awaitable resolving to True if the message was read and the
            connection may carry another exchange, False if it was closed.
        """
        if self.params.decompress:
            delegate = _GzipMessageDelegate(
                delegate,
                self.params.chunk_size,
                self.params.max_body_size or self._max_body_size or _DEFAULT_MAX_BODY_SIZE,
            )
        return self._read_message(delegate)

    async def _fill(
        self, deadline: Optional[float], delegate: HTTPMessageDelegate, pending: list[bytes]
    ) -> None:
        """Read one piece from the stream into the parser (EOF on close).

        Body bytes held back in ``pending`` go to the delegate before we
        wait for the network, so nothing sits in our buffer while we block.
        """
        stream = self.stream
        if stream is None:
            raise StreamClosedError()
        future: Optional[Future[bytes]]
        try:
            future = stream.read_bytes(self.params.chunk_size, partial=True)
        except StreamClosedError:
            future = None
        if pending and (future is None or not future.done()):
            await self._deliver(delegate, pending)
        data = b""
        if future is not None:
            try:
                if deadline is None:
                    data = await future
                else:
                    data = await gen.with_timeout(
                        deadline, future, quiet_exceptions=(StreamClosedError,)
                    )
            except StreamClosedError:
                data = b""
        if not data:
            self._h1.receive_data(b"")
            return
        self._wire = data
        self._feed()

    def _feed(self) -> None:
        wire = self._wire
        if len(wire) > _SLICE and wire.count(b"\r\n", 0, _SLICE) > _SLICE // 32:
            # Tiny chunks are costly to parse: take them a slice at a time and
            # let the IOLoop run in between.
            self._h1.receive_data(wire[:_SLICE])
            self._wire = wire[_SLICE:]
        else:
            self._h1.receive_data(wire)
            self._wire = b""

    async def _deliver(self, delegate: HTTPMessageDelegate, pending: list[bytes]) -> None:
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        size = self.params.chunk_size
        for i in range(0, len(data), size):
            ret = delegate.data_received(data[i : i + size] if len(data) > size else data)
            if ret is not None:
                await ret

    async def _read_message(self, delegate: HTTPMessageDelegate) -> bool:
        h1 = self._h1
        client = self.is_client
        if client and h1.our_state == "IDLE" and h1.their_state == "IDLE":
            # Reading a response to a request written by someone else (the
            # stream's owner): let the parser expect one, as for a GET.
            h1.send_request_head("GET", "/", ())
            h1.send_end()
        need_close = False
        head_seen = False
        pending: list[bytes] = []
        pending_size = 0
        headers: Optional[HTTPHeaders] = None
        deadline: Optional[float] = None
        timeout_label = ""
        if not client and self.params.header_timeout is not None:
            deadline = self._now() + self.params.header_timeout
            timeout_label = "header"
        try:
            while True:
                event = h1.next_event()
                if event is NEED_DATA:
                    if self._wire:
                        await gen.moment
                        self._feed()
                    else:
                        await self._fill(deadline, delegate, pending)
                    continue
                if event is PAUSED:
                    # Server: our response is not finished yet; client: the
                    # connection was switched or must close.
                    break
                kind = type(event)
                if kind is Data:
                    assert isinstance(event, Data)
                    # Small pieces are joined up to chunk_size before delivery.
                    pending.append(event.data)
                    pending_size += len(event.data)
                    if pending_size >= self.params.chunk_size:
                        pending_size = 0
                        await self._deliver(delegate, pending)
                    continue
                if kind is EndOfMessage:
                    if pending:
                        await self._deliver(delegate, pending)
                    self._read_finished = True
                    delegate.finish()
                    need_close = False
                    break
                if kind is ConnectionClosed:
                    assert isinstance(event, ConnectionClosed)
                    if not head_seen:
                        self.close()
                        return False
                    raise StreamClosedError()
                # A head.
                if kind is Request:
                    assert isinstance(event, Request)
                    request_line = RequestStartLine(event.method, event.target, event.version)
                    start_line: StartLine = request_line
                    # The parser's grouped fields, wrapped as they are.
                    headers = HTTPHeaders._from_fields(event.fields)
                    _check_host(headers, event.version)
                    self._request_start_line = request_line
                else:
                    assert isinstance(event, Response)
                    start_line = ResponseStartLine(event.version, event.status, event.reason)
                    headers = HTTPHeaders._from_pairs(event.headers)
                    self._response_headers = headers
                head_seen = True
                need_close = True
                ret = delegate.headers_received(start_line, headers)
                if ret is not None:
                    await ret
                if kind is InformationalResponse:
                    # The final response follows; the delegate sees both heads.
                    continue
                if self.stream is None:
                    # The delegate detached the stream.
                    return False
                if self._max_body_size is not None:
                    h1.set_max_body_size(self._max_body_size)
                if not client:
                    if h1.expects_continue and self._phase == IDLE:
                        # RFC 9110 §10.1.1: the delegate is ready for the body.
                        self.stream.write(h1.send_informational(100, "(Continue)"))
                    deadline = None
                    if self._body_timeout is not None:
                        deadline = self._now() + self._body_timeout
                        timeout_label = "body"
            if client:
                if self.stream is None:
                    return False
                if not h1.keep_alive:
                    self.close()
                return True
            if self._phase != DONE:
                await self._finish_future
            return self.stream is not None and not self.stream.closed()
        except gen.TimeoutError:
            if timeout_label == "body":
                gen_log.info("Timeout reading body from %s", self.context)
            self.close()
            return False
        except ProtocolError as exc:
            _log_malformed(
                self.context,
                _error_message(exc, self._response_headers, client),
                exc.status_hint,
            )
            self._reject(exc.status_hint)
            return False
        except HTTPInputError as exc:
            gen_log.info("Malformed HTTP message from %s: %s", self.context, exc)
            self._reject(400)
            return False
        except StreamClosedError:
            self.close()
            return False
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.close()
            return False
        finally:
            if self._wire:
                # Pipelined bytes belong to the next message.
                wire = self._wire
                self._wire = b""
                if h1.their_state not in ("CLOSED", "ERROR"):
                    h1.receive_data(wire)
            if need_close:
                try:
                    delegate.on_connection_close()
                except Exception:
                    app_log.error("Uncaught exception in on_connection_close", exc_info=True)

    def _reject(self, status_hint: int) -> None:
        stream = self.stream
        if not self.is_client and stream is not None and not stream.closed():
            if self._phase == IDLE:
                try:
                    stream.write(_error_response(status_hint))
                except StreamClosedError:
                    pass
        self.close()

    def _now(self) -> float:
        stream = self.stream
        assert stream is not None
        return stream.io_loop.time()

    def set_body_timeout(self, timeout: Optional[float]) -> None:
        """Limit the time to read the body of the message in progress (seconds)."""
        self._body_timeout = timeout

    def set_max_body_size(self, max_body_size: object) -> None:
        """Limit the size of the body of the message in progress (bytes: any
        real number, as `squall._sizes.byte_count` takes it)."""
        size = required_byte_count("max_body_size", max_body_size)
        self._max_body_size = size
        self._h1.set_max_body_size(size)

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another exchange after this one
        (both sides said so; a pool may reuse it once the exchange is over)."""
        stream = self.stream
        return (
            self._h1.keep_alive
            and not self.params.no_keep_alive
            and stream is not None
            and not stream.closed()
        )

    # -- writing --------------------------------------------------------------

    def write_headers(
        self, start_line: StartLine, headers: HTTPHeaders, chunk: Optional[bytes] = None
    ) -> Future[None]:
        """Write the start line and headers, and optionally the first body chunk.

        A request without Content-Length sent by POST, PUT or PATCH uses the
        chunked coding; a response without one uses chunked (HTTP/1.1) or is
        ended by closing (HTTP/1.0).

        Raises:
            HTTPOutputError: invalid headers, or a head already written.
        """
        h1 = self._h1
        if self.is_client:
            assert isinstance(start_line, RequestStartLine)
            if self._phase == HEAD or self._phase == BODY:
                # The request being written has not finished (a connection
                # kept alive starts its next request after finish()).
                raise HTTPOutputError(
                    "the request has already started: its head was already written"
                )
            self._request_start_line = start_line
            self._read_finished = False
            self._phase = IDLE
            self._finish_future = Future()
            try:
                data = h1.send_request_head(
                    start_line.method, start_line.path, headers.get_all(), start_line.version
                )
            except LocalProtocolError as exc:
                raise HTTPOutputError(str(exc)) from None
        else:
            assert isinstance(start_line, ResponseStartLine)
            data = _response_head(h1, start_line, headers, self.params.no_keep_alive)
        self._phase = HEAD
        if chunk:
            data += _body(h1, chunk)
        return self._write(data)

    def _write(self, data: bytes) -> Future[None]:
        stream = self.stream
        if stream is None or stream.closed():
            future: Future[None] = Future()
            future.set_exception(StreamClosedError())
            future.exception()  # a write to a closed connection is not "unretrieved"
            return future
        future = self._pending_write = stream.write(data)
        return future

    # write() and finish() are Exchange's (the phase); the emit hooks below
    # hand the body to the core, which counts it against the Content-Length
    # it framed the message by (RFC 9112 section 6).

    def _emit_raw(self, chunk: bytes) -> Future[None]:
        # Tornado's legacy interface: the application writes the whole
        # response itself; the connection closes after it.
        return self._write(chunk)

    def _emit_body(self, chunk: bytes) -> Future[None]:
        try:
            data = _body(self._h1, chunk)
        except HTTPOutputError:
            self._refuse()
            raise
        return self._write(data)

    def _emit_end(self, phase: int) -> None:
        if phase == IDLE:
            self._close_after_write()
            return
        try:
            data = _end(self._h1)
        except HTTPOutputError:
            self._refuse()
            raise
        if data:
            self._write(data)
        stream = self.stream
        if stream is not None and not stream.closed():
            stream.set_nodelay(True)
        if self.is_client:
            return
        if not self._h1.keep_alive:
            self._close_after_write()
        elif self._read_finished:
            self._resolve_finish()

    def _close_after_write(self) -> None:
        future = self._pending_write
        if future is None or future.done():
            self.close()
        else:
            future.add_done_callback(lambda f: self.close())

    def _resolve_finish(self) -> None:
        future = self._finish_future
        if not future.done():
            future.set_result(None)

    # -- connection -----------------------------------------------------------

    def _refuse(self) -> None:
        # The application broke the Content-Length: the message cannot be
        # completed, so the connection goes.
        self.close()

    def _on_connection_close(self) -> None:
        # The stream's close callback. The exchange's callback is called
        # here whatever the phase, as Tornado's class does (a finished
        # RequestHandler has removed its own).
        callback = self.close_callback
        self.close_callback = None
        if callback is not None:
            callback()
        self._resolve_finish()

    def close(self) -> None:
        """Close the stream."""
        stream = self.stream
        if stream is not None:
            stream.close()
        self._resolve_finish()

    def detach(self) -> IOStream:
        """Take the stream over; the connection no longer uses it.

        Bytes already read but not parsed are put back in the stream.
        """
        stream = self.stream
        if stream is None:
            raise RuntimeError("the stream was already detached")
        self.close_callback = None
        stream.set_close_callback(None)
        _unread(stream, self._h1.detach())
        self.stream = None
        self._resolve_finish()
        return stream


class HTTP1ServerConnection:
    """Serves the requests of one connection over an `.IOStream`, one at a time.

    Args:
        stream: the accepted connection.
        params: the `HTTP1ConnectionParameters`.
        context: the peer description put on each `HTTP1Connection`.
    """

    def __init__(
        self,
        stream: IOStream,
        params: Optional[HTTP1ConnectionParameters] = None,
        context: Optional[object] = None,
    ) -> None:
        self.stream = stream
        self.params = params if params is not None else HTTP1ConnectionParameters()
        self.context = context
        self._serving_future: Optional[Future[None]] = None
        self._h1 = _new_h1("server", self.params)
        # The exchange being read or answered (None between requests).
        self._current: Optional[HTTP1Connection] = None

    def start_serving(self, delegate: Any) -> None:
        """Read requests and pass each to ``delegate.start_request(self, connection)``.

        Args:
            delegate: an `.HTTPServerConnectionDelegate`.
        """
        self._serving_future = gen.convert_yielded(self._server_request_loop(delegate))
        # Errors are handled inside the loop; keep the loop from being collected.
        self.stream.io_loop.add_future(self._serving_future, lambda f: f.result())

    async def close(self) -> None:
        """Close the connection and wait for the request loop to end."""
        self.stream.close()
        if self._serving_future is not None:
            try:
                await self._serving_future
            except Exception:  # pragma: no cover - the loop handles its errors
                pass

    def census(self) -> tuple[str, int, int]:
        """What this connection carries, for metrics, as the server's own
        drivers report it: ``("http/1.1", requests in flight (0 or 1), 0)``.
        A request is in flight from its head to the end of its response."""
        conn = self._current
        busy = conn is not None and conn._request_start_line is not None and conn._phase < DONE
        return ("http/1.1", 1 if busy else 0, 0)

    async def _server_request_loop(self, delegate: Any) -> None:
        try:
            while True:
                conn = HTTP1Connection._next_on(self.stream, self.params, self.context, self._h1)
                self._current = conn
                request_delegate = delegate.start_request(self, conn)
                try:
                    ok = await conn.read_response(request_delegate)
                except Exception:  # pragma: no cover - read_response handles its errors
                    app_log.error("Uncaught exception", exc_info=True)
                    ok = False
                self._current = None
                if not ok:
                    return
                await gen.moment
        finally:
            delegate.on_close(self)
