"""WebSocket over HTTP/3 (RFC 9220): an extended CONNECT taken over by `WebSocketHandler`."""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any, Optional

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from squall.testing import gen_test  # noqa: E402
from squall.web import Application  # noqa: E402
from squall.websocket import WebSocketHandler, broadcast  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from ._client import H3Client, h3_client  # noqa: E402
from .test_server import H3TestCase  # noqa: E402


class Echo(WebSocketHandler):
    def on_message(self, message: Any) -> None:
        self.write_message(f"echo {message} over {self.request.version}")

    def on_close(self) -> None:
        self.application.settings["closed"] = self.close_code


class EitherWay(Echo):
    """Relays plain GETs, upgrades WebSockets: told apart by Upgrade, as a
    proxy written for HTTP/1.1 does."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            self.write("plain")
            return
        await super().get(*args, **kwargs)


class AnswersThenWorks(WebSocketHandler):
    """A synchronous on_message that answers and then would block: whether
    a datagram left during its write_message (its answer, encrypted)."""

    def on_message(self, message: Any) -> None:
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        transport = self.ws_connection.stream.carrier()  # type: ignore[attr-defined]
        sent: list[int] = []
        sendto = transport.sendto
        transport.sendto = lambda data, *addr: (sent.append(len(data)), sendto(data, *addr))[1]
        try:
            self.write_message(f"ack {message}")
        finally:
            del transport.sendto
        self.application.settings.setdefault("answered", []).append(bool(sent))


class Member(WebSocketHandler):
    """Says "ready" once open, and lets the test write to it."""

    def open(self) -> None:
        self.application.settings["member"] = self
        self.write_message("ready")

    def on_message(self, message: Any) -> None:
        pass


class WaitsInPrepare(WebSocketHandler):
    """Its prepare() waits for the test; records the hooks that follow."""

    async def prepare(self) -> None:
        settings = self.application.settings
        settings["prepared"].set_result(None)
        await settings["release"]

    def open(self) -> None:
        self.application.settings["hooks"].append("open")
        self.application.settings["opened"].set_result(None)

    def on_close(self) -> None:
        self.application.settings["hooks"].append("on_close")
        self.application.settings["gone"].set_result(None)

    def on_finish(self) -> None:
        self.application.settings["hooks"].append(f"on_finish {self.get_status()}")

    def on_message(self, message: Any) -> None:
        pass


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame, as a client sends it (RFC 6455 section 5.3)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def server_frame(data: bytes) -> Optional[tuple[int, bytes, bytes]]:
    """(opcode, payload, rest) of the first unmasked frame in ``data``."""
    if len(data) < 2:
        return None
    opcode, length = data[0] & 0x0F, data[1] & 0x7F
    pos = 2
    if length == 126:
        (length,) = struct.unpack("!H", data[2:4])
        pos = 4
    elif length == 127:
        (length,) = struct.unpack("!Q", data[2:10])
        pos = 10
    if len(data) < pos + length:
        return None
    return opcode, data[pos : pos + length], data[pos + length :]


def connect(client: H3Client, path: str = "/ws") -> int:
    return client.request(
        path,
        method="CONNECT",
        headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
        end=False,
    )


class H3WebSocketTest(H3TestCase):
    def get_app(self) -> Application:
        return Application(
            [
                ("/ws", Echo),
                ("/either", EitherWay),
                ("/answers", AnswersThenWorks),
                ("/member", Member),
                ("/waits", WaitsInPrepare),
            ]
        )

    @gen_test
    async def test_the_stream_has_a_socket_until_it_closes(self) -> None:
        # As over HTTP/1.1 and HTTP/2: Tornado programs test
        # ``ws_connection.stream.socket`` to tell an open WebSocket from a
        # closed one (the stream had no such attribute: AttributeError).
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = connect(client, "/member")
            r = client.responses[sid]
            await client.until(lambda: server_frame(r.body) is not None)
            stream = self._app.settings["member"].ws_connection.stream
            assert stream.socket is not None
            client.send_body(sid, client_frame(0x8, struct.pack("!H", 1000)))
            await client.until(lambda: r.ended)
        assert stream.socket is None

    @gen_test
    async def test_a_client_gone_before_the_200_finishes_the_handler_once(self) -> None:
        # The connection closes while prepare() waits: as over HTTP/1.1 and
        # HTTP/2, on_close runs then, and the handshake goes on to a closed
        # WebSocket (open() is called) with one on_finish and one log line.
        # Squall's detach of the gone stream failed, and the 500 that
        # followed ran on_finish and the log a second time.
        await self.started()
        loop = asyncio.get_running_loop()
        settings = self._app.settings
        settings.update(
            hooks=[],
            prepared=loop.create_future(),
            release=loop.create_future(),
            opened=loop.create_future(),
            gone=loop.create_future(),
        )
        logged: list[int] = []
        settings["log_function"] = lambda handler: logged.append(handler.get_status())
        async with h3_client(self.get_http_port()) as client:
            connect(client, "/waits")
            await asyncio.wait_for(settings["prepared"], HANG_GUARD)
            client.close()
        await asyncio.wait_for(settings["gone"], HANG_GUARD)
        settings["release"].set_result(None)
        await asyncio.wait_for(settings["opened"], HANG_GUARD)
        assert settings["hooks"] == ["on_close", "on_finish 200", "open"]
        assert logged == [200]

    @gen_test
    async def test_a_client_that_stops_reading_is_skipped_as_over_http1(self) -> None:
        # Over HTTP/1.1 and HTTP/2 a WebSocket whose client stops reading
        # fills up: broadcast() skips it (and can close it for max_buffer)
        # and write_message's future waits. Over HTTP/3 its output went on
        # piling up in the QUIC stack, every broadcast counted it as sent
        # and every write_message was done at once.
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = connect(client, "/member")
            r = client.responses[sid]
            await client.until(lambda: server_frame(r.body) is not None)
            member = self._app.settings["member"]
            stream = member.ws_connection.stream
            assert not stream.writing_paused()
            client.deaf = True
            chunk = "x" * 65536
            results = [broadcast([member], chunk) for _ in range(8)]
            assert results[0].sent == 1
            assert results[-1].skipped == 1
            sent = sum(result.sent for result in results)
            assert stream.writing_paused()
            # Over the session's high-water mark (256 KiB). (aioquic counts
            # what is not acknowledged, qh3 what is not yet transmitted: not
            # the same bytes, both past the mark.)
            assert stream.get_write_buffer_size() > 256 * 1024
            tail = member.write_message("tail")
            assert not tail.done()
            # The client reads again: the backlog drains, the write's future
            # resolves and the WebSocket takes broadcasts again.
            client.deaf = False
            await asyncio.wait_for(tail, HANG_GUARD)
            assert broadcast([member], "again").sent == 1
            expected = [b"ready"] + [chunk.encode()] * sent + [b"tail", b"again"]

            def payloads() -> list[bytes]:
                out, rest = [], r.body
                while (frame := server_frame(rest)) is not None:
                    out.append(frame[1])
                    rest = frame[2]
                return out

            await client.until(lambda: len(payloads()) == len(expected))
            assert payloads() == expected

    @gen_test
    async def test_a_synchronous_answer_leaves_before_the_callback_returns(self) -> None:
        # As over HTTP/1.1 and HTTP/2: a callback that answers and then
        # blocks has its client see the answer meanwhile.
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = connect(client, "/answers")
            r = client.responses[sid]
            await client.until(lambda: r.status != 0)
            assert r.status == 200
            client.send_body(sid, client_frame(0x1, b"x"))
            await client.until(lambda: server_frame(r.body) is not None)
            frame = server_frame(r.body)
            assert frame is not None and frame[:2] == (0x1, b"ack x")
            assert self._app.settings["answered"] == [True]

    @gen_test
    async def test_echo_over_extended_connect(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = connect(client)
            r = client.responses[sid]
            await client.until(lambda: r.status != 0)
            assert r.status == 200
            assert "content-length" not in r.headers
            client.send_body(sid, client_frame(0x1, b"hi"))
            await client.until(lambda: server_frame(r.body) is not None)
            frame = server_frame(r.body)
            assert frame is not None
            assert frame[:2] == (0x1, b"echo hi over HTTP/3")
            # A close from the client: the server answers it and ends the stream.
            client.send_body(sid, client_frame(0x8, struct.pack("!H", 1000)))
            await client.until(lambda: r.ended)
            assert self._app.settings["closed"] == 1000

    @gen_test
    async def test_a_get_that_tells_websockets_by_upgrade_sees_one(self) -> None:
        # As over HTTP/2: the extended CONNECT shows Upgrade: websocket, which
        # a get() written for HTTP/1.1 reads to tell it from a plain GET.
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = connect(client, "/either")
            r = client.responses[sid]
            await client.until(lambda: r.status != 0)
            assert r.status == 200
            client.send_body(sid, client_frame(0x1, b"hi"))
            await client.until(lambda: server_frame(r.body) is not None)
            frame = server_frame(r.body)
            assert frame is not None and frame[:2] == (0x1, b"echo hi over HTTP/3")
            plain = await client.fetch("/either")
            assert (plain.status, plain.body) == (200, b"plain")

    @gen_test
    async def test_drain_closes_with_1001(self) -> None:
        # The server drains: the WebSocket hears going_away (RFC 6455
        # section 7.4.1), as one over HTTP/1.1 or HTTP/2 does.
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = connect(client)
            r = client.responses[sid]
            await client.until(lambda: r.status != 0)
            assert r.status == 200
            drained = asyncio.ensure_future(
                self.http_server.drain(timeout=HANG_GUARD, idle_grace=0.0)
            )
            await client.until(lambda: server_frame(r.body) is not None)
            frame = server_frame(r.body)
            assert frame is not None
            assert frame[0] == 0x8
            assert struct.unpack("!H", frame[1][:2]) == (1001,)
            client.send_body(sid, client_frame(0x8, struct.pack("!H", 1001)))
            assert await asyncio.wait_for(drained, HANG_GUARD) is True

    @gen_test
    async def test_connect_without_protocol_is_refused(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = client.request("/ws", method="CONNECT", end=False)
            r = client.responses[sid]
            await client.until(lambda: r.status != 0 or r.reset is not None)
            assert r.status == 400


class TCPWebSocketBesideH3Test(H3TestCase):
    """With http3 on, TCP exchanges go through the Alt-Svc proxy: a
    WebSocket over HTTP/1.1 (detach through the proxy) still works."""

    def get_app(self) -> Application:
        return Application([("/ws", Echo)])

    @gen_test
    async def test_websocket_over_tls_tcp(self) -> None:
        import ssl

        from squall.httpclient import HTTPRequest
        from squall.websocket import websocket_connect

        await self.started()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        request = HTTPRequest(f"wss://127.0.0.1:{self.get_http_port()}/ws", ssl_options=ctx)
        conn = await websocket_connect(request)
        await conn.write_message("hi")
        assert await conn.read_message() == "echo hi over HTTP/1.1"
        conn.close()
