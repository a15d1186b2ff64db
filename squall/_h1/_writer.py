"""Serialization helpers: header blocks and chunked framing (RFC 9112 §5, §7)."""

from __future__ import annotations

from collections.abc import Iterable

from ._errors import LocalProtocolError
from ._rules import STR_FIELDS_RE, STR_TOKEN_RE, STR_VALUE_RE

__all__ = ["check_block", "encode_fields", "encode_lines", "find_values"]


def encode_fields(headers: Iterable[tuple[str, str]]) -> str:
    """Render field lines as ``"Name: value\\r\\n"...``, checked against the
    same grammar the parser enforces, so what we send always re-parses.

    Raises:
        LocalProtocolError: A name is not a token, or a value holds CR, LF,
            NUL or another control character (header injection).
    """
    try:
        lines = list(map(": ".join, headers))
    except TypeError:
        raise LocalProtocolError("header fields must be (str, str) pairs") from None
    return encode_lines(lines)


def encode_lines(lines: list[str]) -> str:
    """`encode_fields` for field lines the caller has already rendered as
    ``"Name: value"`` (each from one name and one value).

    Raises:
        LocalProtocolError: As `encode_fields`.
    """
    if not lines:
        return ""
    text = "\r\n".join(lines) + "\r\n"
    check_block(text, lines)
    return text


def check_block(text: str, lines: list[str]) -> None:
    """Check ``text``, the ``lines`` (``"Name: value"``, each with or without
    its CRLF) joined into a block of CRLF-terminated lines.

    Raises:
        LocalProtocolError: As `encode_fields`.
    """
    # The line count check catches a CR or LF inside one value, which the
    # block grammar alone would read as a second (injected) field.
    n = len(lines)
    if STR_FIELDS_RE.fullmatch(text) is None or text.count("\n") != n or text.count("\r") != n:
        _diagnose(lines)
        raise LocalProtocolError(f"invalid header field in {text[:200]!r}")


def _diagnose(lines: list[str]) -> None:
    for line in lines:
        if line.endswith("\r\n"):
            line = line[:-2]
        name, _, value = line.partition(": ")
        if STR_TOKEN_RE.fullmatch(name) is None:
            raise LocalProtocolError(f"invalid header name {name[:100]!r}")
        if STR_VALUE_RE.fullmatch(value) is None:
            raise LocalProtocolError(
                f"invalid character in value of header {name!r}: {value[:100]!r}"
            )


def find_values(text: str, low: str, key: str) -> list[str] | None:
    """Return the values of one field in a block built by `encode_fields`.

    Args:
        text: The block.
        low: ``"\\n" + text.lower()``.
        key: ``"\\n" + lowercase name + ":"``.

    Returns:
        The values, or None when the field is absent.
    """
    i = low.find(key)
    if i < 0:
        return None
    out: list[str] = []
    n = len(key)
    while i >= 0:
        # low is text shifted by one character.
        j = text.find("\r\n", i)
        out.append(text[i + n - 1 : j].strip(" \t"))
        i = low.find(key, j)
    return out


def chunk(data: bytes) -> bytes:
    """Frame ``data`` as one chunk (RFC 9112 §7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)
