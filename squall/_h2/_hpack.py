"""HPACK (RFC 7541): a stateless encoder, and a decoder for either end.

`StatelessEncoder`: ``h2``'s encoder searches and updates the dynamic table
field by field in Python, which is most of the cost of a small response.
This one never inserts into the dynamic table: a field is an index into
the static table (Appendix A) when name and value match, else a literal
"without indexing" with the static name index when there is one. That is
valid whatever table size the client allows, and an encoded field depends
only on the field, so the encodings of recurring fields are memoized.

`Decoder`: heads, decoded straight to text (latin-1: one character
per byte, as HTTP/1.1 heads are), with the dynamic table holding text too,
so a field the client sends as an index costs one list lookup. Huffman
strings (Appendix B) are decoded four bits at a time by a table built at
import from the code lengths, and memoized.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "Decoder",
    "DecodingError",
    "HeaderListTooLarge",
    "StatelessEncoder",
    "decode_integer",
    "encode_integer",
    "encoded_field",
    "encoded_status",
    "encoded_string",
    "literal_name",
]

# RFC 7541 Appendix A, in order (index = position + 1).
_STATIC: Final[tuple[tuple[bytes, bytes], ...]] = (
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

_FULL: Final[dict[tuple[bytes, bytes], int]] = {
    (name, value): index for index, (name, value) in enumerate(_STATIC, 1) if value
}
# The first index of each name (a name may have several entries).
_NAMES: Final[dict[bytes, int]] = {
    _STATIC[index - 1][0]: index for index in range(len(_STATIC), 0, -1)
}

# Bounds the memo: header values such as Date and Etag keep changing.
_MEMO_MAX: Final = 4096
# Only short fields are memoized, so that the memo's memory stays small
# (a few hundred KB at most) whatever fields come and go.
_MEMO_FIELD_MAX: Final = 256


def encode_integer(value: int, prefix_bits: int, first: int) -> bytes:
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
    return encode_integer(len(data), 7, 0x00) + data


def _field(name: bytes, value: bytes) -> bytes:
    index = _FULL.get((name, value))
    if index is not None:
        return encode_integer(index, 7, 0x80)  # §6.1 indexed field
    index = _NAMES.get(name)
    if index is not None:
        # §6.2.2 literal without indexing, indexed name
        return encode_integer(index, 4, 0x00) + _string(value)
    return b"\x00" + _string(name) + _string(value)


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


class StatelessEncoder:
    """An HPACK encoder that never uses the dynamic table: `encode_response`
    for the server's heads, `encode` for any header list."""

    def __init__(self) -> None:
        self.header_table_size = 4096
        # Keyed by the field as given (bytes or text), so a recurring field
        # costs one dict lookup.
        self._memo: dict[tuple[str | bytes, str | bytes], bytes] = {}

    def encode_field(self, field: tuple[str | bytes, str | bytes]) -> bytes:
        memo = self._memo
        encoded = memo.get(field)
        if encoded is None:
            encoded = _field(_as_bytes(field[0]), _as_bytes(field[1]))
            if len(encoded) <= _MEMO_FIELD_MAX:
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[(field[0], field[1])] = encoded
        return encoded

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """Encode a header list (names lowercase, as bytes) into a header block."""
        encode = self.encode_field
        return b"".join([encode(field) for field in headers])

    def encode_response(
        self, status: int, headers: Iterable[tuple[str | bytes, str | bytes]]
    ) -> bytes:
        """A response head: ``:status``, then ``headers`` (names lowercase;
        bytes as they are, text as UTF-8)."""
        memo = self._memo
        parts = [_STATUS.get(status) or _field(b":status", str(status).encode("ascii"))]
        for field in headers:
            encoded = memo.get(field)
            parts.append(encoded if encoded is not None else self.encode_field(field))
        return b"".join(parts)


_STATUS: Final = {code: _field(b":status", str(code).encode("ascii")) for code in range(100, 600)}


def encoded_status(status: int) -> bytes:
    """``:status`` (a three-digit code) as a field of a response head block."""
    return _STATUS.get(status) or _field(b":status", str(status).encode("ascii"))


def encoded_field(name: bytes, value: bytes) -> bytes:
    """One field (``name`` lowercase) as `StatelessEncoder` encodes it."""
    return _field(name, value)


#: What `literal_name` returns for a name with a value in the static table:
#: its fields go through `encoded_field`.
_FULL_INDEX: Final = b"\x00full"


