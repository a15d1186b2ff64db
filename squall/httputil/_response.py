"""The headers object of a response a `RequestHandler` builds."""

from __future__ import annotations

__all__: list[str] = []

import re
from typing import Any

from squall._fastpaths import new_instance
from squall.httputil._headers import HTTPHeaders, _normalize_header

# RFC 9110 section 5.5: a field value may hold HTAB but no other control
# character (CR and LF above all: they would start a field of their own).
UNSAFE_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _ResponseHeaders(HTTPHeaders):
    """`HTTPHeaders` that know whether every value they hold was checked.

    A handler's own writes (``set_header``, ``add_header``, the framework's
    Server, Date, Content-Type, Etag and Content-Length) are valid by
    construction, so the server writes such a head without checking it
    again; ``_unchecked`` turns true when anything else might not be (an
    unsafe value through ``headers[name] = value``, an Etag from a
    ``compute_etag`` override), and the head is then checked field by field
    before it is sent. Code that writes ``_as_list`` directly must put valid
    values there, or set ``_unchecked``.

    The value lists of the fields a handler starts with (Server,
    Content-Type, Date) are shared by every response: a list in ``_as_list``
    is replaced, never changed in place (`add` appends to a copy).
    """

    __slots__ = ("_unchecked",)

    _unchecked: bool

    def __init__(self, *args: Any, **kwargs: str) -> None:
        self._unchecked = False
        super().__init__(*args, **kwargs)

    @classmethod
    def of_fields(cls, fields: dict[str, list[str]]) -> _ResponseHeaders:
        """Headers that hold ``fields`` as they are: the caller's own,
        valid by construction (nothing is checked or copied)."""
        self = new_instance(cls)
        self._as_list = fields
        self._unchecked = False
        return self

    def __setitem__(self, name: str, value: str) -> None:
        self._as_list[_normalize_header(name)] = [value]
        if type(value) is not str or UNSAFE_VALUE_CHARS.search(value) is not None:
            self._unchecked = True

    def add(self, name: str, value: str, *, _chars_are_bytes: bool = True) -> None:
        """Appends ``value`` to the values of ``name`` (see `HTTPHeaders.add`)."""
        norm = _normalize_header(name)
        values = self._as_list.get(norm)
        if values is not None:
            # Possibly shared with other responses: append to our own copy.
            self._as_list[norm] = list(values)
        super().add(norm, value, _chars_are_bytes=_chars_are_bytes)
        if type(value) is not str:
            # add() checks str values only.
            self._unchecked = True
