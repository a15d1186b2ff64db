"""End to end: WebSocketHandler behind the HTTP server, websocket_connect as the client."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import struct
from typing import Any, Optional

from squall import gen
from squall._ws import build_frame
from squall.concurrent import Future
from squall.httpclient import HTTPClientError, HTTPRequest
from squall.iostream import IOStream
from squall.locks import Event
from squall.log import app_log
from squall.testing import (
    AsyncHTTPSTestCase,
    AsyncHTTPTestCase,
    ExpectLog,
    gen_test,
)
from squall.web import Application, RequestHandler
from squall.websocket import (
    WebSocketClientConnection,
    WebSocketClosedError,
    WebSocketError,
    WebSocketHandler,
    websocket_connect,
)
from tests._wait import HANG_GUARD, until

UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n\r\n"
)


async def read_close(stream: IOStream) -> tuple[int, str]:
    head = await stream.read_bytes(2)
    assert head[0] == 0x88, head
    payload = await stream.read_bytes(head[1])
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


class Recorder:
    """What the server-side handlers saw, for the tests to wait on."""

    def __init__(self) -> None:
        self.closed: Future[tuple[Optional[int], Optional[str]]] = Future()
        self.opened: Future[WebSocketHandler] = Future()
        self.events: list[Any] = []
        self.reported: Future[BaseException] = Future()


class Base(WebSocketHandler):
    def initialize(self, rec: Recorder, options: Optional[dict[str, Any]] = None) -> None:
        self.rec = rec
        self.options = options

    def get_compression_options(self) -> Optional[dict[str, Any]]:
        return self.options

    def open(self, *args: Any) -> None:
        if not self.rec.opened.done():
            self.rec.opened.set_result(self)

    def on_close(self) -> None:
        if not self.rec.closed.done():
            self.rec.closed.set_result((self.close_code, self.close_reason))


class Echo(Base):
    async def on_message(self, message: Any) -> None:
        try:
            await self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass


class Ordered(Base):
    """Open and on_message are coroutines; messages must wait and stay in order."""

    def initialize(self, rec: Recorder, options: Optional[dict[str, Any]] = None) -> None:
        super().initialize(rec, options)
        self.opened_fully = False
        self.busy = False

    async def open(self, *args: Any) -> None:
        await gen.sleep(0.01)
        self.opened_fully = True

    async def on_message(self, message: Any) -> None:
        assert self.opened_fully and not self.busy
        self.busy = True
        await asyncio.sleep(0)
        self.busy = False
        self.write_message(message)


class Pinged(Base):
    def on_message(self, message: Any) -> None:
        self.ping(message)

    def on_ping(self, data: bytes) -> None:
        self.write_message({"ping": data.decode()})

    def on_pong(self, data: bytes) -> None:
        self.write_message({"pong": data.decode()})


class Closer(Base):
    def open(self, *args: Any) -> None:
        self.close(4000, "go away")


class CloseOnMessage(Base):
    """Closes on the first message; records what the handler looks like just after."""

    def on_message(self, message: Any) -> None:
        self.close(4001, "done")
        self.rec.events.append(("after close", self.ws_connection))
        try:
            self.write_message("late")
        except WebSocketClosedError:
            self.rec.events.append("write refused")
        self.close()  # a second close does nothing
        self.rec.events.append(("second close", self.ws_connection))
        self.send_error(500)  # nor does an error now: no HTTP response to send
        self.rec.events.append("send_error ignored")


class Failing(Base):
    def on_message(self, message: Any) -> None:
        raise ZeroDivisionError("boom")


class Protocols(Base):
    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        self.rec.events.append(list(subprotocols))
        return "two" if "two" in subprotocols else None

    def open(self, *args: Any) -> None:
        self.write_message(f"proto={self.selected_subprotocol}")


class BadProtocol(Base):
    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        return "never-offered"


class HttpOnly(Base):
    def open(self, *args: Any) -> None:
        for method, arg in (("write", "x"), ("set_status", 500), ("finish", None), ("flush", None)):
            try:
                getattr(self, method)(arg) if arg is not None else getattr(self, method)()
            except RuntimeError:
                self.rec.events.append(method)
        self.set_nodelay(True)
        self.write_message(",".join(self.rec.events))


class PathArgs(Base):
    def open(self, *args: Any) -> None:
        self.write_message("/".join(args))


class FailingOpen(Base):
    async def open(self, *args: Any) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("cannot open")


class ReportsErrors(Base):
    """Routes its errors through log_exception, as applications override it to report them."""

    def initialize(self, rec: Recorder, options: Optional[dict[str, Any]] = None) -> None:
        super().initialize(rec, options)
        self.rec.reported = Future()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        self.rec.events.append(("log_exception", typ.__name__, str(value)))
        if not self.rec.reported.done():
            self.rec.reported.set_result(value)


class FailingOnClose(ReportsErrors):
    def on_close(self) -> None:
        super().on_close()
        raise LookupError("cannot close")


class FailingOpenReported(ReportsErrors):
    def open(self, *args: Any) -> None:
        raise RuntimeError("cannot open")

    def on_close(self) -> None:
        self.rec.events.append("on_close")
        super().on_close()


class ErrorAfterUpgrade(Base):
    def on_message(self, message: Any) -> None:
        self.rec.events.append((self.ping_interval, self.ping_timeout, self.max_message_size))
        self.send_error(500)


class Plain(RequestHandler):
    def get(self) -> None:
        self.write("plain")


class Limited(Echo):
    @property
    def max_message_size(self) -> int:
        return 100


class FlushSeen(RequestHandler):
    """A mixin after WebSocketHandler in the MRO: its flush is reached through super()."""

    flushes: list[int] = []

    def flush(self, include_footers: bool = False) -> Future[None]:
        self.flushes.append(self.get_status())
        return super().flush(include_footers)

    headers_set: list[str] = []

    def set_header(self, name: str, value: Any) -> None:
        self.headers_set.append(name)
        super().set_header(name, value)


class SeesItsConnection(Echo):
    """Records ``ws_connection`` where Tornado's handlers may read it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A subclass's own __init__ (allowed, if rare) still gets the field.
        super().__init__(*args, **kwargs)
        self.rec.events.append(("__init__", self.ws_connection))

    def initialize(self, rec: Recorder, options: Optional[dict[str, Any]] = None) -> None:
        super().initialize(rec, options)
        rec.events.append(("initialize", self.ws_connection))

    def prepare(self) -> None:
        self.rec.events.append(("prepare", self.ws_connection))

    def open(self) -> None:
        self.rec.events.append(("open", type(self.ws_connection).__name__))
        self.rec.opened.set_result(self)

    def on_close(self) -> None:
        self.rec.events.append(("on_close", self.ws_connection))
        self.rec.closed.set_result((self.close_code, self.close_reason))


