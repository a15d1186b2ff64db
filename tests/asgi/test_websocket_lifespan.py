"""ASGI WebSocket scope and lifespan served by Squall."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from squall.asgi import ASGIProtocolError, ASGIServerDelegate, ClientDisconnected, LifespanFailure
from tests._wait import HANG_GUARD

from ._helpers import request, run, serving


def test_websocket_scope_accept_and_messages_both_ways() -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        assert await receive() == {"type": "websocket.connect"}
        await send({"type": "websocket.accept", "subprotocol": "two", "headers": [(b"x-hi", b"1")]})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                seen.append(message)
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": "echo " + message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})

    async def main() -> None:
        async with serving(app) as (port, delegate, _):
            url = f"ws://127.0.0.1:{port}/chat/%C3%A9?room=1"
            async with connect(url, subprotocols=["one", "two"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "two"
                assert ws.response is not None and ws.response.headers["x-hi"] == "1"
                await ws.send("hello")
                assert await ws.recv() == "echo hello"
                await ws.send(b"abc")
                assert await ws.recv() == b"cba"
                await ws.close(4001, "leaving")
            await delegate.wait_requests(1.0)
        scope = seen[0]
        assert scope["type"] == "websocket" and scope["scheme"] == "ws"
        assert scope["path"] == "/chat/\u00e9" and scope["query_string"] == b"room=1"
        assert scope["subprotocols"] == ["one", "two"]
        assert scope["extensions"] == {"websocket.http.response": {}}
        assert scope["client"][0] == "127.0.0.1" and scope["server"] == ("127.0.0.1", port)
        assert seen[1] == {"type": "websocket.disconnect", "code": 4001, "reason": "leaving"}

    run(main())


def test_app_closes_with_code_and_reason_and_send_after_close_raises() -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4321, "reason": "bye now"})
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except ClientDisconnected as exc:
            errors.append(exc)

    async def main() -> None:
        async with serving(app) as (port, delegate, _):
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
            await delegate.wait_requests(1.0)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4321, "bye now")
        assert isinstance(errors[0], OSError)

    run(main())


def test_a_close_reason_too_long_to_frame_is_cut_and_the_code_kept() -> None:
    # A close frame holds 123 bytes of reason. The application's send
    # completes and the client still gets its code, with as much of the
    # reason as fits, cut between characters (as uvicorn's wsproto server
    # does); the old empty close lost the code too.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4321, "reason": "\u00e9" * 70})

    async def main() -> None:
        async with serving(app) as (port, delegate, _):
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
            await delegate.wait_requests(1.0)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4321, "\u00e9" * 61)

    run(main())


def test_receive_after_refusing_or_denying_is_a_disconnect() -> None:
    # An application that refused the WebSocket (websocket.close before
    # accepting, or a denial response) may go on receiving: Starlette's
    # WebSocketEndpoint does, to run on_disconnect. It hears the WebSocket
    # never opened (1006, as under uvicorn) instead of waiting forever.
    heard: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/refuse":
            await send({"type": "websocket.close", "code": 4403})
        else:
            await send({"type": "websocket.http.response.start", "status": 401})
            await send({"type": "websocket.http.response.body", "body": b"no"})
        heard.append(await receive())

    async def main() -> None:
        async with serving(app) as (port, delegate, _):
            for path, status in (("/refuse", 403), ("/deny", 401)):
                with pytest.raises(InvalidStatus) as info:
                    async with connect(f"ws://127.0.0.1:{port}{path}"):
                        pass
                assert info.value.response.status_code == status
            assert await delegate.wait_requests(HANG_GUARD)

    run(main())
    disconnect = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    assert heard == [disconnect, disconnect]


def test_close_before_accept_is_a_403_and_the_denial_extension_sends_a_response() -> None:
    async def refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async def deny(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain"), (b"x-why", b"token")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})

    async def main() -> None:
        async with serving(refuse) as (port, _, _):
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"ws://127.0.0.1:{port}/"):
                    pass
            assert info.value.response.status_code == 403
        async with serving(deny) as (port, _, _):
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"ws://127.0.0.1:{port}/"):
                    pass
            response = info.value.response
            assert response.status_code == 401
            assert response.headers["x-why"] == "token" and response.body == b"no entry"

    run(main())


def test_websocket_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = []

    async def crash_open(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("handler broke")

    async def wrong_first(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "websocket.send", "text": "x"})
        except ASGIProtocolError as exc:
            errors.append(exc)
            raise

    async def main() -> None:
        async with serving(crash_open) as (port, _, _):
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("trigger")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        async with serving(wrong_first) as (port, _, _):
            with pytest.raises(InvalidStatus) as denied:
                async with connect(f"ws://127.0.0.1:{port}/"):
                    pass
            assert denied.value.response.status_code == 500
            # Not an upgrade at all (no key): answered without the application.
            upgrade = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            status, headers, _ = await request(port, upgrade + b"\r\n")
            assert status == 426 and headers["sec-websocket-version"] == "13"
            status, _, body = await request(port, upgrade + b"Sec-WebSocket-Version: 13\r\n\r\n")
            assert status == 400 and b"WebSocket" in body

    with caplog.at_level(logging.ERROR, "squall.application"):
        run(main())
    assert "handler broke" in caplog.text
    assert str(errors[0]) == (
        "Expected ASGI message 'websocket.accept', 'websocket.close' or "
        "'websocket.http.response.start', but got 'websocket.send'"
    )


def test_websocket_client_gone_is_1006_and_compression_is_negotiated() -> None:
    got: asyncio.Future[Any]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "x" * 1000})
        got.set_result(await receive())

    async def main() -> None:
        nonlocal got
        got = asyncio.get_running_loop().create_future()
        async with serving(app) as (port, _, _):
            ws = await connect(f"ws://127.0.0.1:{port}/", compression="deflate")
            assert "permessage-deflate" in (
                ws.response.headers.get("Sec-WebSocket-Extensions") or ""
            )  # type: ignore[union-attr]
            assert await ws.recv() == "x" * 1000
            ws.transport.abort()
            message = await got
            await ws.close()
        assert message == {"type": "websocket.disconnect", "code": 1006, "reason": ""}

    run(main())


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client's frame, masked with the all-zero key (payload unchanged)."""
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return bytes([0x80 | opcode]) + length + bytes(4) + payload


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (_frame(0x2, bytes(4097)), 1009),  # over ws_max_message_size
        (_frame(0x1, b"\xff"), 1007),  # text that is not UTF-8
        (_frame(0x3, b""), 1002),  # a reserved opcode
    ],
    ids=["too-big", "bad-utf8", "reserved-opcode"],
)
def test_the_server_failing_the_websocket_tells_the_app_its_code(frame: bytes, code: int) -> None:
    # The server closes, not the client: the app hears the code (and the
    # reason) the server's close frame carried, not 1005.
    got: asyncio.Future[Any]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        got.set_result(await receive())

    async def main() -> None:
        nonlocal got
        got = asyncio.get_running_loop().create_future()
        async with serving(app, ws_max_message_size=4096) as (port, _, _):
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                ws.transport.write(frame)
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), HANG_GUARD)
            message = await asyncio.wait_for(got, HANG_GUARD)
        sent = info.value.rcvd
        assert sent is not None and sent.code == code
        assert message == {"type": "websocket.disconnect", "code": code, "reason": sent.reason}

    run(main())


