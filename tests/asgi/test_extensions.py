"""ASGI scope extensions served by Squall: http.response.pathsend,
http.response.trailers (HTTP/2), tls, and what each scope advertises."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from squall.asgi import ASGIProtocolError
from squall.testing import ExpectLog

from ._helpers import RawClient, request, run, serving

pytest.importorskip("h2")

from ..h2._client import RawH2  # noqa: E402
from .test_h2 import serving_h2  # noqa: E402


def _h2_get(app: Any, tls: bool = False) -> Any:
    """Serve ``app`` over HTTP/2 and GET / once: the client's Response."""

    async def main() -> Any:
        async with serving_h2(app, tls=tls) as (port, _):
            client = await RawH2.connect(port, tls=tls)
            try:
                return await client.fetch("/")
            finally:
                await client.close()

    return run(main())


def _pathsend_app(path: str, headers: list[tuple[bytes, bytes]]) -> Any:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": path})

    app.seen = seen  # type: ignore[attr-defined]
    return app


def test_pathsend_sends_the_file_as_the_body(tmp_path: Path) -> None:
    data = os.urandom(600 * 1024 + 17)  # several reads, not a multiple of one
    target = tmp_path / "f.bin"
    target.write_bytes(data)
    app = _pathsend_app(str(target), [(b"content-type", b"application/octet-stream")])

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            for method in (b"GET", b"HEAD", b"GET"):
                await client.send(method + b" / HTTP/1.1\r\nHost: h\r\n\r\n")
                if method == b"HEAD":
                    status, headers = await client.head()
                    body = b""
                else:
                    status, headers, body = await client.response()
                assert status == 200
                assert headers["content-length"] == str(len(data))
                assert body == (data if method == b"GET" else b"")
            await client.close()

    run(main())
    assert app.seen[0]["extensions"]["http.response.pathsend"] == {}
    assert "http.response.trailers" not in app.seen[0]["extensions"]


def test_pathsend_keeps_the_content_length_the_app_set(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(b"hello")
    app = _pathsend_app(str(target), [(b"content-length", b"5")])

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, headers, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (status, headers["content-length"], body) == (200, "5", b"hello")

    run(main())


def test_pathsend_refuses_a_relative_path() -> None:
    errors: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.pathsend", "path": "relative.txt"})
        except ASGIProtocolError as exc:
            errors.append(str(exc))
        await send({"type": "http.response.body", "body": b"fallback"})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, _, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (status, body) == (200, b"fallback")

    run(main())
    assert errors == [
        "http.response.pathsend 'path' must be an absolute path (str), got 'relative.txt'"
    ]


def test_trailers_over_h2() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b"s"})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc")],
                "more_trailers": True,
            }
        )
        await send({"type": "http.response.trailers", "headers": [(b"x-count", b"2")]})

    r = _h2_get(app)
    assert (r.status, r.body, r.ended) == (200, b"parts", True)
    assert r.trailers == {"x-checksum": "abc", "x-count": "2"}
    assert seen[0]["extensions"]["http.response.trailers"] == {}


def test_trailers_announced_on_http1_are_dropped() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "http.response.trailers" not in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"ok"})
        await send({"type": "http.response.trailers", "headers": [(b"x-t", b"1")]})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, headers, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (status, body) == (200, b"ok") and "x-t" not in headers

    run(main())


def test_a_body_after_the_last_body_when_trailers_were_announced_is_an_error() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"ok"})
        await send({"type": "http.response.body", "body": b"more"})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            closed = await client.closed()
            await client.close()
            assert closed

    with ExpectLog("squall.application", "Exception in ASGI application"):
        run(main())


def test_tls_extension_over_h2() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    assert _h2_get(app, tls=True).status == 204
    tls = seen[0]["extensions"]["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    # No client certificate was asked for.
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert "http.response.trailers" in seen[0]["extensions"]
