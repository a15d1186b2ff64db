"""A careless application and a hostile path, over real sockets: header
values the response head cannot carry, and a NUL in a static file's path.

The answer is a whole response (a 500 with the reason logged once, a 404),
never an empty reply, and the server keeps serving.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from squall.web import Application, RequestHandler, StaticFileHandler

from ._serve import exchange, run, serving


class SetHeader(RequestHandler):
    def get(self) -> None:
        self.set_header(self.get_argument("name"), self.get_argument("value"))
        self.write("ok")


def application(static: Path) -> Application:
    return Application(
        [("/set", SetHeader), (r"/static/(.*)", StaticFileHandler, {"path": str(static)})]
    )


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        # Before: no status line at all, and three tracebacks.
        ("name=X-Price&value=%E2%82%AC", "header text must be latin-1: 'X-Price: \u20ac'"),
        ("name=Content-Length&value=x", "Only integer Content-Length is allowed: 'x'"),
    ],
)
def test_a_header_the_head_cannot_carry_gets_a_500(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, query: str, reason: str
) -> None:
    async def main() -> None:
        async with serving(application(tmp_path)) as (_, port):
            status, _, body = await exchange(
                port, f"GET /set?{query} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
            )
            assert status == 500 and b"Internal Server Error" in body
            status, _, body = await exchange(
                port, b"GET /set?name=X-Ok&value=fine HTTP/1.1\r\nHost: a\r\n\r\n"
            )
            assert (status, body) == (200, b"ok")

    with caplog.at_level(logging.ERROR):
        run(main, "asyncio")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    # One traceback, naming what was wrong.
    assert len(errors) == 1 and errors[0].name == "squall.application"
    assert reason in str(errors[0].exc_info[1])


def test_a_nul_in_a_static_path_is_not_found(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.txt").write_text("hi")

    async def main() -> None:
        async with serving(application(tmp_path)) as (_, port):
            for path in (b"/static/a.txt%00.png", b"/static/a.txt%00", b"/static/%00"):
                status, _, _ = await exchange(port, b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path)
                assert status == 404, path
            status, _, body = await exchange(port, b"GET /static/a.txt HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (status, body) == (200, b"hi")

    with caplog.at_level(logging.WARNING):
        run(main, "asyncio")
    assert not [r for r in caplog.records if r.exc_info]
