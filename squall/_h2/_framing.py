"""An HTTP/2 frame (RFC 9113 section 4.1): its 9-octet header and its payload, in one bytes.

Every frame a `squall._h2` connection sends is made by `frame`, two per
response at the least (HEADERS, DATA). The compiled build compiles it with
the rest of `squall._h2` (a C twin saved about 1% of an HTTP/2 response and
was removed: hand-written C must save at least 2% of a headline path).
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["frame"]

# The 24-bit length and the type in one 32-bit word, the flags, the stream
# (its reserved bit included: the caller's to keep clear).
_HEAD: Final = struct.Struct(">LBL").pack
_PAYLOAD_MAX: Final = 0xFFFFFF


def frame(kind: int, flags: int, stream_id: int, payload: bytes | bytearray | memoryview) -> bytes:
    """The frame of type ``kind`` with ``flags`` on ``stream_id``, carrying ``payload``.

    Raises:
        TypeError: ``kind``, ``flags`` or ``stream_id`` is not an int, or
            ``payload`` is not bytes-like.
        ValueError: ``kind`` or ``flags`` is outside 0-255, ``stream_id``
            outside 0 to 2**32 - 1, or ``payload`` is over 2**24 - 1 bytes.
    """
    n = len(payload)
    # (An OR of ints is negative when one of them is.)
    if (kind | flags) >> 8 or stream_id >> 32 or (kind | flags | stream_id) < 0:
        raise ValueError(
            f"no HTTP/2 frame has type {kind!r}, flags {flags!r}, stream {stream_id!r}"
        )
    if n > _PAYLOAD_MAX:
        raise ValueError(f"an HTTP/2 frame's payload is at most 16777215 bytes, not {n}")
    return _HEAD(n << 8 | kind, flags, stream_id) + payload
