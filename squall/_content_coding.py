"""HTTP content codings (RFC 9110 §8.4.1): gzip always, br and zstd when installed.

Shared by the server's output transform, ``decompress_request`` and the
client's ``decompress_response``. Decoders are bounded: `Decoder.read` never
returns more than it is asked for and never holds more than a small, fixed
amount of output ahead, whatever the input expands to, so a compression bomb
costs its reader no more memory than a plain body of the size it accepts.

``br`` needs the ``Brotli`` package (1.2 or newer, for bounded output) and
``zstd`` the ``zstandard`` package: ``pip install squall[brotli,zstd]``.
"""

from __future__ import annotations

import zlib
from typing import Any, Optional

__all__ = [
    "ContentCodingError",
    "Decoder",
    "Encoder",
    "available_codings",
    "choose_coding",
    "make_decoder",
    "make_encoder",
    "parse_accept_encoding",
]

try:
    import brotli as _brotli  # type: ignore[import-untyped,import-not-found,unused-ignore]

    # Bounded decoding needs process(..., output_buffer_limit=) (Brotli 1.2).
    if not hasattr(_brotli.Decompressor(), "can_accept_more_data"):  # pragma: no cover
        _brotli = None
except ImportError:  # pragma: no cover - depends on the installed extras
    _brotli = None

try:
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the installed extras
    _zstd = None  # type: ignore[assignment]

_GZIP_WBITS = 16 + zlib.MAX_WBITS
# RFC 9659 §3: a zstd content coding's window is at most 8 MB, which bounds
# the decoder's own memory too.
_ZSTD_MAX_WINDOW = 8 * 1024 * 1024
# A zstd block expands to at most 128 KiB and takes at least 4 bytes
# (RFC 8878 §3.1.1.2), so feeding the library this much input at a time
# bounds one call's output to about 2 MiB, whatever the input.
_ZSTD_SLICE = 64


class ContentCodingError(ValueError):
    """Content-coded data that does not decode (corrupt, truncated or trailing garbage)."""


def available_codings() -> tuple[str, ...]:
    """The codings this process can encode and decode, best first."""
    names: list[str] = []
    if _brotli is not None:
        names.append("br")
    if _zstd is not None:
        names.append("zstd")
    names.append("gzip")
    return tuple(names)


def _normalize(coding: str) -> str:
    name = coding.strip().lower()
    # RFC 9110 §8.4.1.3: x-gzip is an alias of gzip.
    return "gzip" if name == "x-gzip" else name


