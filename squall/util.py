"""Small helpers shared across Squall.

This module mirrors ``tornado.util``: attribute-access dictionaries, a
multi-member gzip decompressor, dotted-name imports, the ``Configurable``
factory base class, and a few compatibility aliases.
"""

from __future__ import annotations

import datetime
import doctest
import importlib
import inspect
import re
import types
import unittest
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Optional

from squall._ws._mask import mask as _ws_mask

__all__ = [
    "ArgReplacer",
    "Configurable",
    "GzipDecompressor",
    "ObjectDict",
    "TimeoutError",
    "basestring_type",
    "bytes_type",
    "doctests",
    "errno_from_exception",
    "exec_in",
    "import_object",
    "raise_exc_info",
    "re_unescape",
    "timedelta_to_seconds",
    "unicode_type",
]

#: True while `squall.compat` answers ``tornado`` imports: the program was
#: written for Tornado, and where Squall's default departs from Tornado's in a
#: way such a program can observe, it gets Tornado's (see tests/COMPAT.md).
#: Set by `squall.compat.install`; read, never set, by lower layers.
running_as_tornado = False

# Aliases kept for code written against Python 2 era Tornado.
bytes_type = bytes
unicode_type = str
basestring_type = str

# Tornado 5 had its own TimeoutError; since 6 it is the builtin.
TimeoutError = TimeoutError

_ExcInfo = tuple[
    Optional[type[BaseException]], Optional[BaseException], Optional[types.TracebackType]
]


