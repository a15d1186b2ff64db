"""`RequestHandler`: the base class of the handlers an `.Application` routes to.

The request cycle lives here: writing, flushing and finishing, and running
the request (``_execute``). The status and header fields come from
`StatusMixin` (``_status.py``), the arguments from `ArgumentsMixin`
(``_arguments.py``), the Etag and its 304 from `EtagMixin` (``_etag.py``), the
cookie and XSRF methods from `.CookieMixin` (``cookies.py``), the
template methods from `.RenderMixin` (``rendering.py``), the user, locale
and cross-origin checks from `IdentityMixin` (``_identity.py``), and the
error page and exception log from `ErrorPageMixin` (``_failure.py``).

``_execute`` is a coroutine function, as in Tornado, and the application's
delegate runs it in a Task of the request's own (see `squall._request_task`:
on Python 3.12+ started eagerly), or, for a handler whose ``prepare()`` and
method are plain functions, without a Task at all (see
``RequestHandler._step_at_once``): either way a handler that never waits is
done inside the server's callback, with no loop turn.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

from squall import escape
from squall._fastpaths import step
from squall._traits import Traits, declare, traits_of
from squall.concurrent import Future, _held_tasks, future_set_result_unless_cancelled
from squall.escape import utf8
from squall.httputil import (
    HTTPHeaders,
    HTTPInputError,
    HTTPOutputError,
    ResponseStartLine,
)
from squall.httputil._exchange import close_by_attribute
from squall.log import app_log
from squall.util import ObjectDict
from squall.web._arguments import _ARG_DEFAULT as _ARG_DEFAULT  # squall.web's
from squall.web._arguments import ArgumentsMixin
from squall.web._delegate import AT_ONCE_UNLESS as AT_ONCE_UNLESS  # squall.websocket's
from squall.web._delegate import INTO_TASK, hooks_changed
from squall.web._delegate import NO_WAIT as NO_WAIT  # squall.websocket's
from squall.web._etag import EtagMixin
from squall.web._failure import ErrorPageMixin
from squall.web._identity import IdentityMixin
from squall.web._status import _JSON_VALUES, StatusMixin, _new_headers
from squall.web.cookies import CookieMixin
from squall.web.errors import Finish, HTTPError
from squall.web.rendering import RenderMixin, _UIModuleNamespace

if TYPE_CHECKING:
    from squall.httputil import HTTPServerRequest
    from squall.web.application import Application
    from squall.web.transforms import OutputTransform

__all__ = ["RequestHandler"]


_new_tuple = tuple.__new__
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
# The handler method of each common HTTP method (spares a lower() per request).
_METHOD_ATTRS = {m: m.lower() for m in ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")}

# Content-Length value lists by body length, shared as the default fields'
# are (a str() and a list fewer per response); at most _LENGTHS_MAX lengths kept.
_LENGTHS: dict[int, list[str]] = {}
_LENGTHS_MAX = 4096

# The Task a handler that answers at once hands the rest of its _execute to
# when it awaits after all (see _step_at_once).
_Task = asyncio.Task

# What step() returns for a first step that ended the request's coroutine.
_DONE = object()

# A handler's transforms when the application has none (a tuple: shared by
# every handler, so it must not be appendable).
_NO_TRANSFORMS: tuple[OutputTransform, ...] = ()


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
        ("on_finish", "on_finish"),
    )
    __slots__ = tuple(trait for trait, _ in HOOKS)

    set_default_headers: bool
    initialize: bool
    start: bool
    get_status: bool
    decode_argument: bool
    clear_header: bool
    on_finish: bool


class RequestHandler(
    StatusMixin, ArgumentsMixin, EtagMixin, IdentityMixin, ErrorPageMixin, CookieMixin, RenderMixin
):
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
    # after the class was made is seen; the handler keeps the answer for
    # its request in _traits.
    _hook_traits: HandlerTraits
    _traits: HandlerTraits
    # Whether the connection reports its close through the
    # close_callback attribute (see __init__).
    #
    # No attribute that __init__ sets on the handler has a value on the
    # class as well: CPython 3.13 specializes neither the reads nor the
    # writes of an instance attribute that a class attribute of the same
    # name shadows, and each goes the generic way (3.11 does specialize
    # them). Three such fields (this one, _ui_namespace, and the traits
    # kept as _hook_traits) cost 3.13's compiled hello about 2k
    # instructions a request of 107k.
    _close_by_attribute: bool

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
        # of the request (not as _hook_traits: see _close_by_attribute).
        cls = self.__class__
        traits = cls._hook_traits
        if hooks_changed(traits, cls):
            traits = traits_of(cls)
        self._traits = traits
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

    # Set by __init__ (see _close_by_attribute: no class value).
    _ui_namespace: Optional[ObjectDict]
    # The Task `_execute` runs in, while the delegate holds it (see there).
    _held_task: Optional[asyncio.Future[Any]] = None
    # Whether _execute reached a wait (see _watch_first_wait).
    _waited = False
    # Set by _execute when it finishes for the handler, its method returned
    # (see finish).
    _auto_finishing = False
    # Set while _execute's first step runs outside a Task (see
    # squall.web._delegate): before it awaits anything it asks for its Task.
    _outside = False

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

    def set_default_headers(self) -> None:
        """Hook to set headers on every response (also on error pages).

        Called at the start of each request and by `send_error`.
        """

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
                future = connection.write_headers(start_line, self._headers, chunk)
            except HTTPOutputError:
                # A head the connection refused and did not send (a value
                # set_header let through that is not latin-1, a
                # Content-Length that is not a number): the error can still
                # be answered with a 500.
                if not getattr(connection, "head_written", True):
                    self._headers_written = False
                raise
        else:
            for transform in self._transforms:
                chunk = transform.transform_chunk(chunk, include_footers)
            if self.request.method != "HEAD":
                future = connection.write(chunk)
            else:
                future = Future()
                future.set_result(None)
        if not include_footers:
            # A flush before the end (finish's own passes include_footers)
            # goes on the wire now, as Tornado's does: see Exchange.send_now.
            send_now = getattr(connection, "send_now", None)
            if send_now is not None:
                send_now()
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
            headers = self._headers
            fields = headers._as_list
            if status == 200 and request.method in ("GET", "HEAD") and "Etag" not in fields:
                self.set_etag_header()
                if self.check_etag_header():
                    self._write_buffer = []
                    self.set_status(304)
                    status = 304
            if status in (204, 304) or 100 <= status < 200:
                if self._write_buffer and any(self._write_buffer):
                    # Worded as Tornado words it: tests and log filters match it.
                    raise RuntimeError(f"Cannot send body with status code HTTP{status}")
                self._clear_representation_headers()
            else:
                if self._headers is not headers:
                    # A hook put headers of its own in place.
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
        # Sent before finish returns, as Tornado's is, wherever code of the
        # application's may run next: finish() called by the handler (a
        # webhook that answers, then works), or an on_finish of its own.
        # Finished for it once its method returned, with the default
        # on_finish, the answer leaves with the loop round's others: one
        # burst of writes for a round's responses cost the server half the
        # kernel time per request under 50 connections (hello world: 5%
        # of its CPU; Starlette's, 11%).
        self._end_exchange(
            connection,
            not self._auto_finishing or self._traits.on_finish,
        )
        return future

    def _end_exchange(self, connection: Any, send_now: bool = False) -> None:
        # The end of finish(), the response written: the exchange finished,
        # its bytes sent if asked, the request logged, then on_finish()
        # (WebSocketHandler's 101 ends here too).
        connection.finish()
        if send_now:
            send = getattr(connection, "send_now", None)
            if send is not None:
                send()
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

    def detach(self) -> Any:
        """Takes over the connection's stream (for protocols such as WebSocket).

        Returns:
            The underlying `.IOStream`; the handler will send nothing more.

        Raises:
            squall.httputil.HTTPOutputError: the connection cannot be handed over (an
                HTTP/2 or HTTP/3 stream other than an accepted extended
                CONNECT). The handler is then not finished: the error
                reaches the client as a 500, or the handler may answer.
        """
        self._finished = True
        connection = self.request.connection
        assert connection is not None
        try:
            return connection.detach()
        except BaseException:
            # Marked finished, a handler whose detach() was refused would
            # never answer: its client (an HTTP/2 stream, which stays open
            # with the connection) would wait forever.
            self._finished = False
            raise

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
            self._answer_after_failed_error_page()
        finally:
            prepared = self._prepared_future
            if prepared is not None and not prepared.done():
                prepared.set_result(None)

    def _answer_after_failed_error_page(self) -> None:
        # The error page could not be sent (its status is one the connection
        # refuses to send, HTTPError(99), or finish() raised): the client
        # gets the 500 page instead, else the connection is closed, so that
        # it never waits for an answer that will not come.
        if self._finished:
            return
        if not self._headers_written:
            try:
                self.send_error(500)
            except Exception:
                app_log.error("Cannot send the 500 page either", exc_info=True)
        if not self._finished:
            close = getattr(self.request.connection, "close", None)
            if close is not None:
                close()

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
                raise HTTPError(400, f"Invalid body: {exc}") from exc
        if method not in _SAFE_METHODS:
            # The XSRF check first, as in Tornado: an override of it (one
            # that answers its own status, or excuses token-authenticated
            # requests) is heard before the cross-origin check refuses.
            settings = self.application.settings
            if settings.get("xsrf_cookies"):
                self.check_xsrf_cookie()
            if settings.get("cross_origin_protection"):
                self._check_cross_origin()

    async def _execute(
        self, transforms: Sequence[OutputTransform], *args: Any, **kwargs: Any
    ) -> None:
        """Runs the request: checks, ``prepare()``, the HTTP method, ``finish()``.

        A coroutine function, as instrumentation expects (error reporters and
        tracers wrap it with ``async def w(...): return await original(...)``);
        the application's delegate runs what it returns (or what a wrapper
        returns) in a Task of the request's own (see `squall._request_task`).
        So ``prepare()``, the method and ``on_finish()`` share one Task and
        one context, which no other request sees. A handler whose
        ``prepare()`` and method are plain functions runs without a Task, in
        a context of its own (see `_step_at_once`), and asks for one
        (``_into_task``) before it awaits anything.
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
                or self._traits.start
            ):
                self._start(*args, **kwargs)
            result = self.prepare()
            if result is not None:
                if self._outside:
                    await self._into_task_for(result)
                await self._watch_first_wait(result)
            if self._prepared_future is not None:
                future_set_result_unless_cancelled(self._prepared_future, None)
            if self._finished:
                return
            if self._stream_request_body:
                from squall.iostream import StreamClosedError

                try:
                    await self._watch_first_wait(self.request._body_future)  # type: ignore[attr-defined]
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
                if self._outside:
                    await self._into_task_for(result)
                await self._watch_first_wait(result)
            if self._auto_finish and not self._finished:
                # The method has returned: the answer may leave with the
                # loop round's others (see finish).
                self._auto_finishing = True
                self.finish()
        except asyncio.CancelledError as exc:
            self._on_cancelled(exc)
        except Exception as exc:
            self._on_error(exc)
        finally:
            if not self._waited and self._held_task is not None and not self._finished:
                # Done in a first step that ran on the loop's turn, with no
                # wait (see _watch_first_wait), and not finished (auto_finish
                # off): a close must still reach it.
                self._watch_close()
            # The application's delegate held the Task this runs in, if it
            # suspended (squall.concurrent._held_future): it ends with this.
            held = self._held_task
            if held is not None:
                self._held_task = None
                _held_tasks.discard(held)

    def _step_at_once(self, loop: asyncio.AbstractEventLoop, running: Any) -> None:
        # For a handler whose prepare() and method are plain functions (see
        # squall.web._delegate's plans): ``running``, this handler's
        # _execute, takes its first step at once, outside any Task, in a
        # copy of the caller's context. Done then, the request needed no
        # Task (nor a loop turn). Before it awaits anything (what a method
        # returned to be awaited) _execute yields INTO_TASK (_into_task),
        # and the rest is handed to a Task of its own in the same context,
        # whose first step resumes it there: what is awaited runs in that
        # Task, as on Tornado (asyncio.current_task, asyncio.timeout).
        context = copy_context()
        self._outside = True
        yielded = step(context, running, _DONE)
        if yielded is _DONE:
            if not self._finished:
                # Done with its step, not finished (auto_finish off): a
                # close must still reach it.
                self._watch_close()
            return
        if yielded is not INTO_TASK:
            # (A wait that did not ask for its Task first: squall's bug.)
            running.close()
            raise RuntimeError(f"{type(self).__name__}._execute waited outside a Task")
        task = _Task(running, loop=loop, context=context)
        # Held as the delegate holds a request's Task (see _execute).
        _held_tasks.add(task)
        self._held_task = task

    def _into_task(self) -> Any:
        # The first step ran outside a Task and is about to await: yield to
        # _step_at_once, which hands the rest of this coroutine to a Task
        # (its next step resumes here), so that what is awaited runs in it.
        self._outside = False
        return INTO_TASK

    def _into_task_for(self, awaited: Any) -> Any:
        # What _execute awaits, outside a Task, before it awaits ``awaited``
        # (what prepare() or the method returned): _into_task's, unless a
        # subclass knows ``awaited`` asks for the Task itself before it
        # waits (see squall.web._delegate.AT_ONCE_UNLESS).
        return self._into_task()

    def _watch_first_wait(self, awaited: Any) -> Any:
        # What _execute is about to await, passed through. The first time:
        # if the delegate held this Task before its first step ran (the step
        # runs on the loop's turn: 3.11, a loop with a task factory; an
        # eager start holds it only after), the close watch is set once that
        # step has returned, not in the middle of a call of the handler's
        # own that resets the stream (such a close is reported a turn later,
        # see Exchange._report_gone). After an eager start the delegate
        # sets it itself.
        if not self._waited:
            self._waited = True
            task = self._held_task
            if task is not None:
                task.get_loop().call_soon(self._watch_after_step, task)
        return awaited

    def _watch_after_step(self, task: asyncio.Future[Any]) -> None:
        # Called once the first step of this handler's Task has returned: a
        # close from now on reaches the handler, unless it is done.
        if not task.done() or not self._finished:
            self._watch_close()

    def _watch_close(self) -> None:
        # The handler goes on after its first step: a connection with the
        # close_callback_attribute capability reports its close from now on
        # (set_close_callback(), without the call; see __init__).
        connection = self.request.connection
        assert connection is not None
        if self._close_by_attribute and connection.close_callback is None:
            # Unless the handler chose a callback of its own meanwhile
            # (set_close_callback() in prepare() or in its method before
            # it waited; None is then a callback that does nothing): as
            # the one Tornado's handler sets as it starts, it stands.
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


# The base class's hooks, as defined here: any other function in their place
# (an override, or a wrapper patched onto RequestHandler) counts as replaced.
declare(HandlerTraits, RequestHandler)
# Its coroutines handle their own errors (the application's delegate reads it).
_stock_execute_code = RequestHandler._execute.__code__
RequestHandler._next_init = any(
    "__init__" in vars(k) for k in RequestHandler.__mro__[1:] if k is not object
)