def test_lifespan_startup_state_and_shutdown() -> None:
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            assert scope["asgi"]["version"] == "3.0"
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        scope["state"]["mutated"] = True  # a copy per request
        body = repr(sorted(scope["state"].items())).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def main() -> None:
        async with serving(app, lifespan=True) as (port, delegate, _):
            assert delegate.lifespan.supported
            _, _, first = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            _, _, second = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert delegate.state == {"db": "connected"}
        assert first == second == b"[('db', 'connected'), ('mutated', True)]"
        assert events == ["lifespan.startup", "lifespan.shutdown"]

    run(main())


@pytest.mark.parametrize("stage", ["startup", "shutdown"])
def test_lifespan_failed_raises_with_the_message(stage: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == f"lifespan.{stage}":
                await send({"type": f"{kind}.failed", "message": "no database"})
                return
            await send({"type": f"{kind}.complete"})

    async def main() -> None:
        delegate = ASGIServerDelegate(app)
        if stage == "startup":
            with pytest.raises(LifespanFailure, match="startup failed: no database"):
                await delegate.startup()
            return
        await delegate.startup()
        with pytest.raises(LifespanFailure, match="shutdown failed: no database"):
            await delegate.shutdown()

    run(main())


def test_lifespan_unsupported_app_in_auto_and_on_modes(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("only http here")

    async def wrong_answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> None:
        auto = ASGIServerDelegate(app)
        await auto.startup()
        assert not auto.lifespan.supported
        await auto.shutdown()  # nothing to do
        strict = ASGIServerDelegate(app, lifespan="on")
        with pytest.raises(LifespanFailure, match="ValueError: only http here"):
            await strict.startup()
        off = ASGIServerDelegate(wrong_answer, lifespan="off")
        await off.startup()
        with pytest.raises(LifespanFailure, match="Expected ASGI message 'lifespan.startup"):
            await ASGIServerDelegate(wrong_answer, lifespan="on").startup()

    with caplog.at_level(logging.INFO, "squall.application"):
        run(main())
    assert "unsupported" in caplog.text
    with pytest.raises(ValueError, match="lifespan mode"):
        ASGIServerDelegate(app, lifespan="sometimes")  # type: ignore[arg-type]


def test_websockets_library_is_recent() -> None:
    # The client API used above (websockets.asyncio) arrived in websockets 13.
    assert int(websockets.__version__.split(".")[0]) >= 13
