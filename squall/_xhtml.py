"""Escaping text for HTML and XML: the functions the compiled build replaces with C.

`squall.escape.xhtml_escape` is `xhtml_escape`; templates escape their
values with `escape_value`. This module is the reference: the compiled build
loads ``speedups/c/xhtml.c`` under this module's name instead (see
`squall._compiled`), which has the same names and gives the same results and
errors for every input. Imports nothing from squall.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

__all__ = ["escape_value", "xhtml_escape"]


def xhtml_escape(value: Union[str, bytes]) -> str:
    """Escape ``value`` for use in HTML or XML text and attribute values.

    Replaces ``&``, ``<``, ``>``, ``"`` and ``'``. Bytes are decoded as UTF-8
    first. The result is always a plain str.

    Raises:
        TypeError: if ``value`` is neither str nor bytes.
        UnicodeDecodeError: if bytes are not valid UTF-8.
    """
    # type(), not __class__, which an object may fake (a mock, a proxy).
    if type(value) is str:
        text: str = value
    elif isinstance(value, str):
        # The text a subclass holds, as a plain str: its own methods are
        # not called (the C version cannot call them either).
        text = str.__str__(value)
    elif isinstance(value, bytes):
        text = bytes.decode(value, "utf-8")
    else:
        raise TypeError(f"xhtml_escape() needs str or bytes, not {type(value).__name__}")
    # Most text has nothing to escape: five membership tests cost less than
    # five replace() calls.
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        # "&" first, or the entities introduced below would be escaped again.
        return (
            text.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&quot;")
            .replace("'", "&#x27;")
        )
    return text


def escape_value(value: Any, other: Callable[[Any], str], /) -> str:
    """A template value as escaped text: `xhtml_escape` of an exact str, the
    digits of an exact int, ``other(value)`` for anything else."""
    if type(value) is str:
        return xhtml_escape(value)
    if type(value) is int:
        return str(value)
    return other(value)
