"""An error from an awaited Task keeps the frames where it was raised.

asyncio hands a failed future's exception to the coroutine awaiting it by
throwing it in (``coro.throw(exc)``). The compiled build's coroutines (the
Task a request's handler runs in on 3.11, the ASGI driver's) took such an
exception as one without a traceback, and it reached ``write_error``, the
logged traceback and error reporters without its origin: the last frame
shown was Squall's, not the line that raised.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

from squall import web
from squall.httpclient import AsyncHTTPClient
from squall.httpserver import HTTPServer
from squall.log import app_log
from squall.netutil import bind_sockets

from ..asgi._helpers import run, serving


async def _fails_deep_down() -> None:
    await asyncio.sleep(0)  # the Task suspends first: the error is thrown in
    raise KeyError("raised deep down")


def _frames(exc_info: Any) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(exc_info[2])]


class AwaitsAFailingTask(web.RequestHandler):
    seen: list[list[str]] = []

    async def get(self) -> None:
        await asyncio.ensure_future(_fails_deep_down())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.seen.append(_frames(kwargs["exc_info"]))
        self.finish("failed")


def test_write_error_sees_the_frame_that_raised() -> None:
    AwaitsAFailingTask.seen = []

    async def main() -> None:
        (sock,) = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(web.Application([("/", AwaitsAFailingTask)]))
        server.add_sockets([sock])
        try:
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
            response = await AsyncHTTPClient().fetch(url, raise_error=False)
            assert response.code == 500
        finally:
            server.stop()
            await server.close_all_connections()

    run(main())
    [frames] = AwaitsAFailingTask.seen
    assert frames[-1] == "_fails_deep_down", frames
    assert "get" in frames


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_asgi_error_log_shows_the_frame_that_raised() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.ensure_future(_fails_deep_down())

    records = _Records()
    app_log.addHandler(records)

    async def main() -> None:
        async with serving(app) as (port, _, _):
            response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/", raise_error=False)
            assert response.code == 500

    try:
        run(main())
    finally:
        app_log.removeHandler(records)
    [record] = [r for r in records.records if r.exc_info]
    frames = _frames(record.exc_info)
    assert frames[-1] == "_fails_deep_down", frames
    assert "app" in frames