class MixedIn(Echo, FlushSeen):
    def prepare(self) -> None:
        self.set_header("X-Mixed-In", "yes")


_opened_as: contextvars.ContextVar[str] = contextvars.ContextVar("opened_as", default="unset")


class ContextFromOpen(Base):
    """A coroutine open() sets a context variable; its callbacks read it."""

    async def open(self, *args: Any) -> None:
        _opened_as.set("opener")
        await gen.moment
        super().open(*args)

    def on_message(self, message: Any) -> None:
        self.rec.events.append(("on_message", _opened_as.get()))
        self.write_message(message)

    def on_close(self) -> None:
        self.rec.events.append(("on_close", _opened_as.get()))
        super().on_close()


class AnyFlag(Base):
    """Sends with ``binary`` given as Tornado takes it: any value, by its truth."""

    FLAGS: dict[str, Any] = {"one": 1, "zero": 0, "none": None, "text": "", "list": [0]}

    def open(self, *args: Any) -> None:
        super().open()
        self.write_message(b"opened", binary=1)

    async def on_message(self, message: Any) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        flag = self.FLAGS[text]
        await self.write_message(text, binary=flag)
        await self.write_message({"flag": text}, binary=flag)


class WebSocketEndToEnd(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.rec = Recorder()
        args = dict(rec=self.rec)
        return Application(
            [
                ("/echo", Echo, args),
                ("/deflate", Echo, dict(rec=self.rec, options={})),
                ("/ordered", Ordered, args),
                ("/pinged", Pinged, args),
                ("/closer", Closer, args),
                ("/close_on_message", CloseOnMessage, args),
                ("/failing", Failing, args),
                ("/protocols", Protocols, args),
                ("/bad_protocol", BadProtocol, args),
                ("/http_only", HttpOnly, args),
                ("/args/(.*)/(.*)", PathArgs, args),
                ("/limited", Limited, args),
                ("/plain", Plain),
                ("/failing_open", FailingOpen, args),
                ("/failing_open_reported", FailingOpenReported, args),
                ("/failing_on_close", FailingOnClose, args),
                ("/error_after_upgrade", ErrorAfterUpgrade, args),
                ("/mixed_in", MixedIn, args),
                ("/sees_connection", SeesItsConnection, args),
                ("/context_from_open", ContextFromOpen, args),
                ("/any_flag", AnyFlag, args),
                ("/any_flag_deflate", AnyFlag, dict(rec=self.rec, options={})),
            ]
        )

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.get_http_port()}{path}"

    async def connect(self, path: str, **kwargs: Any) -> WebSocketClientConnection:
        ws = await websocket_connect(self.url(path), **kwargs)
        self.addCleanup(ws.close)
        return ws

    @gen_test
    async def test_echo_text_binary_and_json(self) -> None:
        ws = await self.connect("/echo")
        await ws.write_message("h\u00e9llo")
        self.assertEqual(await ws.read_message(), "h\u00e9llo")
        ws.write_message(b"\x00\xff", binary=True)
        self.assertEqual(await ws.read_message(), b"\x00\xff")
        ws.write_message({"a": 1})
        self.assertEqual(await ws.read_message(), '{"a": 1}')
        big = "x" * 200_000
        ws.write_message(big)
        self.assertEqual(await ws.read_message(), big)
        self.assertIsNone(ws.selected_subprotocol)
        self.assertEqual(ws.headers["Upgrade"].lower(), "websocket")

    @gen_test
    async def test_binary_is_any_value_taken_by_its_truth(self) -> None:
        # Tornado's write_message takes the flag's truth (1, None, a list...);
        # the compiled build's frame functions once refused all but a bool
        # (TypeError "bool object expected"), on the server's paths and the
        # client's, uncompressed and compressed.
        for path in ("/any_flag", "/any_flag_deflate"):
            ws = await self.connect(path)
            assert await ws.read_message() == b"opened"
            for text, flag in AnyFlag.FLAGS.items():
                await ws.write_message(text, binary=flag)
                body = text.encode() if flag else text
                assert await ws.read_message() == body, (path, text)
                data = b'{"flag": "%s"}' % text.encode()
                assert await ws.read_message() == (data if flag else data.decode()), (path, text)
            ws.close()

    @gen_test
    async def test_callbacks_see_what_a_coroutine_open_set_in_the_context(self) -> None:
        # As where Tornado awaits open() in the request's Task and reads
        # frames in that Task after it.
        ws = await self.connect("/context_from_open")
        await ws.write_message("m")
        assert await ws.read_message() == "m"
        ws.close()
        await self.rec.closed
        assert self.rec.events == [("on_message", "opener"), ("on_close", "opener")]

    @gen_test
    async def test_ws_connection_is_none_until_the_upgrade_and_after_the_close(self) -> None:
        # Set on each handler when it is made (not a class default, which
        # CPython 3.12+ would not specialize reads of), as Tornado's is.
        ws = await self.connect("/sees_connection")
        handler = await self.rec.opened
        assert "ws_connection" in vars(handler)
        assert not hasattr(WebSocketHandler, "ws_connection")
        await ws.write_message("echoed")
        assert await ws.read_message() == "echoed"
        ws.close()
        await self.rec.closed
        assert self.rec.events == [
            ("initialize", None),
            ("__init__", None),
            ("prepare", None),
            ("open", "WebSocketProtocol13"),
            ("on_close", None),
        ]
        assert handler.ws_connection is None

    @gen_test
    async def test_a_mixin_after_the_handler_class_still_sees_the_101_flushed(self) -> None:
        # WebSocketHandler.flush calls RequestHandler's by name only when
        # RequestHandler comes next in the class's MRO.
        assert Echo._base_next and not MixedIn._base_next
        FlushSeen.flushes.clear()
        ws = await self.connect("/mixed_in")
        await ws.write_message("hi")
        self.assertEqual(await ws.read_message(), "hi")
        self.assertEqual(FlushSeen.flushes, [101])

    @gen_test
    async def test_a_mixin_after_the_handler_class_has_the_http_methods_before_the_upgrade(
        self,
    ) -> None:
        # WebSocketHandler's HTTP methods pass on to the next class in the
        # MRO (here the mixin) until the upgrade, then refuse.
        FlushSeen.headers_set.clear()
        ws = await self.connect("/mixed_in")
        self.assertEqual(ws.headers["X-Mixed-In"], "yes")
        self.assertEqual(FlushSeen.headers_set, ["X-Mixed-In"])
        handler = await self.rec.opened
        with self.assertRaises(RuntimeError):
            handler.set_header("X-Late", "no")
        self.assertEqual(FlushSeen.headers_set, ["X-Mixed-In"])

    @gen_test
    async def test_reading_resumes_once_the_transport_drains(self) -> None:
        # The server pauses a connection's reading while its transport is
        # over the high-water mark. A detached stream whose read was pending
        # all along must be read again once it drains: Autobahn's 9.* cases
        # saw their close after a 4 MiB echo go unanswered.
        ws = await self.connect("/echo")
        await ws.write_message("first")
        self.assertEqual(await ws.read_message(), "first")
        (proto,) = self.http_server._detached
        proto.pause_writing()
        proto.resume_writing()
        await ws.write_message("second")
        self.assertEqual(await asyncio.wait_for(ws.read_message(), HANG_GUARD), "second")

    @gen_test
    async def test_close_after_a_large_echo_is_answered(self) -> None:
        ws = await self.connect("/echo")
        big = bytes(range(256)) * (4 << 12)  # 4 MiB: more than the transport takes at once
        ws.write_message(big, binary=True)
        self.assertEqual(await ws.read_message(), big)
        ws.close(1000)
        self.assertIsNone(await asyncio.wait_for(ws.read_message(), HANG_GUARD))
        self.assertEqual(ws.close_code, 1000)
        self.assertEqual((await self.rec.closed)[0], 1000)

    @gen_test
    async def test_client_close_reaches_on_close(self) -> None:
        ws = await self.connect("/echo")
        ws.close(1001, "leaving")
        self.assertEqual(await self.rec.closed, (1001, "leaving"))
        self.assertIsNone(await ws.read_message())
        self.assertEqual(ws.close_code, 1001)
        with self.assertRaises(WebSocketClosedError):
            ws.write_message("late")
        with self.assertRaises(WebSocketClosedError):
            ws.ping(b"late")

    @gen_test
    async def test_server_close_with_code_and_reason(self) -> None:
        ws = await self.connect("/closer")
        self.assertIsNone(await ws.read_message())
        self.assertEqual((ws.close_code, ws.close_reason), (4000, "go away"))
        # The client echoed the code; the handler sees it.
        self.assertEqual((await self.rec.closed)[0], 4000)
        self.assertIsNone(await ws.read_message())

    @gen_test
    async def test_a_close_that_cannot_be_framed_is_refused_and_nothing_sent(self) -> None:
        # A reason over 123 bytes of UTF-8 or a code past 16 bits: the
        # caller hears it (as on Tornado), the peer gets no close without
        # its code, and a proper close still works after.
        ws = await self.connect("/echo")
        handler = await self.rec.opened
        for code, reason, message in (
            (4002, "x" * 124, "at most 123 bytes"),
            (4002, "\u00e9" * 62, "at most 123 bytes"),
            (99999, None, "fits in 16 bits"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                handler.close(code, reason)
        ws.write_message("still open")
        self.assertEqual(await ws.read_message(), "still open")
        handler.close(4003, "y" * 123)
        self.assertIsNone(await ws.read_message())
        self.assertEqual((ws.close_code, ws.close_reason), (4003, "y" * 123))

    @gen_test
    async def test_ws_connection_is_none_once_close_has_run(self) -> None:
        # As Tornado leaves it (streamlit's server tests check it): close()
        # drops the handler's connection at once, the closing handshake goes
        # on, and on_close still runs with the code the client echoed.
        ws = await self.connect("/close_on_message")
        ws.write_message("bye")
        self.assertIsNone(await ws.read_message())
        self.assertEqual((ws.close_code, ws.close_reason), (4001, "done"))
        self.assertEqual((await self.rec.closed)[0], 4001)
        self.assertEqual(
            self.rec.events,
            [
                ("after close", None),
                "write refused",
                ("second close", None),
                "send_error ignored",
            ],
        )

    @gen_test
    async def test_coroutines_run_in_order_after_open(self) -> None:
        ws = await self.connect("/ordered")
        for i in range(5):
            ws.write_message(str(i))
        self.assertEqual([await ws.read_message() for _ in range(5)], ["0", "1", "2", "3", "4"])

    @gen_test
    async def test_pings_both_ways(self) -> None:
        ws = await self.connect("/pinged")
        ws.ping("from client")
        self.assertEqual(await ws.read_message(), '{"ping": "from client"}')
        ws.write_message("from server")
        # The client answers the server's ping; the handler sees the pong.
        self.assertEqual(await ws.read_message(), '{"pong": "from server"}')
        with self.assertRaises(ValueError):
            ws.ping(b"x" * 126)

    @gen_test
    async def test_error_in_on_message_closes_and_logs(self) -> None:
        ws = await self.connect("/failing")
        with ExpectLog(app_log, "Uncaught exception"):
            ws.write_message("x")
            self.assertIsNone(await ws.read_message())
        await self.rec.closed

    @gen_test
    async def test_error_in_open_closes_and_logs(self) -> None:
        with ExpectLog(app_log, "Uncaught exception"):
            ws = await self.connect("/failing_open")
            self.assertIsNone(await ws.read_message())

    @gen_test
    async def test_a_connection_whose_open_failed_gets_no_on_close(self) -> None:
        # As on Tornado: the connection never opened, so on_close() has
        # nothing to undo (a handler that registers itself at the end of
        # open() and unregisters in on_close() would fail there).
        ws = await self.connect("/failing_open_reported")
        self.assertIsNone(await ws.read_message())
        reported = await self.rec.reported
        self.assertEqual(str(reported), "cannot open")
        # A whole other connection later (its handshake and an echo), the
        # first handler still has not been told of a close.
        other = await self.connect("/echo")
        other.write_message("later")
        self.assertEqual(await other.read_message(), "later")
        self.assertNotIn("on_close", self.rec.events)
        self.assertFalse(self.rec.closed.done())

    @gen_test
    async def test_an_error_in_on_close_goes_to_log_exception(self) -> None:
        # Tornado's on_close() runs in the request's coroutine, whose errors
        # reach the handler's log_exception (error reporters override it).
        for close_from in ("client", "server"):
            self.rec.closed = Future()
            ws = await self.connect("/failing_on_close")
            if close_from == "client":
                ws.close(1000)
            else:
                ws.protocol.stream.close()
            reported = await self.rec.reported
            self.assertIsInstance(reported, LookupError)
            self.assertEqual(str(reported), "cannot close")
            self.assertEqual(
                self.rec.closed.result(), (1000, None) if close_from == "client" else (None, None)
            )

    @gen_test
    async def test_send_error_after_upgrade_aborts(self) -> None:
        ws = await self.connect("/error_after_upgrade")
        ws.write_message("x")
        self.assertIsNone(await ws.read_message())
        await self.rec.closed
        self.assertEqual(self.rec.events, [(None, None, 10 * 1024 * 1024)])

    @gen_test
    async def test_subprotocols(self) -> None:
        ws = await self.connect("/protocols", subprotocols=["one", "two"])
        self.assertEqual(ws.selected_subprotocol, "two")
        self.assertEqual(await ws.read_message(), "proto=two")
        ws2 = await self.connect("/protocols")
        self.assertEqual(await ws2.read_message(), "proto=None")
        self.assertEqual(self.rec.events, [["one", "two"], []])

    @gen_test
    async def test_selecting_an_unoffered_subprotocol_is_a_server_error(self) -> None:
        with ExpectLog(app_log, "Uncaught exception"):
            with self.assertRaises(HTTPClientError) as info:
                await websocket_connect(self.url("/bad_protocol"), subprotocols=["a"])
        self.assertEqual(info.exception.code, 500)

    @gen_test
    async def test_http_methods_are_disabled_after_the_upgrade(self) -> None:
        ws = await self.connect("/http_only")
        self.assertEqual(await ws.read_message(), "write,set_status,finish,flush")

    @gen_test
    async def test_path_arguments_reach_open(self) -> None:
        ws = await self.connect("/args/a/b")
        self.assertEqual(await ws.read_message(), "a/b")

    @gen_test
    async def test_compression_negotiated_and_counted(self) -> None:
        ws = await self.connect("/deflate", compression_options={})
        self.assertIn("permessage-deflate", ws.headers["Sec-WebSocket-Extensions"])
        message = "compress me " * 100
        for _ in range(3):
            ws.write_message(message)
            self.assertEqual(await ws.read_message(), message)
        protocol = ws.protocol
        self.assertEqual(protocol._message_bytes_out, 3 * len(message))
        self.assertEqual(protocol._message_bytes_in, 3 * len(message))
        self.assertLess(protocol._wire_bytes_out, len(message))
        self.assertEqual(protocol._wire_bytes_out, protocol._wire_bytes_in + 12)

    @gen_test
    async def test_compression_needs_both_sides(self) -> None:
        ws = await self.connect("/echo", compression_options={})
        self.assertNotIn("Sec-WebSocket-Extensions", ws.headers)
        ws.write_message("abc")
        self.assertEqual(await ws.read_message(), "abc")
        self.assertEqual(ws.protocol._wire_bytes_in, 5)

    @gen_test
    async def test_message_too_big_closes_with_1009(self) -> None:
        ws = await self.connect("/limited")
        ws.write_message("a" * 100)
        self.assertEqual(await ws.read_message(), "a" * 100)
        ws.write_message("a" * 101)
        self.assertIsNone(await ws.read_message())
        self.assertEqual((ws.close_code, ws.close_reason), (1009, "message too big"))

    @gen_test
    async def test_client_limit_closes_with_1009(self) -> None:
        ws = await self.connect("/echo", max_message_size=10)
        ws.write_message("x" * 11)
        self.assertIsNone(await ws.read_message())
        self.assertEqual(await self.rec.closed, (1009, "message too big"))

    @gen_test
    async def test_on_message_callback_and_callback(self) -> None:
        received: list[Any] = []
        done = Event()

        def on_message(message: Any) -> None:
            received.append(message)
            if message is None:
                done.set()

        connected: Future[Any] = Future()
        # Deprecated as in Tornado, in Tornado's words.
        with self.assertWarnsRegex(
            DeprecationWarning, "^The callback argument to websocket_connect"
        ):
            websocket_connect(
                self.url("/echo"), callback=connected.set_result, on_message_callback=on_message
            )
        ws = (await connected).result()
        ws.write_message("one")
        ws.write_message("two")
        await gen.sleep(0)
        ws.close()
        await done.wait()
        self.assertEqual(received[-1], None)
        self.assertEqual(received[:-1], ["one", "two"][: len(received) - 1])

    @gen_test
    async def test_read_message_callback(self) -> None:
        ws = await self.connect("/echo")
        ws.write_message("hi")
        result: Future[Any] = Future()
        ws.read_message(result.set_result)
        self.assertEqual((await result).result(), "hi")

    @gen_test
    async def test_request_headers_and_origin(self) -> None:
        port = self.get_http_port()
        request = HTTPRequest(
            self.url("/echo"), headers={"Origin": f"http://127.0.0.1:{port}/page"}
        )
        ws = await websocket_connect(request)
        self.addCleanup(ws.close)
        ws.write_message("ok")
        self.assertEqual(await ws.read_message(), "ok")
        for origin, site in (
            ("http://evil.example", None),
            ("127.0.0.1", None),
            ("http://x", "cross-site"),
        ):
            headers = {"Origin": origin}
            if site:
                headers["Sec-Fetch-Site"] = site
            with self.assertRaises(HTTPClientError) as info:
                await websocket_connect(HTTPRequest(self.url("/echo"), headers=headers))
            self.assertEqual(info.exception.code, 403)
        request = HTTPRequest(
            self.url("/echo"),
            headers={"Origin": "http://proxy.example", "Sec-Fetch-Site": "same-origin"},
        )
        ws = await websocket_connect(request)
        ws.close()

    @gen_test
    async def test_connect_errors(self) -> None:
        with self.assertRaises(HTTPClientError) as info:
            await websocket_connect(self.url("/missing"))
        self.assertEqual(info.exception.code, 404)
        with self.assertRaises(WebSocketError):
            await websocket_connect(self.url("/plain"))
        with self.assertRaises(ValueError):
            await websocket_connect("ftp://127.0.0.1/")
        # A port held bound but not listening refuses connections, and no
        # other process can take it meanwhile (as it could a closed one).
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            port = held.getsockname()[1]
            with self.assertRaises(OSError):
                await websocket_connect(f"ws://127.0.0.1:{port}/", connect_timeout=5)

    def test_plain_http_requests_are_refused(self) -> None:
        self.assertEqual(self.fetch("/echo").code, 400)
        headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
        self.assertEqual(self.fetch("/echo", headers={**headers, "Connection": "close"}).code, 400)
        self.assertEqual(self.fetch("/echo", headers=headers).code, 400)
        response = self.fetch("/echo", headers={**headers, "Sec-WebSocket-Version": "8"})
        self.assertEqual(response.code, 426)
        self.assertEqual(response.headers["Sec-WebSocket-Version"], "13")
        self.assertEqual(self.fetch("/echo", method="POST", body=b"").code, 405)

    async def raw(self, path: str) -> tuple[IOStream, bytes]:
        stream = IOStream(socket.socket())
        self.addCleanup(stream.close)
        await stream.connect(("127.0.0.1", self.get_http_port()))
        await stream.write(UPGRADE.format(path=path).encode())
        head = await stream.read_until(b"\r\n\r\n")
        return stream, head

    @gen_test
    async def test_protocol_violation_closes_with_1002(self) -> None:
        stream, head = await self.raw("/echo")
        self.assertTrue(head.startswith(b"HTTP/1.1 101"))
        # An unmasked frame from a client.
        await stream.write(build_frame(1, b"hello"))
        self.assertEqual(await read_close(stream), (1002, "frame not masked"))
        await stream.read_until_close()

    @gen_test
    async def test_bad_utf8_closes_with_1007(self) -> None:
        stream, _ = await self.raw("/echo")
        await stream.write(build_frame(1, b"\xff", mask_key=b"abcd"))
        self.assertEqual(await read_close(stream), (1007, "invalid UTF-8 in a text message"))

    @gen_test
    async def test_frames_sent_with_the_upgrade_are_read(self) -> None:
        stream = IOStream(socket.socket())
        self.addCleanup(stream.close)
        await stream.connect(("127.0.0.1", self.get_http_port()))
        frames = build_frame(1, b"early", mask_key=b"abcd") + build_frame(
            8, b"\x03\xe8", mask_key=b"abcd"
        )
        await stream.write(UPGRADE.format(path="/echo").encode() + frames)
        await stream.read_until(b"\r\n\r\n")
        rest = await stream.read_until_close()
        self.assertEqual(rest, b"\x81\x05early\x88\x02\x03\xe8")
        # A code and no reason text: the reason is None, as on Tornado.
        self.assertEqual(await self.rec.closed, (1000, None))


class SlowReader(WebSocketHandler):
    """An on_message that awaits (a database write, a broker publish)."""

    got: list[str] = []
    closed = 0

    async def on_message(self, message: Any) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        SlowReader.got.append(message)

    def on_close(self) -> None:
        SlowReader.closed += 1


class MessagesBeforeTheEnd(AsyncHTTPTestCase):
    # A client sends several messages and leaves (a close frame, or just
    # the end of the connection) while the handler's coroutine on_message
    # is still at the first: each message is still handed over, as on
    # Tornado. The coroutine was cancelled and the rest dropped.
    def get_app(self) -> Application:
        return Application([("/slow", SlowReader)])

    async def leave_after(self, ending: bytes) -> None:
        SlowReader.got, SlowReader.closed = [], 0
        stream = IOStream(socket.socket())
        self.addCleanup(stream.close)
        await stream.connect(("127.0.0.1", self.get_http_port()))
        await stream.write(UPGRADE.format(path="/slow").encode())
        await stream.read_until(b"\r\n\r\n")
        frames = b"".join(build_frame(1, b"m%d" % i, mask_key=b"abcd") for i in range(8))
        await stream.write(frames + ending)
        stream.close()
        await until(lambda: SlowReader.closed == 1 and len(SlowReader.got) == 8)
        self.assertEqual(SlowReader.got, [f"m{i}" for i in range(8)])

    @gen_test
    async def test_with_a_close_frame(self) -> None:
        await self.leave_after(build_frame(8, b"\x03\xe8", mask_key=b"abcd"))

    @gen_test
    async def test_without_one(self) -> None:
        await self.leave_after(b"")


class AsyncEcho(WebSocketHandler):
    """A coroutine on_message that echoes, at once or after a few loop turns."""

    async def on_message(self, message: Any) -> None:
        for _ in range(int(self.get_argument("turns"))):
            await asyncio.sleep(0)
        self.write_message(message)


class HalfClosingClient(AsyncHTTPTestCase):
    # A client sends its messages and its close frame together, then shuts
    # its side down (and reads on). The handler's coroutine on_message
    # echoes each and the close frame is answered (RFC 6455 section 5.5.1),
    # as on Tornado: the server stream used to close at the end it read
    # meanwhile, and sent nothing after it (no echo at all once the
    # coroutine awaited, no answer to the close frame).
    def get_app(self) -> Application:
        return Application([("/echo", AsyncEcho)])

    @gen_test
    async def test_echoes_and_the_close_answer_reach_it(self) -> None:
        for turns in (0, 3):
            stream = IOStream(socket.socket())
            self.addCleanup(stream.close)
            await stream.connect(("127.0.0.1", self.get_http_port()))
            frames = b"".join(build_frame(1, b"m%d" % i, mask_key=b"abcd") for i in range(3))
            closing = build_frame(8, b"\x03\xe8bye", mask_key=b"abcd")
            await stream.write(
                UPGRADE.format(path=f"/echo?turns={turns}").encode() + frames + closing
            )
            stream.socket.shutdown(socket.SHUT_WR)
            answer = (await stream.read_until_close()).partition(b"\r\n\r\n")[2]
            echoes = b"".join(bytes([0x81, 2]) + b"m%d" % i for i in range(3))
            self.assertEqual(answer, echoes + b"\x88\x02\x03\xe8", turns)


class PeriodicPing(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.rec = Recorder()

        class Handler(Base):
            def on_pong(self, data: bytes) -> None:
                self.write_message("pong")

        return Application([("/", Handler, dict(rec=self.rec))], websocket_ping_interval=0.01)

    @gen_test
    async def test_server_pings_periodically(self) -> None:
        ws = await websocket_connect(f"ws://127.0.0.1:{self.get_http_port()}/")
        for _ in range(3):
            self.assertEqual(await ws.read_message(), "pong")
        ws.close()
        await self.rec.closed


class ClientPingTimeout(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.rec = Recorder()
        return Application([("/", Echo, dict(rec=self.rec))])

    @gen_test
    async def test_unanswered_pings_time_out(self) -> None:
        ws = await websocket_connect(
            f"ws://127.0.0.1:{self.get_http_port()}/", ping_interval=0.02, ping_timeout=0.01
        )
        handler = await self.rec.opened
        protocol = ws.protocol
        original = protocol._handle_message

        def drop_pongs(opcode: int, data: Any) -> Any:
            return None if opcode == 0xA else original(opcode, data)

        protocol._handle_message = drop_pongs  # type: ignore[method-assign]
        code, reason = await self.rec.closed
        self.assertEqual((code, reason), (1000, "ping timed out"))
        self.assertIsNone(handler.ws_connection)


class Secure(AsyncHTTPSTestCase):
    def get_app(self) -> Application:
        self.rec = Recorder()
        return Application([("/echo", Echo, dict(rec=self.rec))])

    @gen_test
    async def test_wss(self) -> None:
        request = HTTPRequest(f"wss://127.0.0.1:{self.get_http_port()}/echo", validate_cert=False)
        ws = await websocket_connect(request)
        ws.write_message("secret")
        self.assertEqual(await ws.read_message(), "secret")
        ws.close()
        await self.rec.closed


class PartnerOnly(WebSocketHandler):
    """Accepts one foreign origin, and records each origin it is asked about."""

    def initialize(self, asked: list[str]) -> None:
        self.asked = asked

    def check_origin(self, origin: str) -> bool:
        self.asked.append(origin)
        return origin == "https://partner.example"


class OriginCheck(AsyncHTTPTestCase):
    """Which handshakes are put to check_origin, and which open (Tornado 6.6's
    cross-origin protection: a request that is same-origin by the browser's
    Sec-Fetch-Site, or by an Origin naming the Host, opens unasked)."""

    def get_app(self) -> Application:
        self.asked: list[str] = []
        return Application(
            [("/partner", PartnerOnly, dict(asked=self.asked)), ("/default", WebSocketHandler)],
            trusted_origins=["https://trusted.example"],
        )

    async def status(self, path: str, headers: dict[str, str]) -> int:
        url = f"ws://127.0.0.1:{self.get_http_port()}{path}"
        try:
            ws = await websocket_connect(HTTPRequest(url, headers=headers))
        except HTTPClientError as e:
            return e.code
        ws.close()
        return 101

    @gen_test
    async def test_who_is_asked_and_who_opens(self) -> None:
        host = f"127.0.0.1:{self.get_http_port()}"
        cases: list[tuple[dict[str, str], int, list[str]]] = [
            ({}, 101, []),
            # An Origin naming the Host, whatever its scheme, case or path.
            ({"Origin": f"http://{host}"}, 101, []),
            ({"Origin": f"https://{host}"}, 101, []),
            ({"Origin": f"HTTP://{host}/page"}, 101, []),
            ({"Origin": "https://partner.example"}, 101, ["https://partner.example"]),
            ({"Origin": "http://evil.example"}, 403, ["http://evil.example"]),
            ({"Origin": host}, 403, [host]),
            ({"Origin": "http://[::1"}, 403, ["http://[::1"]),
            # The browser's word decides when it gives one.
            ({"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"}, 101, []),
            ({"Sec-Fetch-Site": "none"}, 101, []),
            ({"Sec-Fetch-Site": "cross-site"}, 403, []),
            ({"Sec-Fetch-Site": "same-site"}, 403, []),
            (
                {"Sec-Fetch-Site": "cross-site", "Origin": "https://partner.example"},
                101,
                ["https://partner.example"],
            ),
            ({"Sec-Fetch-Site": "same-site", "Origin": f"http://{host}"}, 403, [f"http://{host}"]),
            # The retired drafts' origin field is not read.
            ({"Sec-WebSocket-Origin": "http://evil.example"}, 101, []),
        ]
        for headers, code, asked in cases:
            self.asked.clear()
            self.assertEqual(await self.status("/partner", headers), code, headers)
            self.assertEqual(self.asked, asked, headers)

    @gen_test
    async def test_the_default_check_trusts_the_settings_origins(self) -> None:
        for headers, code in (
            ({"Origin": "https://trusted.example"}, 101),
            ({"Sec-Fetch-Site": "cross-site", "Origin": "https://trusted.example"}, 101),
            ({"Origin": "https://trusted.example.evil"}, 403),
            ({"Sec-Fetch-Site": "cross-site", "Origin": "https://other.example"}, 403),
        ):
            self.assertEqual(await self.status("/default", headers), code, headers)

    def test_check_origin_alone_is_the_trusted_origins_check(self) -> None:
        # Called directly (a handler's own tests do), the default answers
        # for a foreign origin only: an origin naming the host is decided
        # before it is asked.
        handler = WebSocketHandler(self._app, self._make_request())
        self.assertTrue(handler.check_origin("https://trusted.example"))
        self.assertFalse(handler.check_origin("http://evil.example"))

    def _make_request(self) -> Any:
        from squall.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

        class _Connection:
            def set_close_callback(self, callback: Any) -> None:
                pass

        return HTTPServerRequest(
            start_line=RequestStartLine("GET", "/", "HTTP/1.1"),
            headers=HTTPHeaders({"Host": "h"}),
            connection=_Connection(),
        )


class HookOrder(Base):
    """Records the handshake's hooks in the order they are called."""

    def get_compression_options(self) -> Optional[dict[str, Any]]:
        self.rec.events.append("get_compression_options")
        return {}

    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        self.rec.events.append(("select_subprotocol", subprotocols))
        return subprotocols[0] if subprotocols else None

    def open(self, *args: Any) -> None:
        self.rec.events.append("open")
        super().open(*args)


class ClosesThroughConnectionClose(Base):
    """Overrides on_connection_close, calling the stock one, as Tornado's
    documentation of RequestHandler.on_connection_close invites."""

    def on_connection_close(self) -> None:
        self.rec.events.append(
            ("on_connection_close", self.close_code, self.close_reason, self.ws_connection)
        )
        super().on_connection_close()

    def on_close(self) -> None:
        self.rec.events.append("on_close")
        super().on_close()


class ClosesThroughConnectionCloseFailingOpen(ClosesThroughConnectionClose):
    def open(self, *args: Any) -> None:
        raise ValueError("open failed")


class PingsByProperty(Base):
    """Its pings and its message limit come from properties, not settings."""

    @property
    def ping_interval(self) -> Optional[float]:
        return 0.01

    @property
    def ping_timeout(self) -> Optional[float]:
        return 0  # no limit (the settings' None would mean ping_interval)

    @property
    def max_message_size(self) -> int:
        return 10

    def on_pong(self, data: bytes) -> None:
        self.write_message("pong")

    def on_message(self, message: Any) -> None:
        pass


class HooksAsTornadoCallsThem(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.rec = Recorder()
        args = dict(rec=self.rec)
        return Application(
            [
                ("/order", HookOrder, args),
                ("/through", ClosesThroughConnectionClose, args),
                ("/through_failing", ClosesThroughConnectionCloseFailingOpen, args),
                ("/pings", PingsByProperty, args),
            ]
        )

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.get_http_port()}{path}"

    @gen_test
    async def test_compression_options_are_asked_before_the_subprotocol(self) -> None:
        # Tornado asks get_compression_options (when it makes the protocol)
        # before select_subprotocol; Squall asked them the other way round.
        ws = await websocket_connect(self.url("/order"), subprotocols=["p"], compression_options={})
        self.addCleanup(ws.close)
        await self.rec.opened
        self.assertEqual(
            self.rec.events, ["get_compression_options", ("select_subprotocol", ["p"]), "open"]
        )
        self.assertEqual(ws.selected_subprotocol, "p")
        self.assertIn("permessage-deflate", ws.headers["Sec-WebSocket-Extensions"])

    @gen_test
    async def test_an_overridden_on_connection_close_is_called_when_the_websocket_ends(
        self,
    ) -> None:
        # On Tornado a WebSocket's end goes through on_connection_close (the
        # stock one calls on_close); an override was never called on Squall
        # once the WebSocket was open.
        ws = await websocket_connect(self.url("/through"))
        await self.rec.opened
        ws.close(1001, "bye")
        self.assertEqual(await self.rec.closed, (1001, "bye"))
        self.assertEqual(self.rec.events, [("on_connection_close", 1001, "bye", None), "on_close"])

    @gen_test
    async def test_a_websocket_whose_open_failed_gets_no_on_connection_close(self) -> None:
        # It never opened: as on Tornado, neither on_connection_close nor
        # on_close is called for it.
        with ExpectLog(app_log, "Uncaught exception"):
            ws = await websocket_connect(self.url("/through_failing"))
            self.assertIsNone(await ws.read_message())
        self.assertEqual(self.rec.events, [])

    @gen_test
    async def test_ping_and_size_properties_of_the_handler_are_used(self) -> None:
        # Tornado makes the protocol from the handler's ping_interval,
        # ping_timeout and max_message_size properties; Squall read the
        # settings for the first two, so a subclass's properties sent no ping.
        ws = await websocket_connect(self.url("/pings"))
        self.assertEqual(await ws.read_message(), "pong")
        handler = await self.rec.opened
        protocol = handler.ws_connection
        assert protocol is not None
        self.assertEqual((protocol.ping_interval, protocol.ping_timeout), (0.01, 0))
        ws.write_message("x" * 11)
        self.assertEqual(await self.rec.closed, (None, None))
        while await ws.read_message() is not None:
            pass  # pongs written before the close
        self.assertEqual(ws.close_code, 1009)
