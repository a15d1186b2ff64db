"""SSLIOStream: the non-blocking handshake, verification and its errors."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import ssl
import struct
import termios

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


def _unread(fd: int) -> int:
    """Bytes waiting in the socket's receive queue."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]  # type: ignore[no-any-return]


class _TLSClient:
    """A TLS client driven by hand (an SSLObject over a socket), so that the
    test sees how the server ended the session: close_notify or not."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = client_context().wrap_bio(self.incoming, self.outgoing)

    async def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def handshake(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                self.incoming.write(await loop.sock_recv(self.sock, 65536))
                continue
            await self._flush()
            return

    async def send(self, data: bytes) -> None:
        self.tls.write(data)
        await self._flush()

    async def end_of_session(self) -> str:
        """Reads to the end: "close_notify", or "truncated" (the TCP end alone)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not self.tls.read(65536):
                    return "close_notify"  # (an SSLObject reads it as b"")
            except ssl.SSLWantReadError:
                data = await loop.sock_recv(self.sock, 65536)
                if data:
                    self.incoming.write(data)
                else:
                    self.incoming.write_eof()
            except ssl.SSLEOFError:
                return "truncated"


def test_a_detached_tls_stream_closed_with_bytes_unread_sends_close_notify() -> None:
    # The peer's bytes that nobody read (the stream had paused reading, so
    # they wait in the TLS layer) made OpenSSL refuse the close_notify, and
    # the session ended with a bare TCP end: a truncation, to the peer.
    from squall.httpserver import HTTPServer
    from squall.httputil import HTTPServerRequest

    async def main() -> str:
        loop = asyncio.get_running_loop()
        taken: asyncio.Future[IOStream] = loop.create_future()

        def handle(request: HTTPServerRequest) -> None:
            assert request.connection is not None
            taken.set_result(request.connection.detach())

        server = HTTPServer(handle, ssl_options=server_context())
        lsock = listener()
        server.add_sockets([lsock])
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, lsock.getsockname())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = _TLSClient(sock)
        try:
            await client.handshake()
            await client.send(b"GET / HTTP/1.1\r\nHost: pair\r\n\r\n")
            stream = await taken
            server.stop()
            await client.send(b"first")
            assert await stream.read_bytes(2, partial=True) == b"fi"
            # The rest of "first" is buffered: the stream stops reading;
            # "second" comes after, and the TLS layer holds it unread.
            await client.send(b"second")
            fd = stream.socket.fileno()
            for _ in range(10_000):
                # Until the server's transport has taken it off the socket.
                await asyncio.sleep(0)
                if not _unread(fd):
                    break
            stream.close()
            return await client.end_of_session()
        finally:
            sock.close()

    assert run(main) == "close_notify"
