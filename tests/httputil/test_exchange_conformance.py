"""The exchange contract (`squall.httputil.HTTPConnection`) as a contract.

One suite of checks, each run against every implementation of
``request.connection`` (and the client side of `.HTTP1Connection`), each
reached the way its users reach it: the HTTP/1.1 server's connection
through its protocol over a fake transport, an HTTP/2 stream through the
HTTP/2 driver fed by the ``h2`` package, an HTTP/3 stream through a server
on loopback UDP and aioquic's client, the ASGI adapter's connection
through an ASGI call, the runner's wrapper through `ServingDelegate`, the
test client's as the test client makes it. A test id names the class
(``test_second_head_refused[_H2Stream]``). The checks only call what the
contract documents (`squall.httputil._exchange`): what it returns and what
it raises.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Optional

import pytest

from squall.http1connection import HTTP1Connection
from squall.httpserver import HTTPServer
from squall.httpserver._protocol import _HTTPProtocol
from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPOutputError,
    HTTPServerConnectionDelegate,
    RequestStartLine,
    ResponseStartLine,
)
from squall.httputil._startline import StartLine
from squall.iostream import IOStream, StreamClosedError
from squall.web import Application, RequestHandler
from tests._wait import HANG_GUARD

from ..server._fakes import FakeTransport

DEADLINE = HANG_GUARD  # a hang guard, not a measure of speed


class _Capture(HTTPServerConnectionDelegate):
    """A server's delegate that hands each request's connection to the test
    once the request is read, and writes nothing itself."""

    def __init__(self) -> None:
        self.connection: asyncio.Future[HTTPConnection] = asyncio.get_running_loop().create_future()

    def start_request(self, server_conn: object, request_conn: HTTPConnection) -> Any:
        captured = self.connection

        class Message(HTTPMessageDelegate):
            def finish(self) -> None:
                if not captured.done():
                    captured.set_result(request_conn)

        return Message()


class Harness:
    """One implementation: `open` gives a connection whose request is read
    and whose response has not started; `close` releases what it holds."""

    #: The start line this side writes (a response, or a request on a client).
    line: StartLine = ResponseStartLine("HTTP/1.1", 200, "OK")

    async def open(self) -> HTTPConnection:
        raise NotImplementedError()

    async def close(self) -> None:
        pass


class H1Server(Harness):
    """`_RequestConnection`: the HTTP/1.1 server's protocol."""

    def delegate(self, capture: _Capture) -> Any:
        return capture

    async def open(self) -> HTTPConnection:
        loop = asyncio.get_running_loop()
        capture = _Capture()
        server = HTTPServer(self.delegate(capture))
        proto = _HTTPProtocol(server, server.conn_params, None, loop)
        self.transport = FakeTransport(proto, loop)
        proto.connection_made(self.transport)
        proto.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        return await asyncio.wait_for(capture.connection, DEADLINE)

    async def close(self) -> None:
        self.transport.close()
        await asyncio.sleep(0)  # one loop turn: connection_lost runs (call_soon)


class Runner(H1Server):
    """``cli/_serving._AppConnection``: the runner's wrapper (it follows the
    response for the access log and the concurrency limit)."""

    def delegate(self, capture: _Capture) -> Any:
        from squall.cli._serving import ServingDelegate

        return ServingDelegate(capture, limit_concurrency=10)


class AltSvc(H1Server):
    """``httpserver/_altsvc._AltSvcConnection``: what a server that also
    serves HTTP/3 puts in front of its TCP exchanges (it adds Alt-Svc)."""

    async def open(self) -> HTTPConnection:
        loop = asyncio.get_running_loop()
        capture = _Capture()
        server = HTTPServer(capture)
        server._alt_svc = 'h3=":443"'  # as listen() with http3 sets it
        proto = _HTTPProtocol(server, server.conn_params, None, loop)
        self.transport = FakeTransport(proto, loop)
        proto.connection_made(self.transport)
        proto.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        connection = await asyncio.wait_for(capture.connection, DEADLINE)
        assert type(connection).__name__ == "_AltSvcConnection"
        return connection


