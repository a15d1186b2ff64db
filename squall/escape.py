"""Escaping and unescaping for HTML, URLs and JSON, plus str/bytes helpers.

Everything here runs in time and memory linear in its input: these functions
are routinely handed whole request bodies, so a quadratic corner is a
denial-of-service hole.
"""

from __future__ import annotations

import html
import json
import json.encoder
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from types import FunctionType
from typing import Any, Optional, Union, overload

from squall._jsonenc import encode_plain as _encode_plain
from squall._xhtml import xhtml_escape

__all__ = [
    "json_decode",
    "json_encode",
    "linkify",
    "native_str",
    "parse_qs_bytes",
    "recursive_unicode",
    "squeeze",
    "to_basestring",
    "to_unicode",
    "url_escape",
    "url_unescape",
    "utf8",
    "xhtml_escape",
    "xhtml_unescape",
]


# --- str / bytes conversion -------------------------------------------------

_UTF8_TYPES = (bytes, type(None))
_TO_UNICODE_TYPES = (str, type(None))


@overload
def utf8(value: bytes) -> bytes: ...
@overload
def utf8(value: str) -> bytes: ...
@overload
def utf8(value: None) -> None: ...
def utf8(value: Union[None, str, bytes]) -> Optional[bytes]:
    """Encode ``value`` as UTF-8 bytes; bytes and None pass through unchanged.

    Raises:
        TypeError: if ``value`` is neither str, bytes nor None.
    """
    if isinstance(value, _UTF8_TYPES):
        return value
    if not isinstance(value, str):
        raise TypeError(f"Expected bytes, unicode, or None; got {type(value)!r}")
    return value.encode("utf-8")


@overload
def to_unicode(value: str) -> str: ...
@overload
def to_unicode(value: bytes) -> str: ...
@overload
def to_unicode(value: None) -> None: ...
def to_unicode(value: Union[None, str, bytes]) -> Optional[str]:
    """Decode ``value`` from UTF-8; str and None pass through unchanged.

    Raises:
        TypeError: if ``value`` is neither str, bytes nor None.
    """
    if isinstance(value, _TO_UNICODE_TYPES):
        return value
    if not isinstance(value, bytes):
        raise TypeError(f"Expected bytes, unicode, or None; got {type(value)!r}")
    return value.decode("utf-8")


# On Python 3 the "native" string type is str, so both historical names are
# plain aliases.
native_str = to_unicode
to_basestring = to_unicode
_unicode = to_unicode


