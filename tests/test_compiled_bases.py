"""The compiled build's rule on subclasses, checked in the pure run too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .test_speedups import ROOT, load_build


def test_no_interpreted_class_subclasses_an_unmarked_compiled_one() -> None:
    # speedups/squall_build.py leaves a listed module interpreted when a
    # module it does not compile subclasses one of its classes without
    # @mypyc_attr(allow_interpreted_subclasses=True) (a Protocol too: the
    # HTTP/3 stream's driver interface once subclassed _muxstream's
    # MuxDriver). Only the compiled run would notice, by a slower build.
    build = load_build()
    assert build._unmarked_bases(ROOT, set(build.COMPILED_MODULES)) == {}


def _compiled_modules(build: Any) -> set[str]:
    names = set(build.COMPILED_MODULES)
    for package in build.COMPILED_PACKAGES:
        names.update(
            f"squall.{package}.{path.stem}" for path in (ROOT / "squall" / package).glob("*.py")
        )
    return names


def test_no_compiled_class_inherits_its_init_from_a_marked_one() -> None:
    # mypyc runs such a class's __init__ twice when Python code calls it (its
    # tp_new, then the marked base's tp_init): the compiled _H2Stream took two
    # stream slots of its connection. The build leaves such a module
    # interpreted; this says which class, in the pure run too.
    build = load_build()
    assert build._inherited_inits(ROOT, _compiled_modules(build)) == {}


def test_the_inherited_init_check_finds_one(tmp_path: Path) -> None:
    build = load_build()
    package = tmp_path / "squall"
    package.mkdir()
    (package / "base.py").write_text(
        "from squall._compiled import mypyc_attr\n\n\n"
        "@mypyc_attr(allow_interpreted_subclasses=True)\n"
        "class Marked:\n    def __init__(self) -> None:\n        pass\n\n\n"
        "class Middle(Marked):\n    pass\n"
    )
    (package / "sub.py").write_text(
        "from squall.base import Marked, Middle\n\n\n"
        "class Inherits(Middle):\n    pass\n\n\n"
        "class Own(Marked):\n    def __init__(self) -> None:\n        super().__init__()\n"
    )
    found = build._inherited_inits(tmp_path, {"squall.base", "squall.sub"})
    assert found == {"squall.base": ["Middle"], "squall.sub": ["Inherits"]}
    assert build._inherited_inits(tmp_path, {"squall.sub"}) == {}
