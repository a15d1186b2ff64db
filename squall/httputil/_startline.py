"""The first line of a message: request and response start lines, parsed and built."""

from __future__ import annotations

from http.client import responses
from typing import NamedTuple, Union

from squall.httputil._headers import _ABNF, HTTPInputError

__all__ = [
    "RequestStartLine",
    "ResponseStartLine",
    "parse_request_start_line",
    "parse_response_start_line",
    "responses",
]


class RequestStartLine(NamedTuple):
    """The first line of a request: ``method``, ``path`` (the request-target) and ``version``."""

    method: str
    path: str
    version: str


class ResponseStartLine(NamedTuple):
    """The first line of a response: ``version``, ``code`` (an int) and ``reason``."""

    version: str
    code: int
    reason: str


#: Either start line: what the delegates' ``headers_received`` and a
#: connection's ``write_headers`` take (a request on a client, a response on
#: a server). Not in ``__all__``: a name for type hints inside Squall.
StartLine = Union[RequestStartLine, ResponseStartLine]


def parse_request_start_line(line: str) -> RequestStartLine:
    """Splits an HTTP/1.x request line (RFC 9112 section 3) into its three parts.

    >>> parse_request_start_line("OPTIONS * HTTP/1.1")
    RequestStartLine(method='OPTIONS', path='*', version='HTTP/1.1')

    Raises:
        HTTPInputError: if the line does not follow the grammar exactly
            (single spaces, no control characters) or the version is not 1.x.
    """
    match = _ABNF.request_line.fullmatch(line)
    if match is None:
        # RFC 9112 section 3: an invalid request-line gets 400.
        raise HTTPInputError(f"Malformed HTTP request line: {line[:100]!r}")
    method, target, version = match.groups()
    if not version.startswith("HTTP/1."):
        raise HTTPInputError(f"Unexpected HTTP version {version!r}")
    return RequestStartLine(method, target, version)


def parse_response_start_line(line: str) -> ResponseStartLine:
    """Splits an HTTP/1.x status line (RFC 9112 section 4) into its three parts.

    The reason phrase may be empty, but the space before it is required.

    >>> parse_response_start_line("HTTP/1.1 404 Not Found")
    ResponseStartLine(version='HTTP/1.1', code=404, reason='Not Found')

    Raises:
        HTTPInputError: if the line does not follow the grammar.
    """
    match = _ABNF.status_line.fullmatch(line)
    if match is None:
        raise HTTPInputError(f"Error parsing response start line: {line[:100]!r}")
    version, code, reason = match.groups()
    return ResponseStartLine(version, int(code), reason)
