"""squall._h1's imports and public names (the layering rules, no I/O among
them, are in tests/test_layers.py)."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import squall._h1


def _modules() -> list[Path]:
    root = Path(squall._h1.__file__).parent
    return sorted(root.rglob("*.py"))


def test_relative_imports_resolve_inside_the_package() -> None:
    files = _modules()
    assert len(files) >= 5
    seen_internal: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                seen_internal.add(node.module or "")
    submodules = {m.name for m in pkgutil.iter_modules(squall._h1.__path__)}
    assert {m.lstrip("_") for m in seen_internal if m} <= {s.lstrip("_") for s in submodules}


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
