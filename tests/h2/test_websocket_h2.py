"""WebSockets over HTTP/2 (RFC 8441) on the server, driven by the ``h2``
package as the client, with a small RFC 6455 frame codec of the test's own.

The server is given 64 KiB windows (the protocol's default size) so that a
message of 200,000 bytes needs WINDOW_UPDATEs both ways.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Optional

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.events  # noqa: E402
import h2.settings  # noqa: E402

from squall._h2 import H2Limits  # noqa: E402
from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, gen_test  # noqa: E402
from squall.web import Application, HTTPError, RequestHandler  # noqa: E402
from squall.websocket import WebSocketHandler, broadcast, websocket_connect  # noqa: E402

from ._client import DEADLINE, RawH2  # noqa: E402

BIG = 200_000
WINDOW = 65_535


# -- RFC 6455 frames, client side (masked out, unmasked in) -------------------------


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head.append(0x80 | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(0x80 | 127)
        head += n.to_bytes(8, "big")
    key = os.urandom(4)
    mask = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return bytes(head) + key + body


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Every complete (unmasked) frame in ``data``: (opcode, payload)."""
    out = []
    pos = 0
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert not b1 & 0x80, "a server frame is not masked"
        n = b1 & 0x7F
        at = pos + 2
        if n == 126:
            n = int.from_bytes(data[at : at + 2], "big")
            at += 2
        elif n == 127:
            n = int.from_bytes(data[at : at + 8], "big")
            at += 8
        if at + n > len(data):
            break
        assert b0 & 0x80, "the server fragments no message here"
        out.append((b0 & 0x0F, data[at : at + n]))
        pos = at + n
    return out


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


# -- the application ---------------------------------------------------------------------


class Room:
    def __init__(self) -> None:
        self.members: set[WebSocketHandler] = set()
        self.closed: list[tuple[str, Optional[int]]] = []
        self.opened: Optional[asyncio.Future[WebSocketHandler]] = None
        self.gone: Optional[asyncio.Future[None]] = None
        self.answered: list[bool] = []
        self.hooks: list[str] = []
        self.prepared: Optional[asyncio.Future[None]] = None

    def expect_open(self) -> asyncio.Future[WebSocketHandler]:
        self.opened = asyncio.get_running_loop().create_future()
        return self.opened

    def expect_close(self) -> asyncio.Future[None]:
        self.gone = asyncio.get_running_loop().create_future()
        return self.gone


class Echo(WebSocketHandler):
    def initialize(self, room: Room) -> None:
        self.room = room

    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        return "chat" if "chat" in subprotocols else None

    def open(self) -> None:
        self.room.members.add(self)
        opened = self.room.opened
        if opened is not None and not opened.done():
            opened.set_result(self)

    def on_message(self, message: Any) -> None:
        if message == "close me":
            self.close(4000, "asked")
            return
        self.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        self.room.members.discard(self)
        self.room.closed.append((self.request.version, self.close_code))
        gone = self.room.gone
        if gone is not None and not gone.done():
            gone.set_result(None)


class AnswersThenWorks(Echo):
    """A synchronous on_message that answers and then would block (a sync
    database call): whether its answer reached the connection's transport
    before the callback went on, in ``room.answered``."""

    def on_message(self, message: Any) -> None:
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        transport = self.ws_connection.stream.carrier()  # type: ignore[attr-defined]
        sent: list[bytes] = []
        write = transport.write
        transport.write = lambda data: (sent.append(bytes(data)), write(data))[1]
        try:
            self.write_message("ack " + message)
        finally:
            del transport.write
        self.room.answered.append(any(b"ack " + message.encode() in chunk for chunk in sent))


class Deflating(Echo):
    def get_compression_options(self) -> dict[str, Any]:
        return {}


class AsyncEcho(Echo):
    """on_message is a coroutine: the WebSocket reads with read_bytes from
    then on; open() waits for the test (what the client sends meanwhile
    waits in the stream)."""

    def initialize(self, room: Room, gate: Optional[asyncio.Future[None]] = None) -> None:
        super().initialize(room)
        self.gate = gate

    async def open(self) -> None:  # type: ignore[override]
        super().open()
        if self.gate is not None:
            await self.gate

    async def on_message(self, message: Any) -> None:  # type: ignore[override]
        super().on_message(message)


