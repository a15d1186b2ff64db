"""benchmarks/asgi_pathsend.py's application: the file named by ``ASGI_FILE``
sent by ``http.response.pathsend`` (``/pathsend``) or by Starlette's
``FileResponse`` (``/starlette``, the plain body path)."""

from __future__ import annotations

import os
from typing import Any

from starlette.responses import FileResponse

FILE = os.environ.get("ASGI_FILE", "")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/pathsend":
        size = os.stat(FILE).st_size
        headers = [(b"content-type", b"application/octet-stream")]
        headers.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": FILE})
        return
    # Starlette's own pathsend support is off: the scope is given without
    # "extensions", so FileResponse reads and sends the file in pieces.
    plain = {key: value for key, value in scope.items() if key != "extensions"}
    await FileResponse(FILE)(plain, receive, send)
