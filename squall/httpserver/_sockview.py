"""``stream.socket`` of a connection served over an asyncio transport: the
socket the transport exposes, answering `ssl.SSLSocket`'s TLS methods over
TLS. For a connection's `_TransportStream` and for the tunnels of its
streams (``_tunnel``)."""

from __future__ import annotations

from typing import Any

__all__ = ["socket_view"]


# What an `ssl.SSLSocket` answers that the plain socket asyncio exposes does
# not: asked of `_TLSSocketView`, they go to the connection's SSL object.
_TLS_NAMES = frozenset(
    [
        "getpeercert",
        "cipher",
        "shared_ciphers",
        "compression",
        "version",
        "selected_alpn_protocol",
        "selected_npn_protocol",
        "get_channel_binding",
        "get_verified_chain",
        "get_unverified_chain",
        "server_side",
        "server_hostname",
        "session",
        "session_reused",
        "context",
        "pending",
    ]
)


class _TLSSocketView:
    """``stream.socket`` of a TLS connection served over an asyncio transport.

    On Tornado that is an `ssl.SSLSocket`, and handlers read the peer's
    certificate or the cipher from it (``self.request.connection.stream.socket.getpeercert()``,
    ``ws_connection.stream.socket.cipher()``). asyncio keeps the TLS state
    in an `ssl.SSLObject` beside a plain socket: this answers the TLS
    methods from the one and everything else from the other.
    """

    __slots__ = ("_sock", "_tls")

    def __init__(self, sock: Any, tls: Any) -> None:
        self._sock = sock
        self._tls = tls

    def __getattr__(self, name: str) -> Any:
        if name in _TLS_NAMES:
            return getattr(self._tls, name)
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        return f"<TLS {self._sock!r}>"


def socket_view(transport: Any) -> Any:
    """A transport's socket, with `ssl.SSLSocket`'s TLS methods over TLS
    (see `_TLSSocketView`); None if it has none."""
    sock = transport.get_extra_info("socket")
    tls = transport.get_extra_info("ssl_object")
    if tls is None or sock is None:
        return sock
    return _TLSSocketView(sock, tls)
