"""The ASGI benchmark's FastAPI application: a JSON answer built from the
query string (FastAPI validates ``q`` and ``page``), as an API's GET is.

Served by any contender (``squall run asgi_fastapi:app``, ``uvicorn ...``,
``granian --interface asgi ...``) with benchmarks/servers on the path, and
imported by benchmarks/callgrind_asgi.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root(q: str = "", page: int = 1) -> dict[str, Any]:
    return {"message": "Hello, world", "q": q, "page": page}
