"""The permessage-deflate extension (RFC 7692): negotiation and (de)compression.

Options (a dict, as Tornado's ``compression_options``; every key optional):

* ``compression_level`` (zlib level, default 6), ``mem_level`` (default 8);
* ``server_no_context_takeover`` / ``client_no_context_takeover`` (bool):
  ask for (client) or impose (server) a fresh compression context per
  message on that side;
* ``server_max_window_bits`` / ``client_max_window_bits`` (9..15): bound
  the LZ77 window of that side.

A window of 8 bits is declined: zlib silently compresses raw deflate with 9
bits when asked for 8, which a peer decompressing with 8 cannot read.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Final, Optional

from squall._ws._errors import HandshakeError, RemoteProtocolError

__all__ = [
    "PerMessageDeflate",
    "client_accept",
    "client_offer",
    "parse_extensions",
    "server_accept",
]

NAME: Final = "permessage-deflate"
_TAIL: Final = b"\x00\x00\xff\xff"
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_KNOWN_OPTIONS: Final = frozenset(
    (
        "compression_level",
        "mem_level",
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    )
)

Params = list[tuple[str, Optional[str]]]


class PerMessageDeflate:
    """The negotiated extension for one connection: compresses what we send,
    decompresses what we receive.

    Args:
        client: whether we are the client.
        server_no_context_takeover: the server resets its context per message.
        client_no_context_takeover: the client resets its context per message.
        server_max_window_bits: the server's window (9..15).
        client_max_window_bits: the client's window (9..15).
        compression_level: zlib level for what we send.
        mem_level: zlib memLevel for what we send.
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "_level",
        "_local_reset",
        "_local_wbits",
        "_mem_level",
        "_remote_reset",
        "_remote_wbits",
    )

    def __init__(
        self,
        client: bool,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int = 15,
        client_max_window_bits: int = 15,
        compression_level: int = 6,
        mem_level: int = 8,
    ) -> None:
        if client:
            self._local_reset, self._remote_reset = (
                client_no_context_takeover,
                server_no_context_takeover,
            )
            self._local_wbits, self._remote_wbits = client_max_window_bits, server_max_window_bits
        else:
            self._local_reset, self._remote_reset = (
                server_no_context_takeover,
                client_no_context_takeover,
            )
            self._local_wbits, self._remote_wbits = server_max_window_bits, client_max_window_bits
        self._level = compression_level
        self._mem_level = mem_level
        self._compressor: Any = None
        self._decompressor: Any = None

    @property
    def shared_key(self) -> Optional[tuple[int, int, int]]:
        """What decides the bytes `compress` makes, when they depend on nothing else.

        With our side's ``no_context_takeover`` every message is compressed
        from a fresh context, so connections with the same key (zlib level,
        window bits, memLevel) produce the same frame for the same message
        and a broadcast can compress it once for all of them. None when the
        context carries over from message to message (each connection's
        output then depends on what it sent before).
        """
        if not self._local_reset:
            return None
        return (self._level, self._local_wbits, self._mem_level)

    def compress(self, data: bytes) -> bytes:
        """Compresses one whole message (RFC 7692 section 7.2.1)."""
        comp = self._compressor
        if comp is None:
            comp = zlib.compressobj(self._level, zlib.DEFLATED, -self._local_wbits, self._mem_level)
            if not self._local_reset:
                self._compressor = comp
        out: bytes = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(_TAIL):
            out = out[:-4]
        return out

    def decompress(self, data: bytes, final: bool, limit: Optional[int]) -> bytes:
        """Decompresses one frame of a compressed message.

        Args:
            data: the frame's payload.
            final: whether the frame ends the message.
            limit: the most bytes the output may hold, or None.

        Raises:
            RemoteProtocolError: the data is not deflate (1007), or it inflates
                past ``limit`` (1009); decompression stops there, so a small
                frame cannot expand into unbounded memory.
        """
        dec = self._decompressor
        if dec is None:
            # A larger window than the peer's always decodes its stream.
            dec = self._decompressor = zlib.decompressobj(-15)
        if final:
            data += _TAIL
        try:
            out: bytes
            if limit is None:
                out = dec.decompress(data)
            else:
                out = dec.decompress(data, limit + 1)
                if len(out) > limit or dec.unconsumed_tail:
                    raise RemoteProtocolError("message too big after decompression", 1009)
        except zlib.error as exc:
            raise RemoteProtocolError(f"invalid compressed data: {exc}", 1007) from None
        if final and self._remote_reset:
            self._decompressor = None
        return out


