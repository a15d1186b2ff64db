"""Client role: requests serialized, responses parsed."""

from __future__ import annotations

import pytest

from squall._h1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Limits,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
)

from .conftest import client, drain


def get(parser: str, method: str = "GET", **kw: object):  # type: ignore[no-untyped-def]
    conn = client(parser, **kw)
    out = conn.send_request(method, "/", [("Host", "a")])
    assert out == f"{method} / HTTP/1.1\r\nHost: a\r\n\r\n".encode()
    return conn


def test_request_and_response(parser: str) -> None:
    conn = get(parser)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello")
    assert drain(conn) == [
        Response("HTTP/1.1", 200, "OK", [("Content-Length", "5"), ("X", "y")]),
        Data(b"hello"),
        EndOfMessage(),
    ]
    assert conn.keep_alive and conn.our_state == "IDLE" and conn.their_state == "IDLE"
    assert conn.next_event() is PAUSED
    # The next exchange on the same connection.
    conn.send_request("GET", "/2", [])
    conn.receive_data(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert [type(e) for e in drain(conn)] == [Response, EndOfMessage]


def test_no_pipelining_from_the_client(parser: str) -> None:
    conn = get(parser)
    with pytest.raises(LocalProtocolError, match="not finished"):
        conn.send_request("GET", "/", [])


def test_head_response_has_no_body(parser: str) -> None:
    conn = get(parser, "HEAD")
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n")
    assert drain(conn)[1:] == [EndOfMessage()]
    assert conn.keep_alive


def test_204_and_304_have_no_body(parser: str) -> None:
    for head in (
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    ):
        conn = get(parser)
        conn.receive_data(head)
        assert drain(conn)[1:] == [EndOfMessage()]


def test_204_with_content_length_is_an_error(parser: str) -> None:
    conn = get(parser)
    conn.receive_data(b"HTTP/1.1 204 No content\r\nContent-Length: 5\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="Response with code 204 should not have body"):
        drain(conn)


def test_204_with_chunked_coding_is_an_error(parser: str) -> None:
    # As with a length: the chunks that follow would be read as the next
    # response (Tornado refuses both).
    conn = get(parser)
    conn.receive_data(b"HTTP/1.1 204 No content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="Response with code 204 should not have body"):
        drain(conn)


def test_informational_responses(parser: str) -> None:
    conn = client(parser)
    conn.send_request_head("POST", "/", [("Content-Length", "2"), ("Expect", "100-continue")])
    conn.receive_data(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    )
    assert drain(conn) == [
        InformationalResponse("HTTP/1.1", 100, "Continue", []),
        InformationalResponse("HTTP/1.1", 103, "Early Hints", [("Link", "</a>")]),
    ]
    assert conn.send_data(b"ok") == b"ok"
    assert conn.send_end() == b""
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA")
    assert drain(conn)[1:] == [Data(b"A"), EndOfMessage()]


def test_too_many_informational_responses(parser: str) -> None:
    conn = get(parser, limits=H1Limits(max_informational=2))
    conn.receive_data(b"HTTP/1.1 100 CONTINUE\r\n\r\n" * 3)
    with pytest.raises(RemoteProtocolError, match="Too many 1xx responses"):
        drain(conn)


def test_early_final_response_while_sending(parser: str) -> None:
    conn = client(parser)
    conn.send_request_head("PUT", "/", [("Content-Length", "1000")])
    conn.receive_data(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert [type(e) for e in drain(conn)] == [Response, EndOfMessage]
    assert not conn.keep_alive
    conn.send_data(b"x" * 1000)
    conn.send_end()
    assert conn.our_state == "MUST_CLOSE"


def test_read_until_close(parser: str) -> None:
    conn = get(parser)
    conn.receive_data(b"HTTP/1.0 200 Not Modified\r\n\r\nhel")
    assert drain(conn)[1:] == [Data(b"hel")]
    assert not conn.keep_alive
    conn.receive_data(b"lo")
    conn.receive_data(b"")
    assert drain(conn) == [Data(b"lo"), EndOfMessage(), ConnectionClosed(False)]
    assert conn.next_event() == ConnectionClosed(False)


def test_read_until_close_body_limit(parser: str) -> None:
    conn = get(parser, limits=H1Limits(max_body_size=3))
    conn.receive_data(b"HTTP/1.1 200 OK\r\n\r\nhello")
    with pytest.raises(RemoteProtocolError) as info:
        drain(conn)
    assert info.value.status_hint == 413


def test_response_keep_alive_rules(parser: str) -> None:
    cases = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n", True),
    ]
    for data, keep in cases:
        conn = get(parser)
        conn.receive_data(data)
        drain(conn)
        assert conn.keep_alive is keep
    conn = client(parser)
    conn.send_request("GET", "/", [("Connection", "close")])
    conn.receive_data(cases[0][0])
    drain(conn)
    assert not conn.keep_alive and conn.their_state == "MUST_CLOSE"


def test_chunked_response_with_trailers(parser: str) -> None:
    conn = get(parser)
    conn.receive_data(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    )
    assert drain(conn)[1:] == [Data(b"abc"), EndOfMessage([("T", "1")])]


def test_response_leniencies(parser: str) -> None:
    cases = [
        (b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, ""),
        (b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", 200, ""),
        (b"HTTP/1.1 682 Bar\r\nContent-Length: 0\r\n\r\n", 682, "Bar"),
        (b"HTTP/1.1 200  Two  Spaces \r\nContent-Length: 0\r\n\r\n", 200, " Two  Spaces "),
    ]
    for data, status, reason in cases:
        conn = get(parser)
        conn.receive_data(data)
        (resp, _) = drain(conn)
        assert isinstance(resp, Response) and (resp.status, resp.reason) == (status, reason)


def test_response_obs_fold_is_unfolded(parser: str) -> None:
    # RFC 9112 §5.2: a user agent replaces obs-fold with SP.
    conn = get(parser)
    conn.receive_data(b"HTTP/1.1 200 OK\r\nX: a\r\n  b\r\n\tc\r\nContent-Length: 0\r\n\r\n")
    (resp, _) = drain(conn)
    assert isinstance(resp, Response) and resp.headers == [("X", "a b c"), ("Content-Length", "0")]


def test_multiple_content_lengths_in_responses(parser: str) -> None:
    for value in (b"2,2", b"2, 2,2"):
        conn = get(parser)
        conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\nok")
        assert drain(conn)[1:] == [Data(b"ok"), EndOfMessage()]
    for value in (b"2,4", b"2, 2,3"):
        conn = get(parser)
        conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\nok")
        with pytest.raises(RemoteProtocolError, match="Multiple unequal Content-Lengths"):
            drain(conn)


def test_equal_content_lengths_are_given_as_one(parser: str) -> None:
    # As Tornado gives them (a program reads int(headers["Content-Length"])),
    # where the first one was.
    for fields in (
        b"Content-Length: 2\r\nX: y\r\nContent-Length: 2\r\n",
        b"Content-Length: 2, 2\r\nX: y\r\n",
    ):
        conn = get(parser)
        conn.receive_data(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\nok")
        resp, data, end = drain(conn)
        assert isinstance(resp, Response)
        assert resp.headers == [("Content-Length", "2"), ("X", "y")]
        assert (data, end) == (Data(b"ok"), EndOfMessage())


def test_a_head_answers_framing_fields_are_not_checked(parser: str) -> None:
    # No body follows whatever they say (RFC 9112 section 6.3), so a
    # sloppy server's HEAD answer does not fail the request (nor on
    # Tornado); the connection stays usable.
    for fields in (
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Content-Length: -1\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ):
        conn = get(parser, "HEAD")
        conn.receive_data(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n")
        resp, end = drain(conn)
        assert isinstance(resp, Response) and resp.status == 200
        assert end == EndOfMessage()
        assert conn.keep_alive and conn.their_state == "IDLE"
    # A GET's answer with the same fields is still refused.
    conn = get(parser)
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        drain(conn)


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 X\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTX/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 O\x01K\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    ],
)
def test_malformed_responses(parser: str, data: bytes) -> None:
    conn = get(parser)
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError):
        drain(conn)


def test_status_line_too_long(parser: str) -> None:
    conn = get(parser, limits=H1Limits(max_start_line=20))
    conn.receive_data(b"HTTP/1.1 200 " + b"O" * 30 + b"\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="Status line too long") as info:
        drain(conn)
    assert info.value.status_hint == 400


def test_101_switches_protocols(parser: str) -> None:
    conn = client(parser)
    conn.send_request("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket")])
    conn.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00")
    assert drain(conn) == [
        Response("HTTP/1.1", 101, "Switching Protocols", [("Upgrade", "websocket")]),
        EndOfMessage(),
    ]
    assert conn.switched and conn.our_state == "SWITCHED"
    assert conn.detach() == b"\x81\x00"
    assert conn.next_event() is PAUSED


def test_connect_tunnel(parser: str) -> None:
    conn = client(parser)
    conn.send_request("CONNECT", "a.example:443", [("Host", "a.example:443")])
    conn.receive_data(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03")
    assert [type(e) for e in drain(conn)] == [Response, EndOfMessage]
    assert conn.switched and conn.detach() == b"\x16\x03"
    # A refused CONNECT is an ordinary response.
    conn = client(parser)
    conn.send_request("CONNECT", "a.example:443", [])
    conn.receive_data(b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno")
    assert drain(conn)[1:] == [Data(b"no"), EndOfMessage()]
    assert not conn.switched


def test_eof_before_and_inside_response(parser: str) -> None:
    conn = get(parser)
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed(False)]
    conn = get(parser)
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    conn.receive_data(b"")
    assert drain(conn)[1:] == [Data(b"ab"), ConnectionClosed(True)]
    # Server closes an idle keep-alive connection.
    conn = get(parser)
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    drain(conn)
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed(False)


def test_request_framing(parser: str) -> None:
    conn = client(parser)
    head = conn.send_request_head("POST", "/up", [("Host", "a")])
    assert head == b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert conn.send_data(b"abc") == b"3\r\nabc\r\n"
    assert conn.send_end() == b"0\r\n\r\n"
    conn = client(parser)
    assert conn.send_request("POST", "/", [], b"xyz").endswith(b"Content-Length: 3\r\n\r\nxyz")
    conn = client(parser)
    conn.send_request_head("DELETE", "/", [])
    with pytest.raises(LocalProtocolError, match="cannot have a body"):
        conn.send_data(b"x")
    conn = client(parser)
    head = conn.send_request_head("GET", "/", [], version="HTTP/1.0")
    assert head == b"GET / HTTP/1.0\r\n\r\n"
    assert not conn.keep_alive
    conn = client(parser)
    with pytest.raises(LocalProtocolError, match="HTTP/1.0"):
        conn.send_request_head("POST", "/", [("Transfer-Encoding", "chunked")], version="HTTP/1.0")


@pytest.mark.parametrize(
    ("method", "target", "version"),
    [
        ("G T", "/", "HTTP/1.1"),
        ("GET", "/a b", "HTTP/1.1"),
        ("GET", "", "HTTP/1.1"),
        ("GET", "/\u00e9", "HTTP/1.1"),
        ("GET", "/", "HTTP/2"),
    ],
)
def test_invalid_request_heads(parser: str, method: str, target: str, version: str) -> None:
    conn = client(parser)
    with pytest.raises(LocalProtocolError):
        conn.send_request_head(method, target, [], version=version)
    assert conn.our_state == "IDLE"


def test_request_with_both_framing_fields_is_refused(parser: str) -> None:
    conn = client(parser)
    with pytest.raises(LocalProtocolError, match="both"):
        conn.send_request_head(
            "POST", "/", [("Content-Length", "1"), ("Transfer-Encoding", "chunked")]
        )


def test_client_misuse(parser: str) -> None:
    conn = client(parser)
    with pytest.raises(LocalProtocolError):
        conn.send_response_head(200, "OK", [])
    with pytest.raises(LocalProtocolError):
        conn.send_informational(100)
    # Data before any request is kept for later.
    conn.receive_data(b"HTTP/1.1 408 Timeout\r\nContent-Length: 0\r\n\r\n")
    assert conn.next_event() is PAUSED
    conn.send_request("GET", "/", [])
    assert isinstance(conn.next_event(), Response)