class Decoder:
    """An incremental, bounded decoder for one content coding.

    `feed` the coded bytes as they arrive, then call `read` until it returns
    ``b""`` (it needs more input); after the last input, `finish` checks that
    the stream was complete.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def feed(self, data: bytes) -> None:
        """Add coded input."""
        raise NotImplementedError

    def read(self, max_length: int) -> bytes:
        """Up to ``max_length`` (> 0) decoded bytes; ``b""`` when more input is needed.

        Raises:
            ContentCodingError: the input is not valid for this coding.
        """
        raise NotImplementedError

    def finish(self) -> None:
        """Check that the input ended at the end of a complete stream.

        Raises:
            ContentCodingError: the stream is truncated.
        """
        raise NotImplementedError

    def _error(self, what: str = "data") -> ContentCodingError:
        return ContentCodingError(f"invalid {self.name} {what}")


class _GzipDecoder(Decoder):
    """gzip, several members allowed (RFC 1952 §2.2)."""

    __slots__ = ("_dec", "_input", "_started", "_full")

    def __init__(self) -> None:
        super().__init__("gzip")
        self._dec = zlib.decompressobj(_GZIP_WBITS)
        self._input = b""
        self._started = False
        # The last read filled its room: zlib may hold output without input.
        self._full = False

    def feed(self, data: bytes) -> None:
        self._input = self._input + data if self._input else bytes(data)

    def read(self, max_length: int) -> bytes:
        out = b""
        while len(out) < max_length and (self._input or self._full):
            room = max_length - len(out)
            try:
                piece = self._dec.decompress(self._input, room)
            except zlib.error:
                raise self._error() from None
            self._started = True
            self._full = len(piece) == room
            out += piece
            if self._dec.eof:
                # The member is complete: what follows starts the next one.
                self._input = self._dec.unused_data
                self._dec = zlib.decompressobj(_GZIP_WBITS)
                self._started = False
                self._full = False
            else:
                self._input = self._dec.unconsumed_tail
                if not piece:
                    break
        return out

    def finish(self) -> None:
        if self._started and not self._dec.eof:
            raise self._error()


class _BrotliDecoder(Decoder):
    """br (RFC 7932), through Brotli's bounded ``output_buffer_limit``."""

    __slots__ = ("_dec", "_input", "_pending", "_fed")

    def __init__(self) -> None:
        super().__init__("br")
        assert _brotli is not None
        self._dec: Any = _brotli.Decompressor()
        self._input = b""
        self._pending = b""
        self._fed = False

    def feed(self, data: bytes) -> None:
        if data:
            self._fed = True
        self._input = self._input + data if self._input else bytes(data)

    def read(self, max_length: int) -> bytes:
        out = self._pending
        self._pending = b""
        dec = self._dec
        while len(out) < max_length:
            try:
                if dec.is_finished():
                    if self._input:
                        raise self._error("data (bytes after the end)")
                    break
                # New input only when the decoder asks for it; until then
                # (and when there is none) it may still hold output.
                data = b""
                if self._input and dec.can_accept_more_data():
                    data, self._input = self._input, b""
                piece = dec.process(data, output_buffer_limit=max_length - len(out))
            except _brotli.error:
                raise self._error() from None
            if not piece and not data:
                break
            out += piece
        if len(out) > max_length:
            out, self._pending = out[:max_length], out[max_length:]
        return out

    def finish(self) -> None:
        # No body at all (HEAD, 304) is not a truncated one.
        if self._fed and (self._pending or self._input or not self._dec.is_finished()):
            raise self._error("data (truncated)")


class _ZstdDecoder(Decoder):
    """zstd (RFC 8878), one or more frames, window at most 8 MB."""

    __slots__ = ("_factory", "_dec", "_input", "_pos", "_pending", "_in_frame")

    def __init__(self) -> None:
        super().__init__("zstd")
        assert _zstd is not None
        self._factory = _zstd.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._dec: Any = self._factory.decompressobj()
        self._input = b""
        self._pos = 0
        self._pending = b""
        self._in_frame = False

    def feed(self, data: bytes) -> None:
        self._input = self._input[self._pos :] + data
        self._pos = 0

    def read(self, max_length: int) -> bytes:
        out = self._pending
        self._pending = b""
        data = self._input
        while len(out) < max_length and self._pos < len(data):
            piece = data[self._pos : self._pos + _ZSTD_SLICE]
            self._pos += len(piece)
            try:
                out += self._dec.decompress(piece)
            except _zstd.ZstdError:
                raise self._error() from None
            self._in_frame = True
            if self._dec.eof:
                # Another frame may follow (RFC 8878 §3).
                data = self._input = self._dec.unused_data + data[self._pos :]
                self._pos = 0
                self._dec = self._factory.decompressobj()
                self._in_frame = False
        if self._pos >= len(data):
            self._input = b""
            self._pos = 0
        if len(out) > max_length:
            out, self._pending = out[:max_length], out[max_length:]
        return out

    def finish(self) -> None:
        if self._pending or self._pos < len(self._input) or self._in_frame:
            raise self._error("data (truncated)")


