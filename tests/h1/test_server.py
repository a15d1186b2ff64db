"""Server role: requests in, events out; responses serialized."""

from __future__ import annotations

import pytest

from squall._h1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Connection,
    H1Limits,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    Request,
)

from .conftest import drain, server

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"


def rejects(parser: str, data: bytes, status: int = 400, match: str = ".", **kw: object) -> str:
    conn = server(parser, data, **kw)
    with pytest.raises(RemoteProtocolError, match=match) as info:
        drain(conn)
    assert info.value.status_hint == status
    # The error sticks: the connection cannot be used further.
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.their_state == "ERROR"
    assert not conn.keep_alive
    return str(info.value)


def test_simple_get(parser: str) -> None:
    conn = server(parser, GET)
    assert conn.parser == parser
    assert drain(conn) == [
        Request("GET", "/a?b=1", "HTTP/1.1", [("Host", "example.com")]),
        EndOfMessage(),
    ]
    assert conn.next_event() is PAUSED
    assert conn.keep_alive
    out = conn.send_response(200, "OK", [("Content-Type", "text/plain")], b"hi")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    assert conn.next_event() is NEED_DATA
    assert conn.our_state == "IDLE" and conn.their_state == "HEAD"


def test_headers_keep_order_case_and_duplicates(parser: str) -> None:
    data = (
        b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a:2\r\nEmpty:\r\nSp:  \t v a l \t \r\nObs: \xe9\xff\r\n\r\n"
    )
    (req, _) = drain(server(parser, data))
    assert isinstance(req, Request)
    assert req.headers == [
        ("X-A", "1"),
        ("x-a", "2"),
        ("Empty", ""),
        ("Sp", "v a l"),
        ("Obs", "\xe9\xff"),
    ]


def test_unknown_but_valid_method_is_accepted(parser: str) -> None:
    # RFC 9110 §9.1: an unknown method is a 501/405 for the application,
    # not a parse error (llhttp alone would refuse it).
    (req, _) = drain(server(parser, b"FOO /x HTTP/1.1\r\n\r\n"))
    assert isinstance(req, Request) and req.method == "FOO"
    (req, _) = drain(server(parser, b"get /x HTTP/1.1\r\n\r\n"))
    assert isinstance(req, Request) and req.method == "get"


def test_request_targets(parser: str) -> None:
    for target in ["*", "http://a/b?c#d", "a.example:443", "/%20x", '/"<>\\^`{|}']:
        method = "CONNECT" if ":443" in target else "OPTIONS"
        (req, *_) = drain(server(parser, f"{method} {target} HTTP/1.1\r\n\r\n".encode()))
        assert isinstance(req, Request) and req.target == target


def test_leading_empty_lines_are_ignored(parser: str) -> None:
    conn = server(parser, b"\r\n\r\n" + GET)
    assert [type(e) for e in drain(conn)] == [Request, EndOfMessage]