def recursive_unicode(obj: Any) -> Any:
    """Decode every bytes object found in nested dicts, lists and tuples."""
    if isinstance(obj, dict):
        return {recursive_unicode(k): recursive_unicode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [recursive_unicode(item) for item in obj]
    if isinstance(obj, tuple):
        return tuple(recursive_unicode(item) for item in obj)
    if isinstance(obj, bytes):
        return to_unicode(obj)
    return obj


# --- HTML -------------------------------------------------------------------


# xhtml_escape lives in squall._xhtml (imported above), which the compiled
# build replaces with C; escape's other functions stay here.


def xhtml_unescape(value: Union[str, bytes]) -> str:
    """Replace HTML character references in ``value`` with the characters,
    by HTML5's rules, as `html.unescape` does (Tornado's since 6.4), but
    always returning ``str``.

    Named references without their ``;`` that HTML keeps for old pages
    (``&amp``, ``&copy``) are replaced; a numeric reference to no
    character (``&#0;``, past U+10FFFF, a surrogate) becomes U+FFFD, and
    one to a C1 control becomes the Windows-1252 character browsers show.
    """
    return html.unescape(to_unicode(value))


# --- URLs -------------------------------------------------------------------


def url_escape(value: Union[str, bytes], plus: bool = True) -> str:
    """Percent-encode ``value`` for use in a URL.

    Args:
        value: text (encoded as UTF-8 first) or bytes.
        plus: encode spaces as ``+`` (form encoding, for query strings); when
            False spaces become ``%20`` and ``/`` is kept (for paths).
    """
    if plus:
        return urllib.parse.quote_plus(utf8(value))
    return urllib.parse.quote(utf8(value))


def _build_hex_table() -> dict[bytes, int]:
    digits = "0123456789abcdefABCDEF"
    return {(a + b).encode("ascii"): int(a + b, 16) for a in digits for b in digits}


_HEX_PAIRS = _build_hex_table()


def _unquote_to_bytes(data: Union[str, bytes]) -> bytes:
    """Decode ``%XX`` escapes; a ``%`` not followed by two hex digits stays.

    Unlike the standard library, this allocates no object per escape that
    outlives its loop iteration, so memory stays proportional to the input.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    first = data.find(b"%")
    if first < 0:
        return bytes(data)
    out = bytearray(data[:first])
    copied = first  # data[:copied] is accounted for in out
    pos = first
    while pos >= 0:
        byte = _HEX_PAIRS.get(data[pos + 1 : pos + 3])
        if byte is None:
            pos = data.find(b"%", pos + 1)
            continue
        out += data[copied:pos]
        out.append(byte)
        copied = pos + 3
        pos = data.find(b"%", copied)
    out += data[copied:]
    return bytes(out)


@overload
def url_unescape(value: Union[str, bytes], encoding: None, plus: bool = True) -> bytes: ...
@overload
def url_unescape(value: Union[str, bytes], encoding: str = "utf-8", plus: bool = True) -> str: ...
def url_unescape(
    value: Union[str, bytes], encoding: Optional[str] = "utf-8", plus: bool = True
) -> Union[str, bytes]:
    """Decode a percent-encoded URL component.

    Args:
        value: the encoded text (str or bytes).
        encoding: how to decode the result; None returns bytes. Escaped
            bytes that do not decode become U+FFFD.
        plus: treat ``+`` as a space (form encoding); False for URL paths.

    Raises:
        UnicodeDecodeError: if ``value`` is bytes holding raw (unescaped)
            non-ASCII bytes that are not UTF-8, unless ``encoding`` is None
            and ``plus`` is False (then they are returned as they are).
    """
    if not isinstance(value, str) and not value.isascii() and (plus or encoding is not None):
        # Raw non-ASCII bytes are UTF-8 text (a UnicodeDecodeError if they
        # are not), taken as the str branch takes text.
        value = value.decode("utf-8")
    if isinstance(value, str):
        if not value.isascii():
            # Raw non-ASCII text is kept as text (as the standard library
            # does), not reinterpreted as bytes in ``encoding``.
            if plus:
                value = value.replace("+", " ")
            if encoding is None:
                return urllib.parse.unquote_to_bytes(value)
            return urllib.parse.unquote(value, encoding=encoding)
        raw = value.encode("ascii")
    else:
        raw = value
    if plus:
        raw = raw.replace(b"+", b" ")
    decoded = _unquote_to_bytes(raw)
    if encoding is None:
        return decoded
    return decoded.decode(encoding, "replace")


def parse_qs_bytes(
    qs: Union[str, bytes],
    keep_blank_values: bool = False,
    strict_parsing: bool = False,
    *,
    max_num_fields: Optional[int] = None,
) -> dict[str, list[bytes]]:
    """Parse a query string, keeping the values as bytes.

    Names are decoded as latin-1 (so any byte maps to one character); values
    stay bytes because their encoding is up to the application.

    Args:
        qs: the query string, without the ``?``. A str is taken as latin-1.
        keep_blank_values: keep ``a=`` and ``a`` as empty values.
        strict_parsing: raise ValueError for a field with no ``=``.
        max_num_fields: raise ValueError if there are more fields than this.

    Raises:
        ValueError: for a malformed field under ``strict_parsing``, or too many
            fields.
    """
    raw = qs.encode("latin1") if isinstance(qs, str) else qs
    if max_num_fields is not None:
        num_fields = raw.count(b"&") + 1
        if num_fields > max_num_fields:
            raise ValueError(f"Max number of fields exceeded: {num_fields} > {max_num_fields}")
    result: dict[str, list[bytes]] = {}
    if not raw:
        # An empty query has no fields at all, even under strict parsing.
        return result
    for field in raw.split(b"&"):
        if not field and not strict_parsing:
            continue
        name, eq, value = field.partition(b"=")
        if not eq:
            if strict_parsing:
                raise ValueError(f"bad query field: {field!r}")
            if not keep_blank_values:
                continue
        if not value and not keep_blank_values:
            continue
        key = _unquote_to_bytes(name.replace(b"+", b" ")).decode("latin1")
        result.setdefault(key, []).append(_unquote_to_bytes(value.replace(b"+", b" ")))
    return result


# --- JSON -------------------------------------------------------------------


# The compiled build's C writer of plain values (squall._jsonenc): a
# response's dict of strs and numbers in one pass. The pure build's twin of
# it would walk the value and then call json.dumps, so it is not asked.
_PLAIN_IN_C = not isinstance(_encode_plain, FunctionType)


def json_encode(value: Any) -> str:
    """Serialize ``value`` as JSON that is safe to embed in an HTML ``<script>``.

    ``</`` is written as ``<\\/`` (same meaning in JSON) so that a string
    holding ``</script>`` cannot end the script element.
    """
    if _PLAIN_IN_C:
        text = _encode_plain(value)
        if text is not None:
            return text
    encode = getattr(_json_encoders, "encode", None)
    if encode is None:
        encode = _json_encoders.encode = _new_json_encoder()
    return encode(value).replace("</", "<\\/")


def _not_serializable(value: Any) -> Any:
    # The message json.dumps gives, so that errors read the same.
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _new_json_encoder() -> Callable[[Any], str]:
    """One thread's JSON encoder: json.dumps's output, built once.

    ``json.dumps`` with its defaults builds a new C encoder on every call,
    which is most of its cost for a small object (about 16k instructions a
    call, against 6k with the encoder built once). The C encoder keeps the ids of the containers it is inside
    in ``markers`` (to report a circular reference), so each thread has its
    own, and they are cleared when an encode fails half way.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python): the plain route
        return json.dumps
    markers: dict[int, Any] = {}
    chunks = make(
        markers,
        _not_serializable,
        json.encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )

    def encode(value: Any) -> str:
        try:
            return "".join(chunks(value, 0))
        except BaseException:
            markers.clear()
            raise

    return encode