class H2Stream(Harness):
    """``_H2Stream``: one stream of the HTTP/2 driver."""

    line = ResponseStartLine("HTTP/2.0", 200, "OK")

    async def open(self) -> HTTPConnection:
        h2_connection = pytest.importorskip("h2.connection", reason="h2 is not installed")
        import h2.config

        from squall.httpserver._h2protocol import _H2Protocol

        loop = asyncio.get_running_loop()
        capture = _Capture()
        server = HTTPServer(capture, http2=True)
        proto = _H2Protocol(server, server.conn_params, loop, None, server._h2_limits)
        self.transport = FakeTransport(proto, loop)
        proto.connection_made(self.transport)
        client = h2_connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        fields = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "t")]
        client.send_headers(1, fields, end_stream=True)
        proto.data_received(client.data_to_send())
        return await asyncio.wait_for(capture.connection, DEADLINE)

    async def close(self) -> None:
        self.transport.close()
        await asyncio.sleep(0)  # one loop turn: connection_lost runs (call_soon)


class H3Stream(Harness):
    """``_H3Stream``: one request stream of the HTTP/3 driver, over loopback
    UDP (a server on a free port, aioquic's client)."""

    line = ResponseStartLine("HTTP/3", 200, "OK")

    async def open(self) -> HTTPConnection:
        pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")
        import contextlib

        from squall.testing import AsyncHTTPSTestCase, bind_unused_port

        from ..h3._client import h3_client

        capture = _Capture()
        sock, port = bind_unused_port()
        self.server = HTTPServer(
            capture, ssl_options=AsyncHTTPSTestCase.default_ssl_options(), http3=True
        )
        self.server.add_sockets([sock])
        self.stack = contextlib.AsyncExitStack()
        await asyncio.gather(*self.server._h3_tasks)
        client = await self.stack.enter_async_context(h3_client(port))
        client.request("/")
        return await asyncio.wait_for(capture.connection, DEADLINE)

    async def close(self) -> None:
        await self.stack.aclose()
        self.server.stop()
        await self.server.close_all_connections()


class ASGI(Harness):
    """``asgi/_adapter._ASGIConnection``: an Application served as ASGI."""

    async def open(self) -> HTTPConnection:
        from squall.asgi import ASGIAdapter

        loop = asyncio.get_running_loop()
        capture = _Capture()
        self.sent: list[dict[str, Any]] = []
        self.gone: asyncio.Future[None] = loop.create_future()
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await self.gone
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            self.sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"t")],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
        }
        self.call = asyncio.ensure_future(ASGIAdapter(capture)(scope, receive, send))
        return await asyncio.wait_for(capture.connection, DEADLINE)

    async def close(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)
        await asyncio.wait_for(self.call, DEADLINE)


class TestClientConnection(Harness):
    """``testclient._Connection``: the in-process test client's."""

    async def open(self) -> HTTPConnection:
        from squall.testclient import _Connection, _Context

        self.connection = _Connection(_Context("127.0.0.1", "http"))
        return self.connection

    async def close(self) -> None:
        done = self.connection.done
        if done.done() and not done.cancelled():
            done.exception()  # a cut-off response is what some checks cause


class H1Client(Harness):
    """`.HTTP1Connection`, client side, over an `.IOStream`."""

    line = RequestStartLine("POST", "/", "HTTP/1.1")

    async def open(self) -> HTTPConnection:
        ours, self.peer = socket.socketpair()
        self.stream = IOStream(ours)
        return HTTP1Connection(self.stream, is_client=True)

    async def close(self) -> None:
        self.stream.close()
        self.peer.close()


HARNESSES: dict[str, Callable[[], Harness]] = {
    "_RequestConnection": H1Server,
    "_H2Stream": H2Stream,
    "_H3Stream": H3Stream,
    "_ASGIConnection": ASGI,
    "_AppConnection": Runner,
    "_AltSvcConnection": AltSvc,
    "testclient._Connection": TestClientConnection,
    "HTTP1Connection(client)": H1Client,
}

Check = Callable[[HTTPConnection, StartLine], Awaitable[None]]


def run_check(name: str, check: Check) -> None:
    async def main() -> None:
        harness = HARNESSES[name]()
        connection = await harness.open()
        try:
            await check(connection, harness.line)
        finally:
            await harness.close()

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


def length(n: Any) -> HTTPHeaders:
    return HTTPHeaders({"Content-Length": str(n)})


async def written(future: Optional[Awaitable[None]]) -> None:
    """A write's future resolves (the bytes went out, or were taken)."""
    assert future is not None
    await asyncio.wait_for(future, DEADLINE)


implementations = pytest.mark.parametrize("name", list(HARNESSES))


