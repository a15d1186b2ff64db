"""`HTTPServer.stop` called from a thread other than its running loop's.

Test fixtures serve from a thread and stop the server from the test's
(nbdime's ``web_server``: ``server.stop()``, then ``loop.add_callback(loop.stop)``).
The listeners are asyncio servers, whose count of open connections the
loop's thread updates as connections end; closed from the other thread at
the same moment, both threads ended the server's wait and the second failed
(``TypeError: 'NoneType' object is not iterable`` in asyncio's
``Server._wakeup``). The stop is now done on the loop's thread.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from squall import web
from squall.httpserver import HTTPServer
from squall.ioloop import IOLoop
from squall.netutil import bind_sockets


class Hello(web.RequestHandler):
    def get(self) -> None:
        self.finish("hello")


def test_a_stop_from_another_thread_is_done_on_the_loops_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed_on: list[int] = []
    close = asyncio.Server.close

    def recording_close(self: asyncio.Server) -> None:
        closed_on.append(threading.get_ident())
        close(self)

    monkeypatch.setattr(asyncio.Server, "close", recording_close)
    loop = IOLoop(make_current=False)
    (sock,) = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(web.Application([("/", Hello)]))
    listening = threading.Event()
    stopped = threading.Event()
    loop_thread: list[int] = []

    def listen() -> None:
        loop_thread.append(threading.get_ident())
        server.add_sockets([sock])
        listening.set()

    loop.add_callback(listen)
    thread = threading.Thread(target=loop.start, daemon=True)
    thread.start()
    try:
        assert listening.wait(60)
        server.stop()  # from this thread, while the loop runs in the other
        loop.add_callback(stopped.set)  # runs after the stop handed over
        assert stopped.wait(60)
        assert closed_on and set(closed_on) == set(loop_thread), (closed_on, loop_thread)
        assert sock.fileno() == -1  # the listening socket is closed
    finally:
        loop.add_callback(loop.stop)
        thread.join(60)
        loop.close(all_fds=True)
    assert not thread.is_alive()


def test_a_stop_on_the_loops_thread_is_done_at_once() -> None:
    loop = IOLoop(make_current=False)
    (sock,) = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(web.Application([("/", Hello)]))
    seen: list[int] = []

    def listen_then_stop() -> None:
        server.add_sockets([sock])
        server.stop()
        seen.append(sock.fileno())
        loop.stop()

    try:
        loop.add_callback(listen_then_stop)
        loop.start()
    finally:
        loop.close(all_fds=True)
    assert seen == [-1]
    # And with no loop running at all, stop is done where it is called.
    server.stop()
