"""JSON text of plain values: the function the compiled build replaces with C.

`squall.escape.json_encode` (every ``RequestHandler.write(dict)`` and
``write_message(dict)``) asks `encode_plain` first in the compiled build.
This module is the reference: the compiled build loads
``speedups/c/jsonenc.c`` under this module's name instead (see
`squall._compiled`), which gives the same result for every value. The pure
build does not call it (the standard library's encoder is faster than this
module's walk followed by it). Imports nothing from squall.
"""

from __future__ import annotations

import json
from typing import Any, Optional

__all__ = ["MAX_DEPTH", "encode_plain"]

# Containers nested deeper than this go to the general encoder, which
# reports a circular reference (a plain walk would never end).
MAX_DEPTH = 32


def encode_plain(value: Any, /) -> Optional[str]:
    """``json.dumps(value)`` with every ``</`` written ``<\\/``, when
    ``value`` is plain; None when it is not, for the general encoder.

    Plain: None, a bool, str, int or float (of a subclass too, such as an
    enum's member: json.dumps writes its stored value and calls none of its
    methods), or a list, tuple or dict (with str keys) of plain values,
    nested at most `MAX_DEPTH` containers deep. A container must be of
    exactly that type: json.dumps asks a subclass (an ``OrderedDict``, a
    ``namedtuple``) for its items, which its own methods may change.

    Raises:
        ValueError: for an int with more digits than
            ``sys.get_int_max_str_digits()`` allows, as ``json.dumps`` does.
    """
    if not _plain(value, 0):
        return None
    return json.dumps(value).replace("</", "<\\/")


def _plain(value: Any, depth: int) -> bool:
    kind = type(value)
    if value is None or isinstance(value, (str, int, float)):
        return True
    if kind is dict:
        if depth == MAX_DEPTH:
            return False
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    if kind is list or kind is tuple:
        if depth == MAX_DEPTH:
            return False
        return all(_plain(item, depth + 1) for item in value)
    return False