class Refusing(Echo):
    """Refuses the handshake (403) once the test sets ``release``."""

    def initialize(self, room: Room, release: asyncio.Event) -> None:
        super().initialize(room)
        self.release = release

    async def prepare(self) -> None:
        # (An Event: each handler waits on a future of its own.)
        await self.release.wait()
        raise HTTPError(403)


class WaitsInPrepare(Echo):
    """Its prepare() waits for the test's ``release``; records the hooks
    that follow in ``room.hooks``."""

    def initialize(self, room: Room, release: asyncio.Event) -> None:
        super().initialize(room)
        self.release = release

    async def prepare(self) -> None:
        prepared = self.room.prepared
        if prepared is not None and not prepared.done():
            prepared.set_result(None)
        await self.release.wait()

    def open(self) -> None:
        self.room.hooks.append("open")
        super().open()

    def on_connection_close(self) -> None:
        self.room.hooks.append("on_connection_close")
        super().on_connection_close()

    def on_close(self) -> None:
        self.room.hooks.append("on_close")
        super().on_close()

    def on_finish(self) -> None:
        self.room.hooks.append(f"on_finish {self.get_status()}")


class Plain(RequestHandler):
    def get(self) -> None:
        self.write("plain " + self.request.version)


# -- the client ----------------------------------------------------------------------------


