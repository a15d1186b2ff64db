from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squall._ws import mask


def naive(key: bytes, data: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize(
    ("key", "data", "expected"),
    [
        (b"abcd", b"", b""),
        (b"abcd", b"b", b"\x03"),
        (b"abcd", b"54321", b"TVPVP"),
        (b"ZXCV", b"98765432", b"c`t`olpd"),
        (b"\x00\x01\x02\x03", b"\xff\xfb\xfd\xfc\xfe\xfa", b"\xff\xfa\xff\xff\xfe\xfb"),
    ],
)
def test_known_values(key: bytes, data: bytes, expected: bytes) -> None:
    assert mask(key, data) == expected


@pytest.mark.parametrize("size", [1, 3, 4, 5, 2047, 2048, 2049, 4096, 70001])
def test_both_strategies_match_the_definition(size: int) -> None:
    key = os.urandom(4)
    data = os.urandom(size)
    assert mask(key, data) == naive(key, data)
    assert mask(key, mask(key, data)) == data


@given(st.binary(min_size=4, max_size=4), st.binary(max_size=300))
def test_mask_is_an_involution(key: bytes, data: bytes) -> None:
    assert mask(key, data) == naive(key, data)
    assert mask(key, mask(key, data)) == data


def test_accepts_bytearray_and_memoryview() -> None:
    assert mask(b"abcd", bytearray(b"54321")) == b"TVPVP"
    assert mask(b"abcd", memoryview(b"x" * 3000)) == naive(b"abcd", b"x" * 3000)


@pytest.mark.parametrize("key", [b"", b"a", b"abc", b"abcde"])
def test_key_must_be_four_bytes(key: bytes) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        mask(key, b"data")
