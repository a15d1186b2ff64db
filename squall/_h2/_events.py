"""Events produced by `receive_data` (the server's and the client's).

Plain classes with ``__slots__``: one is built per request part.
"""

from __future__ import annotations

from typing import Union

__all__ = [
    "Data",
    "Drained",
    "EndOfStream",
    "Event",
    "GoAway",
    "Request",
    "Response",
    "StreamReset",
    "Trailers",
]


class Request:
    """A request's head arrived on a new stream.

    Attributes:
        stream_id: The stream.
        method: ``:method``.
        target: ``:path`` (the request-target, as in HTTP/1.1).
        authority: ``:authority``, or None.
        scheme: ``:scheme``.
        headers: The regular fields in arrival order, names lowercase;
            several ``cookie`` fields are joined into one (RFC 9113 §8.2.3).
        content_length: The ``content-length``: ``NO_LENGTH`` (-1) if there
            is none, ``INVALID_LENGTH`` (-2) if it is not one number (RFC 9110
            §8.6; a 400 then).
        expect_continue: The client sent ``expect: 100-continue`` and waits
            for a 100 (Continue) before the body (RFC 9110 §10.1.1).
        protocol: ``:protocol`` of an extended CONNECT (RFC 8441 §4:
            ``"websocket"`` opens a WebSocket on the stream), or None.
    """

    __slots__ = (
        "stream_id",
        "method",
        "target",
        "authority",
        "scheme",
        "headers",
        "content_length",
        "expect_continue",
        "protocol",
    )

    def __init__(
        self,
        stream_id: int,
        method: str,
        target: str,
        authority: str | None,
        scheme: str,
        headers: list[tuple[str, str]],
        content_length: int = -1,
        expect_continue: bool = False,
        protocol: str | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.target = target
        self.authority = authority
        self.scheme = scheme
        self.headers = headers
        self.content_length = content_length
        self.expect_continue = expect_continue
        self.protocol = protocol

    def __repr__(self) -> str:
        return f"Request({self.stream_id}, {self.method!r}, {self.target!r})"


class Data:
    """A piece of a request body.

    Attributes:
        stream_id: The stream.
        data: The bytes.
        flow_length: What the frame cost the receive windows (padding
            included); give it back with `H2Connection.consumed`.
    """

    __slots__ = ("stream_id", "data", "flow_length")

    def __init__(self, stream_id: int, data: bytes, flow_length: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_length = flow_length

    def __repr__(self) -> str:
        return f"Data({self.stream_id}, {len(self.data)} bytes)"


class EndOfStream:
    """The peer finished its message (request or response) on ``stream_id``."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"EndOfStream({self.stream_id})"


class Trailers:
    """The request's trailer section (HEADERS ending the stream after its body).

    Attributes:
        stream_id: The stream.
        headers: The fields in arrival order, names lowercase.
    """

    __slots__ = ("stream_id", "headers")

    def __init__(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        self.stream_id = stream_id
        self.headers = headers

    def __repr__(self) -> str:
        return f"Trailers({self.stream_id}, {len(self.headers)} fields)"


class StreamReset:
    """The peer reset ``stream_id`` (RST_STREAM), or we did (a stream error).

    Attributes:
        stream_id: The stream.
        error_code: The RST_STREAM error code.
        remote: Whether the peer sent it.
        reason: What the peer broke, when we reset the stream for it
            ("" if the peer reset it, or where no more is said).
    """

    __slots__ = ("stream_id", "error_code", "remote", "reason")

    def __init__(self, stream_id: int, error_code: int, remote: bool, reason: str = "") -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote
        self.reason = reason

    def __repr__(self) -> str:
        return f"StreamReset({self.stream_id}, {self.error_code}, remote={self.remote})"


class Drained:
    """Everything queued on ``stream_id`` went out once the peer opened its window."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"Drained({self.stream_id})"


class GoAway:
    """The peer sent GOAWAY: no new streams; ``last_stream_id`` and below go on."""

    __slots__ = ("error_code", "last_stream_id")

    def __init__(self, error_code: int, last_stream_id: int) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id

    def __repr__(self) -> str:
        return f"GoAway({self.error_code}, {self.last_stream_id})"


class Response:
    """A final response head arrived on ``stream_id``.

    Attributes:
        stream_id: The stream.
        status: The status code.
        headers: The fields in arrival order, names lowercase.
    """

    __slots__ = ("stream_id", "status", "headers")

    def __init__(self, stream_id: int, status: int, headers: list[tuple[str, str]]) -> None:
        self.stream_id = stream_id
        self.status = status
        self.headers = headers

    def __repr__(self) -> str:
        return f"Response({self.stream_id}, {self.status})"


#: A decoded header block: its (name, value) pairs, in the order sent.
Fields = list[tuple[str, str]]

Event = Union[Request, Response, Data, Trailers, EndOfStream, StreamReset, Drained, GoAway]
