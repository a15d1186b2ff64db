"""HTTPServer(http3=True): an unchanged Application, an ASGI app and a WSGI app over HTTP/3.

The client is aioquic's own (QUIC + H3Connection) over a real UDP socket.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from squall import gen  # noqa: E402
from squall.asgi import ASGIServerDelegate  # noqa: E402
from squall.testing import AsyncHTTPSTestCase, gen_test  # noqa: E402
from squall.web import Application, RequestHandler, stream_request_body  # noqa: E402
from squall.wsgi import WSGIContainer  # noqa: E402

from .._first_step import ResetsItself  # noqa: E402
from .._wait import until  # noqa: E402
from ..h2.test_server import Trailed  # noqa: E402
from ._client import h3_client  # noqa: E402


class Hello(RequestHandler):
    def get(self) -> None:
        self.set_header("X-Version", self.request.version)
        self.write(f"hello {self.get_argument('name', 'world')}")

    def post(self) -> None:
        self.write(b"got " + self.request.body)

    head = get


class Hinted(RequestHandler):
    async def get(self) -> None:
        self.send_early_hints(["</a.css>; rel=preload; as=style"])
        await gen.moment
        self.write("page")


class Streamed(RequestHandler):
    async def get(self) -> None:
        for i in range(5):
            self.write(f"piece {i}\n" * 1000)
            await self.flush()


@stream_request_body
class Upload(RequestHandler):
    def prepare(self) -> None:
        self.size = 0
        self.pieces = 0

    async def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.pieces += 1
        await gen.moment

    def put(self) -> None:
        self.write({"size": self.size})


class Hold(RequestHandler):
    async def get(self) -> None:
        release: asyncio.Future[None] = self.application.settings["release"]
        self.application.settings["held"].set_result(None)
        await release
        self.write("released")


def make_app(**settings: Any) -> Application:
    return Application(
        [
            ("/", Hello),
            ("/hinted", Hinted),
            ("/streamed", Streamed),
            ("/upload", Upload),
            ("/hold", Hold),
            ("/trailers", Trailed),
            ("/reset", ResetsItself, {"events": settings.pop("events", [])}),
        ],
        **settings,
    )


class H3TestCase(AsyncHTTPSTestCase):
    def get_httpserver_options(self) -> dict[str, Any]:
        return {**super().get_httpserver_options(), "http3": True}

    async def started(self) -> None:
        await asyncio.gather(*self.http_server._h3_tasks)


class H3ApplicationTest(H3TestCase):
    def get_app(self) -> Application:
        self.events: list[str] = []
        return make_app(events=self.events)

    @gen_test
    async def test_get_post_404(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch("/?name=h3")
            assert (r.status, r.body) == (200, b"hello h3")
            assert r.headers["x-version"] == "HTTP/3"
            assert r.headers["content-length"] == "8"
            assert "alt-svc" not in r.headers
            r = await client.fetch("/", method="POST", body=b"a" * 100000)
            assert (r.status, r.body) == (200, b"got " + b"a" * 100000)
            r = await client.fetch("/nowhere")
            assert r.status == 404

    @gen_test
    async def test_many_streams_at_once(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sids = [client.request(f"/?name={i}") for i in range(30)]
            await client.until(lambda: all(client.responses[s].ended for s in sids))
            bodies = sorted(client.responses[s].body for s in sids)
            assert bodies == sorted(f"hello {i}".encode() for i in range(30))

    @gen_test
    async def test_streaming_both_ways(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch("/streamed")
            assert r.body == b"".join(f"piece {i}\n".encode() * 1000 for i in range(5))
            sid = client.request("/upload", method="PUT", end=False)
            for _ in range(10):
                client.send_body(sid, b"x" * 30000)
            client.send_body(sid, b"", end=True)
            r = client.responses[sid]
            await client.until(lambda: r.ended)
            assert json.loads(r.body) == {"size": 300000}

    @gen_test
    async def test_request_and_response_trailers(self) -> None:
        # As over HTTP/2: the request's trailers are request.connection.trailers
        # once the body is read (they were dropped), and set_trailers() sends
        # the response's after its body (the method was missing).
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = client.request("/trailers", method="PUT", end=False)
            client.send_body(sid, b"t" * 5000)
            client.h3.send_headers(sid, [(b"x-sum", b"abc"), (b"x-other", b"2")], end_stream=True)
            client.transmit()
            r = client.responses[sid]
            await client.until(lambda: r.ended or r.reset is not None)
            assert r.status == 200
            assert json.loads(r.body) == {
                "size": 5000,
                "trailers": {"X-Sum": "abc", "X-Other": "2"},
            }
            assert r.trailers == {"x-checksum": "abc", "x-count": "1"}
            r = await client.fetch("/trailers", method="PUT", body=b"abc")
            assert json.loads(r.body) == {"size": 3, "trailers": None}
            assert r.trailers == {"x-checksum": "none", "x-count": "1"}
            # Fields that may not be trailers are refused, and none are
            # taken once the response is finished.
            r = await client.fetch("/trailers")
            assert r.body.count(b"refused:") == 3 and r.trailers == {}
            assert self._app.settings["late"] == "the response already finished"

    @gen_test
    async def test_early_hints(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch("/hinted")
            assert r.interim == [[(":status", "103"), ("link", "</a.css>; rel=preload; as=style")]]
            assert (r.status, r.body) == (200, b"page")

    @gen_test
    async def test_a_reset_in_the_first_step_reaches_the_waiting_handler(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch("/reset")
            assert r.reset is not None
        await until(lambda: "woken" in self.events)
        assert self.events == ["_H3Stream True", "reset", "closed", "woken"]

    @gen_test
    async def test_alt_svc_on_tcp(self) -> None:
        await self.started()
        response = await self.http_client.fetch(self.get_url("/"))
        assert response.headers["Alt-Svc"] == f'h3=":{self.get_http_port()}"; ma=86400'


class H3ASGITest(H3TestCase):
    def get_app(self) -> Any:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            # A client that reads trailers gets some (the extension is
            # advertised where the protocol carries them).
            trailers = "http.response.trailers" in scope["extensions"]
            await send(
                {"type": "http.response.start", "status": 200, "headers": [], "trailers": trailers}
            )
            reply = f"{scope['http_version']} {scope['method']} {len(body)}".encode()
            await send({"type": "http.response.body", "body": reply})
            if trailers:
                await send(
                    {"type": "http.response.trailers", "headers": [(b"x-size", b"%d" % len(body))]}
                )

        return ASGIServerDelegate(app)

    @gen_test
    async def test_asgi_app(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch("/", method="POST", body=b"z" * 5000)
            assert (r.status, r.body) == (200, b"3 POST 5000")
            assert r.trailers == {"x-size": "5000"}
        # Over TCP the same app, its head through the Alt-Svc proxy.
        response = await self.http_client.fetch(self.get_url("/"))
        assert response.body == b"1.1 GET 0"
        assert response.headers["Alt-Svc"].startswith('h3=":')


class H3WSGITest(H3TestCase):
    def get_app(self) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [environ["SERVER_PROTOCOL"].encode(), b" ", environ["PATH_INFO"].encode()]

        return WSGIContainer(app)

    @gen_test
    async def test_wsgi_app(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch("/p")
            assert (r.status, r.body) == (200, b"HTTP/3 /p")


def test_http3_needs_tls() -> None:
    from squall.httpserver import HTTPServer

    with pytest.raises(ValueError, match="http3 needs ssl_options"):
        HTTPServer(make_app(), http3=True)


class Refused(RequestHandler):
    def get(self) -> None:
        self.set_status(int(self.get_argument("status", "200")))
        if self.get_argument("snow", None):
            self.set_header("X-Snow", "\u2603")
        self.set_header("X-Padded", " v ")

    head = get


class H3RefusedHeadTest(H3TestCase):
    def get_app(self) -> Application:
        return Application([("/refused", Refused)])

    @gen_test
    async def test_heads_http3_cannot_carry_get_the_500_page(self) -> None:
        # HTTP/3 has no 101 and no status outside three digits, and a value
        # outside latin-1 is what HTTP/1.1 refuses: each is the handler's
        # error, answered with the 500 page (the 101 went out as a final
        # head, the value as UTF-8). Spaces at a value's ends are not sent.
        # (No HEAD here: aioquic's client holds a HEAD response's
        # Content-Length against its empty body and fails the connection.)
        from squall.testing import ExpectLog

        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch("/refused")
            assert r.status == 200 and r.headers["x-padded"] == "v"
            for query in ("status=101", "status=99", "snow=1", "status=204&snow=1"):
                with ExpectLog("squall.application", "Uncaught exception"):
                    r = await client.fetch(f"/refused?{query}")
                assert r.status == 500, query
                assert r.body.startswith(b"<html><title>500"), query
                assert r.headers["content-length"] == str(len(r.body))


class SeenValues(RequestHandler):
    def get(self) -> None:
        self.write(repr(self.request.headers.get_list("X-C")))


class EmptyNameAdded:
    """A QPACK encoder that ends the first field section with ``"": "v"``,
    a field the stacks' encoders refuse to write and their decoders refuse
    as a literal but take from the dynamic table: an entry with a name of
    no bytes is inserted (RFC 9204 sections 4.3.1 and 4.3.3), and the
    section refers to it (section 4.5.2)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def encode(self, stream_id: int, headers: Any) -> tuple[bytes, bytes]:
        updates, block = self.encoder.encode(stream_id, headers)
        # Nothing of the encoder's own in the table: the entry is the
        # first, and the section's prefix (Required Insert Count 0, Base 0)
        # can be rewritten to count it.
        assert updates == b"" and block[:2] == b"\x00\x00", (updates, block)
        capacity_64 = b"\x3f\x21"
        insert = b"\x40\x01v"
        # Required Insert Count 1 (encoded 2), Base 1; relative index 0.
        return capacity_64 + insert, b"\x02\x00" + block[2:] + b"\x80"

    def feed_decoder(self, data: bytes) -> None:
        # The server's acknowledgements count the entry this encoder did
        # not make, which it would take for a decoder stream error.
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)


