"""Edge cases of both directions: malformed messages, targets, disconnects, limits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from squall import web
from squall.asgi import ASGIAdapter, ASGIProtocolError
from squall.asgi._types import address_tuple, split_target
from squall.httputil import HTTPHeaders, HTTPOutputError, ResponseStartLine

from .._wait import HANG_GUARD
from ._helpers import RawClient, request, run, serving


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/plain?a=1", ("/plain", b"/plain", b"a=1")),
        ("http://example.com/abs/p?q", ("/abs/p", b"/abs/p", b"q")),
        ("http://example.com", ("/", b"/", b"")),
        ("*", ("*", b"*", b"")),
        ("/caf\u00c3\u00a9", ("/caf\u00e9", b"/caf\xc3\xa9", b"")),
        ("/bad%FF", ("/bad\ufffd", b"/bad%FF", b"")),
    ],
)
def test_split_target(target: str, expected: tuple[str, bytes, bytes]) -> None:
    assert split_target(target) == expected


def test_address_tuple() -> None:
    assert address_tuple(("::1", 80, 0, 0)) == ("::1", 80)
    assert address_tuple("/tmp/sock") is None
    assert address_tuple(None) is None


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "http.response.start"}], "needs an integer 'status'"),
        ([{"type": "http.response.start", "status": 99}], "invalid response status 99"),
        ([{"type": "http.response.start", "status": 101}], "invalid response status 101"),
        ([{"type": "http.response.start", "status": 200, "headers": [1]}], "byte pairs"),
        (
            [
                {"type": "http.response.start", "status": 200, "headers": []},
                {"type": "http.response.body", "body": "text"},
            ],
            "'body' must be bytes, not str",
        ),
        (
            [
                {"type": "http.response.start", "status": 200, "headers": []},
                {"type": "http.response.start", "status": 200, "headers": []},
            ],
            "Expected ASGI message 'http.response.body', but got 'http.response.start'",
        ),
    ],
)
def test_malformed_http_messages(
    messages: list[dict[str, Any]], error: str, caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            for message in messages:
                await send(message)
        except ASGIProtocolError as exc:
            raised.append(exc)
            raise

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, _, _ = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == 500

    with caplog.at_level(logging.ERROR, "squall.application"):
        run(main())
    assert error in str(raised[0])


def test_returning_a_value_and_an_unfinished_streamed_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def value(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return 42

    async def unfinished(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})

    async def head_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})

    async def main() -> None:
        async with serving(value) as (port, delegate, _):
            assert (await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"))[0] == 200
            await delegate.wait_requests(1.0)
        async with serving(unfinished) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await client.head()
            assert await client.chunk() == b"half"
            assert await client.closed()
            await client.close()
        async with serving(head_only) as (port, _, _):
            assert (await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"))[0] == 500

    with caplog.at_level(logging.ERROR, "squall.application"):
        run(main())
    assert "returned 'int' instead of None" in caplog.text
    assert "without completing response" in caplog.text
    assert "without sending the response body" in caplog.text


def test_cancelled_request_task_closes_the_connection() -> None:
    started = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    async def main() -> None:
        async with serving(app) as (port, delegate, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await started.wait()
            assert not await delegate.wait_requests(0)
            for task in delegate.tasks:
                task.cancel()
            assert await client.closed()
            await client.close()

    run(main())


def test_websocket_message_errors_and_inbox_back_pressure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors: list[str] = []
    protos: list[Any] = []
    proceed = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        for bad in (
            {"type": "websocket.accept", "subprotocol": 5},
            {"type": "websocket.accept", "headers": [(b"bad:name", b"v")]},
        ):
            try:
                await send(bad)
            except ASGIProtocolError as exc:
                errors.append(str(exc))
        await send({"type": "websocket.accept"})
        cycle = receive.__self__
        protos.append(cycle)
        for bad in (
            {"type": "websocket.send", "text": "a", "bytes": b"b"},
            {"type": "websocket.http.response.start", "status": 200},
        ):
            try:
                await send(bad)
            except ASGIProtocolError as exc:
                errors.append(str(exc))
        await proceed.wait()
        count = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            count += 1
        await send({"type": "websocket.close"})  # after the disconnect: ignored
        with pytest.raises(ASGIProtocolError, match="after the WebSocket closed"):
            await send({"type": "websocket.accept"})
        errors.append(f"count={count}")

    async def main() -> None:
        async with serving(app) as (port, delegate, _):
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                for i in range(40):
                    await ws.send(str(i))
                # The application is not receiving: its inbox fills to the
                # mark, then the protocol stops reading frames.
                await _until(lambda: bool(protos) and protos[0]._space is not None)
                assert len(protos[0]._inbox) == 16
                proceed.set()
            await delegate.wait_requests(1.0)

    run(main())
    assert errors[0] == "websocket.accept 'subprotocol' must be a str or None"
    assert errors[1].startswith("invalid header 'bad:name'")
    assert errors[2] == "websocket.send needs exactly one of 'bytes' and 'text'"
    assert errors[3] == (
        "Expected ASGI message 'websocket.send' or 'websocket.close', "
        "but got 'websocket.http.response.start'"
    )
    assert errors[4] == "count=40"


async def _until(condition: Any, limit: float = HANG_GUARD) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not condition():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0)


def test_websocket_denial_errors_and_app_returning(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[str] = []

    async def bad_denial(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "websocket.http.response.start", "status": 101})
        except ASGIProtocolError as exc:
            errors.append(str(exc))
        await send({"type": "websocket.http.response.start", "status": 418, "headers": []})
        try:
            await send({"type": "websocket.accept"})
        except ASGIProtocolError as exc:
            errors.append(str(exc))
        # Returns with the denial response unfinished: the connection closes.

    async def returns_after_accept(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    async def main() -> None:
        async with serving(bad_denial) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(
                b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            assert await client.closed()
            await client.close()
        async with serving(returns_after_accept) as (port, _, _):
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000

    run(main())
    assert errors[0] == "invalid denial response status 101"
    assert errors[1] == (
        "Expected ASGI message 'websocket.http.response.body', but got 'websocket.accept'"
    )


def test_websocket_client_leaves_before_accept() -> None:
    got: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got.append(await receive())
        arrived.set()
        got.append(await receive())

    async def main() -> None:
        async with serving(app) as (port, delegate, _):
            client = await RawClient.connect(port)
            await client.send(
                b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            await arrived.wait()
            await client.close()
            await delegate.wait_requests(1.0)
        assert got == [
            {"type": "websocket.connect"},
            {"type": "websocket.disconnect", "code": 1006, "reason": ""},
        ]

    run(main())


# -- the adapter, driven directly through the ASGI interface


class Writer(web.RequestHandler):
    async def get(self) -> None:
        self.write("a")
        await self.flush()
        self.write("b")
        self.finish("c")


@web.stream_request_body
class Limited(web.RequestHandler):
    def data_received(self, chunk: bytes) -> None:
        pass

    def prepare(self) -> None:
        assert self.request.connection is not None
        self.request.connection.set_max_body_size(10)  # type: ignore[attr-defined]

    def post(self) -> None:
        self.write("unreachable")


async def call(
    app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in incoming:
        queue.put_nowait(message)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, queue.get, send)
    return sent


def http_scope(path: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": b"",
        "query_string": b"",
        "headers": [(b"host", b"example.com")],
        "client": None,
    }
    scope.update(extra)
    return scope


def test_adapter_merges_queued_body_pieces_and_uses_path_without_raw_path() -> None:
    adapter = ASGIAdapter(web.Application([(r"/w%20r", Writer)]))

    async def main() -> list[dict[str, Any]]:
        return await call(adapter, http_scope("/w r"), [{"type": "http.request"}])

    sent = run(main())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = b"".join(m.get("body", b"") for m in sent[1:])
    assert bodies == b"abc"
    assert sent[-1]["more_body"] is False


def test_adapter_head_requests_declare_the_length_of_the_body_they_omit(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A HEAD response carries the Content-Length of the GET's body and no
    # body: a handler's head() that says so, the 405 page of a handler
    # without one and a static file all answered 500 under the adapter,
    # whose connection took the missing bytes for a short response.
    class Sized(web.RequestHandler):
        def head(self) -> None:
            self.set_header("Content-Length", "6")

    class GetOnly(web.RequestHandler):
        def get(self) -> None:
            self.write("body")

    (tmp_path / "file.txt").write_bytes(b"twelve bytes")
    adapter = ASGIAdapter(
        web.Application(
            [
                (r"/sized", Sized),
                (r"/get-only", GetOnly),
                (r"/static/(.*)", web.StaticFileHandler, {"path": str(tmp_path)}),
            ]
        )
    )

    async def main() -> dict[str, list[dict[str, Any]]]:
        answers = {}
        for path in ("/sized", "/get-only", "/static/file.txt"):
            scope = http_scope(path, "HEAD")
            answers[path] = await call(adapter, scope, [{"type": "http.request"}])
        return answers

    with caplog.at_level(logging.WARNING):
        answers = run(main())
    for path, status, length in (
        ("/sized", 200, b"6"),
        ("/get-only", 405, None),
        ("/static/file.txt", 200, b"12"),
    ):
        start, *bodies = answers[path]
        assert start["status"] == status, path
        headers = dict(start["headers"])
        if length is not None:
            assert headers[b"content-length"] == length
        else:
            assert int(headers[b"content-length"]) > 0
        assert b"".join(m.get("body", b"") for m in bodies) == b""
        assert bodies[-1]["more_body"] is False
    assert "Content-Length" not in caplog.text


def test_adapter_body_limit_and_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    adapter = ASGIAdapter(web.Application([(r"/", Limited)]))

    async def main() -> list[dict[str, Any]]:
        return await call(
            adapter,
            http_scope("/", "POST"),
            [{"type": "http.request", "body": b"x" * 20, "more_body": True}],
        )

    with caplog.at_level(logging.INFO, "squall.application"):
        sent = run(main())
    assert sent == []
    assert "over max_body_size" in caplog.text


def test_adapter_connection_rules() -> None:
    adapter = ASGIAdapter(web.Application([]))

    async def main() -> None:
        from squall.asgi._adapter import _ASGIConnection

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            raise OSError("gone")

        conn = _ASGIConnection(adapter.app, http_scope("/"), receive, send)
        with pytest.raises(HTTPOutputError, match="write_headers before write"):
            conn.write(b"x")
        with pytest.raises(HTTPOutputError, match="cannot be detached"):
            conn.detach()
        conn.set_body_timeout(1.0)
        line = ResponseStartLine("HTTP/1.1", 200, "OK")
        future = conn.write_headers(line, HTTPHeaders({"X-A": "1"}), b"body")
        with pytest.raises(HTTPOutputError, match="already started"):
            conn.write_headers(line, HTTPHeaders())
        conn.finish()
        conn.finish()  # twice is harmless
        await conn._pump()
        # The ASGI server's send failed: the writes fail as a closed stream would.
        with pytest.raises(OSError):
            await future
        assert conn.write(b"late").exception() is not None
        assert str(conn.context) == "0.0.0.0" and conn.context.protocol == "https"
        other = _ASGIConnection(adapter.app, http_scope("/"), receive, send)
        with pytest.raises(HTTPOutputError, match="finish\\(\\) before write_headers"):
            other.finish()

    run(main())


def test_adapter_websocket_denial_without_the_extension() -> None:
    class Refuse(web.RequestHandler):
        def get(self) -> None:
            self.set_status(403)
            self.finish("no")

    adapter = ASGIAdapter(web.Application([(r"/", Refuse)]))
    scope = http_scope("/", type="websocket", scheme="ws")
    del scope["method"]

    async def main() -> list[dict[str, Any]]:
        return await call(
            adapter,
            scope,
            [{"type": "websocket.connect"}],
        )

    sent = run(main())
    assert sent == [{"type": "websocket.close", "code": 1000}]


def test_adapter_websocket_scope_must_start_with_connect() -> None:
    adapter = ASGIAdapter(web.Application([]))
    scope = http_scope("/", type="websocket", scheme="ws")

    async def main() -> list[dict[str, Any]]:
        return await call(adapter, scope, [{"type": "websocket.disconnect", "code": 1001}])

    assert run(main()) == []


def test_response_start_accepts_buffer_types_and_unlisted_statuses() -> None:
    """bytearray/memoryview names, values and bodies; a status with no reason
    phrase in our table; repeated names kept in order; the app's Date kept."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 299,
                "headers": [
                    (bytearray(b"x-Multi"), b"1"),
                    (b"X-MULTI", memoryview(b"2")),
                    (b"date", b"Thu, 01 Jan 2026 00:00:00 GMT"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": memoryview(b"abc")})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            try:
                await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                raw = await client.reader.readuntil(b"\r\n\r\n")
                body = await client.reader.readexactly(3)
            finally:
                await client.close()
        head = raw.decode("latin-1").split("\r\n")
        assert head[0] == "HTTP/1.1 299 Unknown"
        assert [line for line in head if line.lower().startswith("x-multi")] == [
            "X-Multi: 1",
            "X-Multi: 2",
        ]
        assert "Date: Thu, 01 Jan 2026 00:00:00 GMT" in head
        assert "Content-Length: 3" in head
        assert body == b"abc"

    run(main())


def test_response_status_given_as_a_numeric_string() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": "201", "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, headers, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == 201 and headers["content-length"] == "0" and body == b""

    run(main())
