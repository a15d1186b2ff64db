"""A tiny HTTP/1.1 origin server for client tests, on asyncio streams and the
sans-I/O core; it counts the connections it accepts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Optional, Union

from squall._h1 import NEED_DATA, ConnectionClosed, Data, EndOfMessage, H1Connection, Request


class Reply:
    """A response: status, headers and body; or ``raw`` bytes written as they are."""

    def __init__(
        self,
        status: int = 200,
        headers: Optional[list[tuple[str, str]]] = None,
        body: bytes = b"",
        *,
        raw: Optional[bytes] = None,
        close: bool = False,
    ) -> None:
        self.status = status
        self.headers = headers or []
        self.body = body
        self.raw = raw
        self.close = close


Handler = Callable[[Request, bytes], Union[Reply, Awaitable[Reply]]]


class MiniServer:
    """Serves ``handler(request, body)`` on 127.0.0.1 (port 0)."""

    def __init__(self, handler: Handler, ssl: Optional[Any] = None) -> None:
        self.handler = handler
        self.ssl = ssl
        self.accepted = 0
        self.closed = 0
        self.closed_event = asyncio.Event()
        self.requests: list[tuple[Request, bytes]] = []
        self.port = 0
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> MiniServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        h1 = H1Connection("server")
        request: Optional[Request] = None
        body = b""
        try:
            while True:
                event = h1.next_event()
                if event is NEED_DATA:
                    h1.receive_data(await reader.read(65536))
                    continue
                if isinstance(event, Request):
                    request, body = event, b""
                    if h1.expects_continue:
                        writer.write(h1.send_informational(100, "Continue"))
                elif isinstance(event, Data):
                    body += event.data
                elif isinstance(event, EndOfMessage):
                    assert request is not None
                    self.requests.append((request, body))
                    reply = self.handler(request, body)
                    if not isinstance(reply, Reply):
                        reply = await reply
                    if reply.raw is not None:
                        writer.write(reply.raw)
                        await writer.drain()
                        if reply.close:
                            break
                        h1 = H1Connection("server")
                        continue
                    headers = list(reply.headers)
                    if reply.close:
                        headers.append(("Connection", "close"))
                    writer.write(
                        h1.send_response(
                            reply.status, HTTPStatus(reply.status).phrase, headers, reply.body
                        )
                    )
                    await writer.drain()
                    if not h1.keep_alive:
                        break
                elif isinstance(event, ConnectionClosed):
                    break
                else:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.closed += 1
            self.closed_event.set()
