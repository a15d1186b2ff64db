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
Traits depend on those functions alone, so a subclass that changes none of
them shares its base class's.
"""

from __future__ import annotations

__all__ = ["Traits", "traits_of"]

import operator
from typing import Any, ClassVar


class Traits:
    """A class's traits: for each hook in `HOOKS`, whether the class replaces it.

    A subclass lists its hooks in ``HOOKS`` as (trait, class attribute) pairs,
    makes ``__slots__`` of the traits, and calls `declare` once the class
    that defines the stock hooks exists.
    """

    __slots__ = ("hooks",)
    HOOKS: ClassVar[tuple[tuple[str, str], ...]] = ()
    # The base class's own functions, by attribute; a reader of a class's
    # current ones, in HOOKS' order (set by declare).
    stock: ClassVar[dict[str, Any]] = {}
    read: ClassVar[operator.attrgetter[Any]]

    hooks: tuple[Any, ...]

    def __init__(self, cls: type) -> None:
        hooks = self.read(cls)
        self.hooks = hooks
        stock = self.stock
        for (trait, attribute), hook in zip(self.HOOKS, hooks, strict=True):
            setattr(self, trait, hook is not stock[attribute])

    @classmethod
    def declare(cls, base: type) -> None:
        """Takes ``base``'s hooks as they are now as the stock ones, but for
        those a parent traits class declared (the stock ones there)."""
        names = [attribute for _, attribute in cls.HOOKS]
        cls.read = operator.attrgetter(*names)
        stock = dict(zip(names, cls.read(base), strict=True))
        for parent in cls.__mro__[1:]:
            stock.update(vars(parent).get("stock", {}))
        cls.stock = stock

    def __repr__(self) -> str:
        replaced = [trait for trait, _ in self.HOOKS if getattr(self, trait)]
        return f"<{type(self).__name__} replaced={replaced}>"


def traits_of(cls: Any) -> Any:
    """``cls``'s traits (its ``_traits``), worked out again if its hooks changed.

    The class keeps them in ``_traits``, inherited until it needs its own.
    Typed Any: callers read the fields of their own traits class.
    """
    traits = cls._traits
    if traits.read(cls) != traits.hooks:
        traits = cls._traits = type(traits)(cls)
    return traits
