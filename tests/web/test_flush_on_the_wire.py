"""`RequestHandler.flush` and `finish` put the bytes on the wire before they return.

Tornado writes to the socket at once, so a handler that flushes or answers
and then blocks the loop (a synchronous step, a slow computation, a
webhook's work after its answer, an ``on_finish`` of its own) has its client
see the bytes meanwhile: progress lines, a page's head, the webhook's 200
before its sender's timeout. The HTTP/1 server here writes a round's
responses in one burst on the loop's next round, and an HTTP/2 or HTTP/3
connection its streams' output once per round; those are written at once
instead, over each protocol. Only a response finished for the handler once its method returned,
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
from squall.testing import AsyncHTTPSTestCase


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


def _h1_client(port: int, seen: _Seen, got: dict[str, bytes], loop: IOLoop) -> None:
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
        got["body"] = data.split(b"\r\n\r\n", 1)[-1]
        loop.add_callback(loop.stop)


def _h2_client(port: int, seen: _Seen, got: dict[str, bytes], loop: IOLoop) -> None:
    # HTTP/2 by prior knowledge: the connection's streams share one write
    # per round, which must not hold a handler's flush back either.
    import h2.config
    import h2.connection
    import h2.events

    body = b""
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        with socket.create_connection(("127.0.0.1", port)) as sock:
            conn.initiate_connection()
            sid = conn.get_next_available_stream_id()
            fields = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")]
            conn.send_headers(sid, fields, end_stream=True)
            sock.sendall(conn.data_to_send())
            ended = False
            while not ended:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.DataReceived):
                        body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, sid)
                    elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                        ended = True
                if b"first;" in body:
                    seen.first.set()
                sock.sendall(conn.data_to_send())
    finally:
        got["body"] = body
        loop.add_callback(loop.stop)


def _h3_client(port: int, seen: _Seen, got: dict[str, bytes], loop: IOLoop) -> None:
    # HTTP/3: the QUIC connection's packets go out once per round too.
    from tests.h3._client import h3_client

    body = b""

    async def fetch() -> bytes:
        async with h3_client(port) as client:
            sid = client.request("/")
            response = client.responses[sid]

            def first_or_end() -> bool:
                return b"first;" in response.body or response.ended or response.reset is not None

            try:
                await client.until(first_or_end, timeout=60)
            except TimeoutError:
                pass  # (the handler's own wait reports it)
            if b"first;" in response.body:
                seen.first.set()
            await client.until(lambda: response.ended or response.reset is not None)
            return response.body

    try:
        body = asyncio.run(fetch())
    finally:
        got["body"] = body
        loop.add_callback(loop.stop)


_CLIENTS = {"http/1.1": _h1_client, "h2": _h2_client, "h3": _h3_client}


@pytest.mark.parametrize("protocol", list(_CLIENTS))
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
    handler: type[SyncFlushThenBlock], protocol: str
) -> None:
    if protocol == "h3":  # (before anything is opened)
        pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")
    seen = _Seen()
    got: dict[str, bytes] = {}
    loop = IOLoop(make_current=False)
    (sock,) = bind_sockets(0, "127.0.0.1")
    app = web.Application([("/", handler, {"seen": seen})])
    if protocol == "h3":
        options = AsyncHTTPSTestCase.default_ssl_options()
        server = HTTPServer(app, ssl_options=options, http3=True)
    else:
        server = HTTPServer(app, http2=protocol == "h2")
    client = _CLIENTS[protocol]

    def listen() -> None:
        server.add_sockets([sock])
        port = sock.getsockname()[1]
        threading.Thread(target=client, args=(port, seen, got, loop), daemon=True).start()

    try:
        loop.add_callback(listen)
        loop.start()
    finally:
        server.stop()
        # An HTTP/2 or HTTP/3 connection outlives its response (the client
        # hung up after it, unseen by the stopped loop): closed here, not
        # left to the collector's ResourceWarning in a later test.
        loop.run_sync(server.close_all_connections)
        loop.close(all_fds=True)
    assert seen.waited == [True], "the flushed part did not reach the client while it blocked"
    body = got["body"]
    assert b"first;" in body and body.rstrip(b"\r\n0").endswith(b"second"), body
