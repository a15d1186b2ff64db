"""`WebSocketHandler`: the server side, a RequestHandler that upgrades its GET request."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from types import CoroutineType, MappingProxyType
from typing import Any, Optional, TypeVar, Union, cast

from squall import _ws
from squall._traits import declare
from squall._wswrite import write_method
from squall.concurrent import Future
from squall.escape import utf8
from squall.httputil import responses
from squall.httputil._headers import HTTPHeaders, fields_of
from squall.httputil._response import _ResponseHeaders
from squall.httputil._urls import origin_names_host
from squall.web import RequestHandler
from squall.web.handler import AT_ONCE_UNLESS, NO_WAIT, HandlerTraits
from squall.websocket._idle import (
    _OPEN_KWARGS,
    _PATH_ARGS,
    _PATH_KWARGS,
    lazy_arguments,
    release_arguments,
    release_request,
)
from squall.websocket._protocol import (
    _DEFAULT_MAX_MESSAGE_SIZE,
    MessageType,
    WebSocketClosedError,
    WebSocketProtocol13,
    _Peer,
)

__all__ = ["WebSocketHandler"]


# What a browser's Sec-Fetch-Site says of a request from the server's own
# pages (or typed in by the user).
_SAME_SITES = ("same-origin", "none")
_SWITCHING = responses[101]
_NOT_SUPPORTED = "Method not supported for Web Sockets"
# The 101's constant field values (shared lists: see _write_101).
_UPGRADE_VALUES = ["websocket"]
_CONNECTION_VALUES = ["Upgrade"]
# What an open WebSocket's handler keeps of its response: its headers and
# its output were sent with the 101 and nothing more can be (the methods
# that would write raise). Shared empty ones nothing can change: neither
# takes a write (add_header first gives the handler headers of its own).
_SPENT_HEADERS = _ResponseHeaders.of_fields(cast(dict[str, list[str]], MappingProxyType({})))
_SPENT_OUTPUT = cast(list[bytes], ())


_Method = TypeVar("_Method", bound=Callable[..., Any])


class WebSocketTraits(HandlerTraits):
    """`HandlerTraits` and which of the handshake's hooks a `WebSocketHandler`
    class replaces (see `squall._traits`)."""

    HOOKS = HandlerTraits.HOOKS + (
        ("set_header", "set_header"),
        ("set_status", "set_status"),
        ("finish", "finish"),
        ("flush", "flush"),
        ("select_subprotocol", "select_subprotocol"),
        ("get_compression_options", "get_compression_options"),
        ("max_message_size", "max_message_size"),
        ("ping_interval", "ping_interval"),
        ("ping_timeout", "ping_timeout"),
    )
    __slots__ = (*(trait for trait, _ in HOOKS[len(HandlerTraits.HOOKS) :]), "params")

    set_header: bool
    set_status: bool
    finish: bool
    flush: bool
    select_subprotocol: bool
    get_compression_options: bool
    max_message_size: bool
    ping_interval: bool
    ping_timeout: bool
    # Whether any of the three properties the protocol's parameters come
    # from is replaced (one read per handshake: see get_websocket_protocol).
    params: bool

    def __init__(self, cls: type) -> None:
        super().__init__(cls)
        self.params = self.max_message_size or self.ping_interval or self.ping_timeout


def _refused_once_upgraded(method: _Method) -> _Method:
    """RequestHandler's ``method`` for WebSocketHandler: refused once the
    connection is upgraded (RuntimeError), the next class's in the MRO
    before. It keeps the method's signature (Tornado's: programs and tools
    read it) and docstring."""
    name = method.__name__

    @functools.wraps(method)
    def refusing(self: WebSocketHandler, *args: Any, **kwargs: Any) -> Any:
        if self._upgraded:
            raise RuntimeError(_NOT_SUPPORTED)
        return getattr(super(WebSocketHandler, self), name)(*args, **kwargs)

    refusing.__doc__ = (
        f"{inspect.cleandoc(method.__doc__ or '')}\n\n"
        "In a WebSocketHandler: raises RuntimeError once the connection is upgraded."
    )
    return cast(_Method, refusing)


class WebSocketHandler(RequestHandler, _Peer):
    """A request handler that upgrades its GET request to a WebSocket.

    Override `open`, `on_message` and `on_close`; send with `write_message`.
    `open` and `on_message` may be coroutines: no message is delivered before
    `open` finishes, and each `on_message` finishes before the next starts.

    Application settings: ``websocket_ping_interval``,
    ``websocket_ping_timeout``, ``websocket_max_message_size`` (10 MiB by
    default).
    """

    # Once upgraded, the HTTP response methods below raise RuntimeError.
    # A class default and overrides rather than seven methods set on each
    # instance: an idle connection's handler keeps fewer attributes.
    _upgraded = False

    # The per-connection state starts as these class defaults (rather
    # than stores in __init__: an idle connection's handler keeps fewer
    # attributes); each is set on the instance when it changes.
    # ws_connection, which every open connection sets, is set by __init__:
    # CPython 3.12+ does not specialize the read of an instance attribute
    # that a class attribute shadows (broadcast() reads it per connection).
    ws_connection: Optional[WebSocketProtocol13]
    close_code: Optional[int] = None
    close_reason: Optional[str] = None
    _on_close_called = False
    _opening: Optional[asyncio.Future[Any]] = None
    _open_abandoned = False
    open_args: tuple[Any, ...] = ()
    # Empty ones made when read, once an open connection's own are dropped
    # (set by get(); see release_arguments).
    open_kwargs: dict[str, Any] = cast(dict[str, Any], _OPEN_KWARGS)
    path_args: list[Any] = cast(list[Any], _PATH_ARGS)
    path_kwargs: dict[str, Any] = cast(dict[str, Any], _PATH_KWARGS)
    # Whether the three above are still those (see lazy_arguments).
    _lazy_arguments = True

    # Whether RequestHandler comes right after WebSocketHandler in the
    # class's MRO: flush (called by every 101's finish) then calls its
    # method by name, not through super(), whose lookup cost more than the
    # call (once per handshake).
    _base_next = True
    # RequestHandler's and the handshake's hooks (see squall._traits): the
    # class's, and the handler's own (RequestHandler.__init__ sets it).
    _hook_traits: WebSocketTraits
    _traits: WebSocketTraits

    def __init__(self, application: Any, request: Any, **kwargs: Any) -> None:
        self.ws_connection = None
        super().__init__(application, request, **kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._lazy_arguments = lazy_arguments(cls)
        mro = cls.__mro__
        cls._base_next = mro[mro.index(WebSocketHandler) + 1] is RequestHandler
        if (
            cls.on_connection_close is not WebSocketHandler.on_connection_close
            and cls.on_ws_connection_close is WebSocketHandler.on_ws_connection_close
        ):
            # The class overrides on_connection_close: its WebSocket's end
            # goes through it, as on Tornado (chosen here, once per class,
            # rather than tested at each close).
            cls.on_ws_connection_close = cls._close_through_on_connection_close  # type: ignore[method-assign]

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Checks the upgrade request and, if valid, runs the WebSocket."""
        self.open_args = args
        # Without keyword arguments (the usual route), the handler's own
        # empty path_kwargs rather than one more empty dict per connection.
        self.open_kwargs = kwargs or self.path_kwargs
        request = self.request
        headers = request.headers
        # The fields are read from the parsed headers' dict when they are
        # the server's own HTTPHeaders (what get() returns, a fifth of the
        # cost of the call each).
        fields = fields_of(headers) if type(headers) is HTTPHeaders else None
        # What HTTPHeaders.get(name) gives, from that dict, is
        #     None if (v := fields.get(name)) is None else ",".join(v)
        # (a one-value list's join is its value itself), written where it is
        # read below and in get_websocket_protocol: a call fewer per field.
        if request.version == "HTTP/1.0":
            # RFC 6455 section 4.1: the upgrade request's "HTTP version MUST
            # be at least 1.1" (HTTP/1.0 has no Upgrade mechanism).
            self.set_status(400)
            self.finish("A WebSocket handshake needs HTTP/1.1.")
            return
        # Section 4.2.1; the order of checks follows the statuses callers see.
        upgrade = (
            headers.get("Upgrade")
            if fields is None
            else (None if (v := fields.get("Upgrade")) is None else ",".join(v))
        )
        if (upgrade or "").lower() != "websocket":
            self.set_status(400)
            self.finish('Can "Upgrade" only to "WebSocket".')
            return
        tunnel = False
        connection = (
            headers.get("Connection")
            if fields is None
            else (None if (v := fields.get("Connection")) is None else ",".join(v))
        ) or ""
        connection = connection.lower()
        if connection != "upgrade" and "upgrade" not in [t.strip() for t in connection.split(",")]:
            # Over HTTP/2 and HTTP/3 (RFC 8441 §5, RFC 9220) an extended
            # CONNECT's :protocol says it (its driver presents it as
            # Upgrade: websocket), and there is no Connection or
            # Sec-WebSocket-Key.
            tunnel = (
                request.method == "CONNECT"
                and getattr(request.connection, "protocol", None) == "websocket"
            )
            if not tunnel:
                self.set_status(400)
                self.finish('"Connection" must be "Upgrade".')
                return
        # Cross-origin protection, always on for WebSockets (browsers apply
        # no same-origin policy to them): the browser's Sec-Fetch-Site
        # decides when it sent one; without it, an Origin naming this Host
        # passes. Only a request that looks cross-origin is put to
        # check_origin, which runs here, after prepare(), so that an
        # override may use what prepare() set up (a user).
        if fields is None:
            site = headers.get("Sec-Fetch-Site")
            origin = headers.get("Origin")
            host = headers.get("Host")
        else:
            site = None if (v := fields.get("Sec-Fetch-Site")) is None else ",".join(v)
            origin = None if (v := fields.get("Origin")) is None else ",".join(v)
            host = None if (v := fields.get("Host")) is None else ",".join(v)
        if site is None:
            refused = (
                origin is not None
                and not origin_names_host(origin, host)
                and not self.check_origin(origin)
            )
        else:
            refused = site not in _SAME_SITES and not (origin and self.check_origin(origin))
        if refused:
            self.set_status(403)
            self.finish("Cross origin websockets not allowed")
            return
        protocol = self.get_websocket_protocol()
        if protocol is None:
            self.set_status(426)
            self.set_header("Sec-WebSocket-Version", "13")
            self.finish()
            return
        self.ws_connection = protocol
        # (The acceptance follows here, not in a coroutine of its own: one
        # coroutine object fewer per handshake.)
        try:
            # get() has checked the method, Upgrade, Connection and (through
            # get_websocket_protocol) the version, unless a subclass changed
            # those: the version is checked again, the key here.
            if fields is None:
                version = headers.get("Sec-WebSocket-Version")
                key = headers.get("Sec-WebSocket-Key")
            else:
                version = (
                    None if (v := fields.get("Sec-Websocket-Version")) is None else ",".join(v)
                )
                key = None if (v := fields.get("Sec-Websocket-Key")) is None else ",".join(v)
            if (version or "").strip() != _ws.VERSION:
                key = _ws.check_request(request.method or "", headers)
            elif tunnel:
                key = ""  # RFC 8441 §5: no Sec-WebSocket-Key over HTTP/2
            else:
                key = _ws.check_key(key)
        except _ws.HandshakeError as exc:
            self.ws_connection = None
            self.set_status(exc.status_hint)
            for name, value in exc.headers:
                self.set_header(name, value)
            self.finish(str(exc))
            return
        cls = type(self)
        traits = self._traits
        # The hooks in Tornado's order: get_compression_options, then
        # select_subprotocol (a handler may log them, or let the first
        # prepare what the second reads).
        extension_header: Optional[str] = None
        extension: Optional[_ws.PerMessageDeflate] = None
        if traits.get_compression_options:
            # (The stock hook returns None: no compression.)
            options = self.get_compression_options()
            offer = (
                headers.get("Sec-WebSocket-Extensions")
                if fields is None
                else (
                    None if (v := fields.get("Sec-Websocket-Extensions")) is None else ",".join(v)
                )
            )
            if options is not None and offer:
                accepted = _ws.server_accept(offer, options)
                if accepted is not None:
                    extension_header, extension = accepted
        offer = (
            headers.get("Sec-WebSocket-Protocol")
            if fields is None
            else (None if (v := fields.get("Sec-Websocket-Protocol")) is None else ",".join(v))
        )
        selected: Optional[str] = None
        if offer or traits.select_subprotocol:
            # (The stock hook chooses none: not called when nothing is offered.)
            offered = _ws.parse_subprotocols(offer)
            selected = self.select_subprotocol(offered)
            if selected is not None and selected not in offered:
                raise ValueError(
                    f"select_subprotocol returned {selected!r}, which the client did not offer"
                )
        if tunnel:
            self._write_200(selected, extension_header)
        else:
            self._write_101(key, selected, extension_header)
        stream = self.detach()
        self._upgraded = True
        # An idle connection need not keep what the 101 sent (~700 bytes).
        self._headers = _SPENT_HEADERS
        self._write_buffer = _SPENT_OUTPUT
        protocol.selected_subprotocol = selected
        protocol.start(stream, _ws.WSConnection(False, extension, protocol.max_message_size))
        # The context open()'s coroutine runs in, if it has one: reading
        # starts in it, so that what open() set in context variables is seen
        # by on_message() and on_close(), as where open() is awaited in the
        # request's own Task.
        opened_in: Optional[contextvars.Context] = None
        try:
            result = self.open(*self.open_args, **self.open_kwargs)
            if result is not None:
                if self._outside:
                    # A first step outside a Task (see
                    # RequestHandler._step_at_once): asks for its Task now.
                    await self._into_task()
                if asyncio.iscoroutine(result):
                    # Run as a task of its own, so that a connection lost
                    # while open() waits can cancel it (on_ws_connection_close):
                    # its cleanup then runs while the loop is alive, instead of
                    # a coroutine left pending forever.
                    opened_in = contextvars.copy_context()
                    loop = asyncio.get_running_loop()
                    opening = self._opening = loop.create_task(result, context=opened_in)
                    try:
                        await opening
                    except asyncio.CancelledError:
                        if opening.cancelled() and self._open_abandoned:
                            return
                        raise
                    finally:
                        self._opening = None
                else:
                    await result
        except Exception:
            self.log_exception(*sys.exc_info())
            # A connection whose open() failed never opened: on_close() is
            # not called for it (as on Tornado), so that it need not undo
            # what open() did not get to do.
            self._on_close_called = True
            protocol._abort()
            return
        # open() has read what it needed of the request: pack the rest.
        release_request(request)
        if cls._lazy_arguments:
            release_arguments(self)
        if opened_in is None:
            protocol.start_reading()
        else:
            opened_in.run(protocol.start_reading)

    def _watch_first_wait(self, awaited: Any) -> Any:
        # The stock get() of an HTTP/1.1 upgrade waits only after its 101,
        # on what open() returned: the exchange is done and detached then,
        # and a close reaches this handler through its WebSocket protocol
        # (on_ws_connection_close), not through the close watch that
        # RequestHandler sets after a first step that waits (a loop
        # callback per handshake on 3.11: callgrind_handshake.py). Anything
        # else awaited here (a prepare(), a subclass's get(), an extended
        # CONNECT's stream) is watched as usual.
        if self._is_stock_upgrade(awaited):
            return awaited
        return super()._watch_first_wait(awaited)

    def _into_task_for(self, awaited: Any) -> Any:
        # The stock get() of an HTTP/1.1 upgrade asks for its Task itself,
        # only if open() returns something to await (AT_ONCE_UNLESS): a
        # handler whose open() is a plain function opens without a Task.
        if self._is_stock_upgrade(awaited):
            return NO_WAIT
        return super()._into_task_for(awaited)

    def _is_stock_upgrade(self, awaited: Any) -> bool:
        # Whether ``awaited`` is the stock get()'s coroutine for an HTTP/1.1
        # upgrade (not a subclass's get(), nor an extended CONNECT's).
        return (
            type(awaited) is CoroutineType
            and awaited.cr_code is _STOCK_GET_CODE
            and self.request.method == "GET"
        )

    def _write_101(self, key: str, subprotocol: Optional[str], extensions: Optional[str]) -> None:
        # RFC 6455 section 4.2.2: the 101 with the handshake's headers, after
        # what the application set (set_default_headers, cookies), logged
        # and on_finish()ed as any response. Unless a subclass changed how
        # headers are set, they go straight into the response's fields (the
        # values are ours: base64 and tokens) instead of through set_header.
        headers = self._headers
        traits = self._traits
        if type(headers) is _ResponseHeaders and not (traits.set_header or traits.set_status):
            as_list = fields_of(headers)
            # (Shared value lists, as the default fields': replaced, never
            # changed in place; see _ResponseHeaders.)
            as_list["Upgrade"] = _UPGRADE_VALUES
            as_list["Connection"] = _CONNECTION_VALUES
            as_list["Sec-Websocket-Accept"] = [_ws.accept_key(key)]
            if subprotocol:
                as_list["Sec-Websocket-Protocol"] = [subprotocol]
            if extensions:
                as_list["Sec-Websocket-Extensions"] = [extensions]
            self._status_code = 101
            self._reason = _SWITCHING
        else:
            for name, value in _ws.server_headers(key, subprotocol, extensions):
                self.set_header(name, value)
            self.set_status(101)
        # Ended as any response, by finish() (which drops Content-Type and
        # the other representation headers of a 1xx answer). The stock one,
        # refused once upgraded (the handler is not yet), is the base
        # class's: called without the refusal's frame.
        if traits.finish:
            self.finish()
        else:
            RequestHandler.finish(self)

    def _write_200(self, subprotocol: Optional[str], extensions: Optional[str]) -> None:
        # RFC 8441 §5: a 2xx answers the extended CONNECT, with the
        # negotiated subprotocol and extensions and none of the 101's
        # upgrade fields; HTTP/2 leaves out its Content-Length (RFC 9110
        # §9.3.6). No representation to describe: no Content-Type.
        self.clear_header("Content-Type")
        if subprotocol:
            self.set_header("Sec-WebSocket-Protocol", subprotocol)
        if extensions:
            self.set_header("Sec-WebSocket-Extensions", extensions)
        self.set_status(200)
        if self._traits.finish:  # (as in _write_101)
            self.finish()
        else:
            RequestHandler.finish(self)

    def _start(self, *args: Any, **kwargs: Any) -> None:
        request = self.request
        method = request.method
        if method == "GET":
            # The upgrade's GET without path arguments or a body: the base
            # class's checks have nothing to do (its _execute skips them
            # unless _start is overridden), and a handshake is a hot path.
            if not (args or kwargs or request.body) and "GET" in self.SUPPORTED_METHODS:
                return
        elif method == "CONNECT" and getattr(request.connection, "protocol", None):
            # RFC 8441: an extended CONNECT opens a WebSocket over HTTP/2,
            # and get() answers it as it answers the HTTP/1.1 upgrade's GET
            # (a subclass's authentication check in get() runs for both).
            # Allowed on this instance only: the class keeps Tornado's
            # SUPPORTED_METHODS and no connect() method, as Jupyter Server
            # audits every method named after SUPPORTED_METHODS for its
            # authentication decorators and refuses to start otherwise.
            # (A CONNECT without :protocol stays a 405.)
            self.SUPPORTED_METHODS = (*self.SUPPORTED_METHODS, "CONNECT")
            vars(self)["connect"] = self.get
        super()._start(*args, **kwargs)

    def check_xsrf_cookie(self) -> None:
        """Not for the handshake: `check_origin` checks an extended CONNECT
        (RFC 8441) as it checks the HTTP/1.1 upgrade's GET."""
        if self.request.method != "CONNECT":
            super().check_xsrf_cookie()

    def _check_cross_origin(self) -> None:
        # As check_xsrf_cookie: check_origin decides for the handshake.
        if self.request.method != "CONNECT":
            super()._check_cross_origin()

    def get_websocket_protocol(self) -> Optional[WebSocketProtocol13]:
        """The protocol for this request's ``Sec-WebSocket-Version`` (only 13), or None."""
        headers = self.request.headers
        if type(headers) is HTTPHeaders:
            version = (
                None
                if (v := fields_of(headers).get("Sec-Websocket-Version")) is None
                else ",".join(v)
            )
        else:
            version = headers.get("Sec-WebSocket-Version")
        if (version or "").strip() != "13":
            return None
        if self._traits.params:
            # A subclass's ping_interval, ping_timeout or max_message_size
            # property decides, as on Tornado (the stock ones read the
            # settings, as below).
            return WebSocketProtocol13(
                self, False, self.ping_interval, self.ping_timeout, self.max_message_size
            )
        settings = self.application.settings
        return WebSocketProtocol13(
            self,
            False,
            settings.get("websocket_ping_interval"),
            settings.get("websocket_ping_timeout"),
            settings.get("websocket_max_message_size", _DEFAULT_MAX_MESSAGE_SIZE),
        )

    @property
    def ping_interval(self) -> Optional[float]:
        """The ``websocket_ping_interval`` setting."""
        # (No cast(): a call in the pure build, per handshake.)
        value: Optional[float] = self.settings.get("websocket_ping_interval")
        return value

    @property
    def ping_timeout(self) -> Optional[float]:
        """The ``websocket_ping_timeout`` setting."""
        # (No cast(): a call in the pure build, per handshake.)
        value: Optional[float] = self.settings.get("websocket_ping_timeout")
        return value

    @property
    def max_message_size(self) -> int:
        """The largest message accepted (``websocket_max_message_size``, 10 MiB by default)."""
        value: int = self.settings.get("websocket_max_message_size", _DEFAULT_MAX_MESSAGE_SIZE)
        return value

    # -- HTTP methods, refused after the upgrade

    write = _refused_once_upgraded(RequestHandler.write)
    redirect = _refused_once_upgraded(RequestHandler.redirect)
    set_header = _refused_once_upgraded(RequestHandler.set_header)
    set_cookie = _refused_once_upgraded(RequestHandler.set_cookie)
    set_status = _refused_once_upgraded(RequestHandler.set_status)
    finish = _refused_once_upgraded(RequestHandler.finish)

    def add_header(self, name: str, value: Any) -> None:
        # Not refused (Tornado's is not), and as before the upgrade's
        # headers went nowhere: into headers of the handler's own.
        if self._headers is _SPENT_HEADERS:
            self._headers = _ResponseHeaders()
        super().add_header(name, value)

    def flush(self, include_footers: bool = False) -> Future[None]:
        if self._upgraded:
            raise RuntimeError(_NOT_SUPPORTED)
        if self._base_next:
            return RequestHandler.flush(self, include_footers)
        return super().flush(include_footers)

    # -- application hooks

    def open(self, *args: Any, **kwargs: Any) -> Optional[Awaitable[None]]:
        """Called when the WebSocket is open, with the URL's path arguments; may be a coroutine."""
        return None

    def on_message(self, message: MessageType) -> Optional[Awaitable[None]]:
        """Called with each message (``str`` for text, ``bytes`` for binary); may be a coroutine."""
        raise NotImplementedError()

    def on_ping(self, data: bytes) -> None:
        """Called with the payload of each ping (it is answered automatically)."""

    def on_pong(self, data: bytes) -> None:
        """Called with the payload of each pong."""

    def on_close(self) -> None:
        """Called once when the WebSocket closes; see `~squall.websocket.WebSocketClientConnection.close_code` and `~squall.websocket.WebSocketClientConnection.close_reason`."""

    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        """Chooses one of the client's subprotocols (or None, the default).

        Args:
            subprotocols: the offered subprotocols, in the client's order
                (empty when the client offered none).
        """
        return None

    @property
    def selected_subprotocol(self) -> Optional[str]:
        """The subprotocol chosen by `select_subprotocol`, once open."""
        assert self.ws_connection is not None
        return self.ws_connection.selected_subprotocol

    def get_compression_options(self) -> Optional[dict[str, Any]]:
        """Compression options to enable permessage-deflate; None (the default) disables it.

        An empty dict enables it with defaults; keys: ``compression_level``,
        ``mem_level``, ``server_no_context_takeover``,
        ``client_no_context_takeover``, ``server_max_window_bits``,
        ``client_max_window_bits``.
        """
        return None

    def check_origin(self, origin: str) -> bool:
        """Whether to accept a WebSocket from ``origin``, a request that
        looks cross-origin.

        Not asked for one the browser says is same-origin (``Sec-Fetch-Site``
        ``same-origin`` or ``none``), nor, without that header, for one
        whose ``Origin`` names this request's ``Host``: those are accepted
        first. A ``Sec-Fetch-Site`` of another value with no ``Origin`` is
        refused without asking. Called after
        `~squall.web.RequestHandler.prepare`.

        By default, `~squall.web.RequestHandler.check_trusted_origin` (the
        ``trusted_origins`` setting). Override to accept other origins (then
        authenticate their connections some other way than by cookie).
        """
        return self.check_trusted_origin(origin)

    # -- sending

    def write_message(
        self, message: Union[str, bytes, dict[str, Any]], binary: bool = False
    ) -> Future[None]:
        """Sends a message (a dict as JSON); binary sends a binary message.

        Returns:
            A future resolved once the message is written out.

        Raises:
            WebSocketClosedError: the connection is closed.
        """
        protocol = self.ws_connection
        if protocol is None:
            raise WebSocketClosedError()
        # The loop over subscribers that programs write: while the
        # connection has a sink (open, uncompressed, not paused, not inside
        # its own callbacks, no close sent or received: see
        # WebSocketProtocol13._sink), the frame goes straight to it, as
        # broadcast() sends it, and, as there, is not added to the
        # connection's tallies (_message_bytes_out and _wire_bytes_out):
        # nothing of the connection's but the sink is read. Otherwise (or
        # for another protocol class: a subclass's write_message, a test's
        # mock) the protocol's write_message, which refuses it once closing.
        sink = protocol._sink if type(protocol) is WebSocketProtocol13 else None
        if sink is not None and (type(message) is str or type(message) is bytes):
            try:
                sink.write(_ws.server_frame(message, binary))
                return protocol._done
            except RuntimeError:
                pass  # a transport closed under a stream not told yet
        return protocol.write_message(message, binary)

    def ping(self, data: Union[str, bytes] = b"") -> None:
        """Sends a ping with ``data`` (at most 125 bytes).

        Raises:
            WebSocketClosedError: the connection is closed.
        """
        protocol = self.ws_connection
        if protocol is None or protocol.is_closing():
            raise WebSocketClosedError()
        protocol.write_ping(utf8(data))

    def close(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Closes the WebSocket, optionally with a close code and reason.

        ``ws_connection`` is None from here on, as on Tornado: the closing
        handshake goes on without the handler (its protocol still calls
        `on_close` when it ends) and `write_message` raises
        `WebSocketClosedError`.
        """
        protocol = self.ws_connection
        if protocol is not None:
            protocol.close(code, reason)
            self.ws_connection = None

    def set_nodelay(self, value: bool) -> None:
        """Sets TCP_NODELAY: send small messages at once instead of coalescing them."""
        protocol = self.ws_connection
        assert protocol is not None, "set_nodelay needs an open WebSocket"
        protocol.set_nodelay(value)

    # -- connection end

    def on_ws_connection_close(
        self, close_code: Optional[int] = None, close_reason: Optional[str] = None
    ) -> None:
        self.close_code = close_code
        self.close_reason = close_reason
        self.ws_connection = None
        opening = self._opening
        if opening is not None and not opening.done():
            # The connection is gone before open() finished: nothing it
            # prepares can be used; end it now (Tornado lets it run on).
            self._open_abandoned = True
            opening.cancel()
        if not self._on_close_called:
            self._on_close_called = True
            try:
                self.on_close()
            except Exception:
                # Reported as any error of the handler's (Tornado's on_close
                # runs in the request's coroutine): through log_exception,
                # which applications override to report errors.
                self.log_exception(*sys.exc_info())

    def _close_through_on_connection_close(
        self, close_code: Optional[int] = None, close_reason: Optional[str] = None
    ) -> None:
        # on_ws_connection_close of a class that overrides on_connection_close
        # (see __init_subclass__): as on Tornado, the WebSocket's end calls
        # on_connection_close, once, with close_code and close_reason set and
        # ws_connection None; the stock one it chains to calls on_close. Not
        # for a WebSocket whose open() failed (nor after on_close): it
        # never opened, and Tornado calls neither.
        if self._on_close_called:
            WebSocketHandler.on_ws_connection_close(self, close_code, close_reason)
            return
        self.close_code = close_code
        self.close_reason = close_reason
        self.ws_connection = None
        opening = self._opening
        if opening is not None and not opening.done():
            self._open_abandoned = True
            opening.cancel()
        try:
            self.on_connection_close()
        except Exception:
            self.log_exception(*sys.exc_info())

    def on_connection_close(self) -> None:
        """Called when the connection closes: before the upgrade finished,
        and, in a class that overrides it, when the WebSocket closes (then
        ``close_code`` and ``close_reason`` are set, and the stock method,
        called through ``super()``, calls `on_close`)."""
        protocol = self.ws_connection
        if protocol is not None:
            protocol.on_connection_close()
        elif not self._on_close_called:
            self._on_close_called = True
            self.on_close()

    def send_error(self, *args: Any, **kwargs: Any) -> None:
        """After the upgrade there is no HTTP response to send: close the connection."""
        protocol = self.ws_connection
        if protocol is not None and protocol.stream is not None:
            protocol._abort()
            return
        super().send_error(*args, **kwargs)


# What the stock get()'s coroutine runs (see _watch_first_wait).
_STOCK_GET_CODE = WebSocketHandler.get.__code__
# A handler whose open() is a plain function answers its upgrade outside a
# Task (squall.web._delegate's plans).
AT_ONCE_UNLESS[_STOCK_GET_CODE] = "open"

# The handshake's hooks as defined here (see get, _write_101,
# get_websocket_protocol); RequestHandler's stay RequestHandler's.
declare(WebSocketTraits, WebSocketHandler)

# The compiled build's write_message (squall._wswrite): the loop programs
# write over their subscribers, handler by handler, sent without an
# interpreted frame while the connection's sink is set; every other case
# through the method above, whose outcome it keeps. The pure build installs
# that method itself.
WebSocketHandler.write_message = write_method(  # type: ignore[method-assign]
    WebSocketHandler.__dict__["write_message"], WebSocketProtocol13
)
