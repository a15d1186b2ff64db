"""Building one of speedups/c's modules by hand, and loading modules from files.

For the tests that check a C module against its pure-Python twin in a pure
run (where the speedups build is not installed).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str, path: Path, loader: Any = None) -> ModuleType:
    """The module at ``path`` under ``name``, kept out of sys.modules.

    A C module of the single-phase kind enters itself in sys.modules as it
    loads: the module the rest of the suite imports under that name is put
    back.
    """
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None and spec.loader is not None
    imported = sys.modules.get(name)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if imported is not None:
            sys.modules[name] = imported
    return module


def build(source: str, name: str, tmp: Path, warnings: tuple[str, ...] = ("-Wall",)) -> ModuleType:
    """Compiles ``speedups/c/<source>`` with warnings as errors and loads it
    as ``name`` (its init function is named after the last part); skips
    without a C compiler or the Python headers."""
    cc = sysconfig.get_config_var("CC") or "cc"
    include = sysconfig.get_paths()["include"]
    if shutil.which(cc.split()[0]) is None or not Path(include, "Python.h").is_file():
        pytest.skip(f"no C compiler ({cc}) or no Python headers ({include})")
    out = tmp / (name.rpartition(".")[2] + EXTENSION_SUFFIXES[0])
    cmd = [*cc.split(), "-shared", "-fPIC", "-O1", *warnings, "-Werror", f"-I{include}"]
    src = ROOT / "speedups" / "c" / source
    proc = subprocess.run(
        [*cmd, str(src), "-o", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return load(name, out, ExtensionFileLoader(name, str(out)))


def installed_or_built(module: ModuleType, probe: str, source: str, tmp: Path) -> ModuleType:
    """The C twin of the pure module ``module``: the installed one in the
    compiled run (its ``probe`` is not a Python function), else
    ``speedups/c/<source>`` built here (see `build`)."""
    if not isinstance(getattr(module, probe), FunctionType):
        return module
    return build(source, module.__name__, tmp, ("-Wall", "-Wextra"))


def twins(module: ModuleType, probe: str, source: str) -> tuple[Any, Any]:
    """The ``c_module`` and ``py_module`` fixtures (module-scoped) of a test
    file that holds ``module``'s C twin (`installed_or_built`: ``probe`` one
    of its functions, ``source`` its file in speedups/c) against its pure
    source (`pure`): ``c_module, py_module = _cext.twins(...)``."""

    @pytest.fixture(scope="module")
    def c_module(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
        return installed_or_built(module, probe, source, tmp_path_factory.mktemp(Path(source).stem))

    @pytest.fixture(scope="module")
    def py_module() -> ModuleType:
        return pure(module)

    return c_module, py_module


def pure(module: ModuleType) -> ModuleType:
    """The pure-Python module ``module`` loaded from its source file (in the
    squall that is imported: an install's in the compiled run)."""
    from tests._paths import SQUALL_DIR

    parts = module.__name__.split(".")[1:]
    return load(module.__name__, SQUALL_DIR.joinpath(*parts).with_suffix(".py"))


def outcome(func: Any, *args: Any) -> tuple[Any, ...]:
    """What calling ``func(*args)`` gives: ("ok", type, result) or
    ("raised", exception type, message), to compare two implementations."""
    try:
        result = func(*args)
    except Exception as exc:  # the same exception, whatever it is
        return ("raised", type(exc), str(exc))
    return ("ok", type(result), result)
