"""squall/_h2/_framing.py: as imported (compiled by mypyc with squall._h2 in
the compiled run) and as its pure source, which is the reference.

Both must give the same frame for the same arguments and refuse the same
arguments with the same exception (the same message for a ValueError):
checked on chosen cases and random ones, each argument either valid or the
one wrong thing. Its C twin (speedups/c/h2frame.c) saved about 1% of an
HTTP/2 response and was removed.
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

import pytest

import squall._h2._framing
from tests import _cext


@pytest.fixture(scope="module")
def loaded() -> ModuleType:
    # The module as imported: compiled by mypyc in the compiled run.
    return squall._h2._framing


@pytest.fixture(scope="module")
def pure_module() -> ModuleType:
    return _cext.pure(squall._h2._framing)


def test_both_offer_the_same_names(loaded: ModuleType, pure_module: ModuleType) -> None:
    assert loaded.__all__ == pure_module.__all__ == ["frame"]


FRAMES: list[Any] = [
    pytest.param((0, 1, 1, b"hello"), "000005000100000001" + b"hello".hex(), id="DATA, END_STREAM"),
    pytest.param((4, 0, 0, b""), "000000040000000000", id="empty SETTINGS"),
    pytest.param((1, 5, 2**31 - 1, b"\x88"), "00000101057fffffff88", id="highest stream"),
    pytest.param((9, 4, 3, b"\x00" * 16384), "004000090400000003" + "00" * 16384, id="16 KiB"),
    pytest.param(
        (255, 255, 2**32 - 1, b"x" * 65536), "010000ffffffffffff" + "78" * 65536, id="the limits"
    ),
]


@pytest.mark.parametrize("which", ["loaded", "pure"])
@pytest.mark.parametrize(("args", "wire"), FRAMES)
def test_frames_are_the_wire_bytes(
    loaded: ModuleType, pure_module: ModuleType, which: str, args: Any, wire: str
) -> None:
    module = loaded if which == "loaded" else pure_module
    out = module.frame(*args)
    assert type(out) is bytes
    assert out.hex() == wire


@pytest.mark.parametrize("which", ["loaded", "pure"])
def test_bytes_like_payloads_are_framed_as_their_bytes(
    loaded: ModuleType, pure_module: ModuleType, which: str
) -> None:
    module = loaded if which == "loaded" else pure_module
    for payload in (bytearray(b"abc"), memoryview(b"abc")):
        assert module.frame(0, 0, 7, payload) == bytes.fromhex("000003000000000007") + b"abc"
    # bool is an int: False and True are 0 and 1.
    assert module.frame(True, False, 1, b"") == bytes.fromhex("000000010000000001")


REFUSED: list[Any] = [
    pytest.param((256, 0, 1, b""), ValueError, id="type over 255"),
    pytest.param((-1, 0, 1, b""), ValueError, id="negative type"),
    pytest.param((0, 256, 1, b""), ValueError, id="flags over 255"),
    pytest.param((0, -5, 1, b""), ValueError, id="negative flags"),
    pytest.param((0, 0, 2**32, b""), ValueError, id="stream over 32 bits"),
    pytest.param((0, 0, -1, b""), ValueError, id="negative stream"),
    pytest.param((0, 0, 2**70, b""), ValueError, id="stream beyond 64 bits"),
    pytest.param((0, 0, 1, bytes(2**24)), ValueError, id="payload over 2**24 - 1"),
    pytest.param(("0", 0, 1, b""), TypeError, id="type a str"),
    pytest.param((0, 1.0, 1, b""), TypeError, id="flags a float"),
    pytest.param((0, 0, None, b""), TypeError, id="stream None"),
    pytest.param((0, 0, 1, "text"), TypeError, id="payload a str"),
    pytest.param((0, 0, 1, 5), TypeError, id="payload an int"),
]


@pytest.mark.parametrize(("args", "error"), REFUSED)
def test_both_refuse_the_same_arguments(
    loaded: ModuleType, pure_module: ModuleType, args: Any, error: type[Exception]
) -> None:
    c = _cext.outcome(loaded.frame, *args)
    py = _cext.outcome(pure_module.frame, *args)
    assert c[:2] == py[:2] == ("raised", error)
    if error is ValueError:
        assert c == py
        # The message names what was wrong.
        assert ("payload" in c[2]) == (len(args[3]) > 0xFFFFFF)


def test_random_arguments_agree(loaded: ModuleType, pure_module: ModuleType) -> None:
    rng = random.Random(20261125)
    wrong: list[Any] = [-1, 256, 2**32, 2**64, "1", 1.5, None]
    for _ in range(3000):
        args: list[Any] = [
            rng.choice([0, 1, 8, 9, rng.randrange(256)]),
            rng.choice([0, 1, 4, 5, rng.randrange(256)]),
            rng.choice([0, 1, 2**31 - 1, 2**32 - 1, rng.randrange(2**32)]),
            rng.randbytes(rng.choice([0, 1, 9, 100, rng.randrange(20000)])),
        ]
        if rng.random() < 0.3:
            # One thing wrong: an argument out of range or of the wrong type.
            i = rng.randrange(4)
            args[i] = rng.choice(wrong) if i < 3 else rng.choice(["text", 7, None])
        c = _cext.outcome(loaded.frame, *args)
        py = _cext.outcome(pure_module.frame, *args)
        if c[0] == "raised" and c[1] is TypeError:
            assert py[:2] == c[:2], args
        else:
            assert c == py, args


def test_a_frame_needs_four_arguments(loaded: ModuleType, pure_module: ModuleType) -> None:
    for module in (loaded, pure_module):
        with pytest.raises(TypeError):
            module.frame(0, 0, 1)
