"""The ASGI ``websocket`` scope over an extended CONNECT: HTTP/2 (RFC 8441)
and HTTP/3 (RFC 9220).

Each server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL whatever it
serves, so a browser that prefers a WebSocket over its HTTP/2 or HTTP/3
connection (Firefox does) opens one to an ASGI app that way. The same tests
run over both protocols: HTTP/2 through the ``h2`` package's client (h2c,
the application behind squall run's `ServingDelegate`), HTTP/3 through
aioquic's (a bare `ASGIServerDelegate`). Frames are the tests' own codec
(tests/h2/test_websocket_h2.py).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import tempfile
from typing import Any, Optional

import pytest

from squall.asgi import ASGIServerDelegate
from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, ExpectLog, gen_test
from tests._chromium import end as end_browser
from tests._wait import HANG_GUARD

try:
    import h2.settings

    from ..h2.test_real_clients import CHROMIUM
    from ..h2.test_websocket_h2 import WSClient, client_frame, close_payload, parse_frames
except ImportError:  # the http2 extra is not installed
    h2 = None  # type: ignore[assignment]
    CHROMIUM = None
try:
    from aioquic.h3.connection import Setting

    from ..h3._client import H3Client, h3_client
    from ..h3.test_server import H3TestCase
except ImportError:  # the http3 extra is not installed
    Setting = None  # type: ignore[assignment,misc]
    H3TestCase = AsyncHTTPTestCase  # type: ignore[assignment,misc]

DEADLINE = HANG_GUARD  # a hang guard, not a measure of speed
MAX_MESSAGE = 4096
FLOOD = 8  # messages of 64 KiB: 512 KiB, more than the windows and marks hold


class Seen:
    """What the application saw; an Event per change, for the tests to wait on."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.disconnects: list[int] = []
        self.errors: list[BaseException] = []
        self.sent = 0
        self.changed = asyncio.Event()

    def note(self) -> None:
        self.changed.set()

    async def until(self, predicate: Any, within: float = DEADLINE) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate():
            left = deadline - loop.time()
            assert left > 0, "condition not reached"
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass


