"""Tests for squall.util."""

from __future__ import annotations

import datetime
import errno
import functools
import gzip
import re
import sys
import unittest
import zlib
from typing import Any

import pytest

import squall.util
from squall.util import (
    ArgReplacer,
    Configurable,
    GzipDecompressor,
    ObjectDict,
    _websocket_mask,
    basestring_type,
    bytes_type,
    doctests,
    errno_from_exception,
    exec_in,
    import_object,
    raise_exc_info,
    re_unescape,
    timedelta_to_seconds,
    unicode_type,
)

# --- ObjectDict -------------------------------------------------------------


def test_object_dict_attribute_access() -> None:
    d = ObjectDict(a=1)
    d.b = 2
    assert d.a == 1
    assert d["b"] == 2
    with pytest.raises(AttributeError, match="missing"):
        _ = d.missing


def test_aliases() -> None:
    assert unicode_type is str and basestring_type is str and bytes_type is bytes
    assert squall.util.TimeoutError is TimeoutError


# --- GzipDecompressor -------------------------------------------------------


def _drive(data: bytes, read_size: int, max_length: int) -> bytes:
    dec = GzipDecompressor()
    out = bytearray()
    for i in range(0, len(data), read_size):
        chunk = data[i : i + read_size]
        while chunk:
            piece = dec.decompress(chunk, max_length)
            assert len(piece) <= max_length
            tail = dec.unconsumed_tail
            assert piece or len(tail) < len(chunk)
            chunk = tail
            out += piece
    assert dec.flush() == b""
    return bytes(out)


@pytest.mark.parametrize("read_size", [1, 13, 4096])
@pytest.mark.parametrize("max_length", [1, 64, 100000])
def test_gzip_multi_member(read_size: int, max_length: int) -> None:
    payloads = [bytes(range(256)) * 4, b"", b"abc" * 500]
    data = b"".join(gzip.compress(p) for p in payloads)
    assert _drive(data, read_size, max_length) == b"".join(payloads)


def test_gzip_empty_stream_flushes() -> None:
    assert GzipDecompressor().flush() == b""


@pytest.mark.parametrize("trailer", [b"\0", b"junk", b"\x1f\x00"])
def test_gzip_trailing_garbage(trailer: bytes) -> None:
    with pytest.raises(zlib.error):
        _drive(gzip.compress(b"data") + trailer, 1024, 1024)


def test_gzip_truncated() -> None:
    data = gzip.compress(b"some data" * 100)
    with pytest.raises(zlib.error, match="truncated"):
        _drive(data[:-3], 1024, 1024)


def test_gzip_not_gzip() -> None:
    with pytest.raises(zlib.error):
        _drive(zlib.compress(b"hello"), 1024, 1024)


def test_gzip_error_texts() -> None:
    # Texts that callers and tests match on: what the stream starts with, a
    # stream cut inside a member, and flush() before the tail was fed back.
    with pytest.raises(zlib.error) as info:
        GzipDecompressor().decompress(b"notgzip", 100)
    assert str(info.value) == "expected a gzip member, got b'no'"
    dec = GzipDecompressor()
    with pytest.raises(zlib.error) as info:
        dec.decompress(gzip.compress(b"x") + b"junk", 100)
    assert str(info.value) == "expected a gzip member, got b'ju'"
    dec = GzipDecompressor()
    dec.decompress(gzip.compress(b"some data" * 100)[:-3], 10000)
    with pytest.raises(zlib.error) as info:
        dec.flush()
    assert str(info.value) == "incomplete or truncated gzip stream"
    dec = GzipDecompressor()
    dec.decompress(gzip.compress(b"\0" * 100000), 10)
    with pytest.raises(ValueError) as vinfo:
        dec.flush()
    assert str(vinfo.value) == "unconsumed_tail must be passed to decompress before flush"


def test_gzip_negative_max_length_is_refused() -> None:
    # zlib refuses a negative limit; it does not mean "no limit".
    with pytest.raises(ValueError, match="max_length must be non-negative"):
        GzipDecompressor().decompress(gzip.compress(b"abc"), -1)


def test_gzip_flush_with_tail_raises() -> None:
    dec = GzipDecompressor()
    assert len(dec.decompress(gzip.compress(b"\0" * 100000), 10)) == 10
    assert dec.unconsumed_tail
    with pytest.raises(ValueError, match="unconsumed"):
        dec.flush()


def test_gzip_without_max_length_warns() -> None:
    dec = GzipDecompressor()
    data = gzip.compress(b"one") + gzip.compress(b"two")
    with pytest.warns(DeprecationWarning, match="max_length"):
        assert dec.decompress(data) == b"onetwo"
    assert dec.flush() == b""


