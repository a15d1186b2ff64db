"""PipeIOStream specifics."""

from __future__ import annotations

import asyncio
import os

import pytest

from squall.iostream import PipeIOStream, StreamClosedError
from tests.iostream.conftest import pipe_pair, run


def test_pipe_round_trip() -> None:
    async def main() -> None:
        rs, ws = await pipe_pair()
        # The fd itself, as os.read and os.set_blocking take it.
        assert rs.fileno() == rs.fd and type(rs.fileno()) is int
        assert not os.get_blocking(rs.fileno())
        ws.write(b"hel")
        ws.write(b"lo world")
        assert await rs.read_until(b" ") == b"hello "
        assert await rs.read_bytes(3) == b"wor"
        ws.close()
        assert await rs.read_until_close() == b"ld"
        assert rs.closed()

    run(main)


def test_pipe_big_write() -> None:
    async def main() -> None:
        rs, ws = await pipe_pair()
        size = 1024 * 1024
        ws.write(b"1" * size)
        assert await rs.read_bytes(size) == b"1" * size
        ws.close()
        rs.close()

    run(main)


def test_fd_is_non_blocking_and_closed_with_the_stream() -> None:
    async def main() -> None:
        r, w = os.pipe()
        stream = PipeIOStream(r)
        assert not os.get_blocking(r)
        stream.close()
        with pytest.raises(OSError):
            os.fstat(r)
        os.close(w)

    run(main)


def test_write_end_notices_the_reader_going_away() -> None:
    async def main() -> None:
        rs, ws = await pipe_pair()
        closed = asyncio.Event()
        ws.set_close_callback(closed.set)
        rs.close()
        await closed.wait()
        assert ws.closed()
        with pytest.raises(StreamClosedError):
            ws.write(b"x")

    run(main)
