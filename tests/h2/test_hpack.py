"""squall._h2._hpack.Decoder: RFC 7541's examples, the hpack package as a peer, and
every way a block can be wrong."""

from __future__ import annotations

import pytest

hpack = pytest.importorskip("hpack", reason="the http2 extra (h2, hpack) is not installed")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from squall._h2._hpack import (  # noqa: E402
    Decoder,
    DecodingError,
    HeaderListTooLarge,
    StatelessEncoder,
    _huffman,
    huffman_code,
)


def test_huffman_code_is_rfc7541_appendix_b() -> None:
    # The code built from our table of lengths is the hpack package's, code
    # for code (both transcribe RFC 7541 Appendix B).
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

    assert huffman_code() == list(zip(REQUEST_CODES, REQUEST_CODES_LENGTH, strict=True))


def test_rfc7541_c3_requests_without_huffman() -> None:
    d = Decoder(65536)
    first = bytes.fromhex("828684410f7777772e6578616d706c652e636f6d")
    assert d.decode(first) == [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ]
    second = bytes.fromhex("828684be58086e6f2d6361636865")
    assert d.decode(second) == [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ]
    third = bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565")
    assert d.decode(third)[-1] == ("custom-key", "custom-value")
    # C.3.3: the table holds three entries, newest first at index 62.
    assert d._get(62) == ("custom-key", "custom-value")
    assert d._get(63) == ("cache-control", "no-cache")
    assert d._get(64) == (":authority", "www.example.com")
    assert d._size == 164


def test_rfc7541_c4_requests_with_huffman() -> None:
    d = Decoder(65536)
    assert d.decode(bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))[-1] == (
        ":authority",
        "www.example.com",
    )
    assert d.decode(bytes.fromhex("828684be5886a8eb10649cbf"))[-1] == ("cache-control", "no-cache")
    third = bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")
    assert d.decode(third)[-1] == ("custom-key", "custom-value")
    assert d._size == 164


def test_eviction_and_size_updates() -> None:
    d = Decoder(65536, max_table_size=100)
    enc = hpack.Encoder()
    enc.header_table_size = 100
    for i in range(20):
        fields = [("x-field", f"value-{i:04d}" * 2)]
        assert d.decode(enc.encode(fields)) == fields
        assert d._size <= 100
    # Size 0 empties the table; a reference into it is then an error.
    assert d.decode(b"\x20") == []
    assert d._table == [] and d._size == 0
    with pytest.raises(DecodingError, match="invalid table index 62"):
        d.decode(b"\xbe")
    # An entry larger than the whole table empties it and is not added.
    d = Decoder(65536, max_table_size=64)
    d.decode(b"\x40\x01a\x01b")
    assert len(d._table) == 1
    d.decode(b"\x40\x01c" + b"\x7f\x28" + b"v" * 167)
    assert d._table == []


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x80", "invalid table index 0"),
        (b"\xbe", "invalid table index 62"),
        (b"\xff\x80\x80\x80\x80\x80\x80", "integer"),  # truncated, then too large
        (b"\xff" + b"\xff" * 6 + b"\x01", "integer too large"),
        (b"\x40\x05ab", "truncated string"),
        (b"\x40", "truncated"),
        (b"\x04", "truncated field"),
        (b"\x00\x01a", "truncated field"),
        (b"\x82\x20", "table size update after a field"),
        (b"\x3f\xe2\x1f", "table size update 4097 over 4096"),
        (b"\x04\x81\x00", "invalid Huffman padding"),  # eight zero bits: no code
        (b"\x04\x81\x18", "invalid Huffman padding"),  # "0" (00000), then 000
        (b"\x04\x84\xff\xff\xff\xff", "invalid Huffman code"),  # EOS in a string
    ],
)
def test_invalid_blocks(block: bytes, message: str) -> None:
    with pytest.raises((DecodingError, IndexError)) as info:
        Decoder(65536).decode(block)
    if isinstance(info.value, DecodingError):
        assert message in str(info.value)


def test_header_list_limit_counts_each_field_plus_32() -> None:
    fields = [("x-a", "b" * 60)]  # 3 + 60 + 32 = 95
    block = hpack.Encoder().encode(fields * 2)
    assert Decoder(190).decode(block) == fields * 2
    with pytest.raises(HeaderListTooLarge, match="larger than 189"):
        Decoder(189).decode(block)


def test_huffman_every_byte() -> None:
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

    data = bytes(range(256)) * 2
    encoded = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)
    assert _huffman(encoded) == data.decode("latin-1")


_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(st.lists(st.tuples(_names, _text), max_size=8), min_size=1, max_size=6),
    huffman=st.booleans(),
    table_size=st.sampled_from([0, 64, 256, 4096]),
)
def test_decodes_what_hpack_encodes(
    blocks: list[list[tuple[str, str]]], huffman: bool, table_size: int
) -> None:
    enc = hpack.Encoder()
    enc.header_table_size = table_size
    dec = Decoder(1 << 20)
    for fields in blocks:
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in fields]
        assert dec.decode(enc.encode(raw, huffman=huffman)) == fields


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_raises_only_decoding_errors(data: bytes) -> None:
    try:
        Decoder(4096).decode(data)
    except (DecodingError, IndexError):
        pass


def test_encoder_output_decodes() -> None:
    fields = [(b":status", b"404"), (b"content-type", b"text/html"), (b"x-y", b"z")]
    assert Decoder(65536).decode(StatelessEncoder().encode(fields)) == [
        (n.decode(), v.decode()) for n, v in fields
    ]


def test_repeated_block_reuses_its_fields_until_the_table_changes() -> None:
    # A client repeating a request sends the same indexed bytes: decoded
    # once, then handed back while the table stays as it was.
    decoder = Decoder(65536)
    first = decoder.decode(b"\x82\x40\x01a\x01b")  # :method GET, then a: b into the table
    assert first == [(":method", "GET"), ("a", "b")]
    again = b"\x82\xbe"  # :method GET, dynamic entry 62
    fields = decoder.decode(again)
    assert fields == [(":method", "GET"), ("a", "b")]
    assert decoder.decode(again) is fields
    # A new entry moves index 62 to it: the same bytes mean something else.
    assert decoder.decode(b"\x40\x01c\x01d") == [("c", "d")]
    assert decoder.decode(again) == [(":method", "GET"), ("c", "d")]
    # A size update empties the table: index 62 no longer exists.
    assert decoder.decode(b"\x20") == []
    with pytest.raises(DecodingError):
        decoder.decode(again)