# --- import_object / exec_in / raise_exc_info -------------------------------


def test_import_object() -> None:
    assert import_object("squall.util") is squall.util
    assert import_object("squall.util.ObjectDict") is ObjectDict
    assert import_object("squall") is sys.modules["squall"]
    assert import_object("os.path") is sys.modules["os.path"]


def test_import_object_missing() -> None:
    with pytest.raises(ImportError, match="No module named missing_thing"):
        import_object("squall.missing_thing")
    with pytest.raises(ImportError):
        import_object("squall_no_such_package.x")


def test_import_object_reraises_nested_import_error() -> None:
    # A module that exists but fails to import must not be reported missing.
    name = "squall_test_broken_mod"
    try:
        sys.modules[name] = None  # type: ignore[assignment]
        with pytest.raises(ImportError) as info:
            import_object(f"squall.util.{name}")
        assert "No module named" in str(info.value)
    finally:
        del sys.modules[name]


def test_exec_in_does_not_inherit_future() -> None:
    ns: dict[str, Any] = {}
    exec_in("def f(x: int) -> int:\n    return x\nann = f.__annotations__", ns)
    assert ns["ann"] == {"x": int, "return": int}
    loc: dict[str, Any] = {}
    exec_in(compile("y = 5", "<t>", "exec"), {}, loc)
    assert loc == {"y": 5}


def test_raise_exc_info_keeps_instance() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__()
            self.a = a

    try:
        raise Odd(1, 2)
    except Odd:
        info = sys.exc_info()
    with pytest.raises(Odd) as caught:
        raise_exc_info(info)
    assert caught.value is info[1]


def test_raise_exc_info_without_exception() -> None:
    with pytest.raises(TypeError, match="no exception"):
        raise_exc_info((None, None, None))


def test_errno_from_exception() -> None:
    assert errno_from_exception(OSError(errno.EPIPE, "pipe")) == errno.EPIPE
    assert errno_from_exception(Exception(errno.EBADF)) == errno.EBADF
    assert errno_from_exception(Exception()) is None
    # An errno attribute counts even when it is None: OSError("text") has
    # no errno, and its message is not one.
    assert errno_from_exception(OSError("text")) is None
    assert errno_from_exception(OSError()) is None


def test_re_unescape() -> None:
    for s in ["/favicon.ico", "a b.c", "!$@#%;", "tab\there\n"]:
        assert re_unescape(re.escape(s)) == s
    for bad in ["\\d", "\\b", "\\Z", "\\1"]:
        with pytest.raises(ValueError, match="cannot unescape"):
            re_unescape(bad)
    # Only ASCII letters and digits stand for classes: an escaped "é" (or
    # "٣", a digit to str.isdigit) is the character itself.
    assert re_unescape("\\\u00e9\\\u0663/") == "\u00e9\u0663/"
    # The whole text is the escape, with nothing after it.
    with pytest.raises(ValueError) as info:
        re_unescape("x\\\\\\w+")
    assert str(info.value) == "cannot unescape '\\\\w'"


def test_timedelta_to_seconds() -> None:
    assert timedelta_to_seconds(datetime.timedelta(minutes=2, milliseconds=500)) == 120.5


def test_websocket_mask() -> None:
    data = bytes(range(10))
    mask = b"\x01\x02\x03\x04"
    masked = _websocket_mask(mask, data)
    assert masked == bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert _websocket_mask(mask, masked) == data
    assert _websocket_mask(mask, b"") == b""
    with pytest.raises(ValueError, match="4 bytes"):
        _websocket_mask(b"abc", data)


def test_doctests_run() -> None:
    suite = doctests()
    assert suite.countTestCases() >= 1
    result = unittest.TestResult()
    suite.run(result)
    assert result.wasSuccessful(), result.failures


# --- ArgReplacer ------------------------------------------------------------


def _target(x: int, y: int, callback: Any = None, *, z: Any = None) -> None:
    pass


def test_arg_replacer_positional() -> None:
    r = ArgReplacer(_target, "callback")
    assert r.arg_pos == 2
    assert r.get_old_value((1, 2, "old"), {}) == "old"
    assert r.replace("new", (1, 2, "old"), {}) == ("old", [1, 2, "new"], {})


def test_arg_replacer_keyword_and_omitted() -> None:
    r = ArgReplacer(_target, "callback")
    assert r.get_old_value((1,), {}, default="d") == "d"
    assert r.replace("new", (1, 2), {}) == (None, (1, 2), {"callback": "new"})
    kw: dict[str, Any] = {"callback": "old"}
    assert r.replace("new", (1,), kw) == ("old", (1,), {"callback": "new"})