def _token(text: str) -> bool:
    return bool(text) and all(c in _TOKEN_CHARS for c in text)


def parse_extensions(header: str) -> list[tuple[str, Params]]:
    """Parses a ``Sec-WebSocket-Extensions`` value (RFC 6455 section 9.1).

    Returns:
        ``[(name, [(param, value or None), ...]), ...]`` in order.

    Raises:
        HandshakeError: the value is malformed.
    """
    result: list[tuple[str, Params]] = []
    for item in split_outside_quotes(header, ","):
        if not item.strip():
            continue
        parts = split_outside_quotes(item, ";")
        name = parts[0].strip()
        if not _token(name):
            raise HandshakeError(f"invalid extension name {name!r}")
        params: Params = []
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            key = key.strip()
            if not _token(key):
                raise HandshakeError(f"invalid extension parameter {part.strip()!r}")
            if not eq:
                params.append((key, None))
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace("\\", "")
            if not _token(value):
                raise HandshakeError(f"invalid extension parameter value {value!r}")
            params.append((key, value))
        result.append((name, params))
    return result


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """``text`` split at each ``sep`` outside a quoted string (RFC 9110 §5.6.4,
    backslash escapes included); the pieces are not stripped."""
    if '"' not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = set(options) - _KNOWN_OPTIONS
    if unknown:
        raise ValueError(f"unknown compression options: {sorted(unknown)}")
    for key in ("server_max_window_bits", "client_max_window_bits"):
        bits = options.get(key)
        if bits is not None and not (isinstance(bits, int) and 9 <= bits <= 15):
            raise ValueError(f"{key} must be an int from 9 to 15, got {bits!r}")


def _window(value: Optional[str], what: str) -> int:
    if value is None or not value.isdigit() or value[0] == "0" or not 8 <= int(value) <= 15:
        raise HandshakeError(f"invalid {what} {value!r}")
    return int(value)


def client_offer(options: Mapping[str, Any]) -> str:
    """The ``Sec-WebSocket-Extensions`` value a client sends.

    Raises:
        ValueError: an unknown option or a window outside 9..15.
    """
    _check_options(options)
    parts = [NAME]
    if options.get("server_no_context_takeover"):
        parts.append("server_no_context_takeover")
    if options.get("client_no_context_takeover"):
        parts.append("client_no_context_takeover")
    if options.get("server_max_window_bits") is not None:
        parts.append(f"server_max_window_bits={options['server_max_window_bits']}")
    # Always offered: it tells the server we can honour a smaller window.
    bits = options.get("client_max_window_bits")
    parts.append("client_max_window_bits" if bits is None else f"client_max_window_bits={bits}")
    return "; ".join(parts)


def _params_dict(params: Params) -> dict[str, Optional[str]]:
    found: dict[str, Optional[str]] = {}
    for key, value in params:
        if key in found:
            raise HandshakeError(f"duplicate parameter {key}")
        found[key] = value
    return found


def server_accept(
    header: str, options: Mapping[str, Any]
) -> Optional[tuple[str, PerMessageDeflate]]:
    """Chooses the first acceptable permessage-deflate offer (RFC 7692 section 5).

    Args:
        header: the client's ``Sec-WebSocket-Extensions`` value.
        options: the server's compression options.

    Returns:
        ``(response header value, extension)``, or None when no offer is
        acceptable (the connection then runs uncompressed).

    Raises:
        ValueError: ``options`` are invalid.
    """
    _check_options(options)
    try:
        offers = parse_extensions(header)
    except HandshakeError:
        return None
    for name, params in offers:
        if name != NAME:
            continue
        try:
            accepted = _accept_offer(params, options)
        except HandshakeError:
            continue
        if accepted is not None:
            return accepted
    return None


