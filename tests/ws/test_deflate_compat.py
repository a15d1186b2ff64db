"""Tornado's private permessage-deflate names, kept as shims over the _ws core."""

import pytest

from squall.websocket import (
    _DecompressTooLargeError,
    _PerMessageDeflateCompressor,
    _PerMessageDeflateDecompressor,
)


@pytest.mark.parametrize("persistent", [True, False])
def test_round_trip_over_several_messages(persistent: bool) -> None:
    comp = _PerMessageDeflateCompressor(persistent, 10, {"compression_level": 9, "mem_level": 5})
    dec = _PerMessageDeflateDecompressor(persistent, 10, 1 << 20)
    for message in [b"hello" * 50, b"", b"hello" * 50, bytes(range(256))]:
        assert dec.decompress(comp.compress(message)) == message


def test_message_over_the_limit_is_refused() -> None:
    data = _PerMessageDeflateCompressor(False, None).compress(b"x" * 1000)
    assert _PerMessageDeflateDecompressor(False, None, 1000).decompress(data) == b"x" * 1000
    with pytest.raises(_DecompressTooLargeError, match="too big"):
        _PerMessageDeflateDecompressor(False, None, 999).decompress(data)


def test_garbage_is_a_protocol_error_not_a_size_error() -> None:
    from squall._ws._errors import RemoteProtocolError

    with pytest.raises(RemoteProtocolError):
        _PerMessageDeflateDecompressor(False, None, 100).decompress(b"\xff\xff\xff")
