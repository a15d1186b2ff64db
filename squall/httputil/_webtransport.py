"""The seam between a WebTransport session and whoever accepts it.

An extended CONNECT with ``:protocol webtransport`` over HTTP/3 asks for a
session. Two owners answer it: `squall.webtransport.WebTransportHandler`
(an Application's) and the ASGI server's ``webtransport`` scope. What the
answer is made of is decided here, once, for both: `SessionRequest` is the
accept path (400 off HTTP/3, 429 over the limit, a seat held while the
application decides, the draft's header on the 2xx), and each owner only
translates it into its own way of answering (a handler's response, ASGI
messages).

The HTTP/3 driver (``httpserver/_h3webtransport``) offers the session as
``request.connection.webtransport``, a `SessionSeat`; the session and its
streams are `Session` and `SessionStream` to their owner, which is a
`SessionOwner` to them. These are declarations (public names, checked by
mypy), so neither side reads the other's private names.
"""

from __future__ import annotations

__all__ = [
    "DRAFT_FIELD",
    "Session",
    "SessionLimits",
    "SessionOwner",
    "SessionRequest",
    "SessionSeat",
    "SessionStream",
]

import asyncio
from collections.abc import Awaitable
from typing import Any, NamedTuple, Optional, Protocol

#: Chromium looks in the 2xx for the draft it speaks.
DRAFT_FIELD = ("sec-webtransport-http3-draft", "draft02")


class SessionLimits(NamedTuple):
    """A session's bounds (`WebTransportHandler`'s class attributes, the
    ASGI server's ``wt_`` arguments; the defaults are both's)."""

    #: Sessions at once per HTTP/3 connection (one more is answered 429).
    sessions: int = 8
    #: Streams the client may hold open at once (one more is refused).
    streams: int = 100
    #: The largest datagram either way.
    datagram_size: int = 1200
    #: Bytes a stream may hold unread before it is reset.
    stream_buffer: int = 1 << 20


class SessionStream(Protocol):
    """One stream of a session, as the session gives it to its owner
    (``squall.webtransport.WebTransportStream`` documents it)."""

    stream_id: int
    readable: bool
    writable: bool

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes``; b"" at its end; ConnectionResetError once reset."""

    async def read_all(self, limit: int = 1 << 20) -> bytes:
        """Everything until the end (ValueError past ``limit`` bytes)."""

    def write(self, data: bytes, end: bool = False) -> asyncio.Future[None]:
        """Queue ``data`` (and the FIN); ConnectionResetError once closed. The
        Future waits while the client has not acknowledged enough, and fails
        (an OSError) if the stream is reset meanwhile (the write timeout)."""

    def end(self) -> asyncio.Future[None]:
        """FIN (the Future is `write`'s)."""

    def reset(self, code: int = 0) -> None:
        """Abort both directions."""

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""


class Session(Protocol):
    """The driver's side of one accepted session."""

    @property
    def closed(self) -> bool:
        """Whether the session has ended."""

    @property
    def dropped_datagrams(self) -> int:
        """Datagrams in dropped for being over the size limit."""

    @property
    def dropped_outgoing(self) -> int:
        """Datagrams out dropped unsent (the oldest, past the queue's bound)."""

    def send_datagram(self, data: bytes) -> None:
        """ValueError over the size limit; ConnectionResetError once closed."""

    def create_stream(self, unidirectional: bool = False) -> SessionStream:
        """A stream to the client."""

    def close(self, code: int = 0, reason: str = "") -> None:
        """CLOSE_WEBTRANSPORT_SESSION with ``code`` and ``reason``."""


class SessionOwner(Protocol):
    """What a session calls on whoever accepted it. A call that returns an
    awaitable runs in a task the session holds, and ends with the session."""

    def on_stream(self, stream: Any) -> Optional[Awaitable[None]]:
        """The client opened ``stream`` (a `SessionStream`)."""

    def on_datagram(self, data: bytes) -> Optional[Awaitable[None]]:
        """A datagram from the client (within the size limit)."""

    def on_drain(self) -> None:
        """The server drains."""

    def on_session_close(self, code: int, reason: str) -> None:
        """The session ended: closed by either side, or its connection lost (0, "")."""


class SessionSeat(Protocol):
    """``request.connection.webtransport``: the connection's sessions, as
    the request that asks for one sees them."""

    def reserve(self, limit: int) -> bool:
        """Take a seat for this request's session if fewer than ``limit`` are
        taken (sessions open, and those being decided); False if not."""

    def release(self) -> None:
        """Give the seat back (the session was not opened); nothing if none is held."""

    def open(self, owner: SessionOwner, tunnel: Any, limits: SessionLimits) -> Session:
        """The session over ``tunnel`` (the CONNECT stream ``detach()``ed after
        its 2xx), in the seat this request holds."""


class SessionRequest:
    """One extended CONNECT asking for a session, and what it is answered.

    Made when the request arrives: `refusal` is the answer if the session
    cannot be had (status, text), else a seat is held for it until `open`
    or `release` (call it in a ``finally``: a refusal, a failure and a
    cancellation each give the seat back; once opened it does nothing).
    """

    __slots__ = ("_seat", "limits", "refusal", "_held")

    def __init__(self, connection: Any, limits: SessionLimits) -> None:
        seat: Optional[SessionSeat] = getattr(connection, "webtransport", None)
        self._seat = seat
        self.limits = limits
        self._held = False
        #: (status, text) to answer instead of a session; None: it may be had.
        self.refusal: Optional[tuple[int, str]] = None
        if seat is None:
            # Over HTTP/1.1 or HTTP/2, or without a QUIC stack.
            self.refusal = (400, "WebTransport needs an extended CONNECT over HTTP/3.")
        elif not seat.reserve(limits.sessions):
            self.refusal = (429, f"More than {limits.sessions} WebTransport sessions.")
        else:
            self._held = True

    def open(self, owner: SessionOwner, tunnel: Any) -> Session:
        """The session, in the seat held (after its 2xx, with `DRAFT_FIELD`,
        and ``detach()``)."""
        seat = self._seat
        if seat is None or not self._held:
            raise RuntimeError("no WebTransport seat is held for this request")
        self._held = False
        return seat.open(owner, tunnel, self.limits)

    def release(self) -> None:
        """The session will not be opened: its seat goes back (once)."""
        seat = self._seat
        if seat is not None and self._held:
            self._held = False
            seat.release()
