"""JSON text of plain values: squall/_jsonenc.py and its C replacement
(speedups/c/jsonenc.c), and json_encode on top of them.

Both must give the same result for every value, and that result must be
``json.dumps(value)`` with ``</`` written ``<\\/`` when the value is plain,
None when it is not: checked on the same inputs, with Hypothesis (all of
Unicode, lone surrogates and characters beyond the BMP; ints past 64 bits;
every float; nesting up to the depth limit and past it).

In the compiled run the installed C module is tested; in the pure run the C
source is compiled here (skipped, saying why, without a C compiler). The
pure module is always loaded from its source file.
"""

from __future__ import annotations

import collections
import enum
import json
import sys
from types import FunctionType, ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import squall._jsonenc
from squall import escape
from tests import _cext

NAME = "squall._jsonenc"


c_module, py_module = _cext.twins(squall._jsonenc, "encode_plain", "jsonenc.c")


outcome = _cext.outcome


def expected_text(value: Any) -> str:
    return json.dumps(value).replace("</", "<\\/")


def nested(depth: int) -> list[Any]:
    """A list ``depth`` containers deep in all."""
    outer: list[Any] = []
    inner = outer
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return outer


# Every storage width of a str, every escape JSON has, and "</" in pieces.
_ALPHABET = st.sampled_from(
    list('ab</"\\\b\f\n\r\t\x00\x1f\x7f\x80\xff\u0100\u2028\ud800\udfff\U0001f600\U0010ffff')
)
_TEXT = st.one_of(st.text(st.characters(exclude_categories=())), st.text(_ALPHABET))
_PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | _TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(_TEXT, inner, max_size=4)
    ),
    max_leaves=16,
)


class Text(str):
    # json.dumps writes the stored characters and calls none of these.
    def __str__(self) -> str:
        return "not this"

    def __repr__(self) -> str:
        return "not this"


class Count(int):
    def __repr__(self) -> str:
        return "not this"


class Ratio(float):
    def __repr__(self) -> str:
        return "not this"


class Number(enum.IntEnum):
    ONE = 1


class Colour(enum.StrEnum):
    RED = "</red>"


class Mapping(dict):  # type: ignore[type-arg]
    pass


Point = collections.namedtuple("Point", "x y")

# Subclasses of str, int and float are plain: their stored value is their
# text, as json.dumps writes it.
_SUBCLASSED = st.one_of(
    st.builds(Text, _TEXT),
    st.builds(Count, st.integers(min_value=-(2**80), max_value=2**80)),
    st.builds(Ratio, st.floats()),
    st.sampled_from([Number.ONE, Colour.RED]),
)
_WITH_SUBCLASSES = st.recursive(
    _SUBCLASSED | _PLAIN,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.builds(Text, _TEXT), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_the_compiled_module_is_c(c_module: ModuleType, py_module: ModuleType) -> None:
    assert not isinstance(c_module.encode_plain, FunctionType)
    assert isinstance(py_module.encode_plain, FunctionType)
    assert set(c_module.__all__) == set(py_module.__all__) == {"MAX_DEPTH", "encode_plain"}
    assert c_module.MAX_DEPTH == py_module.MAX_DEPTH


@given(_WITH_SUBCLASSES)
def test_plain_values_are_json_dumps_in_both(
    c_module: ModuleType, py_module: ModuleType, value: Any
) -> None:
    text = expected_text(value)
    assert outcome(py_module.encode_plain, value) == ("ok", str, text)
    assert outcome(c_module.encode_plain, value) == ("ok", str, text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"html": "</script>"}, '{"html": "<\\/script>"}'),
        ("<</</", '"<<\\/<\\/"'),
        ("a/b </", '"a/b <\\/"'),
        (
            [-(2**63), 2**63 - 1, 2**64],
            "[-9223372036854775808, 9223372036854775807, 18446744073709551616]",
        ),
        (
            (float("nan"), float("inf"), -float("inf"), -0.0, 1e300),
            "[NaN, Infinity, -Infinity, -0.0, 1e+300]",
        ),
        ({}, "{}"),
        ([[], ()], "[[], []]"),
        ("\x7f\u2028\U0001f600", '"\\u007f\\u2028\\ud83d\\ude00"'),
        ({"k": None, "t": True, "f": False}, '{"k": null, "t": true, "f": false}'),
    ],
)
def test_examples(c_module: ModuleType, py_module: ModuleType, value: Any, text: str) -> None:
    assert text == expected_text(value)
    for module in (c_module, py_module):
        result = module.encode_plain(value)
        assert result == text
        assert type(result) is str


