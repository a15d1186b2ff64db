from __future__ import annotations

import itertools
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squall._ws import (
    CloseReceived,
    ConnectionState,
    Event,
    LocalProtocolError,
    Message,
    PerMessageDeflate,
    Ping,
    Pong,
    ProtocolFailed,
    WSConnection,
    build_frame,
)

KEY = b"\x11\x22\x33\x44"


def fixed_key(n: int) -> bytes:
    return KEY[:n]


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    return build_frame(opcode, payload, fin, rsv1, KEY)


def server(**kwargs: object) -> WSConnection:
    return WSConnection(client=False, **kwargs)  # type: ignore[arg-type]


def test_messages_both_directions() -> None:
    client = WSConnection(client=True, mask_key_source=fixed_key)
    srv = server()
    data = client.send_message("h\u00e9llo") + client.send_message(b"\x00\xff", binary=True)
    assert srv.receive_data(data) == [Message("h\u00e9llo"), Message(b"\x00\xff")]
    assert client.receive_data(srv.send_message("hi")) == [Message("hi")]
    assert srv.message_bytes_in == 8
    assert client.message_bytes_out == 8
    assert srv.wire_bytes_in == client.wire_bytes_out == (6 + 6) + (2 + 6)
    assert srv.state is ConnectionState.OPEN


def test_client_frames_are_masked_with_fresh_keys() -> None:
    keys = iter([b"aaaa", b"bbbb"])
    client = WSConnection(client=True, mask_key_source=lambda n: next(keys))
    assert client.send_message("x")[2:6] == b"aaaa"
    assert client.send_ping(b"p")[2:6] == b"bbbb"


def test_fragmented_message_with_interleaved_control_frames() -> None:
    srv = server()
    data = (
        client_frame(1, "h\u00e9".encode()[:2], fin=False)
        + client_frame(0x9, b"ping")
        + client_frame(0, "h\u00e9".encode()[2:], fin=False)
        + client_frame(0xA, b"pong")
        + client_frame(0, b"!", fin=True)
    )
    assert srv.receive_data(data) == [Ping(b"ping"), Pong(b"pong"), Message("h\u00e9!")]
    binary = client_frame(2, b"ab", fin=False) + client_frame(0, b"cd")
    assert srv.receive_data(binary) == [Message(b"abcd")]


def test_utf8_split_inside_a_code_point_is_valid() -> None:
    srv = server()
    euro = "\u20ac".encode()
    data = b"".join(client_frame(1 if i == 0 else 0, euro[i : i + 1], fin=i == 2) for i in range(3))
    assert srv.receive_data(data) == [Message("\u20ac")]


@pytest.mark.parametrize(
    "data",
    [
        client_frame(1, b"\xff"),
        client_frame(1, b"ok", fin=False) + client_frame(0, b"\xc3\x28"),
        client_frame(1, b"\xed\xa0\x80"),  # a surrogate
    ],
)
def test_invalid_utf8_fails_with_1007(data: bytes) -> None:
    srv = server()
    events = srv.receive_data(data)
    assert events[-1] == ProtocolFailed(1007, "invalid UTF-8 in a text message")


def test_invalid_utf8_in_a_fragment_fails_before_the_message_ends() -> None:
    srv = server()
    events = srv.receive_data(client_frame(1, b"\xff\xfe", fin=False))
    assert events == [ProtocolFailed(1007, "invalid UTF-8 in a text message")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (client_frame(0, b"x"), "continuation frame without"),
        (client_frame(1, b"x", fin=False) + client_frame(2, b"y"), "new message before"),
        (build_frame(1, b"x"), "not masked"),
        (client_frame(8, b"\x03"), "1 byte"),
        (client_frame(8, struct.pack("!H", 1005)), "invalid close code"),
    ],
)
def test_protocol_violations_fail_with_1002(data: bytes, reason: str) -> None:
    srv = server()
    events = srv.receive_data(data)
    assert isinstance(events[-1], ProtocolFailed)
    assert events[-1].code == 1002
    assert reason in events[-1].reason
    # Nothing more is read after a failure.
    assert srv.receive_data(client_frame(1, b"later")) == []
    assert srv.state is ConnectionState.CLOSING


