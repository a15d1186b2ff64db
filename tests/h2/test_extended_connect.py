"""squall._h2's side of RFC 8441 (extended CONNECT), without I/O."""

from __future__ import annotations

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.events  # noqa: E402
import h2.settings  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import Frame, HeadersFrame, RstStreamFrame  # noqa: E402

from squall._h2 import Data, EndOfStream, ErrorCode, H2Connection, Request  # noqa: E402

from .test_core import pair  # noqa: E402

TUNNEL = [
    (":method", "CONNECT"),
    (":protocol", "websocket"),
    (":scheme", "https"),
    (":path", "/chat?room=1"),
    (":authority", "a.b"),
    ("sec-websocket-version", "13"),
]


def headers_frame(sid: int, fields: list[tuple[str, str]], end: bool = False) -> bytes:
    # Past h2's own checks: the head is sent as given.
    frame = HeadersFrame(sid)
    frame.data = hpack.Encoder().encode(fields)
    frame.flags.add("END_HEADERS")
    if end:
        frame.flags.add("END_STREAM")
    return bytes(frame.serialize())


def resets(server: H2Connection) -> dict[int, int]:
    """The RST_STREAM frames the server queued: stream -> error code."""
    out = {}
    data = memoryview(server.data_to_send())
    pos = 0
    while pos + 9 <= len(data):
        frame, length = Frame.parse_frame_header(data[pos : pos + 9])
        frame.parse_body(data[pos + 9 : pos + 9 + length])
        if isinstance(frame, RstStreamFrame):
            out[frame.stream_id] = frame.error_code
        pos += 9 + length
    return out


def test_the_setting_is_advertised() -> None:
    # RFC 8441 §3: always, by every server connection.
    _, c = pair()
    assert c.remote_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1


def test_extended_connect_is_a_request_with_its_protocol() -> None:
    server, _ = pair()
    events = server.receive_data(headers_frame(1, TUNNEL), 0.0)
    assert len(events) == 1
    req = events[0]
    assert isinstance(req, Request)
    assert (req.method, req.protocol, req.target, req.scheme, req.authority) == (
        "CONNECT",
        "websocket",
        "/chat?room=1",
        "https",
        "a.b",
    )
    assert req.headers == [("sec-websocket-version", "13")]
    assert server.malformed == []
    # The stream stays open both ways: DATA carries the tunnel.
    data = server.receive_data(
        b"\x00\x00\x02\x00\x00\x00\x00\x00\x01\x81\x00"  # DATA, stream 1, 2 bytes
        + b"\x00\x00\x00\x00\x01\x00\x00\x00\x01",  # DATA, END_STREAM, empty
        0.0,
    )
    assert [type(e) for e in data] == [Data, EndOfStream]
    server.send_headers(1, 200, [])
    assert server.send_data(1, b"\x81\x00")


def test_plain_connect_is_unchanged() -> None:
    server, _ = pair()
    events = server.receive_data(
        headers_frame(1, [(":method", "CONNECT"), (":authority", "a.b:443")]), 0.0
    )
    assert len(events) == 1
    req = events[0]
    assert isinstance(req, Request)
    assert (req.method, req.target, req.protocol) == ("CONNECT", "a.b:443", None)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        # RFC 8441 §4: :protocol goes with CONNECT only.
        ([(":method", "GET")] + TUNNEL[1:], ":protocol with method 'GET'"),
        # ... which then needs :scheme and :path (and :authority).
        ([f for f in TUNNEL if f[0] != ":path"], "no :path or no :scheme"),
        ([f for f in TUNNEL if f[0] != ":scheme"], "no :path or no :scheme"),
        ([f for f in TUNNEL if f[0] != ":authority"], "extended CONNECT without :authority"),
        ([(n, "web socket" if n == ":protocol" else v) for n, v in TUNNEL], "invalid :protocol"),
        (TUNNEL[:1] + [(":protocol", "websocket")] + TUNNEL[1:], "repeated pseudo-header"),
    ],
)
def test_malformed_extended_connect_resets_the_stream(
    fields: list[tuple[str, str]], problem: str
) -> None:
    server, _ = pair()
    assert server.receive_data(headers_frame(1, fields), 0.0) == []
    assert len(server.malformed) == 1
    assert problem in server.malformed[0][1]
    # A stream error (RFC 9113 §8.1.1), not a connection error.
    assert resets(server) == {1: ErrorCode.PROTOCOL_ERROR}
    events = server.receive_data(headers_frame(3, TUNNEL), 0.0)
    assert [type(e) for e in events] == [Request]
