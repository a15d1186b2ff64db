"""What a server WebSocket gives back once open: the upgrade request's bulk.

An open WebSocket keeps its handler, and so ``handler.request``, for as long
as it lives; most of them spend that life idle. The request's headers are
the largest part of it (a browser's upgrade carries eight to twenty
fields: a dict, a list per field and a string per value, 1-2 KB), and they
are rarely read again after ``open()``. `release_request` packs them into
one string, unpacked the first time anything reads them, so that an
application that does read them sees the same headers.
"""

from __future__ import annotations

from typing import Any, cast

from squall.httputil import HTTPHeaders
from squall.httputil._headers import _NAME_CACHE, _cache_name

__all__ = ["release_request"]

# The slot that holds the fields of an HTTPHeaders (a dict of value lists).
_FIELDS = cast(Any, HTTPHeaders.__dict__["_as_list"])
# Between names and values in a packed string: header values never contain
# a line feed (RFC 9110 section 5.5: the parsers refuse control characters).
_SEPARATOR = "\n"


class _PackedHeaders(HTTPHeaders):
    """`HTTPHeaders` whose fields are packed into one string until first read.

    The slot that holds the fields holds the packed string instead; the
    first read unpacks it and turns the object back into a plain
    `HTTPHeaders` (the layouts are the same), so that later reads cost
    nothing more.
    """

    __slots__ = ()

    @property
    def _as_list(self) -> dict[str, list[str]]:
        packed: Any = _FIELDS.__get__(self, HTTPHeaders)
        if type(packed) is not str:
            return cast(dict[str, list[str]], packed)
        fields: dict[str, list[str]] = {}
        if packed:
            parts = packed.split(_SEPARATOR)
            cache_get = _NAME_CACHE.get
            for i in range(0, len(parts), 2):
                name = parts[i]
                name = cache_get(name) or _cache_name(name)
                values = fields.get(name)
                if values is None:
                    fields[name] = [parts[i + 1]]
                else:
                    values.append(parts[i + 1])
        _FIELDS.__set__(self, fields)
        self.__class__ = HTTPHeaders  # type: ignore[assignment]
        return fields

    @_as_list.setter
    def _as_list(self, value: dict[str, list[str]]) -> None:
        _FIELDS.__set__(self, value)
        self.__class__ = HTTPHeaders  # type: ignore[assignment]


def _pack(headers: HTTPHeaders) -> None:
    """Packs ``headers`` in place, unless a field could not be unpacked the same."""
    if type(headers) is not HTTPHeaders:
        return  # a subclass of the application's, or already packed
    parts: list[str] = []
    append = parts.append
    for name, values in headers._as_list.items():
        for value in values:
            append(name)
            append(value)
    try:
        packed = _SEPARATOR.join(parts)
    except TypeError:
        return  # a name or a value that is not a str
    if parts and packed.count(_SEPARATOR) != len(parts) - 1:
        return  # a separator inside a name or a value
    headers.__class__ = _PackedHeaders
    _FIELDS.__set__(headers, packed)


def release_request(request: Any) -> None:
    """Lets what an open WebSocket's request holds and can rebuild go.

    Its headers are packed (see `_PackedHeaders`) and its parsed cookies
    dropped (``request.cookies`` parses them again from the headers if
    read). Everything else stays as it was.
    """
    headers = getattr(request, "headers", None)
    if isinstance(headers, HTTPHeaders):
        _pack(headers)
    if getattr(request, "_cookies", None) is not None:
        request._cookies = None
