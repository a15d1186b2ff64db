"""A TCP proxy between a browser and a server, for cutting the network.

`cut` drops every connection and refuses new ones (a server gone, a
network down) until ``up`` is set again. `freeze` leaves its connections
open and carries nothing more on them, either way (a NAT that forgot
them, a laptop back from sleep, a phone on another network: half-open
connections that TCP takes minutes to notice), while new connections go
through.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Optional


class CutProxy:
    """A TCP proxy to ``port`` (of ``host``) whose connections the test can cut or freeze."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.target = port
        self.host = host
        self.up = True
        self.refused = 0
        self.refusals: asyncio.Queue[None] = asyncio.Queue()
        self.accepted = 0
        self.links: set[asyncio.StreamWriter] = set()
        self.frozen: set[asyncio.StreamWriter] = set()
        self.server: Optional[asyncio.Server] = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.refused += 1
            self.refusals.put_nowait(None)
            writer.transport.abort()
            return
        self.accepted += 1
        # Linked at once: a cut while the connection to the server is
        # being made must drop this one too (it used to slip through and
        # carry the page's retries on, kept alive, with nothing refused).
        self.links.add(writer)
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target)
        if not self.up or writer not in self.links:
            up_writer.transport.abort()
            writer.transport.abort()
            self.links.discard(writer)
            return
        self.links.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.links.difference_update((writer, up_writer))
        self.frozen.difference_update((writer, up_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if writer in self.frozen:
                    continue  # lost on the way: neither end hears of it
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def cut(self) -> None:
        self.up = False
        for writer in list(self.links):
            writer.transport.abort()
        self.links.clear()

    def freeze(self) -> int:
        """Carries nothing more on the connections open now; how many there are."""
        self.frozen.update(self.links)
        return len(self.links) // 2

    async def close(self) -> None:
        self.cut()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
