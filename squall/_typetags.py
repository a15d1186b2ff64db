"""Has any of these classes changed since? The answer here: "cannot tell".

A caller that checks, on every call, that a few classes still have the
methods it once found on them (squall.log's direct access lines: that no
agent has patched ``Logger.callHandlers`` or ``StreamHandler.emit`` since)
asks `tags_hold` first and, when it says False, reads the methods again.

Pure Python cannot read CPython's class version tags, so `tags_hold` is
always False, which the contract allows: False only means "look again".
A C twin that read ``tp_version_tag`` (outside CPython's public API) saved
under 2% of a logged request and was removed (C that reads private state
must save more than that to be kept); this module is the
answer in every build.
Imports nothing from squall.
"""

from __future__ import annotations

__all__ = ["tags_hold", "version_tags"]


def version_tags(types: tuple[type, ...], /) -> bytes:
    """The classes' version tags, for `tags_hold` (none in the pure build).

    Raises:
        TypeError: when ``types`` is not a tuple of classes.
    """
    if type(types) is not tuple:
        raise TypeError(f"types must be a tuple of classes, not {type(types).__name__}")
    for i, item in enumerate(types):
        if not isinstance(item, type):
            raise TypeError(f"types[{i}] is not a class but {type(item).__name__}")
    return b""


def tags_hold(types: tuple[type, ...], tags: bytes, /) -> bool:
    """True when no attribute of these classes, or of a class they inherit
    from, has been set or deleted since `version_tags` gave ``tags``; False
    when one may have been, or when this build cannot tell (always, here).

    Raises:
        TypeError: when ``types`` is not a tuple or ``tags`` not bytes.
    """
    if type(types) is not tuple or type(tags) is not bytes:
        raise TypeError("tags_hold(types: tuple, tags: bytes)")
    return False
