"""What generated template code calls while it renders.

Generated code builds a list of str pieces (bytes only where a value is not
valid UTF-8, see `join`) and the result is encoded once, at the end: cheaper
than encoding each piece, and the same bytes. These helpers are handed to the
entry point as parameter defaults, so the generated code reads them as fast
locals rather than looking them up in the template's namespace.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from squall._xhtml import escape_value
from squall.escape import utf8, xhtml_escape

__all__ = ["HELPERS", "escape_other", "join", "raw", "text"]


def escape_other(value: Any) -> str:
    """``xhtml_escape`` of a value that is neither exactly str nor int.

    Exactly as the bytes pipeline would have it: str() of anything but str
    and bytes, then UTF-8 (so a str subclass escapes as plain text, whatever
    its own methods do), then escaped.
    """
    if not isinstance(value, (str, bytes)):
        value = str(value)
    return xhtml_escape(utf8(value))


def text(value: Optional[bytes]) -> Union[str, bytes, None]:
    """UTF-8 bytes as str; bytes that are not UTF-8 are kept as they are."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            # Written out byte for byte by `join`, as Tornado's bytes do.
            return value
    return value


def raw(value: Any) -> Union[str, bytes, None]:
    """An unescaped value as it is output: str() of non-strings, then as `text`."""
    if not isinstance(value, (str, bytes)):
        value = str(value)
    return text(utf8(value))


def join(parts: list[Any]) -> bytes:
    """The UTF-8 bytes of the rendered pieces.

    Raises:
        TypeError: if a piece is neither str nor bytes (an ``{% apply %}``
            function that returned None, say).
    """
    try:
        whole = "".join(parts)
    except TypeError:
        # A raw value that is not valid UTF-8: the slow, mixed join.
        return b"".join([p.encode("utf-8") if isinstance(p, str) else p for p in parts])
    return whole.encode("utf-8")


# Parameter name of the generated entry point -> its default value. The
# names start with _tt_ like every name of generated code.
HELPERS: dict[str, Any] = {
    "_tt_type": type,
    "_tt_str": str,
    "_tt_int": int,
    "_tt_isinstance": isinstance,
    "_tt_string_types": (str, bytes),
    "_tt_utf8": utf8,
    "_tt_escape": escape_other,
    "_tt_xhtml": escape_value,
    "_tt_text": text,
    "_tt_raw": raw,
    "_tt_join": join,
}
