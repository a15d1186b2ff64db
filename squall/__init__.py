"""Squall: a fast, Tornado-compatible web framework and asynchronous networking library.

Submodules are imported on first attribute access (``squall.web.RequestHandler``
works after a bare ``import squall``), so importing the package costs nothing.

PYTEST_DONT_REWRITE: squall is the library under test, never test code. The
marker stops pytest from warning that it cannot rewrite squall when squall was
imported before pytest started (``python -m squall.compat -m pytest``, or a
``.pth`` that installs squall.compat), a warning that a project's
``filterwarnings = error`` turns into a failed start.
"""

from __future__ import annotations

import importlib
import types

version = "0.1.0"
version_info = (0, 1, 0, 0)

# The public submodules, in Tornado's order; `curl_httpclient` needs pycurl
# (``pip install squall[curl]``) and raises ImportError naming the extra without it.
__all__ = [
    "auth",
    "autoreload",
    "concurrent",
    "curl_httpclient",
    "escape",
    "gen",
    "http1connection",
    "httpclient",
    "httpserver",
    "httputil",
    "ioloop",
    "iostream",
    "locale",
    "locks",
    "log",
    "netutil",
    "options",
    "platform",
    "process",
    "queues",
    "routing",
    "simple_httpclient",
    "tcpclient",
    "tcpserver",
    "template",
    "testing",
    "util",
    "web",
]

_LAZY = frozenset(__all__) | {"websocket", "wsgi"}


def __getattr__(name: str) -> types.ModuleType:
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The compiled build of the hot modules (squall/_native), when it was installed
# and was built from exactly these sources: squall.speedups reports it.
def _load_compiled() -> None:
    import pathlib

    from squall import _compiled

    _compiled.install(pathlib.Path(__file__).resolve().parent, version, search_path=__path__)


_load_compiled()
