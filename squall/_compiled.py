"""Loads the compiled build of the hot modules when it was installed and fits.

``pip install squall`` compiles, where a C compiler is there, the modules of
``squall._h1`` and ``squall._ws``, ``squall.httpserver._protocol`` (with
``_h1exchange``),
``squall.httputil._request``, ``squall.web._delegate``, ``squall.asgi._http``
and ``squall.asgi._scope`` by mypyc (with
hand-written C modules: the request head's pass and HTML escaping) into
``squall/_native``, with a manifest naming each one with the SHA-256 of the
source it was built from (``speedups/squall_build.py`` builds them). `install`
(called once by ``import squall``) puts a finder ahead of the normal import
path, and one in front of each package directory that holds compiled modules,
that load those extension modules under the modules' own names, but
only if every recorded source still matches this squall's ``.py`` file: the
pure-Python modules stay the source of truth, and a build from other sources
(another version, an edited checkout) is ignored as a whole, never mixed.
``SQUALL_NO_SPEEDUPS=1`` turns it off. Imports nothing from squall.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    ModuleSpec,
    SourceFileLoader,
    SourcelessFileLoader,
)
from pathlib import Path
from types import ModuleType
from typing import Any, Optional, TypeVar

__all__ = [
    "HOW_TO_COMPILE",
    "CompiledDirFinder",
    "CompiledFinder",
    "check",
    "install",
    "mypyc_attr",
    "state",
]

_T = TypeVar("_T")

try:
    # mypyc reads this decorator where a compiled class is marked (say,
    # allow_interpreted_subclasses=True); at run time it changes nothing.
    from mypy_extensions import mypyc_attr
except ImportError:  # pragma: no cover - mypy_extensions comes with mypy, not with squall

    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[_T], _T]:
        """Stands in for ``mypy_extensions.mypyc_attr`` where it is not installed."""
        return lambda cls: cls


NATIVE_DIR = "_native"
"""The compiled build's home inside the squall package."""

HOW_TO_COMPILE = (
    "to compile, reinstall where a C compiler and the Python headers are (Debian: "
    "apt-get install gcc python3-dev), from a checkout or the sdist: "
    "pip install --force-reinstall --no-cache-dir --no-deps . (or the .tar.gz)"
)
"""What `reason` tells a pure install to do (``python -m squall.speedups`` prints it)."""


class _State:
    __slots__ = ("loaded", "reason", "modules")

    def __init__(self) -> None:
        self.loaded = False
        self.reason = "not checked yet"
        self.modules: dict[str, str] = {}


state = _State()
"""What `install` decided: ``loaded``, ``reason`` (why not), ``modules`` (name: file)."""


