"""One streaming GET over HTTP/1.1, HTTP/2 or HTTP/3, read as it arrives.

The SSE tests run the same cases over each protocol through this: `open`
sends the request; `until` reads until a condition on what came holds (or
fails at a deadline); `events` parses the body as an event stream; `leave`
drops the connection as a client that goes away would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Optional

from squall._sse import split_lines
from tests._wait import HANG_GUARD

DEADLINE = HANG_GUARD  # a hang guard, not a measure of speed


def parse_events(body: bytes) -> list[dict[str, str]]:
    """A client's reading of an event stream (HTML 9.2.6): comments and
    id-only blocks are not events (id-only blocks still count: they keep "id")."""
    events: list[dict[str, str]] = []
    data: list[str] = []
    fields: dict[str, str] = {}
    text = body.decode("utf-8")
    # Only complete blocks (a blank line ends one).
    end = text.rfind("\n\n")
    for line in split_lines(text[: end + 1] if end >= 0 else ""):
        if line == "":
            if data:
                events.append({**fields, "data": "\n".join(data)})
            data, fields = [], {}
            continue
        if line.startswith(":"):
            fields.setdefault("comments", "")
            fields["comments"] += line
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    return events


class Stream:
    status = 0
    headers: dict[str, str]
    protocol = ""

    def __init__(self) -> None:
        self.headers = {}

    @property
    def body(self) -> bytes:
        raise NotImplementedError

    @property
    def ended(self) -> bool:
        raise NotImplementedError

    def events(self) -> list[dict[str, str]]:
        return parse_events(self.body)

    async def until(self, condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
        raise NotImplementedError

    async def leave(self) -> None:
        raise NotImplementedError


class H1Stream(Stream):
    protocol = "http/1.1"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__()
        self.reader = reader
        self.writer = writer
        self.raw = b""
        self.eof = False

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str]) -> H1Stream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {path} HTTP/1.1", "Host: localhost"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        stream = cls(reader, writer)
        await stream.until(lambda: stream.status != 0)
        return stream

    def _parse_head(self) -> None:
        if self.status or b"\r\n\r\n" not in self.raw:
            return
        head = self.raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        for line in head[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def _dechunk(self) -> tuple[bytes, bool]:
        rest = self.raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.raw else b""
        if self.headers.get("transfer-encoding") != "chunked":
            length = self.headers.get("content-length")
            return rest, self.eof or (length is not None and len(rest) >= int(length))
        out = b""
        while True:
            line_end = rest.find(b"\r\n")
            if line_end < 0:
                return out, False
            size = int(rest[:line_end], 16)
            if size == 0:
                return out, True
            if len(rest) < line_end + 2 + size + 2:
                return out, False
            out += rest[line_end + 2 : line_end + 2 + size]
            rest = rest[line_end + 2 + size + 2 :]

    @property
    def body(self) -> bytes:
        return self._dechunk()[0]

    @property
    def ended(self) -> bool:
        return self._dechunk()[1] or self.eof

    async def until(self, condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            left = deadline - loop.time()
            if left <= 0 or self.eof:
                raise TimeoutError(f"condition not reached; got {self.raw!r}")
            data = await asyncio.wait_for(self.reader.read(65536), left)
            if not data:
                self.eof = True
            self.raw += data
            self._parse_head()

    async def leave(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class _MuxStream(Stream):
    """A request stream of a multiplexing test client (tests/h2, tests/h3),
    whose responses it reads by stream id."""

    def __init__(self, client: Any, sid: int, exits: contextlib.AsyncExitStack) -> None:
        super().__init__()
        self.client = client
        self.sid = sid
        self.exits = exits

    @classmethod
    async def started(cls, client: Any, sid: int, exits: contextlib.AsyncExitStack) -> Any:
        stream = cls(client, sid, exits)
        await stream.until(lambda: stream.response.status != 0)
        stream.status = stream.response.status
        stream.headers = dict(stream.response.headers)
        return stream

    @property
    def response(self) -> Any:
        return self.client.responses[self.sid]

    @property
    def body(self) -> bytes:
        return bytes(self.response.body)

    @property
    def ended(self) -> bool:
        return bool(self.response.ended)

    async def until(self, condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
        await self.client.until(condition, timeout)

    async def leave(self) -> None:
        await self.exits.aclose()


class H2Stream(_MuxStream):
    protocol = "h2"

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str]) -> H2Stream:
        from tests.h2._client import RawH2

        exits = contextlib.AsyncExitStack()
        client = await RawH2.connect(port)
        exits.push_async_callback(client.close)
        sid = client.request(path, headers=[(k.lower(), v) for k, v in headers.items()])
        return await cls.started(client, sid, exits)


class H3Stream(_MuxStream):
    protocol = "h3"

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str]) -> H3Stream:
        from tests.h3._client import h3_client

        exits = contextlib.AsyncExitStack()
        client = await exits.enter_async_context(h3_client(port))
        sid = client.request(path, headers=[(k.lower(), v) for k, v in headers.items()])
        return await cls.started(client, sid, exits)


OPENERS: dict[str, Any] = {"http/1.1": H1Stream, "h2": H2Stream, "h3": H3Stream}


async def open_stream(
    protocol: str, port: int, path: str, headers: Optional[dict[str, str]] = None
) -> Stream:
    stream: Stream = await OPENERS[protocol].open(port, path, headers or {})
    return stream
