"""`request.connection` for one HTTP/3 request stream: `.Exchange` over
``httpserver/_h3protocol``'s `_H3Protocol`.

The exchange contract keeps the response's phase and Content-Length; the
field rules are HTTP/2's (RFC 9114 section 4.2 keeps them: lowercase
names, no connection-specific fields), shared through `squall._h2`'s
`response_fields`. The stream hands its frames to the protocol, which owns
the QUIC stack's QUIC and HTTP/3 (QPACK) state and the UDP transport.
"""

from __future__ import annotations

__all__: list[str] = []

import asyncio
from typing import TYPE_CHECKING, Optional, Protocol, cast

from squall._h2 import response_fields
from squall._quicstack import H3Error
from squall.httpserver._flow import fields_of
from squall.httpserver._h3webtransport import WTSeat
from squall.httpserver._muxstream import _MuxStream
from squall.httputil import HTTPHeaders, HTTPOutputError, ResponseStartLine
from squall.httputil._exchange import GONE, IDLE, closed_future

if TYPE_CHECKING:
    from squall.httpserver._h3websocket import _H3Tunnel
    from squall.httpserver._h3webtransport import WTCarrier


_STATUS = {code: str(code).encode("ascii") for code in range(100, 600)}
# The final heads' (HTTP/3 has no 101 either, RFC 9114 §4.5).
_FINAL_STATUS = {code: str(code).encode("ascii") for code in range(200, 600)}


def _fields(code: int, headers: HTTPHeaders) -> list[tuple[bytes, bytes]]:
    try:
        fields = response_fields(fields_of(headers).items())
    except ValueError as exc:
        raise HTTPOutputError(str(exc)) from None
    status = _STATUS.get(code) or str(code).encode("ascii")
    return [(b":status", status), *fields]


def _final_fields(code: int, headers: HTTPHeaders) -> list[tuple[bytes, bytes]]:
    # `_fields` of a final head: a status HTTP/3 cannot carry is refused
    # as HTTP/1.1 refuses 99 (the handler's 500 page follows).
    status = _FINAL_STATUS.get(code)
    if status is None:
        if not 200 <= code <= 999:
            raise HTTPOutputError(f"invalid final status code {code!r}")
        status = str(code).encode("ascii")
    try:
        fields = response_fields(fields_of(headers).items())
    except ValueError as exc:
        raise HTTPOutputError(str(exc)) from None
    return [(b":status", status), *fields]


class H3Driver(Protocol):
    """What an `_H3Stream`'s own hooks ask of its driver (`_H3Protocol`,
    which ``_h3protocol`` checks has it and `MuxDriver`): its frames go to
    the stack's H3 layer through these. (Not a subclass of `MuxDriver`: a
    class of this interpreted module may not subclass one of the compiled
    ``_muxstream``'s, see speedups/squall_build.py.)"""

    @property
    def transport(self) -> Optional[asyncio.DatagramTransport]:
        """The UDP transport (shared with the endpoint's other connections)."""

    def send_head(
        self, stream: _H3Stream, fields: list[tuple[bytes, bytes]], chunk: bytes
    ) -> asyncio.Future[None]:
        """The response head (and first chunk) on ``stream``; the write's Future."""

    def send_body(self, stream: _H3Stream, chunk: bytes) -> asyncio.Future[None]:
        """DATA on ``stream``; the write's Future."""

    def send_interim(self, stream: _H3Stream, fields: list[tuple[bytes, bytes]]) -> bool:
        """An interim (1xx) head on ``stream``; False if it could not go."""

    def write_ready(self) -> asyncio.Future[None]:
        """The done Future of a write that sent nothing."""

    def flush_soon(self) -> None:
        """Send what is queued, on the next loop turn."""


class _H3Stream(_MuxStream):
    """`request.connection` for one HTTP/3 request stream (a `_MuxStream`)."""

    __slots__ = ()

    PROTOCOL = "HTTP/3"
    INTERNAL_ERROR = H3Error.H3_INTERNAL_ERROR
    CANCEL = H3Error.H3_REQUEST_CANCELLED
    MESSAGE_ERROR = H3Error.H3_MESSAGE_ERROR
    _proto: H3Driver
    tunnel: Optional[_H3Tunnel]

    # -- the emit hooks (Exchange) -----------------------------------------------------

    def _emit_head(
        self, start_line: ResponseStartLine, headers: HTTPHeaders, chunk: bytes
    ) -> asyncio.Future[None]:
        try:
            fields = _final_fields(start_line.code, headers)
        except HTTPOutputError:
            # Nothing went: the head is unwritten again (see _H2Stream's).
            self._phase = IDLE
            self._declared = None
            self._written = 0
            self._bodiless = self._head_request
            raise
        if self._closed:
            return closed_future()
        tunnel = self.tunnel
        if tunnel is not None:
            fields = tunnel.head_fields(start_line.code, fields)
        return self._proto.send_head(self, fields, b"" if self._bodiless else chunk)

    def _emit_body(self, chunk: bytes) -> asyncio.Future[None]:
        if self._closed:
            return closed_future()
        if not chunk or self._bodiless:
            return self._proto.write_ready()
        return self._proto.send_body(self, chunk)

    def _emit_end(self, phase: int) -> None:
        tunnel = self.tunnel
        if self._closed:
            phase = GONE
        elif phase != GONE and tunnel is not None and tunnel.accepted:
            self._handed = False  # the handler is done; the tunnel holds the slot
            self._proto.flush_soon()  # the 2xx is out; the stream stays open for the tunnel
            return
        super()._emit_end(phase)

    def _emit_informational(self, code: int, headers: HTTPHeaders) -> bool:
        fields = _fields(code, headers)
        if self._closed:
            return False
        return self._proto.send_interim(self, fields)

    # -- HTTPConnection ---------------------------------------------------------------

    @property
    def transport(self) -> Optional[asyncio.BaseTransport]:
        """The UDP transport the connection's datagrams go through (shared)."""
        return self._proto.transport

    @property
    def webtransport(self) -> Optional[WTSeat]:
        """What a WebTransport session over this stream is made of (see
        ``_h3webtransport``), for an extended CONNECT with ``:protocol
        webtransport``; else None."""
        if self.protocol != "webtransport":
            return None
        # The driver (_H3Protocol) is also its sessions' carrier.
        return WTSeat(cast("WTCarrier", self._proto), self.stream_id)
