"""The errors of the simple client: both are `HTTPClientError` with code 599."""

from __future__ import annotations

from squall.httpclient import HTTPClientError

__all__ = ["HTTPStreamClosedError", "HTTPTimeoutError"]


class HTTPTimeoutError(HTTPClientError):
    """A request timed out: in the queue, while connecting, or during the exchange.

    ``str()`` is the message alone, e.g. ``"Timeout during request"``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(599, message=message)

    def __str__(self) -> str:
        return self.message or "Timeout"


class HTTPStreamClosedError(HTTPClientError):
    """The connection closed (or was closed for a protocol error) before the
    response was complete."""

    def __init__(self, message: str) -> None:
        super().__init__(599, message=message)

    def __str__(self) -> str:
        return self.message or "Stream closed"
