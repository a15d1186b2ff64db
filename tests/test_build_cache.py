"""The compiled build's object cache (speedups/squall_build.py's ObjectCache):
an object file is built again exactly when what it is built from changed,
and the build's compilers run side by side. A stand-in compiler records
what it was asked to compile; no C compiler runs here."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.test_speedups import load_build

build = load_build()


class RecordingCompiler:
    """What the cache needs of a distutils compiler: ``compile`` (one object
    per source, under ``output_dir``), ``object_filenames`` and ``compiler_so``."""

    def __init__(self) -> None:
        self.compiler_so = ["cc", "-fPIC"]
        self.compiled: list[str] = []
        self.lock = threading.Lock()

    def object_filenames(self, sources: list[str], output_dir: Optional[str] = None) -> list[str]:
        return [str(Path(output_dir or ".", Path(s).with_suffix(".o").name)) for s in sources]

    def compile(self, sources: list[str], output_dir: Optional[str] = None, **kw: Any) -> list[str]:
        objects = self.object_filenames(sources, output_dir)
        for source, obj in zip(sources, objects, strict=True):
            Path(obj).write_text(f"object of {Path(source).read_text()}")
            with self.lock:
                self.compiled.append(Path(source).name)
        return objects


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "include").mkdir()
    (tmp_path / "out").mkdir()
    for name in ("a", "b"):
        (tmp_path / "src" / f"{name}.c").write_text(f"int {name};")
    (tmp_path / "include" / "group.h").write_text("int a; int b;")
    return tmp_path


def _run(compiler: RecordingCompiler, tree: Path, flags: tuple[str, ...] = ("-O3",)) -> list[str]:
    cache = build.ObjectCache(compiler)
    compiler.compiled.clear()
    objects: list[str] = cache(
        [str(tree / "src" / "a.c"), str(tree / "src" / "b.c")],
        output_dir=str(tree / "out"),
        include_dirs=[str(tree / "include")],
        extra_postargs=list(flags),
    )
    assert objects == [str(tree / "out" / "a.o"), str(tree / "out" / "b.o")]
    return sorted(compiler.compiled)


def test_an_unchanged_build_compiles_nothing(tree: Path) -> None:
    compiler = RecordingCompiler()
    assert _run(compiler, tree) == ["a.c", "b.c"]
    assert _run(compiler, tree) == []


def test_an_edited_source_alone_is_compiled_again(tree: Path) -> None:
    compiler = RecordingCompiler()
    _run(compiler, tree)
    (tree / "src" / "b.c").write_text("int b = 1;")
    assert _run(compiler, tree) == ["b.c"]
    assert (tree / "out" / "b.o").read_text() == "object of int b = 1;"


def test_a_header_or_flag_change_compiles_everything_again(tree: Path) -> None:
    compiler = RecordingCompiler()
    _run(compiler, tree)
    (tree / "include" / "group.h").write_text("int a; long b;")
    assert _run(compiler, tree) == ["a.c", "b.c"]
    assert _run(compiler, tree, flags=("-O2",)) == ["a.c", "b.c"]
    compiler.compiler_so = ["clang", "-fPIC"]
    assert _run(compiler, tree, flags=("-O2",)) == ["a.c", "b.c"]


def test_a_missing_object_or_key_is_built_again(tree: Path) -> None:
    compiler = RecordingCompiler()
    _run(compiler, tree)
    (tree / "out" / "a.o").unlink()
    (tree / "out" / "b.o.key").unlink()
    assert _run(compiler, tree) == ["a.c", "b.c"]


def test_the_same_headers_elsewhere_are_the_same_input(tree: Path, tmp_path: Path) -> None:
    # pip's build environment (where mypyc's headers are) is a new
    # directory each time: only the headers' names and contents count.
    compiler = RecordingCompiler()
    _run(compiler, tree)
    moved = tree / "include-elsewhere"
    (tree / "include").rename(moved)
    cache = build.ObjectCache(compiler)
    compiler.compiled.clear()
    cache(
        [str(tree / "src" / "a.c")],
        output_dir=str(tree / "out"),
        include_dirs=[str(moved)],
        extra_postargs=["-O3"],
    )
    assert compiler.compiled == []


def test_build_jobs_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_BUILD_JOBS", "3")
    assert build.build_jobs() == 3
    monkeypatch.setenv("SQUALL_BUILD_JOBS", "0")
    assert build.build_jobs() == 1
    monkeypatch.delenv("SQUALL_BUILD_JOBS")
    assert build.build_jobs() >= 1


def test_the_runtime_keeps_a_thrown_exceptions_own_traceback(tmp_path: Path) -> None:
    # mypyc's runtime, as mypyc 2.4 writes it: the patch goes in once, in
    # the branch for an exception thrown alone (tests/web/test_thrown_tracebacks.py
    # checks what it does).
    source = (
        "void CPyErr_SetObjectAndTraceback(PyObject *type, PyObject *value,"
        " PyObject *traceback) {\n"
        "    if (!PyType_Check(type) && Py_IsNone(value)) {\n"
        "        value = type;\n"
        "        type = (PyObject *)Py_TYPE(value);\n"
        "    }\n"
        "    PyErr_Restore(type, value, traceback);\n"
        "}\n"
    )
    (tmp_path / "exc_ops.c").write_text(source)
    assert build._keep_thrown_tracebacks(tmp_path)
    patched = (tmp_path / "exc_ops.c").read_text()
    assert patched.count("PyException_GetTraceback(value)") == 1
    assert patched.index("PyException_GetTraceback") < patched.index("    }\n    PyErr_Restore")
    assert build._keep_thrown_tracebacks(tmp_path)  # again: unchanged
    assert (tmp_path / "exc_ops.c").read_text() == patched
    # Another shape, or no runtime at all: left alone, and said.
    (tmp_path / "exc_ops.c").write_text(source.replace("Py_TYPE(value)", "Py_TYPE(v)"))
    assert not build._keep_thrown_tracebacks(tmp_path)
    assert not build._keep_thrown_tracebacks(tmp_path / "none")
