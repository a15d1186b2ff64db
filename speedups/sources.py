"""Prints the squall sources that squall-speedups compiles, one per line.

Read from setup.py's COMPILED_PACKAGES, COMPILED_MODULES and C_MODULES (the
pure module a C module replaces) without running it, for the Makefile's
rebuild rule: a build made from other sources is ignored by squall.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def compiled_sources(setup_py: Path = HERE / "setup.py") -> list[str]:
    """Paths (relative to the checkout) of every source the build compiles."""
    values: dict[str, Any] = {}
    value: ast.expr | None
    for node in ast.parse(setup_py.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, value = node.target.id, node.value
        else:
            continue
        if name in ("COMPILED_PACKAGES", "COMPILED_MODULES", "C_MODULES") and value is not None:
            values[name] = ast.literal_eval(value)
    root = HERE.parent
    paths: list[Path] = []
    for package in values.get("COMPILED_PACKAGES", ()):
        paths.extend(sorted((root / "squall" / package).glob("*.py")))
    for name in [*values.get("COMPILED_MODULES", ()), *values.get("C_MODULES", {})]:
        paths.append(root.joinpath(*name.split(".")).with_suffix(".py"))
    return sorted({p.relative_to(root).as_posix() for p in paths if p.is_file()})


if __name__ == "__main__":
    sys.stdout.write("\n".join(compiled_sources()) + "\n")
