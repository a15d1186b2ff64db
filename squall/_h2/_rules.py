"""Rules on header fields that HTTP/2 adds to HTTP's (RFC 9113 §8.2, §8.3).

Shared by the server's request checks, the client's response checks and
the drivers, which write fields given for HTTP/1.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Optional

__all__ = [
    "CONNECTION_FIELDS",
    "TRAILER_FORBIDDEN",
    "bad_value",
    "content_length",
    "length_mismatch",
    "field_octets",
    "good_method",
    "good_name",
    "good_scheme",
    "response_fields",
    "trailer_fields",
    "tunnel_fields",
]

#: Fields that name the connection, not the message: forbidden in HTTP/2
#: (RFC 9113 §8.2.2), dropped from responses written for HTTP/1.1. ``te``
#: is allowed with the value ``trailers`` only.
CONNECTION_FIELDS: Final = frozenset(
    ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")
)

#: RFC 9113 §8.2.1: a field name is a lowercase token.
good_name: Final = re.compile(r"[a-z0-9!#$%&'*+\-.^_`|~]+\Z").match
#: RFC 9110 §9.1: a method is a token.
good_method: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z").match
#: RFC 3986 §3.1: a scheme.
good_scheme: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z").match


_control: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]").search


def bad_value(value: str) -> bool:
    """A non-empty value with a control character other than HTAB (NUL, CR
    and LF by RFC 9113 §8.2.1; the others as HTTP/1.1 refuses them, RFC 9110
    §5.5), or whitespace at either end (RFC 9113 §8.2.1).

    ``isprintable()`` (C speed, no control character at all) settles the
    common value; the rest (a tab, obs-text) goes through the regex, which
    was fifteen times slower than substring tests on a user agent.
    """
    if value.isprintable():
        return value[0] == " " or value[-1] == " "
    return _control(value) is not None or value[0] in " \t" or value[-1] in " \t"


# RFC 9110 §6.5.1: fields that framing, routing or the head depend on may
# not be trailers; with HTTP/2's own connection-specific ones (§8.2.2).
TRAILER_FORBIDDEN: Final = CONNECTION_FIELDS | frozenset(
    (
        "te",
        "content-length",
        "content-type",
        "content-encoding",
        "host",
        "trailer",
        "authorization",
        "set-cookie",
    )
)


def field_octets(name: str, value: str) -> bytes:
    """A response field's value as HTTP/2 sends it: one byte per character,
    as HTTP/1.1 writes it, without the spaces and tabs at either end.

    An HTTP/1.1 recipient drops that whitespace when it reads the line; an
    HTTP/2 one may reject the whole response for it (RFC 9113 §8.2.1), so
    it is left out here.

    Raises:
        ValueError: a character outside latin-1 (HTTP/1.1 refuses the same
            head, so a handler gets the same error on both).
    """
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(_not_latin1(name, value)) from None
    return raw.strip(b" \t")


def _not_latin1(name: str, value: str) -> str:
    line = f"{name}: {value}"
    return f"header text must be latin-1: {line[:200]!r}"


# Response field names as HTTP/2 sends them (lowercase octets), b"" for the
# connection-specific ones: a recurring name costs one dict lookup. Bounded.
_wire_names: Final[dict[str, bytes]] = {}
_WIRE_NAMES_MAX: Final = 512


def _wire_name(name: str) -> bytes:
    lname = name.lower()
    raw = b"" if lname in CONNECTION_FIELDS else lname.encode("ascii")
    if len(_wire_names) >= _WIRE_NAMES_MAX:
        _wire_names.clear()
    _wire_names[name] = raw
    return raw


def response_fields(fields: Iterable[tuple[str, list[str]]]) -> list[tuple[bytes, bytes]]:
    """A response head written for HTTP/1.1, as HTTP/2 carries it.

    Args:
        fields: (name, values) pairs, names in any case.

    Returns:
        (name, value) pairs, names lowercase, the connection-specific fields
        left out (RFC 9113 §8.2.2: HTTP/2 frames the message itself).

    Raises:
        ValueError: a name or value is not text, or a value is not latin-1
            (see `field_octets`, which also trims the values).
    """
    out: list[tuple[bytes, bytes]] = []
    names = _wire_names
    try:
        for name, values in fields:
            raw = names.get(name)
            if raw is None:
                raw = _wire_name(name)
            if not raw:
                continue
            for value in values:
                # field_octets, inline (a call per field was 1% of an
                # HTTP/3 request's operations): try costs nothing here.
                try:
                    out.append((raw, value.encode("latin-1").strip(b" \t")))
                except UnicodeEncodeError:
                    raise ValueError(_not_latin1(name, value)) from None
    except (TypeError, AttributeError, UnicodeEncodeError):
        raise ValueError("header fields must be (str, str) pairs") from None
    return out


def tunnel_fields(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The head of a 2xx answer to CONNECT (an extended CONNECT's too, RFC
    8441 §5): without Content-Length, which RFC 9110 §9.3.6 forbids there
    (Transfer-Encoding is gone already, see `response_fields`)."""
    return [field for field in fields if field[0] != b"content-length"]


def trailer_fields(fields: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """A trailer section to send (RFC 9113 §8.1), checked.

    Raises:
        ValueError: a pseudo-header, or a field that may not be a trailer
            (RFC 9110 §6.5.1), named in the message.
    """
    out: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        lname = name.lower()
        if lname[:1] == ":" or lname in TRAILER_FORBIDDEN:
            raise ValueError(f"{name!r} may not be a trailer field")
        out.append((lname.encode("ascii"), field_octets(name, value)))
    return out


# What `content_length` returns besides a length (an int, for the compiled
# callers' sake, not an Optional).
NO_LENGTH: Final = -1  # no Content-Length field
INVALID_LENGTH: Final = -2  # not one number of digits: the request is answered 400


def content_length(values: Optional[list[str]]) -> int:
    """A request's Content-Length: `NO_LENGTH` if there is none,
    `INVALID_LENGTH` if it is not one number of digits (RFC 9110 §8.6;
    ``int()`` would take "+1" or "1_0")."""
    if values is None:
        return NO_LENGTH
    value = values[0]
    if len(values) == 1 and value.isascii() and value.isdigit():
        return int(value)
    return INVALID_LENGTH


def length_mismatch(received: int, declared: int) -> str:
    """What is wrong with a body of ``received`` bytes, so far (over
    ``declared``) or in all (under it), where Content-Length said
    ``declared`` (RFC 9110 §8.6)."""
    when = "so far" if received > declared else "in all"
    return f"{received} bytes of body {when} where Content-Length is {declared}"
