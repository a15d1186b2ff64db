"""What the multiplexing clients (HTTP/2 in ``_h2``, HTTP/3 in ``_h3``) share:
one fetch's state (`StreamFetch`) and what a connection does with the head,
the body pieces and the end of a response on one of its streams
(`StreamResponses`), whatever carries the frames.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Protocol, cast

from squall._content_coding import ContentCodingError, Decoder
from squall.concurrent import _held_future
from squall.httpclient import HTTPRequest, HTTPResponse
from squall.httpserver._flow import headers_from_pairs
from squall.httputil import HTTPHeaders, HTTPInputError
from squall.httputil._headers import check_fields
from squall.iostream import UnsatisfiableReadError
from squall.log import app_log, gen_log
from squall.simple_httpclient._errors import HTTPStreamClosedError
from squall.simple_httpclient._policy import DECOMPRESS_STEP, take_decoder

__all__ = ["CONNECTION_LOST", "MuxClient", "MuxConnection", "StreamFetch", "StreamResponses"]


class StreamFetch:
    """One request on a multiplexed connection, and its response so far."""

    __slots__ = (
        "request",
        "callback",
        "start",
        "stream_id",
        "status",
        "headers",
        "chunks",
        "deadline",
        "key",
        "decompressor",
        "received",
        "body",
        "done",
        "retried",
        "fields",
        "follows",
        "opts",
        "path",
        "held",
        "backlog",
    )

    def __init__(
        self,
        request: HTTPRequest,
        callback: Callable[[HTTPResponse], None],
        start: float,
        opts: dict[str, Any],
    ) -> None:
        self.request = request
        # The request's options with the client's defaults filled in (the
        # policy's `options`), read from here: each read through the
        # request's proxy would be a failed attribute lookup first.
        self.opts = opts
        self.callback = callback
        self.start = start
        self.stream_id = 0
        self.status = 0
        self.headers: Optional[HTTPHeaders] = None
        self.chunks: list[bytes] = []
        # When the request times out (time.monotonic()), if it does; the
        # client's one timer watches every fetch's (see _h2's `_untime`).
        self.deadline: Optional[float] = None
        # The connection the fetch is routed to (the client's key for it).
        self.key: tuple[Any, ...] = ()
        self.body = b""
        self.done = False
        self.retried = False
        self.decompressor: Optional[Decoder] = None
        self.received = 0
        # The request's header fields, as the client policy makes them.
        self.fields: list[tuple[str, str]] = []
        self.follows = False
        # The request target (RFC 9110 §7.1: path and query), from the URL.
        self.path = "/"
        # What an awaitable header_callback or streaming_callback returned,
        # until it is done: the body pieces that arrive meanwhile wait in
        # ``backlog`` (None there: the response ended). They are not held
        # back by flow control (the connection's window is shared by every
        # stream); the body limit bounds them.
        self.held: Optional[asyncio.Future[Any]] = None
        self.backlog: list[Optional[bytes]] = []


class MuxConnection(Protocol):
    """What a multiplexing client asks of one of its connections."""

    #: What the client files the connection under.
    key: tuple[Any, ...]
    #: Gone: takes no fetch.
    closed: bool
    #: Draining: takes no new fetch, finishes those it has.
    goaway: bool

    def submit(self, fetch: StreamFetch) -> None:
        """Send ``fetch`` on a stream of its own (now, or when one is free)."""

    def cancel(self, fetch: StreamFetch) -> None:
        """Give up on ``fetch``: reset its stream, or drop it if not sent yet."""

    def close(self) -> None:
        """Close the connection; its fetches fail."""

    def drain(self) -> None:
        """Take no new fetch; close once those it has are done (the client
        closed: its fetches in flight still complete, as over HTTP/1.1)."""


class MuxClient(Protocol):
    """What a multiplexing connection asks of its client (`H2AsyncHTTPClient`
    and `H3AsyncHTTPClient` implement it; public names, being an interface
    between modules)."""

    #: Largest response body, streamed or buffered (None: ``max_buffer_size``).
    max_body_size: Optional[int]
    max_buffer_size: int
    #: Largest response head, as HTTP/1.1 would carry it (None: the protocol's limit).
    max_header_size: Optional[int]

    def will_redirect(self, fetch: StreamFetch) -> bool:
        """Whether ``fetch``'s response is a redirect the client will follow."""
        ...

    def complete_fetch(self, fetch: StreamFetch) -> None:
        """``fetch``'s response is whole: answer it (or follow its redirect)."""
        ...

    def fail_fetch(self, fetch: StreamFetch, error: BaseException) -> None:
        """``fetch`` failed with ``error``."""
        ...

    def forget_connection(self, conn: MuxConnection) -> None:
        """``conn`` takes no more fetches: stop routing to it."""
        ...


