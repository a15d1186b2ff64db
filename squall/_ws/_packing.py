"""Header fields packed into one string: what an open WebSocket keeps of its upgrade.

An open WebSocket keeps its upgrade request for as long as it lives, and
most of them spend that life idle: `squall.websocket` packs the request's
header fields (a dict of value lists) into one string once the socket is
open, and unpacks them the first time anything reads them. The packing is
here, among the compiled modules, because every handshake pays for it; the
names every upgrade repeats take one character each (their index in
`WORDS`, a control character, which no field name can be).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Optional

from squall._ws._words import WORDS

__all__ = ["CODES", "SEPARATOR", "WORDS", "pack_fields"]

# Between names and values: header values never contain a line feed (RFC
# 9110 section 5.5: the parsers refuse control characters).
SEPARATOR: Final = "\n"
CODES: Final = {word: chr(i) for i, word in enumerate(WORDS) if word}


def pack_fields(fields: dict[str, list[str]]) -> Optional[str]:
    """``fields`` as one string: name (or its code), value, name, value... joined by `SEPARATOR`.

    The fields are read in order; the first name or value of the wrong type
    raises, a name that is one control character returns None at once, and
    a separator inside a name or a value returns None once every field has
    been read. (A name of a str subclass may be written as its characters
    where the code would do: it unpacks the same.)

    Returns:
        The packed string, or None when it could not be unpacked into the
        same fields: a name that is a single control character (written
        into the fields directly), or a separator inside a name or a value.

    Raises:
        TypeError: a name or a value is not a str, or a field's values are
            not a list.
    """
    parts: list[str] = []
    codes = CODES
    # Read as objects: the checks below refuse a wrong type with their own
    # message, where a compiled loop over str keys would raise mypyc's.
    items: Iterable[tuple[object, object]] = fields.items()
    for name, values in items:
        if not isinstance(name, str):
            raise TypeError(f"a field name must be a str, not {type(name).__name__}")
        code = codes.get(name)
        if code is None:
            if len(name) == 1 and name < " ":
                return None
            code = name
        if not isinstance(values, list):
            raise TypeError(f"the values of {name!r} must be a list, not {type(values).__name__}")
        for value in values:
            if not isinstance(value, str):
                raise TypeError(f"a value of {name!r} must be a str, not {type(value).__name__}")
            parts.append(code)
            parts.append(value)
    packed = SEPARATOR.join(parts)
    if parts and packed.count(SEPARATOR) != len(parts) - 1:
        return None
    return packed
