"""ASGI 3.0 type aliases and the helpers every direction shares."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Optional, Protocol

__all__ = [
    "ASGIApp",
    "ClientDisconnected",
    "Message",
    "Receive",
    "Scope",
    "Send",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What a server advertises in ``scope["asgi"]``.
ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.5"}


class Takeover(Protocol):
    """A request whose stream the ASGI server hands on (a WebSocket upgrade,
    a WebTransport session): what the HTTP cycle still tells it."""

    def request_finished(self) -> None:
        """The request (its head: no body is read) is complete."""

    def on_connection_close(self) -> None:
        """The connection closed."""


class ClientDisconnected(OSError):
    """``send()`` was called after the client went away (ASGI HTTP spec 2.4+)."""


class ASGIProtocolError(RuntimeError):
    """An application sent a message the protocol does not allow at that point."""


def expected(what: str, message: Message) -> ASGIProtocolError:
    """The error for a message of the wrong type: says what was expected instead."""
    got = message.get("type") if isinstance(message, MutableMapping) else message
    return ASGIProtocolError(f"Expected ASGI message {what}, but got {got!r}")


def resolve(future: Optional[asyncio.Future[None]]) -> None:
    """Let whoever waits on ``future`` go on (nothing if None or done already).

    The callers take the future out of its slot first: a waiter is woken once.
    """
    if future is not None and not future.done():
        future.set_result(None)


def split_target(target: str) -> tuple[str, bytes, bytes]:
    """Split a request target into (decoded path, raw path, query string).

    An absolute-form target (``http://host/p``, RFC 9112 §3.2.2) contributes
    only its path; ``*`` (``OPTIONS *``) stays as it is.
    """
    if target[:1] != "/" and target != "*":
        parts = urllib.parse.urlsplit(target)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    raw, sep, query = target.partition("?")
    raw_path = raw.encode("latin-1")
    path = raw
    if not raw.isascii():
        # The parser decodes the head as Latin-1: bytes in, UTF-8 out.
        path = raw_path.decode("utf-8", "replace")
    if "%" in path:
        path = urllib.parse.unquote(path, encoding="utf-8", errors="replace")
    return path, raw_path, query.encode("latin-1")


def address_tuple(address: Any) -> Optional[tuple[str, int]]:
    """``(host, port)`` of an IP socket address; None for others (Unix sockets)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return (str(address[0]), int(address[1]))
    return None
