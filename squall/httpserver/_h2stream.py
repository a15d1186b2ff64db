"""`request.connection` for one HTTP/2 stream: `.HTTPConnection` over
``httpserver/_h2protocol``'s `_H2Protocol`.

The stream checks what the application writes (the head's fields, the
Content-Length it declared, trailers) and hands the frames to its protocol,
which owns the `squall._h2` core, the flow-control windows and the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Union

from squall._h2 import Data, ErrorCode
from squall.httpserver._protocol import _closed_future
from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPOutputError,
    RequestStartLine,
    ResponseStartLine,
)

if TYPE_CHECKING:
    from squall.httpserver._h2protocol import _H2Protocol

__all__ = ["_H2Stream"]

_CONNECTION_FIELDS = frozenset(
    ("Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade")
)
# RFC 9110 §6.5.1: fields that framing, routing or the head depend on may
# not be trailers; with HTTP/2's own (RFC 9113 §8.2.2).
_TRAILER_FORBIDDEN = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "content-length",
        "content-type",
        "content-encoding",
        "host",
        "trailer",
        "authorization",
        "set-cookie",
    )
)


class _H2Stream(HTTPConnection):
    """`request.connection` for one HTTP/2 stream."""

    __slots__ = (
        "_proto",
        "stream_id",
        "context",
        "_delegate",
        "close_callback_attribute",
        "_close_callback",
        "_headers_written",
        "_finished",
        "_read_done",
        "_closed",
        "_counted",
        "_waiters",
        "_inbox",
        "_blocked",
        "_head",
        "_declared",
        "_written",
        "_bodiless",
        "_received",
        "_max_body",
        "_body_timeout",
        "_started",
        "_last_active",
        "_expect_continue",
        "trailers",
        "_trailers_out",
    )

    def __init__(self, proto: _H2Protocol, stream_id: int, now: float) -> None:
        self._proto = proto
        self.stream_id = stream_id
        self.context = proto.context
        self._delegate: Optional[HTTPMessageDelegate] = None
        # Without HTTPConnection's close_callback_attribute capability: a
        # reset from the application's own call (close(), a refused write)
        # reports the close at once. A slot, which the interpreter reads
        # faster than the class attribute.
        self.close_callback_attribute = False
        self._close_callback: Optional[Callable[[], None]] = None
        self._headers_written = False
        self._finished = False
        self._read_done = False
        # Reset, timed out or the connection lost: nothing more goes out.
        self._closed = False
        # Counted against max_concurrent_streams until the response ends.
        self._counted = True
        self._waiters: Optional[list[asyncio.Future[None]]] = None
        # Body pieces (and the end, as None) held while the delegate is busy.
        self._inbox: Optional[list[Optional[Data]]] = None
        self._blocked = False
        # A response head (and first chunk) not yet handed to h2: sent with
        # the end of the stream when finish() follows at once.
        self._head: Optional[tuple[int, list[tuple[bytes, bytes]], bytes]] = None
        self._declared: Optional[int] = None
        self._written = 0
        self._bodiless = False
        self._received = 0
        self._max_body = proto._max_body
        self._body_timeout: Optional[float] = None
        self._started = now
        self._last_active = now
        self._expect_continue = False
        #: The request's trailer section, once the client sent one after
        #: the body (HTTP/2 only; None otherwise).
        self.trailers: Optional[HTTPHeaders] = None
        self._trailers_out: Optional[list[tuple[bytes, bytes]]] = None

    # -- HTTPConnection ---------------------------------------------------------------

    def write_headers(
        self,
        start_line: Union[RequestStartLine, ResponseStartLine],
        headers: HTTPHeaders,
        chunk: Optional[bytes] = None,
    ) -> asyncio.Future[None]:
        """Write the response head, and optionally the first piece of the body.

        Raises:
            HTTPOutputError: a response already started, or invalid fields.
        """
        p = self._proto
        if self._closed:
            return _closed_future(p._loop)
        if self._headers_written:
            raise HTTPOutputError("the response head was already written")
        assert isinstance(start_line, ResponseStartLine)
        self._headers_written = True
        fields: list[tuple[bytes, bytes]] = []
        try:
            for name, values in headers._as_list.items():
                if name in _CONNECTION_FIELDS:
                    continue  # RFC 9113 §8.2.2: HTTP/2 frames the message itself
                lname = name.lower().encode("ascii")
                for value in values:
                    # As HTTP/1.1 sends them: one byte per character.
                    try:
                        fields.append((lname, value.encode("latin-1")))
                    except UnicodeEncodeError:
                        fields.append((lname, value.encode("utf-8")))
        except (TypeError, AttributeError, UnicodeEncodeError):
            raise HTTPOutputError("header fields must be (str, str) pairs") from None
        lengths = headers._as_list.get("Content-Length")
        if lengths is not None:
            value = lengths[0]
            # RFC 9110 §8.6: digits only (int() would also take "+1" or "1_0").
            if len(lengths) != 1 or not (value.isascii() and value.isdigit()):
                p._reset(self, ErrorCode.INTERNAL_ERROR)
                raise HTTPOutputError(f"invalid Content-Length {value!r}")
            self._declared = int(value)
        code = start_line.code
        self._bodiless = self._bodiless or code in (204, 304) or 100 <= code < 200
        chunk = chunk or b""
        if chunk:
            self._count(len(chunk))
        self._head = (code, fields, chunk)
        return p._queue_head(self)

    def _count(self, n: int) -> None:
        self._written += n
        declared = self._declared
        if declared is not None and self._written > declared:
            self._proto._reset(self, ErrorCode.INTERNAL_ERROR)
            raise HTTPOutputError("Tried to write more data than Content-Length")

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Write a piece of the body.

        Raises:
            HTTPOutputError: no head written yet, or more than the Content-Length.
        """
        p = self._proto
        if self._closed:
            return _closed_future(p._loop)
        if not self._headers_written:
            raise HTTPOutputError("write_headers must come first on an HTTP/2 stream")
        if not chunk:
            return p._ready(self)
        self._count(len(chunk))
        if self._bodiless:
            return p._ready(self)
        if self._head is not None:
            p._send_head(self, False)
        return p._send_body(self, chunk)

    def finish(self) -> None:
        """End the response.

        Raises:
            HTTPOutputError: fewer bytes written than the Content-Length.
        """
        if self._finished:
            return
        self._finished = True
        p = self._proto
        if self._closed:
            p._release(self)
            return
        if not self._headers_written:
            # Nothing was written: the stream cannot carry a response.
            p._reset(self, ErrorCode.INTERNAL_ERROR)
            p._release(self)
            return
        declared = self._declared
        if declared is not None and self._written < declared and not self._bodiless:
            p._reset(self, ErrorCode.INTERNAL_ERROR)
            p._release(self)
            raise HTTPOutputError(
                f"Tried to write {declared - self._written} bytes less than Content-Length"
            )
        p._end_response(self)

    def set_trailers(self, trailers: HTTPHeaders) -> None:
        """Send ``trailers`` as the response's trailer section, after the body.

        They go out when the response finishes (`finish`), in a HEADERS
        frame that ends the stream (RFC 9113 §8.1). HTTP/2 only: an
        HTTP/1.1 connection has no such method. A handler sends them with
        ``self.request.connection.set_trailers(HTTPHeaders({...}))``
        before ``finish()``.

        Raises:
            HTTPOutputError: the response already finished, or a field may
                not be a trailer (RFC 9110 §6.5.1). `.HTTPHeaders` itself
                refuses CR, LF and NUL.
        """
        if self._finished:
            raise HTTPOutputError("the response already finished")
        fields: list[tuple[bytes, bytes]] = []
        for name, value in trailers.get_all():
            lname = name.lower()
            # Our own fields, and those of RFC 9110 §6.5.1 (framing, routing).
            if lname[:1] == ":" or lname in _TRAILER_FORBIDDEN:
                raise HTTPOutputError(f"{name!r} may not be a trailer field")
            try:
                raw = value.encode("latin-1")
            except UnicodeEncodeError:
                raw = value.encode("utf-8")
            fields.append((lname.encode("ascii"), raw))
        self._trailers_out = fields

    def set_close_callback(self, callback: Optional[Callable[[], None]]) -> None:
        """Call ``callback`` if the stream closes before the response is finished."""
        self._close_callback = callback

    def set_body_timeout(self, timeout: float) -> None:
        """Limit the time to receive this request's body (seconds)."""
        self._body_timeout = timeout

    def set_max_body_size(self, max_body_size: int) -> None:
        """Limit the size of this request's body (bytes)."""
        self._max_body = max_body_size

    @property
    def transport(self) -> Optional[asyncio.BaseTransport]:
        """The asyncio transport of the connection (shared by all its streams)."""
        return self._proto.transport

    def detach(self) -> Any:
        """Not possible on an HTTP/2 stream (other streams share the connection).

        Raises:
            HTTPOutputError: always.
        """
        raise HTTPOutputError("an HTTP/2 stream cannot be detached")

    def close(self) -> None:
        """Reset the stream (the connection stays open for other streams)."""
        self._proto._reset(self, ErrorCode.CANCEL)
