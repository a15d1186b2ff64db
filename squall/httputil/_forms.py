"""Request bodies: urlencoded forms, multipart/form-data, header parameters, cookies.

Every parser here reports malformed input with `HTTPInputError`, names the
limit it enforces, and runs in time linear in its input.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import unquote_to_bytes

from squall.httputil._headers import HTTPHeaders, HTTPInputError
from squall.httputil._qs import _parse_qs_bytes
from squall.util import ObjectDict

__all__ = [
    "HTTPFile",
    "ParseBodyConfig",
    "ParseMultipartConfig",
    "ParseUrlEncodedConfig",
    "parse_body_arguments",
    "parse_cookie",
    "parse_multipart_form_data",
    "set_parse_body_config",
]


class _Key:
    # Reads one key of a dict subclass as an attribute. A non-data
    # descriptor: writes still go through ObjectDict.__setattr__.
    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Optional[dict[str, Any]], owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        try:
            return obj[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


class HTTPFile(ObjectDict):
    """A file uploaded in a ``multipart/form-data`` body.

    A dict whose keys can also be read as attributes:

    * ``filename``: the name the client gave (already decoded from RFC 5987 form)
    * ``body``: the content, as bytes
    * ``content_type``: the part's ``Content-Type`` (``application/unknown`` if absent)
    """

    if TYPE_CHECKING:
        filename: str
        body: bytes
        content_type: str
    else:
        filename = _Key()
        body = _Key()
        content_type = _Key()


@dataclasses.dataclass(slots=True)
class ParseMultipartConfig:
    """Limits applied when parsing ``multipart/form-data`` bodies.

    Attributes:
        enabled: if false, every multipart body is refused.
        max_parts: the most parts one body may hold.
        max_part_header_size: the most bytes in one part's header block.
    """

    enabled: bool = True
    max_parts: int = 100
    max_part_header_size: int = 10 * 1024


@dataclasses.dataclass(slots=True)
class ParseUrlEncodedConfig:
    """Limits applied when parsing urlencoded data (form bodies and query strings).

    Attributes:
        max_arguments: the most ``&``-separated fields one body or query may hold.
    """

    max_arguments: int = 1000


@dataclasses.dataclass(slots=True)
class ParseBodyConfig:
    """All the limits used when parsing request bodies; see `set_parse_body_config`."""

    multipart: ParseMultipartConfig = dataclasses.field(default_factory=ParseMultipartConfig)
    urlencoded: ParseUrlEncodedConfig = dataclasses.field(default_factory=ParseUrlEncodedConfig)


_PACKAGE = "squall.httputil"


def _default_config() -> ParseBodyConfig:
    # The package attribute is the single source of truth, so that code that
    # reads or replaces ``squall.httputil._DEFAULT_PARSE_BODY_CONFIG`` sees
    # the value the parsers use.
    config: ParseBodyConfig = sys.modules[_PACKAGE].__dict__["_DEFAULT_PARSE_BODY_CONFIG"]
    return config


def set_parse_body_config(config: ParseBodyConfig) -> None:
    """Replaces the process-wide limits used when no ``config`` is passed.

    They apply to `parse_body_arguments`, `parse_multipart_form_data` and the
    query strings of every `HTTPServerRequest` created afterwards.
    """
    sys.modules[_PACKAGE].__dict__["_DEFAULT_PARSE_BODY_CONFIG"] = config


def _latin1_or_utf8(text: str) -> bytes:
    # Text that came off the wire holds latin-1 characters only; anything
    # else was typed in by a program, which means UTF-8.
    try:
        return text.encode("latin1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


# Characters that matter while splitting header parameters.
_PARAM_SPECIALS = re.compile(r'[";]')
_QUOTED_PAIR = re.compile(r'\\([\\"])')


def _split_params(text: str) -> list[str]:
    # Split at the semicolons outside quoted strings, in one pass: a value
    # such as x=";;;;" must not cost more than its length. A quote right
    # after a backslash neither opens nor closes a quoted string, inside one
    # or not (so ``"a\\"`` stays open): Tornado splits this way, and
    # the same header must give the same parameters on both.
    if '"' not in text:
        return text.split(";")  # no quoted string: every semicolon splits
    pieces = []
    start = 0
    in_quotes = False
    for match in _PARAM_SPECIALS.finditer(text):
        i = match.start()
        if text[i] == '"':
            if i == 0 or text[i - 1] != "\\":
                in_quotes = not in_quotes
        elif not in_quotes:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return pieces


def _unquote_param(value: str) -> str:
    # RFC 9110 section 5.6.4: quoted-string with backslash quoted-pairs.
    # Only \\ and \" are undone: browsers send Windows paths unescaped, and
    # "C:\temp" must keep its backslash.
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
        if "\\" in value:
            value = _QUOTED_PAIR.sub(r"\1", value)
    return value


def _decode_extended(sections: list[tuple[int, bool, str]]) -> Optional[str]:
    # RFC 2231 / RFC 8187: name*=charset'lang'pct-encoded, possibly split
    # into name*0*, name*1*, ... sections.
    sections.sort(key=lambda s: s[0])
    charset = "utf-8"
    chunks = []
    for index, (number, encoded, raw) in enumerate(sections):
        if number != index:
            return None  # a gap in the numbering: ignore the whole value
        value = _unquote_param(raw)
        if encoded:
            if index == 0:
                parts = value.split("'", 2)
                if len(parts) == 3:
                    charset = parts[0] or charset
                    value = parts[2]
            chunks.append(unquote_to_bytes(value))
        else:
            chunks.append(_latin1_or_utf8(value))
    data = b"".join(chunks)
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):
        # An unknown charset, or a name no codec lookup takes (one with a
        # NUL raises ValueError): fall back to UTF-8.
        return data.decode("utf-8", "replace")


_WORD = re.compile(r"\w+")


def _parse_header(line: str) -> tuple[str, dict[str, str]]:
    r"""Splits a header value such as Content-Disposition into its main value and parameters.

    Parameter names are lowercased; quoted values are unquoted; a name
    without ``=`` is left out (as Tornado does: code written for it tests
    ``"filename" in params`` and then uses the value); RFC 2231/8187
    extended parameters (``filename*=UTF-8''...``) are decoded and take the
    place of the plain parameter of the same name.

    >>> _parse_header('attachment; FILENAME="a \\"b\\".txt"; size=3; inline')
    ('attachment', {'filename': 'a "b".txt', 'size': '3'})
    >>> _parse_header("form-data; name=f; filename*=UTF-8''%E2%82%AC.txt")[1]["filename"]
    '€.txt'
    """
    pieces = _split_params(line)
    key = pieces[0].strip()
    params: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    for i in range(1, len(pieces)):
        name, eq, value = pieces[i].partition("=")
        name = name.strip().lower()
        if not eq:
            continue
        value = value.strip()
        if "*" in name:
            # RFC 2231's forms only (``name*``, ``name*0``, ``name*0*``, the
            # name a word); any other name with a star is a plain name.
            base, _, suffix = name.partition("*")
            encoded = suffix.endswith("*") or suffix == ""
            number = suffix[:-1] if suffix.endswith("*") else suffix
            if _WORD.fullmatch(base) and (suffix == "" or (number.isdigit() and number.isascii())):
                extended.setdefault(base, []).append((int(number or 0), encoded, value))
                continue
        params[name] = _unquote_param(value)
    for base, sections in extended.items():
        decoded = _decode_extended(sections)
        if decoded is not None:
            params[base] = decoded
    return key, params


def _count_params(line: str, name: str) -> int:
    """How many parameters of the header value ``line`` are called ``name``
    (in any case, RFC 2231 sections and ``name*`` included)."""
    count = 0
    for piece in _split_params(line)[1:]:
        key = piece.partition("=")[0].strip().lower()
        if key.partition("*")[0] == name:
            count += 1
    return count


def _encode_header(key: str, pdict: dict[str, Any]) -> str:
    """The inverse of `_parse_header`: parameters sorted by name, ``None`` meaning a bare name.

    >>> _encode_header("form-data", {"name": "f", "hidden": None})
    'form-data; hidden; name=f'
    """
    if not pdict:
        return key
    out = [key]
    for name, value in sorted(pdict.items()):
        out.append(name if value is None else f"{name}={value}")
    return "; ".join(out)


def parse_multipart_form_data(
    boundary: bytes,
    data: bytes,
    arguments: dict[str, list[bytes]],
    files: dict[str, list[HTTPFile]],
    *,
    config: Optional[ParseMultipartConfig] = None,
) -> None:
    """Parses a ``multipart/form-data`` body (RFC 7578) into ``arguments`` and ``files``.

    Parts with a ``filename`` become `HTTPFile` objects in ``files``; the
    others go to ``arguments`` as bytes. Nothing is added unless the whole
    body parses. ``boundary`` may still carry the quotes of a quoted
    ``boundary`` parameter.

    Raises:
        HTTPInputError: if the body is malformed or exceeds ``config`` (by
            default the limits set with `set_parse_body_config`).
    """
    if config is None:
        config = _default_config().multipart
    if not config.enabled:
        raise HTTPInputError("multipart/form-data parsing is disabled")
    # RFC 2046 section 5.1.1: the boundary parameter may be a quoted-string.
    if len(boundary) >= 2 and boundary[:1] == b'"' and boundary[-1:] == b'"':
        boundary = boundary[1:-1]
    if not boundary:
        raise HTTPInputError("Invalid multipart/form-data: empty boundary")
    dash_boundary = b"--" + boundary
    final = data.rfind(dash_boundary + b"--")
    if final < 0:
        raise HTTPInputError("Invalid multipart/form-data: no final boundary found")
    delimiter = dash_boundary + b"\r\n"
    # Count before copying anything, so that a body of many tiny parts costs
    # no memory before it is refused.
    count = data.count(delimiter, 0, final)
    if count > config.max_parts:
        raise HTTPInputError(
            f"multipart/form-data has too many parts ({count}; the limit is {config.max_parts})"
        )
    fields: list[tuple[str, Any]] = []
    # RFC 2046 section 5.1.1: anything before the first delimiter is a
    # preamble, to be ignored. Some clients omit the opening delimiter, so a
    # preamble that parses as a complete form-data part is kept as one (as
    # Tornado does); anything else in it is dropped.
    pos = data.find(delimiter, 0, final)
    if pos < 0:
        # No delimiter at all: what precedes the final boundary is either
        # nothing (the CRLF of the close delimiter) or the one part. Dropped
        # as a preamble, content sent with LF line ends or with blanks after
        # the boundary would leave an empty form and no word of why.
        if _NOT_BLANK.search(data, 0, final):
            try:
                fields.append(_parse_part(data, 0, final, config))
            except HTTPInputError as exc:
                raise HTTPInputError(
                    f"Invalid multipart/form-data: no delimiter {dash_boundary!r}"
                    f" followed by CRLF before the final boundary ({exc})"
                ) from exc
    elif pos >= 2 and data.find(b"\r\n\r\n", 0, pos) >= 0:
        try:
            fields.append(_parse_part(data, 0, pos, config))
        except HTTPInputError:
            pass
    while pos >= 0:
        start = pos + len(delimiter)
        pos = data.find(delimiter, start, final)
        end = final if pos < 0 else pos
        fields.append(_parse_part(data, start, end, config))
    for name, value in fields:
        if isinstance(value, HTTPFile):
            files.setdefault(name, []).append(value)
        else:
            arguments.setdefault(name, []).append(value)


_NOT_BLANK = re.compile(rb"[^ \t\r\n]")


def _parse_part(data: bytes, start: int, end: int, config: ParseMultipartConfig) -> tuple[str, Any]:
    # One part lies in data[start:end]; its last two bytes are the CRLF that
    # belongs to the next delimiter (RFC 2046 section 5.1.1).
    eoh = data.find(b"\r\n\r\n", start, end)
    if eoh < 0:
        raise HTTPInputError("multipart/form-data missing headers")
    if eoh - start > config.max_part_header_size:
        raise HTTPInputError(
            f"multipart/form-data part header too large ({eoh - start} bytes;"
            f" the limit is {config.max_part_header_size})"
        )
    if not data.endswith(b"\r\n", start, end):
        raise HTTPInputError("Invalid multipart/form-data: a part does not end with CRLF")
    try:
        header_text = data[start:eoh].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPInputError(f"Invalid multipart/form-data: part headers are not UTF-8: {exc}")
    # RFC 7578 section 5.1: non-ASCII field and file names arrive raw in
    # UTF-8, so these headers are text, not latin-1 octets.
    headers = HTTPHeaders.parse(header_text, _chars_are_bytes=False)
    disposition, params = _parse_header(headers.get("Content-Disposition", ""))
    if disposition.lower() != "form-data":
        raise HTTPInputError(
            f"Invalid multipart/form-data: Content-Disposition is {disposition!r}, not form-data"
        )
    name = params.get("name")
    if not name:
        raise HTTPInputError("multipart/form-data value missing name")
    value = data[eoh + 4 : end - 2] if eoh + 4 < end - 2 else b""
    filename = params.get("filename")
    if filename:
        content_type = headers.get("Content-Type", "application/unknown")
        return name, HTTPFile(filename=filename, body=value, content_type=content_type)
    return name, value


_FORM_TYPES = frozenset(("application/x-www-form-urlencoded", "multipart/form-data"))


def parse_body_arguments(
    content_type: str,
    body: bytes,
    arguments: dict[str, list[bytes]],
    files: dict[str, list[HTTPFile]],
    headers: Optional[HTTPHeaders] = None,
    *,
    config: Optional[ParseBodyConfig] = None,
) -> None:
    """Parses a form body into ``arguments`` (and ``files``, for multipart).

    Handles ``application/x-www-form-urlencoded`` and ``multipart/form-data``;
    other content types are left alone, whatever their coding (an
    application may decode a compressed JSON body itself). ``headers`` are
    the request's, used to refuse a form that is still content-encoded (the
    server decodes it itself when ``decompress_request`` is on).

    Raises:
        HTTPInputError: if the form is malformed, exceeds ``config`` (by
            default the limits set with `set_parse_body_config`) or has a
            ``Content-Encoding``.
    """
    if config is None:
        config = _default_config()
    if "," in content_type:
        # Content-Type fields sent twice arrive joined by a comma. The field
        # has one value (RFC 9110 section 8.3), so the same value repeated
        # is that value. Different values are no form type, except that
        # different multipart ones are refused below, by their boundaries.
        distinct = {value.strip() for value in content_type.split(",")}
        if len(distinct) == 1:
            content_type = distinct.pop()
    media_type, params = _parse_header(content_type)
    media_type = media_type.lower()
    if media_type not in _FORM_TYPES:
        return
    if headers is not None and "Content-Encoding" in headers:
        encoding = headers["Content-Encoding"]
        raise HTTPInputError(f"Unsupported Content-Encoding: {encoding}")
    if media_type == "application/x-www-form-urlencoded":
        if isinstance(body, str):
            body = _latin1_or_utf8(body)
        try:
            parsed = _parse_qs_bytes(body, config.urlencoded.max_arguments)
        except HTTPInputError as exc:
            raise HTTPInputError(f"Invalid x-www-form-urlencoded body: {exc}") from exc
        for name, values in parsed.items():
            arguments.setdefault(name, []).extend(values)
    elif media_type == "multipart/form-data":
        boundary = params.get("boundary")
        if not boundary:
            raise HTTPInputError("Invalid multipart/form-data: no boundary parameter")
        if _count_params(content_type, "boundary") > 1:
            # One parser reads the first, another the last: the parts a
            # proxy checks need not be the parts the application gets.
            raise HTTPInputError("Invalid multipart/form-data: more than one boundary parameter")
        try:
            parse_multipart_form_data(
                _latin1_or_utf8(boundary), body, arguments, files, config=config.multipart
            )
        except HTTPInputError as exc:
            # Every multipart error logged starts with the same words, as on Tornado.
            if str(exc).startswith("Invalid multipart/form-data"):
                raise
            raise HTTPInputError(f"Invalid multipart/form-data: {exc}") from exc


# A backslash escape inside a quoted cookie value: three octal digits
# (\000-\377) or any one character.
_COOKIE_ESCAPE = re.compile(r"\\(?:([0-3][0-7][0-7])|(.))", re.DOTALL)


def _cookie_escape_sub(match: re.Match[str]) -> str:
    octal = match.group(1)
    return chr(int(octal, 8)) if octal is not None else match.group(2)


def _unquote_cookie(value: str) -> str:
    """Undoes the quoting `http.cookies` applies to values (octal and backslash escapes)."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    value = value[1:-1]
    if "\\" not in value:
        return value
    return _COOKIE_ESCAPE.sub(_cookie_escape_sub, value)


def parse_cookie(cookie: str) -> dict[str, str]:
    """Parses a ``Cookie`` header value into a ``{name: value}`` dict.

    Lenient the way browsers are (RFC 6265 section 5.4 is stricter): every
    ``;`` separates cookies, even inside quotes; a chunk without ``=`` is a
    value with an empty name; the last cookie of a name wins.

    >>> parse_cookie('theme=dark; lang="en"')
    {'theme': 'dark', 'lang': 'en'}
    """
    result: dict[str, str] = {}
    start = 0
    length = len(cookie)
    find = cookie.find
    # Walk instead of split(): a 64 KB header of empty cookies must not
    # hold every chunk in memory at once.
    while start <= length:
        end = find(";", start)
        if end < 0:
            end = length
        eq = find("=", start, end)
        if eq < 0:
            name = ""
            value = cookie[start:end].strip()
        else:
            name = cookie[start:eq].strip()
            value = cookie[eq + 1 : end].strip()
        if name or value:
            result[name] = _unquote_cookie(value)
        start = end + 1
    return result
