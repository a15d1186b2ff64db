"""Protocol errors of the HTTP/1.1 core.

::

    ProtocolError (status_hint)
     +-- LocalProtocolError    we tried to do something HTTP/1.1 forbids
     +-- RemoteProtocolError   the peer sent something HTTP/1.1 forbids
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Root of the errors raised by `squall._h1`.

    Attributes:
        status_hint: The HTTP status a server should answer with (400 unless
            a more precise one applies: 413, 414, 431, 501, 505).
    """

    status_hint: int

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(ProtocolError):
    """Our side misused the connection (for example wrote past Content-Length)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the connection cannot be used further."""