def test_server_frames_must_not_be_masked() -> None:
    client = WSConnection(client=True)
    assert client.receive_data(client_frame(1, b"x")) == [ProtocolFailed(1002, "frame masked")]


def test_rsv1_without_deflate_fails() -> None:
    srv = server()
    events = srv.receive_data(client_frame(1, b"x", rsv1=True))
    assert events == [ProtocolFailed(1002, "reserved bits set")]


def test_close_handshake_initiated_by_peer() -> None:
    srv = server()
    events = srv.receive_data(
        client_frame(8, struct.pack("!H", 1001) + b"bye") + client_frame(1, b"ignored")
    )
    assert events == [CloseReceived(1001, "bye")]
    assert srv.state is ConnectionState.CLOSING
    assert srv.receive_data(client_frame(1, b"late")) == []
    reply = srv.send_close(1001)
    assert reply == b"\x88\x02\x03\xe9"
    assert srv.state is ConnectionState.CLOSED
    assert srv.send_close(1000) == b""


@pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999, 999, 1004, 1005, 1006, 2999, 5000])
def test_a_lone_close_frame_with_a_code_reads_as_one_parsed_in_pieces(code: int) -> None:
    # A read that is exactly one masked close frame with a 2-byte payload
    # (a browser leaving the page) has a short way through receive_data;
    # it must give what the frame parser gives when the same bytes come in
    # two reads, invalid codes (a protocol failure) included.
    frame = client_frame(0x8, struct.pack("!H", code))
    assert len(frame) == 8
    whole, pieces = server(), server()
    got = whole.receive_data(frame)
    expected = pieces.receive_data(frame[:3]) + pieces.receive_data(frame[3:])
    assert got == expected and len(got) == 1
    if 1000 <= code <= 4999 and code not in (1004, 1005, 1006) and not 1015 <= code < 3000:
        assert got == [CloseReceived(code, "")]
    else:
        assert type(got[0]) is ProtocolFailed
    assert whole.wire_bytes_in == pieces.wire_bytes_in
    assert whole.close_received and pieces.close_received
    assert whole.receive_data(frame) == []
    # After other bytes, or on the client side, the frame parser reads it.
    later = server()
    assert later.receive_data(client_frame(0x1, b"hi") + frame) == [
        Message("hi"),
        *expected,
    ]
    client = WSConnection(client=True)
    assert type(client.receive_data(frame)[0]) is ProtocolFailed  # masked, from a server


def test_close_handshake_initiated_by_us() -> None:
    client = WSConnection(client=True, mask_key_source=fixed_key)
    client.send_close(1000, "done")
    assert client.state is ConnectionState.CLOSING
    with pytest.raises(LocalProtocolError, match="closing"):
        client.send_message("more")
    with pytest.raises(LocalProtocolError):
        client.send_ping()
    with pytest.raises(LocalProtocolError):
        client.send_pong()
    with pytest.raises(LocalProtocolError):
        client.send_frame(1, b"x")
    # Data the peer sent before its close still arrives.
    events = client.receive_data(build_frame(1, b"last") + build_frame(8, b""))
    assert events == [Message("last"), CloseReceived(None, None)]
    assert client.state is ConnectionState.CLOSED


def test_max_message_size_single_frame_and_fragments() -> None:
    srv = server(max_message_size=10)
    assert srv.receive_data(client_frame(2, b"x" * 10)) == [Message(b"x" * 10)]
    assert srv.receive_data(client_frame(2, b"x" * 11)) == [ProtocolFailed(1009, "message too big")]
    srv = server(max_message_size=10)
    data = client_frame(2, b"x" * 6, fin=False) + client_frame(0, b"x" * 5)
    assert srv.receive_data(data) == [ProtocolFailed(1009, "message too big")]
    srv = server(max_message_size=10)
    data = (
        client_frame(2, b"x" * 6, fin=False)
        + client_frame(0, b"x" * 4)
        + client_frame(2, b"y" * 10)
    )
    assert srv.receive_data(data) == [Message(b"x" * 10), Message(b"y" * 10)]


