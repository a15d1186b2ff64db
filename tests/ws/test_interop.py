"""Interoperability with the independent `websockets` package, both ways, with and without compression."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from squall.testing import AsyncHTTPTestCase, AsyncTestCase, gen_test
from squall.web import Application
from squall.websocket import WebSocketHandler, websocket_connect

websockets = pytest.importorskip("websockets")

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import ServerConnection, serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402


class Echo(WebSocketHandler):
    def initialize(self, options: Optional[dict[str, Any]]) -> None:
        self.options = options

    def get_compression_options(self) -> Optional[dict[str, Any]]:
        return self.options

    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        return subprotocols[0] if subprotocols else None

    def on_message(self, message: Any) -> None:
        if message == "close please":
            self.close(4001, "as asked")
            return
        self.write_message(message, binary=isinstance(message, bytes))


MESSAGES: list[Any] = ["hello", "caf\u00e9 " * 1000, b"\x00\x01\xff" * 30000, "", b""]


class WebsocketsClientOurServer(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application(
            [("/plain", Echo, dict(options=None)), ("/deflate", Echo, dict(options={}))]
        )

    async def exchange(self, path: str, compression: Optional[str]) -> Any:
        url = f"ws://127.0.0.1:{self.get_http_port()}{path}"
        async with connect(
            url, compression=compression, subprotocols=["chat"], max_size=None
        ) as ws:
            assert ws.subprotocol == "chat"
            for message in MESSAGES:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.send("close please")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "as asked")
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    @gen_test
    async def test_uncompressed(self) -> None:
        assert await self.exchange("/plain", None) is None
        # A server without compression declines the client's offer.
        assert await self.exchange("/plain", "deflate") is None

    @gen_test
    async def test_compressed(self) -> None:
        extensions = await self.exchange("/deflate", "deflate")
        assert extensions is not None and extensions.startswith("permessage-deflate")


class OurClientWebsocketsServer(AsyncTestCase):
    async def serve(self, compression: Optional[str]) -> Any:
        async def echo(connection: ServerConnection) -> None:
            try:
                async for message in connection:
                    if message == "close please":
                        await connection.close(4002, "bye")
                        return
                    await connection.send(message)
            except ConnectionClosed:
                pass

        server = await serve(
            echo,
            "127.0.0.1",
            0,
            compression=compression,
            subprotocols=["chat"],  # type: ignore[list-item]
            max_size=None,
        )
        self.addCleanup(server.close)
        port = server.sockets[0].getsockname()[1]
        return server, port

    async def exchange(self, compression: Optional[str], options: Optional[dict[str, Any]]) -> Any:
        server, port = await self.serve(compression)
        ws = await websocket_connect(
            f"ws://127.0.0.1:{port}/", compression_options=options, subprotocols=["chat"]
        )
        assert ws.selected_subprotocol == "chat"
        for message in MESSAGES:
            ws.write_message(message, binary=isinstance(message, bytes))
            assert await ws.read_message() == message
        ws.ping(b"are you there")
        ws.write_message("close please")
        assert await ws.read_message() is None
        assert (ws.close_code, ws.close_reason) == (4002, "bye")
        server.close()
        await server.wait_closed()
        return ws

    @gen_test
    async def test_uncompressed(self) -> None:
        ws = await self.exchange(None, None)
        assert "Sec-WebSocket-Extensions" not in ws.headers

    @gen_test
    async def test_compressed(self) -> None:
        ws = await self.exchange("deflate", {})
        assert ws.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        assert ws.protocol._wire_bytes_in < ws.protocol._message_bytes_in

    @gen_test
    async def test_compressed_without_context_takeover(self) -> None:
        ws = await self.exchange(
            "deflate",
            {
                "client_no_context_takeover": True,
                "server_no_context_takeover": True,
                "client_max_window_bits": 10,
            },
        )
        assert "server_no_context_takeover" in ws.headers["Sec-WebSocket-Extensions"]
