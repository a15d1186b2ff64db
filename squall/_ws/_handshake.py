"""The opening handshake for both roles (RFC 6455 section 4).

Headers are read through any object with a case-insensitive ``get(name)``
that joins repeated fields with commas (`squall.httputil.HTTPHeaders` does),
so this module needs nothing from the HTTP layer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import os
from collections.abc import Callable
from typing import Any, Final, Optional, Protocol

from squall._ws._errors import HandshakeError

__all__ = [
    "GUID",
    "VERSION",
    "accept_key",
    "check_key",
    "check_request",
    "check_response",
    "client_headers",
    "new_key",
    "parse_subprotocols",
    "server_headers",
]

GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION: Final = "13"


class Headers(Protocol):
    """What the handshake reads from a header collection."""

    def get(self, name: str, /) -> Optional[str]: ...


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (section 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


try:
    # CPython's own SHA-1: for a 60-byte input, a third fewer instructions
    # than hashlib's (OpenSSL's, with its context to make and free): one
    # digest per handshake, a hot path in reconnect storms.
    _sha1: Callable[[bytes], Any] = importlib.import_module("_sha1").sha1
except ImportError:  # pragma: no cover - a Python built without it
    _sha1 = hashlib.sha1


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering ``key`` (section 4.2.2)."""
    digest = _sha1((key + GUID).encode("ascii")).digest()
    # binascii's own function (base64.b64encode is a Python frame around it).
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def _tokens(value: Optional[str]) -> list[str]:
    if not value:
        return []
    return [item.strip().lower() for item in value.split(",") if item.strip()]


def parse_subprotocols(value: Optional[str]) -> list[str]:
    """Splits a ``Sec-WebSocket-Protocol`` value into its subprotocol names, in order."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def check_request(method: str, headers: Headers) -> str:
    """Validates a client's opening handshake (section 4.2.1).

    Args:
        method: the request method.
        headers: the request headers.

    Returns:
        The client's ``Sec-WebSocket-Key``.

    Raises:
        HandshakeError: with ``status_hint`` 400 for a request that is not a
            WebSocket upgrade or lacks a valid key, 426 (and a
            ``Sec-WebSocket-Version: 13`` header) for another version.
    """
    if method != "GET":
        raise HandshakeError(f"a WebSocket handshake uses GET, not {method}")
    if (headers.get("Upgrade") or "").strip().lower() != "websocket":
        raise HandshakeError('Can "Upgrade" only to "WebSocket".')
    if "upgrade" not in _tokens(headers.get("Connection")):
        raise HandshakeError('"Connection" must be "Upgrade".')
    if (headers.get("Sec-WebSocket-Version") or "").strip() != VERSION:
        raise HandshakeError(
            "Unsupported WebSocket version", 426, [("Sec-WebSocket-Version", VERSION)]
        )
    return check_key(headers.get("Sec-WebSocket-Key"))


def check_key(value: Optional[str]) -> str:
    """Validates a ``Sec-WebSocket-Key`` value: base64 of 16 bytes (section 4.2.1, item 5).

    Returns:
        The key, stripped.

    Raises:
        HandshakeError: the key is missing or invalid (``status_hint`` 400).
    """
    key = (value or "").strip()
    # 16 bytes are 24 base64 characters, the last two "==".
    if len(key) != 24 or key[22:] != "==":
        raise HandshakeError("Missing/Invalid WebSocket headers")
    try:
        # What base64.b64decode(..., validate=True) calls, without its frame.
        raw = binascii.a2b_base64(key.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError("Missing/Invalid WebSocket headers")
    return key


def server_headers(
    key: str, subprotocol: Optional[str] = None, extensions: Optional[str] = None
) -> list[tuple[str, str]]:
    """The headers of the server's 101 response (section 4.2.2)."""
    result = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol:
        result.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensions:
        result.append(("Sec-WebSocket-Extensions", extensions))
    return result


def client_headers(
    key: str, subprotocols: Optional[list[str]] = None, extensions: Optional[str] = None
) -> list[tuple[str, str]]:
    """The WebSocket headers of a client's upgrade request (section 4.1)."""
    result = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", VERSION),
    ]
    if subprotocols:
        result.append(("Sec-WebSocket-Protocol", ",".join(subprotocols)))
    if extensions:
        result.append(("Sec-WebSocket-Extensions", extensions))
    return result


def check_response(
    status: int, headers: Headers, key: str, subprotocols: Optional[list[str]] = None
) -> Optional[str]:
    """Validates the server's answer to our handshake (section 4.1, client steps 1-6).

    Args:
        status: the response status.
        headers: the response headers.
        key: the key we sent.
        subprotocols: the subprotocols we offered.

    Returns:
        The subprotocol the server selected, or None.

    Raises:
        HandshakeError: the server did not accept the upgrade correctly.
    """
    if status != 101:
        raise HandshakeError(f"expected status 101, got {status}", 0)
    if (headers.get("Upgrade") or "").strip().lower() != "websocket":
        raise HandshakeError("the response does not upgrade to websocket", 0)
    if "upgrade" not in _tokens(headers.get("Connection")):
        raise HandshakeError('the response lacks "Connection: Upgrade"', 0)
    if (headers.get("Sec-WebSocket-Accept") or "").strip() != accept_key(key):
        raise HandshakeError("invalid Sec-WebSocket-Accept", 0)
    selected = headers.get("Sec-WebSocket-Protocol")
    if selected:
        selected = selected.strip()
        if selected not in (subprotocols or []):
            raise HandshakeError(
                f"the server selected a subprotocol we did not offer: {selected!r}", 0
            )
        return selected
    return None