def literal_name(name: bytes) -> bytes:
    """The start of a field named ``name`` (lowercase) as `StatelessEncoder`
    encodes it when its value is not in the static table: the value's
    `encoded_string` follows. `_FULL_INDEX` for the names that have a value
    in the static table (a response can carry only ``accept-encoding``)."""
    if any(entry[0] == name for entry in _FULL):
        return _FULL_INDEX
    index = _NAMES.get(name)
    if index is not None:
        return encode_integer(index, 4, 0x00)  # §6.2.2, indexed name
    return b"\x00" + _string(name)


def encoded_string(data: bytes) -> bytes:
    """RFC 7541 §5.2: a string literal, not Huffman-coded."""
    return _string(data)


# -- decoding ------------------------------------------------------------------------


class DecodingError(ValueError):
    """A header block that is not valid HPACK (a COMPRESSION_ERROR, RFC 9113 §4.3)."""


class HeaderListTooLarge(DecodingError):
    """The decoded header list is over the limit (RFC 9113 §6.5.2 counting)."""


_STATIC_TEXT: Final[tuple[tuple[str, str], ...]] = tuple(
    (name.decode("latin-1"), value.decode("latin-1")) for name, value in _STATIC
)
_ENTRY_OVERHEAD: Final = 32  # RFC 7541 §4.1
_MAX_INTEGER: Final = 1 << 32  # far above any table or string size we accept


