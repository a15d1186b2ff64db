"""squall._h2's client side (over the h2 package) without I/O: requests out,
responses in, flow-control queues, and the flood limits on what a server sends."""

from __future__ import annotations

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402
from hyperframe.frame import (  # noqa: E402
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from squall._h2 import (  # noqa: E402
    Data,
    Drained,
    EndOfStream,
    ErrorCode,
    GoAway,
    H2Limits,
    LocalProtocolError,
    RemoteProtocolError,
    StreamReset,
    Trailers,
)
from squall._h2._client import H2ClientConnection, Response  # noqa: E402


def pair(
    limits: H2Limits | None = None, settings: dict[int, int] | None = None
) -> tuple[H2ClientConnection, h2.connection.H2Connection]:
    client = H2ClientConnection(limits)
    client.initiate()
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    if settings:
        server.local_settings = h2.settings.Settings(client=False, initial_values=settings)
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send(), 0.0)
    server.receive_data(client.data_to_send())  # the SETTINGS ack
    return client, server


def test_request_response_and_window_back() -> None:
    client, server = pair()
    sid = client.send_request("GET", "https", "a.b", "/x", [("user-agent", "é")], True)
    events = server.receive_data(client.data_to_send())
    request = next(e for e in events if isinstance(e, h2.events.RequestReceived))
    assert (b"user-agent", "é".encode("latin-1")) in list(request.headers or [])
    server.send_headers(sid, [(":status", "200"), ("x-k", "v")])
    server.send_data(sid, b"body", end_stream=True)
    events = client.receive_data(server.data_to_send(), 0.0)
    assert [type(e) for e in events] == [Response, Data, EndOfStream]
    response = events[0]
    assert isinstance(response, Response) and response.status == 200
    assert ("x-k", "v") in response.headers
    data = events[1]
    assert isinstance(data, Data)
    client.consumed(sid, data.flow_length)
    assert client.max_streams > 0