_json_encoders = threading.local()


def json_decode(value: Union[str, bytes]) -> Any:
    """Parse JSON from what `json.loads` takes: str, or bytes or a bytearray
    in UTF-8 (or UTF-16/32, which it detects), as Tornado's does."""
    return json.loads(value)


# --- text -------------------------------------------------------------------

_WHITESPACE_RUN_RE = re.compile(r"[\x00-\x20]+")


def squeeze(value: str) -> str:
    """Collapse each run of whitespace (and control characters) into one space."""
    return _WHITESPACE_RUN_RE.sub(" ", value).strip()


# A link starts with "scheme:" plus one to three slashes, or with "www.".
# The scheme is only tried where a run of word characters and hyphens begins
# (the look-behind), so a long run is scanned once rather than once per
# position. The body is a sequence of pieces, each either a run of URL
# characters ending in a character that is not punctuation (so "foo.com/."
# or "(see foo.com)" keep their trailing punctuation outside the link), or a
# parenthesised run with no nested parentheses (Wikipedia-style URLs). The
# text is already HTML-escaped, so "&" may only appear as &amp; or &quot;.
_URL_PUNCT = r"""(?:[!"#$%'*+,.:;<=>?@\[\]^`{|}~]|&amp;|&quot;)"""
_URL_WORD = r"""[^\s!"#$%&'()*+,.:;<=>?@\[\]^`{|}~]"""
_URL_ANY = r"(?:[^\s&()]++|&amp;|&quot;)"
# Every quantifier in the body is possessive and the pieces it chooses
# between start with disjoint characters, so the engine never backtracks.
_LINK_RE = re.compile(
    r"(?:(?<![\w-])-*(\w[\w-]*):(/{1,3})|\bwww\.)"
    rf"(?:{_URL_PUNCT}*+{_URL_WORD}++|\({_URL_ANY}*+\))+"
)
_SHORTEN_TO = 30


def _shorten(url: str, prefix_len: int) -> str:
    """The text shown for a long link: host, a hint of the path, and "..."
    (Tornado's cut, character for character: pages' snapshot tests compare
    it)."""
    if len(url) <= _SHORTEN_TO:
        return url
    host, slash, path = url[prefix_len:].partition("/")
    short = url
    if slash:
        # Enough of the first path segment to hint at it; its extension and
        # query are noise once the rest is cut.
        hint = path.split("/", 1)[0][:8].split("?", 1)[0].split(".", 1)[0]
        short = url[:prefix_len] + host + "/" + hint
    if len(short) > _SHORTEN_TO * 3 // 2:
        short = short[:_SHORTEN_TO]
    if short == url:
        return url
    # An escaped "&" near the cut's end goes, with what follows it.
    amp = short.rfind("&")
    if amp > _SHORTEN_TO - 5:
        short = short[:amp]
    short += "..."
    return url if len(short) >= len(url) else short


def linkify(
    text: Union[str, bytes],
    shorten: bool = False,
    extra_params: Union[str, Callable[[str], str]] = "",
    require_protocol: bool = False,
    permitted_protocols: Iterable[str] = ["http", "https"],  # noqa: B006
) -> str:
    """Turn URLs in plain text into HTML links; the rest of the text is escaped.

    Args:
        text: plain text (not HTML).
        shorten: show long URLs shortened, with the full URL as the title.
        extra_params: attributes added to each ``<a>`` tag, or a callable
            taking the link's href and returning them.
        require_protocol: only link URLs with a scheme (so not ``www.x.com``).
        permitted_protocols: schemes that may be linked. Never include
            ``javascript`` or ``data``.

    Returns:
        HTML.
    """
    # Schemes compare as written, as in Tornado: "HTTP://x" is not linked
    # unless "HTTP" is permitted.
    permitted = set(permitted_protocols)
    fixed_params = ""
    if extra_params and not callable(extra_params):
        fixed_params = " " + extra_params.strip()

    def make_link(match: re.Match[str]) -> str:
        url = match.group(0)
        scheme = match.group(1)
        if scheme is not None:
            # The look-behind lets leading hyphens into the match; they are
            # not part of the link.
            start = match.start(1) - match.start(0)
            lead, url = url[:start], url[start:]
            if scheme not in permitted:
                return lead + url
        else:
            lead = ""
            if require_protocol:
                return url
        href = url if scheme is not None else "http://" + url
        if callable(extra_params):
            # (A space even before nothing: Tornado's bytes, which pages'
            # snapshot tests compare.)
            params = " " + extra_params(href).strip()
        else:
            params = fixed_params
        shown = url
        if shorten:
            prefix_len = len(scheme) + 1 + len(match.group(2)) if scheme is not None else 0
            shown = _shorten(url, prefix_len)
            if shown != url:
                params += f' title="{href}"'
        return f'{lead}<a href="{href}"{params}>{shown}</a>'

    return _LINK_RE.sub(make_link, xhtml_escape(text))
