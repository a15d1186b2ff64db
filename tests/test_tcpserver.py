"""TCPServer: accepting, handing streams over, TLS, stopping, bind/start."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, Optional, TypeVar
from unittest import mock

import pytest

from squall.httpserver import HTTPServer
from squall.iostream import IOStream, SSLIOStream
from squall.netutil import bind_sockets
from squall.tcpserver import TCPServer
from tests._paths import CERTS
from tests._wait import HANG_GUARD

_T = TypeVar("_T")

CERTFILE = str(CERTS / "test.crt")
KEYFILE = str(CERTS / "test.key")

LIMIT = HANG_GUARD  # a hang guard, not a measure of speed


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


def local_sockets() -> tuple[list[socket.socket], int]:
    sockets = bind_sockets(0, "127.0.0.1", socket.AF_INET)
    return sockets, sockets[0].getsockname()[1]


class RecordingServer(TCPServer):
    """Keeps the accepted streams; the test decides what the handler does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.accepted: asyncio.Queue[tuple[IOStream, Any]] = asyncio.Queue()
        self.streams: list[IOStream] = []

    def handle_stream(self, stream: IOStream, address: Any) -> Any:
        self.streams.append(stream)
        self.accepted.put_nowait((stream, address))
        return None

    def stop(self) -> None:
        super().stop()
        for stream in self.streams:
            stream.close()


async def open_client(port: int) -> IOStream:
    client = IOStream(socket.socket())
    await client.connect(("127.0.0.1", port))
    return client


@contextlib.asynccontextmanager
async def connected(server: TCPServer) -> AsyncIterator[IOStream]:
    """Serves ``server`` on a local port and yields a plain client connected to it."""
    sockets, port = local_sockets()
    server.add_sockets(sockets)
    client = await open_client(port)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(CERTFILE)
    return context


def server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTFILE, KEYFILE)
    return context


def test_listen_hands_each_connection_over_with_its_address() -> None:
    async def main() -> None:
        server = RecordingServer(max_buffer_size=1000, read_chunk_size=100)
        server.listen(0, address="127.0.0.1")
        (sock,) = server._sockets.values()
        client = await open_client(sock.getsockname()[1])
        stream, address = await server.accepted.get()
        assert type(stream) is IOStream
        assert address == client.socket.getsockname()
        assert (stream.max_buffer_size, stream.read_chunk_size) == (1000, 100)
        await client.write(b"hello")
        assert await stream.read_bytes(5) == b"hello"
        client.close()
        server.stop()

    run(main())


def test_coroutine_handler_runs_to_completion() -> None:
    class Echo(TCPServer):
        async def handle_stream(self, stream: IOStream, address: Any) -> None:
            line = await stream.read_until(b"\n")
            await stream.write(line.upper())
            stream.close()

    async def main() -> None:
        server = Echo()
        async with connected(server) as client:
            await client.write(b"shout\n")
            assert await client.read_until_close() == b"SHOUT\n"

    run(main())


def test_coroutine_handler_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(TCPServer):
        async def handle_stream(self, stream: IOStream, address: Any) -> None:
            stream.close()
            raise ZeroDivisionError("handler bug")

    async def main() -> None:
        server = Failing()
        async with connected(server) as client:
            await client.read_until_close()

    with caplog.at_level(logging.ERROR, logger="squall.application"):
        run(main())
    (record,) = [r for r in caplog.records if r.name == "squall.application"]
    assert record.getMessage().startswith("Exception in callback")
    assert record.exc_info is not None and isinstance(record.exc_info[1], ZeroDivisionError)


