"""A request that cannot be HTTP is refused at its first bytes, not after the
header timeout: a TLS ClientHello on a plain port, a binary protocol, a
control character where a method should start."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from squall._h1 import NEED_DATA, RemoteProtocolError, Request
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test
from squall.web import Application, RequestHandler

from .._wait import HANG_GUARD
from .conftest import client, drain, server

# The first bytes of a TLS 1.2/1.3 ClientHello record: handshake (0x16),
# version 3.1, a length, then the handshake header.
CLIENT_HELLO = bytes.fromhex("16030100f5010000f10303") + bytes(range(32))


@pytest.mark.parametrize(
    "data",
    [
        CLIENT_HELLO,
        b"\x16",
        b"\x00",
        b"\x80\x01",
        b"G\x00T / HTTP/1.1",
        b"GE(T / HTTP/1.1",
        b" GET / HTTP/1.1",
        b"\r\n\x16\x03\x01",
    ],
)
def test_non_token_start_is_refused_at_once(parser: str, data: bytes) -> None:
    conn = server(parser, data)
    with pytest.raises(RemoteProtocolError, match="invalid method") as info:
        conn.next_event()
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    "data",
    [b"G", b"GET", b"GET /", b"\r", b"\r\n", b"\r\nGE", b"M-SEARCH * HTTP/1.1\r\n", b"X" * 40],
)
def test_a_token_start_waits_for_the_rest(parser: str, data: bytes) -> None:
    conn = server(parser, data)
    assert conn.next_event() is NEED_DATA


def test_byte_by_byte_valid_request_still_parses(parser: str) -> None:
    conn = server(parser)
    events = []
    for b in b"\r\nPATCH /x HTTP/1.1\r\nHost: a\r\n\r\n":
        conn.receive_data(bytes([b]))
        events += drain(conn)
    assert isinstance(events[0], Request) and events[0].method == "PATCH"


def test_client_role_is_not_affected(parser: str) -> None:
    # A response's first bytes are judged by the status-line rules instead.
    conn = client(parser)
    conn.send_request("GET", "/", [("Host", "a")])
    conn.receive_data(b"HTTP/1.1 2")
    assert conn.next_event() is NEED_DATA


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("hello")


class ClientHelloOnPlainPortTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/", Hello)])

    def get_httpserver_options(self) -> dict[str, object]:
        # A header timeout far beyond the test's hang guard: an answer before
        # it can only come from the first-byte check.
        return {"idle_connection_timeout": 10 * HANG_GUARD}

    @gen_test
    async def test_client_hello_gets_400_and_close(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.create_connection(("127.0.0.1", self.get_http_port()))
        sock.setblocking(False)
        try:
            with ExpectLog("squall.general", "Malformed HTTP message", level=logging.INFO):
                await loop.sock_sendall(sock, CLIENT_HELLO)
                received = b""
                while True:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), HANG_GUARD)
                    if not chunk:
                        break
                    received += chunk
        finally:
            sock.close()
        assert received.startswith(b"HTTP/1.1 400 ")

    @gen_test
    async def test_plain_requests_still_served(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.create_connection(("127.0.0.1", self.get_http_port()))
        sock.setblocking(False)
        try:
            # Sent in two pieces, so the first one is an incomplete head.
            await loop.sock_sendall(sock, b"GE")
            await loop.sock_sendall(sock, b"T / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            received = b""
            while True:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), HANG_GUARD)
                if not chunk:
                    break
                received += chunk
        finally:
            sock.close()
        assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"hello")
