"""`Application`: the routes and settings of a web application, and its request delegate."""

from __future__ import annotations

import importlib.util
import re
import socket
import types
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Optional

from squall import httputil
from squall.log import app_log
from squall.netutil import _DEFAULT_BACKLOG
from squall.routing import (
    AnyMatches,
    DefaultHostMatches,
    HostMatches,
    Matcher,
    PathMatches,
    ReversibleRouter,
    ReversibleRuleRouter,
    Rule,
    _DefaultMessageDelegate,
    _RuleLike,
)

# _HandlerDelegate is re-exported: squall.web and tests import it from here.
from squall.web._delegate import _bind, _for_handler, new_delegate
from squall.web._delegate import _HandlerDelegate as _HandlerDelegate
from squall.web._records import web as _records
from squall.web.handler import RequestHandler, _stock_execute_code
from squall.web.ui import TemplateModule, UIModule, _linkify, _xsrf_form_html

if TYPE_CHECKING:
    from squall.httpserver import HTTPServer  # type: ignore[import-not-found, unused-ignore]
    from squall.web.transforms import OutputTransform

__all__ = ["Application"]


class _ApplicationRouter(ReversibleRuleRouter):
    # A rule router whose RequestHandler targets become handler delegates of
    # the application, and whose list targets become nested routers.

    def __init__(self, application: Application, rules: Optional[list[_RuleLike]] = None) -> None:
        self.application = application
        # Literal paths that no earlier rule can match (each earlier rule a
        # literal or a pattern of PathMatches' own, none matching the path)
        # and whose target is a RequestHandler that does not stream its
        # body (that one's delegate differs): path -> (class, initialize kwargs).
        self._direct: dict[str, tuple[type[RequestHandler], Optional[dict[str, Any]]]] = {}
        # Whether no rule of this router can match a path (`matches_no_rule`),
        # for the direct paths of the application's wildcard router only.
        self._unmatched: dict[str, bool] = {}
        super().__init__(rules)

    def _reindex(self) -> None:
        super()._reindex()
        direct = {}
        if (
            type(self).get_target_delegate is _ApplicationRouter.get_target_delegate
            and type(self.application).get_handler_delegate is _stock_get_handler_delegate
        ):
            for path, index in self._literals.items():
                rule = self._rules[index]
                target = rule.target
                if (
                    isinstance(target, type)
                    and issubclass(target, RequestHandler)
                    and not target._stream_request_body
                    and not self._shadowed(path, index)
                ):
                    direct[path] = (target, rule.target_kwargs or None)
        self._direct = direct
        self._unmatched = {}

    def _shadowed(self, path: str, index: int) -> bool:
        # Whether a rule before ``index`` that is not a literal may match ``path``.
        for other_index, rule in self._others:
            if other_index > index:
                return False
            if _may_match(rule.matcher, path):
                return True
        return False

    def matches_no_rule(self, path: str) -> bool:
        """Whether no rule of this router can match a request for ``path``,
        whatever else the request holds. Asked only for the direct paths of
        the application's wildcard router, so the answers kept are few."""
        if self._rules.stale:
            self._reindex()
        unmatched = self._unmatched.get(path)
        if unmatched is None:
            unmatched = not any(_may_match(rule.matcher, path) for rule in self._rules)
            self._unmatched[path] = unmatched
        return unmatched

    def direct_target(
        self, path: str
    ) -> Optional[tuple[type[RequestHandler], Optional[dict[str, Any]]]]:
        """The handler class (and its initialize keyword arguments) that the
        literal ``path`` routes to directly, or None: the path is not a
        literal route, or its target is not a plain RequestHandler."""
        if self._rules.stale:
            self._reindex()
        return self._direct.get(path)

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> Optional[httputil.HTTPMessageDelegate]:
        hit = self.direct_target(request.path)
        if hit is not None and (
            type(self.application).get_handler_delegate is _stock_get_handler_delegate
        ):
            # What the general path would produce, without its calls.
            return _for_handler(self.application, request, hit[0], hit[1], None, None)
        return super().find_handler(request, **kwargs)

    def process_rule(self, rule: Rule) -> Rule:
        rule = super().process_rule(rule)
        if isinstance(rule.target, (list, tuple)):
            rule.target = _ApplicationRouter(self.application, list(rule.target))
        return rule

    def get_target_delegate(
        self, target: Any, request: httputil.HTTPServerRequest, **target_params: Any
    ) -> Optional[httputil.HTTPMessageDelegate]:
        if isinstance(target, type) and issubclass(target, RequestHandler):
            return self.application.get_handler_delegate(request, target, **target_params)
        return super().get_target_delegate(target, request, **target_params)


