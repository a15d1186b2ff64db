"""The compiled build's rule on subclasses, checked in the pure run too."""

from __future__ import annotations

from .test_speedups import ROOT, load_build


def test_no_interpreted_class_subclasses_an_unmarked_compiled_one() -> None:
    # speedups/squall_build.py leaves a listed module interpreted when a
    # module it does not compile subclasses one of its classes without
    # @mypyc_attr(allow_interpreted_subclasses=True) (a Protocol too: the
    # HTTP/3 stream's driver interface once subclassed _muxstream's
    # MuxDriver). Only the compiled run would notice, by a slower build.
    build = load_build()
    assert build._unmarked_bases(ROOT, set(build.COMPILED_MODULES)) == {}
