"""The ASGI benchmark's applications: Starlette hello world, and a bare ASGI callable.

Served by either contender from the command line, for example
``squall run asgi_starlette:app`` or ``uvicorn asgi_starlette:app`` (with
benchmarks/servers on the path), and imported by benchmarks/callgrind_asgi.py.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

BODY = b"Hello, world"


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world")


app = Starlette(routes=[Route("/", hello)])

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"12")],
}
_BODY = {"type": "http.response.body", "body": BODY}


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The least an ASGI app can do: the server's own cost shows."""
    if scope["type"] != "http":
        return
    await send(_START)
    await send(_BODY)