def starlette_app(seen: Seen) -> Any:
    """A Starlette WebSocket echo (its WebSocket class checks the scope and
    the message flow its own way)."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{text} via {websocket.scope['http_version']}")
        except WebSocketDisconnect as exc:
            seen.disconnects.append(exc.code)
            seen.note()

    return Starlette(routes=[WebSocketRoute("/starlette", echo)])


def make_app(seen: Seen) -> Any:
    """Paths: /echo (subprotocol "chat" if offered; "close me" closes with
    4000), /refuse (closes before accepting), /deny (a 404 of its own),
    /fails (raises before accepting), /fails-open (raises once open),
    /flood (sends `FLOOD` messages of 64 KiB, counted in ``seen.sent``),
    /starlette (`starlette_app`)."""
    starlette = starlette_app(seen)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/starlette":
            await starlette(scope, receive, send)
            return
        if scope["type"] != "websocket":
            await send({"type": "http.response.start", "status": 404})
            await send({"type": "http.response.body", "body": b"not a websocket"})
            return
        seen.scopes.append(scope)
        seen.note()
        assert await receive() == {"type": "websocket.connect"}
        path = scope["path"]
        if path == "/refuse":
            await send({"type": "websocket.close"})
            return
        if path == "/deny":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"no such room"})
            return
        if path == "/fails":
            raise RuntimeError("the application's bug, before accepting")
        subprotocol = "chat" if "chat" in scope["subprotocols"] else None
        await send(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-app", b"1")]}
        )
        if path == "/fails-open":
            raise RuntimeError("the application's bug, once open")
        if path == "/flood":
            payload = bytes(64 * 1024)
            for _ in range(FLOOD):
                await send({"type": "websocket.send", "bytes": payload})
                seen.sent += 1
            await send({"type": "websocket.close"})
            return
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                seen.disconnects.append(message["code"])
                seen.note()
                return
            if message.get("text") == "close me":
                await send({"type": "websocket.close", "code": 4000, "reason": "asked"})
                continue
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": "echo " + message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})

    return app


class _Tests:
    """The tests, over a client with WSClient's methods (see the subclasses)."""

    seen: Seen
    setting_advertised: Any
    version: str
    scheme: str

    io_loop: Any
    # What closes each client a test opened (run by tearDown).
    _closers: list[Any]

    async def client(self) -> Any:
        raise NotImplementedError

    async def answer_drain(self, c: Any, sid: int) -> int:
        """The client's answer to the server's 1001; the code the app hears."""
        await c.send(sid, client_frame(0x8, close_payload(1001)), end=True)
        return 1001

    def setUp(self) -> None:
        self._closers = []
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        async def leave() -> None:
            for close in self._closers:
                await close()

        if self._closers:
            self.io_loop.run_sync(leave)
        super().tearDown()  # type: ignore[misc]

    async def open_ws(self, path: str = "/echo", extra: Any = None) -> tuple[Any, int]:
        c = await self.client()
        sid = c.open(path, extra)
        assert await c.opened(sid) == 200, c.raw.responses[sid].body
        return c, sid

    @gen_test
    async def test_echo_text_and_binary_and_the_scope(self) -> None:
        c = await self.client()
        assert c.connect_protocol_advertised() == 1
        sid = c.open("/echo?room=7")
        assert await c.opened(sid) == 200
        headers = c.raw.responses[sid].headers
        assert headers["x-app"] == "1"
        for name in ("sec-websocket-accept", "upgrade", "connection", "content-length"):
            assert name not in headers
        await c.send(sid, client_frame(0x1, "héllo".encode()))
        assert await c.message(sid) == (0x1, "echo héllo".encode())
        await c.send(sid, client_frame(0x2, b"\x00\x01\x02"))
        assert await c.message(sid) == (0x2, b"\x02\x01\x00")
        (scope,) = self.seen.scopes
        assert scope["type"] == "websocket"
        assert (scope["http_version"], scope["scheme"]) == (self.version, self.scheme)
        assert (scope["path"], scope["query_string"]) == ("/echo", b"room=7")
        assert scope["subprotocols"] == []
        assert "method" not in scope
        assert "websocket.http.response" in scope["extensions"]

    @gen_test
    async def test_subprotocol_chosen_from_the_offer(self) -> None:
        c, sid = await self.open_ws(extra=[("sec-websocket-protocol", "x, chat")])
        assert c.raw.responses[sid].headers["sec-websocket-protocol"] == "chat"
        assert self.seen.scopes[0]["subprotocols"] == ["x", "chat"]

    @gen_test
    async def test_permessage_deflate_as_over_http1(self) -> None:
        c, sid = await self.open_ws(
            extra=[("sec-websocket-extensions", "permessage-deflate; client_max_window_bits")]
        )
        assert (
            c.raw.responses[sid]
            .headers["sec-websocket-extensions"]
            .startswith("permessage-deflate")
        )
        # An uncompressed frame is still a valid message (RSV1 clear).
        await c.send(sid, client_frame(0x1, b"plain"))
        first, _ = await first_frame(c, sid)
        assert first & 0x40, "the server's message is compressed (RSV1)"

    @gen_test
    async def test_client_closes_with_a_code(self) -> None:
        c, sid = await self.open_ws()
        await c.send(sid, client_frame(0x8, close_payload(4001, b"leaving")))
        assert await c.message(sid) == (0x8, close_payload(4001))
        r = c.raw.responses[sid]
        await c.raw.until(lambda: r.ended or r.reset is not None)
        await self.seen.until(lambda: self.seen.disconnects)
        assert self.seen.disconnects == [4001]

    @gen_test
    async def test_application_closes_with_a_code(self) -> None:
        c, sid = await self.open_ws()
        await c.send(sid, client_frame(0x1, b"close me"))
        assert await c.message(sid) == (0x8, close_payload(4000, b"asked"))
        await c.send(sid, client_frame(0x8, close_payload(4000)), end=True)
        r = c.raw.responses[sid]
        await c.raw.until(lambda: r.ended or r.reset is not None)
        await self.seen.until(lambda: self.seen.disconnects)
        assert self.seen.disconnects == [4000]

    @gen_test
    async def test_stream_ended_without_close_frame_is_1006(self) -> None:
        c, sid = await self.open_ws()
        await c.send(sid, b"", end=True)
        await self.seen.until(lambda: self.seen.disconnects)
        assert self.seen.disconnects == [1006]

    @gen_test
    async def test_frames_sent_before_the_200_wait_for_the_websocket(self) -> None:
        c = await self.client()
        sid = c.open("/echo")
        await c.send(sid, client_frame(0x1, b"early"))
        assert await c.opened(sid) == 200
        assert await c.message(sid) == (0x1, b"echo early")

    @gen_test
    async def test_stream_reset_by_the_client_is_1006(self) -> None:
        c, sid = await self.open_ws()
        await c.send(sid, client_frame(0x1, b"hi"))
        assert await c.message(sid) == (0x1, b"echo hi")
        c.reset(sid)
        await self.seen.until(lambda: self.seen.disconnects)
        assert self.seen.disconnects == [1006]

    @gen_test
    async def test_close_before_accept_is_403(self) -> None:
        c = await self.client()
        sid = c.open("/refuse")
        assert await c.opened(sid) == 403
        r = c.raw.responses[sid]
        await c.raw.until(lambda: r.ended or r.reset is not None)
        assert "connection" not in r.headers

    @gen_test
    async def test_http_response_extension_denies_with_the_apps_response(self) -> None:
        c = await self.client()
        sid = c.open("/deny")
        assert await c.opened(sid) == 404
        r = c.raw.responses[sid]
        await c.raw.until(lambda: r.ended or r.reset is not None)
        assert (r.headers["content-type"], r.body) == ("text/plain", b"no such room")

    @gen_test
    async def test_an_application_error_before_accepting_is_500(self) -> None:
        c = await self.client()
        with ExpectLog("squall.application", "Exception in ASGI application", level=logging.ERROR):
            sid = c.open("/fails")
            assert await c.opened(sid) == 500
        # The connection serves on: another WebSocket opens on it.
        sid = c.open("/echo")
        assert await c.opened(sid) == 200

    @gen_test
    async def test_an_application_error_once_open_closes_with_1011(self) -> None:
        c = await self.client()
        with ExpectLog("squall.application", "Exception in ASGI application", level=logging.ERROR):
            sid = c.open("/fails-open")
            assert await c.opened(sid) == 200
            opcode, payload = await c.message(sid)
        assert (opcode, struct.unpack("!H", payload[:2])) == (0x8, (1011,))

    @gen_test
    async def test_a_message_over_the_limit_closes_with_1009(self) -> None:
        c, sid = await self.open_ws()
        await c.send(sid, client_frame(0x2, bytes(MAX_MESSAGE + 1)))
        opcode, payload = await c.message(sid)
        assert (opcode, struct.unpack("!H", payload[:2])) == (0x8, (1009,))
        await self.seen.until(lambda: self.seen.disconnects)
        # The server failed the connection: the app hears the code it sent.
        assert self.seen.disconnects == [1009]

    @gen_test
    async def test_a_protocol_error_closes_with_1002_and_the_app_hears_it(self) -> None:
        c, sid = await self.open_ws()
        await c.send(sid, client_frame(0x3, b""))  # a reserved opcode
        opcode, payload = await c.message(sid)
        assert (opcode, struct.unpack("!H", payload[:2])) == (0x8, (1002,))
        await self.seen.until(lambda: self.seen.disconnects)
        assert self.seen.disconnects == [1002]

    @gen_test
    async def test_drain_closes_with_1001(self) -> None:
        c, sid = await self.open_ws()
        drained = asyncio.ensure_future(self.http_server.drain(timeout=HANG_GUARD, idle_grace=0.0))
        assert await c.message(sid) == (0x8, close_payload(1001, b"server shutting down"))
        code = await self.answer_drain(c, sid)
        assert await asyncio.wait_for(drained, DEADLINE) is True
        await self.seen.until(lambda: self.seen.disconnects)
        assert self.seen.disconnects == [code]

    @gen_test
    async def test_starlette_websocket(self) -> None:
        c, sid = await self.open_ws("/starlette")
        await c.send(sid, client_frame(0x1, b"hi"))
        assert await c.message(sid) == (0x1, f"hi via {self.version}".encode())
        await c.send(sid, client_frame(0x8, close_payload(1000)), end=True)
        assert await c.message(sid) == (0x8, close_payload(1000))
        await self.seen.until(lambda: self.seen.disconnects)
        assert self.seen.disconnects == [1000]

    @gen_test
    async def test_another_protocol_is_501_and_not_the_apps(self) -> None:
        # Its stream's bytes would go to a tunnel no scope takes; an app's
        # 2xx to an http scope would hold the stream open for good.
        c = await self.client()
        sid = c.open("/echo", protocol="connect-udp")
        assert await c.opened(sid) == 501
        r = c.raw.responses[sid]
        await c.raw.until(lambda: r.ended or r.reset is not None)
        assert b"connect-udp" in r.body
        assert self.seen.scopes == []
        sid = c.open("/echo")
        assert await c.opened(sid) == 200

    @gen_test
    async def test_a_bad_version_is_426(self) -> None:
        c = await self.client()
        sid = c.open("/echo", version="8")
        assert await c.opened(sid) == 426
        assert c.raw.responses[sid].headers["sec-websocket-version"] == "13"
        assert self.seen.scopes == []


