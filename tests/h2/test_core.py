"""squall._h2 without I/O: bytes in, events out, limits on a controlled clock."""

from __future__ import annotations

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import (  # noqa: E402
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from squall._h2 import (  # noqa: E402
    PREFACE,
    Data,
    Drained,
    EndOfStream,
    ErrorCode,
    GoAway,
    H2Connection,
    H2Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    StreamReset,
    Trailers,
)
from squall._h2._hpack import StatelessEncoder  # noqa: E402

REQUEST = [(":method", "GET"), (":path", "/x?y=1"), (":scheme", "https"), (":authority", "a.b")]


def client(settings: dict[int, int] | None = None) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    if settings:
        conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
    conn.initiate_connection()
    return conn


def pair(
    limits: H2Limits | None = None, settings: dict[int, int] | None = None
) -> tuple[H2Connection, h2.connection.H2Connection]:
    server = H2Connection(limits)
    server.initiate()
    c = client(settings)
    assert server.receive_data(c.data_to_send(), 0.0) == []
    c.receive_data(server.data_to_send())
    server.receive_data(c.data_to_send(), 0.0)  # the SETTINGS ack
    return server, c


def goaway_code(c: h2.connection.H2Connection, data: bytes) -> int | None:
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.ConnectionTerminated):
            return int(ev.error_code)
    return None


def test_request_events() -> None:
    server, c = pair()
    c.send_headers(1, REQUEST + [("cookie", "a=1"), ("cookie", "b=2"), ("x-k", "v")])
    c.send_data(1, b"body", end_stream=True)
    events = server.receive_data(c.data_to_send(), 0.0)
    kinds = [type(e) for e in events]
    assert kinds == [Request, Data, EndOfStream]
    req = events[0]
    assert isinstance(req, Request)
    assert (req.method, req.target, req.authority, req.scheme) == ("GET", "/x?y=1", "a.b", "https")
    assert ("x-k", "v") in req.headers
    assert ("cookie", "a=1; b=2") in req.headers
    data = events[1]
    assert isinstance(data, Data) and data.data == b"body" and data.flow_length == 4


def test_repeated_request_is_checked_once_and_its_fields_are_its_own() -> None:
    # A repeated head (the same HPACK bytes) gives an equal Request whose
    # fields list is a copy, so one request's handler cannot change another's.
    server, c = pair()
    head = REQUEST + [("user-agent", "x"), ("cookie", "a=1"), ("cookie", "b=2")]
    c.send_headers(1, head, end_stream=True)
    c.send_headers(3, head, end_stream=True)
    c.send_headers(5, head + [("x-new", "1")], end_stream=True)
    events = [e for e in server.receive_data(c.data_to_send(), 0.0) if isinstance(e, Request)]
    assert [e.stream_id for e in events] == [1, 3, 5]
    first, second, third = events
    assert server._last_raw is not None  # the memo is in use
    for attr in ("method", "target", "authority", "scheme", "headers", "content_length"):
        assert getattr(first, attr) == getattr(second, attr)
    assert first.headers is not second.headers
    assert ("cookie", "a=1; b=2") in second.headers
    assert ("x-new", "1") in third.headers and ("x-new", "1") not in second.headers