class H3RequestValueTest(H3TestCase):
    def get_app(self) -> Application:
        return Application([("/seen", SeenValues)])

    @gen_test
    async def test_control_characters_in_a_request_value_are_refused(self) -> None:
        # HTTP/1.1 and HTTP/2 refuse a value with any control character but
        # a tab; the QUIC stack refuses only NUL, CR and LF, and let the
        # others (0x01, ESC, DEL) into request.headers.
        import logging

        from squall.testing import ExpectLog

        await self.started()
        async with h3_client(self.get_http_port()) as client:
            for value in ("a\x01b", "a\x7fb", "a\x1bb"):
                with ExpectLog(
                    "squall.general",
                    "Malformed HTTP/3 request.*invalid header value",
                    level=logging.INFO,
                ):
                    r = await client.fetch("/seen", headers=[("x-c", value)])
                assert (r.status, r.body) == (400, b""), repr(value)
            # A tab inside a value, and obs-text (the client sends U+0085 as
            # UTF-8, C2 85, read as latin-1), are taken as HTTP/1.1 takes them.
            r = await client.fetch("/seen", headers=[("x-c", "a\tb"), ("x-c", "n\x85")])
            assert (r.status, r.body) == (200, repr(["a\tb", "n\xc2\x85"]).encode())


