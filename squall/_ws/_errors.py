"""Errors of the WebSocket core.

::

    ProtocolError
     +-- LocalProtocolError (ValueError)  we asked for something RFC 6455 forbids
     +-- RemoteProtocolError (close_code) the peer broke RFC 6455 or a limit
     +-- HandshakeError (status_hint)     the opening handshake cannot succeed

`RemoteProtocolError` never leaves `WSConnection.receive_data`: it becomes a
`ProtocolFailed` event carrying the close code to send.
"""

from __future__ import annotations

__all__ = ["HandshakeError", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Root of the errors raised by `squall._ws`."""


class LocalProtocolError(ProtocolError, ValueError):
    """Our side asked for something the protocol forbids (a 126-byte ping, say)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol or a limit.

    Attributes:
        close_code: the close code to fail the connection with (1002 protocol
            error, 1007 bad UTF-8, 1009 too big).
        reason: a short reason phrase for the close frame.
    """

    def __init__(self, reason: str, close_code: int = 1002) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


class HandshakeError(ProtocolError):
    """The opening handshake is invalid.

    Attributes:
        status_hint: the HTTP status a server answers with (400, or 426 for an
            unsupported version); 0 on the client side.
        headers: header lines to add to that response (``Sec-WebSocket-Version``
            with a 426).
    """

    def __init__(
        self, message: str, status_hint: int = 400, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.headers = headers or []
