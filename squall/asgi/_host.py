"""What the ASGI server offers the cycles it starts: `CycleHost`.

`ASGIServerDelegate` (``_server``) makes an ``_http`` cycle per request,
which hands a WebSocket upgrade to ``_websocket`` and a WebTransport
session to ``_webtransport``; all three read the server's settings and
keep their tasks in its set. Those fields and the few calls on them are
declared here, below the cycles, so that a cycle names its server without
importing the module that imports it.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the ASGI server

import asyncio
from collections.abc import Coroutine
from typing import Any, Optional

from squall.asgi._lifespan import Lifespan
from squall.asgi._scope import ProxyView, _http_scope
from squall.asgi._types import ASGIApp
from squall.httputil import HTTPConnection, RequestStartLine
from squall.httputil._webtransport import SessionLimits


class CycleHost:
    """The server's side of every cycle: its settings (set by
    `ASGIServerDelegate.__init__`, which documents them), the tasks of the
    requests in progress, and the calls the cycles make."""

    app: ASGIApp
    root_path: str
    lifespan: Lifespan
    ws_max_message_size: int
    ws_ping_interval: Optional[float]
    ws_per_message_deflate: bool
    wt_max_sessions: int
    wt_max_streams: int
    wt_max_datagram_size: int
    wt_max_stream_buffer: int
    #: Tasks of the requests being served (see `wait_requests`).
    tasks: set[asyncio.Task[None]]
    #: A mounted application (`ASGIHandler`) sees the full path: the
    #: prefix is part of it.
    prefix_in_path: bool
    #: A done future of the loop last served: what a request's send()
    #: returns when done (see `ready_future`).
    ready: Optional[asyncio.Future[None]]
    # Proxy headers read while the scope is built (see _scope.ProxyView);
    # `squall run` sets it, instead of putting a delegate in front.
    _proxy: Optional[ProxyView]

    def ready_future(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A done future of ``loop``: what a request's send() returns when done."""
        ready = self.ready
        if ready is None or ready.get_loop() is not loop:
            ready = self.ready = loop.create_future()
            ready.set_result(None)
        return ready

    @property
    def wt_limits(self) -> SessionLimits:
        """The ``wt_`` limits, as a WebTransport session takes them."""
        return SessionLimits(
            self.wt_max_sessions,
            self.wt_max_streams,
            self.wt_max_datagram_size,
            self.wt_max_stream_buffer,
        )

    def http_scope(
        self, start_line: RequestStartLine, fields: dict[str, list[str]], conn: HTTPConnection
    ) -> dict[str, Any]:
        """The ``http`` scope of a request (built by `_scope._http_scope`)."""
        root, state = self.root_path, self.lifespan.state
        return _http_scope(start_line, fields, conn, root, self.prefix_in_path, state, self._proxy)

    def run_tracked(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` in a Task kept in ``self.tasks``; the coroutine calls
        `untrack_current` as it ends (cheaper than a done callback, which the
        loop would schedule as one more handle per request)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        return task

    def untrack_current(self) -> None:
        """Called by a request's coroutine as it ends: its task is done with."""
        self.tasks.discard(asyncio.current_task())
