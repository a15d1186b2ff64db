"""A close callback the handler chooses itself, as Tornado's handlers may.

``request.connection.set_close_callback(cb)`` replaces the handler's own
close watch (``on_connection_close``), and ``set_close_callback(None)``
silences it. Long-poll, server-sent-event and streaming code of the Tornado
era sets it in ``prepare()`` or in its method before the first wait: that
choice stands, on a server that sets its own watch only after that step.
"""

from __future__ import annotations

import socket
from typing import Any, Optional

from squall.concurrent import Future
from squall.iostream import IOStream
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application, RequestHandler


class _Closing(Application):
    """Resolves ``closed`` when the server has dealt with a lost connection
    (HTTPServerConnectionDelegate.on_close: after the request was told)."""

    closed: Optional[Future[None]] = None

    def on_close(self, server_conn: object) -> None:
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)


class _Choosing(RequestHandler):
    """Chooses a close callback before any wait: the path names where
    ("prepare" or "get") and which ("callback", or "none" to silence it)."""

    def initialize(self, seen: dict[str, Any]) -> None:
        self.seen = seen
        self.where, self.choice = self.request.path.strip("/").split("/")[1:]

    def choose(self) -> None:
        connection = self.request.connection
        assert connection is not None
        if self.choice == "callback":
            connection.set_close_callback(lambda: self.seen["calls"].append("callback"))
        else:
            connection.set_close_callback(None)

    def on_connection_close(self) -> None:
        self.seen["calls"].append("on_connection_close")

    def prepare(self) -> None:
        if self.where == "prepare":
            self.choose()


class _Waits(_Choosing):
    async def get(self, *args: str) -> None:
        if self.where == "get":
            self.choose()
        self.seen["started"].set_result(None)
        await Future()


class _Unfinished(_Choosing):
    # Tornado's old asynchronous style: returns, finished later (never here).
    def get(self, *args: str) -> None:
        if self.where == "get":
            self.choose()
        self._auto_finish = False
        self.seen["started"].set_result(None)


class CloseCallbackTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.seen: dict[str, Any] = {}
        self.app = _Closing(
            [
                (r"/waits/.*", _Waits, {"seen": self.seen}),
                (r"/unfinished/.*", _Unfinished, {"seen": self.seen}),
            ]
        )
        return self.app

    async def lose(self, path: str) -> list[str]:
        """What the handler at ``path`` was told when its client went away."""
        calls: list[str] = []
        self.seen.update(calls=calls, started=Future())
        self.app.closed = Future()
        stream = IOStream(socket.socket())
        await stream.connect(("127.0.0.1", self.get_http_port()))
        await stream.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await self.seen["started"]
        stream.close()
        await self.app.closed
        return calls

    @gen_test
    async def test_a_callback_chosen_before_the_first_wait_is_the_one_called(self) -> None:
        for kind in ("waits", "unfinished"):
            for where in ("prepare", "get"):
                path = f"/{kind}/{where}/callback"
                assert await self.lose(path) == ["callback"], path

    @gen_test
    async def test_none_chosen_before_the_first_wait_silences_the_close(self) -> None:
        for kind in ("waits", "unfinished"):
            for where in ("prepare", "get"):
                path = f"/{kind}/{where}/none"
                assert await self.lose(path) == [], path

    @gen_test
    async def test_without_a_choice_the_handler_hears_the_close(self) -> None:
        # (The third path part names neither: nothing is chosen.)
        for kind in ("waits", "unfinished"):
            path = f"/{kind}/nowhere/nothing"
            assert await self.lose(path) == ["on_connection_close"], path
