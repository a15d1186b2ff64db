"""Tornado's private permessage-deflate helpers, as thin shims over `squall._ws`.

Programs and tests written for Tornado reach for these names; Squall's own
code uses `squall._ws.PerMessageDeflate` directly.
"""

from __future__ import annotations

from typing import Any, Optional

from squall._ws._deflate import PerMessageDeflate
from squall._ws._errors import RemoteProtocolError


class _DecompressTooLargeError(Exception):
    """A compressed message inflated past the connection's size limit."""


def _level(compression_options: Optional[dict[str, Any]], key: str, default: int) -> int:
    return int((compression_options or {}).get(key, default))


class _PerMessageDeflateCompressor:
    """Compresses whole messages; ``persistent`` keeps the context across them."""

    def __init__(
        self,
        persistent: bool,
        max_wbits: Optional[int],
        compression_options: Optional[dict[str, Any]] = None,
    ) -> None:
        self._ext = PerMessageDeflate(
            client=False,
            server_no_context_takeover=not persistent,
            server_max_window_bits=max_wbits or 15,
            compression_level=_level(compression_options, "compression_level", 6),
            mem_level=_level(compression_options, "mem_level", 8),
        )

    def compress(self, data: bytes) -> bytes:
        return self._ext.compress(data)


class _PerMessageDeflateDecompressor:
    """Decompresses whole messages, refusing any that inflate past ``max_message_size``."""

    def __init__(
        self,
        persistent: bool,
        max_wbits: Optional[int],
        max_message_size: int,
        compression_options: Optional[dict[str, Any]] = None,
    ) -> None:
        self._max = max_message_size
        self._ext = PerMessageDeflate(
            client=True,
            server_no_context_takeover=not persistent,
            server_max_window_bits=max_wbits or 15,
        )

    def decompress(self, data: bytes) -> bytes:
        try:
            return self._ext.decompress(data, True, self._max)
        except RemoteProtocolError as exc:
            if exc.close_code == 1009:
                raise _DecompressTooLargeError(str(exc)) from exc
            raise
