"""``WebSocketHandler.write_message`` as installed on the class: the pure build's.

`write_method` takes the Python method (``fallback``) and the protocol class
whose connections may take a frame straight to their transport, and returns
what `squall.websocket.WebSocketHandler` installs as its ``write_message``.

The compiled build loads ``speedups/c/wswrite.c`` under this module's name
instead (see `squall._compiled`): there the result is a native method that
does the usual case of the loop programs write over their subscribers
(``handler.write_message(text)`` on an open, uncompressed server connection)
without an interpreted frame, and calls ``fallback`` for anything else,
with the same outcome in every case. Here the result is ``fallback``
itself. Imports nothing from squall.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["write_method"]


def write_method(fallback: Callable[..., Any], protocol_class: type, /) -> Callable[..., Any]:
    """The method to install as ``write_message`` (here: ``fallback``).

    Raises:
        TypeError: when ``fallback`` is not callable or ``protocol_class``
            not a class.
    """
    if not callable(fallback):
        raise TypeError(f"fallback must be callable, not {type(fallback).__name__}")
    if not isinstance(protocol_class, type):
        raise TypeError(f"protocol_class must be a class, not {type(protocol_class).__name__}")
    return fallback
