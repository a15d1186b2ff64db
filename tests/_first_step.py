"""A handler that resets its own stream in its first step, then waits to hear of it.

A RequestHandler sets a multiplexed stream's close callback as a plain
attribute, and only once its first step has returned (see
`HTTPConnection.close_callback_attribute`): a reset from that step's own
calls must still reach ``on_connection_close``, a loop turn later. The
HTTP/2, HTTP/3 and ``squall run`` tests route to this one handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from squall.web import RequestHandler


class ResetsItself(RequestHandler):
    """``GET``: records the connection's class and capability, calls its
    ``close()``, and waits for ``on_connection_close``. ``events`` gets
    ``"<class> <capability>"``, ``"reset"``, ``"closed"``, ``"woken"``."""

    def initialize(self, events: list[str]) -> None:
        self.events = events

    async def get(self) -> None:
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection = self.request.connection
        assert connection is not None
        self.events.append(f"{type(connection).__name__} {connection.close_callback_attribute}")
        connection.close()
        self.events.append("reset")
        await self.gone
        self.events.append("woken")

    def on_connection_close(self) -> None:
        self.events.append("closed")
        self.gone.set_result(None)


@contextmanager
def first_step_watches() -> Iterator[list[str]]:
    """Records the request path of each handler whose close watch a loop
    callback sets once its Task's first step has returned (3.11, or a
    loop with a task factory: see ``RequestHandler._watch_first_wait``)."""
    paths: list[str] = []
    original = RequestHandler._watch_after_step

    def counted(handler: Any, task: Any) -> None:
        paths.append(handler.request.path)
        original(handler, task)

    with mock.patch.object(RequestHandler, "_watch_after_step", counted):
        yield paths
