"""WebTransport over HTTP/3: sessions with streams and datagrams to a browser.

A `WebTransportHandler` in an `~squall.web.Application` answers
``new WebTransport("https://host/path")`` (an extended CONNECT with
``:protocol webtransport`` over HTTP/3, draft-ietf-webtrans-http3 as
Chromium and Firefox speak it, with HTTP Datagrams, RFC 9297)::

    class Echo(WebTransportHandler):
        def on_datagram(self, data: bytes) -> None:
            self.send_datagram(data)

        async def on_stream(self, stream: WebTransportStream) -> None:
            data = await stream.read_all()
            if stream.writable:
                stream.write(data, end=True)

The server needs ``http3=True``. Over HTTP/1.1 or HTTP/2 the handler
answers 400.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Optional, Union

from squall.httputil._webtransport import (
    DRAFT_FIELD,
    Session,
    SessionLimits,
    SessionRequest,
    SessionStream,
)
from squall.web import RequestHandler

__all__ = ["WebTransportHandler", "WebTransportStream"]

try:
    from squall.httpserver._h3webtransport import WTStream as WebTransportStream
except ImportError:  # no QUIC stack: the handler answers 400 (nothing to serve it over)
    WebTransportStream = Any  # type: ignore[assignment,misc]


class WebTransportHandler(RequestHandler):
    """One WebTransport session per request; override the ``on_*`` methods.

    Limits (class attributes): `max_sessions_per_connection` (a session
    over it is answered 429; one still in `prepare_session` counts),
    `max_streams_per_session` (client streams open at once; one over it is
    refused with WT_BUFFERED_STREAM_REJECTED), `max_datagram_size` (a
    larger datagram in is dropped, out is a `ValueError`),
    `max_stream_buffer` (bytes a stream may hold unread before it is reset).

    The session is asked for by an extended CONNECT, which `connect`
    answers: override `prepare_session` and `open`, not it.
    """

    SUPPORTED_METHODS = (*RequestHandler.SUPPORTED_METHODS, "CONNECT")

    max_sessions_per_connection = 8
    max_streams_per_session = 100
    max_datagram_size = 1200
    max_stream_buffer = 1 << 20

    _session: Optional[Session] = None

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        """Answers the CONNECT: the session's decision is ``httputil``'s
        `SessionRequest`'s (400 off HTTP/3, 429 over the limit, a seat
        held while `prepare_session` runs); this turns it into a response."""
        asked = SessionRequest(
            self.request.connection,
            SessionLimits(
                self.max_sessions_per_connection,
                self.max_streams_per_session,
                self.max_datagram_size,
                self.max_stream_buffer,
            ),
        )
        refusal = asked.refusal
        if refusal is not None:
            self.set_status(refusal[0])
            self.finish(refusal[1])
            return
        try:
            result = self.prepare_session(*args, **kwargs)
            if result is not None:
                await result
            if self._finished:
                return  # refused by prepare_session
            self.clear_header("Content-Type")
            self.set_header(*DRAFT_FIELD)
            self.set_status(200)
            RequestHandler.finish(self)
            self._session = asked.open(self, self.detach())
        finally:
            asked.release()  # refused, failed or cancelled (nothing once open)
        opened = self.open(*args, **kwargs)
        if opened is not None:
            await opened

    # -- for subclasses --------------------------------------------------------------

    def prepare_session(self, *args: Any, **kwargs: Any) -> Optional[Awaitable[None]]:
        """Before the session is accepted: finish a response here to refuse it
        (``self.send_error(403)``, say)."""
        return None

    def open(self, *args: Any, **kwargs: Any) -> Optional[Awaitable[None]]:
        """The session is open (with the URL's path arguments)."""
        return None

    def on_datagram(self, data: bytes) -> Optional[Awaitable[None]]:
        """A datagram from the client."""
        return None

    def on_stream(self, stream: WebTransportStream) -> Optional[Awaitable[None]]:
        """A stream the client opened: ``stream.writable`` is False for a
        unidirectional one."""
        return None

    def on_session_close(self, code: int, reason: str) -> None:
        """The session ended: closed by either side (``code``, ``reason``), or
        its connection lost (0, "")."""

    def on_drain(self) -> None:
        """The server is shutting down: by default the session closes (code 0)."""
        self.close(0, "server shutting down")

    # -- the session -----------------------------------------------------------------

    def send_datagram(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Send a datagram (unreliable, unordered).

        Raises:
            ValueError: over `max_datagram_size`.
            ConnectionResetError: the session is closed.
        """
        self._live().send_datagram(bytes(data))

    def create_stream(self, unidirectional: bool = False) -> SessionStream:
        """Open a stream to the client (bidirectional unless ``unidirectional``)."""
        return self._live().create_stream(unidirectional)

    def close(self, code: int = 0, reason: str = "") -> None:
        """Close the session with an application ``code`` (32 bits) and ``reason``."""
        if not 0 <= code < 1 << 32:
            raise ValueError(f"WebTransport close code {code} is not a 32-bit number")
        if self._session is not None:
            self._session.close(code, reason)

    @property
    def session_closed(self) -> bool:
        """Whether the session has ended (or never opened)."""
        return self._session is None or self._session.closed

    @property
    def dropped_datagrams(self) -> int:
        """Datagrams from the client dropped for being over `max_datagram_size`."""
        return 0 if self._session is None else self._session.dropped_datagrams

    @property
    def dropped_outgoing_datagrams(self) -> int:
        """Datagrams sent here and dropped unsent: more than 64 waited for
        the path (sent faster than it takes them), and the oldest went."""
        return 0 if self._session is None else self._session.dropped_outgoing

    def _live(self) -> Session:
        session = self._session
        if session is None:
            raise ConnectionResetError("WebTransport session not open")
        return session