def test_response_roundtrip() -> None:
    server, c = pair()
    c.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(c.data_to_send(), 0.0)
    server.send_headers(1, 200, [("content-type", "text/plain"), ("x-long", "v" * 300)])
    assert server.send_data(1, b"hello", end_stream=True)
    events = c.receive_data(server.data_to_send())
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert list(response.headers or []) == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"x-long", b"v" * 300),
    ]
    data = next(e for e in events if isinstance(e, h2.events.DataReceived))
    assert data.data == b"hello"
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_stateless_encoder_decodes_with_hpack() -> None:
    fields = [
        (b":status", b"200"),
        (b":status", b"418"),
        (b"content-length", b"12"),
        (b"x-custom", b"z" * 200),
        (b"date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
    ]
    encoder = StatelessEncoder()
    block = encoder.encode(fields)
    assert block == encoder.encode(fields)  # memoized, same bytes
    assert hpack.Decoder().decode(block, raw=True) == fields
    assert block[0] == 0x88  # ":status: 200" is static entry 8


def test_flow_control_queues_and_drains() -> None:
    server, c = pair(settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    c.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(c.data_to_send(), 0.0)
    server.send_headers(1, 200, [])
    assert not server.send_data(1, b"0123456789abcdef", end_stream=True)
    assert server.pending(1) == 6
    events = c.receive_data(server.data_to_send())
    got = b"".join(e.data or b"" for e in events if isinstance(e, h2.events.DataReceived))
    assert got == b"0123456789"
    c.increment_flow_control_window(100, stream_id=1)
    events2 = server.receive_data(c.data_to_send(), 1.0)
    assert [type(e) for e in events2] == [Drained]
    assert server.pending(1) == 0
    events = c.receive_data(server.data_to_send())
    got = b"".join(e.data or b"" for e in events if isinstance(e, h2.events.DataReceived))
    assert got == b"abcdef"
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_consumed_gives_window_back() -> None:
    server, c = pair(H2Limits(initial_window_size=1000, connection_window_size=65535))
    c.send_headers(1, REQUEST)
    c.send_data(1, b"x" * 900)
    events = server.receive_data(c.data_to_send(), 0.0)
    assert c.local_flow_control_window(1) == 100
    data = events[-1]
    assert isinstance(data, Data)
    server.consumed(1, data.flow_length)
    c.receive_data(server.data_to_send())
    assert c.local_flow_control_window(1) == 1000


def test_closed_stream_send_is_local_error() -> None:
    server, c = pair()
    with pytest.raises(LocalProtocolError, match="stream 1 is closed"):
        server.send_data(1, b"x")


def test_client_reset_and_goaway_events() -> None:
    server, c = pair()
    c.send_headers(1, REQUEST)
    c.reset_stream(1, 8)
    c.close_connection()
    events = server.receive_data(c.data_to_send(), 0.0)
    assert [type(e) for e in events] == [Request, StreamReset, GoAway]
    reset = events[1]
    assert isinstance(reset, StreamReset) and reset.error_code == 8 and reset.remote


def test_bad_preface_is_remote_error() -> None:
    server = H2Connection()
    server.initiate()
    with pytest.raises(RemoteProtocolError):
        server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)


def raw(frame: object) -> bytes:
    return frame.serialize()  # type: ignore[attr-defined,no-any-return]


def flood(server: H2Connection, frames: list[bytes], now: float = 0.0) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(b"".join(frames), now)
    return info.value


def test_ping_flood() -> None:
    server, c = pair(H2Limits(max_pings_per_second=5))
    exc = flood(server, [raw(PingFrame(0, opaque_data=b"12345678")) for _ in range(50)])
    assert exc.error_code == ErrorCode.ENHANCE_YOUR_CALM
    assert "PING" in str(exc)
    assert goaway_code(c, server.data_to_send()) == ErrorCode.ENHANCE_YOUR_CALM


def test_pings_within_the_rate_pass() -> None:
    server, c = pair(H2Limits(max_pings_per_second=5))
    for second in range(10):
        server.receive_data(raw(PingFrame(0, opaque_data=b"12345678")) * 4, float(second))
    acks = [
        e for e in c.receive_data(server.data_to_send()) if isinstance(e, h2.events.PingAckReceived)
    ]
    assert len(acks) == 40


def test_settings_flood() -> None:
    server, _ = pair(H2Limits(max_settings_per_second=3))
    exc = flood(server, [raw(SettingsFrame(0)) for _ in range(20)])
    assert "SETTINGS" in str(exc)


def test_window_update_flood() -> None:
    server, _ = pair(H2Limits(max_window_updates_per_second=10))
    exc = flood(server, [raw(WindowUpdateFrame(0, window_increment=1)) for _ in range(100)])
    assert "WINDOW_UPDATE" in str(exc)


def test_empty_frame_flood() -> None:
    server, c = pair(H2Limits(max_empty_frames_per_second=10))
    c.send_headers(1, REQUEST)
    server.receive_data(c.data_to_send(), 0.0)
    exc = flood(server, [raw(DataFrame(1)) for _ in range(50)])
    assert "empty" in str(exc)


def test_priority_flood() -> None:
    server, _ = pair(H2Limits(max_empty_frames_per_second=10))
    exc = flood(server, [raw(PriorityFrame(i * 2 + 1)) for _ in range(50) for i in range(1)])
    assert "PRIORITY" in str(exc)


def test_rapid_reset() -> None:
    server, c = pair(H2Limits(max_resets_per_second=20))
    for i in range(200):
        c.send_headers(2 * i + 1, REQUEST)
        c.reset_stream(2 * i + 1)
    exc = flood(server, [c.data_to_send()])
    assert "resets" in str(exc)
    # Refused before h2 parsed anything: no request reached the application.
    assert server.receive_data(b"", 0.0) == []


def test_refusals_count_as_resets() -> None:
    server, c = pair(H2Limits(max_resets_per_second=3))
    for sid in (1, 3, 5):
        server.refuse(sid, 0.0)
    with pytest.raises(RemoteProtocolError, match="refused"):
        server.refuse(7, 0.0)


def test_continuation_flood() -> None:
    server, c = pair(H2Limits(max_continuation_frames=8))
    block = hpack.Encoder().encode(REQUEST)
    frames = [raw(HeadersFrame(1, data=block))]
    frames += [raw(ContinuationFrame(1, data=b"")) for _ in range(100)]
    exc = flood(server, frames)
    assert "CONTINUATION" in str(exc)


def test_header_block_too_large() -> None:
    server, c = pair(H2Limits(max_header_list_size=4096))
    block = hpack.Encoder().encode(REQUEST)
    frames = [raw(HeadersFrame(1, data=block))]
    frames += [raw(ContinuationFrame(1, data=b"\x00" * 1000)) for _ in range(5)]
    exc = flood(server, frames)
    assert "header block larger than 4096" in str(exc)


def test_hpack_bomb() -> None:
    # One 4000-byte field in the dynamic table, then referenced 1000 times:
    # a few KB on the wire that would decode to 4 MB.
    server, c = pair(H2Limits(max_header_list_size=16384))
    encoder = hpack.Encoder()
    first = encoder.encode(REQUEST + [("x-bomb", "b" * 4000)])
    refs = b"\xbe" * 1000  # indexed field 62: the newest dynamic-table entry
    block = encoder.encode(REQUEST) + refs
    frames = [raw(HeadersFrame(1, data=first, flags=["END_HEADERS", "END_STREAM"]))]
    frames.append(raw(HeadersFrame(3, data=block, flags=["END_HEADERS", "END_STREAM"])))
    exc = flood(server, frames)
    assert exc.error_code == ErrorCode.ENHANCE_YOUR_CALM
    assert "header list larger than 16384" in str(exc)


def test_frames_split_across_reads_are_counted() -> None:
    server, _ = pair(H2Limits(max_pings_per_second=5))
    data = b"".join(raw(PingFrame(0, opaque_data=b"12345678")) for _ in range(20))
    with pytest.raises(RemoteProtocolError):
        for i in range(0, len(data), 5):
            server.receive_data(data[i : i + 5], 0.0)


def test_upgrade_settings() -> None:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    header = c.initiate_upgrade_connection()
    assert header is not None
    server = H2Connection()
    server.initiate(header.decode())
    server.send_headers(1, 200, [], end_stream=True)
    c.receive_data(server.data_to_send())  # h2 accepts our SETTINGS and the response
    with pytest.raises(RemoteProtocolError, match="HTTP2-Settings"):
        H2Connection().initiate("!!!not base64!!!")


def test_limits_validation() -> None:
    with pytest.raises(ValueError, match="max_concurrent_streams"):
        H2Limits(max_concurrent_streams=0)
    with pytest.raises(ValueError, match="send_timeout"):
        H2Limits(send_timeout=0)
    assert "max_concurrent_streams=100" in repr(H2Limits())


def test_preface_constant() -> None:
    assert PREFACE == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (REQUEST + [("X-Upper", "v")], "invalid field name"),
        (REQUEST + [("connection", "close")], "connection-specific"),
        (REQUEST + [("te", "gzip")], "connection-specific"),
        (REQUEST + [("x-bad", "a\r\nb")], "invalid value"),
        (REQUEST + [("x-bad", " padded")], "invalid value"),
        ([("x-first", "1")] + REQUEST, "after regular fields"),
        (REQUEST + [(":method", "POST")], "repeated pseudo-header"),
        (REQUEST[:1] + REQUEST[2:], "no :path"),
        ([(":method", "CONNECT"), (":authority", "a:1"), (":path", "/")], "CONNECT"),
        (REQUEST + [(":status", "200")], "unexpected"),
    ],
)
def test_malformed_request_head_resets_the_stream(
    fields: list[tuple[str, str]], problem: str
) -> None:
    server, c = pair()
    c.config.validate_outbound_headers = False
    c.config.normalize_outbound_headers = False
    c.send_headers(1, fields, end_stream=True)
    assert server.receive_data(c.data_to_send(), 0.0) == []
    assert len(server.malformed) == 1
    assert server.malformed[0][0] == 1 and problem in server.malformed[0][1]
    resets = [
        e for e in c.receive_data(server.data_to_send()) if isinstance(e, h2.events.StreamReset)
    ]
    assert [(r.stream_id, r.error_code) for r in resets] == [(1, ErrorCode.PROTOCOL_ERROR)]
    # The connection goes on.
    c.send_headers(3, REQUEST, end_stream=True)
    events = server.receive_data(c.data_to_send(), 0.0)
    assert [type(e) for e in events] == [Request, EndOfStream]


