"""Events, buffers and less common paths."""

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
    Request,
    Response,
)
from squall._h1._heads import HeadParser

from .conftest import client, drain, server


def test_events_compare_by_value_and_repr() -> None:
    req = Request("GET", "/", "HTTP/1.1", [("A", "b")])
    assert req == Request("GET", "/", "HTTP/1.1", [("A", "b")])
    assert req != Request("GET", "/x", "HTTP/1.1", [("A", "b")])
    assert "Request('GET', '/'" in repr(req)
    resp = Response("HTTP/1.1", 200, "OK", [])
    info = InformationalResponse("HTTP/1.1", 200, "OK", [])
    assert resp != info and info == InformationalResponse("HTTP/1.1", 200, "OK", [])
    assert repr(info).startswith("InformationalResponse(")
    assert repr(Data(b"x")) == "Data(b'x')" and Data(b"x") != Data(b"y")
    assert repr(EndOfMessage()) == "EndOfMessage([])"
    assert repr(ConnectionClosed(True)) == "ConnectionClosed(truncated=True)"
    assert repr(NEED_DATA) == "NEED_DATA" and repr(PAUSED) == "PAUSED"
    assert not hasattr(Data(b"x"), "__dict__")
    with pytest.raises(TypeError):
        hash(Data(b"x"))


def test_head_parser_interface() -> None:
    base = HeadParser(10)
    with pytest.raises(NotImplementedError):
        base.request(b"", 0, 0, 0)
    with pytest.raises(NotImplementedError):
        base.response(b"", 0, 0, 0)


def test_large_body_in_many_reads_uses_linear_buffering(parser: str) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB
    conn = server(parser, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    conn.next_event()
    wire = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    got = []
    for i in range(0, len(wire), 5000):
        conn.receive_data(wire[i : i + 5000])
        got += drain(conn)
    assert b"".join(e.data for e in got if isinstance(e, Data)) == body
    assert got[-1] == EndOfMessage()


def test_pipelined_data_piling_up_while_paused(parser: str) -> None:
    req = b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    conn = server(parser, req)
    assert [type(e) for e in drain(conn)] == [Request, Data, EndOfMessage]
    for _ in range(40):  # 200 KB buffered behind the paused request
        conn.receive_data(req)
    assert conn.buffered == 40 * len(req)
    total = 0
    while True:
        conn.send_response(200, "OK", [], b"")
        events = drain(conn)
        if not events:
            break
        total += 1
        assert b"".join(e.data for e in events if isinstance(e, Data)) == b"x" * 5000
        if total == 20:
            # More arrives once much of the buffer is consumed.
            conn.receive_data(req)
    assert total == 41
    assert conn.next_event() is NEED_DATA


def test_lenient_mode_limits(parser: str) -> None:
    limits = H1Limits(max_start_line=20, max_header_size=60)
    for data, status in [
        (b"GET /" + b"a" * 30 + b" HTTP/1.1\n\n", 414),
        (b"GET /" + b"a" * 30, 414),
        (b"GET / HTTP/1.1\nX: " + b"a" * 60 + b"\n\n", 431),
        (b"GET / HTTP/1.1\nX: " + b"a" * 60, 431),
        (b"GET /" + b"a" * 30 + b" HTTP/1.1\r\n\r\n", 414),
    ]:
        conn = server(parser, data, limits=limits, allow_bare_lf=True)
        with pytest.raises(RemoteProtocolError) as info:
            drain(conn)
        assert info.value.status_hint == status, data


def test_non_latin1_text_is_refused(parser: str) -> None:
    conn = server(parser, b"GET / HTTP/1.1\r\n\r\n")
    drain(conn)
    with pytest.raises(LocalProtocolError, match="latin-1"):
        conn.send_informational(103, "\u20ac")
    with pytest.raises(LocalProtocolError, match="latin-1"):
        conn.send_response_head(200, "\u20ac", [])
    assert conn.send_response(200, "\xe9t\xe9", [], b"").startswith(b"HTTP/1.1 200 \xe9t\xe9\r\n")
    with pytest.raises(LocalProtocolError, match="invalid character"):
        client(parser).send_request_head("GET", "/", [("X", "\u20ac")])


def test_reason_with_obs_text_and_tab(parser: str) -> None:
    conn = server(parser, b"GET / HTTP/1.1\r\n\r\n")
    drain(conn)
    out = conn.send_response(200, "A\tB\xa0", [], b"")
    assert out.startswith(b"HTTP/1.1 200 A\tB\xa0\r\n")


def test_chunked_trailers_from_the_client(parser: str) -> None:
    cli = client(parser)
    head = cli.send_request_head("POST", "/", [("Transfer-Encoding", "chunked")])
    wire = head + cli.send_data(b"abc") + cli.send_end([("Digest", "x"), ("Other", "y")])
    srv = server(parser, wire)
    assert drain(srv)[1:] == [Data(b"abc"), EndOfMessage([("Digest", "x"), ("Other", "y")])]


def test_101_from_server_before_body_end(parser: str) -> None:
    # The client is still sending a body when the server switches; the
    # switch happens once the body is complete.
    cli = client(parser)
    cli.send_request_head("POST", "/", [("Content-Length", "2"), ("Upgrade", "x")])
    cli.receive_data(b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n")
    assert [type(e) for e in drain(cli)] == [Response, EndOfMessage]
    assert not cli.switched
    cli.send_data(b"ok")
    cli.send_end()
    assert cli.switched


def test_upgrade_request_with_body_switches_after_body(parser: str) -> None:
    srv = server(
        parser, b"POST / HTTP/1.1\r\nUpgrade: x\r\nConnection: upgrade\r\nContent-Length: 2\r\n\r\n"
    )
    assert isinstance(srv.next_event(), Request)
    srv.send_response(101, "Switching", [("Upgrade", "x")])
    assert not srv.switched
    srv.receive_data(b"okNEW")
    assert drain(srv) == [Data(b"ok"), EndOfMessage()]
    assert srv.switched and srv.detach() == b"NEW"


def test_data_after_eof_is_refused(parser: str) -> None:
    conn = client(parser)
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")
    assert conn.next_event() == ConnectionClosed(False)


def test_bare_lf_in_trailers_same_error_in_one_read_or_many(parser: str) -> None:
    # Found by the mutation property: the whole message in one read used to
    # get the field-line diagnosis, byte by byte the trailer-section one.
    data = b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\nT: 1\r\n\r\n"
    errors = []
    for step in (len(data), 1):
        conn = server(parser)
        with pytest.raises(RemoteProtocolError) as info:
            for i in range(0, len(data), step):
                conn.receive_data(data[i : i + step])
                drain(conn)
        errors.append((str(info.value), info.value.status_hint))
    assert errors == [("Malformed HTTP message: bare LF in trailer section", 400)] * 2