#: What `StreamResponses.gone` is given when the connection closed under
#: its fetches (each then fails with the HTTP/1.1 client's words for it).
CONNECTION_LOST = HTTPStreamClosedError("Connection closed")


def _callback_failed(what: str, fetch: StreamFetch, exc: BaseException) -> HTTPStreamClosedError:
    """A caller's callback raised: logged, and the fetch fails as the
    HTTP/1.1 client fails it (`HTTPStreamClosedError`, "Connection closed")."""
    app_log.error(
        "Uncaught exception in %s for %s %s",
        what,
        fetch.opts["method"],
        fetch.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return HTTPStreamClosedError("Connection closed")


class StreamResponses:
    """The response side of a connection that carries one fetch per stream.

    A subclass keeps ``streams`` (stream id to fetch) and ``client``, and
    implements `reset_stream`; its protocol code calls `on_head`,
    `on_body` and `on_end` as frames arrive.
    """

    client: MuxClient
    streams: dict[int, StreamFetch]
    closed: bool
    #: The version word header_callback is given, as in ``HTTP/2.0 200``.
    version_word = ""

    def reset_stream(self, stream_id: int) -> None:
        """Cancel ``stream_id`` towards the server (its data is not wanted)."""
        raise NotImplementedError()

    def on_head(self, fetch: StreamFetch, status: int, fields: list[tuple[str, str]]) -> None:
        """A final response head arrived for ``fetch``."""
        try:
            check_fields(fields)
        except HTTPInputError as exc:
            gen_log.warning("Malformed HTTP message from server: %s", exc)
            self.abandon(fetch, HTTPStreamClosedError(f"invalid response head: {exc}"))
            return
        client = self.client
        limit = client.max_header_size
        if limit is not None:
            # The head's size as HTTP/1.1 would carry it ("Name: value" and
            # CRLF per field), held to the HTTP/1.1 client's limit with its
            # error (what a caller of either client catches).
            size = 17
            for name, value in fields:
                size += len(name) + len(value) + 4
            if size > limit:
                gen_log.info("Unsatisfiable read, closing connection: Header block too large")
                self.abandon(fetch, UnsatisfiableReadError("Header block too large"))
                return
        headers = headers_from_pairs(fields)
        fetch.status = status
        fetch.headers = headers
        if client.will_redirect(fetch):
            # Neither the redirect's head nor its body is the caller's (the
            # HTTP/1.1 client gives the callbacks the final response only).
            return
        length = headers.get("Content-Length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self._body_limit()
            and status not in (204, 304)
            and fetch.opts["method"] != "HEAD"
        ):
            # Refused before any of it arrives, streamed or not, as the
            # HTTP/1.1 client refuses it (with its log line and error).
            gen_log.info("Malformed HTTP message from None: Content-Length too long")
            self.abandon(fetch, HTTPStreamClosedError("Connection closed"))
            return
        opts = fetch.opts
        if opts["decompress_response"]:
            # Decoded as it arrives, so streaming_callback gets plain bytes.
            fetch.decompressor = take_decoder(headers)
        header_callback = opts["header_callback"]
        if header_callback is not None:
            try:
                results = [header_callback(f"{self.version_word} {status} \r\n")]
                results += [
                    header_callback(f"{name}: {value}\r\n") for name, value in headers.get_all()
                ]
                results.append(header_callback("\r\n"))
            except Exception as exc:
                self.abandon(fetch, _callback_failed("header_callback", fetch, exc))
                return
            pending = [r for r in results if r is not None and inspect.isawaitable(r)]
            if pending:
                self._hold(fetch, asyncio.gather(*pending), "header_callback")

    def _body_limit(self) -> int:
        """The largest response body, streamed or buffered, after decoding
        (the HTTP/1.1 client's: ``max_body_size``, else ``max_buffer_size``)."""
        client = self.client
        limit = client.max_body_size
        return client.max_buffer_size if limit is None else limit

    def on_body(self, fetch: StreamFetch, data: bytes) -> None:
        """A piece of ``fetch``'s response body arrived."""
        if self.client.will_redirect(fetch):
            return  # the redirect's body is not wanted
        decompressor = fetch.decompressor
        if decompressor is None:
            self._take(fetch, data)
            return
        decompressor.feed(data)
        self._decode(fetch, decompressor)

    def _decode(self, fetch: StreamFetch, decompressor: Decoder) -> bool:
        """Pass on what ``decompressor`` has decoded, a bounded step at a time
        (a compression bomb never holds more than one step); False if the
        fetch was abandoned."""
        while True:
            try:
                piece = decompressor.read(DECOMPRESS_STEP)
            except ContentCodingError as exc:
                self.abandon(fetch, HTTPStreamClosedError(f"invalid body: {exc}"))
                return False
            if not piece:
                return True
            if not self._take(fetch, piece):
                return False

    def _take(self, fetch: StreamFetch, piece: bytes) -> bool:
        """Hand one decoded piece on; False if the fetch was abandoned."""
        fetch.received += len(piece)
        if fetch.received > self._body_limit():
            # A body this size (a compression bomb, say) would exhaust
            # memory buffered, and is refused streamed too, as the HTTP/1.1
            # client refuses it.
            reason = "decompressed body too large" if fetch.decompressor else "Body too long"
            gen_log.info("Malformed HTTP message from None: %s", reason)
            self.abandon(fetch, HTTPStreamClosedError("Connection closed"))
            return False
        if not piece:
            return True
        if fetch.held is not None:
            fetch.backlog.append(piece)
            return True
        return self._hand_on(fetch, piece)

    def _hand_on(self, fetch: StreamFetch, piece: bytes) -> bool:
        streaming = fetch.opts["streaming_callback"]
        if streaming is None:
            fetch.chunks.append(piece)
            return True
        try:
            result = streaming(piece)
        except Exception as exc:
            self.abandon(fetch, _callback_failed("streaming_callback", fetch, exc))
            return False
        if result is not None and inspect.isawaitable(result):
            # The next piece waits until this one's work is done, as the
            # HTTP/1.1 client (and Tornado's) waits before reading on.
            self._hold(fetch, result, "streaming_callback")
        return True

    def _hold(self, fetch: StreamFetch, awaitable: Awaitable[Any], what: str) -> None:
        held = fetch.held = _held_future(awaitable)

        def resume(done: asyncio.Future[Any]) -> None:
            if fetch.held is not done:
                return
            fetch.held = None
            if fetch.done:
                return
            try:
                done.result()
            except BaseException as exc:  # noqa: BLE001 - a cancelled callback too
                self.abandon(fetch, _callback_failed(what, fetch, exc))
                return
            backlog = fetch.backlog
            while backlog and fetch.held is None:
                piece = backlog.pop(0)
                if piece is None:
                    self._finish(fetch)
                    return
                if not self._hand_on(fetch, piece):
                    return

        held.add_done_callback(resume)

    def on_end(self, fetch: StreamFetch) -> None:
        """The response is complete: check a coded body ended whole, then
        deliver (once the callbacks' awaitables are done)."""
        if fetch.held is not None:
            fetch.backlog.append(None)
            return
        self._finish(fetch)

    def _finish(self, fetch: StreamFetch) -> None:
        decompressor = fetch.decompressor
        if decompressor is not None and not self.client.will_redirect(fetch):
            try:
                decompressor.finish()
            except ContentCodingError as exc:
                self.fail(fetch, HTTPStreamClosedError(f"invalid body: {exc}"))
                return
        self.client.complete_fetch(fetch)

    def abandon(self, fetch: StreamFetch, error: BaseException) -> None:
        """Reset ``fetch``'s stream and fail it."""
        self.streams.pop(fetch.stream_id, None)
        self.reset_stream(fetch.stream_id)
        self.fail(fetch, error)

    def fail(self, fetch: StreamFetch, error: BaseException) -> None:
        if error is CONNECTION_LOST:
            # The HTTP/1.1 client's words (Tornado's, which callers' retry
            # checks match): "Stream closed" if no response head came,
            # "Connection closed" once one had.
            error = HTTPStreamClosedError(
                "Stream closed" if fetch.headers is None else "Connection closed"
            )
        self.client.fail_fetch(fetch, error)

    def fail_streams(self, error: BaseException) -> None:
        """Fail every fetch that has a stream here."""
        fetches = list(self.streams.values())
        self.streams.clear()
        for fetch in fetches:
            self.fail(fetch, error)

    def fail_all(self, error: BaseException) -> None:
        """Fail every fetch of the connection (those with a stream; a subclass
        adds those still waiting for one)."""
        self.fail_streams(error)

    def gone(self, error: BaseException) -> None:
        """The connection is closed: the client forgets it, and every fetch
        on it fails with ``error``."""
        self.closed = True
        self.client.forget_connection(cast(MuxConnection, self))  # (each subclass is one)
        self.fail_all(error)