@pytest.mark.parametrize("server_class", [TCPServer, None])
def test_synchronous_handler_failure_is_logged(
    server_class: Optional[type[TCPServer]], caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(TCPServer):
        def handle_stream(self, stream: IOStream, address: Any) -> None:
            stream.close()
            raise ValueError("handler bug")

    async def main() -> None:
        # The base class's handle_stream is not implemented: logged the same way.
        server = (server_class or Failing)()
        async with connected(server) as client:
            # The server closes a connection whose handler failed.
            await client.read_until_close()

    with caplog.at_level(logging.ERROR, logger="squall.application"):
        run(main())
    (record,) = caplog.records
    assert record.getMessage() == "Error in connection callback"
    expected = NotImplementedError if server_class else ValueError
    assert record.exc_info is not None and isinstance(record.exc_info[1], expected)


def test_a_handler_that_hands_the_stream_on_and_then_fails_keeps_it_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The failure is logged, but the stream may already be served by a task
    # the handler started: it is not closed under that task.
    class HandsOn(TCPServer):
        def __init__(self) -> None:
            super().__init__()
            self.served: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def handle_stream(self, stream: IOStream, address: Any) -> None:
            asyncio.ensure_future(self.serve(stream))
            raise ValueError("bug after the hand-off")

        async def serve(self, stream: IOStream) -> None:
            line = await stream.read_until(b"\n")
            await stream.write(b"echo " + line)
            stream.close()
            self.served.set_result(line)

    async def main() -> None:
        server = HandsOn()
        async with connected(server) as client:
            await client.write(b"hello\n")
            assert await client.read_until_close() == b"echo hello\n"
            assert await server.served == b"hello\n"

    with caplog.at_level(logging.ERROR, logger="squall.application"):
        run(main())
    (record,) = caplog.records
    assert record.getMessage() == "Error in connection callback"


def test_stop_closes_listeners_and_may_be_repeated() -> None:
    async def main() -> None:
        server = RecordingServer()
        sockets, port = local_sockets()
        server.add_sockets(sockets)
        server.stop()
        server.stop()
        assert sockets[0].fileno() == -1
        with pytest.raises(OSError):
            await open_client(port)

    run(main())


def test_stop_after_the_program_closed_the_listeners() -> None:
    # stop() must still make the loop forget the descriptors, or the next
    # listener given the same number cannot be served ("fd N added twice").
    async def main() -> None:
        server = RecordingServer()
        sockets, _ = local_sockets()
        fd = sockets[0].fileno()
        server.add_sockets(sockets)
        sockets[0].close()
        server.stop()
        fresh, port = local_sockets()
        if fresh[0].fileno() != fd:
            os.dup2(fresh[0].fileno(), fd)
            fresh[0].close()
            fresh = [socket.socket(fileno=fd)]
        again = RecordingServer()
        try:
            again.add_sockets(fresh)
            client = await open_client(port)
            await again.accepted.get()
            client.close()
        finally:
            again.stop()
            fresh[0].close()

    run(main())


def test_stop_from_the_handler_keeps_the_accepted_connection() -> None:
    class StopsAtOnce(TCPServer):
        async def handle_stream(self, stream: IOStream, address: Any) -> None:
            self.stop()
            await stream.write(b"still here")
            stream.close()

    async def main() -> None:
        server = StopsAtOnce()
        sockets, port = local_sockets()
        server.add_sockets(sockets)
        client = await open_client(port)
        assert await client.read_until_close() == b"still here"
        client.close()
        assert sockets[0].fileno() == -1

    run(main())


def test_tls_with_an_ssl_options_dict() -> None:
    async def main() -> None:
        server = RecordingServer(ssl_options={"certfile": CERTFILE, "keyfile": KEYFILE})
        sockets, port = local_sockets()
        server.add_sockets(sockets)
        client = SSLIOStream(socket.socket(), ssl_options=client_context())
        await client.connect(("127.0.0.1", port), server_hostname="localhost")
        stream, _ = await server.accepted.get()
        assert isinstance(stream, SSLIOStream)
        await stream.wait_for_handshake()
        await client.write(b"secret")
        assert await stream.read_bytes(6) == b"secret"
        client.close()
        server.stop()

    run(main())


def test_tls_with_a_context_is_used_as_is() -> None:
    context = server_context()
    server = TCPServer(ssl_options=context)
    assert server._ssl_context is context
    assert server.ssl_options is context


def test_ssl_options_are_kept_as_given_until_a_connection_needs_them() -> None:
    # A test that mocks ssl.SSLContext hands over a mock; nothing may look into
    # it at construction or at listen time.
    fake = mock.Mock(spec_set=["wrap_socket"])

    async def main() -> None:
        server = TCPServer(ssl_options=fake)
        sockets, _ = local_sockets()
        server.add_sockets(sockets)
        assert server.ssl_options is fake
        assert fake.mock_calls == []
        server.stop()

    run(main())

    # Bokeh's test: ssl.SSLContext itself mocked, an HTTPServer listening.
    async def http_server() -> None:
        with mock.patch.object(ssl, "SSLContext"):
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certfile="foo")
            server = HTTPServer(lambda request: None, ssl_options=context)
            server.listen(0, address="127.0.0.1")
            assert server.ssl_options is context
            server.stop()

    run(http_server())
    options = {"certfile": CERTFILE, "keyfile": KEYFILE}
    server = TCPServer(ssl_options=options)
    assert server._ssl_made is None and server.ssl_options is options
    context = server._ssl_context
    assert isinstance(context, ssl.SSLContext) and server._ssl_context is context


