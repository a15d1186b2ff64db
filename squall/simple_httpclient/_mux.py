"""What the multiplexing clients (HTTP/2 in ``_h2``, HTTP/3 in ``_h3``) share:
one fetch's state (`StreamFetch`) and what a connection does with the head,
the body pieces and the end of a response on one of its streams
(`StreamResponses`), whatever carries the frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, Protocol, cast

from squall._content_coding import ContentCodingError, Decoder
from squall.httpclient import HTTPRequest, HTTPResponse
from squall.httpserver._flow import headers_from_pairs
from squall.httputil import HTTPHeaders, HTTPInputError
from squall.httputil._headers import check_fields
from squall.log import gen_log
from squall.simple_httpclient._errors import HTTPStreamClosedError
from squall.simple_httpclient._policy import DECOMPRESS_STEP, take_decoder

__all__ = ["MuxClient", "MuxConnection", "StreamFetch", "StreamResponses"]


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


class MuxClient(Protocol):
    """What a multiplexing connection asks of its client (`H2AsyncHTTPClient`
    and `H3AsyncHTTPClient` implement it; public names, being an interface
    between modules)."""

    #: Largest buffered response body (None: ``max_buffer_size``).
    max_body_size: Optional[int]
    max_buffer_size: int

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
        headers = headers_from_pairs(fields)
        fetch.status = status
        fetch.headers = headers
        opts = fetch.opts
        if opts["decompress_response"]:
            # Decoded as it arrives, so streaming_callback gets plain bytes.
            fetch.decompressor = take_decoder(headers)
        header_callback = opts["header_callback"]
        if header_callback is not None:
            try:
                header_callback(f"{self.version_word} {status} \r\n")
                for name, value in headers.get_all():
                    header_callback(f"{name}: {value}\r\n")
                header_callback("\r\n")
            except Exception as exc:
                self.abandon(fetch, exc)

    def on_body(self, fetch: StreamFetch, data: bytes) -> None:
        """A piece of ``fetch``'s response body arrived."""
        streaming = fetch.opts["streaming_callback"]
        if self.client.will_redirect(fetch):
            return  # the redirect's body is not wanted
        decompressor = fetch.decompressor
        if decompressor is None:
            self._take(fetch, data, streaming)
            return
        decompressor.feed(data)
        self._decode(fetch, decompressor, streaming)

    def _decode(
        self, fetch: StreamFetch, decompressor: Decoder, streaming: Optional[Callable[[bytes], Any]]
    ) -> bool:
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
            if not self._take(fetch, piece, streaming):
                return False

    def _take(
        self, fetch: StreamFetch, piece: bytes, streaming: Optional[Callable[[bytes], Any]]
    ) -> bool:
        """Hand one decoded piece on; False if the fetch was abandoned."""
        fetch.received += len(piece)
        limit = self.client.max_body_size or self.client.max_buffer_size
        if streaming is None and fetch.received > limit:
            # Buffered whole, a body this size (a compression bomb, say)
            # would exhaust memory: refused instead.
            gen_log.warning("Malformed HTTP message from server: decompressed body too large")
            self.abandon(fetch, HTTPStreamClosedError("body too large"))
            return False
        if not piece:
            return True
        if streaming is not None:
            try:
                streaming(piece)
            except Exception as exc:
                self.abandon(fetch, exc)
                return False
        else:
            fetch.chunks.append(piece)
        return True

    def on_end(self, fetch: StreamFetch) -> None:
        """The response is complete: check a coded body ended whole, then deliver."""
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
