"""What the ASGI server's WebSocket and WebTransport cycles share: `SessionCycle`.

Both answer a request that asks for more than a response (an HTTP/1.1
upgrade, an extended CONNECT) and arrived through the HTTP delegate seam
like any other. Both start the same way, in `SessionCycle`'s constructor:
the subclass checks the request (`SessionCycle._take`); one it refuses is
answered there with a plain-text response, and the application never sees
it; otherwise the application runs as a task the server tracks, its first
message the ``connect``. Each holds what the client sent in an inbox until
the application calls ``receive()``, accepts once the request was read,
and decides, when the application returns, raises or is cancelled, what
the client is told: that decision, and the messages, are the subclass's.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the ASGI server

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, Optional

from squall.asgi._types import ASGIProtocolError, ClientDisconnected, Message, Scope, resolve
from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    RequestStartLine,
    ResponseStartLine,
    responses,
)
from squall.log import app_log

if TYPE_CHECKING:
    from squall.asgi._host import CycleHost

# The states every cycle has; a subclass numbers its own from LAST_STATE + 1.
CONNECTING = 0  # the application has not answered the request yet
OPEN = 1
CLOSED = 2
LAST_STATE = CLOSED

# Messages held for an application that is not receiving; past this many,
# the client's side stops reading (see each cycle's module).
INBOX_HIGH_WATER = 16


def header_pairs(message: Message, what: str) -> list[tuple[str, str]]:
    """The ``headers`` of an application's message, checked, as str pairs.

    Raises:
        ASGIProtocolError: not byte pairs, or a name or value no HTTP
            field may have.
    """
    pairs = []
    try:
        for name, value in message.get("headers", ()):
            pairs.append((bytes(name).decode("latin-1"), bytes(value).decode("latin-1")))
    except (TypeError, ValueError):
        raise ASGIProtocolError(
            f"{what} 'headers' must be an iterable of [name, value] byte pairs"
        ) from None
    for name, value in pairs:
        if not name or ":" in name or any(c in value for c in "\r\n\0"):
            raise ASGIProtocolError(f"invalid header {name!r}: {value!r}")
    return pairs


class SessionCycle:
    """One request the application takes over (see the module).

    The constructor starts every cycle: what all of them hold, then the
    subclass's own state and its check of the request (`_take`), then the
    refusal or the application's task.

    Args:
        server: the ASGI server (its settings, its tracked tasks).
        conn: the request's connection (or stream).
        start_line: the request's start line.
        headers: the request's header fields.
    """

    #: What the application accepts, for "went away before the ... was accepted".
    _ACCEPTED: ClassVar[str]
    #: Logged when the application returned without answering the request.
    _UNANSWERED: ClassVar[str]
    #: The type of the application's first message.
    _CONNECT: ClassVar[str]

    def __init__(
        self,
        server: CycleHost,
        conn: HTTPConnection,
        start_line: RequestStartLine,
        headers: HTTPHeaders,
    ) -> None:
        self._server = server
        self._conn = conn
        # An extended CONNECT (HTTP/2, 3) is a stream of its own: a response
        # instead of what was asked ends the stream only. HTTP/1.1's upgrade
        # is answered in HTTP/1.1, and such a response ends the connection.
        self._tunnel = start_line.method == "CONNECT"
        self._version = start_line.version if self._tunnel else "HTTP/1.1"
        self._loop = asyncio.get_running_loop()
        self._inbox: deque[Message] = deque()
        # The application's receive() waiting for the inbox.
        self._waiter: Optional[asyncio.Future[None]] = None
        # The client's side waiting for room in the inbox.
        self._space: Optional[asyncio.Future[None]] = None
        self._request_done: Optional[asyncio.Future[None]] = self._loop.create_future()
        self._state = CONNECTING
        scope = self._take(start_line, headers)
        if scope is None:
            return
        set_close = getattr(conn, "set_close_callback", None)
        if set_close is not None:
            set_close(self.on_connection_close)
        self._inbox.append({"type": self._CONNECT})
        server.run_tracked(self._run_app(scope))

    # -- the HTTP driver's side ------------------------------------------------------

    def request_finished(self) -> None:
        done = self._request_done
        self._request_done = None
        resolve(done)

    # -- what the subclass calls -----------------------------------------------------

    def _wake(self) -> None:
        """Wakes the application's receive(): the inbox has a message."""
        waiter = self._waiter
        self._waiter = None
        resolve(waiter)

    async def _request_read(self) -> None:
        """Returns once the request is read, to accept it.

        Raises:
            ClientDisconnected: the client went away meanwhile.
        """
        done = self._request_done
        if done is not None:
            await done
        if self._state != CONNECTING:
            raise ClientDisconnected(
                f"the client went away before the {self._ACCEPTED} was accepted"
            )

    def _refuse(self, status: int, text: str, fields: Iterable[tuple[str, str]] = ()) -> None:
        """Answers the request with ``status``, ``fields`` and ``text`` (plain
        text) instead of what was asked: the application never sees it."""
        self._state = CLOSED
        headers = HTTPHeaders({"Content-Type": "text/plain; charset=utf-8"})
        for name, value in fields:
            headers.add(name, value)
        self._respond(status, headers, text.encode("utf-8"))

    def _respond(self, status: int, headers: HTTPHeaders, body: bytes) -> None:
        """A whole response (``headers`` and its Content-Length) instead of
        what was asked; the stream, or the connection, ends after it."""
        headers["Content-Length"] = str(len(body))
        if not self._tunnel:
            headers["Connection"] = "close"
        line = ResponseStartLine(self._version, status, responses.get(status, "Unknown"))
        try:
            self._conn.write_headers(line, headers, body)
            self._conn.finish()
        except Exception:
            self._drop_connection()

    def _drop_connection(self) -> None:
        """Closes the connection (or the stream) under the request."""
        close = getattr(self._conn, "close", None)
        if close is not None:
            close()

    async def _run_app(self, scope: Scope) -> None:
        """The application's task (the server tracks it)."""
        try:
            await self._server.app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._app_cancelled()
            raise
        except Exception:
            app_log.error("Exception in ASGI application", exc_info=True)
            self._app_done(failed=True)
            return
        finally:
            self._server.untrack_current()
        if self._state == CONNECTING:
            app_log.error(self._UNANSWERED)
        self._app_done(failed=False)

    # -- the subclass's ----------------------------------------------------------------

    def _take(self, start_line: RequestStartLine, headers: HTTPHeaders) -> Optional[Scope]:
        """Sets up the subclass's own state and checks the request (called
        once, by the constructor): the application's scope, or None when
        the request was refused (`_refuse`)."""
        raise NotImplementedError

    def on_connection_close(self) -> None:
        """The connection (or the stream) closed; registered once the
        application has the request."""
        raise NotImplementedError

    async def receive(self) -> Message:
        """The application's next message."""
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        """Carries out one message from the application."""
        raise NotImplementedError

    def _app_cancelled(self) -> None:
        """The application's task was cancelled (the server is stopping)."""
        raise NotImplementedError

    def _app_done(self, failed: bool) -> None:
        """The application returned, or raised (``failed``): the client is
        told, whatever state the request or the session was left in."""
        raise NotImplementedError
