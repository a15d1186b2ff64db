"""squall/_typetags.py and its C replacement (speedups/c/typetags.c).

The C module answers from CPython's class version tags: True while no class
(nor any class it inherits from) has had an attribute set or deleted. The
pure module cannot read tags and always answers False ("look again"), which
the contract allows. In the compiled run the installed C module is tested; in
the pure run the C source is compiled here (skipped without a C compiler).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

import squall._typetags
from tests import _cext

c_module, py_module = _cext.twins(squall._typetags, "tags_hold", "typetags.c")


def classes() -> tuple[type, type, type]:
    class Base:
        def method(self) -> int:
            return 1

    class Middle(Base):
        pass

    class Leaf(Middle):
        pass

    # A lookup gives each class (and its bases) a tag.
    assert Leaf().method() == 1
    return Base, Middle, Leaf


def test_the_tags_hold_while_nothing_changes(c_module: ModuleType) -> None:
    _base, middle, leaf = classes()
    kinds = (leaf, middle, str)
    tags = c_module.version_tags(kinds)
    assert isinstance(tags, bytes) and len(tags) == 12
    assert c_module.tags_hold(kinds, tags) is True
    # Instances, lookups and calls change no class.
    leaf.method  # noqa: B018
    leaf().method()
    assert c_module.tags_hold(kinds, tags) is True


def _set(cls: Any) -> None:
    cls.method = lambda self: 2


def _delete(cls: Any) -> None:
    cls.extra = 1
    del cls.extra


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda b, m, leaf: _set(leaf), id="method set on the class"),
        pytest.param(lambda b, m, leaf: _set(b), id="method set on a base"),
        pytest.param(lambda b, m, leaf: setattr(m, "other", 3), id="other attribute on a base"),
        pytest.param(lambda b, m, leaf: _delete(leaf), id="attribute set and deleted"),
        pytest.param(lambda b, m, leaf: setattr(leaf, "__bases__", (b,)), id="bases assigned"),
    ],
)
def test_a_change_to_a_class_or_a_base_ends_the_tags(c_module: ModuleType, change: Any) -> None:
    base, middle, leaf = classes()
    kinds = (leaf,)
    tags = c_module.version_tags(kinds)
    assert c_module.tags_hold(kinds, tags)
    change(base, middle, leaf)
    # At once, before any lookup gives the class a new tag, and after one.
    assert c_module.tags_hold(kinds, tags) is False
    leaf().method()
    assert c_module.tags_hold(kinds, tags) is False
    assert c_module.tags_hold(kinds, c_module.version_tags(kinds)) is True


def test_a_change_to_another_class_leaves_them(c_module: ModuleType) -> None:
    _base, _middle, leaf = classes()
    other = classes()[1]
    tags = c_module.version_tags((leaf,))
    _set(other)
    assert c_module.tags_hold((leaf,), tags) is True


def test_tags_of_another_length_or_of_no_class_do_not_hold(c_module: ModuleType) -> None:
    _base, middle, leaf = classes()
    tags = c_module.version_tags((leaf, middle))
    assert c_module.tags_hold((leaf,), tags) is False
    assert c_module.tags_hold((leaf, middle), tags[:4]) is False
    assert c_module.tags_hold((leaf, middle), bytes(8)) is False  # 0: no tag
    assert c_module.tags_hold((leaf, 1), tags) is False


def test_the_pure_module_always_says_look_again(py_module: ModuleType) -> None:
    _base, _middle, leaf = classes()
    tags = py_module.version_tags((leaf,))
    assert tags == b""
    assert py_module.tags_hold((leaf,), tags) is False


@pytest.mark.parametrize("which", ["c", "py"])
def test_wrong_arguments_are_refused_with_what_was_wrong(
    c_module: ModuleType, py_module: ModuleType, which: str
) -> None:
    module = c_module if which == "c" else py_module
    with pytest.raises(TypeError, match="tuple of classes, not list"):
        module.version_tags([int])
    with pytest.raises(TypeError, match=r"types\[1\] is not a class but int"):
        module.version_tags((int, 1))
    with pytest.raises(TypeError, match="tags_hold"):
        module.tags_hold((int,), "tags")
    with pytest.raises(TypeError, match="tags_hold"):
        module.tags_hold([int], b"")
