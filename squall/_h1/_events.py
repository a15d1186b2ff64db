"""Events produced by `H1Connection.next_event`.

They are plain classes with ``__slots__``: one is built per message part, so
they stay as cheap as a tuple while keeping named fields.
"""

from __future__ import annotations

from typing import Final, Union

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "InformationalResponse",
    "Request",
    "Response",
    "Sentinel",
]

#: Header fields in arrival order, names as sent, values without surrounding OWS.
Headers = list[tuple[str, str]]


class Request:
    """A request head (server role).

    Attributes:
        method: The method token, case preserved (RFC 9110 §9.1).
        target: The request-target, as sent (RFC 9112 §3.2).
        version: ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
        headers: The header fields, see `Headers`.
    """

    __slots__ = ("method", "target", "version", "headers")

    def __init__(self, method: str, target: str, version: str, headers: Headers) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.target!r}, {self.version!r}, {self.headers!r})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Request
            and self.method == other.method
            and self.target == other.target
            and self.version == other.version
            and self.headers == other.headers
        )

    __hash__ = None  # type: ignore[assignment]


class Response:
    """A final response head (client role), including ``101 Switching Protocols``.

    Attributes:
        version: ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
        status: The three-digit status code.
        reason: The reason phrase (may be empty).
        headers: The header fields, see `Headers`.
    """

    __slots__ = ("version", "status", "reason", "headers")

    def __init__(self, version: str, status: int, reason: str, headers: Headers) -> None:
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.version!r}, {self.status!r}, "
            f"{self.reason!r}, {self.headers!r})"
        )

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, Response)
            and self.version == other.version
            and self.status == other.status
            and self.reason == other.reason
            and self.headers == other.headers
        )

    __hash__ = None  # type: ignore[assignment]


class InformationalResponse(Response):
    """An interim ``1xx`` response other than 101 (client role)."""

    __slots__ = ()


class Data:
    """A piece of a message body, with any transfer coding removed.

    Attributes:
        data: The bytes (never empty).
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Data({self.data!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is Data and self.data == other.data

    __hash__ = None  # type: ignore[assignment]


class EndOfMessage:
    """The end of a message body.

    Attributes:
        trailers: The trailer fields of a chunked body (RFC 9112 §7.1.2), or
            an empty list.
    """

    __slots__ = ("trailers",)

    def __init__(self, trailers: Headers | None = None) -> None:
        self.trailers: Headers = [] if trailers is None else trailers

    def __repr__(self) -> str:
        return f"EndOfMessage({self.trailers!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is EndOfMessage and self.trailers == other.trailers

    __hash__ = None  # type: ignore[assignment]


class ConnectionClosed:
    """The peer closed its side of the connection (``receive_data(b"")``).

    Attributes:
        truncated: True if the peer closed in the middle of a message, which
            is then incomplete and must be discarded.
    """

    __slots__ = ("truncated",)

    def __init__(self, truncated: bool = False) -> None:
        self.truncated = truncated

    def __repr__(self) -> str:
        return f"ConnectionClosed(truncated={self.truncated!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is ConnectionClosed and self.truncated == other.truncated

    __hash__ = None  # type: ignore[assignment]


class Sentinel:
    """Type of `NEED_DATA` and `PAUSED`; compare them with ``is``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: No complete event is buffered: feed more bytes with ``receive_data``.
NEED_DATA: Final = Sentinel("NEED_DATA")
#: The peer's next message must wait for our side (see `H1Connection.next_event`).
PAUSED: Final = Sentinel("PAUSED")

Event = Union[Request, Response, InformationalResponse, Data, EndOfMessage, ConnectionClosed]