def _accept_offer(
    params: Params, options: Mapping[str, Any]
) -> Optional[tuple[str, PerMessageDeflate]]:
    found = _params_dict(params)
    if set(found) - {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }:
        return None
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in found and found[flag] is not None:
            return None
    server_reset = "server_no_context_takeover" in found or bool(
        options.get("server_no_context_takeover")
    )
    client_reset = "client_no_context_takeover" in found or bool(
        options.get("client_no_context_takeover")
    )
    server_bits = options.get("server_max_window_bits") or 15
    if "server_max_window_bits" in found:
        server_bits = min(
            server_bits, _window(found["server_max_window_bits"], "server_max_window_bits")
        )
        if server_bits < 9:
            return None
    client_bits = 15
    wanted_client_bits = options.get("client_max_window_bits")
    if "client_max_window_bits" in found:
        offered = found["client_max_window_bits"]
        client_bits = 15 if offered is None else _window(offered, "client_max_window_bits")
        if wanted_client_bits is not None:
            client_bits = min(client_bits, wanted_client_bits)
    elif wanted_client_bits is not None and wanted_client_bits < 15:
        # Section 7.1.2.2: without the client's consent we cannot bound it.
        return None
    parts = [NAME]
    if server_reset:
        parts.append("server_no_context_takeover")
    if client_reset:
        parts.append("client_no_context_takeover")
    if server_bits < 15 or "server_max_window_bits" in found:
        parts.append(f"server_max_window_bits={server_bits}")
    if "client_max_window_bits" in found and (client_bits < 15 or found["client_max_window_bits"]):
        parts.append(f"client_max_window_bits={client_bits}")
    extension = PerMessageDeflate(
        client=False,
        server_no_context_takeover=server_reset,
        client_no_context_takeover=client_reset,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
        compression_level=options.get("compression_level", 6),
        mem_level=options.get("mem_level", 8),
    )
    return "; ".join(parts), extension


def client_accept(header: str, options: Mapping[str, Any]) -> PerMessageDeflate:
    """Checks the server's answer to our offer (RFC 7692 section 5) and builds the extension.

    Raises:
        HandshakeError: the server answered with something we did not offer
            or with invalid parameters.
    """
    extensions = parse_extensions(header)
    if len(extensions) != 1 or extensions[0][0] != NAME:
        raise HandshakeError(f"unexpected extensions in the response: {header!r}")
    found = _params_dict(extensions[0][1])
    unknown = set(found) - {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
    if unknown:
        raise HandshakeError(f"unknown permessage-deflate parameters {sorted(unknown)}")
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in found and found[flag] is not None:
            raise HandshakeError(f"{flag} takes no value")
    if options.get("server_no_context_takeover") and "server_no_context_takeover" not in found:
        raise HandshakeError("the server refused server_no_context_takeover")
    server_bits = 15
    if "server_max_window_bits" in found:
        server_bits = _window(found["server_max_window_bits"], "server_max_window_bits")
    wanted_server_bits = options.get("server_max_window_bits")
    if wanted_server_bits is not None and server_bits > wanted_server_bits:
        raise HandshakeError("the server refused server_max_window_bits")
    client_bits = options.get("client_max_window_bits") or 15
    if "client_max_window_bits" in found:
        client_bits = min(
            client_bits, _window(found["client_max_window_bits"], "client_max_window_bits")
        )
        if client_bits < 9:
            raise HandshakeError("client_max_window_bits of 8 is not supported")
    return PerMessageDeflate(
        client=True,
        server_no_context_takeover="server_no_context_takeover" in found,
        client_no_context_takeover="client_no_context_takeover" in found
        or bool(options.get("client_no_context_takeover")),
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
        compression_level=options.get("compression_level", 6),
        mem_level=options.get("mem_level", 8),
    )