def test_arg_replacer_keyword_only() -> None:
    r = ArgReplacer(_target, "z")
    assert r.arg_pos is None
    assert r.get_old_value((1, 2, 3), {"z": 9}) == 9


def test_arg_replacer_unreadable_signature() -> None:
    # inspect's own TypeError, as on Tornado.
    with pytest.raises(TypeError):
        ArgReplacer(42, "x")  # type: ignore[arg-type]


class _Holder:
    def method(self, callback: Any = None) -> None:
        pass


def test_arg_replacer_counts_positions_of_the_callable_as_given() -> None:
    # Positions are those of getfullargspec: a bound method's list starts
    # with self, and a functools.wraps wrapper is read as its own signature
    # (*args, **kwargs), not its wrapped function's. Code written for
    # Tornado computes its indexes the same way.
    assert ArgReplacer(_Holder().method, "callback").arg_pos == 1

    @functools.wraps(_target)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        pass

    r = ArgReplacer(wrapper, "callback")
    assert r.arg_pos is None
    assert r.replace("new", (1, 2), {}) == (None, (1, 2), {"callback": "new"})


# --- Configurable -----------------------------------------------------------


class Base(Configurable):
    @classmethod
    def configurable_base(cls) -> type[Configurable]:
        return Base

    @classmethod
    def configurable_default(cls) -> type[Configurable]:
        return ImplA


class ImplA(Base):
    def initialize(self, pos: Any = None, a: Any = None) -> None:
        self.pos = pos
        self.a = a


class ImplB(Base):
    def initialize(self, pos: Any = None, b: Any = None) -> None:
        self.pos = pos
        self.b = b


class Nested(Base):
    @classmethod
    def configurable_base(cls) -> type[Configurable]:
        return Nested

    @classmethod
    def configurable_default(cls) -> type[Configurable]:
        return NestedA


class NestedA(Nested):
    def initialize(self, a: Any = None) -> None:
        self.a = a


class NestedB(Nested):
    def initialize(self, b: Any = None) -> None:
        self.b = b


class NoDefault(Configurable):
    @classmethod
    def configurable_base(cls) -> type[Configurable]:
        return NoDefault

    @classmethod
    def configurable_default(cls) -> Any:
        return None


@pytest.fixture(autouse=True)
def _restore_config() -> Any:
    saved = Base._save_configuration()
    saved_nested = Nested._save_configuration()
    yield
    Base._restore_configuration(saved)
    Nested._restore_configuration(saved_nested)


def test_configurable_default() -> None:
    obj = Base(a=1)
    assert isinstance(obj, ImplA) and obj.a == 1
    assert Base.configured_class() is ImplA


def test_configurable_configure_class_and_kwargs() -> None:
    Base.configure(ImplB, b=5)
    obj = Base(7)
    assert isinstance(obj, ImplB) and obj.b == 5 and obj.pos == 7
    assert Base(b=6).b == 6
    # Direct construction of a subclass ignores configured kwargs.
    assert ImplB().b is None


def test_configurable_configure_by_name() -> None:
    Base.configure(f"{__name__}.ImplB")
    assert isinstance(Base(), ImplB)
    Base.configure(None, a=3)
    obj = Base()
    assert isinstance(obj, ImplA) and obj.a == 3


def test_configurable_rejects_non_subclass() -> None:
    # The message names the class configured, as Tornado's "%s" % cls does.
    with pytest.raises(ValueError) as info:
        Base.configure(int)
    assert str(info.value) == f"Invalid subclass of {Base}"
    with pytest.raises(ValueError):
        Base.configure("collections.OrderedDict")
    # Something that is not a class at all fails in issubclass itself.
    with pytest.raises(TypeError):
        Base.configure(3)  # type: ignore[arg-type]


def test_configurable_multi_level() -> None:
    Base.configure(Nested, a=1)
    obj = Base()
    assert isinstance(obj, NestedA) and obj.a == 1
    Base.configure(Nested)
    Nested.configure(NestedB, b=2)
    obj2 = Base()
    assert isinstance(obj2, NestedB) and obj2.b == 2
    # The outer configuration does not leak into the inner hierarchy.
    assert isinstance(Base.configured_class(), type)


def test_configurable_inner_independent() -> None:
    assert isinstance(Nested(), NestedA)
    Nested.configure(NestedB)
    assert isinstance(Base(), ImplA)
    assert isinstance(Nested(), NestedB)


def test_configurable_no_default() -> None:
    with pytest.raises(ValueError, match="configured class not found"):
        NoDefault()


def test_configurable_abstract_hooks() -> None:
    with pytest.raises(NotImplementedError):
        Configurable.configurable_base()
    with pytest.raises(NotImplementedError):
        Configurable.configurable_default()
