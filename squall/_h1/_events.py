"""Events produced by `H1Connection.next_event`.

They are plain classes with ``__slots__``: one is built per message part, so
they stay as cheap as a tuple while keeping named fields.
"""

from __future__ import annotations

from itertools import repeat
from typing import Final, Union

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Fields",
    "Headers",
    "InformationalResponse",
    "Request",
    "Response",
    "Sentinel",
]

# A C variable in the compiled build (a module global is a dict lookup).
_repeat: Final = repeat

#: Header fields in arrival order, names as sent, values without surrounding OWS.
Headers = list[tuple[str, str]]


#: Header fields by name, for lookups: each name in the canonical spelling
#: `canonical_name` gives (``Content-Type``), its values in arrival order.
#: The shape of ``HTTPHeaders``' dict, so the server wraps it without a copy.
Fields = dict[str, list[str]]

# Canonical spelling of each field name seen, keyed by the name as it came.
# Only names that passed the token check are stored (the parser's block
# check runs first), and it is bounded so a peer sending endless distinct
# names cannot grow it.
FIELD_NAMES: Final[dict[str, str]] = {}
_FIELD_NAMES_MAX: Final = 2048


def canonical_name(name: str) -> str:
    """Spell a field name as ``HTTPHeaders`` does: ``content-type`` becomes
    ``Content-Type`` (each dash-separated word capitalised)."""
    if "-" in name:
        norm = "-".join([word.capitalize() for word in name.split("-")])
    else:
        norm = name.capitalize()
    # The caller's object when nothing changed: one string fewer per field
    # for peers that already send the canonical spelling.
    return name if norm == name else norm


def field_name(name: str) -> str:
    """`canonical_name` through the `FIELD_NAMES` cache; ``name`` must be a
    valid token (the cache vouches for what it holds)."""
    norm = FIELD_NAMES.get(name)
    if norm is None:
        norm = canonical_name(name)
        if len(FIELD_NAMES) < _FIELD_NAMES_MAX:
            FIELD_NAMES[name] = norm
    return norm


def fields_from_pairs(headers: Headers) -> Fields:
    """Group ``(name, value)`` pairs by canonical name (names already valid)."""
    fields: Fields = {}
    for name, value in headers:
        fields.setdefault(field_name(name), []).append(value)
    return fields


def pairs_of_block(block: str | list[str]) -> Headers:
    """The pairs of a field block that passed the parser's checks: lines
    joined by CRLF (or the list of them), each ``name ":" OWS value OWS``."""
    if not block:
        return []
    lines = block.split("\r\n") if isinstance(block, str) else block
    return [(n, v.strip(" \t")) for n, _, v in map(str.partition, lines, _repeat(":"))]


class Request:
    """A request head (server role).

    Attributes:
        method: The method token, case preserved (RFC 9110 §9.1).
        target: The request-target, as sent (RFC 9112 §3.2).
        version: ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
        headers: The header fields, see `Headers` (built on first use from
            the head's field block when the parser gave `fields` only).
        fields: The same fields grouped by name, see `Fields`.

    Args:
        block: The validated field block (lines joined by CRLF, or the
            list of its lines) that ``headers`` is built from when it is
            None; parsers only.
    """

    __slots__ = ("method", "target", "version", "fields", "_headers", "_block")

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: Headers | None = None,
        fields: Fields | None = None,
        block: str | list[str] = "",
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self._block = block
        if fields is None:
            if headers is None:
                headers = pairs_of_block(block)
            fields = fields_from_pairs(headers)
        self.fields = fields
        self._headers = headers

    @property
    def headers(self) -> Headers:
        """The header fields in arrival order, names as sent."""
        headers = self._headers
        if headers is None:
            headers = self._headers = pairs_of_block(self._block)
        return headers

    @headers.setter
    def headers(self, headers: Headers) -> None:
        self._headers = headers
        self.fields = fields_from_pairs(headers)

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


def make_request(
    method: str,
    target: str,
    version: str,
    headers: Headers | None,
    fields: Fields | None,
    block: str | list[str],
) -> Request:
    """`Request`, for the C head parser (speedups/c/quick.c): a compiled
    function takes its arguments off the vector the C code passes, where
    the class itself, called from C, parses a tuple of them."""
    return Request(method, target, version, headers, fields, block)


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