def test_body_over_the_window_waits_for_updates() -> None:
    client, server = pair(settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    sid = client.send_request("POST", "https", "a.b", "/", [], False)
    assert not client.send_data(sid, b"0123456789abcdef", end_stream=True)
    with pytest.raises(LocalProtocolError):
        client.send_data(sid, b"")  # after the end, even while it waits for window
    server.receive_data(client.data_to_send())
    server.increment_flow_control_window(100, stream_id=sid)
    events = client.receive_data(server.data_to_send(), 0.0)
    assert [type(e) for e in events] == [Drained]
    got = server.receive_data(client.data_to_send())
    assert any(isinstance(e, h2.events.StreamEnded) for e in got)


def test_reset_and_goaway_events() -> None:
    client, server = pair()
    sid = client.send_request("GET", "https", "a.b", "/", [], True)
    server.receive_data(client.data_to_send())
    server.reset_stream(sid, 8)
    server.close_connection(0, last_stream_id=sid)
    events = client.receive_data(server.data_to_send(), 0.0)
    assert [type(e) for e in events] == [StreamReset, GoAway]
    client.reset(sid)  # already closed: nothing
    client.goaway()
    client.goaway()  # once
    assert client.data_to_send().count(b"\x07\x00\x00\x00\x00\x00") == 1


def flood(client: H2ClientConnection, frames: list[bytes]) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        client.receive_data(b"".join(frames), 0.0)
    assert client.receive_data(b"", 0.0) == []
    return info.value


@pytest.mark.parametrize(
    ("frames", "limits", "words"),
    [
        (
            [PingFrame(0, opaque_data=b"12345678").serialize()] * 30,
            {"max_pings_per_second": 5},
            "PING",
        ),
        ([SettingsFrame(0).serialize()] * 30, {"max_settings_per_second": 5}, "SETTINGS"),
        (
            [WindowUpdateFrame(0, window_increment=1).serialize()] * 30,
            {"max_window_updates_per_second": 5},
            "WINDOW_UPDATE",
        ),
        (
            [RstStreamFrame(1, error_code=8).serialize()] * 30,
            {"max_resets_per_second": 5},
            "resets",
        ),
        ([DataFrame(1).serialize()] * 30, {"max_empty_frames_per_second": 5}, "empty"),
        ([PriorityFrame(1).serialize()] * 30, {"max_empty_frames_per_second": 5}, "PRIORITY"),
        (
            [HeadersFrame(1, data=b"\x88").serialize()]
            + [ContinuationFrame(1, data=b"").serialize()] * 30,
            {"max_continuation_frames": 50, "max_empty_frames_per_second": 5},
            "empty",
        ),
        (
            [HeadersFrame(1, data=b"\x88").serialize()]
            + [ContinuationFrame(1, data=b"").serialize()] * 30,
            {"max_continuation_frames": 4},
            "CONTINUATION",
        ),
        (
            [HeadersFrame(1, data=b"\x00" * 200).serialize()],
            {"max_header_list_size": 100},
            "header block larger",
        ),
    ],
)
def test_floods_from_the_server(frames: list[bytes], limits: dict[str, int], words: str) -> None:
    client, _ = pair(H2Limits(**limits))  # type: ignore[arg-type]
    client.send_request("GET", "https", "a.b", "/", [], False)
    exc = flood(client, frames)
    assert exc.error_code == ErrorCode.ENHANCE_YOUR_CALM and words in str(exc)


def test_frame_headers_split_across_reads_still_count() -> None:
    client, _ = pair(H2Limits(max_pings_per_second=5))
    data = PingFrame(0, opaque_data=b"12345678").serialize() * 20
    with pytest.raises(RemoteProtocolError, match="PING"):
        for i in range(0, len(data), 7):
            client.receive_data(data[i : i + 7], 0.0)


def test_protocol_error_from_h2_is_a_remote_error() -> None:
    client, _ = pair()
    with pytest.raises(RemoteProtocolError):
        client.receive_data(DataFrame(99, data=b"x").serialize(), 0.0)


def head_block(fields: list[tuple[str, str]], sid: int, flags: tuple[str, ...]) -> bytes:
    import hpack

    # Never indexed: no block changes the dynamic table the next one reads.
    block = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in fields])
    return HeadersFrame(sid, data=block, flags=("END_HEADERS",) + flags).serialize()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ([("x-a", "1")], "no :status"),
        ([(":status", "2000")], "invalid :status '2000'"),
        ([(":status", "200"), (":status", "200")], "repeated pseudo-header :status"),
        ([(":status", "200"), ("X-Upper", "1")], "invalid field name 'X-Upper'"),
        ([(":status", "200"), ("connection", "close")], "connection-specific field 'connection'"),
        ([(":status", "200"), (":path", "/")], "pseudo-header :path"),
        ([("x-a", "1"), (":status", "200")], "pseudo-header :status"),
        # RFC 9110 §5.5: no control character but HTAB in a value (as the
        # HTTP/1.1 client refuses it), nor whitespace at its ends.
        ([(":status", "200"), ("x-a", "a\x01b")], "invalid value of 'x-a'"),
        ([(":status", "200"), ("x-a", "a\x7fb")], "invalid value of 'x-a'"),
        ([(":status", "200"), ("x-a", "a\rb")], "invalid value of 'x-a'"),
        ([(":status", "200"), ("x-a", "a\x00b")], "invalid value of 'x-a'"),
        ([(":status", "200"), ("x-a", " a")], "invalid value of 'x-a'"),
        ([(":status", "101")], "a 101 response"),
        ([(":status", "103")], "a 103 response ending the stream"),
    ],
)
def test_malformed_response_is_a_stream_error(fields: list[tuple[str, str]], reason: str) -> None:
    client, _ = pair()
    sid = client.send_request("GET", "https", "a.b", "/", [], True)
    client.data_to_send()
    events = client.receive_data(head_block(fields, sid, ("END_STREAM",)), 0.0)
    assert [(type(e), e.remote) for e in events] == [(StreamReset, False)]  # type: ignore[union-attr]
    # What the server broke is said, for the fetch's error.
    assert reason in events[0].reason  # type: ignore[union-attr]
    # RST_STREAM PROTOCOL_ERROR on that stream.
    assert client.data_to_send() == RstStreamFrame(sid, error_code=1).serialize()


