"""HTML escaping: squall/_xhtml.py and its C replacement (speedups/c/xhtml.c).

Both must give the same result, or raise the same exception with the same
message, for every value: checked here on the same inputs, with Hypothesis
(all of Unicode, lone surrogates included; all five escaped characters;
bytes, valid UTF-8 or not; subclasses; other types).

In the compiled run the installed C module is tested; in the pure run the C
source is compiled here (skipped, saying why, without a C compiler). The
pure module is always loaded from its source file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import squall._xhtml
import squall.escape
from tests import _cext

ROOT = Path(__file__).resolve().parents[1]
NAME = "squall._xhtml"


c_module, py_module = _cext.twins(squall._xhtml, "xhtml_escape", "xhtml.c")


outcome = _cext.outcome


class Text(str):
    """A str subclass whose own methods must not be used."""

    def replace(self, *args: Any) -> str:  # type: ignore[override]
        return "subclass replace"

    def __contains__(self, item: object) -> bool:
        return False

    def __str__(self) -> str:
        return "subclass str"


class Data(bytes):
    def decode(self, *args: Any) -> str:  # type: ignore[override]
        return "subclass decode"


_SPECIAL = "&<>\"'"
# Every storage width of a str: ASCII, Latin-1, BMP (with lone surrogates),
# beyond the BMP.
_ALPHABET = st.sampled_from(list(_SPECIAL + "a \u00e9\u00ff\u20ac\ud800\udfff\U0001f600\x00"))
_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.text(_ALPHABET),
    st.text(st.sampled_from(list(_SPECIAL + "x")), min_size=1),
)


def test_the_compiled_module_is_c(c_module: ModuleType, py_module: ModuleType) -> None:
    assert not isinstance(c_module.xhtml_escape, FunctionType)
    assert isinstance(py_module.xhtml_escape, FunctionType)
    assert set(c_module.__all__) == set(py_module.__all__) == {"escape_value", "xhtml_escape"}


@given(_TEXT)
def test_str_escaped_the_same(c_module: ModuleType, py_module: ModuleType, text: str) -> None:
    expected = outcome(py_module.xhtml_escape, text)
    assert outcome(c_module.xhtml_escape, text) == expected
    assert outcome(c_module.xhtml_escape, Text(text)) == expected
    assert outcome(py_module.xhtml_escape, Text(text)) == expected
    assert outcome(c_module.escape_value, text, repr) == expected
    assert outcome(py_module.escape_value, text, repr) == expected


@given(st.one_of(st.binary(), _TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_bytes_escaped_the_same(c_module: ModuleType, py_module: ModuleType, data: bytes) -> None:
    expected = outcome(py_module.xhtml_escape, data)
    assert outcome(c_module.xhtml_escape, data) == expected
    assert outcome(c_module.xhtml_escape, Data(data)) == expected
    assert outcome(py_module.xhtml_escape, Data(data)) == expected


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("", ""),
        ("plain", "plain"),
        ("""<a href="x">'&'</a>""", "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"),
        ("&amp;", "&amp;amp;"),
        ("\u00e9<\u00ff", "\u00e9&lt;\u00ff"),
        ("\u20ac>\ud800", "\u20ac&gt;\ud800"),
        ("\U0001f600&\udfff", "\U0001f600&amp;\udfff"),
        (b"<\xc3\xa9>", "&lt;\u00e9&gt;"),
        (Text("<b>"), "&lt;b&gt;"),
        (Data(b"'"), "&#x27;"),
    ],
)
def test_examples(c_module: ModuleType, py_module: ModuleType, value: Any, escaped: str) -> None:
    for module in (c_module, py_module):
        result = module.xhtml_escape(value)
        assert result == escaped
        assert type(result) is str
        assert module.xhtml_escape(value=value) == escaped


def test_unchanged_text_is_the_same_object(c_module: ModuleType, py_module: ModuleType) -> None:
    text = "nothing to escape \u20ac"
    for module in (c_module, py_module):
        assert module.xhtml_escape(text) is text
        copied = module.xhtml_escape(Text(text))
        assert type(copied) is str and copied == text


@pytest.mark.parametrize("value", [None, 1, 1.5, bytearray(b"<"), memoryview(b"<"), ["<"]])
def test_other_types_are_refused_the_same(
    c_module: ModuleType, py_module: ModuleType, value: Any
) -> None:
    expected = outcome(py_module.xhtml_escape, value)
    assert expected[:2] == ("raised", TypeError)
    assert type(value).__name__ in expected[2]
    assert outcome(c_module.xhtml_escape, value) == expected


def test_invalid_utf8_is_refused_the_same(c_module: ModuleType, py_module: ModuleType) -> None:
    expected = outcome(py_module.xhtml_escape, b"<\xff>")
    assert expected[:2] == ("raised", UnicodeDecodeError)
    assert outcome(c_module.xhtml_escape, b"<\xff>") == expected


class Number(int):
    pass


@pytest.mark.parametrize(
    "value",
    [
        0,
        5,
        1023,
        1024,
        -1,
        -12,
        10**40,
        10**5000,
        True,
        1.5,
        None,
        Number(7),
        b"<",
        Text("<"),
        ["<"],
    ],
    ids=lambda v: type(v).__name__,
)
def test_escape_value_the_same(c_module: ModuleType, py_module: ModuleType, value: Any) -> None:
    def other(v: Any) -> str:
        return f"other({type(v).__name__})"

    expected = outcome(py_module.escape_value, value, other)
    assert outcome(c_module.escape_value, value, other) == expected
    if type(value) is int and value < 10**40:
        assert expected == ("ok", str, str(value))
    elif type(value) is not int:
        assert expected == ("ok", str, other(value))
    # An error in other() comes out as it is.

    def failing(v: Any) -> str:
        raise LookupError("from other")

    if type(value) not in (str, int):
        assert outcome(c_module.escape_value, value, failing) == (
            "raised",
            LookupError,
            "from other",
        )


@given(st.integers())
def test_ints_the_same(c_module: ModuleType, py_module: ModuleType, value: int) -> None:
    expected = outcome(py_module.escape_value, value, repr)
    assert expected == ("ok", str, str(value))
    # Twice: the small ones are kept after the first time.
    assert outcome(c_module.escape_value, value, repr) == expected
    assert outcome(c_module.escape_value, value, repr) == expected


def test_escape_value_takes_two_positional_arguments(c_module: ModuleType) -> None:
    with pytest.raises(TypeError):
        c_module.escape_value("x")
    with pytest.raises(TypeError):
        c_module.escape_value("x", repr, repr)
    with pytest.raises(TypeError):
        c_module.xhtml_escape()
    with pytest.raises(TypeError):
        c_module.xhtml_escape("x", "y")
    with pytest.raises(TypeError):
        c_module.xhtml_escape(text="x")


def test_no_reference_leaks(c_module: ModuleType) -> None:
    text, plain, data = "<&>" * 10, "plain", b"<x>"
    before = [sys.getrefcount(v) for v in (text, plain, data)]
    for _ in range(1000):
        c_module.xhtml_escape(text)
        c_module.xhtml_escape(plain)
        c_module.xhtml_escape(data)
        c_module.escape_value(plain, repr)
        c_module.escape_value(data, repr)
    assert [sys.getrefcount(v) for v in (text, plain, data)] == before


def test_escape_module_uses_it() -> None:
    assert squall.escape.xhtml_escape is squall._xhtml.xhtml_escape
