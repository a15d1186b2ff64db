"""Which of its base class's hooks a class replaces, worked out once per class.

A handler that keeps a hook as the base class defines it can be spared the
call (``RequestHandler.initialize`` does nothing) or served by a shorter
path that does what the hook would (``decode_argument``, the WebSocket
handshake's ``set_header`` and ``finish``). Whether a class keeps a hook is
a fact about the class, so it is kept in one object per class, its
*traits*, which those paths read: ``traits.initialize`` is True when the
class's ``initialize`` is not the base class's. The owner of the hooks
declares them (`squall.web.handler.HandlerTraits`,
`squall.websocket.WebSocketHandler`'s ``WebSocketTraits``).

A hook counts as replaced when the class's attribute is not the function the
base class defined: an override in the class or in a mixin, or a wrapper that
an agent, a profiler or a test patched onto the class or onto the base class.
Patches may come after the class was made and after it served requests, so
the traits keep the functions they were worked out from, and `traits_of`
compares those with the class's current ones (one C call reads them all)
before they are used; a class whose functions differ gets traits of its own.
The comparison is by identity (`changed`), never ``==``: a wrapper may
compare equal to the function it wraps (wrapt's proxies do), and it is
still a replacement to call.
Traits depend on those functions alone, so a subclass that changes none of
them shares its base class's.
"""

from __future__ import annotations

__all__ = ["Traits", "changed", "declare", "traits_of"]

import operator
from typing import Any, ClassVar


class Traits:
    """A class's traits: for each hook in `HOOKS`, whether the class replaces it.

    A subclass lists its hooks in ``HOOKS`` as (trait, class attribute) pairs,
    makes ``__slots__`` of the traits, and is `declare`d once the class that
    defines the stock hooks exists.
    """

    __slots__ = ("hooks", "read")
    HOOKS: ClassVar[tuple[tuple[str, str], ...]] = ()
    # The base class's own functions, by attribute; a reader of a class's
    # current ones, in HOOKS' order (set by declare).
    stock: ClassVar[dict[str, Any]] = {}
    reader: ClassVar[operator.attrgetter[Any]]

    # The functions the traits were worked out from, and the reader (in a
    # slot of each: read for less than through the class).
    hooks: tuple[Any, ...]
    read: operator.attrgetter[Any]

    def __init__(self, cls: type) -> None:
        self.read = self.reader
        hooks = self.read(cls)
        self.hooks = hooks
        stock = self.stock
        for (trait, attribute), hook in zip(self.HOOKS, hooks, strict=True):
            setattr(self, trait, hook is not stock[attribute])

    def __repr__(self) -> str:
        replaced = [trait for trait, _ in self.HOOKS if getattr(self, trait)]
        return f"<{type(self).__name__} replaced={replaced}>"


def declare(kind: type[Traits], cls: Any) -> None:
    """Makes ``cls``'s hooks, as they are now, the stock ones of traits of
    ``kind`` (but for those a parent traits class declared: the stock ones
    there), and gives ``cls`` its traits."""
    names = [attribute for _, attribute in kind.HOOKS]
    kind.reader = operator.attrgetter(*names)
    stock = dict(zip(names, kind.reader(cls), strict=True))
    for parent in kind.__mro__[1:]:
        stock.update(vars(parent).get("stock", {}))
    kind.stock = stock
    cls._hook_traits = kind(cls)


def traits_of(cls: Any) -> Any:
    """``cls``'s traits, worked out again if its hooks changed since they were.

    The class keeps them in ``_hook_traits``, inherited until it needs its own.
    Typed Any: callers read the fields of their own traits class.
    """
    traits = cls._hook_traits
    # The most derived kind of traits among the classes it comes from: a
    # handler whose first base has plain handler traits of its own (a
    # RequestHandler subclass with a hook replaced) and whose later base
    # is a WebSocketHandler inherits the first's, but is a WebSocket handler.
    kind = type(traits)
    for base in cls.__mro__[1:]:
        own = vars(base).get("_hook_traits")
        if own is not None and issubclass(type(own), kind):
            kind = type(own)
    if type(traits) is not kind or changed(traits.read(cls), traits.hooks):
        traits = cls._hook_traits = kind(cls)
    return traits


_is_not = operator.is_not


def changed(now: tuple[Any, ...], hooks: tuple[Any, ...]) -> bool:
    """Whether any of the functions ``now`` is not the one in ``hooks``
    at its place. By identity: ``now != hooks`` compares with ``==``, and a
    wrapt ``FunctionWrapper`` equals the function it wraps. (RequestHandler's
    ``__init__`` asks squall.web._delegate.hooks_changed, the same test
    compiled, for every request.)"""
    return any(map(_is_not, now, hooks))
