"""`StatusMixin`, part of `RequestHandler`: the response's status and
header fields, and the default fields every response starts with
(`_new_headers`).
"""

from __future__ import annotations

import datetime
import math
import numbers
import operator
import time
from typing import TYPE_CHECKING, Optional, SupportsIndex, SupportsInt, Union, cast

from squall.httputil import format_timestamp, responses
from squall.httputil._headers import _ABNF, _NAME_CACHE, _normalize_header
from squall.httputil._response import UNSAFE_VALUE_CHARS, _ResponseHeaders

# Bound once: a classmethod read from its class makes a bound method per read.
_of_fields = _ResponseHeaders.of_fields

if TYPE_CHECKING:
    from squall.httputil import HTTPHeaders
    from squall.web.handler import HandlerTraits

__all__ = ["StatusMixin"]


def _status_number(value: object) -> int:
    """A status code given as another number (``201.0``, a NumPy integer)
    as the int the status line is written from: Tornado formats it with
    ``%d``, so any real number serves there."""
    if hasattr(value, "__index__"):
        return operator.index(cast(SupportsIndex, value))
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return int(cast(SupportsInt, value))
    raise TypeError(f"status_code is an int, not {type(value).__name__} {value!r}")


# RFC 9110 section 5.5: a field value may hold HTAB but no other control.
_UNSAFE_HEADER_CHARS = UNSAFE_VALUE_CHARS

_SERVER_HEADER = "SquallServer/" + __import__("squall").version

# The Date header, formatted once per second: (start of that second, start
# of the next, its value list). One tuple, swapped whole, so threads see a
# matching set; the bounds spare an int() of the clock per request.
_date: tuple[float, float, dict[str, list[str]]] = (0.0, 0.0, {})
# The other default fields' value lists. These lists are shared by every
# response (see _ResponseHeaders): replaced, never changed in place.
_SERVER_VALUES = [_SERVER_HEADER]
_HTML_VALUES = ["text/html; charset=UTF-8"]
_JSON_VALUES = ["application/json; charset=UTF-8"]

_HeaderValue = Union[bytes, str, int, datetime.datetime]
_REPRESENTATION_HEADERS = ("Content-Encoding", "Content-Language", "Content-Type")


def _new_headers() -> _ResponseHeaders:
    # Built without going through validation: the values are our own.
    global _date
    now = time.time()
    start, end, fields = _date
    if not start <= now < end:
        second = int(now)
        date = [format_timestamp(second)]
        # The default fields of this second's responses, copied for each
        # (a copy of a dict costs less than building one).
        fields = {"Server": _SERVER_VALUES, "Content-Type": _HTML_VALUES, "Date": date}
        _date = (float(second), second + 1.0, fields)
    return _of_fields(fields.copy())


class StatusMixin:
    """The status and header methods of `RequestHandler`."""

    _headers: HTTPHeaders
    _write_buffer: list[bytes]
    _status_code: int
    _reason: str
    _traits: HandlerTraits

    if TYPE_CHECKING:
        # Provided by RequestHandler.
        def set_default_headers(self) -> None: ...

    def clear(self) -> None:
        """Resets the status, the headers and the buffered output to their defaults.

        Cookies already set stay set: an error page sent after `set_cookie`
        still carries them, as in Tornado.
        """
        old = self._headers
        self._headers = _new_headers()
        if "Set-Cookie" in old:
            for line in old.get_list("Set-Cookie"):
                self._headers.add("Set-Cookie", line)
        self.set_default_headers()
        self._write_buffer = []
        self._status_code = 200
        self._reason = "OK"

    def set_status(self, status_code: int, reason: Optional[str] = None) -> None:
        """Sets the status code of the response.

        Args:
            status_code: any integer status code.
            reason: the reason phrase; by default the standard one for the
                code, or ``"Unknown"``. A phrase that may not appear in a
                status line (control characters, ``<``) becomes ``"Unknown"``.
        """
        if type(status_code) is not int:
            status_code = _status_number(status_code)
        self._status_code = status_code
        if reason is None:
            self._reason = responses.get(status_code, "Unknown")
        elif "<" in reason or _ABNF.reason_phrase.fullmatch(reason) is None:
            self._reason = "Unknown"
        else:
            self._reason = reason

    def get_status(self) -> int:
        """The status code of the response."""
        return self._status_code

    def set_header(self, name: str, value: _HeaderValue) -> None:
        """Sets the header ``name`` to ``value``, replacing any value it had.

        ``value`` may be a str, bytes (latin-1), int or `datetime.datetime`.

        Raises:
            ValueError: if the value holds control characters (such as CR/LF).
            TypeError: for a value of another type.
        """
        # Straight into the dict: the name is checked by _normalize_header
        # and the value here, so the headers stay "checked" (see
        # _ResponseHeaders).
        if type(value) is not str or not value.isprintable():
            # isprintable() is False for every control character (and for
            # some characters that are allowed, such as HTAB): those go
            # through the full conversion and check.
            value = self._convert_header_value(value)
        headers = self._headers
        if type(headers) is _ResponseHeaders:
            headers._as_list[_NAME_CACHE.get(name) or _normalize_header(name)] = [value]
        else:
            # Headers an application put in place: their own __setitem__.
            headers[name] = value

    def add_header(self, name: str, value: _HeaderValue) -> None:
        """Adds a value to the header ``name``, keeping the values it had (as for ``Set-Cookie``)."""
        self._headers.add(name, self._convert_header_value(value))

    def clear_header(self, name: str) -> None:
        """Removes the header ``name`` (every value of it), if set."""
        if name in self._headers:
            del self._headers[name]

    def _convert_header_value(self, value: _HeaderValue) -> str:
        if isinstance(value, str):
            converted = value
        elif isinstance(value, bytes):
            converted = value.decode("latin1")
        elif isinstance(value, numbers.Integral):
            return str(value)
        elif isinstance(value, datetime.datetime):
            return format_timestamp(value)
        else:
            raise TypeError(f"Unsupported header value {value!r}")
        if _UNSAFE_HEADER_CHARS.search(converted) is not None:
            raise ValueError(f"Unsafe header value {converted!r}")
        return converted

    def _clear_representation_headers(self) -> None:
        # RFC 9110 section 15.4.5: a 304 carries no representation metadata
        # beyond what a 200 would have had for caching.
        headers = self._headers
        if type(headers) is _ResponseHeaders and not self._traits.clear_header:
            # (Every 101 comes here: the WebSocket handshake.)
            fields = headers._as_list
            for name in _REPRESENTATION_HEADERS:
                fields.pop(name, None)
            return
        for name in _REPRESENTATION_HEADERS:
            self.clear_header(name)
