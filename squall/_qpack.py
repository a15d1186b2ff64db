"""What a QPACK field section can cost to decode, read from its encoded bytes.

QPACK (RFC 9204) is decoded by ls-qpack (through aioquic), in one call that
cannot be stopped halfway: a 16 KB section of one-byte references to one
4 KB dynamic-table entry decodes to 64 MB before anything can compare the
result with a limit. So the limit is checked first, here: `section_cost`
walks the section's field lines (RFC 9204 §4.5) without decoding them and
gives an upper bound of the decoded size, counted as RFC 9114 §4.2.2
counts it (name + value + 32 per field), and the number of fields. A
reference to the dynamic table counts as the table's whole capacity (an
entry is at most that, RFC 9204 §3.2.1), one to the static table as its
largest entry, a Huffman-coded string as 8/5 of its length (no code is
shorter than 5 bits). The walk stops as soon as the bound passes the
budget, so its own work is bounded by the budget, not by the section.
"""

from __future__ import annotations

__all__ = [
    "ENTRY_OVERHEAD",
    "STATIC_ENTRY_MAX",
    "STATIC_NAME_MAX",
    "literal_section",
    "section_cost",
]

from collections.abc import Iterable
from typing import Final

from squall._h2._hpack import DecodingError, decode_integer, encode_integer

# RFC 9204 Appendix A: the longest static entry, name and value (76 bytes:
# content-security-policy's), and the longest name (32).
# tests/test_qpack.py checks them against the decoder's own table.
STATIC_ENTRY_MAX: Final = 76
STATIC_NAME_MAX: Final = 32
# RFC 9204 §3.2.1 / RFC 9114 §4.2.2: each field counts 32 bytes beyond its
# name and value.
ENTRY_OVERHEAD: Final = 32


def _string(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    """A string literal whose Huffman bit sits just above a ``prefix``-bit
    length: its longest decoded length, and the position after it."""
    huffman = data[pos] & (1 << prefix)
    length, pos = decode_integer(data, pos, prefix)
    end = pos + length
    if end > len(data):
        raise DecodingError("malformed field section")
    return (length * 8 // 5 + 1 if huffman else length), end


def section_cost(data: bytes, table_capacity: int, budget: int) -> tuple[int, int, bool]:
    """Bound the decoded size of one encoded field section.

    Args:
        data: the HEADERS frame's payload (prefix and field lines).
        table_capacity: the dynamic table capacity this decoder announced.
        budget: stop reading once the bound passes this.

    Returns:
        ``(bound, fields, well_formed)``: the decoded size is at most
        ``bound`` if ``bound <= budget`` (else the walk stopped early and
        the section is larger still); ``fields`` field lines were read; a
        section that ends inside a field line is not well formed (its cost
        so far is still a bound of what a decoder would do before failing).
    """
    n = len(data)
    bound = fields = 0
    try:
        if not n:
            raise DecodingError("malformed field section")
        # Required Insert Count, then the sign bit and Delta Base.
        _, pos = decode_integer(data, 0, 8)
        if pos >= n:
            raise DecodingError("malformed field section")
        _, pos = decode_integer(data, pos, 7)
        dynamic = table_capacity
        static = STATIC_ENTRY_MAX + ENTRY_OVERHEAD
        static_name = STATIC_NAME_MAX + ENTRY_OVERHEAD
        # One-byte integers (the common case) are read inline: this runs
        # for every request.
        while pos < n:
            if bound > budget:
                return bound, fields, True
            byte = data[pos]
            fields += 1
            if byte & 0x80:  # §4.5.2 indexed field line
                if byte & 0x3F == 0x3F:
                    _, pos = decode_integer(data, pos, 6)
                else:
                    pos += 1
                bound += static if byte & 0x40 else dynamic
                continue
            if byte & 0x40:  # §4.5.4 literal with name reference
                if byte & 0x0F == 0x0F:
                    _, pos = decode_integer(data, pos, 4)
                else:
                    pos += 1
                bound += static_name if byte & 0x10 else dynamic
            elif byte & 0x20:  # §4.5.6 literal with literal name
                name, pos = _string(data, pos, 3)
                bound += name + ENTRY_OVERHEAD
            elif byte & 0x10:  # §4.5.3 indexed field line, post-base index
                _, pos = decode_integer(data, pos, 4)
                bound += dynamic
                continue
            else:  # §4.5.5 literal with post-base name reference
                _, pos = decode_integer(data, pos, 3)
                bound += dynamic
            # The value of the three literal forms: H bit, 7-bit length.
            if pos >= n:
                raise DecodingError("malformed field section")
            byte = data[pos]
            length = byte & 0x7F
            if length == 0x7F:
                length, pos = decode_integer(data, pos, 7)
            else:
                pos += 1
            if pos + length > n:
                raise DecodingError("malformed field section")
            pos += length
            bound += length * 8 // 5 + 1 if byte & 0x80 else length
    except DecodingError:
        return bound, fields, False
    return bound, fields, True


def literal_section(fields: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A field section that refers to no table (RFC 9204 §4.5): the prefix
    (Required Insert Count 0, Delta Base 0), then each field as a literal
    field line with a literal name (§4.5.6), not Huffman-coded.

    Any decoder reads it whatever its dynamic table holds, and it needs no
    encoder state: what is sent when the stack's encoder fails on a section
    (qh3's panics on some sections with a value of a few KB).
    """
    out = bytearray(b"\x00\x00")
    for name, value in fields:
        out += encode_integer(len(name), 3, 0x20)
        out += name
        out += encode_integer(len(value), 7, 0x00)
        out += value
    return bytes(out)
