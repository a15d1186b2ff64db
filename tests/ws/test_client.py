"""websocket_connect against scripted servers and through an HTTP CONNECT proxy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from squall._ws import accept_key
from squall.concurrent import Future
from squall.httpclient import HTTPClientError, HTTPRequest, _RequestProxy
from squall.ioloop import IOLoop
from squall.iostream import StreamClosedError
from squall.log import app_log
from squall.netutil import DefaultLoopResolver, Resolver
from squall.queues import QueueEmpty
from squall.tcpclient import TCPClient
from squall.testing import AsyncHTTPTestCase, AsyncTestCase, ExpectLog, gen_test
from squall.web import Application
from squall.websocket import (
    WebSocketClientConnection,
    WebSocketClosedError,
    WebSocketError,
    WebSocketHandler,
    websocket_connect,
)
from tests._wait import HANG_GUARD, until

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[int]:
    """Serves ``script`` on a fresh port; on exit closes every connection and waits for them."""
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[Any]] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        for writer in writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


def recording(seen: list[bytes]) -> Script:
    """`answering`, keeping each handshake's head in ``seen``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        await answering()(_Replay(head, reader), writer)

    return script


def key_of(head: bytes) -> str:
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "sec-websocket-key":
            return value.strip()
    raise AssertionError("no key")


