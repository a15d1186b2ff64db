"""Where a request's delegate is called when code other than Squall's wraps it.

An instrumentation that wraps ``HTTPServer.start_request`` (New Relic's
agent) starts its transaction in the delegate's ``headers_received`` and
finds it again in the handler: by the current asyncio Task, or by a
contextvar. Tornado calls the delegate from a Task that reads the
connection, so both hold; the handler's Task is started from there.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import socket
from collections.abc import Callable, Iterator
from typing import Any, Optional
from unittest import mock

import pytest

from squall import web
from squall.httpserver import HTTPServer
from squall.httpserver._intask import python_methods
from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    RequestStartLine,
    ResponseStartLine,
)
from tests._wait import HANG_GUARD, until

LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])

# The value a wrapper of headers_received sets: the request's path.
_current: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("_current", default=None)


class _Echo(web.RequestHandler):
    """Answers with what the contextvar holds in the handler."""

    def post(self, name: str) -> None:
        self.write(f"{name}:{_current.get()}")


class _Recorder:
    """Wraps each request's headers_received on the instance, as New Relic's agent does."""

    def __init__(self) -> None:
        self.tasks: dict[str, Optional[asyncio.Task[Any]]] = {}
        self.original = HTTPServer.start_request

    def start_request(
        self, server: HTTPServer, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        delegate = self.original(server, server_conn, request_conn)
        received = delegate.headers_received

        def headers_received(start_line: RequestStartLine, headers: HTTPHeaders) -> Optional[Any]:
            name = start_line.path.rsplit("/", 1)[-1]
            _current.set(name)
            self.tasks[name] = asyncio.current_task()
            return received(start_line, headers)

        delegate.headers_received = headers_received  # type: ignore[method-assign,assignment]
        return delegate


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    rec = _Recorder()

    def start_request(
        server: HTTPServer, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        return rec.start_request(server, server_conn, request_conn)

    with mock.patch.object(HTTPServer, "start_request", start_request):
        yield rec


def _run(loop_name: str, main: Callable[[], Any]) -> Any:
    factory: Optional[Callable[[], asyncio.AbstractEventLoop]] = None
    if loop_name == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(main(), HANG_GUARD))


async def _two_interleaved_posts(
    server: HTTPServer, port: int, seen: Callable[[str], bool]
) -> list[bytes]:
    """Heads of /a and /b on two connections, then the bodies: a, then b."""
    streams = []
    try:
        for name in ("a", "b"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            streams.append((reader, writer))
            writer.write(f"POST /{name} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n".encode())
            await until(lambda name=name: seen(name))  # type: ignore[misc]
        bodies = []
        for reader, writer in streams:
            writer.write(b".")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            bodies.append(await reader.readexactly(length))
        return bodies
    finally:
        for _, writer in streams:
            writer.close()
        server.stop()
        await server.close_all_connections()


def _listen(app: Any) -> tuple[HTTPServer, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = HTTPServer(app)
    server.add_sockets([sock])
    return server, sock.getsockname()[1]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_headers_received_runs_in_a_task_of_its_own_request(
    loop_name: str, recorder: _Recorder
) -> None:
    # New Relic's agent keys its current transaction by asyncio.current_task():
    # two requests at once must not share one (nor none, the thread's). Their
    # heads arrive before either body: each handler sees the value its own
    # request's headers_received set in a contextvar, not the other's.
    async def main() -> list[bytes]:
        server, port = _listen(web.Application([(r"/(\w+)", _Echo)]))
        return await _two_interleaved_posts(server, port, lambda name: name in recorder.tasks)

    assert _run(loop_name, main) == [b"a:a", b"b:b"]
    a, b = recorder.tasks["a"], recorder.tasks["b"]
    assert a is not None and b is not None and a is not b


class _Own(HTTPMessageDelegate):
    """A program's own delegate: its finish answers with the contextvar."""

    def __init__(self, conn: HTTPConnection, heads: list[str]) -> None:
        self.conn = conn
        self.heads = heads

    def headers_received(
        self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders
    ) -> None:
        assert isinstance(start_line, RequestStartLine)
        name = start_line.path.rsplit("/", 1)[-1]
        _current.set(name)
        self.heads.append(name)

    def finish(self) -> None:
        body = f"{_current.get()}".encode()
        self.conn.write_headers(
            ResponseStartLine("HTTP/1.1", 200, "OK"),
            HTTPHeaders({"Content-Length": str(len(body))}),
        )
        self.conn.write(body)
        self.conn.finish()


class _OwnServer(HTTPServer):
    """A server whose subclass gives each request a delegate of its own."""

    heads: list[str] = []

    def start_request(self, server_conn: object, request_conn: HTTPConnection) -> _Own:
        return _Own(request_conn, self.heads)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_subclass_delegate_keeps_its_contextvar_to_finish(loop_name: str) -> None:
    # Its headers_received and finish see one Context, its request's: on
    # uvloop the protocol callbacks of all connections share one.
    heads: list[str] = []

    async def main() -> list[bytes]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        server = _OwnServer(web.Application())
        server.heads = heads
        server.add_sockets([sock])
        return await _two_interleaved_posts(
            server, sock.getsockname()[1], lambda name: name in heads
        )

    assert _run(loop_name, main) == [b"a", b"b"]


class _CompiledLike(HTTPMessageDelegate):
    """A delegate whose method is bound as a builtin, as a compiled class's is."""

    headers_received = staticmethod(max)  # type: ignore[assignment]


def test_a_delegate_with_builtin_methods_gets_a_front_whose_methods_bind() -> None:
    # New Relic's agent reads the delegate from the bound method it wraps
    # (wrapt's instance), then takes its wrapper out of vars(delegate).
    plain = _Own(mock.Mock(), [])
    assert python_methods(plain) is plain
    inner = _CompiledLike()
    front = python_methods(inner)
    assert front is not inner and front.headers_received.__self__ is front  # type: ignore[attr-defined]
    assert front.headers_received(1, 2) == 2
    assert vars(front) == {"delegate": inner}
