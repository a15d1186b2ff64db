"""Values of header fields: HTTP dates (``Date``, ``Expires``) and byte ranges
(``Range``, ``Content-Range``)."""

from __future__ import annotations

import calendar
import datetime
import math
import time
from typing import Optional, Union

__all__ = ["format_timestamp"]


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# The seconds formatted lately: a cookie's expiry (say 30 days from now) or a
# file's Last-Modified asks for the same second request after request.
_FORMATTED: dict[int, str] = {}
_FORMATTED_MAX = 64

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
        ValueError: for a time outside the years 1 to 9999 (OverflowError or
            OSError beyond what the platform's ``time_t`` holds).
    """
    second: int
    if isinstance(ts, float):
        # To the microsecond first, half to even, as `datetime` (and so
        # Tornado's formatting) rounds a timestamp: 1.9999999 is second 2.
        fraction, whole = math.modf(ts)
        micro = round(fraction * 1e6)
        second = int(whole) + (micro >= 1_000_000) - (micro < 0)
    elif isinstance(ts, int):
        second = ts
    elif isinstance(ts, datetime.datetime):
        # Whole seconds from the fields (naive means UTC): a float
        # timestamp would round .999997 up in years past 2300.
        second = calendar.timegm(ts.utctimetuple())
    elif isinstance(ts, (tuple, time.struct_time)):
        second = calendar.timegm(ts)
    else:
        raise TypeError(f"unknown timestamp type: {ts!r}")
    text = _FORMATTED.get(second)
    if text is None:
        if len(_FORMATTED) >= _FORMATTED_MAX:
            _FORMATTED.clear()
        t = time.gmtime(second)
        if not 1 <= t.tm_year <= 9999:
            # RFC 9110's date has four digits of year (Tornado refuses
            # these years too).
            raise ValueError(f"year {t.tm_year} is out of range for an HTTP date")
        text = _FORMATTED[second] = (
            f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        )
    return text


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
