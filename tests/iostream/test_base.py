"""BaseIOStream's contract for subclasses, and its less travelled paths."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Optional, Union
from unittest import mock

import pytest

from squall.iostream import BaseIOStream, IOStream, StreamClosedError
from tests.iostream.conftest import run, tcp_pair


class SocketpairStream(BaseIOStream):
    """The smallest useful subclass: the four required methods over a socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        super().__init__()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close_fd(self) -> None:
        self.sock.close()

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        try:
            return self.sock.recv_into(buf)
        except BlockingIOError:
            return None

    def write_to_fd(self, data: memoryview) -> int:
        return self.sock.send(data)


def test_a_minimal_subclass_works() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        left, right = SocketpairStream(a), SocketpairStream(b)
        assert left.get_fd_error() is None
        left.set_nodelay(True)  # no transport option: a no-op
        left.write(b"ping\n")
        assert await right.read_until(b"\n") == b"ping\n"
        right.write(b"pong")
        right.close()
        assert await left.read_until_close() == b"pong"
        assert left.closed()

    run(main)


def test_base_methods_must_be_overridden() -> None:
    async def main() -> None:
        stream = BaseIOStream()
        for call in (
            stream.fileno,
            stream.close_fd,
            lambda: stream.write_to_fd(memoryview(b"x")),
            lambda: stream.read_from_fd(bytearray(1)),
        ):
            with pytest.raises(NotImplementedError):
                call()

    run(main)


def test_read_ahead_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        closed = asyncio.Event()
        rs.set_close_callback(closed.set)

        def broken(buf: Union[bytearray, memoryview]) -> int:
            raise OSError(errno.EIO, "disk on fire")

        rs.read_from_fd = broken  # type: ignore[method-assign]
        # No read is pending: the close listener finds the error.
        ws.write(b"x")
        await closed.wait()
        assert isinstance(rs.error, OSError)
        ws.close()

    run(main)
    assert "error on read" in caplog.text


def test_set_nodelay_tolerates_einval_only() -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        with mock.patch("socket.socket.setsockopt", side_effect=OSError(errno.EINVAL, "x")):
            ws.set_nodelay(True)
        with mock.patch("socket.socket.setsockopt", side_effect=OSError(errno.EACCES, "x")):
            with pytest.raises(PermissionError):
                ws.set_nodelay(True)
        rs.close()
        ws.close()

    run(main)


def test_regex_match_past_max_bytes_is_unsatisfiable(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        rs, ws = await tcp_pair()
        await ws.write(b"abcdefgh")
        # Let the bytes land in the stream's buffer before the read starts.
        assert await rs.read_bytes(1) == b"a"
        with pytest.raises(StreamClosedError) as caught:
            await rs.read_until_regex(b"fg", max_bytes=4)
        # Tornado's wording, for a regex as for a delimiter.
        assert str(caught.value.real_error) == (
            "delimiter re.compile(b'fg') not found within 4 bytes"
        )
        ws.close()

    with caplog.at_level(logging.INFO, logger="squall.general"):
        run(main)
    assert "Unsatisfiable read" in caplog.text


def test_connect_future_on_close_before_connect() -> None:
    async def main() -> None:
        with socket.socket() as lsock:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(1)
            stream = IOStream(socket.socket())
            connected = stream.connect(lsock.getsockname())
            data = bytearray(100_000)
            written = stream.write(data)
            stream.close()
            for fut in (connected, written):
                with pytest.raises(StreamClosedError):
                    await fut
            data += b"resizable again"

    run(main)