def make_decoder(coding: str) -> Optional[Decoder]:
    """A decoder for ``coding`` (a ``Content-Encoding`` value), or None if we have none.

    ``identity`` and codings whose package is not installed give None: the
    body is passed on still coded, with its ``Content-Encoding`` kept.
    """
    name = _normalize(coding)
    if name == "gzip":
        return _GzipDecoder()
    if name == "br" and _brotli is not None:
        return _BrotliDecoder()
    if name == "zstd" and _zstd is not None:
        return _ZstdDecoder()
    return None


class Encoder:
    """An incremental encoder; `encode` with ``finishing`` ends the stream.

    Each call's output is decodable on its own (a sync flush), so a streamed
    response reaches the client chunk by chunk.
    """

    __slots__ = ("name", "_obj", "_kind")

    def __init__(self, name: str, obj: Any, kind: int) -> None:
        self.name = name
        self._obj = obj
        self._kind = kind

    def encode(self, data: bytes, finishing: bool) -> bytes:
        """Encode ``data``; with ``finishing``, end the stream."""
        obj = self._obj
        if self._kind == 0:
            out: bytes = obj.compress(data)
            out += obj.flush(zlib.Z_FINISH if finishing else zlib.Z_SYNC_FLUSH)
            return out
        if self._kind == 1:
            out = obj.process(data) if data else b""
            out += obj.finish() if finishing else obj.flush()
            return out
        out = obj.compress(data) if data else b""
        assert _zstd is not None
        mode = _zstd.COMPRESSOBJ_FLUSH_FINISH if finishing else _zstd.COMPRESSOBJ_FLUSH_BLOCK
        result: bytes = out + obj.flush(mode)
        return result


#: Default levels: quick enough to compress on every response.
GZIP_LEVEL = 6
BROTLI_QUALITY = 4
ZSTD_LEVEL = 3


def make_encoder(coding: str, level: Optional[int] = None) -> Encoder:
    """An encoder for ``coding`` (one of `available_codings`).

    Raises:
        ValueError: the coding is unknown or its package is not installed.
    """
    name = _normalize(coding)
    if name == "gzip":
        obj: Any = zlib.compressobj(
            GZIP_LEVEL if level is None else level, zlib.DEFLATED, _GZIP_WBITS
        )
        return Encoder("gzip", obj, 0)
    if name == "br" and _brotli is not None:
        quality = BROTLI_QUALITY if level is None else level
        return Encoder("br", _brotli.Compressor(quality=quality), 1)
    if name == "zstd" and _zstd is not None:
        # A checksum costs little; levels up to 19 keep the window within
        # RFC 9659's 8 MB.
        comp = _zstd.ZstdCompressor(
            level=ZSTD_LEVEL if level is None else level, write_checksum=True
        )
        return Encoder("zstd", comp.compressobj(), 2)
    raise ValueError(f"no encoder for content coding {coding!r} (installed: {available_codings()})")


def parse_accept_encoding(value: str) -> dict[str, float]:
    """``Accept-Encoding`` as {coding: qvalue} (RFC 9110 §12.5.3), lowercase names.

    A malformed qvalue counts as 0 for its coding (refused, not guessed).
    """
    result: dict[str, float] = {}
    for item in value.split(","):
        name, _, params = item.partition(";")
        name = _normalize(name)
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, val = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(val.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        # A coding listed twice keeps its best weight.
        result[name] = max(q, result.get(name, 0.0))
    return result


def choose_coding(accept_encoding: Optional[str], offered: tuple[str, ...]) -> Optional[str]:
    """The coding of ``offered`` (our preference order) to answer with, or None.

    The client's highest qvalue wins; ties go to our order. ``*`` covers
    codings the header does not name; ``q=0`` refuses one. No header means
    no preference (RFC 9110 §12.5.3), and we then send the body as it is.
    """
    if not accept_encoding:
        return None
    weights = parse_accept_encoding(accept_encoding)
    star = weights.get("*")
    best: Optional[str] = None
    best_q = 0.0
    for name in offered:
        q = weights.get(name, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = name, q
    return best
