"""A stateless HPACK encoder for response heads (RFC 7541).

``h2``'s encoder searches and updates the dynamic table field by field in
Python, which is most of the cost of a small response. This one never
inserts into the dynamic table: a field is an index into the static table
(Appendix A) when name and value match, else a literal "without indexing"
with the static name index when there is one. That is valid whatever
table size the client allows, and an encoded field depends only on the
field, so the encodings of recurring fields are memoized.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["StatelessEncoder"]

# RFC 7541 Appendix A, in order (index = position + 1).
_STATIC: tuple[tuple[bytes, bytes], ...] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)

_FULL: dict[tuple[bytes, bytes], int] = {}
_NAMES: dict[bytes, int] = {}
for _i, (_name, _value) in enumerate(_STATIC, 1):
    if _value:
        _FULL[(_name, _value)] = _i
    _NAMES.setdefault(_name, _i)

# Bounds the memo: header values such as Date and Etag keep changing.
_MEMO_MAX = 4096


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 §5.1: ``value`` with an N-bit prefix; ``first`` holds the flag bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    """RFC 7541 §5.2: a string literal, not Huffman-coded."""
    return _integer(len(data), 7, 0x00) + data


def _field(name: bytes, value: bytes) -> bytes:
    index = _FULL.get((name, value))
    if index is not None:
        return _integer(index, 7, 0x80)  # §6.1 indexed field
    index = _NAMES.get(name)
    if index is not None:
        # §6.2.2 literal without indexing, indexed name
        return _integer(index, 4, 0x00) + _string(value)
    return b"\x00" + _string(name) + _string(value)


class StatelessEncoder:
    """Drop-in for ``hpack.Encoder`` where ``h2`` calls it (``encode`` and
    ``header_table_size``) that never uses the dynamic table."""

    def __init__(self) -> None:
        self.header_table_size = 4096
        self._memo: dict[tuple[bytes, bytes], bytes] = {}

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """Encode a header list (names lowercase, as bytes) into a header block."""
        memo = self._memo
        parts = []
        for field in headers:
            key = (field[0], field[1])
            encoded = memo.get(key)
            if encoded is None:
                encoded = _field(key[0], key[1])
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[key] = encoded
            parts.append(encoded)
        return b"".join(parts)
