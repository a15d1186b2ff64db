"""Start lines, URLs, dates, host/port splitting, byte ranges and other small helpers."""

from __future__ import annotations

import calendar
import datetime
import time
from collections.abc import Iterable, Mapping, Sequence
from http.client import responses
from typing import Any, NamedTuple, Optional, Union
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from squall.httputil._headers import _ABNF, HTTPInputError

__all__ = [
    "RequestStartLine",
    "ResponseStartLine",
    "encode_username_password",
    "format_timestamp",
    "parse_request_start_line",
    "parse_response_start_line",
    "qs_to_qsl",
    "responses",
    "split_host_and_port",
    "url_concat",
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


def split_host_and_port(netloc: str) -> tuple[str, Optional[int]]:
    """Splits ``host:port`` into ``(host, port)``; the port is ``None`` when absent.

    >>> split_host_and_port("[::1]:8888")
    ('[::1]', 8888)
    >>> split_host_and_port("example.com")
    ('example.com', None)
    """
    host, colon, port = netloc.rpartition(":")
    if colon and host and port.isascii() and port.isdigit():
        return host, int(port)
    return netloc, None


def qs_to_qsl(qs: Mapping[str, Sequence[Any]]) -> Iterable[tuple[str, Any]]:
    """Turns a ``{name: [values]}`` dict (as from `urllib.parse.parse_qs`) into pairs.

    >>> list(qs_to_qsl({"a": ["1", "2"], "b": ["3"]}))
    [('a', '1'), ('a', '2'), ('b', '3')]
    """
    for name, values in qs.items():
        for value in values:
            yield (name, value)


_QueryArgs = Union[
    None,
    Sequence[tuple[str, str]],
    Mapping[str, str],
]


def url_concat(url: str, args: _QueryArgs) -> str:
    """Appends query arguments to ``url``, whether or not it already has a query.

    ``args`` is a dict, or a list or tuple of ``(name, value)`` pairs (which
    may repeat a name); ``None`` returns ``url`` unchanged. A fragment stays
    at the end.

    >>> url_concat("/search?q=squall#top", [("page", "2"), ("page", "3")])
    '/search?q=squall&page=2&page=3#top'

    Raises:
        TypeError: if ``args`` is of another type.
    """
    if args is None:
        return url
    if isinstance(args, dict):
        extra: list[tuple[str, str]] = list(args.items())
    elif isinstance(args, (list, tuple)):
        extra = list(args)
    else:
        raise TypeError(f"'args' parameter should be dict, list or tuple. Not {type(args)}")
    parts = urlparse(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend(extra)
    return urlunparse(parts._replace(query=urlencode(query)))


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_Timestamp = Union[float, tuple[int, ...], time.struct_time, datetime.datetime]


def format_timestamp(ts: _Timestamp) -> str:
    """Formats a time as an HTTP date (RFC 9110 section 5.6.7), always in GMT.

    ``ts`` is a Unix timestamp (int or float), a UTC time tuple or
    `time.struct_time`, or a `datetime.datetime` (naive means UTC; an aware
    one is converted).

    >>> format_timestamp(1359312200)
    'Sun, 27 Jan 2013 18:43:20 GMT'

    Raises:
        TypeError: for any other type.
    """
    if isinstance(ts, (int, float)):
        seconds: float = ts
    elif isinstance(ts, (tuple, time.struct_time)):
        seconds = calendar.timegm(ts)
    elif isinstance(ts, datetime.datetime):
        seconds = calendar.timegm(ts.utctimetuple())
    else:
        raise TypeError(f"unknown timestamp type: {ts!r}")
    t = time.gmtime(seconds)
    return (
        f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def encode_username_password(username: Union[str, bytes], password: Union[str, bytes]) -> bytes:
    """Joins credentials as ``username:password`` bytes for HTTP Basic auth (RFC 7617).

    Text is encoded as UTF-8; the result still needs base64 encoding.

    >>> encode_username_password("al", "pa:ss")
    b'al:pa:ss'
    """
    if isinstance(username, str):
        username = username.encode("utf-8")
    if isinstance(password, str):
        password = password.encode("utf-8")
    return username + b":" + password


def _int_or_none(text: str) -> Optional[int]:
    text = text.strip()
    if text == "":
        return None
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a byte position: {text!r}")
    return int(text)


def _parse_request_range(range_header: str) -> Optional[tuple[Optional[int], Optional[int]]]:
    """Parses a single-range ``Range`` header into slice bounds ``(start, end)``.

    HTTP positions are inclusive (RFC 9110 section 14.1.2); the result is for
    slicing, so the end is exclusive and a suffix range gives a negative
    start. ``None`` means the header is not one ``bytes`` range we serve.

    >>> _parse_request_range("bytes=0-499"), _parse_request_range("bytes=500-")
    ((0, 500), (500, None))
    >>> _parse_request_range("bytes=-500"), _parse_request_range("bytes=-0")
    ((-500, None), (None, 0))
    >>> print(_parse_request_range("bytes=0-1,5-6"))
    None
    """
    unit, _, spec = range_header.partition("=")
    if unit.strip() != "bytes":
        return None
    first, _, last = spec.strip().partition("-")
    try:
        start = _int_or_none(first)
        end = _int_or_none(last)
    except ValueError:
        return None
    if end is not None:
        if start is None:
            # A suffix range: the last `end` bytes. "-0" selects nothing.
            if end != 0:
                start, end = -end, None
        else:
            end += 1
    return (start, end)


def _get_content_range(start: Optional[int], end: Optional[int], total: int) -> str:
    """The ``Content-Range`` value for slice bounds of a body of ``total`` bytes.

    >>> _get_content_range(10, 20, 100), _get_content_range(None, None, 100)
    ('bytes 10-19/100', 'bytes 0-99/100')
    """
    first = start or 0
    last = (end or total) - 1
    return f"bytes {first}-{last}/{total}"
