"""The ``http.response.early_hint`` ASGI extension, both ways: Squall serving
an ASGI app that sends it, and a Squall Application under `ASGIAdapter`
whose ``send_early_hints`` becomes it."""

from __future__ import annotations

import asyncio
from typing import Any

from squall.asgi import ASGIAdapter
from squall.testing import ExpectLog
from squall.web import Application, RequestHandler

from ._helpers import RawClient, run, serving

LINK = b"</app.css>; rel=preload; as=style"


def _hinting_app(links: Any, release: list[asyncio.Future[None]]) -> Any:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.early_hint", "links": links})
        if release:
            await release[0]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app.seen = seen  # type: ignore[attr-defined]
    return app


def test_asgi_app_early_hint_is_a_103_before_the_response() -> None:
    release: list[asyncio.Future[None]] = []
    app = _hinting_app([LINK, b"</x.js>; rel=preload; as=script"], release)

    async def main() -> None:
        release.append(asyncio.get_running_loop().create_future())
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            interim = await client.reader.readuntil(b"\r\n\r\n")
            assert interim == (
                b"HTTP/1.1 103 Early Hints\r\nLink: " + LINK + b"\r\n"
                b"Link: </x.js>; rel=preload; as=script\r\n\r\n"
            )
            release[0].set_result(None)
            status, _, body = await client.response()
            assert (status, body) == (200, b"ok")
            await client.close()

    run(main())
    assert app.seen[0]["extensions"]["http.response.early_hint"] == {}


def test_asgi_early_hint_to_http10_client_is_dropped() -> None:
    app = _hinting_app([LINK], [])

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
            data = await client.reader.read()
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            assert data.endswith(b"\r\n\r\nok")
            await client.close()

    run(main())


def test_asgi_early_hint_with_bad_links_is_a_protocol_error() -> None:
    app = _hinting_app(LINK, [])  # bytes, not an iterable of bytes

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            status, _, _ = await client.response()
            assert status == 500
            await client.close()

    with ExpectLog("squall.application", "Exception in ASGI application"):
        run(main())


class Hinted(RequestHandler):
    def get(self) -> None:
        sent = self.send_early_hints([LINK.decode()])
        self.write(f"sent={sent}")


def test_application_under_adapter_sends_early_hint() -> None:
    # Squall serving (ASGI server) -> ASGIAdapter -> Application: the
    # handler's hint crosses the ASGI boundary as the extension's message.
    adapter = ASGIAdapter(Application([("/", Hinted)]))

    async def main() -> None:
        async with serving(adapter) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            interim = await client.reader.readuntil(b"\r\n\r\n")
            assert interim == b"HTTP/1.1 103 Early Hints\r\nLink: " + LINK + b"\r\n\r\n"
            status, _, body = await client.response()
            assert (status, body) == (200, b"sent=True")
            await client.close()

    run(main())


def test_adapter_declines_without_the_extension() -> None:
    adapter = ASGIAdapter(Application([("/", Hinted)]))
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"h")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "extensions": {},
        }
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.get_running_loop().create_future()  # never: no disconnect
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await adapter(scope, receive, send)

    run(main())
    kinds = [m["type"] for m in sent]
    assert "http.response.early_hint" not in kinds
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert body == b"sent=False"
