"""What runs compiled, and the compatibility home of ``websocket_mask``.

``pip install squall[speedups]`` adds httptools (a C head parser), uvloop (a
faster event loop) and squall-speedups: ``squall._h1`` and ``squall._ws``
compiled by mypyc from the same sources. Without it, or with
``SQUALL_NO_SPEEDUPS=1``, everything is the same pure Python with the same
behaviour. `compiled` and `compiled_modules` say which variant is running;
`reason` says why it is not compiled.

``websocket_mask`` is here because Tornado ships one as a C extension;
Squall's masking is fast in pure Python (a big-integer XOR for small payloads,
``bytes.translate`` on strided slices for large ones) and compiled with the
rest of ``squall._ws`` when squall-speedups is installed.
"""

from __future__ import annotations

from squall._compiled import state as _state
from squall._ws._mask import mask as websocket_mask

__all__ = ["compiled", "compiled_modules", "reason", "websocket_mask"]

compiled: bool = _state.loaded
"""True when the compiled modules of squall-speedups are the ones loaded."""

reason: str = _state.reason
"""Why the compiled modules are not loaded (empty when they are)."""


def compiled_modules() -> dict[str, str]:
    """The compiled modules in use: ``{module name: extension file}``."""
    return dict(_state.modules)