class H3EmptyNameTest(H3TestCase):
    def get_app(self) -> Application:
        return Application([("/seen", SeenValues)])

    @gen_test
    async def test_a_field_with_an_empty_name_is_refused(self) -> None:
        # HTTP/1.1 and HTTP/2 refuse it; over HTTP/3 it reached the handler
        # as a header named "".
        import logging

        from squall.testing import ExpectLog

        await self.started()
        async with h3_client(self.get_http_port()) as client:
            encoder = client.h3._encoder
            client.h3._encoder = EmptyNameAdded(encoder)
            with ExpectLog(
                "squall.general", "Malformed HTTP/3 request.*empty header name", level=logging.INFO
            ):
                r = await client.fetch("/seen")
            assert (r.status, r.body) == (400, b"")


class Cookies(RequestHandler):
    def get(self) -> None:
        cookies = {name: self.get_cookie(name) for name in ("a", "b", "c")}
        self.write({"cookies": cookies, "fields": self.request.headers.get_list("Cookie")})


class H3CookieTest(H3TestCase):
    def get_app(self) -> Application:
        return Application([("/cookies", Cookies)])

    @gen_test
    async def test_a_cookie_split_into_several_fields_is_one_again(self) -> None:
        # Browsers split Cookie into a field per cookie over HTTP/3 (as over
        # HTTP/2, for header compression). They were left apart, so
        # request.headers["Cookie"] (which a program may parse itself) gave
        # them joined with commas, where HTTP/1.1 and HTTP/2 give one field.
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch(
                "/cookies", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]
            )
            assert json.loads(r.body) == {
                "cookies": {"a": "1", "b": "2", "c": "3"},
                "fields": ["a=1; b=2; c=3"],
            }


