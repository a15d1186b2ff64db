"""squall._ws is a sans-I/O core: no module of it imports I/O, even lazily."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import squall._ws

CORE = Path(squall._ws.__file__).parent
FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "select", "threading"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_no_io_import_anywhere(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 or node.module is None or node.module.startswith("_"), (
                node.module
            )
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            if top == "squall":
                assert name.startswith("squall._ws"), f"{path.name} imports {name}"


def test_public_names() -> None:
    for name in squall._ws.__all__:
        assert hasattr(squall._ws, name), name
