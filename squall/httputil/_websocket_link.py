"""The capability between a server WebSocket and the stream that carries it.

A server's own streams (HTTP/1.1's detached connection,
``httpserver/_stream._TransportStream``; an HTTP/2 tunnel,
``httpserver/_h2websocket._H2Tunnel``) call the WebSocket back themselves
rather than through bound methods kept per connection (an idle WebSocket's
bytes count): the two sides meet through these two declarations, with public
method names, so that neither reaches into the other's private names.
`squall.websocket.WebSocketProtocol13` is the `WebSocketEndpoint`; a stream
that offers ``adopt_websocket`` is a `WebSocketCarrier`. A stream without it
(the client's, the ASGI channel) is driven through the plain `.IOStream`
interface instead.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

__all__ = ["WebSocketCarrier", "WebSocketEndpoint"]


class WebSocketEndpoint(Protocol):
    """What a carrier calls on the WebSocket it carries. None of these raise."""

    def receive_bytes(self, data: bytes) -> None:
        """Bytes read from the peer (after `WebSocketCarrier.receive_to_websocket`)."""

    def going_away(self) -> None:
        """The server drains: close with 1001 (RFC 6455 section 7.4.1)."""

    def set_write_paused(self, paused: bool) -> None:
        """The carrier's output went over (True) or back under (False) its mark."""

    def on_connection_close(self) -> None:
        """The carrier is closed (called from the event loop)."""

    @property
    def takes_direct_writes(self) -> bool:
        """Whether the WebSocket writes to the carrier's ``transport`` directly now."""


class WebSocketCarrier(Protocol):
    """What a server WebSocket calls on the stream that carries it."""

    @property
    def transport(self) -> Any:
        """Where writes that bypass the stream's buffer go (while it is not paused)."""

    @property
    def adopted_websocket(self) -> Optional[WebSocketEndpoint]:
        """The WebSocket given to `adopt_websocket`, until the stream closes."""

    def adopt_websocket(self, ws: WebSocketEndpoint) -> None:
        """Makes ``ws`` the owner: the stream calls it back itself from now on."""

    def writing_paused(self) -> bool:
        """Whether the output is over its high-water mark."""

    def receive_to_websocket(self) -> bytes:
        """Later reads go to the adopted WebSocket's `~WebSocketEndpoint.receive_bytes`;
        returns what was read before."""
