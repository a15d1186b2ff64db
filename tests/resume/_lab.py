"""What the failure tests share: node processes (forked by tests/resume/_node.py),
killing a process and waiting until it is gone, a reader's requests on
each transport for room ``name`` (channel ``room:<name>``), and what the
reader got (`Received`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from squall.websocket import WebSocketClientConnection, websocket_connect
from tests._wait import HANG_GUARD

from ._clients import H1Stream

REPO = Path(__file__).resolve().parents[2]
DEADLINE = HANG_GUARD  # a hang guard, not a measure of speed


class Received:
    """The ``(data, position)`` pairs a resuming reader got, in order."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def take(self, data: str, position: str) -> None:
        self.got.append((data, position))

    @property
    def last(self) -> str:
        return self.got[-1][1]

    def check(self, total: int, first_offset: int | None = None, epochs: int = 1) -> None:
        """Messages ``m0`` to ``m<total-1>``, each once and in order, at
        consecutive offsets (from ``first_offset`` if given), in ``epochs``
        epochs one after the other (a failover begins one that goes on
        from the old one's offsets)."""
        assert [d for d, _ in self.got] == [f"m{n}" for n in range(total)]
        offsets = [int(p.split("-")[0]) for _, p in self.got]
        start = offsets[0] if first_offset is None else first_offset
        assert offsets == list(range(start, start + total))
        seen = [p.split("-", 1)[1] for _, p in self.got]
        changes = sum(1 for a, b in zip(seen[:-1], seen[1:], strict=True) if a != b)
        assert changes == epochs - 1, seen


class Nodes:
    """The forking parent of tests/resume/_node.py."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.resume._node"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    async def spawn(self, url: str) -> tuple[int, int]:
        """A new node on the broker at ``url``: its port and pid, once it serves."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{url}\n".encode())
        self.proc.stdin.flush()
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), HANG_GUARD)
        port, pid = line.split()
        return int(port), int(pid)

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(5)
        self.proc.stdout.close()


async def killed(pid: int) -> None:
    """SIGKILLs ``pid`` and returns once it is gone (its pidfd readable)."""
    fd = os.pidfd_open(pid)
    try:
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def readable() -> None:  # until remove_reader, maybe more than once
            if not gone.done():
                gone.set_result(None)

        asyncio.get_running_loop().add_reader(fd, readable)
        try:
            os.kill(pid, signal.SIGKILL)
            await asyncio.wait_for(gone, DEADLINE)
        finally:
            asyncio.get_running_loop().remove_reader(fd)
    finally:
        os.close(fd)


# WebSocket (ChannelWebSocket's protocol).


async def ws_subscribe(port: int, name: str, since: Any) -> tuple[WebSocketClientConnection, Any]:
    ws = await websocket_connect(f"ws://127.0.0.1:{port}/live")
    await ws.write_message(json.dumps({"subscribe": f"room:{name}", "since": since}))
    return ws, await ws_read(ws)


async def ws_read(ws: WebSocketClientConnection) -> Any:
    text = await asyncio.wait_for(ws.read_message(), DEADLINE)
    return None if text is None else json.loads(text)


# Server-Sent Events (ChannelEventSource: the id is the position).


async def sse_open(port: int, name: str, last: str = "") -> H1Stream:
    """An event stream of room ``name``, once its first event (``subscribed``) came."""
    headers = {"Last-Event-ID": last} if last else {}
    stream = await H1Stream.open(port, f"/rooms/{name}/events", headers)
    await stream.until(lambda: bool(stream.events()))
    return stream


def sse_messages(stream: H1Stream) -> list[dict[str, str]]:
    return [e for e in stream.events() if e.get("event", "message") == "message"]


# Long polling (ChannelPollHandler: the cursor is the position).


async def poll(port: int, name: str, cursor: str, wait: str = "") -> Any:
    path = f"/rooms/{name}/poll?cursor={cursor}" + (f"&wait={wait}" if wait else "")
    stream = await H1Stream.open(port, path, {"Connection": "close"})
    await stream.until(lambda: stream.ended)
    await stream.leave()
    assert stream.status == 200, stream.body
    return json.loads(stream.body)
