"""Fails, naming them, when the installed squall lacks a module the build lists.

The build leaves out a module that mypyc or the C compiler refuses (with the
rest of its mypyc group) and says so in lines that ``pip install -q`` hides:
a benchmark or an instruction count of such a build measures interpreted
code where compiled code was meant. Run it with the interpreter of the
environment to check, from outside the checkout, so that ``import squall``
finds the installed package::

    cd /tmp && VENV/bin/python /path/to/speedups/check_built.py
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def main() -> int:
    spec = importlib.util.spec_from_file_location(
        "_squall_build", Path(__file__).with_name("squall_build.py")
    )
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)

    from squall import _compiled

    home = _compiled._installed_home()
    manifest = json.loads((home / "manifest.json").read_text()) if home is not None else {}
    listed = set(build.COMPILED_MODULES) | set(build.C_MODULES)
    missing = sorted(listed - set(manifest.get("modules", {})))
    skipped = manifest.get("skipped", {})
    for name in missing:
        print(f"not compiled: {name} ({skipped.get(name, 'no reason recorded')})", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
