"""Builds squall-speedups: squall's sans-I/O cores compiled by mypyc, and
one hand-written C module (``c/quick.c``, squall._h1._quick: the request
head's common case in one C pass).

The pure-Python modules in ``../squall`` (or ``$SQUALL_SOURCE``) are the
source: they are copied into ``build/mypyc-src``, type-checked and compiled
there, and the extension modules land in ``squall_speedups/_native/``. The
wheel also carries ``manifest.json``: the squall version, the extension
suffix, and the SHA-256 of every compiled module's source, which squall
checks before it loads anything (a build from other sources is ignored).

Any failure (mypy or mypyc refusing the sources, no C compiler, no Python
headers) still gives an installable package whose manifest says
``"compiled": false`` and why: squall then runs its pure-Python modules.
Set ``SQUALL_SPEEDUPS_FAIL=1`` to take that path on purpose. A hand-written C
module that does not build is left out alone (its Python module is used);
``SQUALL_SPEEDUPS_FAIL=c`` takes that path.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import sys
import traceback
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
NATIVE = "squall_speedups._native"
# The shared library that holds every compiled module's code (mypyc's "group").
GROUP = NATIVE + ".hotpath"
# The packages compiled whole: no asyncio, no I/O, strictly typed, and no
# class in them is meant to be subclassed by users. Measured (callgrind,
# varied stream, benchmarks/callgrind_hotpath.py): 238k instructions per
# request pure, 208k with these. httputil/_headers.py hits a mypyc internal
# error (cls.__new__ in a classmethod), and HTTPHeaders is a public,
# subclassable class that web/ and asgi/ build with object.__new__ (refused
# for a compiled class); web/ holds the classes users subclass and stays
# interpreted.
COMPILED_PACKAGES = ("_h1", "_ws")
# Single modules compiled beside those packages. Measured (callgrind, varied
# stream, asyncio loop, instructions per request, same tree otherwise):
# squall.httpserver._protocol, hello 134.8k -> 120.1k, json 153.4k -> 138.7k;
# then squall.httputil._request (HTTPServerRequest alone in it) with
# squall.web._delegate (the application's per-request delegate, which builds
# the request natively), hello 120.4k -> 115.3k, json 130.1k -> 125.0k. Either
# alone pays less: the delegate alone 118.1k (it still calls the interpreted
# request's __init__); the request alone 119.9k (interpreted code reads a
# compiled class's fields through descriptors, dearer than slots).
# A compiled class calls its own methods directly, past any override in a
# subclass that interpreted code defines (_negotiate's sniffers override
# _HTTPProtocol.data_received and _on_request; applications subclass
# HTTPServerRequest): such a class must be marked
# @mypyc_attr(allow_interpreted_subclasses=True) (squall._compiled has the
# decorator), else its module is not compiled (see _unmarked_bases).
COMPILED_MODULES = (
    "squall.httpserver._protocol",
    "squall.httputil._request",
    "squall.web._delegate",
)
# Modules that would be compiled but must not be; why beside each.
SKIPPED: dict[str, str] = {
    "squall._h1._quick": "replaced by the C module c/quick.c, not compiled by mypyc",
}
# Hand-written C modules: the squall module each replaces, and its source.
# Measured (callgrind, varied stream, hello handler, instructions per
# request, same tree otherwise): the fused Python parse compiled by mypyc,
# 190.0k; with c/quick.c's pass over the head, 159.2k; the parse stage is
# now 11.9k (aiohttp's C parser: 34.8k). The C pass
# makes no string per field name (a table of canonical names) and checks
# values eight octets at a time; mypyc still goes through str.partition,
# str.strip and a name cache per field.
# c/xhtml.c (squall._xhtml): HTML escaping in one pass, one call per
# template value instead of the pure build's inline tests; measured (page
# handler, same tree otherwise) 333.4k -> 274.8k instructions per request.
C_MODULES = {"squall._h1._quick": "c/quick.c", "squall._xhtml": "c/xhtml.c"}


def _squall_source() -> Path:
    src = Path(os.environ.get("SQUALL_SOURCE", HERE.parent / "squall")).resolve()
    if not (src / "__init__.py").is_file():
        raise RuntimeError(f"squall's sources not found at {src} (set SQUALL_SOURCE)")
    return src


def _squall_version(src: Path) -> str:
    for line in (src / "__init__.py").read_text().splitlines():
        if line.startswith("version = "):
            return str(line.split("=", 1)[1].strip().strip("\"'"))
    raise RuntimeError(f"no version in {src / '__init__.py'}")


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unmarked_bases(root: Path, compiled: set[str]) -> dict[str, list[str]]:
    """``{module: [class, ...]}``: classes of the modules in ``compiled`` that a
    module left interpreted subclasses, and that lack
    ``@mypyc_attr(allow_interpreted_subclasses=True)``."""
    bases: dict[str, set[str]] = {}
    for path in sorted((root / "squall").rglob("*.py")):
        if _module_name(root, path) in compiled:
            continue
        tree = ast.parse(path.read_text(), str(path))
        imported: dict[str, tuple[str, str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in compiled:
                for alias in node.names:
                    imported[alias.asname or alias.name] = (node.module, alias.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if isinstance(base, ast.Name) and base.id in imported:
                        module, name = imported[base.id]
                        bases.setdefault(module, set()).add(name)
    unmarked: dict[str, list[str]] = {}
    for module, names in sorted(bases.items()):
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        tree = ast.parse(path.read_text(), str(path))
        marked = {
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef)
            and any(
                isinstance(d, ast.Call)
                and getattr(d.func, "id", getattr(d.func, "attr", "")) == "mypyc_attr"
                and any(
                    k.arg == "allow_interpreted_subclasses"
                    and isinstance(k.value, ast.Constant)
                    and k.value.value is True
                    for k in d.keywords
                )
                for d in node.decorator_list
            )
        }
        if names - marked:
            unmarked[module] = sorted(names - marked)
    return unmarked


def _failed(reason: str) -> dict[str, Any]:
    return {"compiled": False, "reason": reason}


def _compile() -> tuple[list[Any], dict[str, Any]]:
    """mypycify over a copy of squall; returns (extensions, manifest)."""
    if os.environ.get("SQUALL_SPEEDUPS_FAIL") == "1":
        raise RuntimeError("SQUALL_SPEEDUPS_FAIL=1")
    from mypyc.build import mypycify

    src = _squall_source()
    root = HERE / "build" / "mypyc-src"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    # The whole package, so that mypy resolves every import; only the
    # modules listed below are compiled.
    shutil.copytree(src, root / "squall", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (root / "mypy.ini").write_text(
        "[mypy]\nstrict = True\nwarn_unused_ignores = False\nignore_missing_imports = True\n"
    )
    modules: dict[str, str] = {}
    paths: list[str] = []
    for package in COMPILED_PACKAGES:
        for path in sorted((root / "squall" / package).glob("*.py")):
            name = f"squall.{package}.{path.stem}"
            if path.name == "__init__.py" or name in SKIPPED:
                continue
            modules[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            paths.append(path.relative_to(root).as_posix())
    unmarked = _unmarked_bases(root, set(COMPILED_MODULES))
    for name in COMPILED_MODULES:
        if name in unmarked:
            classes = ", ".join(unmarked[name])
            SKIPPED[name] = (
                f"{classes}: subclassed by interpreted code, not marked"
                " @mypyc_attr(allow_interpreted_subclasses=True)"
            )
            print(f"squall-speedups: {name} not compiled ({SKIPPED[name]})", file=sys.stderr)
            continue
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        modules[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        paths.append(path.relative_to(root).as_posix())
    c_exts = []
    for name, source in C_MODULES.items():
        pure = root.joinpath(*name.split(".")).with_suffix(".py")
        modules[name] = hashlib.sha256(pure.read_bytes()).hexdigest()
        c_exts.append(Extension(f"{NATIVE}.{name}", sources=[source], extra_compile_args=["-O2"]))
    target = HERE / "build" / "mypyc"
    cwd = os.getcwd()
    os.chdir(root)  # mypy derives module names from paths relative to here
    try:
        try:
            exts = mypycify(
                ["--config-file", "mypy.ini", "--cache-dir", str(root / ".mypy_cache"), *paths],
                target_dir=str(target),
                group_name=GROUP,
            )
        except BaseException as exc:  # SystemExit too: mypy exits on a type error
            singles = [name for name in COMPILED_MODULES if name in modules]
            if isinstance(exc, KeyboardInterrupt) or not singles:
                raise
            # The packages alone still pay: an edit to a single module that
            # mypyc refuses leaves that module interpreted, not all of them.
            traceback.print_exc()
            for name in singles:
                del modules[name]
                SKIPPED[name] = f"mypyc refused the build with it: {exc!r}"[:300]
                paths.remove(name.replace(".", "/") + ".py")
                print(f"squall-speedups: retrying without {name}", file=sys.stderr)
            shutil.rmtree(target, ignore_errors=True)
            exts = mypycify(
                ["--config-file", "mypy.ini", "--cache-dir", str(root / ".mypy_cache"), *paths],
                target_dir=str(target),
                group_name=GROUP,
            )
    finally:
        os.chdir(cwd)
    for ext in exts:
        # Absolute sources (mypyc wrote them relative to the staging root),
        # and the shims moved under squall_speedups._native: squall's finder
        # loads them under their own names, squall._h1._connection and so on.
        ext.sources = [str(Path(root, s)) if not os.path.isabs(s) else s for s in ext.sources]
        ext.include_dirs = [
            str(Path(root, d)) if not os.path.isabs(d) else d for d in ext.include_dirs
        ]
        if not ext.name.startswith(NATIVE):
            ext.name = f"{NATIVE}.{ext.name}"
    exts.extend(c_exts)
    manifest = {
        "compiled": True,
        "squall_version": _squall_version(src),
        "suffix": EXTENSION_SUFFIXES[0],
        "python": sys.version.split()[0],
        "modules": modules,
        "skipped": SKIPPED,
    }
    return exts, manifest


# pip asks for metadata (egg_info, dist_info) before it builds the wheel, in
# another run of this file: compile only for the commands that build.
_BUILDS = {"build", "build_ext", "bdist_wheel", "bdist", "install", "develop", "editable_wheel"}

try:
    if _BUILDS.isdisjoint(sys.argv[1:]):
        EXT_MODULES, MANIFEST = [], _failed("metadata only")
    else:
        EXT_MODULES, MANIFEST = _compile()
except BaseException as exc:  # SystemExit too: mypy exits on a type error
    if isinstance(exc, KeyboardInterrupt):
        raise
    traceback.print_exc()
    print("squall-speedups: not compiled; squall will run pure Python", file=sys.stderr)
    EXT_MODULES, MANIFEST = [], _failed(f"mypyc could not compile: {exc!r}"[:500])


def _write_manifest(build_lib: str, manifest: dict[str, Any]) -> None:
    out = Path(build_lib, "squall_speedups", "manifest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


class BuildPy(build_py):
    """Writes the manifest as the compile step left it."""

    def run(self) -> None:
        super().run()
        if not self.distribution.has_ext_modules():
            _write_manifest(self.build_lib, MANIFEST)


class BuildExt(build_ext):
    """Builds the extensions; a compiler failure leaves a pure package, or,
    for a hand-written C module alone, the mypyc build without it."""

    def build_extension(self, ext: Any) -> None:
        name = ext.name.removeprefix(NATIVE + ".")
        if name not in C_MODULES:
            super().build_extension(ext)
            return
        try:
            if os.environ.get("SQUALL_SPEEDUPS_FAIL") == "c":
                raise RuntimeError("SQUALL_SPEEDUPS_FAIL=c")
            super().build_extension(ext)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc()
            print(f"squall-speedups: {name} not built; its Python module stays", file=sys.stderr)
            MANIFEST.get("modules", {}).pop(name, None)
            MANIFEST.setdefault("skipped", {})[name] = f"C build failed: {exc!r}"[:300]

    def run(self) -> None:
        try:
            super().run()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc()
            print("squall-speedups: C build failed; squall will run pure Python", file=sys.stderr)
            for ext in self.extensions:
                try:
                    os.remove(self.get_ext_fullpath(ext.name))
                except OSError:
                    pass
            _write_manifest(self.build_lib, _failed(f"C build failed: {exc!r}"[:500]))
            return
        _write_manifest(self.build_lib, MANIFEST)


setup(ext_modules=EXT_MODULES, cmdclass={"build_py": BuildPy, "build_ext": BuildExt})
