"""The served ASGI app's hot path: the scope built in one step, Task bookkeeping, the Date cache."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest

import squall.asgi._http
import squall.asgi._scope
from squall.asgi import ASGIServerDelegate
from squall.asgi._types import split_target
from squall.httputil import HTTPHeaders, RequestStartLine
from squall.testing import ExpectLog

from ._helpers import RawClient, request, run, serving, until


async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class _Context:
    address = ("10.0.0.7", 4321)
    remote_ip = "10.0.0.7"
    protocol = "https"


class _Transport:
    def get_extra_info(self, name: str) -> Any:
        return ("10.0.0.1", 443) if name == "sockname" else None


class _Conn:
    """What _http_scope reads of a request's connection."""

    def __init__(self) -> None:
        self.context = _Context()
        self.transport = _Transport()


async def _noop(scope: Any, receive: Any, send: Any) -> None:
    pass


TARGETS = [
    "/",
    "/plain",
    "/plain?x=1&y=2",
    "/p?",
    "/?a=%20",
    "/a%20b/%C3%A9?q",
    "/\u00c3\u00a9",  # UTF-8 bytes as the parser decodes them (Latin-1)
    "http://example.com/abs?x=1",
    "*",
]


@pytest.mark.parametrize("root", ["", "/mnt"])
@pytest.mark.parametrize("target", TARGETS)
def test_scope_paths_agree_with_split_target(target: str, root: str) -> None:
    delegate = ASGIServerDelegate(_noop, root_path=root)
    start = RequestStartLine("GET", target, "HTTP/1.1")
    scope = delegate.http_scope(start, {"Host": ["h"]}, _Conn())  # type: ignore[arg-type]
    path, raw_path, query = split_target(target)
    assert scope["path"] == root + path
    assert scope["raw_path"] == root.encode() + raw_path
    assert scope["query_string"] == query
    assert scope["root_path"] == root


def test_scope_fields_and_header_pairs() -> None:
    delegate = ASGIServerDelegate(_noop)
    headers = HTTPHeaders._from_pairs(
        [("Host", "h"), ("X-Many", "1"), ("Cookie", "a=\u00e9"), ("x-many", "2")]
    )
    start = RequestStartLine("PUT", "/x?y", "HTTP/1.0")
    scope = delegate.http_scope(start, headers._as_list, _Conn())  # type: ignore[arg-type]
    # Names lowercased, values back to the bytes sent, repeats kept in order.
    assert scope["headers"] == [
        (b"host", b"h"),
        (b"x-many", b"1"),
        (b"x-many", b"2"),
        (b"cookie", b"a=\xe9"),
    ]
    assert (scope["type"], scope["method"], scope["http_version"]) == ("http", "PUT", "1.0")
    assert scope["scheme"] == "https"
    assert scope["client"] == ("10.0.0.7", 4321)
    assert scope["server"] == ("10.0.0.1", 443)
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    # Every request gets its own mutable parts.
    again = delegate.http_scope(start, headers._as_list, _Conn())  # type: ignore[arg-type]
    assert again["asgi"] is not scope["asgi"] and again["state"] is not scope["state"]
    assert again["headers"] is not scope["headers"]


