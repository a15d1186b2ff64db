"""What a server WebSocket gives back once open: the upgrade request's bulk.

An open WebSocket keeps its handler, and so ``handler.request``, for as long
as it lives; most of them spend that life idle. The request's headers are
the largest part of it (a browser's upgrade carries eight to twenty
fields: a dict, a list per field and a string per value, 1-2 KB), and they
are rarely read again after ``open()``. `release_request` packs them into
one string, unpacked the first time anything reads them, so that an
application that does read them sees the same headers. The names every
upgrade repeats (``Sec-WebSocket-Version``, ``User-Agent``...) take one
character each in that string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Optional, cast

from squall._ws._packing import SEPARATOR, WORDS, pack_fields
from squall.httputil import HTTPHeaders
from squall.httputil._headers import _NAME_CACHE, _cache_name, fields_of

__all__ = ["EmptyUntilRead", "release_arguments", "release_request"]

# The slot that holds the fields of an HTTPHeaders (a dict of value lists).
_FIELDS = cast(Any, HTTPHeaders.__dict__["_as_list"])
# (Packed by squall._ws._packing, compiled: every handshake packs.)
_SEPARATOR = SEPARATOR
_WORDS: Final = WORDS


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
            words = _WORDS
            for i in range(0, len(parts), 2):
                name = parts[i]
                if len(name) == 1 and name < " ":
                    name = words[ord(name)]
                else:
                    name = cache_get(name) or _cache_name(name)
                value = parts[i + 1]
                values = fields.get(name)
                if values is None:
                    fields[name] = [value]
                else:
                    values.append(value)
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
    try:
        packed = pack_fields(fields_of(headers))
    except TypeError:
        return  # a name or a value that is not a str
    if packed is not None:
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


class EmptyUntilRead:
    """A handler class's attribute that stands for an instance's empty container.

    Once the instance's own empty one is deleted (`release_arguments`), the
    first read makes a new one and stores it on the instance, where later
    reads and changes find it: the handler reads and changes it as before.
    (A non-data descriptor: the instance's own value, while it has one, is
    found first.)
    """

    __slots__ = ("_name", "_factory")

    def __init__(self, name: str, factory: Callable[[], Any]) -> None:
        self._name = name
        self._factory = factory

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        value = self._factory()
        object.__setattr__(obj, self._name, value)
        return value


def release_arguments(handler: Any) -> None:
    """Lets an open WebSocket's handler drop its empty path arguments.

    ``path_args``, ``path_kwargs`` and ``open_kwargs`` (an empty list and
    dict on the usual route: 120 bytes per idle connection) are deleted
    when empty; the class stands for them with `EmptyUntilRead` (see
    `lazy_arguments`, which the caller checks first): a later read gets an
    empty one again.
    """
    args = handler.path_args
    if type(args) is list and not args:
        del handler.path_args
    kwargs = handler.path_kwargs
    if type(kwargs) is dict and not kwargs:
        del handler.path_kwargs
        if handler.open_kwargs is kwargs:
            del handler.open_kwargs


def lazy_arguments(cls: type) -> bool:
    """Whether ``cls`` (a handler class) has `EmptyUntilRead` for the three arguments.

    (Not when a subclass defines one of them otherwise: a property, a slot.)
    """
    for name, lazy in (
        ("path_args", _PATH_ARGS),
        ("path_kwargs", _PATH_KWARGS),
        ("open_kwargs", _OPEN_KWARGS),
    ):
        found = next((vars(k)[name] for k in cls.__mro__ if name in vars(k)), None)
        if found is not lazy:
            return False
    return True


# What WebSocketHandler's class has for the three (see release_arguments).
_PATH_ARGS: Final = EmptyUntilRead("path_args", list)
_PATH_KWARGS: Final = EmptyUntilRead("path_kwargs", dict)
_OPEN_KWARGS: Final = EmptyUntilRead("open_kwargs", dict)
