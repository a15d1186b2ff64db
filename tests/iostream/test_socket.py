"""IOStream on sockets: connecting, errors, options, and switching to TLS."""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import socket
import ssl
from unittest import mock

import pytest

from squall.iostream import IOStream, SSLIOStream, StreamClosedError
from tests._wait import HANG_GUARD
from tests.iostream.conftest import (
    CERTFILE,
    KEYFILE,
    accept,
    client_context,
    detached_pair,
    listener,
    run,
    server_context,
    tcp_pair,
    until,
)


def refusing_address() -> tuple[str, int]:
    """An address nothing listens on (the port of a live client socket)."""
    with listener() as lsock:
        return lsock.getsockname()  # type: ignore[no-any-return]


def test_connect_resolves_to_the_stream() -> None:
    async def main() -> None:
        with listener() as lsock:
            stream = IOStream(socket.socket())
            assert stream.fileno() is stream.socket
            result = await asyncio.gather(stream.connect(lsock.getsockname()), accept(lsock))
            assert result[0] is stream
            result[1].close()
            stream.close()

    run(main)


def test_write_while_connecting_is_sent_after_connect() -> None:
    async def main() -> None:
        with listener() as lsock:
            stream = IOStream(socket.socket())
            order: list[str] = []
            connected = stream.connect(lsock.getsockname())
            written = stream.write(b"early")
            assert not connected.done()
            connected.add_done_callback(lambda _: order.append("connect"))
            written.add_done_callback(lambda _: order.append("write"))
            conn = await accept(lsock)
            server = IOStream(conn)
            assert await server.read_bytes(5) == b"early"
            await written
            assert order == ["connect", "write"]
            server.close()
            stream.close()

    run(main)


def test_read_before_connect_completes() -> None:
    async def main() -> None:
        with listener() as lsock:
            stream = IOStream(socket.socket())
            connected = stream.connect(lsock.getsockname())
            fut = stream.read_bytes(3)
            server = IOStream(await accept(lsock))
            await connected
            server.write(b"abc")
            assert await fut == b"abc"
            server.close()
            stream.close()

    run(main)


def test_connection_refused() -> None:
    async def main() -> None:
        stream = IOStream(socket.socket())
        closed = asyncio.Event()
        stream.set_close_callback(closed.set)
        with pytest.raises(StreamClosedError) as info:
            await stream.connect(refusing_address())
        assert isinstance(stream.error, ConnectionRefusedError)
        assert info.value.real_error is stream.error
        await closed.wait()

    run(main)


def test_connect_error_raised_synchronously_by_the_socket() -> None:
    async def main() -> None:
        stream = IOStream(socket.socket())
        with mock.patch("socket.socket.connect", side_effect=socket.gaierror(errno.EIO, "boom")):
            with pytest.raises(StreamClosedError):
                await stream.connect(("localhost", 80))
        assert isinstance(stream.error, socket.gaierror)

    run(main)


def test_connect_with_a_bad_address_type_raises() -> None:
    async def main() -> None:
        stream = IOStream(socket.socket())
        with mock.patch("socket.socket.connect", side_effect=TypeError("bad address")):
            with pytest.raises(TypeError):
                stream.connect(("localhost", 80))
        assert not stream.closed()
        stream.close()

    run(main)


def test_connect_on_a_closed_stream_raises_instead_of_hanging() -> None:
    # Before, the closed socket's EBADF went to close(), a no-op on a closed
    # stream, and the Future never resolved.
    async def main() -> None:
        stream = IOStream(socket.socket())
        stream.close()
        with pytest.raises(StreamClosedError):
            stream.connect(refusing_address())

    run(main)


def test_peer_reset_counts_as_a_clean_close() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        real = rs.read_from_fd

        def read_from_fd(buf: bytearray | memoryview) -> int | None:
            n = real(buf)
            if n == 0:
                raise ConnectionResetError(errno.ECONNRESET, "reset")
            return n

        rs.read_from_fd = read_from_fd  # type: ignore[method-assign]
        ws.write(b"1234")
        assert await rs.read_bytes(1) == b"1"
        ws.close()
        assert await rs.read_until_close() == b"234"
        assert isinstance(rs.error, ConnectionResetError)

    run(main)


def test_inline_read_error_is_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        os.close(rs.socket.fileno())
        with pytest.raises(OSError):
            rs.read_bytes(1)
        assert rs.closed()
        ws.close()

    run(main)
    assert "error on read" not in caplog.text


def test_async_read_error_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        closed = asyncio.Event()
        rs.set_close_callback(closed.set)
        fut = rs.read_bytes(1)

        def broken(buf: bytearray | memoryview) -> int:
            raise OSError(errno.EIO, "disk on fire")

        rs.read_from_fd = broken  # type: ignore[method-assign]
        ws.write(b"a")
        await closed.wait()
        with pytest.raises(StreamClosedError) as info:
            fut.result()
        assert isinstance(info.value.real_error, OSError)
        ws.close()

    run(main)
    assert caplog.text.count("error on read") == 1