def test_tasks_hold_requests_in_progress_only() -> None:
    release = asyncio.Event()
    inside: list[Any] = []
    # Whether the app's Task was among the delegate's tasks as it ran (read
    # from inside: the compiled build adds to the set without a method call
    # a subclass could see).
    held: list[bool] = []
    delegates: list[ASGIServerDelegate] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        inside.append(asyncio.current_task())
        held.append(inside[-1] in delegates[0].tasks)
        if scope["path"] == "/wait":
            await release.wait()
        await plain(scope, receive, send)

    async def main() -> None:
        delegate = ASGIServerDelegate(app)
        delegates.append(delegate)
        tasks = delegate.tasks
        async with serving(delegate) as (port, _, _):
            status, _, body = await request(port, b"GET /now HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (status, body) == (200, b"ok")
            assert not tasks
            # An app that never waits is done before its Task could be put
            # in where the Task starts eagerly (3.12+, see
            # squall._request_task); on 3.11 its Task was held while it ran.
            assert held == [sys.version_info < (3, 12)]
            client = await RawClient.connect(port)
            await client.send(b"GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
            await until(lambda: len(inside) >= 2)
            assert len(tasks) == 1 and inside[1] in tasks
            release.set()
            status, _, body = await client.response()
            await client.close()
            assert (status, body) == (200, b"ok")
            assert not tasks
        # The app always runs in a Task of its own (anyio and asyncio.timeout need one).
        assert inside[0] is not None and inside[1] is not None and inside[0] is not inside[1]

    run(main())


class _Clock:
    """A clock whose ``time()`` (put in place of ``time.time``) the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_date_header_is_refreshed_each_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(1_800_000_000.2)
    # The time module's own function: compiled (mypyc), the modules hold the
    # time module itself, not a global that a stand-in could replace.
    monkeypatch.setattr(time, "time", clock.time)
    saved = list(squall.asgi._scope._date_cache)
    squall.asgi._scope._date_cache[:] = [0.0, "", b""]

    async def main() -> list[str]:
        dates = []
        async with serving(plain) as (port, _, _):
            client = await RawClient.connect(port)
            for now in (1_800_000_000.2, 1_800_000_000.9, 1_800_000_001.0, 1_800_000_005.5):
                clock.now = now
                await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                _, headers, _ = await client.response()
                dates.append(headers["date"])
            await client.close()
        return dates

    try:
        dates = run(main())
    finally:
        squall.asgi._scope._date_cache[:] = saved
    assert dates == [
        "Fri, 15 Jan 2027 08:00:00 GMT",
        "Fri, 15 Jan 2027 08:00:00 GMT",
        "Fri, 15 Jan 2027 08:00:01 GMT",
        "Fri, 15 Jan 2027 08:00:05 GMT",
    ]


@pytest.mark.parametrize(
    "header",
    [
        (b"x-ok", b"v\r\nX-Injected: 1"),
        (b"x-ok", b"nul\x00"),
        (b"bad name", b"v"),
        (b"bad:name", b"v"),
    ],
)
def test_response_headers_are_checked_before_the_head_is_written(
    header: tuple[bytes, bytes],
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [header]})
        await send({"type": "http.response.body", "body": b"never"})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            status, headers, body = await client.response()
            await client.close()
            assert status == 500 and body == b"Internal Server Error"
            assert "x-injected" not in headers and "x-ok" not in headers

    with ExpectLog("squall.application", "Exception in ASGI application"):
        run(main())


async def _fielded(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the fields and body the query names."""
    query = scope["query_string"]
    headers = [(b"content-type", b"text/plain"), (b"x-a", b"1"), (b"X-B", b"2"), (b"x-A", b"3")]
    body = b"hello"
    more = False
    if query == b"cl":
        headers.append((b"CONTENT-LENGTH", b"5"))
    elif query == b"close":
        headers.append((b"connection", b"close"))
    elif query == b"stream":
        more = True
    elif query == b"date":
        headers.append((b"date", b"Thu, 01 Jan 2026 00:00:00 GMT"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": more})
    if more:
        await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize(
    ("request_line", "query", "expected", "closes"),
    [
        ("GET", "", ["Content-Length: 5"], False),
        ("GET", "cl", ["Content-Length: 5"], False),
        ("GET", "date", ["Content-Length: 5", "Date: Thu, 01 Jan 2026 00:00:00 GMT"], False),
        ("GET", "close", ["Connection: close", "Content-Length: 5"], True),
        ("GET", "stream", ["Transfer-Encoding: chunked"], False),
        ("HEAD", "cl", ["Content-Length: 5"], False),
        ("GET/1.0", "", ["Content-Length: 5"], True),
        ("GET/1.0-keep", "", ["Connection: Keep-Alive", "Content-Length: 5"], False),
    ],
)
def test_response_heads_from_the_applications_bytes(
    request_line: str, query: str, expected: list[str], closes: bool
) -> None:
    """The head as written from the application's byte pairs (the HTTP/1.1
    path renders it straight from them): names canonical, in the order
    sent, one Date, the framing and Connection fields the exchange needs."""
    method, _, version = request_line.partition("/")
    extra = ""
    if version == "1.0-keep":
        extra = "Connection: keep-alive\r\n"
    line = f"{method} /?{query} HTTP/{'1.0' if version else '1.1'}\r\nHost: h\r\n{extra}\r\n"

    async def main() -> tuple[list[str], bytes, bool]:
        async with serving(_fielded) as (port, _, _):
            client = await RawClient.connect(port)
            try:
                await client.send(line.encode())
                raw = await client.reader.readuntil(b"\r\n\r\n")
                head = raw.decode("latin-1").split("\r\n")
                fields = {
                    name.lower(): value for name, _, value in (h.partition(": ") for h in head)
                }
                if method == "HEAD":
                    body = b""
                else:
                    body = await client.body({k: v for k, v in fields.items() if k})
                closed = await client.closed() if closes else False
            finally:
                await client.close()
        return head, body, closed

    head, body, closed = run(main())
    assert head[0] == "HTTP/1.1 200 OK" and head[-2:] == ["", ""]
    fields = head[1:-2]
    # (Fields of different names may come in any order; one name's in order.)
    assert [h for h in fields if h.startswith("X-A: ")] == ["X-A: 1", "X-A: 3"]
    dates = [h for h in fields if h.startswith("Date: ")]
    assert len(dates) == 1
    if query == "date":
        assert dates == ["Date: Thu, 01 Jan 2026 00:00:00 GMT"]
    mine = ["Content-Type: text/plain", "X-A: 1", "X-B: 2", "X-A: 3"]
    expected = [h for h in expected if not h.startswith("Date: ")]
    assert sorted(h for h in fields if not h.startswith("Date: ")) == sorted(mine + expected)
    assert body == (b"" if method == "HEAD" else b"hello")
    assert closed == closes
