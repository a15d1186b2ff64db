"""`RequestHandler.flush` and `finish` put the bytes on the wire before they return.

Tornado writes to the socket at once, so a handler that flushes or answers
and then blocks the loop (a synchronous step, a slow computation, a
webhook's work after its answer, an ``on_finish`` of its own) has its client
see the bytes meanwhile: progress lines, a page's head, the webhook's 200
before its sender's timeout. The HTTP/1 server here writes a round's
responses in one burst on the loop's next round; those are written at once
instead. Only a response finished for the handler once its method returned,
with the stock ``on_finish``, leaves with the round's others.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from squall import web
from squall.httpserver import HTTPServer
from squall.ioloop import IOLoop
from squall.netutil import bind_sockets


class _Seen:
    def __init__(self) -> None:
        self.first = threading.Event()  # the client has read the flushed part
        self.waited: list[bool] = []  # what the handler's wait for it returned


def _blocking_wait(seen: _Seen) -> None:
    # The loop is blocked here: only bytes already on the wire reach the client.
    seen.waited.append(seen.first.wait(60))


class SyncFlushThenBlock(web.RequestHandler):
    def initialize(self, seen: _Seen) -> None:
        self.seen = seen

    def get(self) -> None:
        self.write("first;")
        self.flush()
        _blocking_wait(self.seen)
        self.finish("second")


class AsyncFlushThenBlock(SyncFlushThenBlock):
    async def get(self) -> None:  # type: ignore[override]
        self.write("first;")
        self.flush()  # not awaited: the bytes leave before the wait all the same
        _blocking_wait(self.seen)
        self.finish("second")


class ChunkedFlushes(SyncFlushThenBlock):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write("first;")
        self.flush()
        _blocking_wait(self.seen)
        self.write("more;")
        self.flush()
        self.finish("second")


class FinishThenBlock(SyncFlushThenBlock):
    # A webhook: the answer first, then the slow work.
    def get(self) -> None:
        self.finish("first;second")
        _blocking_wait(self.seen)


class AsyncFinishThenBlock(SyncFlushThenBlock):
    async def get(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.finish("first;second")
        _blocking_wait(self.seen)


class OnFinishBlocks(SyncFlushThenBlock):
    # Finished for the handler when get returns; then its own on_finish.
    def get(self) -> None:
        self.write("first;second")

    def on_finish(self) -> None:
        _blocking_wait(self.seen)


def _client(port: int, seen: _Seen, got: dict[str, bytes], loop: IOLoop) -> None:
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"first;" in data:
                    seen.first.set()
    finally:
        got["data"] = data
        loop.add_callback(loop.stop)


@pytest.mark.parametrize(
    "handler",
    [
        SyncFlushThenBlock,
        AsyncFlushThenBlock,
        ChunkedFlushes,
        FinishThenBlock,
        AsyncFinishThenBlock,
        OnFinishBlocks,
    ],
)
def test_a_flush_reaches_the_client_while_the_handler_blocks(
    handler: type[SyncFlushThenBlock],
) -> None:
    seen = _Seen()
    got: dict[str, bytes] = {}
    loop = IOLoop(make_current=False)
    (sock,) = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(web.Application([("/", handler, {"seen": seen})]))

    def listen() -> None:
        server.add_sockets([sock])
        port = sock.getsockname()[1]
        threading.Thread(target=_client, args=(port, seen, got, loop), daemon=True).start()

    try:
        loop.add_callback(listen)
        loop.start()
    finally:
        server.stop()
        loop.close(all_fds=True)
    assert seen.waited == [True], "the flushed part did not reach the client while it blocked"
    body = got["data"].split(b"\r\n\r\n", 1)[1]
    assert b"first;" in body and body.rstrip(b"\r\n0").endswith(b"second"), got["data"]