class CompiledFinder(MetaPathFinder):
    """Finds the compiled extension module for each name it was given."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[ModuleType] = None,
    ) -> Optional[ModuleSpec]:
        file = self.files.get(fullname)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, file, loader=ExtensionFileLoader(fullname, file)
        )


# The loaders a directory's FileFinder uses by default, in the same order.
_FILE_LOADERS: list[tuple[Any, list[str]]] = [
    (ExtensionFileLoader, EXTENSION_SUFFIXES),
    (SourceFileLoader, SOURCE_SUFFIXES),
    (SourcelessFileLoader, BYTECODE_SUFFIXES),
]


class CompiledDirFinder(FileFinder):
    """The path-entry finder of a squall package directory with compiled modules.

    `CompiledFinder` on ``sys.meta_path`` is not enough on its own: a finder
    put ahead of it later (pytest's assertion rewriting, which claims every
    module of a distribution that declares a pytest plugin, as squall does)
    asks the path machinery for the module and loads the ``.py`` it finds.
    Then one process holds pure and compiled modules side by side, and a
    compiled class refuses an instance of its pure twin (``H1Connection
    object expected; got H1Connection``). Registered in
    ``sys.path_importer_cache`` for the package's directory, this finder makes
    the path machinery itself answer with the extension module, so such a
    finder sees no source to load and steps aside. Other names are found as
    a plain `FileFinder` finds them.
    """

    def __init__(self, path: str, files: dict[str, str]) -> None:
        super().__init__(path, *_FILE_LOADERS)
        self.files = files

    def find_spec(self, fullname: str, target: Optional[ModuleType] = None) -> Optional[ModuleSpec]:
        file = self.files.get(fullname)
        if file is None:
            return super().find_spec(fullname, target)
        return importlib.util.spec_from_file_location(
            fullname, file, loader=ExtensionFileLoader(fullname, file)
        )


def _register_dirs(files: dict[str, str], search_path: Sequence[str]) -> None:
    # The directory a package's modules are looked up in is its __path__
    # entry, which the import system builds from squall's own: the same
    # strings must key the cache.
    packages = {name.rpartition(".")[0] for name in files}
    for entry in search_path:
        for package in packages:
            directory = os.path.join(entry, *package.split(".")[1:])
            sys.path_importer_cache[directory] = CompiledDirFinder(directory, files)


def check(manifest: dict[str, Any], native: Path, squall_dir: Path, version: str) -> dict[str, str]:
    """The ``{module name: extension file}`` to load, after checking the build.

    Args:
        manifest: the build's ``manifest.json``.
        native: the directory the extension modules were installed in.
        squall_dir: the squall package whose sources must match.
        version: that squall's version.

    Raises:
        ValueError: the build does not fit; the message says why.
    """
    if not manifest.get("compiled"):
        raise ValueError(
            f"squall was installed without compiling: {manifest.get('reason')}; {HOW_TO_COMPILE}"
        )
    if manifest.get("squall_version") != version:
        raise ValueError(
            f"the compiled build is of squall {manifest.get('squall_version')}, "
            f"this is squall {version}"
        )
    suffix = manifest.get("suffix")
    if suffix not in EXTENSION_SUFFIXES:
        raise ValueError(f"the compiled build is for another Python ({suffix})")
    modules: dict[str, str] = manifest.get("modules") or {}
    if not modules:
        raise ValueError("the compiled build's manifest names no module")
    files = {}
    for name, digest in modules.items():
        parts = name.split(".")
        if parts[0] != "squall" or len(parts) < 2:
            raise ValueError(f"the compiled build's manifest names a foreign module {name!r}")
        source = squall_dir.joinpath(*parts[1:]).with_suffix(".py")
        try:
            actual = hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError as exc:
            raise ValueError(f"{name}: source not readable ({exc})") from None
        if actual != digest:
            raise ValueError(
                f"{name}: {source} differs from the source the compiled build was made from"
            )
        ext = native.joinpath(*parts).with_name(parts[-1] + str(suffix))
        if not ext.is_file():
            raise ValueError(f"{name}: compiled module missing ({ext})")
        files[name] = str(ext)
    return files


def _installed_home(squall_dir: Optional[Path] = None) -> Optional[Path]:
    """The directory holding the compiled build's manifest, if one was installed."""
    if squall_dir is None:
        squall_dir = Path(__file__).resolve().parent
    home = squall_dir / NATIVE_DIR
    return home if (home / "manifest.json").is_file() else None


def install(
    squall_dir: Path,
    version: str,
    home: Optional[Path] = None,
    search_path: Sequence[str] = (),
) -> None:
    """Loads the compiled modules from now on, if installed and fitting; see `state`.

    Args:
        squall_dir: the squall package directory.
        version: its version.
        home: the directory of the build's manifest (``squall_dir/_native`` if None).
        search_path: squall's ``__path__``: the directories of its packages
            get a `CompiledDirFinder` each.
    """
    if state.loaded:
        return
    state.reason = ""
    if os.environ.get("SQUALL_NO_SPEEDUPS") == "1":
        state.reason = "SQUALL_NO_SPEEDUPS=1"
        return
    if home is None:
        home = _installed_home(squall_dir)
    if home is None:
        state.reason = (
            f"no compiled build in {squall_dir / NATIVE_DIR} (a checkout, or an editable "
            f"install, runs its pure-Python sources); {HOW_TO_COMPILE}"
        )
        return
    try:
        manifest = json.loads((home / "manifest.json").read_text())
        files = check(manifest, home, squall_dir, version)
    except (OSError, ValueError, AttributeError) as exc:
        state.reason = str(exc)
        return
    sys.meta_path.insert(0, CompiledFinder(files))
    _register_dirs(files, search_path)
    state.loaded = True
    state.modules = files
