from __future__ import annotations

import struct

import pytest

from squall._ws import (
    Frame,
    FrameParser,
    LocalProtocolError,
    Opcode,
    RemoteProtocolError,
    build_close_payload,
    build_frame,
    parse_close_payload,
)

KEY = b"\x01\x02\x03\x04"


def parse_all(data: bytes, masked: bool = False, allow_rsv1: bool = False) -> list[Frame]:
    parser = FrameParser(masked=masked, allow_rsv1=allow_rsv1)
    parser.feed(data)
    frames = []
    while (frame := parser.next_frame()) is not None:
        frames.append(frame)
    assert parser.buffered == 0
    return frames


def test_rfc_examples() -> None:
    # RFC 6455 section 5.7.
    assert parse_all(b"\x81\x05\x48\x65\x6c\x6c\x6f") == [Frame(1, b"Hello")]
    masked = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    assert parse_all(masked, masked=True) == [Frame(1, b"Hello")]
    assert parse_all(b"\x01\x03\x48\x65\x6c\x80\x02\x6c\x6f") == [
        Frame(1, b"Hel", fin=False),
        Frame(0, b"lo"),
    ]
    assert parse_all(b"\x89\x05Hello") == [Frame(0x9, b"Hello")]
    assert build_frame(1, b"Hello") == b"\x81\x05\x48\x65\x6c\x6c\x6f"
    assert build_frame(1, b"Hello", mask_key=b"\x37\xfa\x21\x3d") == masked


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 100000])
def test_length_encodings_round_trip(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for key in (None, KEY):
        data = build_frame(2, payload, mask_key=key)
        header = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + (4 if key else 0)
        assert len(data) == header + size
        assert parse_all(data, masked=key is not None) == [Frame(2, payload)]


def test_partial_input_needs_more() -> None:
    data = build_frame(2, b"x" * 70000, mask_key=KEY)
    parser = FrameParser(masked=True)
    for cut in (1, 2, 5, 10, 13, 14, 1000, len(data) - 1):
        parser = FrameParser(masked=True)
        parser.feed(data[:cut])
        assert parser.next_frame() is None
        parser.feed(data[cut:])
        assert parser.next_frame() == Frame(2, b"x" * 70000)
        assert parser.wire_bytes == len(data)


def test_buffer_compaction_keeps_order() -> None:
    parser = FrameParser(masked=False)
    frame = build_frame(2, b"y" * 40000)
    for _ in range(5):
        parser.feed(frame)
        assert parser.next_frame() == Frame(2, b"y" * 40000)
    parser.feed(frame[:3])
    parser.feed(frame[3:] + frame)
    assert parser.next_frame() == Frame(2, b"y" * 40000)
    assert parser.next_frame() == Frame(2, b"y" * 40000)
    assert parser.next_frame() is None


@pytest.mark.parametrize(
    ("data", "masked", "reason"),
    [
        (b"\x83\x00", False, "reserved opcode"),
        (b"\x8b\x00", False, "reserved opcode"),
        (b"\xc1\x00", False, "reserved bits"),
        (b"\xa1\x00", False, "reserved bits"),
        (b"\x91\x00", False, "reserved bits"),
        (b"\x81\x00", True, "not masked"),
        (b"\x81\x80abcd", False, "masked"),
        (b"\x09\x00", False, "fragmented control"),
        (b"\x89\x7e\x00\x7e" + b"x" * 126, False, "over 125"),
        (b"\x82\x7e\x00\x05hello", False, "minimally"),
        (b"\x82\x7f" + struct.pack("!Q", 5) + b"hello", False, "minimally"),
        (b"\x82\x7f" + struct.pack("!Q", 1 << 63), False, "most significant"),
    ],
)
def test_header_violations(data: bytes, masked: bool, reason: str) -> None:
    parser = FrameParser(masked=masked)
    parser.feed(data)
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        parser.next_frame()
    assert info.value.close_code == 1002


def test_rsv1_only_on_data_frames_when_allowed() -> None:
    assert parse_all(b"\xc1\x01x", allow_rsv1=True) == [Frame(1, b"x", rsv1=True)]
    for data in (b"\xc9\x00", b"\x40\x00"):
        parser = FrameParser(masked=False, allow_rsv1=True)
        parser.feed(data)
        with pytest.raises(RemoteProtocolError, match="reserved bits"):
            parser.next_frame()


def test_max_payload_refuses_before_buffering() -> None:
    parser = FrameParser(masked=False)
    parser.max_payload = 10
    parser.feed(b"\x82\x7f" + struct.pack("!Q", 1 << 40))
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_frame()
    assert info.value.close_code == 1009
    # Control frames are bounded by 125 bytes, not by max_payload.
    parser = FrameParser(masked=False)
    parser.max_payload = 1
    parser.feed(build_frame(0x9, b"x" * 100))
    assert parser.next_frame() == Frame(0x9, b"x" * 100)


def test_build_rejects_invalid_control_frames() -> None:
    with pytest.raises(LocalProtocolError, match="125"):
        build_frame(Opcode.PING, b"x" * 126)
    with pytest.raises(LocalProtocolError):
        build_frame(Opcode.CLOSE, b"", fin=False)
    assert build_frame(Opcode.PONG, b"x" * 125)[:2] == b"\x8a\x7d"


def test_frame_repr_and_equality() -> None:
    assert "opcode=0x1" in repr(Frame(1, b"x"))
    assert Frame(1, b"x") != Frame(1, b"x", fin=False)
    assert Frame(1, b"x").__eq__("x") is NotImplemented


def test_close_payloads() -> None:
    assert parse_close_payload(b"") == (None, None)
    assert parse_close_payload(b"\x03\xe8") == (1000, "")
    assert parse_close_payload(b"\x03\xe9bye \xc3\xa9") == (1001, "bye \u00e9")
    assert parse_close_payload(struct.pack("!H", 4999)) == (4999, "")
    assert build_close_payload() == b""
    assert build_close_payload(1000) == b"\x03\xe8"
    assert build_close_payload(3000, "x") == b"\x0b\xb8x"
    assert parse_close_payload(build_close_payload(1011, "\u00e9")) == (1011, "\u00e9")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes(code: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_close_payload(struct.pack("!H", code))
    assert info.value.close_code == 1002
    with pytest.raises(LocalProtocolError):
        build_close_payload(code)


def test_close_payload_errors() -> None:
    with pytest.raises(RemoteProtocolError, match="1 byte"):
        parse_close_payload(b"\x03")
    with pytest.raises(RemoteProtocolError) as info:
        parse_close_payload(b"\x03\xe8\xff")
    assert info.value.close_code == 1007
    with pytest.raises(LocalProtocolError, match="needs a close code"):
        build_close_payload(None, "why")
    with pytest.raises(LocalProtocolError, match="123"):
        build_close_payload(1000, "x" * 124)