def test_subclass_examples(c_module: ModuleType, py_module: ModuleType) -> None:
    value = {Text("k"): [Text("a"), Count(7), Ratio(0.5), Number.ONE, Colour.RED]}
    text = '{"k": ["a", 7, 0.5, 1, "<\\/red>"]}'
    assert text == expected_text(value)
    for module in (c_module, py_module):
        assert module.encode_plain(value) == text
    big = Count(2**70)
    assert c_module.encode_plain(big) == py_module.encode_plain(big) == str(2**70)


_NOT_PLAIN = [
    Mapping(a=1),
    Point(1, 2),
    collections.OrderedDict(a=1),
    {1: "int key"},
    {"a": {"b": [1, object()]}},
    [1, (2, {3})],
    b"bytes",
    {"deep": nested(squall._jsonenc.MAX_DEPTH)},
]


@pytest.mark.parametrize("value", _NOT_PLAIN, ids=lambda v: type(v).__name__)
def test_values_that_are_not_plain_are_left_to_the_general_encoder(
    c_module: ModuleType, py_module: ModuleType, value: Any
) -> None:
    assert py_module.encode_plain(value) is None
    assert c_module.encode_plain(value) is None


def test_the_depth_limit_is_the_same(c_module: ModuleType, py_module: ModuleType) -> None:
    limit = py_module.MAX_DEPTH
    deepest = nested(limit)
    for module in (c_module, py_module):
        assert module.encode_plain(deepest) == json.dumps(deepest)
        assert module.encode_plain(nested(limit + 1)) is None
        loop: list[Any] = []
        loop.append(loop)
        assert module.encode_plain(loop) is None


def test_an_int_past_the_digit_limit_raises_as_json_dumps(
    c_module: ModuleType, py_module: ModuleType
) -> None:
    value = {"n": 10**5000}
    expected = outcome(json.dumps, value)
    assert expected[:2] == ("raised", ValueError)
    assert outcome(py_module.encode_plain, value) == expected
    assert outcome(c_module.encode_plain, value) == expected


def test_long_text_grows_the_buffer(c_module: ModuleType) -> None:
    value = {"text": "</x>" * 5000, "more": ["\U0001f600" * 3000, "\u00e9" * 3000]}
    assert c_module.encode_plain(value) == expected_text(value)


@given(st.one_of(_PLAIN, _WITH_SUBCLASSES, st.builds(lambda v: [v, Mapping(t=1)], _PLAIN)))
def test_json_encode_is_json_dumps_either_way(value: Any) -> None:
    assert escape.json_encode(value) == expected_text(value)


def test_json_encode_uses_c_for_plain_values_in_the_compiled_build() -> None:
    compiled = not isinstance(squall._jsonenc.encode_plain, FunctionType)
    assert escape._PLAIN_IN_C is compiled
    # Not plain: the general encoder's text and errors.
    assert escape.json_encode({"n": Number.ONE}) == '{"n": 1}'
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        escape.json_encode({"a": {1}})


def test_no_reference_is_kept_or_lost(c_module: ModuleType) -> None:
    key = Text("k" + str(id(c_module)))
    text = "v" + str(id(c_module))
    big = Count(2**70 + id(c_module))
    inner = [text, big, 1.5, Ratio(2.5)]
    value = {key: inner, "t": (inner,)}
    odd = {"a": [inner, {3}]}
    counts = [sys.getrefcount(o) for o in (key, text, big, inner, value, odd)]
    for _ in range(100):
        c_module.encode_plain(value)
        assert c_module.encode_plain(odd) is None
    assert [sys.getrefcount(o) for o in (key, text, big, inner, value, odd)] == counts