def test_oversized_frame_is_refused_from_its_header() -> None:
    srv = server(max_message_size=1024)
    header = b"\x82\xff" + struct.pack("!Q", 1 << 33) + KEY
    assert srv.receive_data(header) == [ProtocolFailed(1009, "message too big")]


def test_no_size_limit() -> None:
    srv = server(max_message_size=None)
    assert srv.receive_data(client_frame(2, b"z" * 70000)) == [Message(b"z" * 70000)]


def test_send_frame_builds_fragmented_messages() -> None:
    client = WSConnection(client=True)
    srv = server()
    data = client.send_frame(1, b"ab", fin=False) + client.send_frame(0, b"cd")
    assert srv.receive_data(data) == [Message("abcd")]


def test_ping_and_pong_round_trip() -> None:
    client = WSConnection(client=True)
    srv = server()
    assert srv.receive_data(client.send_ping(b"x" * 125)) == [Ping(b"x" * 125)]
    assert client.receive_data(srv.send_pong(b"x" * 125)) == [Pong(b"x" * 125)]
    with pytest.raises(LocalProtocolError, match="125"):
        client.send_ping(b"x" * 126)


def test_event_repr_and_equality() -> None:
    assert repr(Message("a")) == "Message(data='a')"
    assert Message("a") != Ping(b"a")
    assert Event.__eq__(Message("a"), Ping(b"a")) is NotImplemented


def pair(**options: object) -> tuple[WSConnection, WSConnection]:
    client_ext = PerMessageDeflate(client=True, **options)  # type: ignore[arg-type]
    server_ext = PerMessageDeflate(client=False, **options)  # type: ignore[arg-type]
    return WSConnection(True, client_ext), WSConnection(False, server_ext)


@pytest.mark.parametrize("reset", [False, True])
def test_compressed_messages(reset: bool) -> None:
    client, srv = pair(client_no_context_takeover=reset, server_no_context_takeover=reset)
    sizes = []
    for _ in range(3):
        data = client.send_message("Hello world. Hello world. Hello world.")
        sizes.append(len(data))
        assert data[0] & 0x40
        assert srv.receive_data(data) == [Message("Hello world. Hello world. Hello world.")]
        assert client.receive_data(srv.send_message(b"\x00" * 1000, binary=True)) == [
            Message(b"\x00" * 1000)
        ]
    # With context takeover, repeats compress to almost nothing.
    assert (sizes[2] < sizes[0]) is not reset
    assert srv.message_bytes_in == 3 * 38


def test_compressed_message_over_several_frames() -> None:
    client, srv = pair()
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = comp.compress(b"abc" * 100) + comp.flush(zlib.Z_SYNC_FLUSH)
    body = body[:-4]
    data = client_frame(2, body[:5], fin=False, rsv1=True) + client_frame(0, body[5:])
    assert srv.receive_data(data) == [Message(b"abc" * 100)]
    # An uncompressed message is still allowed on a compressing connection.
    assert srv.receive_data(client_frame(1, b"plain")) == [Message("plain")]


def test_compression_bomb_is_stopped_at_the_limit() -> None:
    client_ext = PerMessageDeflate(client=True)
    client = WSConnection(True, client_ext)
    srv = WSConnection(False, PerMessageDeflate(client=False), max_message_size=1 << 20)
    data = client.send_message(b"\x00" * (16 << 20), binary=True)
    assert len(data) < 100_000
    # The close reason says where the limit was passed, in Tornado's words
    # (the peer reads it as close_reason).
    assert srv.receive_data(data) == [ProtocolFailed(1009, "message too big after decompression")]


def test_compressed_limit_across_fragments() -> None:
    srv = WSConnection(False, PerMessageDeflate(client=False), max_message_size=100)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = comp.compress(b"a" * 80) + comp.flush(zlib.Z_SYNC_FLUSH)
    second = comp.compress(b"a" * 80) + comp.flush(zlib.Z_SYNC_FLUSH)
    data = client_frame(2, first, fin=False, rsv1=True) + client_frame(0, second[:-4])
    assert srv.receive_data(data) == [ProtocolFailed(1009, "message too big after decompression")]


