"""SSLIOStream: the non-blocking handshake, verification and its errors."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import pytest

from squall.iostream import IOStream, SSLIOStream, StreamClosedError
from tests.iostream.conftest import (
    accept,
    client_context,
    listener,
    run,
    server_context,
    ssl_pair,
)


async def server_stream(lsock: socket.socket) -> SSLIOStream:
    conn = await accept(lsock)
    wrapped = server_context().wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    return SSLIOStream(wrapped)


def test_hostname_match() -> None:
    async def main() -> None:
        with listener() as lsock:
            client = SSLIOStream(socket.socket(), ssl_options=client_context(verify=True))
            connected = client.connect(lsock.getsockname(), server_hostname="localhost")
            server = await server_stream(lsock)
            assert await connected is client
            assert client.socket.cipher() is not None
            client.write(b"hi")
            assert await server.read_bytes(2) == b"hi"
            client.close()
            server.close()

    run(main)


def test_hostname_mismatch(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with listener() as lsock:
            client = SSLIOStream(socket.socket(), ssl_options=client_context(verify=True))
            connected = client.connect(lsock.getsockname(), server_hostname="bar.example.com")
            server = await server_stream(lsock)
            closed = asyncio.Event()
            server.set_close_callback(closed.set)
            with pytest.raises(ssl.SSLCertVerificationError):
                await connected
            assert client.closed()
            await closed.wait()
            assert isinstance(server.error, ssl.SSLError)

    with caplog.at_level(logging.WARNING):
        run(main)
    assert "Hostname mismatch" in caplog.text
    assert "SSL Error" in caplog.text


def test_hostname_check_disabled() -> None:
    async def main() -> None:
        with listener() as lsock:
            context = client_context(verify=True)
            context.check_hostname = False
            client = SSLIOStream(socket.socket(), ssl_options=context)
            connected = client.connect(lsock.getsockname(), server_hostname="bar.example.com")
            server = await server_stream(lsock)
            await connected
            client.close()
            server.close()

    run(main)


def test_dict_options_and_writes_before_the_handshake() -> None:
    async def main() -> None:
        with listener() as lsock:
            client = SSLIOStream(socket.socket(), ssl_options={"cert_reqs": ssl.CERT_NONE})
            connected = client.connect(lsock.getsockname())
            written = client.write(b"early")
            read = client.read_bytes(4)
            assert client.writing()
            server = await server_stream(lsock)
            assert await server.read_bytes(5) == b"early"
            await asyncio.gather(connected, written)
            server.write(b"back")
            assert await read == b"back"
            client.close()
            server.close()

    run(main)


def test_wait_for_handshake() -> None:
    async def main() -> None:
        with listener() as lsock:
            client = SSLIOStream(socket.socket(), ssl_options=client_context())
            connected = client.connect(lsock.getsockname())
            server = await server_stream(lsock)
            assert server.socket.cipher() is None  # type: ignore[attr-defined]
            waiting = server.wait_for_handshake()
            with pytest.raises(RuntimeError, match="Already waiting"):
                server.wait_for_handshake()
            assert await waiting is server
            await connected
            # Once done, waiting again resolves at once.
            again = server.wait_for_handshake()
            assert again.done() and again.result() is server
            client.close()
            server.close()
            # A handshake that succeeded stays a success after the close.
            after_close = server.wait_for_handshake()
            assert after_close.done() and after_close.result() is server

    run(main)


def test_handshake_with_plain_peer_fails(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with listener() as lsock:
            client = SSLIOStream(socket.socket(), ssl_options=client_context())
            connected = client.connect(lsock.getsockname())
            plain = IOStream(await accept(lsock))
            plain.write(b"this is not TLS at all\r\n\r\n" * 4)
            with pytest.raises(ssl.SSLError):
                await connected
            plain.close()

    with caplog.at_level(logging.WARNING):
        run(main)
    assert "SSL Error" in caplog.text


def test_peer_hanging_up_mid_handshake_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with listener() as lsock:
            client = SSLIOStream(socket.socket(), ssl_options=client_context())
            connected = client.connect(lsock.getsockname())
            conn = await accept(lsock)
            conn.close()
            with pytest.raises(OSError):
                await connected

    run(main)
    assert "SSL Error" not in caplog.text


def test_connect_refused_fails_the_handshake_future() -> None:
    async def main() -> None:
        with listener() as lsock:
            address = lsock.getsockname()
        client = SSLIOStream(socket.socket(), ssl_options=client_context())
        with pytest.raises(ConnectionRefusedError):
            await client.connect(address)

    run(main)


def test_client_wrap_error_closes(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with listener() as lsock:
            # A verifying context needs a server_hostname; wrapping fails.
            client = SSLIOStream(socket.socket(), ssl_options=ssl.create_default_context())
            connected = client.connect(lsock.getsockname())
            conn = await accept(lsock)
            with pytest.raises(ValueError):
                await connected
            assert client.closed()
            conn.close()

    run(main)


def test_reading_flag_covers_the_handshake() -> None:
    async def main() -> None:
        with listener() as lsock:
            client = SSLIOStream(socket.socket(), ssl_options=client_context())
            connected = client.connect(lsock.getsockname())
            conn = await accept(lsock)
            # The server never answers, so the client waits to read its reply.
            for _ in range(20):
                if client.reading():
                    break
                await asyncio.sleep(0)
            assert client.reading()
            assert not connected.done()
            client.close()
            with pytest.raises(StreamClosedError):
                await connected
            conn.close()

    run(main)


def test_pending_tls_data_is_read_without_a_new_event() -> None:
    async def main() -> None:
        server, client = await ssl_pair(read_chunk_size=16)
        server.write(b"x" * 4000)
        # Small chunks leave decrypted bytes inside the TLS object; each read
        # must still find them.
        for _ in range(250):
            assert await client.read_bytes(16) == b"x" * 16
        server.close()
        client.close()

    run(main)


def test_default_options_verify_the_server(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with listener() as lsock:
            client = SSLIOStream(socket.socket())
            connected = client.connect(lsock.getsockname(), server_hostname="localhost")
            server = await server_stream(lsock)
            # Our test certificate is self-signed: not trusted by default.
            with pytest.raises(ssl.SSLCertVerificationError):
                await connected
            server.close()

    with caplog.at_level(logging.WARNING):
        run(main)
    assert "certificate verify failed" in caplog.text


def test_waiting_for_a_handshake_the_close_cut_short_fails() -> None:
    async def main() -> None:
        with listener() as lsock:
            client = socket.create_connection(lsock.getsockname())
            server = await server_stream(lsock)
            server.close()
            failed = server.wait_for_handshake()
            with pytest.raises(StreamClosedError):
                failed.result()
            client.close()

    run(main)