def test_plain_client_on_tls_server_is_a_warning_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        server = RecordingServer(ssl_options=server_context())
        async with connected(server) as client:
            await client.write(b"GET / HTTP/1.0\r\n\r\n")
            await client.read_until_close()

    with caplog.at_level(logging.WARNING, logger="squall.general"):
        run(main())
    records = [r for r in caplog.records if r.name == "squall.general"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].getMessage().startswith("SSL Error")
    assert records[0].exc_info is None


def test_ssl_options_dict_is_checked_up_front(tmp_path: Path) -> None:
    # The messages are Tornado's, word for word: programs' tests match them.
    with pytest.raises(KeyError) as missing_key:
        TCPServer(ssl_options={"keyfile": KEYFILE})
    assert missing_key.value.args == ('missing key "certfile" in ssl_options',)
    missing = str(tmp_path / "nope.crt")
    with pytest.raises(ValueError) as missing_file:
        TCPServer(ssl_options={"certfile": missing})
    assert str(missing_file.value) == f'certfile "{missing}" does not exist'
    missing = str(tmp_path / "nope.key")
    with pytest.raises(ValueError) as missing_file:
        TCPServer(ssl_options={"certfile": CERTFILE, "keyfile": missing})
    assert str(missing_file.value) == f'keyfile "{missing}" does not exist'
    with pytest.raises(ValueError, match="unknown ssl_options"):
        TCPServer(ssl_options={"certfile": CERTFILE, "keyfile": KEYFILE, "bogus": 1})


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (ssl.SSLEOFError(8, "EOF"), False),
        (OSError(errno.ECONNABORTED, "aborted"), False),
        (OSError(errno.EINVAL, "invalid"), False),
        (OSError(errno.EMFILE, "too many files"), True),
    ],
)
def test_failure_to_wrap_an_accepted_socket(
    error: OSError, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenContext(ssl.SSLContext):
        def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
            raise error

    async def main() -> None:
        server = RecordingServer(ssl_options=BrokenContext(ssl.PROTOCOL_TLS_SERVER))
        ours, theirs = socket.socketpair()
        with theirs:
            server._handle_connection(ours, ("192.0.2.1", 1234))
            assert ours.fileno() == -1
            assert server.accepted.empty()

    with caplog.at_level(logging.ERROR, logger="squall.application"):
        run(main())
    assert [r.getMessage() for r in caplog.records] == (
        ["Cannot start TLS with ('192.0.2.1', 1234)"] if logged else []
    )


def test_bind_and_start_in_one_process() -> None:
    async def main() -> None:
        server = RecordingServer()
        # Deprecated in the docs only, as in Tornado: Bokeh turns warnings
        # into errors and calls both.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            server.bind(0, address="127.0.0.1", family=socket.AF_INET)
            (sock,) = server._pending_sockets
            port = sock.getsockname()[1]
            server.start()
        assert server._pending_sockets == []
        client = await open_client(port)
        await server.accepted.get()
        # Binding after start serves at once.
        server.bind(0, address="127.0.0.1", family=socket.AF_INET)
        assert len(server._sockets) == 2
        with pytest.raises(RuntimeError, match="already"):
            server.start()
        client.close()
        server.stop()

    run(main())


def test_start_with_several_processes_forks_first(monkeypatch: pytest.MonkeyPatch) -> None:
    forks: list[tuple[Optional[int], Optional[int]]] = []

    def fake_fork(num_processes: Optional[int], max_restarts: Optional[int]) -> int:
        forks.append((num_processes, max_restarts))
        return 1  # as in worker 1

    # Patched where it is defined, as a test patches tornado.process: start()
    # must look it up when called.
    monkeypatch.setattr("squall.process.fork_processes", fake_fork)

    async def main() -> None:
        server = RecordingServer()
        server.bind(0, address="127.0.0.1", family=socket.AF_INET)
        server.start(4, max_restarts=7)
        assert forks == [(4, 7)]
        assert len(server._sockets) == 1
        server.stop()

    run(main())


def test_stop_closes_sockets_bound_but_not_started() -> None:
    server = TCPServer()
    server.bind(0, address="127.0.0.1", family=socket.AF_INET)
    (sock,) = server._pending_sockets
    server.stop()
    assert sock.fileno() == -1 and server._pending_sockets == []
