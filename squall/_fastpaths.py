"""Two calls that CPython's C API makes cheaper than Python can: the pure build's.

- `step` sends None into a coroutine inside a `contextvars.Context` and says
  whether it returned or what it yielded. Here through ``Context.run`` and
  ``coroutine.send``, which raises StopIteration when the coroutine returns;
  the C module returns ``done`` instead (``PyIter_Send``), with no exception
  made, caught and traced back. The first step of every request whose
  handler cannot wait runs this way (see
  ``RequestHandler._step_at_once``): 2.2k instructions a step less, counted
  in-process with callgrind.
- `new_instance` is ``object.__new__`` for a class whose ``__new__`` is
  object's: an instance with nothing set, ``__init__`` not run (the servers'
  header objects, made per request). The C module allocates it directly,
  past the argument tuples of the general ``object.__new__`` (about 500
  instructions an object less).

The compiled build loads ``speedups/c/fastpaths.c`` under this module's name
instead (see `squall._compiled`), with the same results and errors for every
coroutine, context and class, but two misuses: a first argument to `step`
that is not a Context (TypeError there, AttributeError here) and more than
one argument to `new_instance` (refused there, passed to ``object.__new__``
here). Imports nothing from squall.
"""

from __future__ import annotations

from collections.abc import Coroutine
from contextvars import Context
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["new_instance", "step"]

_T = TypeVar("_T")


def step(context: Context, coroutine: Coroutine[Any, Any, Any], done: Any, /) -> Any:
    """Sends None into ``coroutine`` with ``context`` entered.

    Returns:
        What the coroutine yielded, or ``done`` when it returned (what it
        returned is dropped).

    Raises:
        BaseException: what the step raised; RuntimeError when ``context``
            is entered already (as ``Context.run``).
    """
    try:
        return context.run(coroutine.send, None)
    except StopIteration:
        return done


if TYPE_CHECKING:

    def new_instance(cls: type[_T], /) -> _T:
        """An instance of ``cls`` with nothing set: ``object.__new__(cls)``."""

else:
    # object.__new__ itself (no frame of ours): it refuses what the C module
    # refuses, with the same messages (the C module calls it for anything
    # but a class whose __new__ is object's).
    new_instance = object.__new__