def test_unexpected_write_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()

        def broken(data: memoryview) -> int:
            raise OSError(errno.EIO, "disk on fire")

        ws.write_to_fd = broken  # type: ignore[method-assign]
        with pytest.raises(StreamClosedError):
            await ws.write(b"x")
        rs.close()

    run(main)
    assert "Write error" in caplog.text


def test_handler_bug_is_logged_and_closes(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rs.set_close_callback(lambda: closed.set_result(None))

        def boom() -> None:
            raise RuntimeError("bug")

        # Data arriving with no read pending goes through _read_ahead.
        rs._read_ahead = boom  # type: ignore[method-assign]
        ws.write(b"a")
        await asyncio.wait_for(closed, HANG_GUARD)
        assert rs.closed()
        ws.close()

    run(main)
    assert "Uncaught exception" in caplog.text


def test_error_event_closes_with_the_fd_error() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        fut = rs.read_bytes(1)
        rs._handle_events(rs.fileno(), 0x018)
        with pytest.raises(StreamClosedError):
            await fut
        ws.close()

    run(main)


def test_get_fd_error_is_none_on_a_healthy_socket() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        assert rs.get_fd_error() is None
        rs.close()
        ws.close()

    run(main)


def test_set_nodelay() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        ws.set_nodelay(True)
        assert ws.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        ws.set_nodelay(False)
        assert not ws.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        ws.close()
        ws.set_nodelay(True)  # no-op once closed
        rs.close()

    run(main)


def test_set_nodelay_ignores_unix_sockets() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        stream = IOStream(a)
        stream.set_nodelay(True)
        other = IOStream(b)
        stream.write(b"ping")
        assert await other.read_bytes(4) == b"ping"
        stream.close()
        other.close()

    run(main)


def test_hold_reading_ahead_leaves_a_half_close_to_the_next_read() -> None:
    # A peer sends its last bytes and shuts its side down. Once they are
    # read, an idle stream reads ahead and closes at the EOF; held, it stays
    # open for the answer its reader owes (a WebSocket's to a close frame),
    # and the next read sees the end.
    async def main() -> None:
        for held in (False, True):
            a, b = socket.socketpair()
            stream, peer = IOStream(a), IOStream(b)
            peer.write(b"last")
            b.shutdown(socket.SHUT_WR)
            assert await stream.read_bytes(4) == b"last"
            if held:
                stream.hold_reading_ahead()
            for _ in range(5):
                await asyncio.sleep(0)  # loop turns: the EOF is already there
            assert stream.closed() is not held
            if held:
                await stream.write(b"answer")
                assert await peer.read_bytes(6) == b"answer"
                with pytest.raises(StreamClosedError):
                    await stream.read_bytes(1)
            stream.close()
            peer.close()

    run(main)


# -- start_tls -------------------------------------------------------------------------


def server_options() -> dict[str, str]:
    return {"certfile": CERTFILE, "keyfile": KEYFILE}


def test_start_tls_after_plain_talk() -> None:
    async def main() -> None:
        server, client = await tcp_pair()
        closed = asyncio.Event()
        client.set_close_callback(closed.set)
        server.write(b"220 ready\r\n")
        assert await client.read_until(b"\r\n") == b"220 ready\r\n"
        client.write(b"STARTTLS\r\n")
        assert await server.read_until(b"\r\n") == b"STARTTLS\r\n"
        client_tls, server_tls = await asyncio.gather(
            client.start_tls(False, {"cert_reqs": ssl.CERT_NONE}),
            server.start_tls(True, server_options()),
        )
        assert isinstance(client_tls, SSLIOStream) and isinstance(server_tls, SSLIOStream)
        assert client.closed() and server.closed()
        # The old streams let go of the socket, which is the new ones' now.
        assert client.socket is None and server.socket is None
        client_tls.write(b"EHLO\r\n")
        assert await server_tls.read_until(b"\r\n") == b"EHLO\r\n"
        typed = memoryview(bytes(80)).cast("L")
        await server_tls.write(typed)
        assert await client_tls.read_bytes(typed.nbytes) == bytes(80)
        server_tls.close()
        # The plain stream's close callback moved to the TLS stream.
        await closed.wait()
        client_tls.close()

    run(main)


def test_closing_a_stream_lets_go_of_its_socket() -> None:
    # Programs test ``stream.socket is None`` (and fileno()) to know that a
    # connection is gone.
    async def main() -> None:
        server, client = await tcp_pair()
        assert client.socket is not None and client.fileno() is client.socket
        client.close()
        assert client.socket is None and client.fileno() is None
        client.close()  # a second close finds nothing to do
        # The same when the peer closes.
        assert await server.read_until_close() == b""
        assert server.closed() and server.socket is None

    run(main)


def test_start_tls_requires_an_idle_stream() -> None:
    async def main() -> None:
        server, client = await tcp_pair()
        fut = client.read_bytes(1)
        with pytest.raises(ValueError, match="not idle"):
            client.start_tls(False)
        server.write(b"x")
        await fut
        client.close()
        with pytest.raises(ValueError, match="not idle"):
            client.start_tls(False)
        server.close()

    run(main)


def test_start_tls_verifies_by_default(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, client = await tcp_pair()
        server_future = server.start_tls(True, server_options())
        client_future = client.start_tls(False, server_hostname="localhost")
        with pytest.raises(ssl.SSLError):
            await client_future
        with pytest.raises((ssl.SSLError, OSError)):
            await server_future

    with caplog.at_level(logging.WARNING):
        run(main)
    assert "SSL Error" in caplog.text


def test_start_tls_with_hostname_check() -> None:
    async def main() -> None:
        server, client = await tcp_pair()
        server_future = server.start_tls(True, server_context())
        client_future = client.start_tls(False, client_context(verify=True), "localhost")
        client_tls, server_tls = await asyncio.gather(client_future, server_future)
        assert client_tls.socket.getpeercert()["subject"]  # type: ignore[attr-defined]
        client_tls.close()
        server_tls.close()

    run(main)


def test_cancelling_start_tls_closes_the_connection() -> None:
    async def main() -> None:
        server, client = await tcp_pair()
        fut = client.start_tls(False, {"cert_reqs": ssl.CERT_NONE})
        fut.cancel()
        assert fut.cancelled()
        # Only completes once the client's socket is closed.
        await server.read_until_close()
        server.close()

    run(main)


def test_close_of_an_already_closed_fd_is_reported() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        os.close(rs.socket.fileno())
        with pytest.raises(OSError):
            rs.close()
        assert rs.closed()
        assert isinstance(rs.error, OSError)
        ws.close()
        await until(ws.closed)

    run(main)


def test_writes_sent_at_once_resolve_done_and_accept_callbacks() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        first, second = ws.write(b"a\n"), ws.write(b"b\n")
        assert first.done() and second.done()
        assert first.result() is None and not first.cancel()
        seen: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        first.add_done_callback(lambda f: seen.set_result(f.result() is None))
        assert await asyncio.wait_for(seen, HANG_GUARD)
        assert await rs.read_until(b"\n") == b"a\n"
        assert await rs.read_until(b"\n") == b"b\n"
        rs.close()
        ws.close()

    run(main)


def test_read_until_waiting_for_the_next_packet_sees_lines_split_anywhere() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        ws.set_nodelay(True)
        # Each read starts with the buffer empty and the socket known drained,
        # so it waits for the next READ event; the line comes in pieces.
        for pieces in ([b"one", b"\n"], [b"t", b"w", b"o\n"], [b"x" * 70_000, b"\n"]):
            read = rs.read_until(b"\n")
            for piece in pieces:
                await ws.write(piece)
                await until(functools.partial(lambda r: r.done() or rs._drained, read))
            assert await read == b"".join(pieces)
            assert rs._drained and not rs._buffered()
        read = rs.read_until(b"\n")
        ws.close()
        with pytest.raises(StreamClosedError):
            await read

    run(main)


def test_read_until_with_an_empty_buffer_takes_chunks_as_they_come() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        ws.set_nodelay(True)
        assert rs._recv is not None
        # One line per packet; two lines in one packet; a line in two packets.
        for sent, expected in (
            ([b"a\r\n"], [b"a\r\n"]),
            ([b"b\r\nc\r\n"], [b"b\r\n", b"c\r\n"]),
            ([b"d\r", b"\ne"], [b"d\r\n"]),
        ):
            read = rs.read_until(b"\r\n")
            for piece in sent:
                await ws.write(piece)
                await until(functools.partial(lambda r: r.done() or rs._drained, read))
            got = [await read]
            while len(got) < len(expected):
                got.append(await rs.read_until(b"\r\n"))
            assert got == expected
        assert rs._buffered() == 1
        rs.close()
        ws.close()

    run(main)


def test_read_until_from_an_empty_buffer_keeps_max_bytes(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        await rs.write(b"")
        read = rs.read_until(b"\n", max_bytes=3)
        await ws.write(b"abcd\n")
        with pytest.raises(StreamClosedError):
            await read
        ws.close()

    with caplog.at_level(logging.INFO, logger="squall.general"):
        run(main)
    assert "Unsatisfiable read" in caplog.text


def test_read_until_uses_read_from_fd_when_it_is_replaced() -> None:
    calls: list[int] = []

    class Counting(IOStream):
        def read_from_fd(self, buf: bytearray | memoryview) -> int | None:
            calls.append(len(buf))
            return super().read_from_fd(buf)

    async def main() -> None:
        rs, ws = await tcp_pair()
        sub = Counting(rs.socket)
        assert sub._recv is None
        rs.socket = socket.socket()  # the stream gives its socket up
        rs.socket.close()
        line = sub.read_until(b"\n")
        await ws.write(b"x\n")
        assert await line == b"x\n"
        assert calls
        patched: list[int] = []
        real = ws.read_from_fd

        def counting(buf: bytearray | memoryview) -> int | None:
            patched.append(len(buf))
            return real(buf)

        ws.read_from_fd = counting  # type: ignore[method-assign]
        back = ws.read_until(b"\n")
        await sub.write(b"y\n")
        assert await back == b"y\n"
        assert patched
        sub.close()
        ws.close()

    run(main)


def test_read_until_from_an_empty_buffer_sees_eof() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        read = rs.read_until(b"\n")
        ws.close()
        with pytest.raises(StreamClosedError):
            await read
        assert rs.closed()

    run(main)


def test_read_until_from_an_empty_buffer_sees_a_reset_as_a_close() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        read = rs.read_until(b"\n")
        # Linger 0: close sends a reset instead of a FIN.
        ws.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        ws.close()
        with pytest.raises(StreamClosedError):
            await read
        assert rs.closed()
        assert isinstance(rs.error, ConnectionResetError)

    run(main)


def test_frames_queued_directly_on_the_write_buffer_are_sent() -> None:
    # The shape dask's distributed uses to queue many frames without a Future each.
    async def main() -> None:
        server, client = await tcp_pair()
        frames = [b"a" * 10, memoryview(b"b" * 70000), b"c" * 5]
        for frame in frames:
            chunk = memoryview(frame)
            client._write_buffer.append(chunk)
            client._total_write_index += chunk.nbytes
        await client.write(b"")
        total = sum(len(bytes(f)) for f in frames)
        assert client._total_write_done_index == total
        received = await server.read_bytes(total)
        assert received == b"a" * 10 + b"b" * 70000 + b"c" * 5
        server.close()
        client.close()

    run(main)


def test_a_class_level_patch_of_read_and_write_to_fd_is_called() -> None:
    # A patch on the class (a test's, an instrumentation's) is honoured as a
    # subclass's override is, not bypassed by the socket fast path.
    calls: list[str] = []
    read_from_fd, write_to_fd = IOStream.read_from_fd, IOStream.write_to_fd

    def reading(stream: IOStream, buf: bytearray | memoryview) -> int | None:
        calls.append("read")
        return read_from_fd(stream, buf)

    def writing(stream: IOStream, data: memoryview) -> int:
        calls.append("write")
        return write_to_fd(stream, data)

    async def main() -> bytes:
        server, client = await tcp_pair()
        try:
            await client.write(b"hi")
            return await server.read_bytes(2)
        finally:
            server.close()
            client.close()

    with (
        mock.patch.object(IOStream, "read_from_fd", reading),
        mock.patch.object(IOStream, "write_to_fd", writing),
    ):
        assert run(main) == b"hi"
    assert "read" in calls and "write" in calls


@pytest.mark.parametrize("kind", ["tcp", "detached"])
def test_a_write_whose_send_fails_fails(kind: str) -> None:
    # The peer has closed: the first write reaches its kernel, which
    # answers with a reset, so the next send fails. That write's future
    # fails (the detached stream's asyncio transport took the failed send
    # quietly, and its future said the bytes had gone).
    async def main() -> None:
        if kind == "tcp":
            stream, client = await tcp_pair()
        else:
            stream, client = await detached_pair()
        try:
            client.close()
            await stream.write(b"a")
            second = stream.write(b"b")
            with pytest.raises(StreamClosedError):
                await second
            assert stream.closed()
        finally:
            stream.close()
            client.close()

    run(main)


def test_bytes_received_past_a_read_into_are_read_after_the_close() -> None:
    # The read_into takes six of the seven bytes that came together; the
    # seventh was received (the detached stream's transport handed it
    # over), so a read after close() finds it, as Tornado's stream with a
    # close callback finds the bytes it read ahead while idle.
    async def main() -> bytes:
        stream, client = await detached_pair()
        stream.set_close_callback(lambda: None)
        try:
            await client.write(b"aaaaaa\n")
            buf = bytearray(6)
            assert await stream.read_into(buf) == 6
            stream.close()
            return await stream.read_until(b"\n")
        finally:
            stream.close()
            client.close()

    assert run(main) == b"\n"
