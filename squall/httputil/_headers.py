"""HTTP header grammar, the two HTTP errors, and the `HTTPHeaders` multidict."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, Optional, TypeVar, Union, overload

from squall._h1._events import canonical_name

__all__ = ["HTTP_WHITESPACE", "HTTPHeaders", "HTTPInputError", "HTTPOutputError"]

# RFC 9110 section 5.6.3: OWS is made of SP and HTAB only; other Unicode
# whitespace (NBSP, NEL) is field content and must be kept.
HTTP_WHITESPACE = " \t"

_T = TypeVar("_T")


class HTTPInputError(Exception):
    """A peer sent something that is not valid HTTP (start line, headers or body)."""


class HTTPOutputError(Exception):
    """Our side tried to send invalid HTTP, such as more body than Content-Length."""


# The character classes and pieces the rules below are built from (regex
# source; the classes without their brackets): VCHAR, obs-text, tchar, and
# HTAB/SP/VCHAR (the text of a reason phrase, or inside a field value).
_VCHAR = r"\x21-\x7e"
_OBS_TEXT = r"\x80-\xff"
_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TEXT = r"\t\x20-\x7e"
_HTTP_VERSION = r"HTTP/[0-9]\.[0-9]"
_STATUS = "[0-9]{3}"


class _ABNF:
    """Compiled forms of the grammar rules of RFC 9110 and RFC 9112 that we check.

    Each attribute is named after its rule, with hyphens as underscores. The
    patterns are written to be used with ``fullmatch`` and are also valid input
    for generators such as Hypothesis' ``from_regex``.
    """

    # RFC 5234 appendix B.1.
    VCHAR = re.compile(f"[{_VCHAR}]")
    # RFC 9110 section 5.5: obs-text is any octet of the upper half, seen here
    # as the latin-1 character of the same code.
    obs_text = re.compile(f"[{_OBS_TEXT}]")
    field_vchar = re.compile(f"[{_VCHAR}{_OBS_TEXT}]")
    # RFC 9110 section 5.5: field-value = *field-content, where field-content
    # starts and ends with a field-vchar and may hold SP/HTAB inside.
    field_value = re.compile(
        f"(?:[{_VCHAR}{_OBS_TEXT}](?:[{_TEXT}{_OBS_TEXT}]*[{_VCHAR}{_OBS_TEXT}])?)?"
    )
    # RFC 9110 section 5.6.2.
    tchar = re.compile(f"[{_TCHAR}]")
    token = re.compile(f"[{_TCHAR}]+")
    field_name = token
    method = token
    # RFC 9112 section 2.3 and 4.
    HTTP_version = re.compile(_HTTP_VERSION)
    status_code = re.compile(_STATUS)
    reason_phrase = re.compile(f"[{_TEXT}{_OBS_TEXT}]+")
    # RFC 9112 section 3.2 delegates request-target to the URI grammar of
    # RFC 3986; we accept any run of visible octets and leave the URI details
    # to the application, which is what every deployed server does.
    request_target = re.compile(f"[{_VCHAR}{_OBS_TEXT}]+")
    request_line = re.compile(f"([{_TCHAR}]+) ([{_VCHAR}{_OBS_TEXT}]+) ({_HTTP_VERSION})")
    status_line = re.compile(f"({_HTTP_VERSION}) ({_STATUS}) ([{_TEXT}{_OBS_TEXT}]*)")
    # RFC 9110 section 7.2: Host = uri-host [ ":" port ]. The reg-name and IP
    # literal rules of RFC 3986 are folded into one character class (brackets
    # and colons allowed anywhere), which keeps out everything that matters:
    # whitespace, controls, "/", "?", "#", "@" and non-ASCII.
    host = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=\[\]:%]*")


# Characters a value may not hold when it comes from a decoded (non latin-1)
# source: controls other than HTAB, and DEL.
_FORBIDDEN_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# After OWS is stripped, a value is a valid field-value exactly when none of
# these appear (see _ABNF.field_value).
_BAD_BYTE_VALUE_CHARS = re.compile(r"[^\t\x20-\x7e\x80-\xff]")

# Normalised spelling of each header name seen, keyed by the name as given.
# Only names that passed validation are stored, so a hit also means "valid".
# Bounded, so a peer sending endless distinct names cannot grow it.
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX = 2048


# One spelling rule for the parser's fields and for HTTPHeaders (the server
# wraps the parser's dict as it is).
_canonical = canonical_name


def _normalize_header(name: str) -> str:
    """Validates a header name and returns its canonical spelling.

    Raises:
        HTTPInputError: if ``name`` is not an RFC 9110 token.
    """
    norm = _NAME_CACHE.get(name)
    if norm is not None:
        return norm
    if not isinstance(name, str) or _ABNF.field_name.fullmatch(name) is None:
        raise HTTPInputError(f"Invalid header name {name!r}")
    norm = _canonical(name)
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = norm
    return norm


def _cache_name(name: str) -> str:
    # For names already validated elsewhere (the server's parser).
    norm = _canonical(name)
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = norm
    return norm


def _lookup_key(name: str) -> str:
    # For reads: never raises, so a lookup of an invalid name is just a miss.
    norm = _NAME_CACHE.get(name)
    if norm is None:
        norm = _canonical(name) if isinstance(name, str) else name
    return norm


for _name in (
    "Accept Accept-Charset Accept-Encoding Accept-Language Accept-Ranges Access-Control-Allow-Origin "
    "Age Allow Authorization Cache-Control Connection Content-Disposition Content-Encoding "
    "Content-Language Content-Length Content-Location Content-Range Content-Type Cookie Date "
    "Etag Expect Expires Forwarded Host If-Match If-Modified-Since If-None-Match If-Range "
    "If-Unmodified-Since Keep-Alive Last-Modified Link Location Origin Pragma Proxy-Authorization "
    "Range Referer Retry-After Sec-Websocket-Accept Sec-Websocket-Extensions Sec-Websocket-Key "
    "Sec-Websocket-Protocol Sec-Websocket-Version Server Set-Cookie Te Trailer Transfer-Encoding "
    "Sec-WebSocket-Accept Sec-WebSocket-Extensions Sec-WebSocket-Key Sec-WebSocket-Protocol "
    "Sec-WebSocket-Version Sec-Fetch-Site Sec-Fetch-Mode Sec-Fetch-Dest Sec-Websocket-Origin "
    "Upgrade User-Agent Vary Via Www-Authenticate X-Forwarded-For X-Forwarded-Host "
    "X-Forwarded-Proto X-Real-Ip X-Requested-With X-Scheme X-Xsrftoken X-Csrftoken "
    "ETag WWW-Authenticate TE X-Real-IP"
).split():
    for _spelling in (_name, _name.lower()):
        _normalize_header(_spelling)
del _name, _spelling


class HTTPHeaders(MutableMapping[str, str]):
    """Header fields of one message, looked up without regard to case.

    A name may carry several values. Reading ``headers[name]`` gives them
    joined by commas (RFC 9110 section 5.3); `get_list` keeps them apart and
    `get_all` walks every field in order. Names come back in canonical
    spelling (``content-type`` becomes ``Content-Type``).

    >>> h = HTTPHeaders(Vary="Accept")
    >>> h.add("vary", "Cookie")
    >>> h["VARY"], h.get_list("Vary")
    ('Accept,Cookie', ['Accept', 'Cookie'])
    >>> list(h.get_all())
    [('Vary', 'Accept'), ('Vary', 'Cookie')]
    """

    __slots__ = ("_as_list",)

    _as_list: dict[str, list[str]]

    def __init__(self, *args: Any, **kwargs: str) -> None:
        self._as_list = {}
        if len(args) == 1 and not kwargs and isinstance(args[0], HTTPHeaders):
            # Copy constructor: keep every value, not the comma-joined view.
            for name, values in args[0]._as_list.items():
                self._as_list[name] = list(values)
        elif (
            len(args) == 1
            and not kwargs
            and type(args[0]) is dict
            and type(self).__setitem__ is HTTPHeaders.__setitem__
        ):
            # update() of a plain dict, without MutableMapping's generic loop.
            as_list = self._as_list
            for name, value in args[0].items():
                as_list[_normalize_header(name)] = [value]
        else:
            self.update(*args, **kwargs)

    @classmethod
    def _from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> HTTPHeaders:
        """Builds headers from ``(name, value)`` pairs that are already valid.

        For the server's parser, which has checked every name against the
        token grammar and every value against field-value, and stripped OWS.
        Nothing is checked again here.
        """
        self = cls.__new__(cls)
        as_list: dict[str, list[str]] = {}
        cache_get = _NAME_CACHE.get
        for name, value in pairs:
            norm = cache_get(name) or _cache_name(name)
            if norm in as_list:
                as_list[norm].append(value)
            else:
                as_list[norm] = [value]
        self._as_list = as_list
        return self

    @classmethod
    def _from_fields(cls, fields: dict[str, list[str]]) -> HTTPHeaders:
        """Wraps a parser's `squall._h1.Fields` (names canonical, values
        checked and stripped) without copying: the headers own that dict."""
        self = cls.__new__(cls)
        self._as_list = fields
        return self

    def add(self, name: str, value: str, *, _chars_are_bytes: bool = True) -> None:
        """Appends ``value`` to the values of ``name``, keeping those already there.

        Raises:
            HTTPInputError: if the name is not a token or the value holds
                characters a header value may not hold.
        """
        norm = _normalize_header(name)
        if isinstance(value, str):
            if _chars_are_bytes:
                if _ABNF.field_value.fullmatch(value) is None:
                    raise HTTPInputError(f"Invalid header value {value!r}")
            elif _FORBIDDEN_VALUE_CHARS.search(value) is not None:
                raise HTTPInputError(f"Invalid header value {value!r}")
        self._append(norm, value)

    def _append(self, norm: str, value: str) -> None:
        # One more value for a normalized name (the checks are the caller's).
        values = self._as_list.get(norm)
        if values is None:
            self._as_list[norm] = [value]
        else:
            values.append(value)

    def get_list(self, name: str) -> list[str]:
        """The values of ``name`` in arrival order; an empty list if it is absent."""
        return self._as_list.get(_lookup_key(name), [])

    def get_all(self) -> Iterator[tuple[str, str]]:
        """Yields one ``(name, value)`` pair per field, a repeated name once per value."""
        for name, values in self._as_list.items():
            for value in values:
                yield (name, value)

    def parse_line(self, line: str, *, _chars_are_bytes: bool = True) -> None:
        r"""Adds the field of one ``Name: value`` line.

        The line may keep its ``\r\n`` (or a bare ``\n``); an empty line is
        ignored, so every line a client's ``header_callback`` receives after
        the status line can be passed here as it is.

        >>> h = HTTPHeaders()
        >>> h.parse_line("Retry-After:  120 \r\n")
        >>> h["retry-after"]
        '120'

        Raises:
            HTTPInputError: on a continuation line (obs-fold, RFC 9112 section
                5.2), a line without a colon, or an invalid name or value.
        """
        if line.endswith("\n"):
            # RFC 9112 section 2.2: a lone LF may end a line; a CR before it
            # belongs to the line ending, not to the value.
            line = line[:-2] if line.endswith("\r\n") else line[:-1]
        if not line:
            return
        self._parse_line(line, _chars_are_bytes)

    def _parse_line(self, line: str, chars_are_bytes: bool) -> None:
        if line[0] in HTTP_WHITESPACE:
            raise HTTPInputError(
                f"Header continuation lines (obs-fold) are not supported: {line!r}"
            )
        name, colon, value = line.partition(":")
        if not colon:
            raise HTTPInputError(f"no colon in header line: {line!r}")
        norm = _normalize_header(name)
        value = value.strip(HTTP_WHITESPACE)
        bad = (_BAD_BYTE_VALUE_CHARS if chars_are_bytes else _FORBIDDEN_VALUE_CHARS).search(value)
        if bad is not None:
            raise HTTPInputError(f"Invalid header value {value!r}")
        self._append(norm, value)

    @classmethod
    def parse(cls, headers: str, *, _chars_are_bytes: bool = True) -> HTTPHeaders:
        r"""Builds headers from a block of header lines (without the start line).

        Lines end with ``\r\n`` or a bare ``\n``; a CR anywhere else is an
        error, as is a continuation line.

        >>> HTTPHeaders.parse("Allow: GET\r\nallow: HEAD\n")["Allow"]
        'GET,HEAD'

        Raises:
            HTTPInputError: if the text is not a valid header block.
        """
        self = cls()
        # Walk the text instead of splitting it: a 64 KB block of tiny lines
        # would otherwise hold every line in memory at once.
        start = 0
        end = len(headers)
        find = headers.find
        while start < end:
            nl = find("\n", start)
            if nl < 0:
                # The last line has no ending: a CR there is part of it (and
                # refused), not a line ending cut short.
                nl = stop = end
            else:
                stop = nl - 1 if nl > start and headers[nl - 1] == "\r" else nl
            if stop > start:
                self._parse_line(headers[start:stop], _chars_are_bytes)
            start = nl + 1
        return self

    def __setitem__(self, name: str, value: str) -> None:
        self._as_list[_normalize_header(name)] = [value]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _lookup_key(name) in self._as_list

    def __getitem__(self, name: str) -> str:
        values = self._as_list[_lookup_key(name)]
        if len(values) == 1:
            return values[0]
        return ",".join(values)

    @overload
    def get(self, key: str) -> Optional[str]: ...

    @overload
    def get(self, key: str, default: Union[str, _T]) -> Union[str, _T]: ...

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (repeated fields joined by commas), or ``default``."""
        # As Mapping.get (and with its parameter's name), without raising and
        # catching a KeyError for every header that is absent (most lookups
        # of Origin, Sec-Fetch-Site...).
        values = self._as_list.get(_lookup_key(key))
        if values is None:
            return default
        if len(values) == 1:
            return values[0]
        return ",".join(values)

    def __delitem__(self, name: str) -> None:
        del self._as_list[_lookup_key(name)]

    def __len__(self) -> int:
        return len(self._as_list)

    def __iter__(self) -> Iterator[str]:
        return iter(self._as_list)

    def copy(self) -> HTTPHeaders:
        """Returns an independent copy (the value lists are copied too)."""
        return HTTPHeaders(self)

    # copy.copy() must not share the value lists with the original.
    __copy__ = copy

    def __str__(self) -> str:
        return "".join([f"{name}: {value}\n" for name, value in self.get_all()])

    __unicode__ = __str__


def fields_of(headers: HTTPHeaders) -> dict[str, list[str]]:
    """``headers``' own dict (canonical name -> values), for the framework's
    fast paths: writing a head, a lookup by a name already canonical, a
    field set whose name and value were checked.

    Value lists may be shared between messages (see
    `squall.httputil._response`): replace a list, never change one in place.
    A subclass may hold its fields another way (``websocket/_idle.py``):
    this asks the object, as ``headers._as_list`` does.
    """
    return headers._as_list


def check_fields(pairs: list[tuple[str, str]]) -> None:
    """Checks ``(name, value)`` pairs as `HTTPHeaders.add` checks one (a
    token name, a field value), for the clients' response heads: then
    built without a check per field (``httpserver._flow.headers_from_pairs``).

    Raises:
        HTTPInputError: a name that is not a token, or a value holding
            characters a field value may not hold.
    """
    known = _NAME_CACHE
    value_ok = _ABNF.field_value.fullmatch
    for name, value in pairs:
        if name not in known:
            _normalize_header(name)  # (raises for a name that is not a token)
        if value_ok(value) is None:
            raise HTTPInputError(f"Invalid header value {value!r}")