def test_http10_extra_crlf_between_requests(parser: str) -> None:
    conn = server(parser, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\r\n")
    assert len(drain(conn)) == 2
    conn.send_response(200, "OK", [], b"x")
    conn.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert len(drain(conn)) == 2


def test_content_length_body_in_pieces(parser: str) -> None:
    conn = server(parser, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123")
    assert drain(conn)[1:] == [Data(b"0123")]
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"45")
    conn.receive_data(b"6789GET")
    assert drain(conn) == [Data(b"456789"), EndOfMessage()]
    assert conn.buffered == 3


def test_chunked_body_with_extensions_and_trailers(parser: str) -> None:
    data = (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b'4\r\nfoo=\r\n3 ; ext=1;q="a b"\r\nbar\r\nA\r\n0123456789\r\n'
        b"0\r\nX-Checksum: abc\r\nX-Other:  2 \r\n\r\n"
    )
    events = drain(server(parser, data))
    assert events[1:] == [
        Data(b"foo=bar0123456789"),
        EndOfMessage([("X-Checksum", "abc"), ("X-Other", "2")]),
    ]


def test_chunked_body_split_everywhere(parser: str) -> None:
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    conn = server(parser)
    body = b""
    events = []
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        events += drain(conn)
    for ev in events:
        if isinstance(ev, Data):
            body += ev.data
    assert body == b"hello world"
    assert isinstance(events[0], Request) and events[-1] == EndOfMessage()


def test_many_tiny_chunks_are_coalesced(parser: str) -> None:
    data = (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1\r\nx\r\n" * 5000
        + b"0\r\n\r\n"
    )
    events = drain(server(parser, data))
    datas = [e for e in events if isinstance(e, Data)]
    assert b"".join(d.data for d in datas) == b"x" * 5000
    assert len(datas) == 1
    small = server(parser, data, limits=H1Limits(max_data_event=1000))
    assert len([e for e in drain(small) if isinstance(e, Data)]) == 5


def test_pipelined_requests_released_one_at_a_time(parser: str) -> None:
    data = GET + b"POST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nokHEAD /3 HTTP/1.1\r\n\r\n"
    conn = server(parser, data)
    first = drain(conn)
    assert [type(e) for e in first] == [Request, EndOfMessage]
    assert conn.next_event() is PAUSED
    conn.send_response_head(200, "OK", [("Content-Length", "1")])
    assert conn.next_event() is PAUSED  # response not finished yet
    conn.send_data(b"x")
    conn.send_end()
    second = drain(conn)
    assert second[1:] == [Data(b"ok"), EndOfMessage()]
    assert isinstance(second[0], Request) and second[0].target == "/2"
    conn.send_response(200, "OK", [])
    third = drain(conn)
    assert isinstance(third[0], Request) and third[0].method == "HEAD"
    out = conn.send_response(200, "OK", [("Content-Length", "5")], b"hello")
    assert out.endswith(b"\r\n\r\n")  # no body for HEAD
    assert conn.next_event() is NEED_DATA


def test_keep_alive_rules(parser: str) -> None:
    cases = [
        (b"GET / HTTP/1.1\r\n\r\n", True, b""),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False, b"Connection: close\r\n"),
        (b"GET / HTTP/1.1\r\nConnection: x, Close\r\n\r\n", False, b"Connection: close\r\n"),
        (b"GET / HTTP/1.0\r\n\r\n", False, b""),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True, b"Connection: Keep-Alive\r\n"),
    ]
    for data, keep, added in cases:
        conn = server(parser, data)
        drain(conn)
        assert conn.keep_alive is keep, data
        out = conn.send_response(200, "OK", [], b"x")
        assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n" + added + b"\r\nx"
        assert conn.keep_alive is keep
        if keep:
            assert conn.our_state == "IDLE"
        else:
            assert conn.our_state == "MUST_CLOSE" and conn.their_state == "MUST_CLOSE"
            assert conn.next_event() is PAUSED
            conn.receive_data(GET)  # RFC 9112 §9.6: ignored after close
            assert conn.next_event() is PAUSED
            conn.receive_data(b"")
            assert conn.next_event() == ConnectionClosed(False)


def test_response_connection_close_from_application(parser: str) -> None:
    conn = server(parser, GET)
    drain(conn)
    out = conn.send_response(200, "OK", [("Connection", "close")], b"")
    assert out.count(b"Connection") == 1
    assert not conn.keep_alive


