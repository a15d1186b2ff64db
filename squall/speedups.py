"""What runs compiled, and the compatibility home of ``websocket_mask``.

``pip install squall`` compiles the hot modules where a C compiler and the
Python headers are (mypyc, and two hand-written C passes); elsewhere, and
with ``SQUALL_NO_EXTENSIONS=1`` at install time, it installs pure Python.
``SQUALL_NO_SPEEDUPS=1`` at run time keeps an installed build unused. Both
variants have the same behaviour. ``pip install squall[speedups]`` adds
httptools (a C head parser) and uvloop (a faster event loop). `compiled` and
`compiled_modules` say which variant is running; `reason` says why it is not
compiled, and how to compile it. From a shell::

    python -m squall.speedups

``websocket_mask`` is here because Tornado ships one as a C extension;
Squall's masking is fast in pure Python (a big-integer XOR for small payloads,
``bytes.translate`` on strided slices for large ones) and compiled with the
rest of ``squall._ws`` in the compiled build.
"""

from __future__ import annotations

import sys

from squall._compiled import state as _state
from squall._ws._mask import mask as websocket_mask

__all__ = ["compiled", "compiled_modules", "reason", "report", "websocket_mask"]

compiled: bool = _state.loaded
"""True when the compiled modules are the ones loaded."""

reason: str = _state.reason
"""Why the compiled modules are not loaded, and how to get them (empty when they are)."""


def compiled_modules() -> dict[str, str]:
    """The compiled modules in use: ``{module name: extension file}``."""
    return dict(_state.modules)


def report() -> str:
    """What ``python -m squall.speedups`` prints: the variant and its modules, or why pure."""
    try:
        import httptools  # noqa: F401

        parser = "httptools installed"
    except ImportError:
        parser = "httptools not installed"
    try:
        import uvloop  # noqa: F401

        loop = "uvloop installed"
    except ImportError:
        loop = "uvloop not installed"
    extras = f"{parser}, {loop} (pip install squall[speedups] adds both)"
    if not _state.loaded:
        return f"squall runs pure Python: {_state.reason}\n{extras}\n"
    lines = [f"squall runs {len(_state.modules)} compiled modules:"]
    lines += [f"  {name}  {path}" for name, path in sorted(_state.modules.items())]
    return "\n".join([*lines, extras]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(report())