def test_connect_request() -> None:
    server, c = pair()
    block = hpack.Encoder().encode([(":method", "CONNECT"), (":authority", "example.com:443")])
    events = server.receive_data(raw(HeadersFrame(1, data=block, flags=["END_HEADERS"])), 0.0)
    req = events[0]
    assert isinstance(req, Request)
    assert (req.method, req.target, req.authority) == (
        "CONNECT",
        "example.com:443",
        "example.com:443",
    )


# -- protocol rules of our own framing (formerly h2's), frame by frame ----------------


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    """One frame, built by hand so that it can break any rule."""
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + payload


def frames_out(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """The server's output cut into (type, flags, stream, payload)."""
    out = []
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        kind, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5 : pos + 9], "big")
        out.append((kind, flags, sid, data[pos + 9 : pos + 9 + length]))
        pos += 9 + length
    return out


def block(fields: list[tuple[str, str]]) -> bytes:
    return hpack.Encoder().encode(fields)


GET = block(REQUEST)
HEADERS_END = frame(1, 0x5, 1, GET)  # END_STREAM | END_HEADERS
HEADERS_OPEN = frame(1, 0x4, 1, GET)  # END_HEADERS: a body follows


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([frame(0, 0, 0, b"x")], ErrorCode.PROTOCOL_ERROR),  # DATA on stream 0
        ([frame(0, 0, 5, b"x")], ErrorCode.PROTOCOL_ERROR),  # DATA on an idle stream
        ([frame(1, 0x5, 0, GET)], ErrorCode.PROTOCOL_ERROR),  # HEADERS on stream 0
        ([frame(1, 0x5, 2, GET)], ErrorCode.PROTOCOL_ERROR),  # an even stream
        # RFC 9113 §5.1.1: a new stream below the highest opened.
        ([frame(1, 0x5, 3, GET), frame(1, 0x5, 1, GET)], ErrorCode.PROTOCOL_ERROR),
        ([frame(1, 0x5, 1, GET), frame(1, 0x5, 7, GET), frame(1, 0x5, 3, GET)], 1),
        ([frame(2, 0, 3, b"\x00\x00\x00\x03\x10")], ErrorCode.PROTOCOL_ERROR),  # idle, on itself
        ([frame(9, 0x4, 1, GET)], ErrorCode.PROTOCOL_ERROR),  # CONTINUATION alone
        ([frame(1, 0x1, 1, GET), frame(6, 0, 0, b"12345678")], ErrorCode.PROTOCOL_ERROR),
        ([frame(1, 0x1, 1, GET), frame(9, 0x4, 3, b"")], ErrorCode.PROTOCOL_ERROR),
        ([frame(1, 0xD, 1, b"\xff" + GET)], ErrorCode.PROTOCOL_ERROR),  # padding > frame
        ([frame(1, 0x25, 1, b"\x00\x00")], ErrorCode.FRAME_SIZE_ERROR),  # short priority
        ([frame(1, 0x5, 1, b"\xff\xff\xff\xff\x0f")], ErrorCode.COMPRESSION_ERROR),
        ([frame(4, 0, 0, b"\x00\x02\x00\x00\x00")], ErrorCode.FRAME_SIZE_ERROR),  # not 6n
        ([frame(4, 0x1, 0, b"\x00\x02\x00\x00\x00\x00")], ErrorCode.FRAME_SIZE_ERROR),  # ack+body
        ([frame(4, 0, 1, b"")], ErrorCode.PROTOCOL_ERROR),  # SETTINGS on a stream
        ([frame(4, 0, 0, b"\x00\x02\x00\x00\x00\x02")], ErrorCode.PROTOCOL_ERROR),  # push=2
        ([frame(4, 0, 0, b"\x00\x04\x80\x00\x00\x00")], ErrorCode.FLOW_CONTROL_ERROR),
        ([frame(4, 0, 0, b"\x00\x05\x00\x00\x10\x00")], ErrorCode.PROTOCOL_ERROR),  # frame 4096
        ([frame(6, 0, 0, b"1234")], ErrorCode.FRAME_SIZE_ERROR),  # PING of 4 bytes
        ([frame(6, 0, 1, b"12345678")], ErrorCode.PROTOCOL_ERROR),  # PING on a stream
        ([frame(8, 0, 0, b"\x00\x00\x00\x00")], ErrorCode.PROTOCOL_ERROR),  # WINDOW_UPDATE 0
        ([frame(8, 0, 0, b"\x7f\xff\xff\xff")], ErrorCode.FLOW_CONTROL_ERROR),  # overflow
        ([frame(8, 0, 0, b"\x00\x01")], ErrorCode.FRAME_SIZE_ERROR),
        ([frame(8, 0, 7, b"\x00\x00\x00\x01")], ErrorCode.PROTOCOL_ERROR),  # idle stream
        ([frame(3, 0, 1, b"\x00\x00\x00\x08")], ErrorCode.PROTOCOL_ERROR),  # RST on idle
        ([frame(3, 0, 0, b"\x00\x00\x00\x08")], ErrorCode.PROTOCOL_ERROR),  # RST on stream 0
        ([HEADERS_OPEN, frame(3, 0, 1, b"\x00\x08")], ErrorCode.FRAME_SIZE_ERROR),
        ([frame(5, 0x4, 1, b"\x00\x00\x00\x02" + GET)], ErrorCode.PROTOCOL_ERROR),  # PUSH
        ([frame(2, 0, 0, b"\x00\x00\x00\x01\x10")], ErrorCode.PROTOCOL_ERROR),  # PRIORITY on 0
        ([frame(7, 0, 1, b"\x00" * 8)], ErrorCode.PROTOCOL_ERROR),  # GOAWAY on a stream
        ([frame(0, 0, 1, b"x" * 20000)], ErrorCode.FRAME_SIZE_ERROR),  # over 16 KiB
        ([HEADERS_OPEN, frame(0, 0, 1, b"x" * 16384) * 5], ErrorCode.FLOW_CONTROL_ERROR),
    ],
)
def test_connection_errors(frames: list[bytes], code: int) -> None:
    server, _ = pair(H2Limits(connection_window_size=65535))
    server.data_to_send()
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(b"".join(frames), 0.0)
    assert info.value.error_code == code
    goaways = [f for f in frames_out(server.data_to_send()) if f[0] == 7]
    assert len(goaways) == 1
    assert int.from_bytes(goaways[0][3][4:8], "big") == code
    # Nothing more is read.
    assert server.receive_data(HEADERS_END, 0.0) == []