class ObjectDict(dict[str, Any]):
    """A dictionary whose keys can also be read and written as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


_GZIP_WBITS = 16 + zlib.MAX_WBITS


class GzipDecompressor:
    """Incremental decompressor for gzip data that may hold several members.

    RFC 1952 allows a gzip stream to be a concatenation of members; each one is
    decompressed in turn, and anything after the last member that is not a
    valid member raises `zlib.error`.
    """

    def __init__(self) -> None:
        self._decomp = zlib.decompressobj(_GZIP_WBITS)
        # True once the current member's decompressor has been fed input, so
        # that flush() can tell a truncated member from no member at all.
        self._started = False
        self._tail = b""

    def decompress(self, value: bytes, max_length: int = 0) -> bytes:
        """Decompress a chunk, returning at most ``max_length`` bytes.

        Input that could not be processed within ``max_length`` is kept in
        `unconsumed_tail`; the caller must pass it back in the next call.
        Calling without ``max_length`` is deprecated, since an unbounded
        call can be made to produce any amount of output.

        Raises:
            zlib.error: if the data is not valid gzip.
        """
        if max_length < 0:
            # zlib's own refusal, raised before anything is consumed.
            raise ValueError("max_length must be non-negative")
        if max_length == 0:
            warnings.warn(
                "GzipDecompressor.decompress without max_length is deprecated",
                DeprecationWarning,
                stacklevel=2,
            )
        out = bytearray()
        data = bytes(value)
        while data:
            if not self._started and not b"\x1f\x8b".startswith(data[:2]):
                # A member (the first, or one after a complete member) must
                # open with the gzip magic; say so rather than pass on zlib's
                # "incorrect header check".
                raise zlib.error(f"expected a gzip member, got {data[:2]!r}")
            if max_length > 0:
                room = max_length - len(out)
                if room <= 0:
                    break
                out += self._decomp.decompress(data, room)
            else:
                out += self._decomp.decompress(data)
            self._started = True
            if not self._decomp.eof:
                data = self._decomp.unconsumed_tail
                break
            # The member is complete; whatever follows starts the next one.
            data = self._decomp.unused_data
            self._decomp = zlib.decompressobj(_GZIP_WBITS)
            self._started = False
        self._tail = data
        return bytes(out)

    @property
    def unconsumed_tail(self) -> bytes:
        """The input left unprocessed by the last `decompress` call."""
        return self._tail

    def flush(self) -> bytes:
        """Finish the stream, returning any remaining output.

        Raises:
            ValueError: if `unconsumed_tail` still holds input (the caller
                stopped feeding it back).
            zlib.error: if the stream ended inside a member.
        """
        if self._tail:
            raise ValueError("unconsumed_tail must be passed to decompress before flush")
        if self._started and not self._decomp.eof:
            raise zlib.error("incomplete or truncated gzip stream")
        return self._decomp.flush()


def import_object(name: str) -> Any:
    """Import a module or an object from a module by its dotted name.

    ``import_object('x.y.z')`` is equivalent to ``from x.y import z``.

    >>> import squall.util
    >>> import_object('squall.util') is squall.util
    True
    >>> import_object('squall.util.import_object') is import_object
    True
    >>> import_object('squall.missing_module')
    Traceback (most recent call last):
        ...
    ImportError: No module named missing_module

    Raises:
        ImportError: if the module or the attribute does not exist.
    """
    if "." not in name:
        return importlib.import_module(name)
    parent, _, attr = name.rpartition(".")
    module = importlib.import_module(parent)
    try:
        return getattr(module, attr)
    except AttributeError:
        pass
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ImportError(f"No module named {attr}")


def _needs_extra(module: str, what: str, extra: str, exc: ImportError) -> ImportError:
    """The ImportError a module raises when an optional dependency is missing:
    it names the module, what it needs and the extra that installs it."""
    return ImportError(f"{module} needs {what} ({exc}): pip install squall[{extra}]", name=module)


def exec_in(code: Any, glob: dict[str, Any], loc: Optional[Any] = None) -> None:
    """Execute ``code`` (a string or code object) in the given namespaces.

    Strings are compiled without inheriting this module's ``__future__``
    flags, so the executed code behaves as a module of its own would.
    """
    if isinstance(code, str):
        code = compile(code, "<string>", "exec", dont_inherit=True)
    exec(code, glob, loc)


def raise_exc_info(exc_info: _ExcInfo) -> NoReturn:
    """Re-raise the exception described by a ``sys.exc_info()`` triple."""
    try:
        exc = exc_info[1]
        if exc is None:
            raise TypeError("raise_exc_info called with no exception")
        raise exc.with_traceback(exc_info[2])
    finally:
        # Break the frame -> exc_info -> traceback -> frame cycle.
        exc_info = (None, None, None)
        del exc_info


def errno_from_exception(e: BaseException) -> Optional[int]:
    """Return the errno of an exception, or None if it has none.

    Uses the ``errno`` attribute if the exception has one (even when it is
    None), else the first constructor argument (some socket errors only
    carry it there).
    """
    # An ``errno`` attribute wins even when it is None (``OSError("text")``):
    # the first argument is only consulted for exceptions without one.
    if hasattr(e, "errno"):
        errno: Optional[int] = e.errno
        return errno
    if e.args:
        first: Optional[int] = e.args[0]
        return first
    return None


_RE_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape_one(match: re.Match[str]) -> str:
    char = match.group(1)
    # ASCII letters and digits only: "\\é" is an escaped "é" to the re
    # module, as to Tornado.
    if char.isascii() and char.isalnum():
        raise ValueError(f"cannot unescape '\\\\{char}'")
    return char


def re_unescape(s: str) -> str:
    r"""Undo `re.escape`.

    Raises:
        ValueError: if the pattern holds an escape such as ``\d`` that
            stands for a class of characters rather than a literal one.
    """
    return _RE_UNESCAPE.sub(_unescape_one, s)


def timedelta_to_seconds(td: datetime.timedelta) -> float:
    """Return the total number of seconds in a `datetime.timedelta`."""
    return td.total_seconds()


# Each configurable base's chosen implementation and its keyword arguments
# (None: the default, found on first use), kept here rather than on the
# classes so that only `Configurable`'s class methods change them.
_UNCONFIGURED: tuple[Optional[type[Configurable]], Optional[dict[str, Any]]] = (None, None)
_configured: dict[
    type[Configurable], tuple[Optional[type[Configurable]], Optional[dict[str, Any]]]
] = {}


class Configurable:
    """Base class whose constructor builds an instance of a configured subclass.

    A configurable hierarchy names its root in `configurable_base` and its
    default implementation in `configurable_default`. ``Base()`` then creates
    an instance of the class chosen with `configure` (or the default),
    passing it the keyword arguments given to `configure` merged with the
    call's. Subclasses set up instances in `initialize`, not ``__init__``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        base = cls.configurable_base()
        init_kwargs: dict[str, Any] = {}
        if cls is base:
            impl = cls.configured_class()
            saved = _configured.get(base, _UNCONFIGURED)[1]
            if saved:
                init_kwargs.update(saved)
        else:
            impl = cls
        init_kwargs.update(kwargs)
        if impl.configurable_base() is not base:
            # The implementation is itself the root of a configurable
            # hierarchy; let it choose its own implementation.
            return impl(*args, **init_kwargs)
        instance = super().__new__(impl)
        instance.initialize(*args, **init_kwargs)
        return instance

    @classmethod
    def configurable_base(cls) -> type[Configurable]:
        """Return the root of the configurable hierarchy."""
        raise NotImplementedError()

    @classmethod
    def configurable_default(cls) -> type[Configurable]:
        """Return the implementation used when none is configured."""
        raise NotImplementedError()

    def _initialize(self) -> None:
        pass

    initialize: Callable[..., None] = _initialize
    """Initialize an instance; takes the constructor's arguments.

    Declared as an attribute so that subclasses may give it any signature.
    """

    @classmethod
    def configure(cls, impl: Any, **kwargs: Any) -> None:
        """Choose the implementation that the base class constructor creates.

        Args:
            impl: a subclass, its dotted name, or None for the default.
            **kwargs: extra keyword arguments passed to every instance.

        Raises:
            ValueError: if ``impl`` is not a subclass of ``cls``.
            TypeError: if ``impl`` is not a class at all.
        """
        base = cls.configurable_base()
        if isinstance(impl, str):
            impl = import_object(impl)
        # issubclass raises TypeError for something that is not a class.
        if impl is not None and not issubclass(impl, cls):
            raise ValueError(f"Invalid subclass of {cls}")
        _configured[base] = (impl, kwargs)

    @classmethod
    def configured_class(cls) -> type[Configurable]:
        """Return the currently configured implementation class."""
        base = cls.configurable_base()
        # Keyed by the base itself: a nested hierarchy does not see its
        # parent hierarchy's configuration.
        impl, kwargs = _configured.get(base, _UNCONFIGURED)
        if impl is None:
            impl = cls.configurable_default()
            _configured[base] = (impl, kwargs)
        if impl is None:
            raise ValueError(f"configured class not found for {base.__name__}")
        return impl

    @classmethod
    def _save_configuration(cls) -> tuple[Optional[type[Configurable]], Optional[dict[str, Any]]]:
        return _configured.get(cls.configurable_base(), _UNCONFIGURED)

    @classmethod
    def _restore_configuration(
        cls, saved: tuple[Optional[type[Configurable]], Optional[dict[str, Any]]]
    ) -> None:
        _configured[cls.configurable_base()] = saved


