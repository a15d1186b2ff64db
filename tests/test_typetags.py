"""squall/_typetags.py: the answer every build gives ("cannot tell").

Its C twin (speedups/c/typetags.c, which read CPython's class version tags)
was removed; the module always answers False ("look again"),
which the contract allows, and refuses wrong arguments saying what was wrong.
"""

from __future__ import annotations

import pytest

import squall._typetags as typetags


def test_the_module_always_says_look_again() -> None:
    class Leaf:
        pass

    tags = typetags.version_tags((Leaf, str))
    assert tags == b""
    assert typetags.tags_hold((Leaf, str), tags) is False
    assert typetags.tags_hold((), b"") is False


def test_wrong_arguments_are_refused_with_what_was_wrong() -> None:
    with pytest.raises(TypeError, match="tuple of classes, not list"):
        typetags.version_tags([int])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"types\[1\] is not a class but int"):
        typetags.version_tags((int, 1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tags_hold"):
        typetags.tags_hold((int,), "tags")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tags_hold"):
        typetags.tags_hold([int], b"")  # type: ignore[arg-type]