@implementations
def test_head_written_follows_the_head(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        assert conn.head_written is False
        await written(conn.write_headers(line, length(2), b"ok"))
        assert conn.head_written is True
        conn.finish()

    run_check(name, check)


@implementations
def test_second_head_refused(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        conn.write_headers(line, HTTPHeaders())
        with pytest.raises(HTTPOutputError):
            conn.write_headers(line, HTTPHeaders())
        assert conn.head_written is True

    run_check(name, check)


@implementations
def test_writes_resolve(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        await written(conn.write_headers(line, length(6), b"abc"))
        await written(conn.write(b"def"))
        conn.finish()

    run_check(name, check)


@implementations
def test_finish_twice_is_harmless(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        conn.write_headers(line, length(2), b"ok")
        conn.finish()
        conn.finish()

    run_check(name, check)


@implementations
def test_write_after_finish_fails_closed(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        conn.write_headers(line, length(2), b"ok")
        conn.finish()
        late = conn.write(b"late")
        with pytest.raises(StreamClosedError):
            await asyncio.wait_for(late, DEADLINE)

    run_check(name, check)


@implementations
def test_write_after_close_fails_closed(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        conn.write_headers(line, HTTPHeaders())
        conn.close()
        late = conn.write(b"late")
        with pytest.raises(StreamClosedError):
            await asyncio.wait_for(late, DEADLINE)

    run_check(name, check)


@implementations
def test_more_than_content_length_refused(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        conn.write_headers(line, length(3), b"ab")
        with pytest.raises(HTTPOutputError):
            conn.write(b"cd")

    run_check(name, check)


@implementations
def test_first_chunk_over_content_length_refused(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        with pytest.raises(HTTPOutputError):
            conn.write_headers(line, length(2), b"abc")

    run_check(name, check)


@implementations
def test_less_than_content_length_refused(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        conn.write_headers(line, length(5), b"ab")
        with pytest.raises(HTTPOutputError):
            conn.finish()

    run_check(name, check)


@implementations
def test_invalid_content_length_refused(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        # int() would take the first three; RFC 9110 section 8.6 takes
        # ASCII digits only. Nothing is written: each is refused in turn.
        for value in ("+1", "1_0", "\u0661", "0x1", "-1", ""):
            with pytest.raises(HTTPOutputError, match="Content-Length"):
                conn.write_headers(line, length(value), b"a")
            assert conn.head_written is False

    run_check(name, check)


@implementations
def test_setters_raise_nothing(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        conn.set_close_callback(lambda: None)
        conn.set_close_callback(None)
        conn.set_body_timeout(5.0)
        conn.set_max_body_size(1000)

    run_check(name, check)


# The optional capabilities: a declared method that declines (returns None,
# having done nothing) where the connection cannot; which ones accept today.
RENDERS_HEADS = {"_RequestConnection", "_H2Stream"}


@implementations
def test_write_rendered_head_writes_or_declines(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
        result = conn.write_rendered_head(head, 2, b"ok")
        if name in RENDERS_HEADS:
            await written(result)
            assert conn.head_written is True
            conn.finish()
        else:
            assert result is None
            assert conn.head_written is False

    run_check(name, check)


@implementations
def test_sendfile_declines_before_the_head(name: str) -> None:
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        with open(__file__, "rb") as file:
            assert conn.sendfile(file, 10) is None
        assert conn.head_written is False

    run_check(name, check)


# The connections whose close callback is the plain attribute, which the
# application may set once its first step has returned
# (HTTPConnection.close_callback_attribute).
CLOSE_BY_ATTRIBUTE = {
    "_RequestConnection",
    "_H2Stream",
    "_H3Stream",
    "_AppConnection",
    "_AltSvcConnection",
}


@implementations
def test_close_callback_capability(name: str) -> None:
    from squall.httputil._exchange import close_by_attribute

    async def check(conn: HTTPConnection, line: StartLine) -> None:
        assert close_by_attribute(conn) is (name in CLOSE_BY_ATTRIBUTE)

    run_check(name, check)


@implementations
def test_contract_fields_are_exchange_fields(name: str) -> None:
    # Exchange declares the contract's fields itself: in the compiled build
    # they are native fields. Declared by the interpreted HTTPConnection
    # only, they went to an instance __dict__, one made for every request.
    async def check(conn: HTTPConnection, line: StartLine) -> None:
        in_dict = getattr(conn, "__dict__", None) or {}
        assert not {"context", "close_callback_attribute", "close_callback"} & in_dict.keys()

    run_check(name, check)


def test_close_by_attribute_on_stand_ins() -> None:
    from unittest import mock

    from squall.httputil._exchange import close_by_attribute

    assert close_by_attribute(object()) is False  # duck-typed, no attribute
    assert close_by_attribute(mock.Mock()) is False  # answers anything, not True


# What `Exchange` owns for every implementation: the phase and what reads or
# moves it. An implementation writes the emit hooks (and `write_headers`
# where its core renders heads), never these, and forwards nothing by
# __getattr__ (what a protocol adds is declared by name).
OWNED_BY_EXCHANGE = (
    "write",
    "finish",
    "write_informational",
    "head_written",
    "set_close_callback",
    "__getattr__",
)


@implementations
def test_on_the_exchange_hooks(name: str) -> None:
    from squall.httputil._exchange import Exchange

    async def check(conn: HTTPConnection, line: StartLine) -> None:
        assert isinstance(conn, Exchange)
        mro = type(conn).__mro__
        own = {
            member
            for cls in mro[: mro.index(Exchange)]
            for member in OWNED_BY_EXCHANGE
            if member in vars(cls)
        }
        assert not own, f"{type(conn).__name__} redefines {sorted(own)}"

    run_check(name, check)


def test_content_length_is_read_as_int_would_read_ascii_digits() -> None:
    # Exchange's own reading of a response's Content-Length (digit by
    # digit, compiled): the value int() gives, whatever its size.
    from squall.httputil._exchange import _content_length

    for text in ("0", "007", "13", "4096", str(2**62), str(2**64 + 1), "9" * 40):
        assert _content_length([text]) == int(text)
    for values in ([], ["1", "1"], ["1e3"], ["/"], [":"]):
        with pytest.raises(HTTPOutputError, match="invalid Content-Length"):
            _content_length(values)


# -- one request, one answer, whatever the protocol ------------------------------------
#
# The same requests over HTTP/1.1, HTTP/2 (h2c) and HTTP/3, end to end on
# loopback, to an Application whose handlers answer a body's length and
# fail on /fail: each case's status must agree across the three,
# except where a row below says why it cannot yet.

MAX_BODY = 64


class _Upload(RequestHandler):
    def post(self) -> None:
        self.write(str(len(self.request.body)))


class _Fails(RequestHandler):
    def get(self) -> None:
        raise RuntimeError("the handler fails")


# case: (method, path, fields, body, body sent with its Content-Length)
REQUESTS: dict[str, tuple[str, str, list[tuple[str, str]], bytes, bool]] = {
    "body_over_the_limit": ("POST", "/", [("content-length", "100")], b"x" * 100, True),
    "body_over_the_limit_without_length": ("POST", "/", [], b"x" * 100, False),
    "bad_content_length": ("POST", "/", [("content-length", "1x")], b"x", True),
    "two_content_lengths": (
        "POST",
        "/",
        [("content-length", "1"), ("content-length", "2")],
        b"x",
        True,
    ),
    "method_not_served": ("CONNECT", "/", [], b"", True),
    "application_error": ("GET", "/fail", [], b"", True),
    "within_the_limits": ("POST", "/", [("content-length", "3")], b"abc", True),
}
STATUS = {
    "body_over_the_limit": 413,
    "body_over_the_limit_without_length": 413,
    "bad_content_length": 400,
    "two_content_lengths": 400,
    "method_not_served": 405,
    "application_error": 500,
    "within_the_limits": 200,
}
# Where a protocol's answer differs, and why (each an expected failure, strict:
# it fails the suite once it agrees, so that the row goes).
DIVERGES = {
    # Tornado's answer over HTTP/1.1 is a bare 400 for a body over
    # max_body_size (its BodyLimitsTest pins it; 413 only in place of a 100
    # Continue): the Tornado contract wins there.
    ("h1", "body_over_the_limit"): "HTTP/1.1 keeps Tornado's 400 (its suite pins it)",
    ("h1", "body_over_the_limit_without_length"): "HTTP/1.1 keeps Tornado's 400",
    # The HTTP/3 driver refuses a CONNECT without :protocol (400) where
    # HTTP/1.1 and HTTP/2 hand it to the application (which answers 405).
    ("h3", "method_not_served"): "the HTTP/3 driver answers a plain CONNECT with 400",
}


async def _h1_status(port: int, case: str) -> object:
    method, path, fields, body, with_length = REQUESTS[case]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        target = "t:443" if method == "CONNECT" else path
        head = f"{method} {target} HTTP/1.1\r\nHost: t\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in fields)
        if body and not with_length:
            data = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            head += "Transfer-Encoding: chunked\r\n"
        else:
            data = body
        writer.write(head.encode() + b"\r\n" + data)
        line = await asyncio.wait_for(reader.readline(), DEADLINE)
        return int(line.split()[1]) if line else "closed"
    finally:
        writer.close()


async def _h2_status(port: int, case: str) -> object:
    from ..h2._client import RawH2, Response

    method, path, fields, body, _ = REQUESTS[case]
    client = await RawH2.connect(port, validate=False)
    try:
        sid = client.conn.get_next_available_stream_id()
        if method == "CONNECT":  # RFC 9113 section 8.5: no :scheme, no :path
            head = [(":method", method), (":authority", "t:443")]
        else:
            head = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "t")]
        client.conn.send_headers(sid, head + fields, end_stream=not body)
        if body:
            client.conn.send_data(sid, body, end_stream=True)
        client.flush()
        r = client.responses.setdefault(sid, Response())
        await client.until(lambda: r.ended or r.reset is not None, DEADLINE)
        return r.status if r.status else f"reset {r.reset}"
    finally:
        await client.close()


async def _h3_status(port: int, case: str) -> object:
    from ..h3._client import Response, h3_client

    method, path, fields, body, _ = REQUESTS[case]
    async with h3_client(port) as client:
        sid = client._quic.get_next_available_stream_id()
        head = [(b":method", method.encode()), (b":authority", b"t")]
        if method != "CONNECT":
            head += [(b":scheme", b"https"), (b":path", path.encode())]
        head += [(name.encode(), value.encode()) for name, value in fields]
        client.h3.send_headers(sid, head, end_stream=not body)
        if body:
            client.h3.send_data(sid, body, end_stream=True)
        client.transmit()
        r = client.responses.setdefault(sid, Response())

        def answered() -> bool:
            closed = client._quic._close_event is not None
            return r.ended or r.reset is not None or closed

        await client.until(answered, DEADLINE)
        if not r.status:
            return f"reset {r.reset}" if r.reset is not None else "connection closed"
        return r.status


def _request_cases() -> list[Any]:
    cases = []
    for protocol in ("h1", "h2", "h3"):
        for case in REQUESTS:
            why = DIVERGES.get((protocol, case))
            marks = [pytest.mark.xfail(reason=why, strict=True)] if why else []
            cases.append(pytest.param(protocol, case, marks=marks, id=f"{protocol}-{case}"))
    return cases


@pytest.mark.parametrize(("protocol", "case"), _request_cases())
def test_one_request_gets_one_answer_over_every_protocol(protocol: str, case: str) -> None:
    from squall.log import app_log, gen_log
    from squall.testing import AsyncHTTPSTestCase, bind_unused_port

    if protocol == "h3":
        pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")
    else:
        pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

    async def main() -> object:
        app = Application([("/", _Upload), ("/fail", _Fails)])
        sock, port = bind_unused_port()
        if protocol == "h3":
            ssl = AsyncHTTPSTestCase.default_ssl_options()
            server = HTTPServer(app, ssl_options=ssl, http3=True, max_body_size=MAX_BODY)
        else:
            server = HTTPServer(app, http2=True, max_body_size=MAX_BODY)
        server.add_sockets([sock])
        try:
            if protocol == "h3":
                await asyncio.gather(*server._h3_tasks)
                return await _h3_status(port, case)
            if protocol == "h2":
                return await _h2_status(port, case)
            return await _h1_status(port, case)
        finally:
            server.stop()
            await server.close_all_connections()

    # What the server logs for these (malformed requests, the handler's
    # error, access lines) is the point of the case, not a fault.
    saved = [(log, log.disabled) for log in (app_log, gen_log)]
    import logging

    access = logging.getLogger("squall.access")
    saved.append((access, access.disabled))
    for log, _ in saved:
        log.disabled = True
    try:
        status = asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
    finally:
        for log, disabled in saved:
            log.disabled = disabled
    assert status == STATUS[case], (protocol, case, status)