@pytest.mark.parametrize(
    ("frames", "code", "problem"),
    [
        # Content-Length against the DATA frames (RFC 9113 §8.1.1).
        (
            [frame(1, 0x4, 1, block(REQUEST + [("content-length", "3")])), frame(0, 1, 1, b"ab")],
            ErrorCode.PROTOCOL_ERROR,
            None,
        ),
        (
            [frame(1, 0x4, 1, block(REQUEST + [("content-length", "1")])), frame(0, 1, 1, b"ab")],
            ErrorCode.PROTOCOL_ERROR,
            None,
        ),
        (
            [frame(1, 0x5, 1, block(REQUEST + [("content-length", "5")]))],
            ErrorCode.PROTOCOL_ERROR,
            "Content-Length but no body",
        ),
        # Trailers: END_STREAM, no pseudo-headers, valid fields (§8.1, §8.2).
        (
            [HEADERS_OPEN, frame(1, 0x4, 1, block([("x-t", "1")]))],
            ErrorCode.PROTOCOL_ERROR,
            "without END_STREAM",
        ),
        (
            [HEADERS_OPEN, frame(1, 0x5, 1, block([(":path", "/")]))],
            ErrorCode.PROTOCOL_ERROR,
            "pseudo-header",
        ),
        (
            [HEADERS_OPEN, frame(1, 0x5, 1, block([("X-Up", "1")]))],
            ErrorCode.PROTOCOL_ERROR,
            "invalid field name",
        ),
        (
            [HEADERS_OPEN, frame(1, 0x5, 1, block([("x-t", "a\nb")]))],
            ErrorCode.PROTOCOL_ERROR,
            "invalid value",
        ),
        (
            [HEADERS_OPEN, frame(1, 0x5, 1, block([("connection", "close")]))],
            ErrorCode.PROTOCOL_ERROR,
            "connection-specific",
        ),
        # A stream the client already ended gets no more DATA.
        ([HEADERS_END, frame(0, 1, 1, b"late")], ErrorCode.STREAM_CLOSED, None),
        # Window and priority errors of one stream.
        ([HEADERS_OPEN, frame(8, 0, 1, b"\x00\x00\x00\x00")], ErrorCode.PROTOCOL_ERROR, None),
        ([HEADERS_OPEN, frame(8, 0, 1, b"\x7f\xff\xff\xff")], ErrorCode.FLOW_CONTROL_ERROR, None),
        ([HEADERS_OPEN, frame(2, 0, 1, b"\x00\x00\x00\x01\x10")], ErrorCode.PROTOCOL_ERROR, None),
        ([HEADERS_OPEN, frame(2, 0, 1, b"\x00\x00")], ErrorCode.FRAME_SIZE_ERROR, None),
        (
            [frame(1, 0x25, 1, b"\x00\x00\x00\x01\x10" + GET)],
            ErrorCode.PROTOCOL_ERROR,
            "depends on itself",
        ),
    ],
)
def test_stream_errors(frames: list[bytes], code: int, problem: str | None) -> None:
    server, _ = pair()
    server.data_to_send()
    events = server.receive_data(b"".join(frames), 0.0)
    resets = [f for f in frames_out(server.data_to_send()) if f[0] == 3]
    assert [(f[2], int.from_bytes(f[3], "big")) for f in resets] == [(1, code)]
    if problem is not None:
        assert [sid for sid, _ in server.malformed] == [1]
        assert problem in server.malformed[0][1]
    # The application hears of the stream's end only as a reset.
    assert not any(isinstance(e, Trailers) for e in events)
    if any(isinstance(e, Request) for e in events):
        assert isinstance(events[-1], StreamReset) and events[-1].error_code == code
    # The connection goes on.
    events = server.receive_data(frame(1, 0x5, 3, GET), 0.0)
    assert [type(e) for e in events] == [Request, EndOfStream]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (REQUEST + [("x-nul", "a\x00b")], "invalid value"),
        (REQUEST + [("x-trailing", "v ")], "invalid value"),
        (REQUEST + [("", "v")], "invalid field name"),
        (REQUEST + [("x y", "v")], "invalid field name"),
        (REQUEST + [("x:y", "v")], "invalid field name"),
        (REQUEST + [("keep-alive", "5")], "connection-specific"),
        (REQUEST + [("transfer-encoding", "chunked")], "connection-specific"),
        (REQUEST + [("upgrade", "h2c")], "connection-specific"),
        (REQUEST + [("proxy-connection", "x")], "connection-specific"),
        (REQUEST + [(":protocol", "websocket")], "unexpected"),
        ([(":method", "GET"), (":path", ""), (":scheme", "https")], "no :path"),
        ([(":method", "GET"), (":path", "x"), (":scheme", "https")], "invalid :path"),
        ([(":path", "/"), (":scheme", "https")], "no :method"),
        ([(":method", "GET"), (":path", "/"), (":scheme", "https")], "no :authority or host"),
        (REQUEST + [("host", "other.example")], "differs from :authority"),
    ],
)
def test_more_malformed_heads(fields: list[tuple[str, str]], problem: str) -> None:
    server, _ = pair()
    server.data_to_send()
    encoder = hpack.Encoder()
    assert server.receive_data(frame(1, 0x5, 1, encoder.encode(fields)), 0.0) == []
    assert problem in server.malformed[0][1]
    resets = [f for f in frames_out(server.data_to_send()) if f[0] == 3]
    assert [(f[2], int.from_bytes(f[3], "big")) for f in resets] == [(1, ErrorCode.PROTOCOL_ERROR)]


