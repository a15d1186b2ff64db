"""The listen() backlog a user gives is the one the kernel has once serving starts.

asyncio's (and uvloop's) ``create_server(sock=...)`` calls ``listen()`` again
when it starts serving, with a backlog of its own (100) unless told one; the
backlog is read back from the kernel with iproute2's ``ss`` (Send-Q of a
listening socket is its backlog).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from squall.httpserver import HTTPServer
from squall.httputil import HTTPServerRequest
from squall.netutil import _listen_backlog, bind_sockets, bind_unix_socket
from squall.web import Application

SS = shutil.which("ss") or ("/usr/sbin/ss" if os.path.exists("/usr/sbin/ss") else None)

pytestmark = [
    pytest.mark.skipif(SS is None, reason="ss is not installed (apt-get install iproute2)"),
    pytest.mark.skipif(not os.uname().sysname == "Linux", reason="ss reads Linux's sock_diag"),
]

LOOPS: list[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]
try:
    import uvloop

    LOOPS.append(uvloop.new_event_loop)
except ImportError:  # pragma: no cover - uvloop is part of the dev install
    pass


def listen_backlog(port: int = 0, path: str = "") -> int:
    """The backlog ``ss`` reports (as Send-Q) for the TCP listener on ``port``
    or the Unix one at ``path``."""
    assert SS is not None
    if path:
        out = subprocess.run([SS, "-lxH"], capture_output=True, text=True, check=True).stdout
        # Netid State Recv-Q Send-Q Local Peer
        rows = [line.split()[1:] for line in out.splitlines() if f" {path} " in f" {line} "]
    else:
        out = subprocess.run(
            [SS, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout
        # State Recv-Q Send-Q Local Peer
        rows = [line.split() for line in out.splitlines() if line.strip()]
    assert len(rows) == 1, out
    assert rows[0][0] == "LISTEN", out
    return int(rows[0][2])


def kernel_backlog(sock: socket.socket) -> int:
    """The backlog the kernel has for a listening socket of ours."""
    if sock.family == socket.AF_UNIX:
        return listen_backlog(path=sock.getsockname())
    return listen_backlog(port=sock.getsockname()[1])


def on_loop(make: Callable[[], asyncio.AbstractEventLoop], body: Coroutine[Any, Any, None]) -> None:
    loop = make()
    try:
        loop.run_until_complete(body)
    finally:
        loop.close()


def respond(request: HTTPServerRequest) -> None:
    request.connection.finish()  # type: ignore[union-attr]


@pytest.mark.parametrize("make_loop", LOOPS, ids=lambda f: f.__module__.split(".")[0])
@pytest.mark.parametrize("backlog", [7, 1000])
def test_add_sockets_keeps_the_backlog_of_bind_sockets(
    make_loop: Callable[[], asyncio.AbstractEventLoop], backlog: int
) -> None:
    async def body() -> None:
        sockets = bind_sockets(0, "127.0.0.1", backlog=backlog)
        assert kernel_backlog(sockets[0]) == backlog
        server = HTTPServer(respond)
        server.add_sockets(sockets)
        try:
            assert kernel_backlog(sockets[0]) == backlog
        finally:
            server.stop()

    on_loop(make_loop, body())


@pytest.mark.parametrize("make_loop", LOOPS, ids=lambda f: f.__module__.split(".")[0])
def test_application_listen_backlog(make_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def body() -> None:
        server = Application().listen(0, "127.0.0.1", backlog=333)
        try:
            (sock,) = server._sockets.values()
            assert kernel_backlog(sock) == 333
        finally:
            server.stop()

    on_loop(make_loop, body())


def test_httpserver_listen_and_bind_backlog() -> None:
    async def body() -> None:
        server = HTTPServer(respond)
        server.listen(0, "127.0.0.1", backlog=211)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            server.bind(0, "127.0.0.1", backlog=212)
            server.start()
        try:
            assert sorted(kernel_backlog(s) for s in server._sockets.values()) == [211, 212]
        finally:
            server.stop()

    on_loop(asyncio.new_event_loop, body())


@pytest.mark.parametrize("make_loop", LOOPS, ids=lambda f: f.__module__.split(".")[0])
def test_unix_socket_backlog(
    make_loop: Callable[[], asyncio.AbstractEventLoop], tmp_path: Path
) -> None:
    async def body() -> None:
        sock = bind_unix_socket(str(tmp_path / "s.sock"), backlog=77)
        server = HTTPServer(respond)
        server.add_sockets([sock])
        try:
            assert kernel_backlog(sock) == 77
        finally:
            server.stop()

    on_loop(make_loop, body())


def test_a_socket_made_elsewhere_keeps_its_backlog() -> None:
    # Not made by bind_sockets (systemd, a supervisor, the user): the
    # backlog is read from the kernel.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(555)
    sock.setblocking(False)
    assert _listen_backlog(sock) == 555

    async def body() -> None:
        server = HTTPServer(respond)
        server.add_sockets([sock])
        try:
            assert kernel_backlog(sock) == 555
        finally:
            server.stop()

    on_loop(asyncio.new_event_loop, body())


def test_the_default_backlog_is_tornados() -> None:
    # 128, as Tornado's (asyncio would have made it 100).
    async def body() -> None:
        server = Application().listen(0, "127.0.0.1")
        try:
            (sock,) = server._sockets.values()
            assert kernel_backlog(sock) == 128
        finally:
            server.stop()

    on_loop(asyncio.new_event_loop, body())