class EitherWay(Echo):
    """A get() that relays plain GETs and upgrades WebSockets, telling them
    apart by the Upgrade field as a proxy written for HTTP/1.1 does."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            self.write("plain")
            return
        await super().get(*args, **kwargs)


class WSClient:
    """WebSockets on streams of one HTTP/2 connection."""

    def __init__(self, raw: RawH2) -> None:
        self.raw = raw
        self.seen = 0  # frames already taken, per stream: see take()
        self.taken: dict[int, int] = {}

    @classmethod
    async def connect(cls, port: int, tls: bool = False) -> WSClient:
        raw = await RawH2.connect(port, tls=tls)
        await raw.until(
            lambda: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in raw.events)
        )
        return cls(raw)

    def settings_advertised(self) -> int:
        return int(self.raw.conn.remote_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL])

    def open(
        self, path: str = "/ws", extra: Optional[list[tuple[str, str]]] = None, **kw: Any
    ) -> int:
        fields = [("sec-websocket-version", "13")] + list(extra or [])
        protocol = kw.get("protocol", "websocket")
        conn = self.raw.conn
        sid = conn.get_next_available_stream_id()
        head = [
            (":method", kw.get("method", "CONNECT")),
            (":protocol", protocol),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
        ] + fields
        conn.send_headers(sid, head, end_stream=False)
        from ._client import Response

        self.raw.responses[sid] = Response()
        self.raw.flush()
        return sid

    async def opened(self, sid: int) -> int:
        r = self.raw.responses[sid]
        await self.raw.until(lambda: r.status != 0 or r.reset is not None)
        return r.status

    async def send(self, sid: int, data: bytes, end: bool = False) -> None:
        """Send ``data`` on ``sid`` as the windows allow, waiting for WINDOW_UPDATEs."""
        conn = self.raw.conn
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while data:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room <= 0:
                left = deadline - loop.time()
                assert left > 0, "the server never opened its window"
                await self.raw.read_once(left)
                continue
            conn.send_data(sid, data[:room])
            data = data[room:]
            self.raw.flush()
        if end:
            conn.end_stream(sid)
            self.raw.flush()

    async def message(self, sid: int) -> tuple[int, bytes]:
        """The next frame the server sent on ``sid``."""
        r = self.raw.responses[sid]

        def ready() -> bool:
            return len(parse_frames(r.body)) > self.taken.get(sid, 0)

        await self.raw.until(ready)
        frame = parse_frames(r.body)[self.taken.get(sid, 0)]
        self.taken[sid] = self.taken.get(sid, 0) + 1
        return frame


class H2WebSocketTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.room = Room()
        self.gate: asyncio.Future[None] = asyncio.Future()
        self.release = asyncio.Event()
        return Application(
            [
                ("/ws", Echo, {"room": self.room}),
                ("/deflate", Deflating, {"room": self.room}),
                ("/async", AsyncEcho, {"room": self.room}),
                ("/gated", AsyncEcho, {"room": self.room, "gate": self.gate}),
                ("/refuse", Refusing, {"room": self.room, "release": self.release}),
                ("/waits", WaitsInPrepare, {"room": self.room, "release": self.release}),
                ("/plain", Plain),
                ("/answers", AnswersThenWorks, {"room": self.room}),
                ("/either", EitherWay, {"room": self.room}),
            ]
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        limits = H2Limits(initial_window_size=WINDOW, connection_window_size=WINDOW)
        return {"http2": True, "http2_limits": limits}

    async def client(self) -> WSClient:
        return await WSClient.connect(self.get_http_port())

    async def two_websockets(self) -> tuple[WSClient, int, int]:
        c = await self.client()
        a = c.open()
        b = c.open()
        assert await c.opened(a) == 200
        assert await c.opened(b) == 200
        return c, a, b

    async def open_ws(self, path: str = "/ws") -> tuple[WSClient, int, asyncio.Future[None]]:
        """A client with one open WebSocket (its handler's open() has run),
        and a future for that handler's on_close."""
        c = await self.client()
        opened = self.room.expect_open()
        sid = c.open(path)
        assert await c.opened(sid) == 200
        await asyncio.wait_for(opened, DEADLINE)
        return c, sid, self.room.expect_close()

    @gen_test
    async def test_a_synchronous_answer_leaves_before_the_callback_returns(self) -> None:
        # As over HTTP/1.1 (and on Tornado): a callback that answers and
        # then blocks has its client see the answer meanwhile.
        c, sid, _ = await self.open_ws("/answers")
        await c.send(sid, client_frame(1, b"x"))
        assert await c.message(sid) == (1, b"ack x")
        assert self.room.answered == [True]
        # Two messages in one read: answered together after both callbacks
        # (the WebSocket batches a read's answers), and both reach the client.
        await c.send(sid, client_frame(1, b"y") + client_frame(1, b"z"))
        assert await c.message(sid) == (1, b"ack y")
        assert await c.message(sid) == (1, b"ack z")
        assert self.room.answered[1:] == [False, False]
        await c.raw.close()

    @gen_test
    async def test_handshake_answers_200_and_setting_is_advertised(self) -> None:
        c = await self.client()
        # RFC 8441 §3: always advertised by a server that speaks h2.
        assert c.settings_advertised() == 1
        opened = self.room.expect_open()
        sid = c.open(extra=[("sec-websocket-protocol", "x, chat")])
        assert await c.opened(sid) == 200
        headers = c.raw.responses[sid].headers
        assert headers["sec-websocket-protocol"] == "chat"
        for name in ("upgrade", "connection", "sec-websocket-accept", "content-length"):
            assert name not in headers
        handler = await asyncio.wait_for(opened, DEADLINE)
        assert handler.request.method == "CONNECT"
        assert handler.request.version == "HTTP/2.0"
        assert not c.raw.responses[sid].ended
        await c.raw.close()

    @gen_test
    async def test_echo_text_and_binary(self) -> None:
        c, sid, _ = await self.open_ws()
        await c.send(sid, client_frame(0x1, "héllo".encode()))
        assert await c.message(sid) == (0x1, "héllo".encode())
        await c.send(sid, client_frame(0x2, b"\x00\xff" * 10))
        assert await c.message(sid) == (0x2, b"\x00\xff" * 10)
        await c.raw.close()

    @gen_test
    async def test_message_larger_than_the_windows_both_ways(self) -> None:
        c, sid, _ = await self.open_ws()
        payload = os.urandom(BIG)
        # Out: more than the server's 64 KiB windows, so the server must
        # give them back as the WebSocket consumes; in: more than the
        # client's, so the server's send waits for its WINDOW_UPDATEs.
        await c.send(sid, client_frame(0x2, payload))
        assert await c.message(sid) == (0x2, payload)
        await c.send(sid, client_frame(0x1, b"after"))
        assert await c.message(sid) == (0x1, b"after")
        await c.raw.close()

    @gen_test
    async def test_permessage_deflate_negotiated_as_over_http1(self) -> None:
        c = await self.client()
        sid = c.open("/deflate", extra=[("sec-websocket-extensions", "permessage-deflate")])
        assert await c.opened(sid) == 200
        assert (
            c.raw.responses[sid]
            .headers["sec-websocket-extensions"]
            .startswith("permessage-deflate")
        )
        await c.raw.close()

    @gen_test
    async def test_client_closes(self) -> None:
        c, sid, gone = await self.open_ws()
        await c.send(sid, client_frame(0x8, close_payload(1000)))
        assert await c.message(sid) == (0x8, close_payload(1000))
        r = c.raw.responses[sid]
        # The close frame, then END_STREAM (a reset may follow it).
        await c.raw.until(lambda: r.ended or r.reset is not None)
        assert r.ended
        await asyncio.wait_for(gone, DEADLINE)
        assert self.room.closed == [("HTTP/2.0", 1000)]
        await c.raw.close()

    @gen_test
    async def test_server_closes(self) -> None:
        c, sid, gone = await self.open_ws()
        await c.send(sid, client_frame(0x1, b"close me"))
        assert await c.message(sid) == (0x8, close_payload(4000, b"asked"))
        await c.send(sid, client_frame(0x8, close_payload(4000)), end=True)
        r = c.raw.responses[sid]
        await c.raw.until(lambda: r.ended)
        await asyncio.wait_for(gone, DEADLINE)
        assert self.room.closed == [("HTTP/2.0", 4000)]
        # The connection goes on serving other streams.
        assert (await c.raw.fetch("/plain")).body == b"plain HTTP/2.0"
        await c.raw.close()

    @gen_test
    async def test_reset_from_the_client_runs_on_close(self) -> None:
        c, sid, gone = await self.open_ws()
        c.raw.conn.reset_stream(sid, 0x8)  # CANCEL
        c.raw.flush()
        await asyncio.wait_for(gone, DEADLINE)
        assert self.room.closed == [("HTTP/2.0", None)]
        assert not self.room.members
        assert (await c.raw.fetch("/plain")).body == b"plain HTTP/2.0"
        await c.raw.close()

    @gen_test
    async def test_a_client_gone_before_the_200_finishes_the_handler_once(self) -> None:
        # The stream is reset while prepare() waits: as over HTTP/1.1 (a
        # connection lost meanwhile), on_connection_close and on_close run
        # then; the handshake goes on to a closed WebSocket, with one
        # on_finish and one access log line. The detach of the gone stream
        # used to fail (HTTPOutputError, logged as an uncaught exception),
        # and the 500 that followed ran on_finish and the log a second time.
        logged: list[int] = []
        self._app.settings["log_function"] = lambda handler: logged.append(handler.get_status())
        prepared = self.room.prepared = asyncio.get_running_loop().create_future()
        gone = self.room.expect_close()
        c = await self.client()
        sid = c.open("/waits")
        await asyncio.wait_for(prepared, DEADLINE)
        c.raw.conn.reset_stream(sid, 0x8)  # CANCEL
        c.raw.flush()
        await asyncio.wait_for(gone, DEADLINE)
        opened = self.room.expect_open()
        self.release.set()
        await asyncio.wait_for(opened, DEADLINE)
        # (A plain request on the connection: the loop has gone round.)
        assert (await c.raw.fetch("/plain")).status == 200
        assert self.room.hooks == ["on_connection_close", "on_close", "on_finish 200", "open"]
        assert logged == [200, 200]  # the handshake's, and /plain's
        await c.raw.close()

    @gen_test
    async def test_the_stream_has_a_socket_until_it_closes(self) -> None:
        # Tornado programs test ``ws_connection.stream.socket`` to tell an
        # open WebSocket from a closed one (an IOStream's is None once
        # closed), and read the peer from it; the stream of a WebSocket
        # over HTTP/2 had no such attribute (AttributeError).
        c, sid, gone = await self.open_ws()
        handler = next(iter(self.room.members))
        stream = handler.ws_connection.stream
        assert stream.socket is not None
        assert stream.socket.getpeername()[0] == "127.0.0.1"
        await c.send(sid, client_frame(8, close_payload(1000)))
        await asyncio.wait_for(gone, DEADLINE)
        assert stream.socket is None
        await c.raw.close()

    @gen_test
    async def test_goaway_from_the_client_closes_the_websocket(self) -> None:
        c, _, gone = await self.open_ws()
        c.raw.conn.close_connection()
        c.raw.flush()
        await asyncio.wait_for(gone, DEADLINE)
        assert self.room.closed == [("HTTP/2.0", None)]
        await c.raw.close()

    @gen_test
    async def test_end_stream_without_close_frame_is_an_abnormal_close(self) -> None:
        c, sid, gone = await self.open_ws()
        await c.send(sid, b"", end=True)
        await asyncio.wait_for(gone, DEADLINE)
        assert self.room.closed == [("HTTP/2.0", None)]
        r = c.raw.responses[sid]
        await c.raw.until(lambda: r.ended)
        await c.raw.close()

    @gen_test
    async def test_many_frames_in_one_read(self) -> None:
        # More than the WebSocket dispatches in one turn (64): the rest
        # waits in the stream and goes on the next turns, in order.
        c, sid, _ = await self.open_ws()
        await c.send(sid, b"".join(client_frame(0x1, b"%d" % i) for i in range(150)))
        for i in range(150):
            assert await c.message(sid) == (0x1, b"%d" % i)
        await c.raw.close()

    @gen_test
    async def test_coroutine_on_message_reads_through_the_stream(self) -> None:
        c, sid, gone = await self.open_ws("/async")
        payload = os.urandom(BIG)
        for data in (b"one", payload, b"two"):
            await c.send(sid, client_frame(0x2, data))
            assert await c.message(sid) == (0x2, data)
        await c.send(sid, client_frame(0x8, close_payload(1000)), end=True)
        assert await c.message(sid) == (0x8, close_payload(1000))
        await asyncio.wait_for(gone, DEADLINE)
        assert self.room.closed == [("HTTP/2.0", 1000)]
        await c.raw.close()

    @gen_test
    async def test_frames_sent_while_open_runs_wait_for_it(self) -> None:
        c = await self.client()
        opened = self.room.expect_open()
        sid = c.open("/gated")
        assert await c.opened(sid) == 200
        await asyncio.wait_for(opened, DEADLINE)
        # A frame larger than the stream's window: its first window's worth
        # stays unread, and unacknowledged, until open() is done.
        payload = os.urandom(BIG)
        frame = client_frame(0x2, payload)
        window = c.raw.conn.local_flow_control_window(sid)
        assert window == WINDOW
        await c.send(sid, frame[:window])
        # Served in order after that DATA: any WINDOW_UPDATE for it would
        # have come first.
        assert (await c.raw.fetch("/plain")).status == 200
        assert c.raw.conn.local_flow_control_window(sid) == 0
        self.gate.set_result(None)
        await c.send(sid, frame[window:])
        assert await c.message(sid) == (0x2, payload)
        await c.raw.close()

    @gen_test
    async def test_drain_closes_with_1001(self) -> None:
        c, sid, gone = await self.open_ws()
        server = self.http_server
        drained = asyncio.ensure_future(server.drain(timeout=DEADLINE, idle_grace=0.0))
        assert await c.message(sid) == (0x8, close_payload(1001, b"server shutting down"))
        await c.raw.until(lambda: c.raw.goaway is not None)
        # (The h2 package sends nothing after a GOAWAY: the client leaves.)
        await c.raw.close()
        await asyncio.wait_for(gone, DEADLINE)
        assert self.room.closed == [("HTTP/2.0", None)]
        assert await asyncio.wait_for(drained, DEADLINE) is True

    @gen_test
    async def test_two_websockets_and_a_get_on_one_connection(self) -> None:
        c, a, b = await self.two_websockets()
        get = c.raw.request("/plain")
        await c.send(a, client_frame(0x1, b"to a"))
        await c.send(b, client_frame(0x1, b"to b"))
        assert await c.message(b) == (0x1, b"to b")
        assert await c.message(a) == (0x1, b"to a")
        r = c.raw.responses[get]
        await c.raw.until(lambda: r.ended)
        assert r.status == 200 and r.body == b"plain HTTP/2.0"
        await c.raw.close()

    @gen_test
    async def test_broadcast_to_http1_and_http2_websockets(self) -> None:
        c, a, b = await self.two_websockets()
        ws1 = await websocket_connect(f"ws://127.0.0.1:{self.get_http_port()}/ws")
        await ws1.write_message("ping")
        assert await ws1.read_message() == "ping"  # it is open: in the room
        assert len(self.room.members) == 3
        result = broadcast(self.room.members, "news")
        assert result.sent == 3 and result.skipped == 0
        assert await c.message(a) == (0x1, b"news")
        assert await c.message(b) == (0x1, b"news")
        assert await ws1.read_message() == "news"
        result = broadcast(self.room.members, b"\x01\x02", binary=True)
        assert result.sent == 3
        assert await c.message(a) == (0x2, b"\x01\x02")
        assert await ws1.read_message() == b"\x01\x02"
        ws1.close()
        await c.raw.close()

    @gen_test
    async def test_broadcast_skips_a_stream_whose_window_is_shut(self) -> None:
        c = await self.client()
        c.raw.auto_ack = False  # the client reads, but never opens its windows
        sid = c.open()
        assert await c.opened(sid) == 200
        big = b"x" * 20_000
        sent = 0
        while True:
            result = broadcast(self.room.members, big, binary=True)
            if result.skipped:
                break
            sent += result.sent
            assert sent < 20, "never skipped"
        assert result == (0, 1, 0, 0)
        # Only the window's worth went out; the rest waits in the core.
        handler = next(iter(self.room.members))
        stream = handler.ws_connection.stream
        assert stream.get_write_buffer_size() >= 64 * 1024
        await c.raw.close()

    @gen_test
    async def test_extended_connect_to_a_plain_handler_is_405(self) -> None:
        c = await self.client()
        sid = c.open("/plain")
        assert await c.opened(sid) == 405
        r = c.raw.responses[sid]
        # The response ends the stream; what the client would send on it
        # is not wanted (RST_STREAM NO_ERROR).
        await c.raw.until(lambda: r.ended and r.reset is not None)
        assert r.reset == 0
        await c.raw.close()

    @gen_test
    async def test_refused_tunnels_give_their_window_back(self) -> None:
        # DATA sent on extended CONNECTs before they are refused waits in
        # their streams; once refused, the connection's window is given
        # back, so it does not run dry for the other streams.
        c = await self.client()
        sids = [c.open("/refuse") for _ in range(4)]
        for sid in sids:
            await c.send(sid, b"x" * 16_000)  # 64,000 of the 65,535
        # Answered after those frames: the server holds them now.
        assert (await c.raw.fetch("/plain")).status == 200
        assert c.raw.conn.outbound_flow_control_window < 16_000
        self.release.set()
        for sid in sids:
            assert await c.opened(sid) == 403
        post = c.raw.request("/plain", method="POST", end=False)
        await c.send(post, b"y" * 30_000, end=True)
        r = c.raw.responses[post]
        await c.raw.until(lambda: r.ended)
        assert r.status == 405  # (Plain has no post(); the body went through)
        await c.raw.close()

    @gen_test
    async def test_other_protocol_is_400(self) -> None:
        c = await self.client()
        sid = c.open(protocol="bytestream")
        assert await c.opened(sid) == 400
        await c.raw.close()

    @gen_test
    async def test_missing_version_is_426(self) -> None:
        c = await self.client()
        conn = c.raw.conn
        sid = conn.get_next_available_stream_id()
        conn.send_headers(
            sid,
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":path", "/ws"),
                (":authority", "localhost"),
            ],
        )
        from ._client import Response

        c.raw.responses[sid] = Response()
        c.raw.flush()
        assert await c.opened(sid) == 426
        assert c.raw.responses[sid].headers["sec-websocket-version"] == "13"
        await c.raw.close()

    @gen_test
    async def test_a_get_that_tells_websockets_by_upgrade_sees_one(self) -> None:
        # A handler written for HTTP/1.1 that relays plain GETs and upgrades
        # WebSockets (as jupyter-server-proxy's does) reads Upgrade; an
        # extended CONNECT had none, and its WebSocket was taken for a GET.
        c, sid, _ = await self.open_ws("/either")
        await c.send(sid, client_frame(0x1, b"hi"))
        assert await c.message(sid) == (0x1, b"hi")
        r = await c.raw.fetch("/either")
        assert (r.status, r.body) == (200, b"plain")
        await c.raw.close()

    @gen_test
    async def test_plain_get_to_a_websocket_handler_is_400(self) -> None:
        c = await self.client()
        r = await c.raw.fetch("/ws")
        assert r.status == 400
        await c.raw.close()