def test_well_formed_heads_pass() -> None:
    server, _ = pair()
    fields = [(":method", "OPTIONS"), (":path", "*"), (":scheme", "http"), ("host", "a.b")]
    fields += [("te", "trailers"), ("x-empty", ""), ("x-inner", "a b\tc")]
    events = server.receive_data(frame(1, 0x5, 1, block(fields)), 0.0)
    request = events[0]
    assert isinstance(request, Request) and request.target == "*" and request.authority is None
    assert ("x-empty", "") in request.headers and ("x-inner", "a b\tc") in request.headers


def test_request_trailers() -> None:
    server, _ = pair()
    data = frame(1, 0x4, 1, block(REQUEST + [("content-length", "2"), ("te", "trailers")]))
    data += frame(0, 0, 1, b"ok") + frame(1, 0x5, 1, block([("x-checksum", "abc")]))
    events = server.receive_data(data, 0.0)
    assert [type(e) for e in events] == [Request, Data, Trailers, EndOfStream]
    trailers = events[2]
    assert isinstance(trailers, Trailers) and trailers.headers == [("x-checksum", "abc")]


def test_response_trailers_after_queued_data() -> None:
    server, c = pair(settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4})
    c.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(c.data_to_send(), 0.0)
    server.send_headers(1, 200, [("trailer", "x-sum")])
    assert not server.send_data(1, b"abcdef")
    assert not server.send_trailers(1, [("x-sum", "6")])
    events = c.receive_data(server.data_to_send())
    assert not any(isinstance(e, h2.events.TrailersReceived) for e in events)
    c.increment_flow_control_window(10, stream_id=1)
    assert [type(e) for e in server.receive_data(c.data_to_send(), 0.0)] == [Drained]
    events = c.receive_data(server.data_to_send())
    got = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
    assert got and list(got[0].headers or []) == [(b"x-sum", b"6")]
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)
    with pytest.raises(LocalProtocolError, match="closed"):
        server.send_trailers(1, [("x", "y")])


def test_data_after_our_reset_is_dropped_and_window_returned() -> None:
    server, _ = pair(H2Limits(connection_window_size=65535))
    server.receive_data(HEADERS_OPEN, 0.0)
    server.reset(1, ErrorCode.CANCEL)
    server.data_to_send()
    # In flight before the client saw the reset: dropped, no second reset.
    for _ in range(4):
        assert server.receive_data(frame(0, 0, 1, b"x" * 16000), 0.0) == []
    out = frames_out(server.data_to_send())
    assert [f[0] for f in out] == [8]  # the connection's window given back, once
    assert server.receive_data(frame(1, 0x5, 1, block([("x-t", "1")])), 0.0) == []


def test_table_size_change_is_acknowledged_in_the_next_block() -> None:
    server, c = pair()
    server.data_to_send()
    server.receive_data(frame(4, 0, 0, b"\x00\x01\x00\x00\x00\x00"), 0.0)  # table size 0
    server.receive_data(HEADERS_END, 0.0)
    server.send_headers(1, 200, [], end_stream=True)
    heads = [f for f in frames_out(server.data_to_send()) if f[0] == 1]
    assert heads[0][3] == b"\x20\x88"  # size update to 0, then ":status 200"