class FlushesThenCloses(RequestHandler):
    async def get(self) -> None:
        self.write(b"a" * 1000)
        await self.flush()
        self.request.connection.close()


class AltSvcFlushTest(H3TestCase):
    """The TCP side of a server with http3: its exchanges are wrapped to add
    Alt-Svc, and the wrapper kept a flush() from putting the bytes on the
    wire (HTTP/2's are held for the connection's round)."""

    def get_app(self) -> Application:
        return Application([("/abort", FlushesThenCloses)])

    def get_httpserver_options(self) -> dict[str, Any]:
        return {**super().get_httpserver_options(), "http2": True}

    @gen_test
    async def test_what_a_flush_wrote_reaches_the_client_before_a_close(self) -> None:
        from squall.h2client import H2AsyncHTTPClient
        from squall.simple_httpclient import HTTPStreamClosedError

        client = H2AsyncHTTPClient(force_instance=True, defaults={"validate_cert": False})
        got: list[bytes] = []
        try:
            with pytest.raises(HTTPStreamClosedError):
                await client.fetch(self.get_url("/abort"), streaming_callback=got.append)
        finally:
            client.close()
        assert b"".join(got) == b"a" * 1000


class BigField(RequestHandler):
    def get(self) -> None:
        self.set_header("X-Big", "y" * int(self.get_argument("n")))
        self.write("ok")


class H3LargeResponseFieldTest(H3TestCase):
    def get_app(self) -> Application:
        return Application([("/big", BigField)])

    @gen_test
    async def test_a_response_field_of_several_kb_arrives(self) -> None:
        # qh3's QPACK encoder fails on such sections (an EncoderStreamError
        # at 5 KB, a panic at 20 KB, and panics for every section after);
        # the response was dropped and the request hung.
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            for n in (10, 5000, 20000, 10):
                r = await client.fetch(f"/big?n={n}")
                assert (r.status, r.body, len(r.headers["x-big"])) == (200, b"ok", n), n


class H3ExpectContinueTest(H3TestCase):
    def get_app(self) -> Application:
        return make_app()

    @gen_test
    async def test_expect_100_continue_gets_its_interim_response(self) -> None:
        # HTTP/1.1 and HTTP/2 answer "Expect: 100-continue" with a 100 once
        # the handler took the head; HTTP/3 sent none, and a client waiting
        # for it before sending its body waited for its own timeout.
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            sid = client.request(
                "/",
                method="POST",
                headers=[("expect", "100-Continue"), ("content-length", "4")],
                end=False,
            )
            r = client.responses[sid]
            await client.until(lambda: bool(r.interim))
            assert r.interim == [[(":status", "100")]] and r.status == 0
            client.send_body(sid, b"body", end=True)
            await client.until(lambda: r.ended)
            assert (r.status, r.body, len(r.interim)) == (200, b"got body", 1)
            # A body already ended with the head: nothing to ask for.
            r = await client.fetch("/", method="POST", headers=[("expect", "100-continue")])
            assert (r.status, r.interim) == (200, [])


