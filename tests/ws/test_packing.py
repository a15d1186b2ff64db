"""squall/_ws/_packing.py: as imported (compiled by mypyc in the compiled
run) and as its pure source, which is the reference.

Both must give the same packed string, the same None, or the same
TypeError with the same message, for every dict: checked on chosen cases
and on random fields (names and values with codes, separators, control
characters, wide characters, wrong types). Its C twin (speedups/c/packing.c)
saved under 2% of a handshake and was removed.
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

import pytest

import squall._ws._packing
from tests import _cext


@pytest.fixture(scope="module")
def loaded() -> ModuleType:
    # The module as imported: compiled by mypyc in the compiled run.
    return squall._ws._packing


@pytest.fixture(scope="module")
def pure_module() -> ModuleType:
    return _cext.pure(squall._ws._packing)


def test_the_tables_are_the_references(loaded: ModuleType, pure_module: ModuleType) -> None:
    assert loaded.WORDS == pure_module.WORDS
    assert loaded.CODES == pure_module.CODES
    assert loaded.SEPARATOR == pure_module.SEPARATOR == "\n"
    assert sorted(loaded.__all__) == sorted(pure_module.__all__)


CASES: list[Any] = [
    pytest.param({}, "", id="no fields"),
    pytest.param({"Host": ["h"]}, "\x00\nh", id="a name with a code"),
    pytest.param({"X-Own": ["a", "b"]}, "X-Own\na\nX-Own\nb", id="two values"),
    pytest.param({"Host": ["h"], "X-Own": []}, "\x00\nh", id="no values"),
    pytest.param({"Cookie": ["é=€"], "User-Agent": ["😀"]}, "\x0f\né=€\n\x08\n😀", id="wide"),
    pytest.param({"Host": ["a\nb"]}, None, id="a separator in a value"),
    pytest.param({"A\nB": ["v"]}, None, id="a separator in a name"),
    pytest.param({"\x01": ["v"]}, None, id="a control character for a name"),
    pytest.param({"A\nB": []}, "", id="a separator in a name without values"),
]


@pytest.mark.parametrize("which", ["loaded", "pure"])
@pytest.mark.parametrize(("fields", "packed"), CASES)
def test_chosen_fields_pack_as_said(
    loaded: ModuleType, pure_module: ModuleType, which: str, fields: Any, packed: Any
) -> None:
    module = loaded if which == "loaded" else pure_module
    assert module.pack_fields(fields) == packed


@pytest.mark.parametrize("which", ["loaded", "pure"])
def test_wrong_types_are_refused_with_what_was_wrong(
    loaded: ModuleType, pure_module: ModuleType, which: str
) -> None:
    module = loaded if which == "loaded" else pure_module
    with pytest.raises(TypeError, match="a field name must be a str, not bytes"):
        module.pack_fields({b"Host": ["h"]})
    with pytest.raises(TypeError, match="the values of 'Host' must be a list, not tuple"):
        module.pack_fields({"Host": ("h",)})
    with pytest.raises(TypeError, match="a value of 'Host' must be a str, not int"):
        module.pack_fields({"Host": [1]})
    # In order: a control-character name before a later wrong type returns
    # None; a separator waits for every field, so a later wrong type raises.
    assert module.pack_fields({"\x02": ["v"], "Host": [1]}) is None
    with pytest.raises(TypeError):
        module.pack_fields({"Host": ["a\nb"], "Origin": [1]})


ALPHABET = ["Host", "Upgrade", "X-A", "a\nb", "\x01", "\n", "é", "€", "😀", "v", "", " ", "\x1f"]


def random_fields(rng: random.Random) -> dict[Any, Any]:
    fields: dict[Any, Any] = {}
    for _ in range(rng.randint(0, 6)):
        name: Any = rng.choice([*ALPHABET, "User-Agent", 1, b"x"])
        roll = rng.random()
        if roll < 0.05:
            values: Any = ("a",)
        elif roll < 0.1:
            values = [1]
        else:
            values = [rng.choice(ALPHABET) for _ in range(rng.randint(0, 3))]
        fields[name] = values
    return fields


def test_random_fields_pack_the_same(loaded: ModuleType, pure_module: ModuleType) -> None:
    rng = random.Random(20261125)
    for _ in range(5000):
        fields = random_fields(rng)
        assert _cext.outcome(loaded.pack_fields, fields) == _cext.outcome(
            pure_module.pack_fields, fields
        ), fields


class Name(str):
    pass


def test_a_str_subclass_name_unpacks_the_same(loaded: ModuleType) -> None:
    # Written by its characters, not its code: the same field once unpacked.
    packed = loaded.pack_fields({Name("Host"): ["h"], "Origin": ["o"]})
    assert packed in ("Host\nh\n\x07\no", "\x00\nh\n\x07\no")


def test_many_fields_pack_the_same(loaded: ModuleType, pure_module: ModuleType) -> None:
    fields = {f"X-Field-{i}": [f"value {i}", "é"] for i in range(100)}
    fields["Host"] = ["h"]
    packed = loaded.pack_fields(fields)
    assert packed == pure_module.pack_fields(fields)
    assert packed.count("\n") == 2 * 201 - 1