def test_large_head_goes_out_in_continuation_frames() -> None:
    server, c = pair()
    c.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(c.data_to_send(), 0.0)
    server.send_headers(1, 200, [("x-big", "v" * 40000)], end_stream=True)
    out = frames_out(server.data_to_send())
    kinds = [(f[0], f[1]) for f in out if f[0] in (1, 9)]
    assert kinds == [(1, 0x1), (9, 0), (9, 0x4)]
    events = c.receive_data(b"".join(frame(*f) for f in out))
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert (b"x-big", b"v" * 40000) in list(response.headers or [])


def test_padded_data_and_window_before_the_settings_ack() -> None:
    server = H2Connection(H2Limits(initial_window_size=1000))
    server.initiate()
    c = client()
    server.receive_data(c.data_to_send(), 0.0)
    # The client has not acknowledged our SETTINGS: it may still send
    # up to the default 65,535 bytes on a stream.
    data = HEADERS_OPEN + frame(0, 0x8, 1, b"\x03" + b"y" * 10000 + b"\x00" * 3)
    events = server.receive_data(data, 0.0)
    assert [type(e) for e in events] == [Request, Data]
    body = events[1]
    assert isinstance(body, Data) and body.data == b"y" * 10000 and body.flow_length == 10004


def test_fields_seen_before_are_still_checked_in_place() -> None:
    server, _ = pair()
    enc = hpack.Encoder()
    ok = REQUEST + [("x-first", "1"), ("user-agent", "ua")]
    events = server.receive_data(frame(1, 0x5, 1, enc.encode(ok)), 0.0)
    assert isinstance(events[0], Request) and ("x-first", "1") in events[0].headers
    # The same field again, now before the pseudo-headers: malformed.
    bad = [("x-first", "1")] + REQUEST
    assert server.receive_data(frame(1, 0x5, 3, enc.encode(bad)), 0.0) == []
    assert "after regular fields" in server.malformed[-1][1]
    events = server.receive_data(frame(1, 0x5, 5, enc.encode(ok)), 0.0)
    assert isinstance(events[0], Request) and events[0].headers[-1] == ("user-agent", "ua")


def test_header_block_in_continuation_frames() -> None:
    server, _ = pair()
    fields = REQUEST + [("cookie", "a=" + "x" * 300), ("x-k", "v")]
    whole = block(fields)
    data = frame(1, 0x1, 1, whole[:10]) + frame(9, 0, 1, whole[10:200])
    data += frame(9, 0x4, 1, whole[200:])
    events = server.receive_data(data, 0.0)
    assert [type(e) for e in events] == [Request, EndOfStream]
    assert isinstance(events[0], Request) and ("x-k", "v") in events[0].headers


def test_stream_window_exceeded_padding_and_late_end() -> None:
    server, _ = pair(H2Limits(initial_window_size=65535))
    server.data_to_send()
    # Padding only: no Data event, the window comes back at once.
    events = server.receive_data(HEADERS_OPEN + frame(0, 0x8, 1, b"\x04" + b"\x00" * 4), 0.0)
    assert [type(e) for e in events] == [Request]
    # The response ends first; the request's end afterwards closes the stream.
    server.send_headers(1, 200, [], end_stream=True)
    events = server.receive_data(frame(0, 0x1, 1, b""), 0.0)
    assert [type(e) for e in events] == [EndOfStream]
    with pytest.raises(LocalProtocolError):
        server.send_data(1, b"x")
    # A stream's own window exceeded: that stream is reset, not the connection.
    server.receive_data(frame(1, 0x4, 3, GET), 0.0)
    server.data_to_send()
    events = server.receive_data(frame(0, 0, 3, b"y" * 16000) * 5, 0.0)
    assert isinstance(events[-1], StreamReset) and events[-1].error_code == 3
    out = frames_out(server.data_to_send())
    assert (3, 3, int.to_bytes(3, 4, "big")) in [(f[0], f[2], f[3]) for f in out]


def test_limits_on_header_fragments_and_empty_continuations() -> None:
    server, _ = pair(H2Limits(max_header_list_size=100))
    exc = flood(server, [frame(1, 0x5, 1, b"\x00" * 101)])
    assert exc.too_large and "header block larger than 100" in str(exc)
    server, _ = pair(H2Limits(max_empty_frames_per_second=5))
    exc = flood(server, [frame(1, 0x1, 1, GET)] + [frame(9, 0, 1, b"")] * 20)
    assert "empty" in str(exc)


def test_streams_after_our_goaway_are_not_taken() -> None:
    server, _ = pair()
    server.receive_data(frame(1, 0x5, 1, GET), 0.0)
    server.goaway(ErrorCode.NO_ERROR, "bye")
    server.goaway(ErrorCode.NO_ERROR, "twice")  # one GOAWAY only
    goaways = [f for f in frames_out(server.data_to_send()) if f[0] == 7]
    assert len(goaways) == 1 and goaways[0][3][:4] == b"\x00\x00\x00\x01"
    assert server.receive_data(frame(1, 0x5, 3, GET), 0.0) == []
    refused = [f for f in frames_out(server.data_to_send()) if f[0] == 3]
    assert [(f[2], int.from_bytes(f[3], "big")) for f in refused] == [(3, ErrorCode.REFUSED_STREAM)]
    # Its body, already on the way, is dropped quietly.
    assert server.receive_data(frame(0, 0x1, 3, b"late"), 0.0) == []
    assert [f[0] for f in frames_out(server.data_to_send())] == []
    # Stream 1 goes on.
    server.send_headers(1, 200, [], end_stream=True)
    assert [f[0] for f in frames_out(server.data_to_send())] == [1]


