"""squall._qpack: the bound of a QPACK field section's decoded size, read
without decoding it, checked against ls-qpack's own decoding."""

from __future__ import annotations

import pytest

from squall._qpack import (
    ENTRY_OVERHEAD,
    STATIC_ENTRY_MAX,
    STATIC_NAME_MAX,
    literal_section,
    section_cost,
)

pylsqpack = pytest.importorskip("pylsqpack", reason="pylsqpack (aioquic's QPACK) is not installed")


def static_entry(index: int) -> tuple[bytes, bytes]:
    prefix = bytes([0xC0 | index]) if index < 63 else bytes([0xFF, index - 63])
    _, ((name, value),) = pylsqpack.Decoder(0, 0).feed_header(0, b"\x00\x00" + prefix)
    return name, value


def test_static_table_bounds_hold_for_every_entry() -> None:
    entries = [static_entry(i) for i in range(99)]
    assert max(len(n) + len(v) for n, v in entries) == STATIC_ENTRY_MAX
    assert max(len(n) for n, _ in entries) == STATIC_NAME_MAX


def decoded_size(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(len(n) + len(v) + ENTRY_OVERHEAD for n, v in headers)


@pytest.mark.parametrize("capacity", [0, 4096])
def test_bound_is_never_below_what_the_decoder_gives(capacity: int) -> None:
    encoder = pylsqpack.Encoder()
    encoder.apply_settings(capacity, 0)
    decoder = pylsqpack.Decoder(capacity, 0)
    fields = [
        (b":method", b"GET"),
        (b":path", b"/a/b?c=d"),
        (b":authority", b"example.com"),
        (b"user-agent", b"test/1.0 " * 20),
        (b"cookie", b"session=" + b"z" * 500),
        (b"x-custom", b"\x7f" * 50),  # Huffman makes it longer: sent raw
        (b"accept", b"*/*"),
        (b"content-security-policy", b"script-src 'none'; object-src 'none'; base-uri 'none'"),
    ]
    for sid in range(0, 40, 4):
        instructions, section = encoder.encode(sid, fields)
        decoder.feed_encoder(instructions)
        _, headers = decoder.feed_header(sid, section)
        bound, count, well_formed = section_cost(section, capacity, 1 << 30)
        assert well_formed and count == len(fields) == len(headers)
        assert bound >= decoded_size(headers)
        # Tight enough that a common request is far from any budget.
        assert bound <= 8 * capacity + 4 * decoded_size(headers)


def test_references_to_one_large_entry_stop_at_the_budget() -> None:
    section = b"\x02\x00" + b"\x80" * 16_000
    bound, count, _ = section_cost(section, 4096, 65536)
    # Stopped just past the budget, after a handful of the 16,000 lines.
    assert 65536 < bound <= 65536 + 4096
    assert count == 17


def test_huffman_string_counts_eight_fifths_of_its_length() -> None:
    # Literal with literal name "a" (raw), value of 10 Huffman-coded bytes.
    section = b"\x00\x00" + b"\x21a" + b"\x8a" + b"\xff" * 10
    bound, count, well_formed = section_cost(section, 4096, 1 << 20)
    assert well_formed and count == 1
    assert bound == 1 + (10 * 8 // 5 + 1) + ENTRY_OVERHEAD


@pytest.mark.parametrize(
    "section",
    [b"", b"\x00", b"\x00\x00\x5f", b"\x00\x00\x21a\x0a" + b"x" * 3, b"\x00\x00\xff\xff\xff"],
)
def test_truncated_sections_are_not_well_formed(section: bytes) -> None:
    _, _, well_formed = section_cost(section, 4096, 1 << 20)
    assert not well_formed


@pytest.mark.parametrize("capacity", [0, 4096])
def test_a_literal_section_decodes_whatever_the_table_holds(capacity: int) -> None:
    # The fallback for a section the stack's encoder fails on: names and
    # values of every length class (the 3-bit and 7-bit prefixes overflow at
    # 7 and 127), pseudo-headers included, any bytes a value may hold.
    fields = [
        (b":status", b"200"),
        (b"x", b""),
        (b"x-seven", b"y" * 127),
        (b"x-a-name-longer-than-seven", b"z" * 20_000),
        (b"content-type", b"text/html; charset=\x85\xff"),
    ]
    decoder = pylsqpack.Decoder(capacity, 0)
    _, headers = decoder.feed_header(0, literal_section(fields))
    assert headers == fields
    bound, count, well_formed = section_cost(literal_section(fields), capacity, 1 << 30)
    assert well_formed and count == len(fields) and bound >= decoded_size(fields)