def _may_match(matcher: Matcher, path: str) -> bool:
    """Whether a rule's ``matcher`` could match a request for ``path``: not
    when it is PathMatches' own and its path does not match (it reads the
    request's path and nothing else); any other matcher may."""
    if type(matcher) is not PathMatches:
        return True
    path_matches: PathMatches = matcher
    # A literal's pattern is the literal, anchored: it matches it too.
    return path_matches.regex.match(path) is not None


def _start_request(
    self: Application, server_conn: object, request_conn: httputil.HTTPConnection
) -> httputil.HTTPMessageDelegate:
    """The delegate for a connection's next request; it routes the request once its head is in."""
    return _HandlerDelegate(self, server_conn, request_conn)


_start_request.__name__ = "start_request"
_start_request.__qualname__ = "Application.start_request"


class _StartRequest:
    # Application.start_request. Read from an application, as a server does
    # once per connection, it is new_delegate bound to the application (a
    # method object: one object per connection, where a partial made three,
    # two of them for the cycle collector to track, alive while a crowd of
    # handshakes waits for its Tasks: callgrind_handshake.py --census): each
    # request then builds its delegate without a Python frame of ours. Read
    # from the class, it is the function itself (signature, documentation,
    # Application.start_request(app, ...)). A subclass's own start_request,
    # and an application's instance attribute, take precedence as usual.
    def __get__(self, obj: Optional[Application], objtype: Optional[type] = None) -> Any:
        if obj is None:
            return _start_request
        return types.MethodType(new_delegate, obj)


