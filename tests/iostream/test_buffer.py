"""The write buffer: joins small pieces, holds large ones by reference, releases them."""

from __future__ import annotations

import os
import random
from typing import Union

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squall.iostream._buffer import _StreamBuffer

Piece = Union[bytes, bytearray, memoryview]


def make(threshold: int = 10) -> _StreamBuffer:
    buf = _StreamBuffer()
    buf._large_buf_threshold = threshold
    return buf


def contents(buf: _StreamBuffer) -> bytes:
    """Everything in ``buf``, from its pieces."""
    out = bytearray()
    for piece in buf._buffers or ():
        out += piece
    return bytes(out[buf._first_pos :])


def assert_resizable(data: bytearray) -> None:
    data += b"!"
    del data[-1:]


def test_default_threshold_is_large() -> None:
    assert _StreamBuffer()._large_buf_threshold >= 4096


def test_small_pieces_are_joined_up_to_the_threshold() -> None:
    buf = make(10)
    for _ in range(10):
        buf.append(b"x")
    assert len(buf._buffers) == 1
    buf.append(b"y")
    assert len(buf._buffers) == 2
    assert len(buf) == 11
    buf.advance(10)
    assert len(buf._buffers) == 1
    with buf.peek(5) as view:
        assert view.tobytes() == b"y"


def test_large_pieces_are_held_by_reference() -> None:
    buf = make(10)
    big = bytearray(b"a" * 20)
    buf.append(big)
    buf.append(b"z")
    assert len(buf._buffers) == 2
    with pytest.raises(BufferError):
        big += b"!"
    buf.advance(19)
    with pytest.raises(BufferError):
        big += b"!"
    buf.advance(1)
    assert_resizable(big)
    with buf.peek(10) as view:
        assert view.tobytes() == b"z"


def test_peek_of_empty_buffer_is_empty() -> None:
    buf = make()
    with buf.peek(10) as view:
        assert len(view) == 0


def test_peek_is_limited_to_the_first_piece_and_size() -> None:
    buf = make(4)
    buf.append(b"abcdefgh")
    buf.append(b"ij")
    with buf.peek(3) as view:
        assert view.tobytes() == b"abc"
    with buf.peek(100) as view:
        assert view.tobytes() == b"abcdefgh"
    buf.advance(5)
    with buf.peek(100) as view:
        assert view.tobytes() == b"fgh"


def test_peek_view_is_released_after_the_block() -> None:
    buf = make(4)
    big = bytearray(b"0123456789")
    buf.append(big)
    with buf.peek(4) as view:
        pass
    with pytest.raises(ValueError):
        view.tobytes()


def test_typed_memoryview_counts_bytes() -> None:
    buf = make(10)
    data = memoryview(bytes(range(80))).cast("Q")
    buf.append(data)
    assert len(buf) == 80
    with buf.peek(100) as view:
        assert view.tobytes() == bytes(range(80))
    small = memoryview(bytes(8)).cast("I")
    buf.append(small)
    assert len(buf) == 88


def test_advance_rejects_too_much() -> None:
    buf = make()
    buf.append(b"abc")
    with pytest.raises(ValueError, match="cannot advance 4"):
        buf.advance(4)
    with pytest.raises(ValueError):
        buf.advance(-1)
    buf.advance(0)
    assert len(buf) == 3


def test_clear_releases_everything() -> None:
    buf = make(10)
    big = bytearray(b"x" * 20)
    buf.append(b"12345")
    buf.append(big)
    buf.append(b"67")
    buf.advance(3)
    buf.clear()
    assert_resizable(big)
    assert len(buf) == 0 and not buf._buffers
    buf.append(b"abc")
    with buf.peek(10) as view:
        assert view.tobytes() == b"abc"


def test_empty_append_is_ignored() -> None:
    buf = make()
    buf.append(b"")
    buf.append(memoryview(b""))
    assert len(buf) == 0 and not buf._buffers


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.binary(max_size=40), st.sampled_from([0, 1, 2])),
            st.tuples(st.just("advance"), st.integers(min_value=0, max_value=60), st.just(0)),
        ),
        max_size=60,
    ),
    st.sampled_from([1, 10, 30]),
)
def test_matches_a_bytes_model(ops: list[tuple[str, object, int]], threshold: int) -> None:
    buf = make(threshold)
    model = b""
    kept: list[Piece] = []
    for op, arg, kind in ops:
        if op == "append":
            assert isinstance(arg, bytes)
            piece: Piece = [bytes, bytearray, memoryview][kind](arg)
            kept.append(piece)
            buf.append(piece)
            model += arg
        else:
            assert isinstance(arg, int)
            n = min(arg, len(model))
            buf.advance(n)
            model = model[n:]
        assert len(buf) == len(model)
        assert contents(buf) == model
        if model:
            with buf.peek(len(model)) as view:
                got = view.tobytes()
            assert got and model.startswith(got)
    buf.advance(len(model))
    for piece in kept:
        if isinstance(piece, bytearray):
            assert_resizable(piece)


def test_random_interleaving_releases_all_views() -> None:
    rng = random.Random(3)
    buf = make(16)
    inputs: list[bytearray] = []
    size = 0
    for _ in range(300):
        if size and rng.random() < 0.5:
            n = rng.randrange(1, size + 1)
            buf.advance(n)
            size -= n
        else:
            data = bytearray(os.urandom(rng.randrange(0, 48)))
            inputs.append(data)
            buf.append(data)
            size += len(data)
    buf.advance(size)
    for data in inputs:
        assert_resizable(data)
