"""`RequestHandler`: the base class of the handlers an `.Application` routes to.

The request cycle lives here: arguments, the response status and headers,
writing and finishing, errors and their pages, and the user and locale. The
cookie and XSRF methods come from `.CookieMixin` (``cookies.py``), the
template methods from `.RenderMixin` (``rendering.py``), the user, locale
and cross-origin checks from `IdentityMixin` (``_identity.py``), and the
error page and exception log from `ErrorPageMixin` (``_failure.py``).

``_execute`` is a coroutine function, as in Tornado, and the application's
delegate runs it in a Task of the request's own (see `squall._request_task`:
on Python 3.12+ started eagerly, so a handler that never waits is done
inside the server's callback, with no loop turn).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import numbers
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union, overload

from squall import escape
from squall._traits import Traits, declare, traits_of
from squall.concurrent import Future, _held_tasks, future_set_result_unless_cancelled
from squall.escape import to_unicode, utf8
from squall.httputil import (
    HTTPHeaders,
    HTTPInputError,
    HTTPOutputError,
    ResponseStartLine,
    format_timestamp,
    responses,
)
from squall.httputil._exchange import close_by_attribute
from squall.httputil._headers import _ABNF, _NAME_CACHE, _normalize_header
from squall.httputil._qs import clean_argument as _clean_argument
from squall.httputil._qs import decoded_arguments as _decoded_arguments
from squall.httputil._response import UNSAFE_VALUE_CHARS, _ResponseHeaders
from squall.log import app_log
from squall.util import ObjectDict
from squall.web._failure import ErrorPageMixin
from squall.web._identity import IdentityMixin
from squall.web.cookies import CookieMixin
from squall.web.errors import Finish, HTTPError, MissingArgumentError
from squall.web.rendering import RenderMixin, _UIModuleNamespace

if TYPE_CHECKING:
    from squall.httputil import HTTPServerRequest
    from squall.web.application import Application
    from squall.web.transforms import OutputTransform

__all__ = ["RequestHandler"]


class _ArgDefaultMarker:
    pass


_ARG_DEFAULT: Any = _ArgDefaultMarker()

# RFC 9110 section 5.5: a field value may hold HTAB but no other control.
_UNSAFE_HEADER_CHARS = UNSAFE_VALUE_CHARS
_ETAG_TOKEN = re.compile(rb'\*|(?:W/)?"[^"]*"')

_new_tuple = tuple.__new__
_new_object = object.__new__
_SERVER_HEADER = "SquallServer/" + __import__("squall").version
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
# The handler method of each common HTTP method (spares a lower() per request).
_METHOD_ATTRS = {m: m.lower() for m in ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")}

# The last small one-part body hashed for an Etag, with its Etag: replies
# that repeat a short body (health checks, "OK", small JSON) spare the
# sha1 (~0.5 us). One tuple, swapped whole, so threads see a matching pair;
# bodies over _ETAG_MEMO_MAX bytes are never kept.
_ETAG_MEMO_MAX = 128
_EMPTY_ETAG = '"' + hashlib.sha1(b"").hexdigest() + '"'
# The memo also holds the Etag's value list, shared as the default fields'
# are (see _new_headers).
_etag_memo: tuple[bytes, str, list[str]] = (b"", _EMPTY_ETAG, [_EMPTY_ETAG])

# The Date header, formatted once per second: (start of that second, start
# of the next, its value list). One tuple, swapped whole, so threads see a
# matching set; the bounds spare an int() of the clock per request.
_date: tuple[float, float, list[str]] = (0.0, 0.0, [""])
# The other default fields' value lists. These lists are shared by every
# response (see _ResponseHeaders): replaced, never changed in place.
_SERVER_VALUES = [_SERVER_HEADER]
_HTML_VALUES = ["text/html; charset=UTF-8"]
_JSON_VALUES = ["application/json; charset=UTF-8"]
# Content-Length value lists by body length, shared the same way (a
# str() and a list fewer per response); at most _LENGTHS_MAX lengths kept.
_LENGTHS: dict[int, list[str]] = {}
_LENGTHS_MAX = 4096

# A handler's transforms when the application has none (a tuple: shared by
# every handler, so it must not be appendable).
_NO_TRANSFORMS: tuple[OutputTransform, ...] = ()


def _new_headers() -> _ResponseHeaders:
    # Built without going through validation: the values are our own.
    global _date
    headers = _new_object(_ResponseHeaders)
    headers._unchecked = False
    now = time.time()
    start, end, date = _date
    if not start <= now < end:
        second = int(now)
        date = [format_timestamp(second)]
        _date = (float(second), second + 1.0, date)
    headers._as_list = {"Server": _SERVER_VALUES, "Content-Type": _HTML_VALUES, "Date": date}
    return headers


class HandlerTraits(Traits):
    """Which of `RequestHandler`'s hooks a handler class replaces (see
    `squall._traits`); the request cycle skips or shortens the others."""

    HOOKS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("set_default_headers", "set_default_headers"),
        ("initialize", "initialize"),
        ("start", "_start"),
        ("get_status", "get_status"),
        ("decode_argument", "decode_argument"),
        ("clear_header", "clear_header"),
    )
    __slots__ = tuple(trait for trait, _ in HOOKS)

    set_default_headers: bool
    initialize: bool
    start: bool
    get_status: bool
    decode_argument: bool
    clear_header: bool


class RequestHandler(IdentityMixin, ErrorPageMixin, CookieMixin, RenderMixin):
    """Base class for HTTP request handlers.

    Subclasses define a method per HTTP verb they answer (``get``, ``post``,
    ...); the others answer 405. Methods may be plain functions or coroutines.
    See `initialize`, `prepare` and `on_finish` for the other hooks.
    """

    SUPPORTED_METHODS: tuple[str, ...] = (
        "GET",
        "HEAD",
        "POST",
        "DELETE",
        "PATCH",
        "PUT",
        "OPTIONS",
    )

    _stream_request_body = False

    path_args: list[Any]
    path_kwargs: dict[str, Any]
    _transforms: Sequence[OutputTransform]

    # Whether a class after RequestHandler in the MRO has an __init__ of
    # its own (a mixin's): only then is super().__init__() worth its call.
    _next_init = False
    # Which of the base class's hooks the class replaces (see squall._traits):
    # checked again by every handler's __init__, so that a hook patched
    # after the class was made is seen.
    _hook_traits: HandlerTraits
    # Whether the connection reports its close through the
    # close_callback attribute (see __init__); a class default for a
    # handler made without __init__.
    _close_by_attribute = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        after = mro[mro.index(RequestHandler) + 1 :]
        cls._next_init = any("__init__" in vars(k) for k in after if k is not object)
        traits_of(cls)

    def __init__(self, application: Application, request: HTTPServerRequest, **kwargs: Any) -> None:
        if self._next_init:
            super().__init__()
        self.application = application
        self.request = request
        self._headers_written = False
        self._finished = False
        self._auto_finish = True
        self._prepared_future: Optional[Future[None]] = None
        self._ui_namespace = None
        self._transforms = _NO_TRANSFORMS
        self.path_args = []
        self.path_kwargs = {}
        # What clear() sets, less its keeping of cookies (there are none yet).
        self._headers = _new_headers()
        # traits_of(cls), without its call, kept on the handler for the rest
        # of the request (an instance attribute is read for less).
        cls = self.__class__
        traits = cls._hook_traits
        if traits.read(cls) != traits.hooks:
            traits = traits_of(cls)
        self._hook_traits = traits
        if traits.set_default_headers:
            self.set_default_headers()
        self._write_buffer: list[bytes] = []
        self._status_code = 200
        self._reason = "OK"
        connection = request.connection
        assert connection is not None
        # Asked once: finish() and _watch_close() read the answer.
        self._close_by_attribute = close_by_attribute(connection)
        if not self._close_by_attribute:
            connection.set_close_callback(self._connection_closed)
        # A connection with the close_callback_attribute capability (the
        # server's own) hears of the handler only if it is still running when
        # _execute returns (see _watch_close): no close can be delivered
        # before that, and most handlers have finished.
        if kwargs or traits.initialize:
            self.initialize(**kwargs)

    def _initialize(self) -> None:
        """Hook for subclass initialization, called with the route's keyword arguments.

        A route ``(r"/user/(.*)", ProfileHandler, dict(database=db))`` calls
        ``initialize(database=db)`` on each new handler.
        """

    # Typed loosely so that subclasses may take any keyword arguments.
    initialize: Callable[..., None] = _initialize

    @property
    def settings(self) -> dict[str, Any]:  # type: ignore[override]
        """The application's settings (an alias of ``self.application.settings``)."""
        settings: dict[str, Any] = self.application.settings
        return settings

    # Also a class attribute: a handler built without __init__ still reads it.
    _ui_namespace: Optional[ObjectDict] = None
    # The Task `_execute` runs in, while the delegate holds it (see there).
    _held_task: Optional[asyncio.Future[Any]] = None

    @property
    def ui(self) -> ObjectDict:
        """The namespace of UI methods and modules that templates see."""
        # Kept in a plain attribute rather than a cached_property: clearing
        # a cached_property goes through the instance __dict__, which
        # CPython then has to build for every handler.
        namespace = self._ui_namespace
        if namespace is None:
            namespace = self._ui_namespace = self._new_ui_namespace()
        return namespace

    @ui.setter
    def ui(self, namespace: ObjectDict) -> None:
        self._ui_namespace = namespace

    def _new_ui_namespace(self) -> ObjectDict:
        namespace = ObjectDict()
        methods = self.application.ui_methods
        if methods:
            # A loop only when there is something to bind: an empty
            # generator still costs a frame per templated request.
            for name, method in methods.items():
                namespace[name] = self._ui_method(method)
        modules = _UIModuleNamespace(self, self.application.ui_modules)
        namespace["_tt_modules"] = modules
        namespace["modules"] = modules
        return namespace

    def _unimplemented_method(self, *args: Any, **kwargs: Any) -> Any:
        raise HTTPError(405)

    head: Callable[..., Optional[Awaitable[None]]] = _unimplemented_method
    get: Callable[..., Optional[Awaitable[None]]] = _unimplemented_method
    post: Callable[..., Optional[Awaitable[None]]] = _unimplemented_method
    delete: Callable[..., Optional[Awaitable[None]]] = _unimplemented_method
    patch: Callable[..., Optional[Awaitable[None]]] = _unimplemented_method
    put: Callable[..., Optional[Awaitable[None]]] = _unimplemented_method
    options: Callable[..., Optional[Awaitable[None]]] = _unimplemented_method

    def prepare(self) -> Optional[Awaitable[None]]:
        """Called before the HTTP method; may be a coroutine.

        Finishing the response here (or raising) skips the method.
        """
        return None

    def on_finish(self) -> None:
        """Called after the response has been sent; for cleanup and logging."""

    def _connection_closed(self) -> None:
        # Both the connection's close callback and a streaming delegate may
        # report the same close; the handler hears of it once.
        if not getattr(self, "_close_reported", False):
            self._close_reported = True
            self.on_connection_close()

    def on_connection_close(self) -> None:
        """Called if the client closes the connection before the response is finished.

        Handlers that stream (long polling, `stream_request_body`) override
        this to stop work; they should call the base method, which ends a
        pending streamed body.
        """
        if self._stream_request_body:
            body_future: Future[None] = self.request._body_future  # type: ignore[attr-defined]
            if not body_future.done():
                from squall.iostream import StreamClosedError

                body_future.set_exception(StreamClosedError())
                body_future.exception()  # retrieved, so asyncio does not log it

    def clear(self) -> None:
        """Resets the status, the headers and the buffered output to their defaults.

        Cookies already set stay set: an error page sent after `set_cookie`
        still carries them, as in Tornado.
        """
        old = self._headers
        self._headers = _new_headers()
        if "Set-Cookie" in old:
            for line in old.get_list("Set-Cookie"):
                self._headers.add("Set-Cookie", line)
        self.set_default_headers()
        self._write_buffer = []
        self._status_code = 200
        self._reason = "OK"

    def set_default_headers(self) -> None:
        """Hook to set headers on every response (also on error pages).

        Called at the start of each request and by `send_error`.
        """

    def set_status(self, status_code: int, reason: Optional[str] = None) -> None:
        """Sets the status code of the response.

        Args:
            status_code: any integer status code.
            reason: the reason phrase; by default the standard one for the
                code, or ``"Unknown"``. A phrase that may not appear in a
                status line (control characters, ``<``) becomes ``"Unknown"``.
        """
        self._status_code = status_code
        if reason is None:
            self._reason = responses.get(status_code, "Unknown")
        elif "<" in reason or _ABNF.reason_phrase.fullmatch(reason) is None:
            self._reason = "Unknown"
        else:
            self._reason = reason

    def get_status(self) -> int:
        """The status code of the response."""
        return self._status_code

    def set_header(self, name: str, value: _HeaderValue) -> None:
        """Sets the header ``name`` to ``value``, replacing any value it had.

        ``value`` may be a str, bytes (latin-1), int or `datetime.datetime`.

        Raises:
            ValueError: if the value holds control characters (such as CR/LF).
            TypeError: for a value of another type.
        """
        # Straight into the dict: the name is checked by _normalize_header
        # and the value here, so the headers stay "checked" (see
        # _ResponseHeaders).
        if type(value) is not str or not value.isprintable():
            # isprintable() is False for every control character (and for
            # some characters that are allowed, such as HTAB): those go
            # through the full conversion and check.
            value = self._convert_header_value(value)
        headers = self._headers
        if type(headers) is _ResponseHeaders:
            headers._as_list[_NAME_CACHE.get(name) or _normalize_header(name)] = [value]
        else:
            # Headers an application put in place: their own __setitem__.
            headers[name] = value

    def add_header(self, name: str, value: _HeaderValue) -> None:
        """Adds a value to the header ``name``, keeping the values it had (as for ``Set-Cookie``)."""
        self._headers.add(name, self._convert_header_value(value))

    def clear_header(self, name: str) -> None:
        """Removes the header ``name`` (every value of it), if set."""
        if name in self._headers:
            del self._headers[name]

    def _convert_header_value(self, value: _HeaderValue) -> str:
        if isinstance(value, str):
            converted = value
        elif isinstance(value, bytes):
            converted = value.decode("latin1")
        elif isinstance(value, numbers.Integral):
            return str(value)
        elif isinstance(value, datetime.datetime):
            return format_timestamp(value)
        else:
            raise TypeError(f"Unsupported header value {value!r}")
        if _UNSAFE_HEADER_CHARS.search(converted) is not None:
            raise ValueError(f"Unsafe header value {converted!r}")
        return converted

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
        return self._get_argument(name, default, self.request.arguments, strip)

    def get_arguments(self, name: str, strip: bool = True) -> list[str]:
        """Every value of the query and body argument ``name`` (maybe none)."""
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
        if not isinstance(strip, bool):
            raise TypeError(f"strip must be a bool, got {strip!r}")
        if not self._hook_traits.decode_argument:
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
            raise HTTPError(400, "Invalid unicode in %s: %r", name or "url", value[:40])

    def redirect(self, url: str, permanent: bool = False, status: Optional[int] = None) -> None:
        """Redirects to ``url`` (relative or absolute) and finishes the response.

        Args:
            url: the target, sent as the ``Location`` header.
            permanent: 301 instead of 302.
            status: a 3xx status code, instead of the two above.

        Raises:
            RuntimeError: if the headers were already sent.
            ValueError: for a status that is not 3xx.
        """
        if self._headers_written:
            raise RuntimeError("Cannot redirect after headers have been written")
        if status is None:
            status = 301 if permanent else 302
        elif not isinstance(status, int) or not 300 <= status <= 399:
            raise ValueError(f"redirect status must be a 3xx code, got {status!r}")
        self.set_status(status)
        self.set_header("Location", utf8(url))
        self.finish()

    def write(self, chunk: Union[str, bytes, dict[str, Any]]) -> None:
        """Buffers ``chunk`` for the response body.

        A dict is sent as JSON (and sets ``Content-Type: application/json``).
        Lists are refused: a JSON array at the top level could be read
        cross-site by old browsers; wrap it in a dict.

        Raises:
            RuntimeError: after `finish`.
            TypeError: for anything but str, bytes and dict.
        """
        if self._finished:
            raise RuntimeError("Cannot write() after finish()")
        if isinstance(chunk, bytes):
            self._write_buffer.append(chunk)
            return
        if isinstance(chunk, str):
            self._write_buffer.append(chunk.encode("utf-8"))
            return
        if isinstance(chunk, dict):
            self._write_buffer.append(escape.json_encode(chunk).encode("utf-8"))
            # The canonical key, set without HTTPHeaders' name normalization.
            self._headers._as_list["Content-Type"] = _JSON_VALUES
            return
        message = "write() only accepts bytes, unicode, and dict objects"
        if isinstance(chunk, list):
            message += (
                ". Lists not accepted for security reasons (a top-level JSON array"
                " can be read cross-site); wrap the list in a dict"
            )
        raise TypeError(message)

    def send_early_hints(self, links: Iterable[str]) -> bool:
        """Sends ``103 Early Hints`` (RFC 8297) with a ``Link`` header per item,
        while the response is still being made, so that a browser can start
        fetching what the page will need.

        The final response does not inherit these: set its own ``Link``
        headers if it should carry them too. Over HTTP/1.1, HTTP/2 and
        HTTP/3 the hints go out at once; an HTTP/1.0 client (which may not
        be sent a 1xx), or a connection with no way to carry one, is sent
        nothing. May be called more than once, before the headers are sent::

            self.send_early_hints(["</app.css>; rel=preload; as=style"])

        Args:
            links: ``Link`` field values (RFC 8288), such as
                ``"</app.js>; rel=preload; as=script"``.

        Returns:
            bool: whether the hints were sent (False when the connection
            declined them).

        Raises:
            RuntimeError: the headers were already sent.
            ValueError: a value a header may not hold (CR, LF, NUL...).
            TypeError: an item that is not a str.
        """
        if self._headers_written:
            raise RuntimeError("Cannot send early hints after the headers have been written")
        if isinstance(links, str):
            links = [links]  # one value, not its characters
        headers = HTTPHeaders()
        for link in links:
            if not isinstance(link, str):
                raise TypeError(f"a Link value is a str, not {type(link).__name__}")
            try:
                headers.add("Link", link)
            except HTTPInputError as exc:
                raise ValueError(f"invalid Link value {link!r}") from exc
        if not headers:
            return False
        connection = self.request.connection
        assert connection is not None
        try:
            return connection.write_informational(103, headers) is True
        except HTTPOutputError as exc:
            raise ValueError(str(exc)) from exc

    def flush(self, include_footers: bool = False) -> Future[None]:
        """Sends the buffered output (and, the first time, the headers).

        Returns:
            A future that resolves when the data has been written out.
        """
        request = self.request
        connection = request.connection
        assert connection is not None
        buffer = self._write_buffer
        if len(buffer) == 1:
            chunk = buffer[0]
        else:
            chunk = b"".join(buffer)
        # Emptied in place: a new list would cost an allocation per flush.
        buffer.clear()
        if not self._headers_written:
            self._headers_written = True
            transforms = self._transforms
            if transforms:
                for transform in transforms:
                    self._status_code, self._headers, chunk = transform.transform_first_chunk(
                        self._status_code, self._headers, chunk, include_footers
                    )
            if request.method == "HEAD":
                chunk = b""
            # tuple.__new__ skips the namedtuple's Python-level constructor.
            start_line = _new_tuple(ResponseStartLine, ("", self._status_code, self._reason))
            try:
                return connection.write_headers(start_line, self._headers, chunk)
            except HTTPOutputError:
                # A head the connection refused and did not send (a value
                # set_header let through that is not latin-1, a
                # Content-Length that is not a number): the error can still
                # be answered with a 500.
                if not getattr(connection, "head_written", True):
                    self._headers_written = False
                raise
        for transform in self._transforms:
            chunk = transform.transform_chunk(chunk, include_footers)
        if self.request.method != "HEAD":
            return connection.write(chunk)
        future: Future[None] = Future()
        future.set_result(None)
        return future

    def finish(self, chunk: Union[None, str, bytes, dict[str, Any]] = None) -> Future[None]:
        """Ends the response: writes ``chunk`` (if any), sends everything, logs the request.

        Adds ``Content-Length`` and, for a 200 answer to GET/HEAD, an ``Etag``;
        when the request's ``If-None-Match`` matches it, the answer becomes a
        bodiless 304.

        Returns:
            A future that resolves when the response has been written out.

        Raises:
            RuntimeError: if called twice.
        """
        if self._finished:
            raise RuntimeError("finish() called twice")
        if chunk is not None:
            self.write(chunk)
        # The hooks are called even when they are the base class's no-ops:
        # a call costs less than finding out whether one was overridden on
        # the class or set on the instance (whose __dict__ must not be
        # read: see locale).
        if not self._headers_written:
            status = self._status_code
            request = self.request
            if (
                status == 200
                and request.method in ("GET", "HEAD")
                and "Etag" not in self._headers._as_list
            ):
                self.set_etag_header()
                if self.check_etag_header():
                    self._write_buffer = []
                    self.set_status(304)
                    status = 304
            if status in (204, 304) or 100 <= status < 200:
                if self._write_buffer and any(self._write_buffer):
                    raise RuntimeError(f"Cannot send a body with status {status}")
                self._clear_representation_headers()
            else:
                fields = self._headers._as_list
                if "Content-Length" not in fields:
                    length = 0
                    for part in self._write_buffer:
                        length += len(part)
                    values = _LENGTHS.get(length)
                    if values is None:
                        values = [str(length)]
                        if len(_LENGTHS) < _LENGTHS_MAX:
                            _LENGTHS[length] = values
                    fields["Content-Length"] = values
        connection = self.request.connection
        assert connection is not None
        if self._close_by_attribute:
            if connection.close_callback is not None:
                connection.close_callback = None
        else:
            connection.set_close_callback(None)
        future = self.flush(True)
        self._end_exchange(connection)
        return future

    def _end_exchange(self, connection: Any) -> None:
        # The end of finish(), the response written: the exchange finished,
        # the request logged, then on_finish() (WebSocketHandler's 101 ends
        # here too).
        connection.finish()
        self.application.log_request(self)
        self._finished = True
        self.on_finish()
        if self._ui_namespace is not None:
            # Nothing to break otherwise (most handlers never touch ui).
            self._break_cycles()

    def _break_cycles(self) -> None:
        # The ui namespace refers back to the handler (finish() calls this
        # only once there is one). Subclasses that keep working after
        # finish() may postpone it.
        self._ui_namespace = None

    def _clear_representation_headers(self) -> None:
        # RFC 9110 section 15.4.5: a 304 carries no representation metadata
        # beyond what a 200 would have had for caching.
        headers = self._headers
        if type(headers) is _ResponseHeaders and not self._hook_traits.clear_header:
            # (Every 101 comes here: the WebSocket handshake.)
            fields = headers._as_list
            for name in _REPRESENTATION_HEADERS:
                fields.pop(name, None)
            return
        for name in _REPRESENTATION_HEADERS:
            self.clear_header(name)

    def detach(self) -> Any:
        """Takes over the connection's stream (for protocols such as WebSocket).

        Returns:
            The underlying `.IOStream`; the handler will send nothing more.
        """
        self._finished = True
        connection = self.request.connection
        assert connection is not None
        return connection.detach()

    def compute_etag(self) -> Optional[str]:
        """The ETag of the response: a hash of the body; None to send none."""
        buffer = self._write_buffer
        if len(buffer) == 1:
            body = buffer[0]
            if len(body) <= _ETAG_MEMO_MAX:
                # Small bodies repeat (health checks, "OK", small JSON): the
                # last one's Etag spares the sha1.
                memo = _etag_memo
                if memo[0] == body:
                    return memo[1]
                etag = f'"{hashlib.sha1(body).hexdigest()}"'
                if type(body) is bytes:
                    _remember_etag(body, etag)
                return etag
            return f'"{hashlib.sha1(body).hexdigest()}"'
        hasher = hashlib.sha1()
        for part in buffer:
            hasher.update(part)
        return f'"{hasher.hexdigest()}"'

    def set_etag_header(self) -> None:
        """Sets the ``Etag`` header from `compute_etag` (unless it returns None)."""
        etag = self.compute_etag()
        if etag is not None:
            memo = _etag_memo
            if etag is memo[1]:
                # The stock compute_etag's (remembered) Etag: our own
                # quoted hex digest, valid as it is; its list is shared.
                self._headers._as_list["Etag"] = memo[2]
            elif type(etag) is str and etag.isprintable():
                # set_header()'s own fast case, without the call (straight
                # into the dict, as the framework's own Content-Length is).
                self._headers._as_list["Etag"] = [etag]
            else:
                self.set_header("Etag", etag)

    def check_etag_header(self) -> bool:
        """Whether the response's ``Etag`` matches the request's ``If-None-Match``.

        Weak comparison (RFC 9110 section 13.1.2): a ``W/`` prefix is ignored,
        and ``*`` matches anything.
        """
        headers = self.request.headers
        if type(headers) is HTTPHeaders:
            # Most requests have none: one dict lookup says so.
            values = headers._as_list.get("If-None-Match")
            if not values:
                return False
            if_none_match: Optional[str] = values[0] if len(values) == 1 else ",".join(values)
        else:
            if_none_match = headers.get("If-None-Match")
        if not if_none_match:
            return False
        computed = utf8(self._headers.get("Etag", ""))
        if not computed:
            return False
        etags = _ETAG_TOKEN.findall(utf8(if_none_match))
        if not etags:
            return False
        if etags[0] == b"*":
            return True
        computed = computed[2:] if computed.startswith(b"W/") else computed
        for etag in etags:
            if (etag[2:] if etag.startswith(b"W/") else etag) == computed:
                return True
        return False

    def _handle_request_exception(self, exc: BaseException) -> None:
        if isinstance(exc, Finish):
            if not self._finished:
                self.finish(*exc.args)
            return
        try:
            self.log_exception(*sys.exc_info())
        except Exception:
            # The application's logger must not hide the original error.
            app_log.error("Error in exception logger", exc_info=True)
        if self._finished:
            return
        if isinstance(exc, HTTPError):
            self.send_error(exc.status_code, exc_info=sys.exc_info())
        else:
            self.send_error(500, exc_info=sys.exc_info())

    def _on_error(self, exc: BaseException) -> None:
        try:
            self._handle_request_exception(exc)
        except Exception:
            app_log.error("Exception in exception handler", exc_info=True)
        finally:
            prepared = self._prepared_future
            if prepared is not None and not prepared.done():
                prepared.set_result(None)

    def _start(self, *args: Any, **kwargs: Any) -> None:
        # Everything before prepare(): method check, path arguments, body
        # parsing and the cross-origin and XSRF checks.
        request = self.request
        method = request.method
        if method not in self.SUPPORTED_METHODS:
            raise HTTPError(405)
        if args:
            self.path_args = [self.decode_argument(arg) for arg in args]
        if kwargs:
            self.path_kwargs = {k: self.decode_argument(v, name=k) for k, v in kwargs.items()}
        if not self._stream_request_body and request.body:
            from squall.httputil import HTTPInputError

            try:
                request._parse_body()
            except HTTPInputError as exc:
                raise HTTPError(400, "Invalid body: %s", exc) from exc
        if method not in _SAFE_METHODS:
            settings = self.application.settings
            if settings.get("cross_origin_protection"):
                self._check_cross_origin()
            if settings.get("xsrf_cookies"):
                self.check_xsrf_cookie()

    async def _execute(
        self, transforms: Sequence[OutputTransform], *args: Any, **kwargs: Any
    ) -> None:
        """Runs the request: checks, ``prepare()``, the HTTP method, ``finish()``.

        A coroutine function, as instrumentation expects (error reporters and
        tracers wrap it with ``async def w(...): return await original(...)``);
        the application's delegate runs what it returns (or what a wrapper
        returns) in a Task of the request's own (see `squall._request_task`).
        So ``prepare()``, the method and ``on_finish()`` share one Task and
        one context, which no other request sees.
        """
        self._transforms = transforms
        try:
            request = self.request
            method_name = request.method
            if (
                args
                or kwargs
                or request.body
                or method_name not in _SAFE_METHODS
                or method_name not in self.SUPPORTED_METHODS
                or self._hook_traits.start
            ):
                self._start(*args, **kwargs)
            result = self.prepare()
            if result is not None:
                await result
            if self._prepared_future is not None:
                future_set_result_unless_cancelled(self._prepared_future, None)
            if self._finished:
                return
            if self._stream_request_body:
                from squall.iostream import StreamClosedError

                try:
                    await self.request._body_future  # type: ignore[attr-defined]
                except StreamClosedError:
                    return
            if method_name == "GET":
                # The common case, as a plain attribute read.
                method = self.get
            else:
                method = getattr(self, _METHOD_ATTRS.get(method_name) or method_name.lower())
            path_args = self.path_args
            path_kwargs = self.path_kwargs
            if path_args or path_kwargs:
                result = method(*path_args, **path_kwargs)
            else:
                result = method()
            if result is not None:
                await result
            if self._auto_finish and not self._finished:
                self.finish()
        except asyncio.CancelledError as exc:
            self._on_cancelled(exc)
        except Exception as exc:
            self._on_error(exc)
        finally:
            # The application's delegate held the Task this runs in, if it
            # suspended (squall.concurrent._held_future): it ends with this.
            held = self._held_task
            if held is not None:
                self._held_task = None
                _held_tasks.discard(held)

    def _watch_close(self) -> None:
        # The handler goes on after its first step: a connection with the
        # close_callback_attribute capability reports its close from now on
        # (set_close_callback(), without the call; see __init__).
        connection = self.request.connection
        assert connection is not None
        if self._close_by_attribute:
            connection.close_callback = self._connection_closed

    def _on_cancelled(self, exc: asyncio.CancelledError) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Our own task was cancelled (server shutdown, say): answer 500
            # quietly and let the cancellation through.
            try:
                if not self._finished:
                    self.send_error(500)
            finally:
                prepared = self._prepared_future
                if prepared is not None and not prepared.done():
                    prepared.set_result(None)
            raise exc
        # A cancelled future awaited by the handler: an ordinary error.
        self._on_error(exc)

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        """Receives a piece of the body in a `stream_request_body` handler.

        May return an awaitable: no more body is read until it resolves.
        """
        raise NotImplementedError()


_HeaderValue = Union[bytes, str, int, datetime.datetime]
# The base class's hooks, as defined here: any other function in their place
# (an override, or a wrapper patched onto RequestHandler) counts as replaced.
declare(HandlerTraits, RequestHandler)
# Its coroutines handle their own errors (the application's delegate reads it).
_stock_execute_code = RequestHandler._execute.__code__
_REPRESENTATION_HEADERS = ("Content-Encoding", "Content-Language", "Content-Type")
RequestHandler._next_init = any(
    "__init__" in vars(k) for k in RequestHandler.__mro__[1:] if k is not object
)


def _remember_etag(body: bytes, etag: str) -> None:
    global _etag_memo
    _etag_memo = (body, etag, [etag])