class Application(ReversibleRouter):
    """A collection of request handlers that make up a web application.

    Pass it to an `.HTTPServer` (or call `listen`). Each route is a `.Rule`,
    a `.URLSpec` or a tuple ``(pattern, handler[, kwargs[, name]])``; the
    first that matches the request handles it.

    Args:
        handlers: the routes of every host (add host-specific ones with
            `add_handlers`).
        default_host: the host whose routes `.DefaultHostMatches` serves to
            requests without ``X-Real-Ip``.
        transforms: output transforms (classes); by default gzip when the
            ``compress_response`` setting is on.
        settings: ``debug``, ``template_path``, ``static_path``,
            ``cookie_secret``, ``login_url``, ``xsrf_cookies``, and the rest
            described in the documentation; kept in ``settings``.
    """

    def __init__(
        self,
        handlers: Optional[list[_RuleLike]] = None,
        default_host: Optional[str] = None,
        transforms: Optional[list[type[OutputTransform]]] = None,
        **settings: Any,
    ) -> None:
        if transforms is None:
            self.transforms: list[type[OutputTransform]] = []
            if settings.get("compress_response") or settings.get("gzip"):
                from squall.web.transforms import GZipContentEncoding

                self.transforms.append(GZipContentEncoding.from_settings(settings))
        else:
            self.transforms = transforms
        self.default_host = default_host
        self.settings = settings
        self.ui_modules: dict[str, Any] = {}
        self.ui_methods: dict[str, Any] = {}
        self._load_default_ui_modules()
        self._load_ui_modules(settings.get("ui_modules", {}))
        self._load_ui_methods(settings.get("ui_methods", {}))
        if settings.get("static_path"):
            handlers = list(handlers or [])
            static_url_prefix = settings.get("static_url_prefix", "/static/")
            static_handler_class = settings.get("static_handler_class")
            if static_handler_class is None:
                from squall.web.static import StaticFileHandler

                static_handler_class = StaticFileHandler
            static_handler_args = dict(settings.get("static_handler_args", {}))
            static_handler_args["path"] = settings["static_path"]
            for pattern in (
                re.escape(static_url_prefix) + r"(.*)",
                r"/(favicon\.ico)",
                r"/(robots\.txt)",
            ):
                handlers.insert(0, (pattern, static_handler_class, static_handler_args))
        if self.settings.get("debug"):
            self.settings.setdefault("autoreload", True)
            self.settings.setdefault("compiled_template_cache", False)
            self.settings.setdefault("static_hash_cache", False)
            self.settings.setdefault("serve_traceback", True)
        self.wildcard_router = _ApplicationRouter(self, handlers)
        self.default_router = _ApplicationRouter(self, [Rule(AnyMatches(), self.wildcard_router)])
        if self.settings.get("autoreload"):
            self._start_autoreload()

    def _start_autoreload(self) -> None:
        # squall.autoreload may not exist yet in every build; debug mode
        # still works without it.
        if importlib.util.find_spec("squall.autoreload") is None:
            return
        autoreload = importlib.import_module("squall.autoreload")
        autoreload.start()

    def listen(
        self,
        port: int,
        address: Optional[str] = None,
        *,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        backlog: int = _DEFAULT_BACKLOG,
        flags: Optional[int] = None,
        reuse_port: bool = False,
        **kwargs: Any,
    ) -> HTTPServer:
        """Starts an `.HTTPServer` for this application on ``port``.

        Args:
            port: the port (0 for any free one).
            address: the address to bind; all interfaces by default.
            family, backlog, flags, reuse_port: as for `.netutil.bind_sockets`.
            kwargs: `.HTTPServer` options (``xheaders``, ``ssl_options``, ...).

        Returns:
            The server, already listening; the IOLoop must be started to serve.
        """
        from squall.httpserver import HTTPServer

        server = HTTPServer(self, **kwargs)
        listen_kwargs: dict[str, Any] = {
            "reuse_port": reuse_port,
            "family": family,
            "backlog": backlog,
        }
        if flags is not None:
            listen_kwargs["flags"] = flags
        server.listen(port, address=address or "", **listen_kwargs)
        return server

    def add_handlers(self, host_pattern: str, host_handlers: list[_RuleLike]) -> None:
        """Adds routes for hosts matching ``host_pattern`` (a regex).

        They are tried before the routes given to the constructor, and in the
        order the calls were made.
        """
        host_matcher = HostMatches(host_pattern)
        rule = Rule(host_matcher, _ApplicationRouter(self, host_handlers))
        self.default_router.rules.insert(-1, rule)
        if self.default_host is not None:
            self.wildcard_router.add_rules(
                [(DefaultHostMatches(self, host_matcher.host_pattern), host_handlers)]
            )

    def add_transform(self, transform_class: type[OutputTransform]) -> None:
        """Adds an output transform (a class, instantiated for each request)."""
        self.transforms.append(transform_class)

    def _load_default_ui_modules(self) -> None:
        self.ui_modules["linkify"] = _linkify
        self.ui_modules["xsrf_form_html"] = _xsrf_form_html
        self.ui_modules["Template"] = TemplateModule

    def _load_ui_methods(self, methods: Any) -> None:
        if isinstance(methods, types.ModuleType):
            self._load_ui_methods({n: getattr(methods, n) for n in dir(methods)})
        elif isinstance(methods, list):
            for item in methods:
                self._load_ui_methods(item)
        else:
            for name, method in methods.items():
                if not name.startswith("_") and callable(method) and name[0].lower() == name[0]:
                    self.ui_methods[name] = method

    def _load_ui_modules(self, modules: Any) -> None:
        if isinstance(modules, types.ModuleType):
            self._load_ui_modules({n: getattr(modules, n) for n in dir(modules)})
        elif isinstance(modules, list):
            for item in modules:
                self._load_ui_modules(item)
        else:
            for name, cls in modules.items():
                if isinstance(cls, type) and issubclass(cls, UIModule):
                    self.ui_modules[name] = cls

    def __call__(self, request: httputil.HTTPServerRequest) -> Optional[Awaitable[None]]:
        """Handles a complete request (the old ``request_callback`` interface)."""
        dispatcher = self.find_handler(request)
        return dispatcher.execute()

    if TYPE_CHECKING:

        def start_request(
            self, server_conn: object, request_conn: httputil.HTTPConnection
        ) -> httputil.HTTPMessageDelegate:
            """The delegate for a connection's next request."""

    else:
        start_request = _StartRequest()

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> _HandlerDelegate:
        default_router = self.default_router
        if len(default_router._rules) == 1 or self._past_host_rules(request.path):
            # No host-specific routes, or none that can route this path:
            # skip the AnyMatches layer.
            delegate = self.wildcard_router.find_handler(request)
        else:
            delegate = default_router.find_handler(request)
        if delegate is not None:
            return delegate  # type: ignore[return-value]
        return self._unrouted(request)

    def _past_host_rules(self, path: str) -> bool:
        """Whether ``path``, a direct path of the wildcard router, goes past
        every host rule (`add_handlers`) to it: each host's routes can match
        no request for it, whatever the host (Jupyter's extensions add theirs
        for every host; its own routes are in the wildcard router)."""
        wildcard = self.wildcard_router
        if type(wildcard) is not _ApplicationRouter or wildcard.direct_target(path) is None:
            return False
        *hosts, last = self.default_router.rules
        if last.target is not wildcard or type(last.matcher) is not AnyMatches:
            return False
        return all(
            type(rule.matcher) is HostMatches
            and type(rule.target) is _ApplicationRouter
            and rule.target.matches_no_rule(path)
            for rule in hosts
        )

    def _unrouted(self, request: httputil.HTTPServerRequest) -> _HandlerDelegate:
        # The delegate for a request no rule matched.
        if self.settings.get("default_handler_class"):
            return self.get_handler_delegate(
                request,
                self.settings["default_handler_class"],
                self.settings.get("default_handler_args", {}),
            )
        from squall.web.handlers import ErrorHandler

        return self.get_handler_delegate(request, ErrorHandler, {"status_code": 404})

    def get_handler_delegate(
        self,
        request: httputil.HTTPServerRequest,
        target_class: type[RequestHandler],
        target_kwargs: Optional[dict[str, Any]] = None,
        path_args: Optional[list[bytes]] = None,
        path_kwargs: Optional[dict[str, bytes]] = None,
    ) -> _HandlerDelegate:
        """The delegate that runs ``target_class`` for ``request``.

        Args:
            request: the request.
            target_class: the `RequestHandler` subclass.
            target_kwargs: arguments for its ``initialize``.
            path_args: positional arguments for its HTTP method.
            path_kwargs: keyword arguments for its HTTP method.
        """
        return _for_handler(self, request, target_class, target_kwargs, path_args, path_kwargs)

    def reverse_url(self, name: str, *args: Any) -> str:
        """The path of the route named ``name``, its groups filled with ``args``.

        Raises:
            KeyError: if no route has that name.
        """
        reversed_url = self.default_router.reverse_url(name, *args)
        if reversed_url is not None:
            return reversed_url
        raise KeyError(f"{name} not found in named urls")

    def log_request(self, handler: RequestHandler) -> None:
        """Logs a finished request to ``squall.access`` (or calls the ``log_function`` setting).

        Below 400 at INFO, 4xx at WARNING, 5xx at ERROR, as
        ``"<status> <method> <uri> (<ip>) <time>ms"``.
        """
        log_function = self.settings.get("log_function")
        if log_function is not None:
            log_function(handler)
            return
        # get_status() is rarely overridden; read the field when it is not.
        if not handler._traits.get_status:
            status = handler._status_code
        else:
            # Asked as Tornado's log_request asks it (a tracer's wrapper
            # counts the calls): once per comparison that chooses the level
            # (one below 400, two from 400), once more for the line.
            if handler.get_status() >= 400:
                handler.get_status()
            status = handler.get_status()
        # Written from a function of a file named web.py: the record says
        # where as Tornado's does (squall/web/_records/web.py).
        _records.log_request(status, handler)


