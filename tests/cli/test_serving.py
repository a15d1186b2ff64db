"""What squall run puts in front of the application, on loopback in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from squall.cli._options import Config, UsageError
from squall.cli._serving import TrustedPeers, parse_forwarded
from squall.cli._target import serve_target
from squall.cli._worker import build_server
from squall.testing import bind_unused_port
from squall.web import Application, RequestHandler
from tests._first_step import ResetsItself
from tests._paths import CERTS
from tests._wait import HANG_GUARD, until

from . import sample_apps


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), HANG_GUARD))


async def fetch(port: int, path: str = "/", headers: str = "") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split()[1]), fields, body


def start(target: Any, **options: Any) -> tuple[Any, int]:
    config = Config(target="t:app", **options)
    served = serve_target(target, "t:app", config.root_path)
    server, _ = build_server(config, served)
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    return server, port


def test_forwarded_chain_with_trusted_proxies() -> None:
    assert parse_forwarded('for=192.0.2.60;proto=https, for="[2001:db8::1]:4711";by=x') == [
        {"for": "192.0.2.60", "proto": "https"},
        {"for": "[2001:db8::1]:4711", "by": "x"},
    ]
    assert parse_forwarded('for="a,b";proto=http') == [{"for": "a,b", "proto": "http"}]
    trusted = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])
    assert "10.1.2.3" in trusted and "127.0.0.1" in trusted
    assert "192.0.2.1" not in trusted and "not-an-ip" not in trusted
    assert "anything" in TrustedPeers(["*"])
    with pytest.raises(ValueError, match="is not a network"):
        TrustedPeers(["10.0.0.0/99"])


@pytest.mark.parametrize(
    ("headers", "remote_ip", "protocol"),
    [
        ("X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n", "203.0.113.9", "https"),
        # The right-most address not of a trusted proxy is the client's.
        ("X-Forwarded-For: 198.51.100.1, 203.0.113.9, 10.0.0.5\r\n", "203.0.113.9", "http"),
        ("X-Forwarded-For: not-an-address\r\n", "127.0.0.1", "http"),
        # The kind of header the proxy does not set is the
        # client's own, passed on: it does not count.
        (
            "Forwarded: for=6.6.6.6;proto=https\r\nX-Forwarded-For: 203.0.113.7\r\n",
            "203.0.113.7",
            "http",
        ),
        ("Forwarded: for=6.6.6.6;proto=https\r\n", "127.0.0.1", "http"),
        # RFC 7239 Forwarded when the proxy is said to set it (the other
        # kind is then the client's).
        ("forwarded|Forwarded: for=203.0.113.9;proto=https\r\n", "203.0.113.9", "https"),
        (
            'forwarded|Forwarded: for="[2001:db8::7]:80", for=10.0.0.5;proto=https\r\n',
            "2001:db8::7",
            "http",
        ),
        (
            "forwarded|X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
            "Forwarded: for=203.0.113.9\r\n",
            "203.0.113.9",
            "http",
        ),
    ],
)
def test_proxy_headers_from_a_trusted_peer(headers: str, remote_ip: str, protocol: str) -> None:
    # "STYLE|HEADERS": with --proxy-header-style STYLE.
    style, _, headers = headers.rpartition("|")
    options = {"proxy_header_style": style} if style else {}

    async def body() -> None:
        server, port = start(
            sample_apps.make_app(), forwarded_allow_ips=["127.0.0.1", "10.0.0.0/8"], **options
        )
        status, _, data = await fetch(port, "/", headers)
        assert status == 200
        seen = json.loads(data)
        assert (seen["remote_ip"], seen["protocol"]) == (remote_ip, protocol)
        # The next request on the connection's context starts clean again.
        status, _, data = await fetch(port, "/")
        assert json.loads(data)["remote_ip"] == "127.0.0.1"
        server.stop()

    run(body)


def test_proxy_headers_ignored_from_an_untrusted_peer_or_when_off() -> None:
    async def body() -> None:
        for options in ({"forwarded_allow_ips": ["10.9.9.9"]}, {"proxy_headers": False}):
            server, port = start(sample_apps.make_app(), **options)
            _, _, data = await fetch(port, "/", "X-Forwarded-For: 203.0.113.9\r\n")
            assert json.loads(data)["remote_ip"] == "127.0.0.1"
            server.stop()

    run(body)


async def _scope_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that answers with what its scope says of the client."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send(
            {"type": "websocket.send", "text": json.dumps([scope["client"][0], scope["scheme"]])}
        )
        await send({"type": "websocket.close"})
        return
    body = json.dumps([scope["client"][0], scope["scheme"]]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    ("headers", "client", "scheme"),
    [
        ("X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n", "203.0.113.9", "https"),
        ("X-Forwarded-For: 198.51.100.1, 203.0.113.9, 10.0.0.5\r\n", "203.0.113.9", "http"),
        # A Forwarded passed through by an X-Forwarded-* proxy.
        (
            "Forwarded: for=6.6.6.6;proto=https\r\nX-Forwarded-For: 203.0.113.9\r\n",
            "203.0.113.9",
            "http",
        ),
        ("X-Forwarded-Proto: wss\r\n", "127.0.0.1", "https"),
        ("X-Forwarded-For: not-an-address\r\n", "127.0.0.1", "http"),
        ("", "127.0.0.1", "http"),
    ],
)
@pytest.mark.parametrize("access_log", [False, True])
def test_proxy_headers_reach_an_asgi_scope(
    headers: str, client: str, scheme: str, access_log: bool
) -> None:
    async def body() -> None:
        server, port = start(
            _scope_echo, forwarded_allow_ips=["127.0.0.1", "10.0.0.0/8"], access_log=access_log
        )
        # Without an access log, no delegate in front: the scope is built
        # with the proxy's view; with one, the front delegate applies it.
        front = type(server.request_callback).__name__
        assert front == ("ServingDelegate" if access_log else "ASGIServerDelegate")
        status, _, data = await fetch(port, "/", headers)
        assert (status, json.loads(data)) == (200, [client, scheme])
        # The next request starts from the peer's own address.
        status, _, data = await fetch(port, "/")
        assert (status, json.loads(data)) == (200, ["127.0.0.1", "http"])
        server.stop()

    run(body)


def test_proxy_headers_reach_an_asgi_websocket_scope_only_from_a_trusted_peer() -> None:
    upgrade = (
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
    )

    async def seen(trusted: list[str]) -> Any:
        server, port = start(_scope_echo, forwarded_allow_ips=trusted, access_log=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET / HTTP/1.1\r\nHost: t\r\n{upgrade}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        frame = await reader.readexactly(2)
        payload = await reader.readexactly(frame[1] & 0x7F)
        writer.close()
        server.stop()
        return json.loads(payload)

    async def body() -> None:
        assert await seen(["127.0.0.1"]) == ["203.0.113.9", "wss"]
        assert await seen(["10.9.9.9"]) == ["127.0.0.1", "ws"]

    run(body)


def test_root_path_is_stripped_for_applications_and_given_to_asgi() -> None:
    async def body() -> None:
        server, port = start(sample_apps.make_app(), root_path="/api/")
        _, _, data = await fetch(port, "/api?x=1")
        assert json.loads(data)["path"] == "/"
        status, _, _ = await fetch(port, "/apiary")  # not under /api: left alone
        assert status == 404
        server.stop()
        server, port = start(sample_apps.asgi_app, root_path="/api")
        # The proxy removed the prefix; ASGI puts it back (ASGI spec: path
        # includes root_path).
        status, _, data = await fetch(port, "/x")
        assert (status, data) == (200, b"asgi /api/x root=/api")
        server.stop()

    run(body)


def test_wsgi_app_is_served() -> None:
    async def body() -> None:
        server, port = start(sample_apps.wsgi_app)
        status, _, data = await fetch(port, "/w")
        assert (status, data) == (200, b"wsgi /w")
        server.stop()

    run(body)


def test_access_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        server, port = start(
            sample_apps.make_app(),
            access_log_format="{client} {method} {path} {target} {status} {size} {user_agent}",
        )
        with caplog.at_level(logging.INFO, logger="squall.access"):
            _, _, data = await fetch(port, "/x?y=1", "User-Agent: probe\r\n")
        lines = [r.getMessage() for r in caplog.records if r.name == "squall.access"]
        assert lines == [f"127.0.0.1 GET /x /x?y=1 404 {len(data)} probe"]
        server.stop()

    run(body)


def test_h2_reset_in_the_first_step_reaches_the_handler_under_the_runner() -> None:
    # Over HTTP/2 the proxy keeps the stream's close_callback_attribute
    # capability too: the handler sets its callback after its first step,
    # and a reset from that step (its own close()) reaches it a turn later.
    pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")
    from tests.h2._client import RawH2

    events: list[str] = []

    async def body() -> None:
        server, port = start(
            Application([("/reset", ResetsItself, {"events": events})]),
            limit_concurrency=10,
            http2=True,
        )
        serving = server.request_callback
        client = await RawH2.connect(port)
        r = await client.fetch("/reset")
        await client.close()
        assert r.reset is not None
        await until(lambda: "woken" in events and serving.active == 0)
        assert events == ["_AppConnection True", "reset", "closed", "woken"]
        server.stop()

    run(body)


def test_handler_fast_path_and_close_report_under_the_runner() -> None:
    # With --limit-concurrency the runner follows each response through its
    # proxy connection (an Application's own log_function does the access
    # log otherwise). The proxy keeps the HTTP/1.1 connection's
    # close_callback_attribute capability, so the handler makes no
    # set_close_callback call; a client that leaves mid-response still
    # reaches on_connection_close, and the request stops counting.
    seen: dict[str, Any] = {}

    class Wait(RequestHandler):
        async def get(self) -> None:
            connection = self.request.connection
            assert connection is not None
            seen["proxy"] = type(connection).__name__
            seen["attribute"] = connection.close_callback_attribute
            seen["started"].set_result(None)
            await seen["closed"]

        def on_connection_close(self) -> None:
            seen["closed"].set_result(None)

    async def body() -> None:
        loop = asyncio.get_running_loop()
        seen["started"] = loop.create_future()
        seen["closed"] = loop.create_future()
        server, port = start(Application([("/wait", Wait)]), limit_concurrency=10)
        serving = server.request_callback
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        await seen["started"]
        assert serving.active == 1
        writer.close()
        await seen["closed"]
        await until(lambda: serving.active == 0)
        assert seen["proxy"] == "_AppConnection" and seen["attribute"] is True
        assert serving.finished == 1
        server.stop()

    run(body)


class Held(RequestHandler):
    """Answers when the test says so: the request stays in progress until then."""

    def initialize(self, entered: asyncio.Queue[None], release: asyncio.Event) -> None:
        self.entered = entered
        self.release = release

    async def get(self) -> None:
        self.entered.put_nowait(None)
        await self.release.wait()
        self.write("released")


def test_limit_concurrency_answers_503() -> None:
    # The requests that fill the limit are held open by an event, not by a
    # sleep in the handler: however slow the machine, they are still in
    # progress when the one over the limit arrives.
    async def body() -> None:
        entered: asyncio.Queue[None] = asyncio.Queue()
        release = asyncio.Event()
        app = Application(
            [("/", sample_apps.Pid), ("/held", Held, {"entered": entered, "release": release})]
        )
        server, port = start(app, limit_concurrency=2)
        serving = server.request_callback
        held = [asyncio.ensure_future(fetch(port, "/held")) for _ in range(2)]
        for _ in held:
            await entered.get()  # both are in their handlers
        assert serving.active == 2
        status, fields, data = await fetch(port, "/")
        assert status == 503 and fields["retry-after"] == "1"
        assert b"too many requests" in data
        assert not any(f.done() for f in held)  # the 503 did not wait for them
        release.set()
        for status, _, data in await asyncio.gather(*held):
            assert (status, data) == (200, b"released")
        assert serving.active == 0
        status, _, _ = await fetch(port, "/")
        assert status == 200
        server.stop()

    run(body)


def test_tls_with_certfile_and_keyfile() -> None:
    async def body() -> None:
        server, port = start(
            sample_apps.make_app(),
            certfile=str(CERTS / "test.crt"),
            keyfile=str(CERTS / "test.key"),
        )
        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        assert data.startswith(b"HTTP/1.1 200")
        assert json.loads(data.partition(b"\r\n\r\n")[2])["protocol"] == "https"
        server.stop()
        await server.close_all_connections()

    run(body)


def test_unreadable_certificate_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--certfile/--keyfile: cannot load"):
        start(sample_apps.make_app(), certfile=str(tmp_path / "no.crt"), keyfile="no.key")


def test_http2_option_turns_http2_on() -> None:
    pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")
    server, _ = start(sample_apps.make_app(), http2=True)
    assert server._h2_limits is not None
    server.stop()


H2C_UPGRADE = (
    "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
)


@pytest.mark.parametrize(
    ("options", "upgraded"),
    [
        # Proxy headers trusted (the default) means behind
        # a proxy, where an h2c upgrade would tunnel past it.
        ({}, False),
        ({"proxy_headers": False}, True),
        ({"h2c_upgrade": True}, True),
        ({"proxy_headers": False, "h2c_upgrade": False}, False),
    ],
)
def test_h2c_upgrade_is_off_behind_a_proxy_by_default(
    options: dict[str, Any], upgraded: bool
) -> None:
    pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

    async def body() -> None:
        server, port = start(sample_apps.make_app(), http2=True, **options)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET / HTTP/1.1\r\nHost: t\r\n{H2C_UPGRADE}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 " if upgraded else b"HTTP/1.1 200 ")
        writer.close()
        server.stop()
        await server.close_all_connections()

    run(body)


class _EarlyHinted(RequestHandler):
    def get(self) -> None:
        sent = self.send_early_hints(["</a.css>; rel=preload; as=style"])
        self.write(f"sent={sent}")


@pytest.mark.parametrize("request_id", [False, True])
def test_early_hints_pass_the_runner(request_id: bool) -> None:
    # The runner's request.connection (a proxy that follows the response for
    # the access log) hands the 103 to the server's connection.
    async def body() -> None:
        server, port = start(Application([("/", _EarlyHinted)]), request_id=request_id)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
            interim, _, rest = data.partition(b"\r\n\r\n")
            assert interim == b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style"
            assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
            assert rest.endswith(b"sent=True")
        finally:
            server.stop()
            await server.close_all_connections()

    run(body)