def test_corrupt_compressed_data_fails_with_1007() -> None:
    srv = WSConnection(False, PerMessageDeflate(client=False))
    events = srv.receive_data(client_frame(2, b"\xff\xff\xff\xff", rsv1=True))
    assert isinstance(events[-1], ProtocolFailed)
    assert events[-1].code == 1007


def test_incompressible_message_at_the_limit_is_accepted() -> None:
    import os

    payload = os.urandom(50_000)
    client = WSConnection(True, PerMessageDeflate(client=True))
    srv = WSConnection(False, PerMessageDeflate(client=False), max_message_size=50_000)
    data = client.send_message(payload, binary=True)
    assert srv.receive_data(data) == [Message(payload)]


# -- properties


def stream_and_events() -> tuple[bytes, list[Event]]:
    client = WSConnection(client=True)
    data = b"".join(
        [
            client.send_message("caf\u00e9"),
            client.send_ping(b"p"),
            client.send_frame(2, b"\x00" * 300, fin=False),
            client.send_pong(b""),
            client.send_frame(0, b"\x01" * 70000),
            client.send_message(b"", binary=True),
            client.send_close(1000, "bye"),
        ]
    )
    expected: list[Event] = [
        Message("caf\u00e9"),
        Ping(b"p"),
        Pong(b""),
        Message(b"\x00" * 300 + b"\x01" * 70000),
        Message(b""),
        CloseReceived(1000, "bye"),
    ]
    return data, expected


STREAM, EXPECTED = stream_and_events()


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
@settings(max_examples=150, deadline=None)
def test_any_split_parses_the_same(cuts: list[int]) -> None:
    srv = server()
    bounds = [0, *sorted(cuts), len(STREAM)]
    events: list[Event] = []
    for start, end in itertools.pairwise(bounds):
        events.extend(srv.receive_data(STREAM[start:end]))
    assert events == EXPECTED


