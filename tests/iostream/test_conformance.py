"""The stream contract, run against IOStream, SSLIOStream, PipeIOStream and the server's detached stream alike.

Each test gets ``make_pair`` (see conftest) and moves data from the writer
to the reader of a fresh pair.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import re
import tracemalloc

import pytest

from squall.iostream import (
    BaseIOStream,
    StreamBufferFullError,
    StreamClosedError,
    UnsatisfiableReadError,
)
from tests._wait import HANG_GUARD
from tests.iostream.conftest import PairFactory, run, until


def close_all(*streams: BaseIOStream) -> None:
    for stream in streams:
        stream.close()


def assert_resizable(buf: bytearray) -> None:
    """Fails with BufferError if a view of ``buf`` is still alive."""
    buf += b"!"
    del buf[-1:]


# -- read_bytes ----------------------------------------------------------------------


def test_read_bytes_waits_for_all_the_bytes(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_bytes(5)
            ws.write(b"he")
            ws.write(b"llo world")
            assert await fut == b"hello"
            assert await rs.read_bytes(6) == b" world"
        finally:
            close_all(rs, ws)

    run(main)


def test_read_bytes_partial(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_bytes(50, partial=True)
            ws.write(b"hello")
            assert await fut == b"hello"
            ws.write(b"world")
            assert await rs.read_bytes(3, partial=True) == b"wor"
            assert await rs.read_bytes(0, partial=True) == b""
            assert await rs.read_bytes(10, partial=True) == b"ld"
        finally:
            close_all(rs, ws)

    run(main)


def test_read_zero_bytes_resolves_at_once(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_bytes(0)
            assert fut.done() and fut.result() == b""
        finally:
            close_all(rs, ws)

    run(main)


def test_read_bytes_rejects_negative_count(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            with pytest.raises(ValueError, match="non-negative"):
                rs.read_bytes(-1)
            assert not rs.reading()
        finally:
            close_all(rs, ws)

    run(main)


def test_second_read_while_reading_is_an_error(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_bytes(1)
            assert rs.reading()
            with pytest.raises(RuntimeError, match="Already reading"):
                rs.read_until(b"\n")
            ws.write(b"x")
            assert await fut == b"x"
            assert not rs.reading()
        finally:
            close_all(rs, ws)

    run(main)


def test_cancelled_read_can_be_replaced(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            rs.read_bytes(3).cancel()
            fut = rs.read_bytes(2)
            ws.write(b"ab")
            assert await fut == b"ab"
        finally:
            close_all(rs, ws)

    run(main)


# -- read_until / read_until_regex ---------------------------------------------------


def test_read_until_across_writes(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_until(b"\r\n")
            ws.write(b"line one\r")
            ws.write(b"\nline two\r\n")
            assert await fut == b"line one\r\n"
            assert await rs.read_until(b"\r\n") == b"line two\r\n"
        finally:
            close_all(rs, ws)

    run(main)


def test_read_until_rejects_empty_delimiter(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            with pytest.raises(ValueError, match="delimiter"):
                rs.read_until(b"")
        finally:
            close_all(rs, ws)

    run(main)


def test_read_until_regex(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_until_regex(b"\r?\n\r?\n")
            ws.write(b"GET / HTTP/1.1\nHost: x\n\nbody")
            assert await fut == b"GET / HTTP/1.1\nHost: x\n\n"
            assert await rs.read_bytes(4) == b"body"
        finally:
            close_all(rs, ws)

    run(main)


@pytest.mark.parametrize("method", ["read_until", "read_until_regex"])
def test_max_bytes_room_and_exact_fit(make_pair: PairFactory, method: str) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            for limit in (50, 6):
                fut = getattr(rs, method)(b"def", max_bytes=limit)
                ws.write(b"abcdef")
                assert await fut == b"abcdef"
        finally:
            close_all(rs, ws)

    run(main)


@pytest.mark.parametrize("method", ["read_until", "read_until_regex"])
@pytest.mark.parametrize("inline", [True, False])
def test_max_bytes_exceeded_closes_the_stream(
    make_pair: PairFactory, method: str, inline: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        closed = asyncio.Event()
        rs.set_close_callback(closed.set)
        try:
            if inline:
                ws.write(b"abcdef")
            with caplog.at_level(logging.INFO, logger="squall.general"):
                fut = getattr(rs, method)(b"def", max_bytes=5)
                if not inline:
                    ws.write(b"abcdef")
                with pytest.raises(StreamClosedError) as info:
                    await fut
                await closed.wait()
            assert isinstance(info.value.real_error, UnsatisfiableReadError)
            assert isinstance(rs.error, UnsatisfiableReadError)
            assert "Unsatisfiable read" in caplog.text
        finally:
            close_all(rs, ws)

    run(main)


@pytest.mark.parametrize("method", ["read_until", "read_until_regex"])
def test_max_bytes_without_a_match_waits_for_one_byte_more(
    make_pair: PairFactory, method: str
) -> None:
    # As Tornado: the read is refused once more than max_bytes are
    # buffered without a match, not when exactly max_bytes are.
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = getattr(rs, method)(b"def", max_bytes=5)
            await ws.write(b"abcde")
            await until(lambda: rs._buffered() == 5 or fut.done())
            assert not fut.done() and not rs.closed()
            ws.write(b"f")
            with pytest.raises(StreamClosedError) as info:
                await fut
            assert isinstance(info.value.real_error, UnsatisfiableReadError)
        finally:
            close_all(rs, ws)

    run(main)


def test_an_unsatisfiable_read_of_a_closed_stream_fails_at_once(make_pair: PairFactory) -> None:
    # What a closed stream still holds cannot satisfy the read: it fails
    # (it was left pending for ever, close() having nothing left to do).
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            await ws.write(b"abc")
            assert await rs.read_bytes(1) == b"a"
            await until(lambda: rs._buffered() == 2)
            rs.close()
            fut = rs.read_until(b"\n", max_bytes=1)
            assert fut.done()
            with pytest.raises(StreamClosedError):
                fut.result()
        finally:
            close_all(rs, ws)

    run(main)


def test_bytes_a_read_into_holds_when_the_stream_closes_stay_readable(
    make_pair: PairFactory,
) -> None:
    # The read_into fails (its caller never learns how many bytes its
    # buffer holds), so they go back to the stream: a read of the closed
    # stream gets them, as on Tornado, rather than their being lost.
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            buf = bytearray(8)
            fut = rs.read_into(buf)
            await ws.write(b"abc")
            await until(lambda: bytes(buf[:3]) == b"abc")
            ws.close()
            with pytest.raises(StreamClosedError):
                await fut
            assert await rs.read_until_close() == b"abc"
        finally:
            close_all(rs, ws)

    run(main)


def test_large_read_until_is_linear(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            for _ in range(2048):
                ws.write(b"A" * 1024)
            ws.write(b"\r\n")
            data = await rs.read_until(b"\r\n")
            assert len(data) == 2048 * 1024 + 2
        finally:
            close_all(rs, ws)

    run(main)


def test_large_read_until_regex(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            ws.write(b"B" * (1024 * 1024) + b"END")
            data = await rs.read_until_regex(b"E.D")
            assert len(data) == 1024 * 1024 + 3
        finally:
            close_all(rs, ws)

    run(main)


def test_read_until_satisfied_when_close_follows_data(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_until(b"done")
            await ws.write(b"x" * 2048)
            ws.write(b"done")
            ws.close()
            assert (await fut).endswith(b"done")
        finally:
            close_all(rs, ws)

    run(main)


def test_read_until_unsatisfied_at_close_is_stream_closed(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_until(b"done")
            await ws.write(b"x" * 2048)
            ws.close()
            with pytest.raises(StreamClosedError) as info:
                await fut
            assert info.value.real_error is None
        finally:
            close_all(rs, ws)

    run(main)


# -- read_until_close ----------------------------------------------------------------


def test_read_until_close(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_until_close()
            ws.write(b"all ")
            ws.write(b"of it")
            await until(lambda: not ws.writing())
            ws.close()
            assert await fut == b"all of it"
            # Nothing is left, so the next read fails at once.
            with pytest.raises(StreamClosedError):
                rs.read_bytes(1)
        finally:
            close_all(rs, ws)

    run(main)


def test_buffered_data_outlives_the_close(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            ws.write(b"1234")
            assert await rs.read_bytes(1) == b"1"
            ws.close()
            assert await rs.read_until_close() == b"234"
            assert rs.closed()
            assert await rs.read_until_close() == b""
        finally:
            close_all(rs, ws)

    run(main)


def test_read_until_close_after_error_close_fails(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_until_close()
            ws.write(b"hello")
            await until(lambda: rs._buffered() == 5)
            rs.close(exc_info=OSError("boom"))
            with pytest.raises(StreamClosedError) as info:
                await fut
            assert isinstance(info.value.real_error, OSError)
            assert str(info.value.real_error) == "boom"
            # A later read_until_close reports the same error.
            with pytest.raises(StreamClosedError):
                await rs.read_until_close()
        finally:
            close_all(rs, ws)

    run(main)


def test_read_until_close_overflow(
    make_pair: PairFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        rs, ws = await make_pair(max_buffer_size=1024)
        try:
            fut = rs.read_until_close()
            ws.write(b"a" * 4096)
            with pytest.raises(StreamClosedError) as info:
                await fut
            assert isinstance(info.value.real_error, StreamBufferFullError)
            assert "Reached maximum read buffer size" in caplog.text
            assert "error on read" in caplog.text
        finally:
            close_all(rs, ws)

    run(main)


def test_read_until_close_exactly_at_the_limit(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair(max_buffer_size=1024)
        try:
            fut = rs.read_until_close()
            await ws.write(b"a" * 1024)
            ws.close()
            assert await fut == b"a" * 1024
        finally:
            close_all(rs, ws)

    run(main)


# -- read_into -----------------------------------------------------------------------


def test_read_into(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            buf = bytearray(10)
            fut = rs.read_into(buf)
            ws.write(b"hello")
            ws.write(b"world!!")
            assert await fut == 10
            assert bytes(buf) == b"helloworld"
            assert not rs.reading()
            small = bytearray(4)
            ws.write(b"abcdefghi")
            assert await rs.read_into(small) == 4
            assert bytes(small) == b"!!ab"
            assert await rs.read_bytes(7) == b"cdefghi"
            assert_resizable(buf)
            assert_resizable(small)
        finally:
            close_all(rs, ws)

    run(main)


def test_read_into_partial(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            buf = bytearray(10)
            fut = rs.read_into(buf, partial=True)
            ws.write(b"hello")
            assert await fut == 5
            assert bytes(buf) == b"hello\0\0\0\0\0"
            ws.write(b"world!1234567890")
            total = 0
            while total < 16:
                n = await rs.read_into(buf, partial=True)
                assert 0 < n <= 10
                total += n
            assert total == 16
        finally:
            close_all(rs, ws)

    run(main)


def test_read_into_empty_buffer(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            assert rs.read_into(bytearray()).result() == 0
        finally:
            close_all(rs, ws)

    run(main)


def test_read_into_takes_buffered_bytes_first(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            ws.write(b"ab")
            assert await rs.read_bytes(1) == b"a"
            buf = bytearray(4)
            fut = rs.read_into(buf)
            assert bytes(buf[:1]) == b"b"
            ws.write(b"cde")
            assert await fut == 4
            assert bytes(buf) == b"bcde"
        finally:
            close_all(rs, ws)

    run(main)


def test_read_into_releases_buffer_on_close(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            buf = bytearray(10)
            fut = rs.read_into(buf)
            ws.write(b"cd")
            await until(lambda: buf[:2] == b"cd")
            ws.close()
            with pytest.raises(StreamClosedError):
                await fut
            assert_resizable(buf)
        finally:
            close_all(rs, ws)

    run(main)


def test_read_into_typed_memoryview(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            target = memoryview(bytearray(16)).cast("I")
            ws.write(bytes(range(16)))
            assert await rs.read_into(target) == 16  # type: ignore[arg-type]
            assert target.tobytes() == bytes(range(16))
        finally:
            close_all(rs, ws)

    run(main)


def test_many_mixed_reads(make_pair: PairFactory) -> None:
    async def main() -> None:
        rng = random.Random(7)
        total = 300_000
        rs, ws = await make_pair()
        produced = hashlib.sha1()
        consumed = hashlib.sha1()

        async def produce() -> None:
            left = total
            while left:
                chunk = rng.randbytes(min(left, rng.randint(1, 3000)))
                produced.update(chunk)
                await ws.write(chunk)
                left -= len(chunk)

        async def consume() -> None:
            left = total
            while left:
                size = min(left, rng.randint(1, 3000))
                if rng.random() < 0.5:
                    consumed.update(await rs.read_bytes(size))
                else:
                    buf = bytearray(size)
                    assert await rs.read_into(buf) == size
                    consumed.update(buf)
                left -= size

        try:
            await asyncio.gather(produce(), consume())
            assert produced.digest() == consumed.digest()
        finally:
            close_all(rs, ws)

    run(main)


# -- writing -------------------------------------------------------------------------


def test_write_accepts_bytes_like_objects(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_bytes(4 + 2 + 3 + 8)
            ws.write(b"byte")
            ws.write(bytearray(b"ar"))
            ws.write(memoryview(b"xview")[1:4])
            ws.write(memoryview(bytes(8)).cast("Q"))
            assert await fut == b"bytearvie" + bytes(8)
        finally:
            close_all(rs, ws)

    run(main)


def test_write_rejects_str(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            with pytest.raises(TypeError, match="str"):
                ws.write("text")  # type: ignore[arg-type]
        finally:
            close_all(rs, ws)

    run(main)


def test_write_zero_bytes_resolves(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            await ws.write(b"")
            assert not ws.writing()
        finally:
            close_all(rs, ws)

    run(main)


def test_write_futures_resolve_in_order(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            done: list[int] = []
            all_done = asyncio.Event()

            def on_done(n: int, _: object) -> None:
                done.append(n)
                if len(done) == 20:
                    all_done.set()

            futures = [ws.write(bytes([i]) * 100_000) for i in range(20)]
            for i, fut in enumerate(futures):
                fut.add_done_callback(functools.partial(on_done, i))
            data = await rs.read_bytes(2_000_000)
            await asyncio.gather(*futures)
            # Python 3.12+ returns from gather() on futures done already
            # before their callbacks run: wait for the callbacks themselves.
            await asyncio.wait_for(all_done.wait(), HANG_GUARD)
            assert done == list(range(20))
            assert data == b"".join(bytes([i]) * 100_000 for i in range(20))
        finally:
            close_all(rs, ws)

    run(main)


def test_large_bytearray_is_not_copied_and_released(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            data = bytearray(b"x" * 1_000_000)
            fut = rs.read_bytes(len(data))
            await ws.write(data)
            assert await fut == bytes(data)
            assert_resizable(data)
        finally:
            close_all(rs, ws)

    run(main)


def test_pending_large_write_fails_and_releases_on_close(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            data = bytearray(10 * 1024 * 1024)
            fut = ws.write(data)
            assert ws.writing()
            ws.close()
            with pytest.raises(StreamClosedError):
                await fut
            assert not ws.writing()
            assert_resizable(data)
            with pytest.raises(StreamClosedError):
                ws.write(b"more")
        finally:
            close_all(rs, ws)

    run(main)


def test_write_to_a_closed_peer_fails(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            rs.close()
            data = bytearray(10 * 1024 * 1024)
            with pytest.raises(StreamClosedError):
                await ws.write(data)
            assert ws.closed()
            assert_resizable(data)
        finally:
            close_all(rs, ws)

    run(main)


def test_max_write_buffer_size(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair(max_write_buffer_size=1024 * 1024)
        try:
            ws.write(b"a" * (1024 * 1024))
            with pytest.raises(StreamBufferFullError, match="write buffer"):
                while True:
                    ws.write(b"b" * (512 * 1024))
        finally:
            close_all(rs, ws)

    run(main)


def test_many_small_writes_arrive_in_order(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            pieces = [b"%06d," % i for i in range(5_000)]
            for piece in pieces:
                ws.write(piece)
            data = await rs.read_bytes(sum(map(len, pieces)))
            assert data == b"".join(pieces)
        finally:
            close_all(rs, ws)

    run(main)


# -- flow control --------------------------------------------------------------------


def test_small_reads_from_a_large_backlog(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair(max_buffer_size=10 * 1024)
        try:
            ws.write((b"a" * 1023 + b"\n") * 100)
            for _ in range(50):
                assert await rs.read_bytes(1024) == b"a" * 1023 + b"\n"
            for _ in range(50):
                line = await rs.read_until(b"\n", max_bytes=4096)
                assert line == b"a" * 1023 + b"\n"
            assert rs._buffered() <= 10 * 1024
        finally:
            close_all(rs, ws)

    run(main)


def test_reader_holds_back_a_fast_writer(make_pair: PairFactory) -> None:
    async def main() -> None:
        mb = 1024 * 1024
        rs, ws = await make_pair(max_buffer_size=2 * mb)
        try:
            fut = ws.write(b"a" * 8 * mb)
            assert await rs.read_bytes(mb) == b"a" * mb
            # With no read pending the reader takes in at most one chunk more.
            for _ in range(5):
                await asyncio.sleep(0)
            assert rs._buffered() <= rs.read_chunk_size
            for _ in range(7):
                assert len(await rs.read_bytes(mb)) == mb
            await fut
        finally:
            close_all(rs, ws)

    run(main)


# -- closing -------------------------------------------------------------------------


def test_close_callback_runs_on_peer_close(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        closed = asyncio.Event()
        rs.set_close_callback(closed.set)
        try:
            ws.write(b"a")
            assert await rs.read_bytes(1) == b"a"
            assert not closed.is_set()
            ws.close()
            await closed.wait()
            assert rs.closed()
            assert rs.error is None
        finally:
            close_all(rs, ws)

    run(main)


def test_close_callback_with_pending_read(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        closed = asyncio.Event()
        rs.set_close_callback(closed.set)
        try:
            fut = rs.read_until(b"\r\n")
            ws.close()
            await closed.wait()
            with pytest.raises(StreamClosedError):
                fut.result()
        finally:
            close_all(rs, ws)

    run(main)


def test_close_callback_set_after_close_still_runs(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        close_all(rs, ws)
        called = asyncio.Event()
        rs.set_close_callback(called.set)
        await called.wait()
        assert rs.closed()

    run(main)


def test_close_with_exc_info_variants(make_pair: PairFactory) -> None:
    async def main() -> None:
        for how in ("exception", "tuple", "current"):
            rs, ws = await make_pair()
            fut = rs.read_bytes(1)
            error = ValueError(how)
            if how == "exception":
                rs.close(exc_info=error)
            elif how == "tuple":
                rs.close(exc_info=(ValueError, error, None))
            else:
                try:
                    raise error
                except ValueError:
                    rs.close(exc_info=True)
            assert rs.error is error
            with pytest.raises(StreamClosedError) as info:
                await fut
            assert info.value.real_error is error
            assert isinstance(info.value, OSError)
            assert str(info.value) == "Stream is closed"
            ws.close()

    run(main)


def test_close_is_idempotent(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        calls: list[int] = []
        rs.set_close_callback(lambda: calls.append(1))
        rs.close()
        rs.close(exc_info=ValueError("late"))
        assert rs.error is None
        await until(lambda: bool(calls))
        for _ in range(3):
            await asyncio.sleep(0)
        assert calls == [1]
        ws.close()

    run(main)


def test_reads_on_a_closed_stream_fail_at_once(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        close_all(rs, ws)
        for call in (
            lambda: rs.read_bytes(1),
            lambda: rs.read_until(b"x"),
            lambda: rs.read_until_regex(b"x"),
            lambda: rs.read_into(bytearray(1)),
        ):
            with pytest.raises(StreamClosedError):
                call()
            assert not rs.reading()

    run(main)


def test_reading_and_writing_flags(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            assert not rs.reading() and not ws.writing()
            fut = rs.read_bytes(3)
            assert rs.reading()
            ws.write(b"abc")
            await fut
            assert not rs.reading()
        finally:
            close_all(rs, ws)

    run(main)


def test_regex_is_compiled_from_bytes(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            with pytest.raises(re.error):
                rs.read_until_regex(b"(")
        finally:
            close_all(rs, ws)

    run(main)


def test_large_read_bytes_costs_its_size_once(make_pair: PairFactory) -> None:
    async def main() -> None:
        size = 4 * 1024 * 1024
        rs, ws = await make_pair()
        payload = bytes(range(256)) * (size // 256)
        try:
            ws.write(b"head")
            assert await rs.read_bytes(2) == b"he"
            tracemalloc.start()
            try:
                fut = rs.read_bytes(size + 2)
                ws.write(payload)
                data = await fut
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert type(data) is bytes
            assert data == b"ad" + payload
            assert hash(data) == hash(b"ad" + payload)
            assert peak < 1.5 * size
        finally:
            close_all(rs, ws)

    run(main)


def test_large_read_bytes_fails_cleanly_on_close(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        try:
            fut = rs.read_bytes(1024 * 1024)
            await ws.write(b"x" * 1000)
            ws.close()
            with pytest.raises(StreamClosedError):
                await fut
        finally:
            close_all(rs, ws)

    run(main)


def test_read_bytes_beyond_max_buffer_size_overflows(
    make_pair: PairFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        rs, ws = await make_pair(max_buffer_size=512 * 1024)
        try:
            fut = rs.read_bytes(1024 * 1024)
            ws.write(b"x" * (1024 * 1024))
            with pytest.raises(StreamClosedError) as info:
                await fut
            assert isinstance(info.value.real_error, StreamBufferFullError)
        finally:
            close_all(rs, ws)

    run(main)


def test_close_seen_after_read_ahead_data_is_consumed(make_pair: PairFactory) -> None:
    async def main() -> None:
        rs, ws = await make_pair()
        closed = asyncio.Event()
        rs.set_close_callback(closed.set)
        try:
            ws.write(b"ab")
            # No read is pending: the bytes are taken into the buffer.
            await until(lambda: rs._buffered() == 2)
            assert await rs.read_bytes(2) == b"ab"
            ws.close()
            await closed.wait()
        finally:
            close_all(rs, ws)

    run(main)
