"""The application finds a request's loop without asking asyncio for it.

On Python 3.11, ``asyncio.get_running_loop()`` makes a getpid system call
every time (it checks that the running loop was not inherited across a
fork). The HTTP/1.1 server's connection names the loop that calls its
delegate (``Exchange.loop``), and the application's delegate starts the
handler's coroutine on that one: no system call per request beyond the
transport's. (Invisible to callgrind, which counts no kernel work.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import squall.httputil._exchange
from squall.web import Application, RequestHandler
from tests._wait import HANG_GUARD

from ..server._fakes import make

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


class _Hello(RequestHandler):
    def get(self) -> None:
        self.write("hello")


class _Waits(RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0)
        self.write("waited")


def _serve(delegate: Any, requests: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, bytes]:
    """Serves ``requests`` requests through the HTTP/1.1 protocol over a
    fake transport; returns how often the loop was asked for, and the output."""
    calls = 0
    real = asyncio.get_running_loop

    def counting() -> asyncio.AbstractEventLoop:
        nonlocal calls
        calls += 1
        return real()

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        _, proto, transport = make(loop, delegate)
        with monkeypatch.context() as patch:
            patch.setattr(asyncio, "get_running_loop", counting)
            patch.setattr(asyncio.events, "get_running_loop", counting)
            patch.setattr(squall.httputil._exchange, "_get_running_loop", counting)
            for _ in range(requests):
                proto.data_received(REQUEST)
                # Loop turns without asking for the loop: the handler's Task
                # (if it waited) and the write queue run.
                for _ in range(4):
                    await asyncio.sleep(0)
        data = transport.data
        transport.close()
        await transport.closed_future
        return data

    data = asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
    return calls, data


@pytest.mark.parametrize("handler", [_Hello, _Waits])
def test_the_delegate_asks_asyncio_nothing(
    handler: type[RequestHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, data = _serve(Application([("/", handler)]), 3, monkeypatch)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert calls == 0


def test_behind_the_runners_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    # squall run wraps each request's connection (cli/_serving._AppConnection):
    # the wrapper names the loop of the connection it wraps.
    from squall.cli._serving import ServingDelegate

    delegate = ServingDelegate(Application([("/", _Hello)]), limit_concurrency=10)
    calls, data = _serve(delegate, 3, monkeypatch)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert calls == 0


def test_an_asgi_app_asks_asyncio_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The ASGI server path takes the loop from its connection too.
    from squall.asgi import ASGIServerDelegate

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi"})

    monkeypatch.setattr(squall.httputil._exchange, "_get_running_loop", _refused)
    calls, data = _serve(ASGIServerDelegate(app), 3, monkeypatch)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert calls == 0


def _refused() -> asyncio.AbstractEventLoop:
    raise AssertionError("the ASGI cycle asked asyncio for the loop")


def test_a_duck_typed_connection_still_runs_the_handler() -> None:
    # A connection that is no Exchange names no loop: the delegate asks
    # asyncio, as before.
    from squall.httputil import HTTPHeaders, RequestStartLine

    class Connection:
        def __init__(self) -> None:
            self.written: list[Any] = []

        def set_close_callback(self, callback: Any) -> None:
            pass

        def write_headers(self, start_line: Any, headers: Any, chunk: Any = None) -> Any:
            self.written.append((start_line, chunk))
            return None

        def write(self, chunk: bytes) -> Any:
            self.written.append(chunk)
            return None

        def finish(self) -> None:
            self.written.append("finish")

    async def main() -> Connection:
        conn = Connection()
        app = Application([("/", _Hello)])
        message = app.start_request(None, conn)  # type: ignore[arg-type]
        message.headers_received(RequestStartLine("GET", "/", "HTTP/1.1"), HTTPHeaders())
        message.finish()
        return conn

    conn = asyncio.run(main())
    assert conn.written[0][0].code == 200 and conn.written[-1] == "finish"


# The same through the kernel's eyes: getpid system calls counted by strace
# over a server process's requests (a few at start-up, none per request).
_SERVE_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from squall.httpserver import HTTPServer
    from squall.httpserver._protocol import _HTTPProtocol
    from squall.web import Application, RequestHandler

    class Hello(RequestHandler):
        def get(self):
            self.write("hello")

    class Transport(asyncio.Transport):
        def __init__(self):
            super().__init__()
            self.out = []
        def write(self, data):
            self.out.append(bytes(data))
        def get_extra_info(self, name, default=None):
            return ("10.0.0.1", 4321) if name == "peername" else default
        def is_closing(self):
            return False

    async def main(n):
        loop = asyncio.get_running_loop()
        server = HTTPServer(Application([("/", Hello)]))
        proto = _HTTPProtocol(server, server.conn_params, None, loop)
        transport = Transport()
        proto.connection_made(transport)
        os.getppid()  # the mark: requests from here
        for _ in range(n):
            proto.data_received(b"GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        assert b"".join(transport.out).count(b" 200 OK") == n, transport.out[-1:]

    asyncio.run(main(int(sys.argv[1])))
    """
)


def _getpid_calls(tmp_path: Any) -> tuple[int, int]:
    """getpid system calls of a server process: before its first request
    and while it serves 200 (getppid, traced too, marks the start)."""
    trace = tmp_path / "trace"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=getpid,getppid", "-o", str(trace)]
        + [sys.executable, "-c", _SERVE_SCRIPT, "200"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PYTHONWARNINGS="error"),
    )
    if proc.returncode != 0 and ("ptrace" in proc.stderr or "seccomp" in proc.stderr):
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = trace.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "getppid(" in line)
    before = sum(1 for line in lines[:start] if "getpid(" in line)
    return before, sum(1 for line in lines[start:] if "getpid(" in line)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.skipif(sys.platform != "linux", reason="strace: Linux")
def test_no_getpid_per_request(tmp_path: Any) -> None:
    before, serving = _getpid_calls(tmp_path)
    # (asyncio.run's own, and a few more, are not per request.)
    assert serving < 20, f"{serving} getpid calls for 200 requests ({before} before)"
