"""The sans-I/O core must not import I/O, clocks or event loops."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import squall._h1

FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "select", "threading"}


def _modules() -> list[Path]:
    root = Path(squall._h1.__file__).parent
    return sorted(root.rglob("*.py"))


def test_no_forbidden_imports_in_package_modules() -> None:
    files = _modules()
    assert len(files) >= 5
    seen_internal: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    seen_internal.add(node.module or "")
                    continue
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN, f"{path.name} imports {name}"
                # Anything outside the standard library's pure modules and
                # httptools could pull I/O in; keep the list explicit.
                assert top in {
                    "__future__",
                    "re",
                    "typing",
                    "itertools",
                    "collections",
                    "httptools",
                }, f"{path.name} imports {name}"
    # Every relative import resolves inside the package.
    submodules = {m.name for m in pkgutil.iter_modules(squall._h1.__path__)}
    assert {m.lstrip("_") for m in seen_internal if m} <= {s.lstrip("_") for s in submodules}


def test_importing_the_package_loads_no_io_module() -> None:
    code = (
        "import sys; import squall._h1; "
        "bad = {'asyncio', 'socket', 'ssl', 'selectors'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


def test_public_names() -> None:
    assert set(squall._h1.__all__) == {
        "NEED_DATA",
        "PAUSED",
        "ConnectionClosed",
        "Data",
        "EndOfMessage",
        "Event",
        "Fields",
        "H1Connection",
        "H1Limits",
        "Headers",
        "InformationalResponse",
        "LocalProtocolError",
        "ProtocolError",
        "RemoteProtocolError",
        "Request",
        "Response",
        "Sentinel",
    }