def test_http10_response_without_length_is_read_until_close(parser: str) -> None:
    conn = server(parser, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    drain(conn)
    head = conn.send_response_head(200, "OK", [])
    assert b"Transfer-Encoding" not in head and b"Connection" not in head
    assert conn.send_data(b"abc") == b"abc"
    assert conn.send_end() == b""
    assert not conn.keep_alive


def test_http11_response_without_length_is_chunked(parser: str) -> None:
    conn = server(parser, GET)
    drain(conn)
    head = conn.send_response_head(200, "OK", [("X", "1")])
    assert head == b"HTTP/1.1 200 OK\r\nX: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert conn.send_data(b"hello") == b"5\r\nhello\r\n"
    assert conn.send_data(b"") == b""
    assert conn.send_end([("X-T", "v")]) == b"0\r\nX-T: v\r\n\r\n"
    assert conn.keep_alive and conn.our_state == "IDLE"


def test_no_body_statuses(parser: str) -> None:
    for status in (204, 304):
        conn = server(parser, GET)
        drain(conn)
        head = conn.send_response_head(status, "X", [])
        assert head == b"HTTP/1.1 %d X\r\n\r\n" % status
        with pytest.raises(LocalProtocolError):
            conn.send_data(b"x")
        assert conn.send_end() == b""


def test_expect_100_continue(parser: str) -> None:
    data = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    conn = server(parser, data)
    assert [type(e) for e in drain(conn)] == [Request]
    assert conn.expects_continue
    assert conn.send_informational(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not conn.expects_continue
    conn.receive_data(b"abc")
    assert drain(conn) == [Data(b"abc"), EndOfMessage()]
    conn.send_response(200, "OK", [], b"")
    assert conn.keep_alive


def test_expect_100_continue_ignored_for_http10_and_no_body(parser: str) -> None:
    for data in (
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    ):
        conn = server(parser, data)
        drain(conn)
        assert not conn.expects_continue


def test_final_response_before_body_closes(parser: str) -> None:
    conn = server(parser, b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    drain(conn)
    out = conn.send_response(417, "Expectation Failed", [], b"")
    assert b"Connection: close" not in out  # decided after the head is written
    assert not conn.keep_alive
    assert not conn.expects_continue
    conn.receive_data(b"abc")
    assert drain(conn) == [Data(b"abc"), EndOfMessage()]
    assert conn.their_state == "MUST_CLOSE"


def test_informational_misuse(parser: str) -> None:
    conn = server(parser)
    with pytest.raises(LocalProtocolError):
        conn.send_informational(100)
    conn.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    drain(conn)
    with pytest.raises(LocalProtocolError, match="HTTP/1.0"):
        conn.send_informational(100)
    conn2 = server(parser, GET)
    drain(conn2)
    for status in (101, 200, 99):
        with pytest.raises(LocalProtocolError):
            conn2.send_informational(status)
    assert conn2.send_informational(103, "Early Hints", [("Link", "</a>")]).startswith(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n"
    )


def test_upgrade_switches_after_101(parser: str) -> None:
    data = b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"
    conn = server(parser, data)
    assert [type(e) for e in drain(conn)] == [Request, EndOfMessage]
    out = conn.send_response(
        101, "Switching Protocols", [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    )
    assert b"Content-Length" not in out
    assert conn.switched and conn.our_state == "SWITCHED"
    assert conn.next_event() is PAUSED
    assert conn.detach() == b"\x81\x05hello"
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")


def test_refused_upgrade_keeps_http(parser: str) -> None:
    data = b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + GET
    conn = server(parser, data)
    drain(conn)
    conn.send_response(400, "Bad Request", [], b"")
    assert not conn.switched
    assert [type(e) for e in drain(conn)] == [Request, EndOfMessage]


def test_connect_switches_after_2xx(parser: str) -> None:
    conn = server(parser, b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\nTLS")
    drain(conn)
    conn.send_response_head(200, "Connection Established", [])
    conn.send_end()
    assert conn.switched
    assert conn.detach() == b"TLS"


def test_eof_handling(parser: str) -> None:
    conn = server(parser)
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed(False)]
    assert conn.next_event() == ConnectionClosed(False)
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")

    conn = server(parser, b"GET / HT")
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed(True)]

    conn = server(parser, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
    conn.receive_data(b"")
    events = drain(conn)
    assert events[1:] == [Data(b"ab"), ConnectionClosed(True)]

    conn = server(parser, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab")
    conn.receive_data(b"")
    assert drain(conn)[1:] == [Data(b"ab"), ConnectionClosed(True)]

    # A half-close after a complete request still lets us answer it.
    conn = server(parser, GET)
    conn.receive_data(b"")
    assert len(drain(conn)) == 2
    assert conn.next_event() is PAUSED
    conn.send_response(200, "OK", [], b"")
    assert conn.next_event() == ConnectionClosed(False)


def test_error_response_after_protocol_error(parser: str) -> None:
    conn = server(parser, b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        drain(conn)
    out = conn.send_response(400, "Bad Request", [], b"")
    assert out == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert not conn.keep_alive and conn.our_state == "MUST_CLOSE"


def test_send_misuse(parser: str) -> None:
    conn = server(parser)
    with pytest.raises(LocalProtocolError):
        conn.send_response_head(200, "OK", [])
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        conn.send_end()
    with pytest.raises(LocalProtocolError):
        conn.send_request_head("GET", "/", [])
    conn.receive_data(GET)
    drain(conn)
    with pytest.raises(LocalProtocolError, match="final status"):
        conn.send_response_head(100, "Continue", [])
    conn.send_response_head(200, "OK", [("Content-Length", "3")])
    with pytest.raises(LocalProtocolError):
        conn.send_response_head(200, "OK", [])
    with pytest.raises(LocalProtocolError, match="more data than Content-Length"):
        conn.send_data(b"abcd")
    conn.send_data(b"ab")
    with pytest.raises(LocalProtocolError, match="1 bytes less than Content-Length"):
        conn.send_end()
    with pytest.raises(LocalProtocolError, match="trailers"):
        conn.send_end([("X", "y")])
    conn.send_data(b"c")
    conn.send_end()


@pytest.mark.parametrize(
    "headers",
    [
        [("X", "a\r\nInjected: 1")],
        [("X", "a\nb")],
        [("X", "a\0b")],
        [("Bad Name", "v")],
        [("", "v")],
        [("X", "\u20ac")],
        [("Content-Length", "+3")],
        [("Transfer-Encoding", "gzip")],
        [("X",)],
    ],
)
def test_invalid_outgoing_headers(parser: str, headers: list[tuple[str, str]]) -> None:
    conn = server(parser, GET)
    drain(conn)
    with pytest.raises(LocalProtocolError):
        conn.send_response_head(200, "OK", headers)
    assert conn.our_state == "IDLE"


def test_invalid_reason_phrase(parser: str) -> None:
    conn = server(parser, GET)
    drain(conn)
    with pytest.raises(LocalProtocolError, match="reason"):
        conn.send_response_head(200, "OK\r\nX-Injection: injected", [])


def test_chunked_to_http10_is_refused(parser: str) -> None:
    conn = server(parser, b"GET / HTTP/1.0\r\n\r\n")
    drain(conn)
    with pytest.raises(LocalProtocolError, match="HTTP/1.0"):
        conn.send_response_head(200, "OK", [("Transfer-Encoding", "chunked")])


def test_max_body_size_override(parser: str) -> None:
    limits = H1Limits(max_body_size=4)
    conn = server(parser, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", limits=limits)
    assert isinstance(conn.next_event(), Request)
    conn.set_max_body_size(10)
    assert drain(conn) == [Data(b"0123456789"), EndOfMessage()]
    conn.send_response(200, "OK", [], b"")
    # The override lasted for one request only.
    conn.receive_data(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789")
    assert isinstance(conn.next_event(), Request)
    with pytest.raises(RemoteProtocolError, match="Content-Length too long") as info:
        conn.next_event()
    assert info.value.status_hint == 413


def test_chunked_body_too_large(parser: str) -> None:
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
    rejects(parser, data, 413, "chunked body too large", limits=H1Limits(max_body_size=5))
    events = drain(server(parser, data, limits=H1Limits(max_body_size=6)))
    assert events[-1] == EndOfMessage()


def test_limits(parser: str) -> None:
    long_line = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n"
    rejects(parser, long_line, 414, "Request line too long", limits=H1Limits(max_start_line=50))
    # Detected before the head is complete.
    rejects(parser, long_line[:80], 414, limits=H1Limits(max_start_line=50))
    big = b"GET / HTTP/1.1\r\nX: " + b"a" * 200 + b"\r\n\r\n"
    rejects(parser, big, 431, "Header block too large", limits=H1Limits(max_header_size=100))
    rejects(parser, big[:150], 431, limits=H1Limits(max_header_size=100))
    many = b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * 11 + b"\r\n"
    rejects(parser, many, 431, "Too many header fields", limits=H1Limits(max_header_count=10))
    assert len(drain(server(parser, many, limits=H1Limits(max_header_count=11)))) == 2
    chunk_ext = (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;"
        + b"x" * 100
        + b"\r\na\r\n0\r\n\r\n"
    )
    rejects(parser, chunk_ext, 400, "chunk size line too long", limits=H1Limits(max_chunk_line=50))
    rejects(
        parser, chunk_ext[:110], 400, "chunk size line too long", limits=H1Limits(max_chunk_line=50)
    )
    trailer = (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"a" * 100 + b"\r\n\r\n"
    )
    rejects(parser, trailer, 431, "Trailer section too large", limits=H1Limits(max_trailer_size=50))
    rejects(parser, trailer[:-10], 431, limits=H1Limits(max_trailer_size=50))


def test_tornado_defaults() -> None:
    limits = H1Limits()
    assert limits.max_header_size == 64 * 1024
    assert limits.max_body_size == 100 * 1024 * 1024
    assert limits.replace(max_body_size=5).max_body_size == 5
    assert "max_chunk_line=1024" in repr(limits)
    with pytest.raises(ValueError):
        H1Limits(max_body_size=-1)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError):
        H1Connection("proxy")
    with pytest.raises(ValueError):
        H1Connection("server", parser="fast")


def test_bare_lf_allowed_when_asked(parser: str) -> None:
    for newline in (b"\n", b"\r\n"):
        data = newline.join([b"GET /hello HTTP/1.0", b"Host: a", b"X: 1", b"", b""])
        conn = server(parser, data + GET, allow_bare_lf=True)
        first = drain(conn)
        assert first == [
            Request("GET", "/hello", "HTTP/1.0", [("Host", "a"), ("X", "1")]),
            EndOfMessage(),
        ]
    conn = server(parser, b"GET / HTTP/1.1\nX: a\rb\n\n", allow_bare_lf=True)
    with pytest.raises(RemoteProtocolError, match="bare CR"):
        drain(conn)


def test_protocol_error_hierarchy() -> None:
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    err = RemoteProtocolError("x", 431)
    assert err.status_hint == 431 and str(err) == "x"
    assert RemoteProtocolError("y").status_hint == 400


# -- malformed requests: one test per smuggling shape ---------------------


def test_smuggling_cl_te(parser: str) -> None:
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
        match="both Transfer-Encoding and Content-Length",
    )


def test_smuggling_te_cl(parser: str) -> None:
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        match="both Transfer-Encoding and Content-Length",
    )


def test_smuggling_two_content_lengths(parser: str) -> None:
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        match="Multiple unequal Content-Lengths",
    )
    rejects(parser, b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd", match="unequal")
    # U+00A0 and U+0085 are not HTTP whitespace.
    for sep in (b"\xa0", b"\x85"):
        rejects(
            parser,
            b"POST / HTTP/1.1\r\nContent-Length: 5," + sep + b"5\r\n\r\nhello",
            match="unequal",
        )


def test_identical_content_lengths_are_merged(parser: str) -> None:
    for fields in (b"Content-Length: 2\r\nContent-Length: 2\r\n", b"Content-Length: 2, 2,2\r\n"):
        events = drain(server(parser, b"POST / HTTP/1.1\r\n" + fields + b"\r\nok"))
        assert events[1:] == [Data(b"ok"), EndOfMessage()]
        # The application reads one value, as on Tornado.
        assert events[0].fields["Content-Length"] == ["2"]


def test_smuggling_te_chunked_identity(parser: str) -> None:
    msg = rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        match="Unsupported Transfer-Encoding",
    )
    assert "chunked, identity" in msg


def test_unsupported_transfer_codings(parser: str) -> None:
    for value, shown in [
        (b"gzip, chunked", "gzip, chunked"),
        (b"chunked\r\nTransfer-encoding: chunked", "chunked,chunked"),
        (b"\xa0chunked", "\xa0chunked"),
        (b"identity", "identity"),
        (b"", ""),
    ]:
        msg = rejects(
            parser,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: " + value + b"\r\n\r\n0\r\n\r\n",
            match="Unsupported Transfer-Encoding",
        )
        assert shown in msg


def test_smuggling_chunk_size_junk(parser: str) -> None:
    for size in [
        b"3x",
        b"1_a",
        b"0x2",
        b"+2",
        b"-2",
        b" 2",
        b"2 ",
        b"",
        b"\t2",
        b"2;",
        b"2;a=",
        b"2;a b",
    ]:
        rejects(
            parser,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + size
            + b"\r\nok\r\n0\r\n\r\n",
            match="invalid chunk size|chunk size line",
        )


def test_chunk_size_overflow(parser: str) -> None:
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abcdef1\r\n",
        match="overflows",
    )
    # Leading zeros are not an overflow; the size is then bounded by the body limit.
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000002\r\nok\r\n0\r\n\r\n"
    assert drain(server(parser, data))[1:] == [Data(b"ok"), EndOfMessage()]
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        413,
        "chunked body too large",
    )


def test_chunk_missing_crlf(parser: str) -> None:
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfooXX0\r\n\r\n",
        match="improperly terminated chunk",
    )
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\n0\r\n\r\n",
        match="improperly terminated chunk",
    )
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfooX",
        match="improperly terminated chunk",
    )