def decode_integer(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    """RFC 7541 §5.1: the integer at ``pos`` with a ``prefix``-bit prefix, and
    the position after it (QPACK's integers too, RFC 9204 §4.1.1).

    Raises:
        DecodingError: truncated, or over 2**32.
    """
    mask = (1 << prefix) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise DecodingError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if value > _MAX_INTEGER:
            raise DecodingError("integer too large")
        if not byte & 0x80:
            return value, pos
        shift += 7


# RFC 7541 Appendix B, the "len in bits" column: the code length of each
# symbol 0-255 and EOS (256), one base-32 digit each. The code is canonical
# (shorter codes first, then by symbol), so the lengths give the codes.
_CODE_LENGTHS: Final = (
    "dnsssssssoussussssssssusssssssss6aacd68baa8b8666555666666678f6ca"
    "d67777777777777777777777878djde6f56565666577666567655677777fbeds"
    "kmkkmmmnmnnnnnonoomnonnnnlmnmnnomlkmmnnlnmmolmnnllmlnmnnkmmmnmmn"
    "qqkjmnmpqqqrrqopjlqrrqrollqqsrrrkoklmllnmmppooqnqrqqrrrrrsrrrrrq"
    "u"
)


def huffman_code() -> list[tuple[int, int]]:
    """(code, length in bits) of each symbol, from `_CODE_LENGTHS`."""
    lengths = [int(digit, 32) for digit in _CODE_LENGTHS]
    codes = [(0, 0)] * len(lengths)
    code = 0
    previous = 0
    for symbol in sorted(range(len(lengths)), key=lambda s: (lengths[s], s)):
        length = lengths[symbol]
        code <<= length - previous
        codes[symbol] = (code, length)
        code += 1
        previous = length
    return codes


def _huffman_tables() -> tuple[list[int], list[int], list[bool]]:
    """Walks the Huffman code (RFC 7541 Appendix B) into a 4-bit state machine.

    States are the code tree's inner nodes (0 is the root). For state ``s``
    and nibble ``x``, entry ``s * 16 + x`` gives the next state and the
    symbol completed on the way (-1 if none; no code is shorter than five
    bits, so a nibble completes at most one). Landing on EOS (256) or on a
    bit sequence that is no code gives state -1. ``accept[s]``: input may
    end in ``s`` (padding: at most seven bits, all ones, §5.2).
    """
    # The code tree: children[node] = [zero, one]; a leaf is ~symbol.
    children: list[list[int]] = [[0, 0]]
    ones: list[bool] = [True]  # the path to the node is all 1 bits
    depth: list[int] = [0]
    for symbol, (code, length) in enumerate(huffman_code()):
        node = 0
        for i in range(length - 1, -1, -1):
            bit = (code >> i) & 1
            if i == 0:
                children[node][bit] = ~symbol
                break
            nxt = children[node][bit]
            if nxt == 0:
                nxt = len(children)
                children.append([0, 0])
                ones.append(ones[node] and bit == 1)
                depth.append(depth[node] + 1)
                children[node][bit] = nxt
            node = nxt
    states = len(children)
    next_state = [-1] * (states * 16)
    emitted = [-1] * (states * 16)
    for state in range(states):
        for nibble in range(16):
            node = state
            symbol = -1
            for i in (3, 2, 1, 0):
                child = children[node][(nibble >> i) & 1]
                if child < 0:
                    if ~child == 256 or symbol >= 0:
                        node = -1  # EOS in a string (§5.2), or two symbols
                        break
                    symbol = ~child
                    node = 0
                elif child == 0:
                    node = -1
                    break
                else:
                    node = child
            next_state[state * 16 + nibble] = node
            emitted[state * 16 + nibble] = symbol
    accept = [ones[n] and depth[n] <= 7 for n in range(states)]
    return next_state, emitted, accept


_H_TABLES: Final = _huffman_tables()
_H_NEXT: Final = _H_TABLES[0]
_H_SYMBOL: Final = _H_TABLES[1]
_H_ACCEPT: Final = _H_TABLES[2]
_HUFFMAN_MEMO_MAX: Final = 1024

# The byte-at-a-time machine, composed from the nibble one on first use
# (64 K entries, a few tens of milliseconds): half the steps per byte, and
# no check per step: a wrong code falls into the dead state, which only
# leads to itself and is looked at once, at the end.
_byte_tables: Final[list[tuple[list[int], list[bytes], int]]] = []


def _byte_machine() -> tuple[list[int], list[bytes], int]:
    if _byte_tables:
        return _byte_tables[0]
    states = len(_H_ACCEPT)
    dead = states
    nxt = [dead] * ((states + 1) << 8)
    emit = [b""] * ((states + 1) << 8)
    singles = [bytes((n,)) for n in range(256)]
    # What the second nibble does depends only on the state the first one
    # reached: sixteen entries at a time.
    ends = []
    seconds = []
    for middle in range(states):
        row = range(middle << 4, (middle << 4) + 16)
        ends.append([_H_NEXT[j] if _H_NEXT[j] >= 0 else dead for j in row])
        seconds.append([singles[_H_SYMBOL[j]] if _H_SYMBOL[j] >= 0 else b"" for j in row])
    for state in range(states):
        for high in range(16):
            i = (state << 4) | high
            middle = _H_NEXT[i]
            if middle < 0:
                continue  # every byte from here is dead
            base = (state << 8) | (high << 4)
            nxt[base : base + 16] = ends[middle]
            first = _H_SYMBOL[i]
            if first >= 0:
                head = singles[first]
                emit[base : base + 16] = [head + tail for tail in seconds[middle]]
            else:
                emit[base : base + 16] = seconds[middle]
    _byte_tables.append((nxt, emit, dead))
    return _byte_tables[0]


def _huffman(data: bytes) -> str:
    nxt, emit, dead = _byte_machine()
    state = 0
    out = bytearray()
    for byte in data:
        i = (state << 8) | byte
        state = nxt[i]
        out += emit[i]
    if state == dead:
        raise DecodingError("invalid Huffman code")
    if not _H_ACCEPT[state]:
        raise DecodingError("invalid Huffman padding")
    return out.decode("latin-1")


class Decoder:
    """The decoding side of one connection's HPACK context (RFC 7541).

    Args:
        max_header_list_size: Largest decoded header list: the sum of each
            field's name and value length plus 32 (RFC 9113 §6.5.2).
        max_table_size: The SETTINGS_HEADER_TABLE_SIZE we allow (4096,
            the default, which we do not change).
    """

    __slots__ = (
        "max_header_list_size",
        "max_table_size",
        "_table",
        "_size",
        "_limit",
        "_memo",
        "_changes",
        "_last_block",
        "_last_changes",
        "_last_fields",
    )

    def __init__(self, max_header_list_size: int, max_table_size: int = 4096) -> None:
        self.max_header_list_size = max_header_list_size
        self.max_table_size = max_table_size
        # Newest entry last: dynamic index 62 is _table[-1].
        self._table: list[tuple[str, str]] = []
        self._size = 0
        self._limit = max_table_size  # the size the encoder last set
        self._memo: dict[bytes, str] = {}
        # The last block that left the table as it found it, and what it
        # decoded to: a client that repeats a request (h2load, a poller)
        # sends the same few indexed bytes each time, and they mean the
        # same fields until the table changes. `_changes` counts changes.
        self._changes = 0
        self._last_block = b""
        self._last_changes = -1
        self._last_fields: list[tuple[str, str]] = []

    def _string(self, data: bytes, pos: int) -> tuple[str, int]:
        """RFC 7541 §5.2: a string literal, Huffman-coded or not."""
        huffman = data[pos] & 0x80
        length, pos = decode_integer(data, pos, 7)
        end = pos + length
        if end > len(data):
            raise DecodingError("truncated string")
        raw = data[pos:end]
        if not huffman:
            return raw.decode("latin-1"), end
        memo = self._memo
        text = memo.get(raw)
        if text is None:
            text = _huffman(raw)
            if length <= _MEMO_FIELD_MAX:
                if len(memo) >= _HUFFMAN_MEMO_MAX:
                    memo.clear()
                memo[raw] = text
        return text, end

    def _get(self, index: int) -> tuple[str, str]:
        if 0 < index <= 61:
            return _STATIC_TEXT[index - 1]
        table = self._table
        if index == 0 or index - 61 > len(table):
            raise DecodingError(f"invalid table index {index}")
        return table[61 - index]

    def _add(self, field: tuple[str, str]) -> None:
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        table = self._table
        # §4.4: evict the oldest until it fits; an entry larger than the
        # whole table empties it and is not added.
        while table and self._size + size > self._limit:
            old = table.pop(0)
            self._size -= len(old[0]) + len(old[1]) + _ENTRY_OVERHEAD
        if size <= self._limit:
            table.append(field)
            self._size += size
        self._changes += 1

    def _resize(self, size: int) -> None:
        if size > self.max_table_size:
            raise DecodingError(f"table size update {size} over {self.max_table_size}")
        self._limit = size
        self._changes += 1
        table = self._table
        while table and self._size > size:
            old = table.pop(0)
            self._size -= len(old[0]) + len(old[1]) + _ENTRY_OVERHEAD

    def decode(self, data: bytes) -> list[tuple[str, str]]:
        """Decode one complete header block into (name, value) text pairs.

        The list returned may be the one an identical earlier block gave
        (while the dynamic table is unchanged): callers do not modify it.

        Raises:
            HeaderListTooLarge: the list is over ``max_header_list_size``.
            DecodingError: the block is not valid HPACK.
        """
        changes = self._changes
        if changes == self._last_changes and data == self._last_block:
            return self._last_fields
        fields: list[tuple[str, str]] = []
        total = 0
        limit = self.max_header_list_size
        pos = 0
        n = len(data)
        get = self._get
        while pos < n:
            byte = data[pos]
            if byte & 0x80:  # §6.1 indexed field
                if byte != 0x80 and byte < 0xFF:
                    field = get(byte & 0x7F)
                    pos += 1
                else:
                    index, pos = decode_integer(data, pos, 7)
                    field = get(index)
            elif byte & 0x40:  # §6.2.1 literal with incremental indexing
                index, pos = decode_integer(data, pos, 6)
                name, value, pos = self._literal(data, pos, index)
                field = (name, value)
                self._add(field)
            elif byte & 0x20:  # §6.3 dynamic table size update
                if fields:
                    raise DecodingError("table size update after a field")
                size, pos = decode_integer(data, pos, 5)
                self._resize(size)
                continue
            else:  # §6.2.2, §6.2.3 literal without / never indexed
                index, pos = decode_integer(data, pos, 4)
                name, value, pos = self._literal(data, pos, index)
                field = (name, value)
            total += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if total > limit:
                raise HeaderListTooLarge(f"header list larger than {limit} bytes")
            fields.append(field)
        if self._changes == changes:
            # Decoding did not touch the table: these bytes mean these
            # fields until something does.
            self._last_block = data
            self._last_changes = changes
            self._last_fields = fields
        return fields

    def _literal(self, data: bytes, pos: int, index: int) -> tuple[str, str, int]:
        """A literal field's name (or its index) and value; and where it ended."""
        if pos >= len(data):
            raise DecodingError("truncated field")
        if index:
            name = self._get(index)[0]
        else:
            name, pos = self._string(data, pos)
            if pos >= len(data):
                raise DecodingError("truncated field")
        value, pos = self._string(data, pos)
        return name, value, pos