class FailsOnce:
    """Stands in for one call of a server connection's H3 layer
    (``send_headers``, ``send_data``): raises on its first call, as a stack
    that refuses a field section would, then passes the calls on."""

    def __init__(self, h3: Any, name: str) -> None:
        self.original = getattr(h3, name)
        self.calls = 0
        setattr(h3, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("refused by the test")
        return self.original(*args, **kwargs)


class Raised:
    """Passes a call of a server connection's H3 layer on and counts what it raised."""

    def __init__(self, h3: Any, name: str) -> None:
        self.original = getattr(h3, name)
        self.raised: list[Exception] = []
        setattr(h3, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.original(*args, **kwargs)
        except Exception as exc:
            self.raised.append(exc)
            raise


@stream_request_body
class AnswersFirst(RequestHandler):
    """Answers before the request's body has come."""

    def prepare(self) -> None:
        self.finish("early")


class H3SendFailureTest(H3TestCase):
    """The QUIC stack raising on a response's write: the stream was
    forgotten and the client told nothing, so its request waited for its
    own timeout. Only a client's STOP_SENDING, read by the stack before its
    event is handled, makes a write raise as a matter of course."""

    def get_app(self) -> Application:
        return Application([("/", Hello), ("/streamed", Streamed), ("/early", AnswersFirst)])

    @gen_test
    async def test_a_write_the_stack_refuses_resets_the_stream(self) -> None:
        import logging

        from aioquic.h3.connection import ErrorCode

        from squall.testing import ExpectLog

        await self.started()
        async with h3_client(self.get_http_port()) as client:
            await client.fetch("/")
            (conn,) = self.http_server._connections
            # The head (and its body, at the response's end), then a
            # streamed body's first piece after its head.
            for path, call in (("/", "send_headers"), ("/streamed", "send_data")):
                FailsOnce(conn.h3, call)
                with ExpectLog("squall.general", ".*could not be sent; reset", level=logging.ERROR):
                    r = await client.fetch(path)
                assert r.reset == ErrorCode.H3_INTERNAL_ERROR and not r.ended, path
                r = await client.fetch("/")
                assert (r.status, r.body) == (200, b"hello world"), path

    @gen_test
    async def test_a_request_still_read_is_stopped_too(self) -> None:
        import logging

        from aioquic.h3.connection import ErrorCode

        from squall.testing import ExpectLog

        await self.started()
        async with h3_client(self.get_http_port()) as client:
            await client.fetch("/")
            (conn,) = self.http_server._connections
            FailsOnce(conn.h3, "send_headers")
            with ExpectLog("squall.general", ".*could not be sent; reset", level=logging.ERROR):
                sid = client.request("/early", method="PUT", body=b"part", end=False)
                r = client.responses[sid]
                await client.until(lambda: r.reset is not None and r.stopped is not None)
            assert r.reset == r.stopped == ErrorCode.H3_INTERNAL_ERROR

    @gen_test
    async def test_a_stream_the_client_stopped_is_let_go_quietly(self) -> None:
        import logging

        from aioquic.h3.connection import ErrorCode

        from ._client import Response

        await self.started()
        async with h3_client(self.get_http_port()) as client:
            await client.fetch("/")
            (conn,) = self.http_server._connections
            spy = Raised(conn.h3, "send_headers")
            with self.assertNoLogs("squall", logging.WARNING):
                # The request and its STOP_SENDING in one datagram: the
                # stack resets the stream as it reads the frame, and the
                # handler answers before the event that says so is handled.
                sid = client._quic.get_next_available_stream_id()
                client.responses[sid] = r = Response()
                head = [(b":method", b"GET"), (b":scheme", b"https")]
                head += [(b":authority", b"localhost"), (b":path", b"/")]
                client.h3.send_headers(sid, head, end_stream=True)
                client._quic.stop_stream(sid, ErrorCode.H3_REQUEST_CANCELLED)
                client.transmit()
                await client.until(lambda: r.reset is not None)
                assert r.reset == ErrorCode.H3_REQUEST_CANCELLED
                assert len(spy.raised) == 1  # (what the test is about)
                r = await client.fetch("/")
                assert (r.status, r.body) == (200, b"hello world")
