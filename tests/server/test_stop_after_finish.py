"""A handler that answers and then stops the IOLoop has its answer sent.

Tornado writes a response to the socket before ``finish()`` returns, so
programs end a server from one of its handlers: a shutdown endpoint, a tool
that serves one page and exits when the page says so (nbdime's difftool
closes on ``POST /api/closetool``). The HTTP/1 server here writes what a
loop round produced in one burst, on the loop's next round; asyncio's
``stop`` runs no callback scheduled in the round it is called from, so the
answer must be written when ``IOLoop.start`` returns, before the program
goes on to exit.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

import pytest

from squall import web
from squall.httpserver import HTTPServer
from squall.ioloop import IOLoop
from squall.netutil import bind_sockets


def _read_response(port: int, got: dict[str, bytes], done: threading.Event) -> None:
    """A blocking client: one request, then everything until the body's end or EOF."""
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /stop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            while not data.endswith(b"bye"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    finally:
        got["data"] = data
        done.set()


def _serve_once(handler: type[web.RequestHandler]) -> bytes:
    """Serve until the handler stops the loop; return what the client read."""
    loop = IOLoop(make_current=False)
    got: dict[str, bytes] = {}
    done = threading.Event()
    try:
        (sock,) = bind_sockets(0, "127.0.0.1")
        port = sock.getsockname()[1]
        server = HTTPServer(web.Application([("/stop", handler)]))

        def listen() -> None:
            server.add_sockets([sock])
            threading.Thread(target=_read_response, args=(port, got, done), daemon=True).start()

        loop.add_callback(listen)
        loop.start()
        # The loop has stopped for good (the program would exit now): what
        # the client reads from here on was written before start returned.
        assert done.wait(60), "the client got neither the answer nor EOF"
        server.stop()
    finally:
        loop.close(all_fds=True)
    return got["data"]


class FinishThenStop(web.RequestHandler):
    def post(self) -> None:
        self.finish("bye")
        IOLoop.current().stop()


class StopThenFinish(web.RequestHandler):
    def post(self) -> None:
        IOLoop.current().stop()
        self.finish("bye")


class AsyncFinishThenStop(web.RequestHandler):
    async def post(self) -> None:
        await asyncio.sleep(0)  # finished from the request's Task, a round later
        self.finish("bye")
        IOLoop.current().stop()


class WrittenThenStop(web.RequestHandler):
    # The answer ends when post returns, after the stop.
    def post(self) -> None:
        self.write("bye")
        IOLoop.current().stop()


@pytest.mark.parametrize(
    "handler", [FinishThenStop, StopThenFinish, AsyncFinishThenStop, WrittenThenStop]
)
def test_the_answer_leaves_before_start_returns(handler: type[web.RequestHandler]) -> None:
    data = _serve_once(handler)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"\r\n\r\nbye"), data


def test_a_writer_that_fails_at_the_stop_is_logged_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from squall.platform import asyncio as platform

    def broken(loop: asyncio.AbstractEventLoop) -> None:
        raise RuntimeError("broken writer")

    writers: list[Callable[[asyncio.AbstractEventLoop], None]] = [broken]
    writers += platform._writers_at_stop
    monkeypatch.setattr(platform, "_writers_at_stop", writers)
    data = _serve_once(FinishThenStop)
    assert data.endswith(b"\r\n\r\nbye"), data
    assert "broken writer" in caplog.text