class ArgReplacer:
    """Find and replace one named argument in a call's ``(args, kwargs)``.

    Works whether the argument was passed by position or by keyword.
    """

    def __init__(self, func: Callable[..., Any], name: str) -> None:
        self.name = name
        names = self._positional_names(func)
        try:
            self.arg_pos: Optional[int] = names.index(name)
        except ValueError:
            # Keyword-only, or not in the signature at all (**kwargs).
            self.arg_pos = None

    @staticmethod
    def _positional_names(func: Callable[..., Any]) -> list[str]:
        # The names are those of the callable as given: a bound method's
        # list starts with its ``self`` and a ``functools.wraps`` wrapper is
        # not unwrapped (Tornado reads getfullargspec's ``args`` the same
        # way, and programs index calls by it). Keyword-only parameters are
        # not positions.
        try:
            return list(inspect.getfullargspec(func).args)
        except TypeError:
            code = getattr(func, "func_code", None)
            if code is None:
                raise
            # Cython functions carry a code object that inspect refuses.
            return list(code.co_varnames[: code.co_argcount])

    def get_old_value(
        self, args: Sequence[Any], kwargs: dict[str, Any], default: Any = None
    ) -> Any:
        """Return the argument's value in this call, or ``default``."""
        if self.arg_pos is not None and len(args) > self.arg_pos:
            return args[self.arg_pos]
        return kwargs.get(self.name, default)

    def replace(
        self, new_value: Any, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> tuple[Any, Sequence[Any], dict[str, Any]]:
        """Replace the argument with ``new_value``.

        Returns:
            ``(old_value, args, kwargs)``: the previous value (None if it was
            not passed) and the arguments to call with. ``kwargs`` is
            modified in place when the argument goes there.
        """
        if self.arg_pos is not None and len(args) > self.arg_pos:
            old_value = args[self.arg_pos]
            new_args = list(args)
            new_args[self.arg_pos] = new_value
            return old_value, new_args, kwargs
        old_value = kwargs.get(self.name)
        kwargs[self.name] = new_value
        return old_value, args, kwargs


# The WebSocket core owns the masking routine; these are the names Tornado's
# users and tests reach for.
_websocket_mask_python = _ws_mask
_websocket_mask = _ws_mask


def doctests() -> unittest.TestSuite:
    """Return this module's doctests as a `unittest.TestSuite`."""
    return doctest.DocTestSuite()
