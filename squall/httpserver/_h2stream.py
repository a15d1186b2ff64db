"""`request.connection` for one HTTP/2 stream: `.HTTPConnection` over
``httpserver/_h2protocol``'s `_H2Protocol`.

The exchange contract (`.Exchange`) keeps the response's phase and its
Content-Length; HTTP/2's rules on the head's fields and on trailers are
`squall._h2`'s (`response_fields`, `trailer_fields`). The stream hands the
frames to its protocol, which owns the `squall._h2` core, the flow-control
windows and the transport.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
from typing import TYPE_CHECKING, Optional, Protocol

from squall._compiled import mypyc_attr
from squall._h2 import (
    ErrorCode,
    H2Connection,
    LocalProtocolError,
    response_fields,
)
from squall.httpserver._flow import fields_of
from squall.httpserver._muxstream import MuxDriver, _MuxStream
from squall.httputil import (
    HTTPHeaders,
    HTTPOutputError,
    ResponseStartLine,
)
from squall.httputil._exchange import HEAD, IDLE

if TYPE_CHECKING:
    from squall.httpserver._h2protocol import _H2Protocol
    from squall.httpserver._h2websocket import _H2Tunnel


class H2Driver(MuxDriver, Protocol):
    """What an `_H2Stream` asks of its driver (`_H2Protocol`, which
    ``_h2protocol`` checks has it) besides `MuxDriver`: the core that
    encodes its heads, and the writes that go out by the flow-control
    windows. The stream names the concrete class on its locals (compiled,
    its calls are then native); this declares what it may call."""

    transport: Optional[asyncio.Transport]
    #: The connection's `squall._h2` core.
    core: H2Connection

    def queue_head(self, stream: _H2Stream) -> asyncio.Future[None]:
        """The head held on ``stream`` (``held_head``) goes out soon, with
        the response's end if that follows at once; the write's Future."""

    def send_body(self, stream: _H2Stream, chunk: bytes) -> asyncio.Future[None]:
        """DATA on ``stream`` (after its held head); the write's Future."""

    def write_ready(self, stream: _H2Stream) -> asyncio.Future[None]:
        """The Future of a write that sent nothing: done, or once ``stream``'s
        output is out."""

    def flush_soon(self) -> None:
        """Write what the core has queued, at the end of this round."""


# Marked although nothing subclasses it: compiled, an unmarked class that
# inherits __init__ from a marked one (_MuxStream) runs it twice when Python
# code calls it (once in its tp_new, once in the base's tp_init), and the
# stream took two slots of its connection, which then never went idle. The
# mark gives it its own tp_new and tp_init, as an __init__ of its own would,
# without a Python call more per stream in the pure build
# (speedups/squall_build.py, _inherited_inits).
@mypyc_attr(allow_interpreted_subclasses=True)
class _H2Stream(_MuxStream):
    """`request.connection` for one HTTP/2 stream.

    The exchange contract's phase, Content-Length accounting and close
    callback are `.Exchange`'s; the stream writes the emit hooks. ``_closed``
    is the stream's own state (reset, timed out or the connection lost), which
    may come after the response is done.
    """

    __slots__ = ()

    PROTOCOL = "HTTP/2"
    INTERNAL_ERROR = ErrorCode.INTERNAL_ERROR
    CANCEL = ErrorCode.CANCEL
    MESSAGE_ERROR = ErrorCode.PROTOCOL_ERROR
    # ``_proto`` is an `_H2Protocol`, ``tunnel`` an `_H2Tunnel` or None:
    # named on locals, since a compiled subclass keeps its base's field types.

    # -- the emit hooks (Exchange) -----------------------------------------------------

    def _emit_head(
        self, start_line: ResponseStartLine, headers: HTTPHeaders, chunk: bytes
    ) -> asyncio.Future[None]:
        p: _H2Protocol = self._proto
        tunnel: Optional[_H2Tunnel] = self.tunnel
        try:
            if tunnel is None:
                # Straight from the headers' dict to the header block (the
                # same bytes as encode_head of response_fields).
                block = p.core.encode_fields(start_line[1], fields_of(headers))
            else:
                code = start_line.code
                fields = response_fields(fields_of(headers).items())
                block = p.core.encode_head(code, tunnel.head_fields(code, fields))
        except ValueError as exc:
            # Nothing went: the head is unwritten again, as HTTP/1.1 leaves
            # a head it refuses, so that the handler's error page (a 500)
            # can follow.
            self._phase = IDLE
            self._declared = None
            self._written = 0
            self._bodiless = self._head_request
            raise HTTPOutputError(str(exc)) from None
        if self._bodiless:
            # (HEAD, 204, 304: what was written is counted, not sent.)
            chunk = b""
            self.trailers_out = None
        self.held_head = (block, chunk)
        return p.queue_head(self)

    def _emit_body(self, chunk: bytes) -> asyncio.Future[None]:
        p: _H2Protocol = self._proto
        if not chunk or self._bodiless:
            return p.write_ready(self)
        return p.send_body(self, chunk)  # (after the held head, if any)

    def _emit_informational(self, code: int, headers: HTTPHeaders) -> bool:
        if self._closed:
            return False
        try:
            fields = response_fields(fields_of(headers).items())
        except ValueError as exc:
            raise HTTPOutputError(str(exc)) from None
        p: _H2Protocol = self._proto
        try:
            p.core.send_informational(self.stream_id, code, fields)
        except LocalProtocolError:
            return False
        p.flush_soon()
        return True

    # -- HTTPConnection ---------------------------------------------------------------

    def write_rendered_head(
        self, head: bytes, framing: int, chunk: bytes
    ) -> Optional[asyncio.Future[None]]:
        """Write a response head rendered for HTTP/1.1 (the ASGI driver's),
        with the first body chunk, as HTTP/2 carries it.

        See `.HTTPConnection.write_rendered_head`. Its lines are encoded
        straight from the bytes (`squall._h2.H2Connection.encode_rendered_head`),
        not made into `.HTTPHeaders` first. Declined (None, nothing done)
        once a head went, for a HEAD request, an extended CONNECT, a chunk
        longer than ``framing``, and heads the core does not take as they are.
        """
        if self._phase != IDLE or self._bodiless or self.tunnel is not None or framing < len(chunk):
            return None
        p: _H2Protocol = self._proto
        block = p.core.encode_rendered_head(head)
        if block is None:
            return None
        self._declared = framing
        self._phase = HEAD
        self._written = len(chunk)
        self.held_head = (block, chunk)
        return p.queue_head(self)

    @property
    def transport(self) -> Optional[asyncio.BaseTransport]:
        """The asyncio transport of the connection (shared by all its streams)."""
        p: _H2Protocol = self._proto
        return p.transport