def test_informational_then_final_head_then_trailers() -> None:
    client, _ = pair()
    sid = client.send_request("GET", "https", "a.b", "/", [], True)
    data = (
        head_block([(":status", "103"), ("link", "</a>")], sid, ())
        + head_block([(":status", "200"), ("content-length", "2")], sid, ())
        + DataFrame(sid, data=b"ok").serialize()
        + head_block([("x-checksum", "1")], sid, ("END_STREAM",))
    )
    events = client.receive_data(data, 0.0)
    assert [type(e) for e in events] == [Response, Data, Trailers, EndOfStream]
    assert isinstance(events[0], Response) and events[0].status == 200
    assert isinstance(events[2], Trailers) and events[2].headers == [("x-checksum", "1")]


def test_head_response_declares_a_length_without_a_body() -> None:
    client, _ = pair()
    sid = client.send_request("HEAD", "https", "a.b", "/", [], True)
    head = [(":status", "200"), ("content-length", "100")]
    events = client.receive_data(head_block(head, sid, ("END_STREAM",)), 0.0)
    assert [type(e) for e in events] == [Response, EndOfStream]


def test_response_body_longer_than_its_content_length_is_reset() -> None:
    client, _ = pair()
    sid = client.send_request("GET", "https", "a.b", "/", [], True)
    data = (
        head_block([(":status", "200"), ("content-length", "1")], sid, ())
        + DataFrame(sid, data=b"toolong").serialize()
    )
    events = client.receive_data(data, 0.0)
    assert [type(e) for e in events] == [Response, StreamReset]
    assert events[1].reason == "7 bytes of body so far where Content-Length is 1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "ending", "reason"),
    [
        (b"", "head", "0 bytes of body in all where Content-Length is 5"),
        (b"ab", "trailers", "2 bytes of body in all where Content-Length is 5"),
        (b"ab", "data", "2 bytes of body in all where Content-Length is 5"),
    ],
)
def test_response_body_shorter_than_its_content_length_is_reset(
    body: bytes, ending: str, reason: str
) -> None:
    # However the stream ends: on the head itself, on trailers, or on DATA.
    client, _ = pair()
    sid = client.send_request("GET", "https", "a.b", "/", [], True)
    head = [(":status", "200"), ("content-length", "5")]
    if ending == "head":
        data = head_block(head, sid, ("END_STREAM",))
    elif ending == "trailers":
        data = head_block(head, sid, ()) + DataFrame(sid, data=body).serialize()
        data += head_block([("x-t", "1")], sid, ("END_STREAM",))
    else:
        data = head_block(head, sid, ())
        data += DataFrame(sid, data=body, flags=("END_STREAM",)).serialize()
    events = client.receive_data(data, 0.0)
    assert isinstance(events[-1], StreamReset) and events[-1].reason == reason
    assert not any(isinstance(e, EndOfStream) for e in events)


def test_headers_on_a_stream_the_client_never_opened() -> None:
    client, _ = pair()
    with pytest.raises(RemoteProtocolError, match="idle stream 2"):
        client.receive_data(head_block([(":status", "200")], 2, ()), 0.0)


@pytest.mark.parametrize(
    "headers",
    [[("connection", "keep-alive")], [("te", "gzip")], [("x-a", "b\r\nc")], [("X-Up", "1")]],
)
def test_request_fields_http2_refuses_are_local_errors(headers: list[tuple[str, str]]) -> None:
    client, _ = pair()
    with pytest.raises(LocalProtocolError, match="cannot send the request"):
        client.send_request("GET", "https", "a.b", "/", headers, True)
    # Nothing was sent and the next request still gets stream 1.
    assert client.data_to_send() == b""
    assert client.send_request("GET", "https", "a.b", "/", [], True) == 1
