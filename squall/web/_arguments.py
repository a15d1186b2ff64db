"""`ArgumentsMixin`, part of `RequestHandler`: the request's query and body
arguments, decoded (`~squall.web.RequestHandler.decode_argument`) and
stripped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, overload

from squall.escape import to_unicode
from squall.httputil._qs import clean_argument as _clean_argument
from squall.httputil._qs import decoded_arguments as _decoded_arguments
from squall.web.errors import HTTPError, MissingArgumentError

if TYPE_CHECKING:
    from squall.httputil import HTTPServerRequest
    from squall.web.handler import HandlerTraits

__all__ = ["ArgumentsMixin"]


class _ArgDefaultMarker:
    pass


# The default of the get_*argument methods: "no default, a missing argument is a 400".
_ARG_DEFAULT: Any = _ArgDefaultMarker()


class ArgumentsMixin:
    """The argument methods of `RequestHandler`."""

    request: HTTPServerRequest
    _traits: HandlerTraits

    @overload
    def get_argument(self, name: str, default: str, strip: bool = True) -> str: ...

    @overload
    def get_argument(self, name: str, default: None, strip: bool = True) -> Optional[str]: ...

    @overload
    def get_argument(self, name: str, *, strip: bool = True) -> str: ...

    def get_argument(
        self, name: str, default: Any = _ARG_DEFAULT, strip: bool = True
    ) -> Optional[str]:
        """The last value of the query or body argument ``name``.

        Args:
            name: the argument's name.
            default: returned when the argument is absent; without it a
                missing argument is a 400 (`MissingArgumentError`).
            strip: strip surrounding whitespace from the value.
        """
        source = self.request.arguments
        if strip is True and not self._traits.decode_argument:
            # The usual call (a value present, the stock decoding), in this
            # frame: two Python calls fewer than _get_argument's way.
            values = _decoded_arguments(source.get(name), True)
            if values:
                return values[-1]
        return self._get_argument(name, default, source, strip)

    def get_arguments(self, name: str, strip: bool = True) -> list[str]:
        """Every value of the query and body argument ``name`` (maybe none).

        Raises:
            TypeError: ``strip`` is not a bool (a default given in its
                place, as to `get_argument`: Tornado asserts it is a bool).
        """
        if not isinstance(strip, bool):
            raise TypeError(f"strip must be a bool, got {strip!r}")
        return self._get_arguments(name, self.request.arguments, strip)

    @overload
    def get_body_argument(self, name: str, default: str, strip: bool = True) -> str: ...

    @overload
    def get_body_argument(self, name: str, default: None, strip: bool = True) -> Optional[str]: ...

    @overload
    def get_body_argument(self, name: str, *, strip: bool = True) -> str: ...

    def get_body_argument(
        self, name: str, default: Any = _ARG_DEFAULT, strip: bool = True
    ) -> Optional[str]:
        """Like `get_argument`, from the request body only."""
        return self._get_argument(name, default, self.request.body_arguments, strip)

    def get_body_arguments(self, name: str, strip: bool = True) -> list[str]:
        """Like `get_arguments`, from the request body only."""
        return self._get_arguments(name, self.request.body_arguments, strip)

    @overload
    def get_query_argument(self, name: str, default: str, strip: bool = True) -> str: ...

    @overload
    def get_query_argument(self, name: str, default: None, strip: bool = True) -> Optional[str]: ...

    @overload
    def get_query_argument(self, name: str, *, strip: bool = True) -> str: ...

    def get_query_argument(
        self, name: str, default: Any = _ARG_DEFAULT, strip: bool = True
    ) -> Optional[str]:
        """Like `get_argument`, from the query string only."""
        return self._get_argument(name, default, self.request.query_arguments, strip)

    def get_query_arguments(self, name: str, strip: bool = True) -> list[str]:
        """Like `get_arguments`, from the query string only."""
        return self._get_arguments(name, self.request.query_arguments, strip)

    def _get_argument(
        self, name: str, default: Any, source: dict[str, list[bytes]], strip: bool
    ) -> Optional[str]:
        values = self._get_arguments(name, source, strip)
        if not values:
            if default is _ARG_DEFAULT:
                raise MissingArgumentError(name)
            result: Optional[str] = default
            return result
        return values[-1]

    def _get_arguments(self, name: str, source: dict[str, list[bytes]], strip: bool) -> list[str]:
        if strip is not True and strip is not False:
            strip = bool(strip)  # any truth value, as Tornado takes it
        if not self._traits.decode_argument:
            # The stock decoding, compiled (None: a value it leaves to us).
            decoded = _decoded_arguments(source.get(name), strip)
            if decoded is not None:
                return decoded
        values = []
        for raw in source.get(name, ()):
            value = self.decode_argument(raw, name=name)
            values.append(_clean_argument(value, strip) if isinstance(value, str) else value)
        return values

    def decode_argument(self, value: bytes, name: Optional[str] = None) -> str:
        """Decodes an argument or path component from bytes; override for other encodings.

        Raises:
            HTTPError: 400, if ``value`` is not valid UTF-8.
        """
        try:
            # to_unicode(value), without its call for bytes (what the
            # request's arguments hold).
            if type(value) is bytes:
                return value.decode("utf-8")
            return to_unicode(value)
        except UnicodeDecodeError:
            # The message formatted here, as Tornado does: a write_error that
            # shows exc.log_message shows the name and value.
            raise HTTPError(400, f"Invalid unicode in {name or 'url'}: {value[:40]!r}")
