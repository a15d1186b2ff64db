"""python-socketio's Tornado mode on Squall: a Socket.IO server as its users run it.

``socketio.get_tornado_handler`` makes a WebSocketHandler subclass that
answers Engine.IO's long polls from ``get`` and ``post`` (coroutines that
wait on the server's queues), takes the upgrade through ``super().get()``,
and runs ``open`` and ``on_message`` as coroutines, with permessage-deflate
on. The client here speaks Engine.IO 4 by hand: a handshake and an event
with its acknowledgement over long polling, then the upgrade to a WebSocket
(probe, upgrade, events), and the disconnect.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import squall.compat
from squall.httpclient import AsyncHTTPClient
from squall.httpserver import HTTPServer
from squall.netutil import bind_sockets
from squall.websocket import websocket_connect

from .._wait import until
from ..asgi._helpers import run

if importlib.util.find_spec("socketio") is None:  # (imported by the fixture alone)
    pytest.skip("python-socketio is not installed", allow_module_level=True)

_SEPARATOR = "\x1e"  # between the packets of one polling payload


@pytest.fixture
def socketio_on_squall() -> Iterator[Any]:
    """python-socketio, imported with Squall as tornado (its Tornado driver
    imports tornado when socketio is imported), and forgotten after."""

    def forget() -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in ("socketio", "engineio"):
                del sys.modules[name]

    forget()
    squall.compat.install()
    try:
        yield importlib.import_module("socketio")
    finally:
        forget()
        squall.compat.uninstall()


def _server(socketio: Any, seen: list[Any]) -> Any:
    sio = socketio.AsyncServer(async_mode="tornado")

    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        await sio.emit("welcome", {"auth": auth}, to=sid)

    async def echo(sid: str, data: Any) -> Any:
        return {"echo": data, "transport": sio.transport(sid)}

    async def disconnect(sid: str, reason: Any = None) -> None:
        seen.append(("disconnect", str(reason)))

    for handler in (connect, echo, disconnect):
        sio.on(handler.__name__, handler)
    return sio


def test_a_socketio_client_polls_upgrades_and_leaves(socketio_on_squall: Any) -> None:
    from squall import web

    socketio = socketio_on_squall
    seen: list[Any] = []

    async def main() -> None:
        sio = _server(socketio, seen)
        # The polls that reached Engine.IO: a client upgrades only while a
        # poll of its is waiting there (the test waits for that, rather than
        # for the poll's request to win a race with the probe).
        polls_in = asyncio.Queue()
        handle_request = sio.eio.handle_request

        async def counted(handler: Any) -> Any:
            if handler.request.method == "GET" and "transport=polling" in handler.request.query:
                polls_in.put_nowait(None)
            return await handle_request(handler)

        sio.eio.handle_request = counted
        app = web.Application([(r"/socket.io/", socketio.get_tornado_handler(sio))])
        (sock,) = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets([sock])
        base = f"127.0.0.1:{sock.getsockname()[1]}/socket.io/?EIO=4"
        http = AsyncHTTPClient()

        async def poll(sid: str) -> list[str]:
            r = await http.fetch(f"http://{base}&transport=polling&sid={sid}")
            return r.body.decode().split(_SEPARATOR)

        async def post(sid: str, packet: str) -> None:
            url = f"http://{base}&transport=polling&sid={sid}"
            r = await http.fetch(url, method="POST", body=packet.encode())
            assert r.body == b"OK"

        try:
            # The handshake, over long polling.
            r = await http.fetch(f"http://{base}&transport=polling")
            body = r.body.decode()
            assert body.startswith("0"), body
            handshake = json.loads(body[1:])
            sid = handshake["sid"]
            assert "websocket" in handshake["upgrades"]
            await post(sid, '40{"token":"t1"}')  # connect to "/", with auth
            packets = await poll(sid)
            if len(packets) < 2:
                packets += await poll(sid)
            # (python-socketio sends what the connect handler emits first.)
            assert sorted(p[:2] for p in packets) == ["40", "42"], packets
            assert '42["welcome",{"auth":{"token":"t1"}}]' in packets
            # An event with an acknowledgement: the answer comes on a poll
            # that waits for it (the handler's get waits on the queue).
            waiting = asyncio.ensure_future(poll(sid))
            await post(sid, '421["echo",{"x":"\u00fc\u00fc"}]')
            reply = json.loads((await waiting)[0][3:])
            assert reply == [{"echo": {"x": "\u00fc\u00fc"}, "transport": "polling"}]
            # The upgrade: probe, then the switch; the pending poll ends.
            ws = await websocket_connect(f"ws://{base}&transport=websocket&sid={sid}")
            while not polls_in.empty():
                polls_in.get_nowait()
            pending = asyncio.ensure_future(poll(sid))
            await polls_in.get()
            await ws.write_message("2probe")
            assert await ws.read_message() == "3probe"
            await ws.write_message("5")
            assert (await pending)[0] == "6"  # a noop: the poll is released
            big = "y" * 100_000
            await ws.write_message(f'422["echo","{big}"]')
            message = await ws.read_message()
            for _ in range(5):  # past Engine.IO's noop and ping packets
                if not (isinstance(message, str) and message in ("6", "2")):
                    break
                if message == "2":
                    await ws.write_message("3")
                message = await ws.read_message()
            assert isinstance(message, str), message
            assert message.startswith("432"), message[:40]
            assert json.loads(message[3:]) == [{"echo": big, "transport": "websocket"}]
            await ws.write_message("41")  # leave the namespace
            await until(lambda: bool(seen))
            ws.close()
        finally:
            server.stop()
            await server.close_all_connections()

    run(main())
    assert seen and seen[0][0] == "disconnect", seen