class H2WebSocketTLSTest(AsyncHTTPSTestCase):
    """The same over TLS, ``h2`` chosen by ALPN."""

    def get_app(self) -> Application:
        self.room = Room()
        return Application([("/ws", Echo, {"room": self.room})])

    def get_httpserver_options(self) -> dict[str, Any]:
        options: dict[str, Any] = super().get_httpserver_options()
        return {**options, "http2": True}

    @gen_test
    async def test_echo_over_tls(self) -> None:
        c = await WSClient.connect(self.get_http_port(), tls=True)
        assert c.settings_advertised() == 1
        sid = c.open()
        assert await c.opened(sid) == 200
        await c.send(sid, client_frame(0x1, b"over tls"))
        assert await c.message(sid) == (0x1, b"over tls")
        await c.raw.close()


class H2WebSocketXSRFTest(AsyncHTTPTestCase):
    """XSRF and cross-origin protection: the extended CONNECT is checked by
    check_origin, as the HTTP/1.1 upgrade's GET is, not refused as a POST
    without a token would be."""

    def get_app(self) -> Application:
        self.room = Room()
        return Application(
            [("/ws", Echo, {"room": self.room})],
            xsrf_cookies=True,
            cross_origin_protection=True,
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test
    async def test_same_origin_opens_and_another_origin_is_refused(self) -> None:
        c = await WSClient.connect(self.get_http_port())
        same = c.open(extra=[("origin", "http://localhost")])
        assert await c.opened(same) == 200
        other = c.open(extra=[("origin", "http://evil.example")])
        assert await c.opened(other) == 403
        await c.raw.close()


class Audited(Echo):
    """Jupyter Server's shape: prepare() looks the request's method up by name."""

    def prepare(self) -> None:
        self.looked_up = getattr(self, self.request.method.lower()).__func__


def test_websocket_handler_has_tornados_methods_only() -> None:
    # Jupyter Server walks SUPPORTED_METHODS and refuses to start when a
    # method named after one lacks its authentication decorators; Tornado's
    # WebSocketHandler answers GET only, so the HTTP/2 extended CONNECT must
    # not show up as a method of the class.
    assert WebSocketHandler.SUPPORTED_METHODS == RequestHandler.SUPPORTED_METHODS
    assert not hasattr(WebSocketHandler, "connect")
    assert not hasattr(Audited, "connect")


class H2WebSocketMethodLookupTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.room = Room()
        return Application([("/ws", Audited, {"room": self.room})])

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test
    async def test_extended_connect_runs_get_and_is_looked_up_by_its_name(self) -> None:
        c = await WSClient.connect(self.get_http_port())
        opened = self.room.expect_open()
        sid = c.open()
        assert await c.opened(sid) == 200
        handler = await asyncio.wait_for(opened, DEADLINE)
        assert handler.request.method == "CONNECT"
        assert handler.looked_up is WebSocketHandler.get  # type: ignore[attr-defined]
        await c.send(sid, client_frame(0x1, b"hi"))
        assert await c.message(sid) == (0x1, b"hi")
        await c.raw.close()
