"""Tornado's suite with every AsyncHTTPTestCase served by uvicorn through `ASGIAdapter`.

Not a test module: a package for ``../shared/tools/tornado-suite``::

    PYTHONPATH=tests/asgi/tornado_shim ../shared/tools/tornado-suite \\
        --python .venv/bin/python --package squallasgi web_test websocket_test

Every ``squall.X`` module is also ``squallasgi.X`` (the same module object);
``AsyncHTTPTestCase.get_http_server`` returns `_UvicornServer`, which serves
``ASGIAdapter(app)`` with uvicorn on the test's socket.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import socket
import sys
from collections.abc import Iterable
from typing import Any, Optional

import uvicorn

import squall
from squall import testing
from squall.asgi import ASGIAdapter

for _info in pkgutil.walk_packages(squall.__path__, "squall."):
    if _info.name.endswith("__main__") or ".cli" in _info.name:
        continue
    try:
        importlib.import_module(_info.name)
    except Exception:  # an optional dependency is missing: that module is left out
        pass
for _name, _module in list(sys.modules.items()):
    if _name.startswith("squall."):
        sys.modules["squallasgi" + _name[len("squall") :]] = _module
globals().update({k: v for k, v in vars(squall).items() if not k.startswith("__")})

# The suite's runner silences "<package>.access"; these loggers are squall's.
logging.getLogger("squall.access").setLevel(logging.CRITICAL)


class _UvicornServer:
    """What AsyncHTTPTestCase uses of its ``http_server``, served by uvicorn."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._server: Optional[uvicorn.Server] = None
        self._task: Optional[asyncio.Future[None]] = None

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        config = uvicorn.Config(
            ASGIAdapter(self.app),
            lifespan="off",
            log_config=None,
            log_level="critical",
            ws="websockets-sansio",
            timeout_graceful_shutdown=1,
            ws_max_size=64 * 1024 * 1024,
        )
        self._server = uvicorn.Server(config)
        # The sockets already listen: connections wait in the backlog until
        # uvicorn accepts them, so nothing has to wait for its start.
        self._task = asyncio.ensure_future(self._server.serve(sockets=list(sockets)))

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    async def close_all_connections(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _get_http_server(self: testing.AsyncHTTPTestCase) -> Any:
    return _UvicornServer(self._app)


testing.AsyncHTTPTestCase.get_http_server = _get_http_server  # type: ignore[method-assign]
