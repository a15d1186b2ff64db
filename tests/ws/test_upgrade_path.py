"""The server's upgrade path: what the 101 carries, who sees it, and which task runs the handler.

The handshake runs ``get()`` at once and writes the 101 without going
through ``set_header`` (a cheaper handshake): these tests pin down what must stay as
in Tornado — the application's own headers and cookies on the 101, the
access log and ``on_finish``, overridden header methods being called, and
``asyncio.current_task()`` inside ``prepare``/``open``.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from typing import Any, Optional

from squall.httpclient import HTTPClientError
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application, RequestHandler
from squall.websocket import WebSocketClientConnection, WebSocketHandler, websocket_connect
from tests._wait import HANG_GUARD


class Seen:
    def __init__(self) -> None:
        self.logged: list[tuple[int, str]] = []
        self.finished: list[str] = []
        self.tasks: dict[str, Optional[asyncio.Task[Any]]] = {}
        self.set_headers: list[str] = []
        self.opened: asyncio.Event = asyncio.Event()
        self.closed: asyncio.Event = asyncio.Event()
        self.refs: list[weakref.ref[Any]] = []


class Decorated(WebSocketHandler):
    def initialize(self, seen: Seen) -> None:
        self.seen = seen

    def set_default_headers(self) -> None:
        self.set_header("X-Frame-Options", "DENY")

    def prepare(self) -> None:
        self.set_cookie("visited", "yes", None, None, "/", httponly=True)

    def open(self, *args: Any) -> None:
        self.seen.tasks["open"] = asyncio.current_task()
        self.seen.opened.set()

    def on_message(self, message: Any) -> None:
        self.write_message(message)

    def on_finish(self) -> None:
        self.seen.finished.append(type(self).__name__)


class AwaitingPrepare(Decorated):
    async def prepare(self) -> None:  # type: ignore[override]
        self.seen.tasks["prepare"] = asyncio.current_task()
        await asyncio.sleep(0)
        self.seen.tasks["prepare after await"] = asyncio.current_task()


class OwnSetHeader(Decorated):
    def set_header(self, name: str, value: Any) -> None:
        seen = getattr(self, "seen", None)  # (set_default_headers runs before initialize)
        if seen is not None:
            seen.set_headers.append(name)
        super().set_header(name, value.upper() if name == "X-Frame-Options" else value)


class AsyncOpen(Decorated):
    async def open(self, *args: Any) -> None:  # type: ignore[override]
        self.seen.tasks["open"] = asyncio.current_task()
        await asyncio.sleep(0)
        self.seen.tasks["open after await"] = asyncio.current_task()
        self.seen.opened.set()


class Watched(WebSocketHandler):
    """Keeps weak references to its connection's objects, to see them freed."""

    def initialize(self, seen: Seen) -> None:
        self.seen = seen

    def open(self, *args: Any) -> None:
        protocol = self.ws_connection
        assert protocol is not None and protocol.stream is not None
        self.seen.refs = [weakref.ref(protocol), weakref.ref(protocol.stream)]
        self.seen.opened.set()

    def on_message(self, message: Any) -> None:
        pass

    def on_close(self) -> None:
        self.seen.closed.set()


class OwnFlush(Decorated):
    # A class that changed a method the 101 goes through: the 101 is sent
    # through it, as any response's head.
    def flush(self, include_footers: bool = False) -> Any:
        self.seen.set_headers.append(f"flush {self.get_status()}")
        return super().flush(include_footers)


class WritesFirst(Decorated):
    # Output buffered before the upgrade: a 101 cannot carry it.
    def prepare(self) -> None:
        self.write("too early")


class ChecksFirst(Decorated):
    # A get() that waits before the handshake (an authentication look-up):
    # a close while it waits must reach the handler.
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        await super().get(*args, **kwargs)


class Plain(RequestHandler):
    async def get(self) -> None:
        self.write("plain")