@pytest.mark.skipif(h2 is None, reason="the http2 extra (h2) is not installed")
class ASGIWebSocketOverH2Test(_Tests, AsyncHTTPTestCase):
    """Behind squall run's ServingDelegate, as `squall run --http2` serves it."""

    version = "2"
    scheme = "ws"

    def get_app(self) -> Any:
        from squall.cli._serving import ServingDelegate

        self.seen = Seen()
        app = ASGIServerDelegate(make_app(self.seen), ws_max_message_size=MAX_MESSAGE)
        return ServingDelegate(app, access_format="{status}")

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    async def client(self) -> Any:
        c = await _H2WS.connect(self.get_http_port())
        self._closers.append(c.raw.close)
        return c

    async def answer_drain(self, c: Any, sid: int) -> int:
        # The h2 package sends nothing after the GOAWAY that follows: the
        # client leaves without its close frame.
        await c.raw.until(lambda: c.raw.goaway is not None)
        await c.raw.close()
        return 1006

    @gen_test
    async def test_a_client_that_does_not_read_holds_the_sender(self) -> None:
        # The stream's flow-control window (64 KiB, the client's default)
        # and the tunnel's high-water mark (64 KiB) hold what the server
        # queues; past them websocket.send waits, as over HTTP/1.1.
        c = await self.client()
        c.raw.auto_ack = False
        sid = c.open("/flood")
        assert await c.opened(sid) == 200
        r = c.raw.responses[sid]
        await c.raw.until(lambda: len(r.body) >= 65535)
        held_at = self.seen.sent
        for _ in range(200):
            await asyncio.sleep(0)  # loop turns for a sender that is not held
        assert self.seen.sent == held_at <= 3
        # Read (and give the window back): everything arrives, then the close.
        c.raw.auto_ack = True
        c.raw.conn.acknowledge_received_data(len(r.body), sid)
        c.raw.flush()
        await c.raw.until(lambda: len(parse_frames(r.body)) == FLOOD + 1)
        frames = parse_frames(r.body)
        assert [op for op, _ in frames] == [0x2] * FLOOD + [0x8]
        assert self.seen.sent == FLOOD


