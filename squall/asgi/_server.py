"""Serving an ASGI application on `~squall.httpserver.HTTPServer`: `ASGIServerDelegate`.

The delegate sits behind `~squall.httpserver.HTTPServer` like an `Application` does: the
server's driver calls ``start_request`` per request and feeds the returned
`_HTTPCycle` (see ``_http``), which runs the application; a WebSocket
upgrade is handed on to ``_websocket``, a WebTransport session (an HTTP/3
extended CONNECT) to ``_webtransport``; the lifespan protocol is in
``_lifespan``. What the cycles read of the delegate is ``_host``'s
`CycleHost`, which it is.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Optional

from squall.asgi._host import CycleHost
from squall.asgi._http import _HTTPCycle
from squall.asgi._lifespan import Lifespan, LifespanMode
from squall.asgi._types import ASGIApp
from squall.httputil import HTTPConnection, HTTPMessageDelegate, HTTPServerConnectionDelegate

__all__ = ["ASGIServerDelegate"]


class ASGIServerDelegate(CycleHost, HTTPServerConnectionDelegate):
    """Serves an ASGI 3.0 application on `~squall.httpserver.HTTPServer`: ``HTTPServer(ASGIServerDelegate(app))``.

    HTTP requests get an ``http`` scope, WebSocket upgrades a ``websocket``
    scope, WebTransport sessions (over HTTP/3) a ``webtransport`` scope; call `~squall.asgi.ASGIServerDelegate.startup` before serving and `~squall.asgi.ASGIServerDelegate.shutdown` after to run the
    application's lifespan protocol (its ``state`` is copied into each scope).

    Args:
        app: the ASGI application (an ``async def app(scope, receive, send)``).
        root_path: the path prefix a proxy in front removed; it is put back in
            front of ``path`` and given as ``root_path``.
        lifespan: ``"auto"`` (run it; an application that fails before
            answering startup is taken not to support it), ``"on"`` (a
            failure is an error) or ``"off"``.
        ws_max_message_size: the largest WebSocket message accepted (bytes).
        ws_ping_interval: seconds between WebSocket pings (None: none).
        ws_per_message_deflate: accept permessage-deflate when offered.
        wt_max_sessions: WebTransport sessions at once per HTTP/3 connection
            (one more is answered 429).
        wt_max_streams: streams the client may hold open at once per
            session (one more is refused with WT_BUFFERED_STREAM_REJECTED).
        wt_max_datagram_size: the largest datagram either way (a larger one
            in is dropped; out, ``webtransport.datagram.send`` raises).
        wt_max_stream_buffer: bytes a stream may hold that the application
            has not received; beyond that the stream is reset.

    The ``wt_`` limits are ``squall.webtransport.WebTransportHandler``'s, with
    its defaults.
    """

    def __init__(
        self,
        app: ASGIApp,
        root_path: str = "",
        lifespan: LifespanMode = "auto",
        ws_max_message_size: int = 16 * 1024 * 1024,
        ws_ping_interval: Optional[float] = None,
        ws_per_message_deflate: bool = True,
        wt_max_sessions: int = 8,
        wt_max_streams: int = 100,
        wt_max_datagram_size: int = 1200,
        wt_max_stream_buffer: int = 1 << 20,
    ) -> None:
        self.app = app
        self.root_path = root_path.rstrip("/")
        self.lifespan = Lifespan(app, mode=lifespan)
        self.ws_max_message_size = ws_max_message_size
        self.ws_ping_interval = ws_ping_interval
        self.ws_per_message_deflate = ws_per_message_deflate
        self.wt_max_sessions = wt_max_sessions
        self.wt_max_streams = wt_max_streams
        self.wt_max_datagram_size = wt_max_datagram_size
        self.wt_max_stream_buffer = wt_max_stream_buffer
        # (What each field is: `CycleHost`, which declares them.)
        self.tasks = set()
        self.prefix_in_path = False
        self.ready = None
        self._proxy = None
        if type(self).start_request is ASGIServerDelegate.start_request:
            # What the driver calls per request, as a C callable: the cycle
            # is made without this class's Python frame around it.
            self.start_request = functools.partial(_HTTPCycle, self)  # type: ignore[method-assign]

    @property
    def state(self) -> dict[str, Any]:
        """The lifespan state, shallow-copied into every request's scope."""
        return self.lifespan.state

    async def startup(self) -> None:
        """Run the application's lifespan startup.

        Raises:
            LifespanFailure: the application reported ``lifespan.startup.failed``
                (or failed under ``lifespan="on"``).
        """
        await self.lifespan.startup()

    async def shutdown(self) -> None:
        """Run the application's lifespan shutdown.

        Raises:
            LifespanFailure: the application reported ``lifespan.shutdown.failed``.
        """
        await self.lifespan.shutdown()

    async def wait_requests(self, timeout: Optional[float] = None) -> bool:
        """Wait until the requests in progress are done; True if they all are."""
        # A task cancelled before it ever ran did not remove itself.
        self.tasks = {task for task in self.tasks if not task.done()}
        if not self.tasks:
            return True
        done, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
        return not pending

    def start_request(
        self, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        """Return the delegate that runs the application for one request."""
        return _HTTPCycle(self, server_conn, request_conn)
