"""One WSGI application served by Tornado's WSGIContainer or Squall's (run by wsgi_run.py).

``python wsgi_app.py tornado|squall [executor]`` prints its port and
serves until killed. Every answer follows a script the request carries in
its ``X-Script`` field (JSON, see wsgi_run.py), or, for ``/env``, is the
environ the application was given: so the application is the same on both
sides, and what differs is the container.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

# The keys of the environ shown by /env: PEP 3333's, and every HTTP_ one.
_SHOWN = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
)

# How many times a response iterable's close() ran, shown (and reset) by /closes.
CLOSES = [0]


class Body:
    """A response iterable of the script's chunks, with a close() that counts."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        CLOSES[0] += 1


def _env(environ: dict[str, Any]) -> bytes:
    shown = {k: environ[k] for k in _SHOWN if k in environ}
    shown.update({k: v for k, v in environ.items() if k.startswith("HTTP_")})
    shown["input"] = environ["wsgi.input"].read().decode("latin-1")
    shown["errors has write"] = hasattr(environ["wsgi.errors"], "write")
    return json.dumps(shown, sort_keys=True, default=repr).encode()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    if environ["PATH_INFO"] == "/closes":
        count, CLOSES[0] = CLOSES[0], 0
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(count).encode()]
    if environ["PATH_INFO"].startswith("/env"):
        body = _env(environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    script = json.loads(environ.get("HTTP_X_SCRIPT", "{}"))
    status = script.get("status", "200 OK")
    headers = [(str(k), str(v)) for k, v in script.get("headers", [])]
    chunks = [c.encode("utf-8") for c in script.get("body", [])]
    kind = script.get("kind", "list")
    if kind == "exc_info":
        # A failure caught before any output: start_response again, with exc_info.
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("caught by the application")
        except ValueError:
            start_response(status, headers, sys.exc_info())
        return chunks
    if kind == "late":
        # start_response from inside the iterable, before its first chunk (PEP 3333 allows it).
        def late() -> Iterator[bytes]:
            start_response(status, headers)
            yield from chunks

        return late()
    write = start_response(status, headers)
    if kind == "write":
        # The first half through write(), the rest returned.
        half = len(chunks) // 2
        for chunk in chunks[:half]:
            write(chunk)
        return chunks[half:]
    if kind == "tuple":
        return tuple(chunks)
    if kind == "generator":
        return (chunk for chunk in chunks)
    if kind == "closing":
        return Body(chunks)
    return chunks


async def main() -> None:
    framework = sys.argv[1]
    executor = concurrent.futures.ThreadPoolExecutor(2) if "executor" in sys.argv[2:] else None
    if framework == "tornado":
        from tornado.httpserver import HTTPServer
        from tornado.wsgi import WSGIContainer
    else:
        from squall.httpserver import HTTPServer  # type: ignore[assignment]
        from squall.wsgi import WSGIContainer  # type: ignore[assignment]
    container = WSGIContainer(application, executor=executor)
    # No access log lines on stderr: the runner reads stdout only.
    container._log = lambda *args: None  # type: ignore[method-assign]
    server = HTTPServer(container)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    server.add_sockets([listener])
    print(listener.getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