# Application's own find_handler: any other answer from the class (an
# override, or a wrapper an agent or a profiler put on Application) is called.
_stock_find_handler = Application.find_handler
# And its own get_handler_delegate (the direct routes skip its call).
_stock_get_handler_delegate = Application.get_handler_delegate


def _route_fallback(
    app: Application,
    request: httputil.HTTPServerRequest,
    request_conn: Optional[httputil.HTTPConnection],
    router: Optional[_ApplicationRouter],
) -> httputil.HTTPMessageDelegate:
    """The delegate for a request that no literal route of the application
    serves; ``router``: the one that routes every request, if one does (as
    `squall.web._delegate._HandlerDelegate.headers_received` found)."""
    if router is not None:
        delegate: Optional[httputil.HTTPMessageDelegate] = router.find_handler(request)
        return delegate if delegate is not None else app._unrouted(request)
    delegate = app.find_handler(request)
    if delegate is None:
        # A find_handler of the application's own that found nothing.
        app_log.debug("Delegate for %s %s request not found", request.method, request.path)
        assert request_conn is not None
        return _DefaultMessageDelegate(request_conn)
    return delegate


def _clear_template_loaders() -> None:
    # Debug mode re-reads templates on every request.
    with RequestHandler._template_loader_lock:
        RequestHandler._template_loaders.clear()


_bind(
    _stock_find_handler,
    _stock_get_handler_delegate,
    _ApplicationRouter,
    _route_fallback,
    _clear_template_loaders,
    _stock_execute_code,
)