def test_trailer_edge_cases() -> None:
    server, _ = pair()
    # Trailers on a stream the client already ended.
    events = server.receive_data(HEADERS_END + frame(1, 0x5, 1, block([("x", "1")])), 0.0)
    assert isinstance(events[-1], StreamReset) and events[-1].error_code == 5
    # Trailers before all the declared body.
    head = frame(1, 0x4, 3, block(REQUEST + [("content-length", "5")]))
    events = server.receive_data(head + frame(0, 0, 3, b"ab") + frame(1, 0x5, 3, b""), 0.0)
    assert "shorter than Content-Length" in server.malformed[-1][1]
    # Empty trailers just end the stream; two Content-Lengths are left to the driver.
    head = frame(1, 0x4, 5, block(REQUEST + [("content-length", "1"), ("content-length", "2")]))
    events = server.receive_data(head + frame(0, 0, 5, b"abc") + frame(1, 0x5, 5, b""), 0.0)
    assert [type(e) for e in events] == [Request, Data, EndOfStream]


def test_settings_changes_move_the_windows() -> None:
    server, c = pair()
    c.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(c.data_to_send(), 0.0)
    server.send_headers(1, 200, [])
    assert server.send_data(1, b"a" * 1000)
    server.data_to_send()
    # The client shrinks its initial window below what was sent: negative.
    server.receive_data(frame(4, 0, 0, b"\x00\x04\x00\x00\x00\x64"), 0.0)
    assert not server.send_data(1, b"b" * 50)
    assert not server.end_stream(1)
    # Growing it again lets the queue and the end go.
    events = server.receive_data(frame(4, 0, 0, b"\x00\x04\x00\x01\x00\x00"), 0.0)
    assert [type(e) for e in events] == [Drained]
    out = frames_out(server.data_to_send())
    data = [f for f in out if f[0] == 0]
    assert data[-1][1] & 0x1 and b"".join(f[3] for f in data) == b"b" * 50
    with pytest.raises(LocalProtocolError, match="closed"):
        server.send_trailers(1, [])
    # SETTINGS acks: a second one changes nothing.
    server.receive_data(frame(4, 0x1, 0, b""), 0.0)
    exc = flood(server, [frame(7, 0, 0, b"\x00\x00")])
    assert exc.error_code == ErrorCode.FRAME_SIZE_ERROR


def test_smaller_window_than_the_default_applies_at_the_ack() -> None:
    server = H2Connection(H2Limits(initial_window_size=1000))
    server.initiate()
    server.receive_data(PREFACE + frame(4, 0, 0, b"") + HEADERS_OPEN, 0.0)
    # Opened before the ack: the default window; after it, ours.
    server.receive_data(frame(0, 0, 1, b"z" * 1500), 0.0)
    server.receive_data(frame(4, 0x1, 0, b""), 0.0)
    events = server.receive_data(frame(0, 0, 1, b"z"), 0.0)
    assert isinstance(events[-1], StreamReset) and events[-1].error_code == 3


def test_queue_stops_when_the_connection_window_is_spent() -> None:
    server, c = pair()
    for sid in (1, 3):
        c.send_headers(sid, REQUEST, end_stream=True)
    server.receive_data(c.data_to_send(), 0.0)
    server.data_to_send()
    for sid in (1, 3):
        server.send_headers(sid, 200, [])
        server.send_data(sid, b"q" * 40000, end_stream=True)
    assert server.pending(1) + server.pending(3) == 80000 - 65535
    events = server.receive_data(frame(8, 0, 0, b"\x00\x00\x03\xe8"), 0.0)  # 1,000 more
    assert events == []  # still not enough for either stream's rest


def test_many_resets_are_remembered_within_a_bound() -> None:
    server, _ = pair(H2Limits(max_concurrent_streams=1, max_resets_per_second=1000))
    for sid in range(1, 400, 2):
        server.receive_data(frame(1, 0x5, sid, GET), 0.0)
        server.reset(sid)
    assert len(server._reset_by_us) <= 2 * 1 + 100 + 1
    server.data_to_send()
    exc = flood(server, [frame(6, 0, 0, b"1234")])
    assert exc.error_code == ErrorCode.FRAME_SIZE_ERROR
    server.reset(1)  # after the connection failed: nothing
    assert all(f[0] == 7 for f in frames_out(server.data_to_send()))


def test_memos_keep_only_short_fields() -> None:
    server, c = pair()
    for i in range(20):
        sid = 2 * i + 1
        big = f"{i}-" + "v" * 5000
        c.send_headers(sid, REQUEST + [("x-big", big), ("x-small", "s")], end_stream=True)
        events = server.receive_data(c.data_to_send(), 0.0)
        assert isinstance(events[0], Request) and ("x-big", big) in events[0].headers
        server.send_headers(sid, 200, [(b"x-echo", big.encode()), (b"x-s", b"1")], True)
        c.receive_data(server.data_to_send())
    assert all(len(value) <= 512 for _, value in server._known_fields)
    assert ("x-small", "s") in server._known_fields
    assert all(len(raw) <= 256 for raw in server._decoder._memo)
    assert all(len(enc) <= 256 for enc in server._encoder._memo.values())
    assert (b"x-s", b"1") in server._encoder._memo


# Heads as the ASGI driver renders them for HTTP/1.1, and the fields HTTP/2
# carries for each (lowercase names, connection-specific fields left out).
RENDERED = [
    (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
        b"Date: Tue, 24 Nov 2026 02:00:00 GMT\r\n\r\n",
        [
            (b":status", b"200"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"12"),
            (b"date", b"Tue, 24 Nov 2026 02:00:00 GMT"),
        ],
    ),
    (
        b"HTTP/1.1 418 I'm a Teapot\r\nX-A: 1\r\nKeep-Alive: timeout=5\r\nX-A: \xe9: 2\r\n"
        b"Set-Cookie: a=b\r\n\r\n",
        [(b":status", b"418"), (b"x-a", b"1"), (b"x-a", b"\xe9: 2"), (b"set-cookie", b"a=b")],
    ),
    (b"HTTP/1.1 999 \r\n\r\n", [(b":status", b"999")]),
    (
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 126 + b"\r\nEtag: " + b"e" * 127 + b"\r\n\r\n",
        [(b":status", b"200"), (b"x-long", b"v" * 126), (b"etag", b"e" * 127)],
    ),
]