class UpgradePath(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.seen = Seen()

        def log(handler: RequestHandler) -> None:
            self.seen.logged.append((handler.get_status(), type(handler).__name__))

        args = dict(seen=self.seen)
        return Application(
            [
                ("/decorated", Decorated, args),
                ("/awaiting", AwaitingPrepare, args),
                ("/own", OwnSetHeader, args),
                ("/async_open", AsyncOpen, args),
                ("/watched", Watched, args),
                ("/own_flush", OwnFlush, args),
                ("/writes_first", WritesFirst, args),
                ("/checks_first", ChecksFirst, args),
                ("/plain", Plain),
            ],
            log_function=log,
            compress_response=self.compress,
        )

    compress = False

    async def connect(self, path: str) -> WebSocketClientConnection:
        ws = await websocket_connect(f"ws://127.0.0.1:{self.get_http_port()}{path}")
        self.addCleanup(ws.close)
        return ws

    @gen_test
    async def test_the_101_carries_the_applications_headers_and_cookies(self) -> None:
        ws = await self.connect("/decorated")
        headers = ws.headers
        self.assertEqual(headers["X-Frame-Options"], "DENY")
        self.assertEqual(headers.get_list("Set-Cookie"), ["visited=yes; HttpOnly; Path=/"])
        self.assertEqual(headers["Upgrade"].lower(), "websocket")
        self.assertIn("Sec-Websocket-Accept", headers)
        self.assertIn("Server", headers)
        self.assertIn("Date", headers)
        # RFC 9110 section 15.2: a 1xx answer has no content to describe.
        self.assertNotIn("Content-Type", headers)
        self.assertNotIn("Content-Length", headers)
        await ws.write_message("still open")
        self.assertEqual(await ws.read_message(), "still open")

    @gen_test
    async def test_the_101_is_logged_and_finishes_the_request(self) -> None:
        ws = await self.connect("/decorated")
        await asyncio.wait_for(self.seen.opened.wait(), HANG_GUARD)
        self.assertEqual(self.seen.logged, [(101, "Decorated")])
        self.assertEqual(self.seen.finished, ["Decorated"])
        ws.close()

    @gen_test
    async def test_an_overridden_flush_sends_the_101(self) -> None:
        ws = await self.connect("/own_flush")
        await asyncio.wait_for(self.seen.opened.wait(), HANG_GUARD)
        self.assertEqual(self.seen.set_headers, ["flush 101"])
        self.assertEqual(ws.headers["X-Frame-Options"], "DENY")
        self.assertNotIn("Content-Type", ws.headers)
        self.assertEqual(self.seen.logged, [(101, "OwnFlush")])
        self.assertEqual(self.seen.finished, ["OwnFlush"])

    @gen_test
    async def test_output_written_before_the_upgrade_fails_it(self) -> None:
        with self.assertRaises(HTTPClientError) as caught:
            await self.connect("/writes_first")
        self.assertEqual(caught.exception.code, 500)
        self.assertFalse(self.seen.opened.is_set())
        self.assertEqual(self.seen.logged, [(500, "WritesFirst")])

    @gen_test
    async def test_an_overridden_set_header_sees_the_handshake_headers(self) -> None:
        ws = await self.connect("/own")
        self.assertEqual(ws.headers["X-Frame-Options"], "DENY".upper())
        for name in ("Upgrade", "Connection", "Sec-WebSocket-Accept"):
            self.assertIn(name, self.seen.set_headers)

    @gen_test
    async def test_a_plain_open_runs_outside_a_task(self) -> None:
        # A handler whose prepare() and open() are plain functions opens
        # without a Task, on every Python, as its plain on_message() runs
        # (RequestHandler._step_at_once).
        await self.connect("/decorated")
        await asyncio.wait_for(self.seen.opened.wait(), HANG_GUARD)
        self.assertIn("open", self.seen.tasks)
        self.assertIsNone(self.seen.tasks["open"])

    @gen_test
    async def test_an_awaiting_prepare_and_open_share_one_task(self) -> None:
        await self.connect("/awaiting")
        await asyncio.wait_for(self.seen.opened.wait(), HANG_GUARD)
        tasks = self.seen.tasks
        self.assertIsInstance(tasks["prepare"], asyncio.Task)
        # The task current before the first await goes on after it, and
        # runs get() and open(), as a Task made for the handler would.
        self.assertIs(tasks["prepare"], tasks["prepare after await"])
        self.assertIs(tasks["prepare"], tasks["open"])

    @gen_test
    async def test_a_coroutine_open_keeps_its_task_across_awaits(self) -> None:
        ws = await self.connect("/async_open")
        await asyncio.wait_for(self.seen.opened.wait(), HANG_GUARD)
        self.assertIsInstance(self.seen.tasks["open"], asyncio.Task)
        self.assertIs(self.seen.tasks["open"], self.seen.tasks["open after await"])
        await ws.write_message("after open")
        self.assertEqual(await ws.read_message(), "after open")

    @gen_test
    async def test_only_a_get_that_waits_before_the_upgrade_is_watched_after_its_first_step(
        self,
    ) -> None:
        # Where a Task's first step runs on the loop's turn (3.11), a
        # handler that waits has its close watch set by a loop callback once
        # that step returns. The stock get() waits only after its 101 (on
        # an open() that waits), when the WebSocket protocol reports the
        # close: no callback. A subclass's get() that waits first has one.
        from tests._first_step import first_step_watches

        with first_step_watches() as calls:
            for path in ("/decorated", "/async_open", "/checks_first"):
                self.seen.opened.clear()
                ws = await self.connect(path)
                await asyncio.wait_for(self.seen.opened.wait(), HANG_GUARD)
                await ws.write_message(path)
                self.assertEqual(await ws.read_message(), path)
        self.assertEqual(calls, ["/checks_first"] if sys.version_info < (3, 12) else [])

    @gen_test
    async def test_other_handlers_keep_their_task_per_request(self) -> None:
        response = await self.http_client.fetch(self.get_url("/plain"))
        self.assertEqual(response.body, b"plain")
        self.assertEqual(self.seen.logged, [(200, "Plain")])

    @gen_test
    async def test_a_closed_connection_is_freed_without_the_cycle_collector(self) -> None:
        # A reconnect storm makes and drops many: objects left in reference
        # cycles would wait for (and lengthen) the cycle collector's passes.
        gc.collect()
        gc.disable()
        try:
            ws = await self.connect("/watched")
            await asyncio.wait_for(self.seen.opened.wait(), HANG_GUARD)
            refs = self.seen.refs
            self.assertEqual(len(refs), 2)
            ws.close()
            await asyncio.wait_for(self.seen.closed.wait(), HANG_GUARD)
            # The server's side ends over a few loop turns (the close frame,
            # then the transport's connection_lost).
            for _ in range(200):
                if all(ref() is None for ref in refs):
                    break
                await asyncio.sleep(0)
            self.assertEqual([ref() for ref in refs], [None, None])
        finally:
            gc.enable()


class UpgradePathCompressed(UpgradePath):
    """The same with compress_response: the application's output transforms
    see the 101 as any response's head (the 101 takes the general path)."""

    compress = True