@given(st.binary(max_size=400), st.booleans(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_raise(data: bytes, client: bool, deflate: bool) -> None:
    conn = WSConnection(
        client, PerMessageDeflate(client) if deflate else None, max_message_size=1000
    )
    events = conn.receive_data(data)
    for event in events[:-1]:
        assert not isinstance(event, ProtocolFailed)
    if events and isinstance(events[-1], ProtocolFailed):
        assert events[-1].code in (1002, 1007, 1009)


def test_small_message_path_keeps_every_rule() -> None:
    srv = server(max_message_size=50)
    data = (
        client_frame(1, b"a")
        + client_frame(2, b"")
        + client_frame(2, b"x" * 50)
        + client_frame(1, b"\xff")
        + client_frame(1, b"never")
    )
    events = srv.receive_data(data)
    assert events == [
        Message("a"),
        Message(b""),
        Message(b"x" * 50),
        ProtocolFailed(1007, "invalid UTF-8 in a text message"),
    ]
    assert srv.message_bytes_in == 51
    assert srv.wire_bytes_in == 7 + 6 + 56


def test_small_message_path_respects_limit_with_deflate() -> None:
    srv = WSConnection(False, PerMessageDeflate(client=False), max_message_size=10)
    assert srv.receive_data(client_frame(1, b"x" * 10)) == [Message("x" * 10)]
    assert srv.receive_data(client_frame(1, b"x" * 11)) == [ProtocolFailed(1009, "message too big")]


def test_small_message_path_leaves_fragments_to_the_full_parser() -> None:
    srv = server()
    data = client_frame(1, b"a", fin=False) + client_frame(1, b"b")
    assert srv.receive_data(data) == [
        ProtocolFailed(1002, "new message before the previous one ended")
    ]


def test_fast_path_takes_16_bit_lengths_with_every_rule() -> None:
    text = ("é" * 150).encode()
    blob = bytes(range(256)) * 2
    srv = server(max_message_size=1000)
    events = srv.receive_data(client_frame(1, text) + client_frame(2, blob))
    assert events == [Message("é" * 150), Message(blob)]
    assert srv.wire_bytes_in == 2 * 8 + len(text) + len(blob)
    # Over the limit: refused from the header, not buffered.
    big = server(max_message_size=300)
    assert big.receive_data(client_frame(2, blob)[:8]) == [ProtocolFailed(1009, "message too big")]
    # A 16-bit length for a payload under 126 bytes is not minimal.
    bad = server()
    padded = bytes((0x82, 0xFE, 0, 5)) + KEY + b"abcde"
    assert bad.receive_data(padded) == [ProtocolFailed(1002, "frame length not minimally encoded")]
    # Invalid UTF-8 in a medium text frame.
    utf = server()
    assert utf.receive_data(client_frame(1, b"\xff" * 200)) == [
        ProtocolFailed(1007, "invalid UTF-8 in a text message")
    ]
    # A frame whose 16-bit length has not arrived yet waits for it.
    part = server()
    frame = client_frame(2, blob)
    assert part.receive_data(frame[:3]) == []
    assert part.receive_data(frame[3:]) == [Message(blob)]


def test_invalid_utf8_fails_while_its_frame_still_arrives() -> None:
    # Autobahn 6.4.3/6.4.4: fail at the bad bytes, not at the end of the frame.
    payload = (
        "κόσμε".encode()
        + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
        + b"edited"
    )
    frame = client_frame(1, payload)
    srv = server()
    assert srv.receive_data(frame[:12]) == []  # valid so far
    assert srv.receive_data(frame[12:30]) == [
        ProtocolFailed(1007, "invalid UTF-8 in a text message")
    ]


def test_early_utf8_check_takes_code_points_split_across_reads_and_fragments() -> None:
    text = "aé☃😀" * 20
    raw = text.encode()
    # One frame in single bytes: every cut through a code point is fine.
    frame = client_frame(1, raw)
    srv = server()
    events: list[Event] = []
    for i in range(len(frame)):
        events += srv.receive_data(frame[i : i + 1])
    assert events == [Message(text)]
    # Fragments cut inside a code point, each arriving in pieces.
    cut = raw.index("😀".encode()) + 2
    data = client_frame(1, raw[:cut], fin=False) + client_frame(0, raw[cut:])
    srv = server()
    events = []
    for i in range(0, len(data), 3):
        events += srv.receive_data(data[i : i + 3])
    assert events == [Message(text)]


def test_early_utf8_check_leaves_binary_compressed_and_large_frames() -> None:
    bad = b"\xff" * 10
    srv = server()
    assert srv.receive_data(client_frame(2, bad + b"x" * 10)[:15]) == []
    big = server(max_message_size=None)
    assert big.receive_data(client_frame(1, bad * 7000)[:100]) == []
    comp = WSConnection(False, PerMessageDeflate(client=False))
    assert comp.receive_data(client_frame(1, bad * 20, rsv1=True)[:30]) == []


def test_one_message_sent_to_many_connections_frames_the_same_for_each() -> None:
    # A server makes the frame of a message it sent last once (the loop of
    # write_message over subscribers); each connection still counts it.
    first, second = server(), server()
    text = "x" * 100
    frame = first.send_message(text)
    assert second.send_message(text) is frame
    assert frame == b"\x81\x64" + b"x" * 100
    for conn in (first, second):
        assert conn.message_bytes_out == 100
        assert conn.wire_bytes_out == 102
    assert second.send_message(text, binary=True) == b"\x82\x64" + b"x" * 100
    assert second.send_message(text) == frame
    # A mutable message is framed as it is now (where one is taken: the
    # compiled build takes str and bytes only).
    data = bytearray(b"abc")
    try:
        framed = first.send_message(data, binary=True)  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        assert framed == b"\x82\x03abc"
        data[:] = b"xyz"
        assert first.send_message(data, binary=True) == b"\x82\x03xyz"  # type: ignore[arg-type]
    # An equal but distinct str is framed again, the same.
    assert first.send_message("".join(["x"] * 100)) == frame
    # A closing connection refuses the message it would have framed at once.
    second.send_close(1000)
    with pytest.raises(LocalProtocolError):
        second.send_message(text)
