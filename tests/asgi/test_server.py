"""ASGI applications served by Squall's HTTPServer: the http scope, bodies, flow control, errors."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from squall.asgi import ASGIProtocolError, ClientDisconnected

from ._helpers import RawClient, request, run, serving, until


async def plain(scope: dict[str, Any], receive: Any, send: Any, body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": body})


def test_http_scope_has_every_field() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await plain(scope, receive, send)

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(
                b"GET /a%20b/%C3%A9?x=1&y=%20 HTTP/1.1\r\nHost: h\r\nX-Custom: V\r\n\r\n"
            )
            status, headers, body = await client.response()
            local = client.writer.get_extra_info("sockname")
            await client.close()
        assert (status, body, headers["x-app"]) == (200, b"ok", "1")
        assert "date" in headers and headers["content-length"] == "2"
        scope = seen[0]
        assert scope["type"] == "http"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
        assert scope["http_version"] == "1.1"
        assert scope["method"] == "GET"
        assert scope["scheme"] == "http"
        assert scope["path"] == "/a b/\u00e9"
        assert scope["raw_path"] == b"/a%20b/%C3%A9"
        assert scope["query_string"] == b"x=1&y=%20"
        assert scope["root_path"] == ""
        assert (b"x-custom", b"V") in scope["headers"] and (b"host", b"h") in scope["headers"]
        assert scope["client"] == (local[0], local[1])
        assert scope["server"] == ("127.0.0.1", port)
        assert scope["state"] == {}

    run(main())


def test_a_closed_connections_addresses_are_not_kept() -> None:
    # The scope's port and server address are worked out once per
    # connection and kept with the connection's context: nothing holds a
    # context once its connection is gone (a table keyed by contexts held
    # up to 4,096 closed ones: +15.7 KB per 1,000 requests in `make soak`).
    from squall.httpserver._context import _HTTPRequestContext

    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["client"])
        await plain(scope, receive, send)

    def live_contexts() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, _HTTPRequestContext))

    async def main() -> None:
        async with serving(app) as (port, _, server):
            before = live_contexts()
            for _ in range(20):
                client = await RawClient.connect(port)
                for _ in range(2):
                    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                    assert (await client.response())[0] == 200
                await client.close()
            # Each check walks the whole heap (the compiled suite's, under
            # load beside the other stages): a deadline, not a measure.
            await until(lambda: live_contexts() <= before, 10.0)
        assert len(seen) == 40
        # Each connection's own port, the same for both of its requests.
        assert all(seen[i] == seen[i + 1] for i in range(0, 40, 2))
        assert len({c[1] for c in seen}) == 20

    run(main())


def test_root_path_is_put_in_front_of_path() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await plain(scope, receive, send)

    async def main() -> None:
        async with serving(app, root_path="/prefix/") as (port, _, _):
            await request(port, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        assert seen[0]["root_path"] == "/prefix"
        assert seen[0]["path"] == "/prefix/x"
        assert seen[0]["raw_path"] == b"/prefix/x"

    run(main())


def test_streamed_request_body_arrives_in_pieces() -> None:
    pieces: list[tuple[bytes, bool]] = []
    first = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            pieces.append((message["body"], message["more_body"]))
            if len(pieces) == 1:
                first.set()
            if not message["more_body"]:
                break
        total = b"".join(p for p, _ in pieces)
        await plain(scope, receive, send, total)

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
            )
            # The application has the first piece before the rest is even sent.
            await first.wait()
            await client.send(b"6\r\n world\r\n0\r\n\r\n")
            status, _, body = await client.response()
            await client.close()
        assert (status, body) == (200, b"hello world")
        assert pieces[0] == (b"hello", True)
        assert pieces[-1][1] is False
        assert len(pieces) >= 2

    run(main())


def test_request_body_is_not_buffered_while_the_app_is_not_receiving() -> None:
    size = 8 * 1024 * 1024
    sizes: list[int] = []
    cycles: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        cycle = receive.__self__
        cycles.append(cycle)
        # Reading has paused with at most the high-water mark plus one piece held.
        await until(lambda: cycle._drain is not None)
        held = cycle._buffered
        total = 0
        more = True
        while more:
            message = await receive()
            sizes.append(len(message["body"]))
            total += len(message["body"])
            more = message["more_body"]
        await plain(scope, receive, send, f"{held} {total}".encode())

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            head = b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size
            sender = asyncio.ensure_future(client.send(head + b"x" * size))
            status, _, body = await client.response()
            await sender
            await client.close()
        held, total = map(int, body.split())
        assert status == 200 and total == size
        assert 64 * 1024 <= held <= 2 * 64 * 1024
        assert max(sizes) <= 2 * 64 * 1024

    run(main())


def test_streamed_response_goes_out_piece_by_piece() -> None:
    step = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await step.wait()
        await send({"type": "http.response.body", "body": b"two", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            status, headers = await client.head()
            assert headers["transfer-encoding"] == "chunked"
            assert await client.chunk() == b"one"
            step.set()
            assert await client.chunk() == b"two"
            assert await client.chunk() is None
            # Keep-alive: a second request on the same connection.
            step.set()
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            status2, _, body2 = await client.response()
            await client.close()
        assert status == status2 == 200 and body2 == b"onetwo"

    run(main())


def test_send_waits_while_the_transport_is_full() -> None:
    piece = b"z" * (1024 * 1024)
    count = 16
    sent: list[int] = [0]
    protos: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        protos.append(receive.__self__._conn._proto)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(count):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent[0] += 1
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await until(lambda: bool(protos) and protos[0].write_paused)
            # The client reads nothing yet: the application is held up in send().
            assert sent[0] < count
            _, headers = await client.head()
            body = await client.body(headers)
            await client.close()
        assert len(body) == count * len(piece) and sent[0] == count

    run(main())


def test_disconnect_is_reported_and_send_after_it_raises() -> None:
    outcome: asyncio.Future[Any]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        first = await receive()
        second = await receive()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"late"})
        except OSError as exc:
            outcome.set_result((first, second, exc))
            return
        outcome.set_result((first, second, None))

    async def main() -> None:
        nonlocal outcome
        outcome = asyncio.get_running_loop().create_future()
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
            await client.close()
            first, second, exc = await outcome
        assert first == {"type": "http.request", "body": b"hi", "more_body": False}
        assert second == {"type": "http.disconnect"}
        assert isinstance(exc, ClientDisconnected)

    run(main())


def test_receive_after_the_response_gives_disconnect() -> None:
    messages: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        messages.append(await receive())
        await plain(scope, receive, send)
        messages.append(await receive())

    async def main() -> None:
        async with serving(app) as (port, delegate, _):
            status, _, _ = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await delegate.wait_requests(1.0)
        assert status == 200
        assert messages == [
            {"type": "http.request", "body": b"", "more_body": False},
            {"type": "http.disconnect"},
        ]

    run(main())


@pytest.mark.parametrize("where", ["before", "after"])
def test_application_errors(where: str, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if where == "after":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("boom")

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            status, headers = await client.head()
            if where == "before":
                body = await client.body(headers)
                assert (status, body) == (500, b"Internal Server Error")
            else:
                assert status == 200 and await client.chunk() == b"part"
            # Either way the connection is closed afterwards.
            assert await client.closed()
            await client.close()

    with caplog.at_level(logging.ERROR, "squall.application"):
        run(main())
    assert "Exception in ASGI application" in caplog.text and "boom" in caplog.text


def test_message_out_of_order_says_what_was_expected(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.body", "body": b"x"})
        except ASGIProtocolError as exc:
            errors.append(exc)
            raise

    async def after_done(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await plain(scope, receive, send)
        try:
            await send({"type": "http.response.body", "body": b"x"})
        except ASGIProtocolError as exc:
            errors.append(exc)

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, _, _ = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert status == 500
        async with serving(after_done) as (port, delegate, _):
            status, _, _ = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await delegate.wait_requests(1.0)
            assert status == 200

    with caplog.at_level(logging.ERROR, "squall.application"):
        run(main())
    assert str(errors[0]) == (
        "Expected ASGI message 'http.response.start', but got 'http.response.body'"
    )
    assert "after response already completed" in str(errors[1])


def test_returning_without_a_response_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, _, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (status, body) == (500, b"Internal Server Error")

    with caplog.at_level(logging.ERROR, "squall.application"):
        run(main())
    assert "without starting response" in caplog.text


def test_bad_response_header_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb")]})
        await send({"type": "http.response.body", "body": b"never sent"})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, _, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (status, body) == (500, b"Internal Server Error")

    with caplog.at_level(logging.ERROR, "squall.application"):
        run(main())
    assert "invalid character in value of header 'X'" in caplog.text


def test_head_response_has_no_body_and_keeps_content_length() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await plain(scope, receive, send, b"twelve bytes")

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(
                b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
            )
            status, headers = await client.head()
            assert status == 200 and headers["content-length"] == "12"
            # The next response follows at once: the HEAD one had no body.
            status, _, body = await client.response()
            await client.close()
        assert (status, body) == (200, b"twelve bytes")

    run(main())


def test_100_continue_is_sent_when_the_app_asks_for_the_body() -> None:
    gate = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await gate.wait()
        message = await receive()
        await plain(scope, receive, send, message["body"])

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
            )
            pending = asyncio.ensure_future(client.reader.readuntil(b"\r\n\r\n"))
            await asyncio.wait([pending], timeout=0.05)
            assert not pending.done()  # nothing before the application asks
            gate.set()
            interim = await pending
            assert interim.startswith(b"HTTP/1.1 100 ")
            await client.send(b"data")
            status, _, body = await client.response()
            await client.close()
        assert (status, body) == (200, b"data")

    run(main())


@pytest.mark.parametrize("status", [204, 304])
def test_body_of_a_204_or_304_is_dropped(status: int) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"not allowed here"})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
            first, headers = await client.head()
            # The second response follows the first head directly: no body between.
            second, _ = await client.head()
            await client.close()
        assert first == second == status
        assert "content-length" not in headers and "transfer-encoding" not in headers

    run(main())


def test_http_10_request_scope_and_close() -> None:
    versions: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        versions.append(scope["http_version"])
        await plain(scope, receive, send, b"old")

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.0\r\n\r\n")
            status, _, body = await client.response()
            assert await client.closed()
            await client.close()
        assert (status, body, versions) == (200, b"old", ["1.0"])

    run(main())


def test_pipelined_requests_are_answered_in_order() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        await plain(scope, receive, send, scope["path"].encode() + message["body"])

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(
                b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"
            )
            bodies = [(await client.response())[2] for _ in range(3)]
            await client.close()
        assert bodies == [b"/1", b"/2abc", b"/3"]

    run(main())