def test_smuggling_obs_fold(parser: str) -> None:
    for fold in (b" ", b"\t"):
        rejects(
            parser,
            b"GET / HTTP/1.1\r\nHost: a\r\n" + fold + b"Transfer-Encoding: chunked\r\n\r\n",
            match="obs-fold",
        )


def test_smuggling_bare_lf(parser: str) -> None:
    rejects(parser, b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", match="bare LF")
    # Detected before the head could be complete.
    rejects(parser, b"GET / HTTP/1.1\nHost: a\n\n", match="bare LF")
    rejects(parser, b"GET / HTTP/1.1\r\nHost: a\n", match="bare LF")
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
        match="bare LF",
    )
    rejects(
        parser,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\n",
        match="bare LF",
    )


def test_smuggling_nul_in_header(parser: str) -> None:
    rejects(parser, b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", match="NUL")


def test_bare_cr(parser: str) -> None:
    rejects(parser, b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", match="bare CR")
    rejects(parser, b"GET /\r HTTP/1.1\r\n\r\n", match="request-target")


def test_whitespace_before_colon(parser: str) -> None:
    for ws in (b" ", b"\t"):
        rejects(
            parser,
            b"GET / HTTP/1.1\r\nContent-Length" + ws + b": 3\r\n\r\nabc",
            match="before colon",
        )


def test_control_characters_in_fields(parser: str) -> None:
    for ch in [1, 8, 11, 12, 27, 127]:
        rejects(
            parser,
            b"GET / HTTP/1.1\r\nX: a" + bytes([ch]) + b"b\r\n\r\n",
            match="control character",
        )
    rejects(parser, b"GET / HTTP/1.1\r\nX\x01: a\r\n\r\n", match="invalid header name")


def test_invalid_header_names(parser: str) -> None:
    for name in [b"Ho(st", b"a/b", b"\xe9", b'"x"', b"a[b]"]:
        rejects(parser, b"GET / HTTP/1.1\r\n" + name + b": a\r\n\r\n", match="invalid header name")
    rejects(parser, b"GET / HTTP/1.1\r\n: a\r\n\r\n", match="invalid header name")
    rejects(parser, b"GET / HTTP/1.0\r\nasdf\r\n\r\n", match="no colon in header line")


def test_invalid_request_lines(parser: str) -> None:
    for line in [
        b"asdf",
        b"GET /",
        b"GET  / HTTP/1.1",
        b"GET / HTTP/1.1 ",
        b" GET / HTTP/1.1",
        b"GET\t/ HTTP/1.1",
        b"GET / / HTTP/1.1",
    ]:
        rejects(parser, line + b"\r\n\r\n", match="Malformed HTTP request line")
    rejects(parser, b"FOO,BAR / HTTP/1.1\r\n\r\n", match="invalid method")
    rejects(parser, b"G(T / HTTP/1.1\r\n\r\n", match="invalid method")
    for target in [b"/a\x01", b"/a\x7f", b"/a\x00"]:
        rejects(parser, b"GET " + target + b" HTTP/1.1\r\n\r\n", match="request-target")
    for version in [b"HTTX/1.1", b"HTTP/1.1.1", b"http/1.1", b"HTTP/1", b"HTTP/11"]:
        rejects(parser, b"GET / " + version + b"\r\n\r\n", match="Malformed HTTP version")
    for version in [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0"]:
        rejects(parser, b"GET / " + version + b"\r\n\r\n", 505, "not supported")


def test_raw_non_ascii_target_is_taken_as_latin1(parser: str) -> None:
    # curl sends a URL typed with "é" as raw UTF-8; Tornado takes it.
    (req, _) = drain(server(parser, "GET /caf\u00e9?q=\u00e9 HTTP/1.1\r\n\r\n".encode()))
    assert isinstance(req, Request) and req.target == "/caf\u00c3\u00a9?q=\u00c3\u00a9"
    (req, _) = drain(server(parser, b"GET /\x80\xff HTTP/1.1\r\n\r\n"))
    assert isinstance(req, Request) and req.target == "/\x80\xff"


def test_http_1x_minor_versions_accepted(parser: str) -> None:
    (req, _) = drain(server(parser, b"GET / HTTP/1.2\r\n\r\n"))
    assert isinstance(req, Request) and req.version == "HTTP/1.2"


def test_content_length_not_digits(parser: str) -> None:
    for value in [b"+1", b"1_0", b"foo", b"-1", b"1.0", b"0x10", b"\xb2", b"2\xa0", b""]:
        rejects(
            parser,
            b"POST / HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n1234567890",
            match="Only integer Content-Length",
        )


def test_huge_content_length(parser: str) -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n"
    conn = server(parser, data)
    assert isinstance(conn.next_event(), Request)
    with pytest.raises(RemoteProtocolError, match="Content-Length too long"):
        conn.next_event()


def test_chunked_over_http10_is_accepted(parser: str) -> None:
    # Tornado accepts it and keeps the connection alive.
    data = (
        b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    conn = server(parser, data)
    assert drain(conn)[1:] == [EndOfMessage()]
    conn.send_response(200, "OK", [], b"x")
    assert conn.keep_alive


def test_receive_many_small_reads_of_a_large_head(parser: str) -> None:
    head = b"GET / HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 20000 + b"\r\n\r\n"
    conn = server(parser)
    for i in range(0, len(head), 7):
        conn.receive_data(head[i : i + 7])
        if i + 7 < len(head):
            assert conn.next_event() is NEED_DATA
    events = drain(conn)
    assert isinstance(events[0], Request) and len(events[0].headers[0][1]) == 20000


def test_auto_parser_selects_a_backend() -> None:
    conn = H1Connection("server", parser="auto")
    assert conn.parser in ("python", "httptools")
    assert conn.role == "server" and H1Connection("client").role == "client"
    assert conn.limits.max_header_size == 64 * 1024


def test_send_response_body_on_304_is_refused(parser: str) -> None:
    conn = server(parser, GET)
    drain(conn)
    with pytest.raises(LocalProtocolError, match="cannot have a body"):
        conn.send_response(304, "Not Modified", [], b"x")


def test_application_setting_both_framing_fields(parser: str) -> None:
    # As Tornado does: sent as given, delimited by Content-Length; the
    # client rejects it. We also close afterwards.
    conn = server(parser, GET)
    drain(conn)
    fields = [("Transfer-Encoding", "chunked"), ("Content-Length", "11")]
    out = conn.send_response(200, "OK", fields, b"Hello world")
    assert out == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 11\r\n"
        b"Connection: close\r\n\r\nHello world"
    )
    assert not conn.keep_alive


def test_send_response_start_joins_head_and_first_piece(parser: str) -> None:
    conn = server(parser, GET)
    drain(conn)
    fields = [("Content-Length", "5")]
    out = conn.send_response_start(200, "OK", fields, b"hel", (["5"], None, None))
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"
    assert conn.send_data(b"lo") == b"lo"
    assert conn.send_end() == b""
    assert conn.our_state == "IDLE" and conn.keep_alive


def test_send_response_start_takes_rendered_lines_and_checks_them(parser: str) -> None:
    conn = server(parser, GET)
    drain(conn)
    lines = ["Content-Length: 2", "X-A: 1"]
    out = conn.send_response_start(200, "OK", (), b"ok", (["2"], None, None), lines)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok"
    assert conn.send_end() == b""
    conn = server(parser, GET)
    drain(conn)
    # A CR or LF inside a rendered value is refused as it is in a pair.
    with pytest.raises(LocalProtocolError, match="invalid"):
        conn.send_response_start(200, "OK", (), b"", None, ["X-A: 1\r\nX-B: 2"])


def test_send_response_start_refuses_a_piece_over_the_length(parser: str) -> None:
    conn = server(parser, GET)
    drain(conn)
    with pytest.raises(LocalProtocolError, match="more data than Content-Length"):
        conn.send_response_start(200, "OK", [("Content-Length", "1")], b"ab", (["1"], None, None))


@pytest.mark.parametrize(
    ("fields", "known"),
    [
        # Framing fields the fast path does not take: the block is scanned.
        ([("Content-Length", " 2 ")], ([" 2 "], None, None)),
        ([("Content-Length", "2"), ("Connection", "close")], (["2"], None, ["close"])),
        # Two equal Content-Length fields (RFC 9110 §8.6 allows the list).
        ([("Content-Length", "2"), ("Content-Length", "2")], (["2", "2"], None, None)),
    ],
)
def test_send_response_start_general_framing(
    parser: str, fields: list[tuple[str, str]], known: tuple[object, object, object]
) -> None:
    conn = server(parser, GET)
    drain(conn)
    out = conn.send_response_start(200, "OK", fields, b"ok", known)  # type: ignore[arg-type]
    assert out.endswith(b"\r\n\r\nok")
    conn.send_end()
    assert conn.keep_alive == ("Connection" not in dict(fields))


def test_send_response_start_without_known_fields_finds_them(parser: str) -> None:
    conn = server(parser, GET)
    drain(conn)
    out = conn.send_response_start(200, "OK", [("Transfer-Encoding", "chunked")], b"ab")
    assert out.endswith(b"\r\n\r\n2\r\nab\r\n")
    assert conn.send_end() == b"0\r\n\r\n"


def test_has_input(parser: str) -> None:
    conn = server(parser, GET + b"GET /b HTTP/1.1\r\n")
    assert conn.has_input()
    assert isinstance(conn.next_event(), Request)
    assert isinstance(conn.next_event(), EndOfMessage)
    assert conn.has_input()  # the start of the next request
    conn2 = server(parser, GET)
    drain(conn2)
    assert not conn2.has_input()
    conn2.receive_data(b"")
    assert conn2.has_input()  # the EOF is there to report


def _exchange(conn: H1Connection) -> Request:
    event = conn.next_event()
    assert isinstance(event, Request)
    assert isinstance(conn.next_event(), EndOfMessage)
    conn.send_response(200, "OK", [], b"")
    return event


def test_a_repeated_head_parses_the_same_and_shares_nothing(parser: str) -> None:
    head = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
    conn = server(parser, head * 3 + b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n")
    first = _exchange(conn)
    first.headers.append(("X-Mutated", "1"))
    second = _exchange(conn)
    assert second == Request("GET", "/x", "HTTP/1.1", [("Host", "a"), ("Connection", "keep-alive")])
    assert second.headers is not first.headers
    assert _exchange(conn) == second
    assert _exchange(conn).target == "/y"
    assert conn.keep_alive


def test_a_repeated_head_keeps_its_framing(parser: str) -> None:
    head = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"
    conn = server(parser, head * 2)
    for _ in range(2):
        assert isinstance(conn.next_event(), Request)
        assert conn.next_event() == Data(b"ab")
        assert isinstance(conn.next_event(), EndOfMessage)
        conn.send_response(200, "OK", [], b"")
    assert conn.next_event() is NEED_DATA


def test_repeated_response_fields_are_still_checked_for_injection(parser: str) -> None:
    conn = server(parser, GET * 2)
    drain(conn)
    fields = [("A", "1"), ("B", "2")]
    conn.send_response_start(200, "OK", fields, b"", None)
    conn.send_end()
    drain(conn)
    # Same text as the block just sent, from one field with a CRLF inside.
    with pytest.raises(LocalProtocolError, match="invalid"):
        conn.send_response_start(200, "OK", [("A", "1\r\nB: 2")], b"", None)


def test_end_after_exchange_makes_the_response_close(parser: str) -> None:
    conn = server(parser, GET)
    assert [type(e) for e in drain(conn)] == [Request, EndOfMessage]
    assert conn.keep_alive
    conn.end_after_exchange()
    assert not conn.keep_alive
    head = conn.send_response(200, "OK", [("Content-Type", "text/plain")], b"x")
    assert b"\r\nConnection: close\r\n" in head
    assert conn.our_state == "MUST_CLOSE"


def test_allow_bare_lf_is_reported(parser: str) -> None:
    assert not H1Connection("server", parser=parser).allow_bare_lf
    assert H1Connection("server", parser=parser, allow_bare_lf=True).allow_bare_lf


def test_parsed_bytes_are_not_held_between_messages(parser: str) -> None:
    import sys

    # A fresh bytes object of its own, so that its reference count is ours.
    data = bytes(bytearray(GET))
    before = sys.getrefcount(data)
    conn = H1Connection("server", parser=parser)
    conn.receive_data(data)
    assert sys.getrefcount(data) == before + 1
    assert [type(e) for e in drain(conn)] == [Request, EndOfMessage]
    # An idle keep-alive connection keeps none of its last request's bytes.
    assert sys.getrefcount(data) == before
    conn.send_response(200, "OK", [], b"")
    conn.receive_data(GET + b"GET /b")
    assert [type(e) for e in drain(conn)] == [Request, EndOfMessage]
    assert conn.buffered == len(b"GET /b")