def switched(head: bytes) -> bytes:
    """A plain 101 answering the handshake ``head`` (frames may follow it)."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept_key(key_of(head)).encode()
        + b"\r\n\r\n"
    )


def answering(extra: str = "", accept: str = "") -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        value = accept or accept_key(key_of(head))
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {value}\r\n{extra}\r\n"
            ).encode()
        )
        await reader.read()
        writer.close()

    return script


class ScriptedServers(AsyncTestCase):
    @gen_test
    async def test_wrong_accept_key(self) -> None:
        async with scripted(answering(accept="bogus")) as port:
            with self.assertRaisesRegex(WebSocketError, "Sec-WebSocket-Accept"):
                await websocket_connect(f"ws://127.0.0.1:{port}/")

    @gen_test
    async def test_extension_not_offered(self) -> None:
        async with scripted(answering("Sec-WebSocket-Extensions: permessage-deflate\r\n")) as port:
            with self.assertRaisesRegex(WebSocketError, "did not offer"):
                await websocket_connect(f"ws://127.0.0.1:{port}/")

    @gen_test
    async def test_bad_extension_answer(self) -> None:
        async with scripted(answering("Sec-WebSocket-Extensions: x-unknown\r\n")) as port:
            with self.assertRaisesRegex(WebSocketError, "unexpected extensions"):
                await websocket_connect(f"ws://127.0.0.1:{port}/", compression_options={})

    @gen_test
    async def test_handshake_timeout(self) -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        async with scripted(silent) as port:
            request = HTTPRequest(f"ws://127.0.0.1:{port}/", request_timeout=0.05)
            with self.assertRaises(HTTPClientError) as info:
                await websocket_connect(request)
            self.assertEqual(info.exception.code, 599)

    @gen_test
    async def test_a_server_that_closes_before_answering_fails_with_stream_closed(self) -> None:
        # The message is the fetch's for the same case (no response head):
        # programs that retry on a dropped connection match on it.
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        async with scripted(hang_up) as port:
            with self.assertRaises(HTTPClientError) as info:
                await websocket_connect(f"ws://127.0.0.1:{port}/")
        self.assertEqual(info.exception.code, 599)
        self.assertEqual(str(info.exception), "Stream closed")

    @gen_test
    async def test_request_line_and_headers(self) -> None:
        seen: list[bytes] = []
        async with scripted(recording(seen)) as port:
            request = HTTPRequest(
                f"ws://127.0.0.1:{port}/path?q=1",
                headers={"X-Extra": "yes", "Sec-WebSocket-Version": "99"},
            )
            ws = await websocket_connect(request, subprotocols=["a", "b"])
            # As Tornado's: a connected client reports no status code.
            self.assertEqual((ws.code, ws.reason), (None, None))
            ws.close()
            head = seen[0].decode()
            self.assertTrue(head.startswith("GET /path?q=1 HTTP/1.1\r\n"))
            self.assertIn(f"Host: 127.0.0.1:{port}\r\n", head)
            self.assertIn("X-Extra: yes\r\n", head)
            self.assertIn("Sec-WebSocket-Version: 13\r\n", head)
            self.assertNotIn("Sec-WebSocket-Version: 99", head)
            self.assertEqual(head.count("Sec-WebSocket-Version:"), 1)
            self.assertIn("Sec-WebSocket-Protocol: a,b\r\n", head)

    @gen_test
    async def test_credentials_and_user_agent_go_with_the_handshake(self) -> None:
        # As Tornado's client sends them (its handshake is an HTTP fetch):
        # auth_username/auth_password (or the URL's userinfo) as Basic
        # credentials, user_agent, else the library's own name.
        heads: list[bytes] = []
        async with scripted(recording(heads)) as port:
            request = HTTPRequest(
                f"ws://127.0.0.1:{port}/",
                auth_username="user",
                auth_password="pw",
                user_agent="Bot/1",
            )
            (await websocket_connect(request)).close()
            (await websocket_connect(f"ws://u%40x:p@127.0.0.1:{port}/")).close()
            own = HTTPRequest(f"ws://127.0.0.1:{port}/", headers={"Authorization": "Bearer t"})
            (await websocket_connect(own)).close()
        seen = [head.decode() for head in heads]
        self.assertIn("Authorization: Basic dXNlcjpwdw==\r\n", seen[0])
        self.assertIn("User-Agent: Bot/1\r\n", seen[0])
        self.assertIn("Authorization: Basic dUB4OnA=\r\n", seen[1])
        self.assertRegex(seen[1], r"\r\nUser-Agent: (Squall|Tornado)/[0-9.]+\r\n")
        self.assertIn("Authorization: Bearer t\r\n", seen[2])
        self.assertEqual(seen[2].count("Authorization:"), 1)

    @gen_test
    async def test_messages_received_before_the_end_are_all_read(self) -> None:
        # A server sends several messages and hangs up (with or without a
        # close frame) before the client reads them: each is read, then
        # None. Past the first, they waited for the application (the
        # client's back-pressure) and the end of the connection dropped them.
        for closing in (b"", b"\x88\x02\x03\xe8"):

            async def burst(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, closing: bytes = closing
            ) -> None:
                head = await reader.readuntil(b"\r\n\r\n")
                frames = b"".join(bytes([0x81, 2]) + b"m%d" % i for i in range(6))
                writer.write(switched(head) + frames + bytes([0x82, 1]) + b"z" + closing)
                await writer.drain()
                writer.close()

            async with scripted(burst) as port:
                conn = await websocket_connect(f"ws://127.0.0.1:{port}/")
                received = []
                while (message := await conn.read_message()) is not None:
                    received.append(message)
            self.assertEqual(received, [f"m{i}" for i in range(6)] + [b"z"], closing)
            # The close frame that came with them gives its code.
            self.assertEqual(conn.close_code, 1000 if closing else None)

    @gen_test
    async def test_a_close_frame_then_a_half_close_is_answered(self) -> None:
        # The server sends a message and its close frame with the 101, then
        # shuts its side down (and keeps reading). RFC 6455 section 5.5.1:
        # the client answers the close frame; close_code is the server's.
        # The client read the end of the connection first, closed, and lost
        # both (the answer and the code).
        answers: list[bytes] = []
        for unread_first in (False, True):
            answered = asyncio.Event()

            async def closing(
                reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter,
                answered: asyncio.Event = answered,
            ) -> None:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(switched(head) + b"\x81\x02hi\x88\x07\x03\xe9going")
                await writer.drain()
                writer.write_eof()
                answers.append(await reader.read())
                answered.set()

            async with scripted(closing) as port:
                conn = await websocket_connect(f"ws://127.0.0.1:{port}/")
                if unread_first:
                    # The application reads nothing until the server has
                    # the answer: the one message waits (as in Tornado's
                    # client, whose queue holds one), the close frame
                    # behind it is answered all the same.
                    await answered.wait()
                received = [await conn.read_message(), await conn.read_message()]
            self.assertEqual(received, ["hi", None])
            self.assertEqual((conn.close_code, conn.close_reason), (1001, "going"))
        for answer in answers:
            # One masked close frame with the code echoed.
            self.assertEqual(answer[:2], b"\x88\x82")
            mask = answer[2:6]
            self.assertEqual(bytes(b ^ mask[i % 4] for i, b in enumerate(answer[6:])), b"\x03\xe9")

    @gen_test
    async def test_the_end_is_seen_while_the_application_reads_nothing(self) -> None:
        # A client that only sends (it never reads) has a server that sends
        # two messages and closes: reading stops for the application at the
        # second (back-pressure), and with nothing after it to answer, the
        # end is seen meanwhile, as an idle stream sees it (not held off
        # until the application reads).
        async def two_then_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(switched(head) + b"\x81\x02m0\x81\x02m1")
            await writer.drain()
            writer.close()

        async with scripted(two_then_gone) as port:
            conn = await websocket_connect(f"ws://127.0.0.1:{port}/")
            await until(conn.protocol.is_closing)
            with self.assertRaises(WebSocketClosedError):
                await conn.write_message("late")
            received = [await conn.read_message() for _ in range(3)]
        self.assertEqual(received, ["m0", "m1", None])

    @gen_test
    async def test_a_non_ascii_path_is_sent_percent_encoded(self) -> None:
        # As the HTTP client sends it (RFC 3987 section 3.1); it went out
        # as latin-1 octets, which no server decodes back to the text.
        seen: list[bytes] = []
        async with scripted(recording(seen)) as port:
            (await websocket_connect(f"ws://127.0.0.1:{port}/caf\u00e9?q=\u2603")).close()
        self.assertTrue(seen[0].startswith(b"GET /caf%C3%A9?q=%E2%98%83 HTTP/1.1\r\n"), seen[0])

    async def refused(self, answer: bytes, **request: Any) -> HTTPClientError:
        """The error of a handshake the script answers with ``answer``, then
        holds the connection open (or closes it, for a body to the end)."""

        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            if b"Connection: close" in answer:
                writer.close()
                return
            await reader.read()

        async with scripted(script) as port:
            with self.assertRaises(HTTPClientError) as info:
                await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/", **request))
        return info.exception

    @gen_test
    async def test_a_refusal_carries_its_response_as_in_tornado(self) -> None:
        # Jupyter's kernel gateway's tests read ``error.response.code``.
        error = await self.refused(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 8\r\nX-Why: token\r\n\r\nno token"
        )
        assert error.code == 401 and error.response is not None
        assert error.response.code == 401 and error.response.reason == "Unauthorized"
        assert error.response.body == b"no token"
        assert error.response.headers["X-Why"] == "token"
        assert error.response.error is error

    @gen_test
    async def test_a_refusal_body_chunked_or_to_the_close(self) -> None:
        chunked = await self.refused(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;x=1\r\nnot\r\n5\r\n here\r\n0\r\n\r\n"
        )
        assert chunked.response is not None and chunked.response.body == b"not here"
        to_close = await self.refused(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\ngone")
        assert to_close.response is not None and to_close.response.body == b"gone"
        assert to_close.code == 404

    @gen_test
    async def test_a_refusal_body_too_long_is_not_read(self) -> None:
        # A length over the bound: the error, without the body, at once.
        error = await self.refused(b"HTTP/1.1 500 Oops\r\nContent-Length: 999999999\r\n\r\nxx")
        assert error.code == 500 and error.response is not None
        assert error.response.body == b""

    @gen_test
    async def test_a_refusal_cut_short_is_the_streams_error_as_in_tornado(self) -> None:
        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\nshort")
            writer.close()

        async with scripted(script) as port:
            with self.assertRaises(StreamClosedError):
                await websocket_connect(f"ws://127.0.0.1:{port}/")

    @gen_test
    async def test_a_refusal_body_that_never_ends_times_out(self) -> None:
        # The timeout is the behaviour under test: the head comes at once, the
        # body never ends; the head's own read has a deadline of its own.
        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\npartial")
            await reader.read()

        async with scripted(script) as port:
            conn = WebSocketClientConnection(
                HTTPRequest(f"ws://127.0.0.1:{port}/", request_timeout=1.0)
            )
            with self.assertRaises(HTTPClientError) as info:
                await asyncio.wait_for(conn.connect_future, HANG_GUARD)
        assert info.exception.code == 599
        assert conn.code == 503  # the head was read: the body's read timed out

    @gen_test
    async def test_invalid_urls(self) -> None:
        with self.assertRaisesRegex(ValueError, "scheme"):
            await websocket_connect("ftp://127.0.0.1/")
        with self.assertRaisesRegex(ValueError, "no host"):
            await websocket_connect("ws:///path")


class _Replay(asyncio.StreamReader):
    """A reader that hands back an already-read head first."""

    def __init__(self, head: bytes, inner: asyncio.StreamReader) -> None:
        super().__init__()
        self.head = head
        self.inner = inner

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        head, self.head = self.head, b""
        return head

    async def read(self, n: int = -1) -> bytes:
        return await self.inner.read(n)


class Echo(WebSocketHandler):
    def on_message(self, message: Any) -> None:
        if message == "close":
            self.close(4001, "asked to")
        else:
            self.write_message(message)


class ThroughProxy(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/echo", Echo)])

    @contextlib.asynccontextmanager
    async def proxy(self, status: int = 200) -> AsyncIterator[tuple[int, list[bytes]]]:
        heads: list[bytes] = []

        async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            heads.append(head)
            if status != 200:
                writer.write(f"HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n".encode())
                writer.close()
                return
            target = head.split(b" ")[1].decode()
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(ConnectionError):
                    while data := await src.read(65536):
                        dst.write(data)
                dst.close()

            try:
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            finally:
                up_writer.close()
                with contextlib.suppress(ConnectionError):
                    await up_writer.wait_closed()

        async with scripted(tunnel) as port:
            yield port, heads

    @gen_test
    async def test_connect_tunnel_with_basic_auth(self) -> None:
        async with self.proxy() as (proxy_port, heads):
            await self.tunnel_with_auth(proxy_port, heads)

    async def tunnel_with_auth(self, proxy_port: int, heads: list[bytes]) -> None:
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.get_http_port()}/echo",
            proxy_host="127.0.0.1",
            proxy_port=proxy_port,
            proxy_username="user",
            proxy_password="secret",
        )
        ws = await websocket_connect(request)
        ws.write_message("through the tunnel")
        self.assertEqual(await ws.read_message(), "through the tunnel")
        ws.close()
        head = heads[0].decode()
        self.assertTrue(head.startswith(f"CONNECT 127.0.0.1:{self.get_http_port()} HTTP/1.1\r\n"))
        token = base64.b64encode(b"user:secret").decode()
        self.assertIn(f"Proxy-Authorization: Basic {token}\r\n", head)

    @gen_test
    async def test_proxy_refusal(self) -> None:
        async with self.proxy(status=407) as (proxy_port, _):
            await self.refused(proxy_port)

    async def refused(self, proxy_port: int) -> None:
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.get_http_port()}/echo",
            proxy_host="127.0.0.1",
            proxy_port=proxy_port,
        )
        with self.assertRaisesRegex(HTTPClientError, "407") as info:
            await websocket_connect(request)
        self.assertEqual(info.exception.code, 599)

    @gen_test
    async def test_unsupported_proxy_auth_mode(self) -> None:
        async with self.proxy() as (proxy_port, _):
            await self.bad_mode(proxy_port)

    async def bad_mode(self, proxy_port: int) -> None:
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.get_http_port()}/echo",
            proxy_host="127.0.0.1",
            proxy_port=proxy_port,
            proxy_username="u",
            proxy_auth_mode="digest",
        )
        with self.assertRaisesRegex(ValueError, "digest"):
            await websocket_connect(request)


class Chatty(WebSocketHandler):
    """Greets with three messages the client never reads."""

    def open(self) -> None:
        for n in range(3):
            self.write_message(f"hello {n}")


class UnreadMessages(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/chatty", Chatty)])

    @gen_test
    async def test_close_completes_with_messages_unread(self) -> None:
        ws = await websocket_connect(self.get_url("/chatty").replace("http", "ws"))
        # Let the greetings arrive and back-pressure park the client's reading.
        first = await ws.read_message()
        assert first == "hello 0"
        closed = asyncio.Event()
        original = ws.on_ws_connection_close

        def on_close(code: Any = None, reason: Any = None) -> None:
            original(code, reason)
            closed.set()

        ws.on_ws_connection_close = on_close  # type: ignore[method-assign]
        ws.close()
        # The closing handshake ends (socket closed) well before the client's
        # own close timeout, although two messages were never read.
        await asyncio.wait_for(closed.wait(), HANG_GUARD)
        assert ws.stream is not None and ws.stream.closed()
        assert await ws.read_message() == "hello 1"
        assert await ws.read_message() == "hello 2"
        assert await ws.read_message() is None

    @gen_test
    async def test_read_queue_reads_the_messages_then_none(self) -> None:
        # Bokeh's tests read a client's messages through Tornado's read_queue.
        ws = await websocket_connect(self.get_url("/chatty").replace("http", "ws"))
        queue = ws.read_queue
        assert queue.maxsize == 1
        assert await queue.get(timeout=HANG_GUARD) == "hello 0"
        assert await queue.get() == "hello 1"
        ws.close()
        assert await queue.get() == "hello 2"
        assert await queue.get() is None
        assert queue.empty() and queue.qsize() == 0
        assert queue.get_nowait() is None

    @gen_test
    async def test_read_queue_get_nowait_on_an_open_idle_connection(self) -> None:
        ws = await websocket_connect(self.get_url("/chatty").replace("http", "ws"))
        for n in range(3):
            assert await ws.read_message() == f"hello {n}"
        with self.assertRaises(QueueEmpty):
            ws.read_queue.get_nowait()
        with self.assertRaises(TimeoutError):
            await ws.read_queue.get(timeout=0.01)
        ws.close()


class EchoingPeer(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/echo", Echo)])

    @gen_test
    async def test_attributes_tornados_client_connection_has(self) -> None:
        # Dask's WebSocket comm names its peer from ``sock.parsed.netloc``;
        # these are the attributes Tornado's client connection has (from its
        # HTTP client base) after connecting.
        port = self.get_http_port()
        future = websocket_connect(f"ws://LocalHost:{port}/echo?x=1")
        ws = await future
        assert ws.parsed == urllib.parse.urlsplit(f"http://LocalHost:{port}/echo?x=1")
        assert ws.parsed_hostname == "LocalHost"
        assert ws.io_loop is IOLoop.current()
        assert ws.connect_future is future
        assert isinstance(ws.tcp_client, TCPClient)
        assert ws.final_callback is None
        assert ws.start_time <= ws.io_loop.time()
        assert isinstance(ws.start_wall_time, float)
        ws.close(1001, "bye")
        assert await ws.read_message() is None
        # The server's echo carries the code alone: no reason, so None.
        assert (ws.close_code, ws.close_reason) == (1001, None)
        assert ws.parsed.netloc == f"LocalHost:{port}"

    @gen_test
    async def test_closing_releases_the_resolver_it_made_but_not_one_given(self) -> None:
        closed: list[str] = []

        class Counting(Resolver):
            def initialize(self, name: str = "made") -> None:
                self.name = name

            def resolve(self, host: str, port: int, family: Any = socket.AF_UNSPEC) -> Any:
                return DefaultLoopResolver().resolve(host, port, family)

            def close(self) -> None:
                closed.append(self.name)

        url = f"ws://127.0.0.1:{self.get_http_port()}/echo"
        Resolver.configure(Counting)
        try:
            made = await websocket_connect(url)
            given = await websocket_connect(url, resolver=Counting(name="given"))
        finally:
            Resolver.configure(None)
        assert closed == []
        for ws in (made, given):
            ws.close()
            assert await ws.read_message() is None
        assert closed == ["made"]

    @gen_test
    async def test_parsed_of_a_secure_ipv6_url(self) -> None:
        ws = WebSocketClientConnection(HTTPRequest("wss://u:p@[::1]:1/x"))
        with self.assertRaises(OSError):
            await ws.connect_future
        assert ws.parsed.scheme == "https" and ws.parsed.netloc == "u:p@[::1]:1"
        assert ws.parsed_hostname == "::1"

    @gen_test
    async def test_the_handshake_headers_are_in_the_request_as_in_tornado(self) -> None:
        # jupyter-server-proxy's tests read the subprotocols offered from
        # ``conn.request.headers``, where Tornado's client puts its handshake.
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.get_http_port()}/echo", headers={"X-Mine": "1"}
        )
        callers = request.headers
        ws = await websocket_connect(request, subprotocols=["a", "b"], compression_options={})
        sent = ws.request.headers
        assert sent["Sec-WebSocket-Protocol"] == "a,b"
        assert sent["Sec-WebSocket-Version"] == "13"
        assert sent["Upgrade"] == "websocket" and sent["Connection"] == "Upgrade"
        assert len(base64.b64decode(sent["Sec-WebSocket-Key"])) == 16
        assert ws.key == sent["Sec-WebSocket-Key"].encode()
        assert ws.get_websocket_protocol() is ws.protocol
        assert sent["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        assert sent["X-Mine"] == "1"
        # A copy: the headers the caller made are left as they were.
        assert "Sec-WebSocket-Key" not in callers and callers["X-Mine"] == "1"
        ws.write_message("hi")
        assert await ws.read_message() == "hi"
        ws.close()

    @gen_test
    async def test_what_sending_raises_after_each_kind_of_close(self) -> None:
        # Closed by the server: a write is refused with WebSocketClosedError
        # and a ping with the stream's StreamClosedError, which is what
        # Tornado's client raises there and what code written for it catches.
        url = f"ws://127.0.0.1:{self.get_http_port()}/echo"
        ws = await websocket_connect(url)
        ws.write_message("close")
        assert await ws.read_message() is None
        assert (ws.close_code, ws.close_reason) == (4001, "asked to")
        with self.assertRaises(StreamClosedError):
            ws.ping(b"x")
        with self.assertRaises(WebSocketClosedError):
            ws.write_message("x")
        # Closed by the application: both refused with WebSocketClosedError,
        # the write in Tornado's words.
        ws = await websocket_connect(url)
        ws.close()
        with self.assertRaises(WebSocketClosedError) as refused:
            ws.write_message("x")
        assert str(refused.exception) == "Client connection has been closed"
        with self.assertRaises(WebSocketClosedError):
            ws.ping(b"x")
        assert await ws.read_message() is None

    @gen_test
    async def test_an_error_in_on_message_callback_is_logged_with_its_text(self) -> None:
        # Tornado's client logs "Uncaught exception <the error's text>", then
        # drops the connection (the callback is told with None).
        closed: Future[None] = Future()

        def callback(message: Any) -> None:
            if message is None:
                closed.set_result(None)
            elif message == "boom":
                raise ValueError("callback went wrong")

        with ExpectLog(app_log, "Uncaught exception callback went wrong"):
            ws = await websocket_connect(
                f"ws://127.0.0.1:{self.get_http_port()}/echo", on_message_callback=callback
            )
            ws.write_message("boom")
            await closed


class Pinged(WebSocketHandler):
    def open(self) -> None:
        self.ping(b"are you there")

    def on_message(self, message: Any) -> None:
        self.write_message(message)


class PingableConnection(WebSocketClientConnection):
    """A subclass made directly, as jupyter-server-proxy makes its
    PingableWSClientConnection: the constructor connects."""

    def __init__(self, **kwargs: Any) -> None:
        self.on_ping_callback = kwargs.pop("on_ping_callback")
        super().__init__(**kwargs)

    def on_ping(self, data: bytes) -> None:
        self.on_ping_callback(data)


class DirectlyMadeConnection(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/pinged", Pinged)])

    @gen_test
    async def test_a_subclass_made_directly_connects_and_relays(self) -> None:
        request = HTTPRequest(f"ws://127.0.0.1:{self.get_http_port()}/pinged")
        request = _RequestProxy(request, HTTPRequest._DEFAULTS)  # type: ignore[assignment]
        messages: asyncio.Queue[Any] = asyncio.Queue()
        pings: asyncio.Queue[bytes] = asyncio.Queue()
        conn = PingableConnection(
            request=request,
            compression_options={},
            on_message_callback=messages.put_nowait,
            on_ping_callback=pings.put_nowait,
            subprotocols=["first"],
        )
        assert isinstance(conn.connect_future, asyncio.Future)
        ws = await asyncio.wait_for(conn.connect_future, HANG_GUARD)
        assert ws is conn
        assert await asyncio.wait_for(pings.get(), HANG_GUARD) == b"are you there"
        ws.write_message("Hello, world!")
        assert await asyncio.wait_for(messages.get(), HANG_GUARD) == "Hello, world!"
        ws.close()
        assert await asyncio.wait_for(messages.get(), HANG_GUARD) is None

    @gen_test
    async def test_a_directly_made_connection_that_fails_fails_its_future(self) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
            conn = WebSocketClientConnection(HTTPRequest(f"ws://127.0.0.1:{port}/"))
            with self.assertRaises(ConnectionRefusedError):
                await asyncio.wait_for(conn.connect_future, HANG_GUARD)