@pytest.mark.parametrize(("head", "fields"), RENDERED)
def test_a_rendered_head_is_encoded_as_its_fields(
    head: bytes, fields: list[tuple[bytes, bytes]]
) -> None:
    server = H2Connection()
    for _ in range(2):  # the second time from the memo of lines
        block = server.encode_rendered_head(head)
        assert block is not None
        assert hpack.Decoder().decode(block, raw=True) == fields
        assert block == server.encode_head(int(fields[0][1]), fields[1:])


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: 1\r\n",  # no empty line
        b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\nY: 2\r\n\r\n",  # a line after the end
        b"HTTP/1.1 200 OK\r\nX 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX Y: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-\xe9: 1\r\n\r\n",
    ],
)
def test_a_rendered_head_http2_cannot_take_as_it_is_is_declined(head: bytes) -> None:
    assert H2Connection().encode_rendered_head(head) is None


def test_the_memo_of_rendered_lines_is_bounded() -> None:
    from squall._h2 import _connection

    server = H2Connection()
    long_value = b"v" * 300
    for i in range(_connection._RENDERED_MAX + 10):
        head = b"HTTP/1.1 200 OK\r\nX-N: %d\r\nX-%d: 1\r\nX-Long: %s\r\n\r\n" % (
            i,
            i,
            long_value,
        )
        block = server.encode_rendered_head(head)
        assert block is not None
    assert len(_connection._rendered) <= _connection._RENDERED_MAX
    assert len(_connection._rendered_names) <= _connection._RENDERED_MAX
    assert all(len(line) <= _connection._RENDERED_LINE_MAX for line in _connection._rendered)


@pytest.mark.parametrize(
    ("status", "fields"),
    [
        (200, {"Content-Type": ["text/plain"], "Content-Length": ["13"]}),
        (
            404,
            {
                "Server": ["SquallServer/1"],
                "Date": ["Tue, 24 Nov 2026 11:00:00 GMT"],
                "Set-Cookie": ["a=1", "b=2"],
                "X-Mixed-CASE": ["v"],
                "Connection": ["close"],  # connection-specific: left out
                "Transfer-Encoding": ["chunked"],
                "Keep-Alive": ["timeout=5"],
            },
        ),
        (200, {"Accept-Encoding": ["gzip, deflate"]}),  # a full static entry
        (200, {"Accept-Encoding": ["br"]}),
        (201, {"X-Long": ["v" * 126], "X-Longer": ["w" * 127], "X-Huge": ["z" * 5000]}),
        (200, {"X-Latin": ["caf\xe9"], "X-Padded": [" snow\t"], "X-Empty": [""]}),
        (599, {}),
        (200, {"A-Name-Not-In-The-Static-Table-At-All": ["1"], "x-lower": ["2"]}),
    ],
)
def test_encode_fields_is_encode_head_of_response_fields(
    status: int, fields: dict[str, list[str]]
) -> None:
    from squall._h2 import response_fields

    server = H2Connection()
    expected = server.encode_head(status, response_fields(fields.items()))
    for _ in range(2):  # the second time from the memo of names
        assert server.encode_fields(status, fields) == expected
    decoded = hpack.Decoder(max_header_list_size=1 << 20).decode(expected, raw=True)
    assert decoded[0] == (b":status", str(status).encode())


@pytest.mark.parametrize(
    "fields",
    [
        {"X": [b"bytes"]},
        {"X": [1]},
        {"X": ["ok", None]},
        {b"X": ["v"]},
        {"X-\xe9": ["v"]},
        {"X-Text": ["\u2603 snow"]},
    ],
)
def test_encode_fields_refuses_what_response_fields_refuses(fields: dict[str, list[str]]) -> None:
    from squall._h2 import response_fields

    with pytest.raises(ValueError):
        response_fields(fields.items())
    with pytest.raises(ValueError):
        H2Connection().encode_fields(200, fields)


def test_the_memo_of_field_names_is_bounded() -> None:
    from squall._h2 import _connection

    server = H2Connection()
    for i in range(_connection._RENDERED_MAX + 10):
        assert server.encode_fields(200, {f"X-{i}": ["1"]}) == server.encode_head(
            200, [(f"x-{i}".encode(), b"1")]
        )
    assert len(_connection._field_names) <= _connection._RENDERED_MAX


def test_the_memo_of_field_values_is_bounded_and_agrees_with_encode_head() -> None:
    from squall._h2 import _connection

    server = H2Connection()
    long_value = "v" * (_connection._VALUE_MAX + 1)
    rounds = max(_connection._VALUE_NAMES, 3 * _connection._VALUES_PER_NAME) + 10
    for i in range(rounds):
        for fields in ({"Etag": [f'"{i}"']}, {f"X-{i}": ["1"]}, {"X-Long": [long_value + str(i)]}):
            ((name, values),) = fields.items()
            expected = server.encode_head(200, [(name.lower().encode(), values[0].encode())])
            assert server.encode_fields(200, fields) == expected
            assert server.encode_fields(200, fields) == expected  # from the memo, if kept
    assert len(_connection._field_values) <= _connection._VALUE_NAMES
    assert all(
        len(memo) <= _connection._VALUES_PER_NAME for memo in _connection._field_values.values()
    )
    assert all(
        len(value) <= _connection._VALUE_MAX
        for memo in _connection._field_values.values()
        for value in memo
    )
    # A connection-specific field stays out, memo or not.
    for _ in range(2):
        assert server.encode_fields(200, {"Connection": ["close"]}) == server.encode_head(200, [])
