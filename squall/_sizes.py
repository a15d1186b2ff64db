"""Size limits given as Tornado takes them: any real number of bytes.

Tornado only compares its limits with sizes, so ``max_body_size=1e9`` or
``websocket_max_message_size=10e6`` serve there; Squall's parsers check
that a limit is an int, and its compiled build holds limits in int fields.
`byte_count` turns what a program gives into the int they take, once, where
the setting comes in (a server's or client's constructor, a WebSocket
connection's), and refuses what is no number with a message that names the
setting, at once rather than on each connection.
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
from typing import Any, Optional, SupportsFloat, cast


def byte_count(name: str, value: object) -> Optional[int]:
    """``value``, the size limit ``name``, as a whole number of bytes.

    An int (or anything with ``__index__``: a NumPy integer) is taken as it
    is; another real number (``1e9``, a ``Decimal``) by its whole part;
    ``float("inf")`` means no limit (``sys.maxsize``); None stays None (the
    setting's default).

    Raises:
        TypeError: ``value`` is not a number (a str from a configuration
            file, say).
        ValueError: it is negative, or NaN.
    """
    if value is None:
        return None
    given: Any = value
    count: int
    if isinstance(given, int):
        count = int(given)
    elif hasattr(given, "__index__"):
        count = operator.index(given)
    elif isinstance(given, numbers.Real) or (
        isinstance(given, numbers.Number) and not isinstance(given, numbers.Complex)
    ):
        # (A Decimal is a Number, not a Real; a complex number has no size.)
        real = float(cast(SupportsFloat, given))
        if math.isnan(real):
            raise ValueError(f"{name} is a number of bytes, not NaN")
        count = sys.maxsize if real == math.inf else -1 if real < 0 else int(real)
    else:
        raise TypeError(f"{name} is a number of bytes, not {type(given).__name__} {given!r}")
    if count < 0:
        raise ValueError(f"{name} is a number of bytes, 0 or more, not {given!r}")
    return count


def required_byte_count(name: str, value: object) -> int:
    """`byte_count` for a size that has no default to fall back on (a
    request's ``set_max_body_size``): None is refused as well.

    Raises:
        TypeError: ``value`` is None or not a number.
        ValueError: it is negative, or NaN.
    """
    count = byte_count(name, value)
    if count is None:
        raise TypeError(f"{name} is a number of bytes, not None")
    return count