# Loaded over HTTP/2, the page opens its WebSocket as a stream of the same
# connection: Chromium speaks RFC 8441 when the server advertises it.
CHROMIUM_PAGE = b"""<!doctype html><p id="out">waiting</p><script>
const report = (text) => {
  document.getElementById("out").textContent = text;
  fetch("/result", {method: "POST", body: text});
};
const ws = new WebSocket("wss://" + location.host + "/starlette");
ws.onopen = () => ws.send("hi");
ws.onmessage = (e) => { ws.close(1000); report(e.data); };
ws.onerror = () => report("error");
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium (or the http2 extra) is not installed")
class ChromiumOverH2Test(AsyncHTTPSTestCase):
    def get_app(self) -> Any:
        self.seen = Seen()
        self.results: list[str] = []
        websocket = make_app(self.seen)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/result":
                self.seen.scopes.append(scope)
                body = b""
                while True:
                    message = await receive()
                    body += message.get("body", b"")
                    if not message.get("more_body"):
                        break
                await send({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                self.results.append(body.decode())
                self.seen.note()
            elif scope["type"] == "http":
                self.seen.scopes.append(scope)
                head = [(b"content-type", b"text/html")]
                await send({"type": "http.response.start", "status": 200, "headers": head})
                await send({"type": "http.response.body", "body": CHROMIUM_PAGE})
            else:
                await websocket(scope, receive, send)

        return ASGIServerDelegate(app)

    def get_httpserver_options(self) -> dict[str, Any]:
        return {**super().get_httpserver_options(), "http2": True}

    @gen_test(timeout=30)
    async def test_a_starlette_websocket_from_chromium(self) -> None:
        # The page posts what came back; the test waits for that post (not
        # for a virtual-time budget, which a loaded machine can outrun).
        assert CHROMIUM is not None
        with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
            browser = await asyncio.create_subprocess_exec(
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--ignore-certificate-errors",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                self.get_url("/"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                await self.seen.until(lambda: self.results, within=25)
            finally:
                await end_browser(browser)
        assert self.results == ["hi via 2"]
        # (The Starlette echo says its scope's http_version; the page, the
        # result and the favicon came over HTTP/2 too.)
        assert {s["http_version"] for s in self.seen.scopes} == {"2"}
        await self.seen.until(lambda: self.seen.disconnects)
        assert self.seen.disconnects == [1000]


@pytest.mark.skipif(Setting is None, reason="aioquic (the tests' QUIC peer) is not installed")
class ASGIWebSocketOverH3Test(_Tests, H3TestCase):
    version = "3"
    scheme = "wss"

    def get_app(self) -> Any:
        self.seen = Seen()
        return ASGIServerDelegate(make_app(self.seen), ws_max_message_size=MAX_MESSAGE)

    async def client(self) -> Any:
        await self.started()
        client_cm = h3_client(self.get_http_port())
        client = await client_cm.__aenter__()
        self._closers.append(lambda: client_cm.__aexit__(None, None, None))
        await client.until(lambda: client.h3.received_settings is not None)
        return _H3WS(client)


# -- the clients: WSClient's (HTTP/2), and the same over aioquic's -----------------------


def _frame(data: bytes, index: int) -> Optional[tuple[int, bytes]]:
    """The ``index``-th complete frame in ``data`` as (first byte, payload)."""
    pos = 0
    for i in range(index + 1):
        if pos + 2 > len(data):
            return None
        b0, n = data[pos], data[pos + 1] & 0x7F
        at = pos + 2
        if n == 126:
            n = int.from_bytes(data[at : at + 2], "big")
            at += 2
        elif n == 127:
            n = int.from_bytes(data[at : at + 8], "big")
            at += 8
        if at + n > len(data):
            return None
        if i == index:
            return b0, data[at : at + n]
        pos = at + n
    return None


async def first_frame(c: Any, sid: int) -> tuple[int, bytes]:
    """The first frame the server sent on ``sid``: (its first byte, payload)."""
    r = c.raw.responses[sid]
    await c.raw.until(lambda: _frame(r.body, 0) is not None)
    frame = _frame(r.body, 0)
    assert frame is not None
    return frame


if h2 is not None:

    class _H2WS(WSClient):
        def open(  # type: ignore[override]
            self,
            path: str = "/echo",
            extra: Any = None,
            version: str = "13",
            protocol: str = "websocket",
        ) -> int:
            from ..h2._client import Response

            fields = [("sec-websocket-version", version)] + list(extra or [])
            conn = self.raw.conn
            sid = conn.get_next_available_stream_id()
            head = [
                (":method", "CONNECT"),
                (":protocol", protocol),
                (":scheme", "http"),
                (":path", path),
                (":authority", "localhost"),
            ] + fields
            conn.send_headers(sid, head, end_stream=False)
            self.raw.responses[sid] = Response()
            self.raw.flush()
            return sid

        def reset(self, sid: int) -> None:
            self.raw.conn.reset_stream(sid, 0x8)  # CANCEL
            self.raw.flush()

        def connect_protocol_advertised(self) -> int:
            settings = self.raw.conn.remote_settings
            return int(settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL])


if Setting is not None:

    class _H3WS:
        """WSClient's methods over one aioquic HTTP/3 connection."""

        def __init__(self, client: H3Client) -> None:
            self.raw = client
            self.taken: dict[int, int] = {}

        def open(
            self,
            path: str = "/echo",
            extra: Any = None,
            version: str = "13",
            protocol: str = "websocket",
        ) -> int:
            fields = [(":protocol", protocol), ("sec-websocket-version", version)]
            return self.raw.request(
                path, method="CONNECT", headers=fields + list(extra or []), end=False
            )

        def reset(self, sid: int) -> None:
            self.raw._quic.reset_stream(sid, 0x10C)  # H3_REQUEST_CANCELLED
            self.raw.transmit()

        def connect_protocol_advertised(self) -> int:
            settings = self.raw.h3.received_settings or {}
            return int(settings.get(Setting.ENABLE_CONNECT_PROTOCOL, 0))

        async def opened(self, sid: int) -> int:
            r = self.raw.responses[sid]
            await self.raw.until(lambda: r.status != 0 or r.reset is not None)
            return r.status

        async def send(self, sid: int, data: bytes, end: bool = False) -> None:
            self.raw.send_body(sid, data, end)

        async def message(self, sid: int) -> tuple[int, bytes]:
            r = self.raw.responses[sid]
            index = self.taken.get(sid, 0)
            await self.raw.until(lambda: _frame(r.body, index) is not None)
            frame = _frame(r.body, index)
            assert frame is not None
            self.taken[sid] = index + 1
            return frame[0] & 0x0F, frame[1]
