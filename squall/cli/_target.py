"""Finding what TARGET is, by shape, and making it something HTTPServer serves."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from squall.cli._options import UsageError
from squall.httputil import HTTPServerConnectionDelegate

__all__ = ["ASGI2Adapter", "Served", "check_importable", "is_asgi2_class", "load", "serve_target"]


class Served:
    """What the worker hands to `HTTPServer`, with its start and stop hooks.

    Attributes:
        kind: ``"squall"``, ``"asgi"`` or ``"wsgi"``.
        callback: the ``request_callback`` for `HTTPServer`.
        startup: awaited before serving (ASGI lifespan), or None.
        shutdown: awaited after the drain (ASGI lifespan), or None.
        app: the object TARGET named (after calling a factory).
    """

    def __init__(
        self,
        kind: str,
        callback: Any,
        app: Any,
        startup: Optional[Callable[[], Awaitable[None]]] = None,
        shutdown: Optional[Callable[[], Awaitable[None]]] = None,
    ) -> None:
        self.kind = kind
        self.callback = callback
        self.app = app
        self.startup = startup
        self.shutdown = shutdown


def _split(spec: str) -> tuple[str, str]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"TARGET {spec!r} must be module:attribute, e.g. myapp.main:app")
    return module_name, attr


def check_importable(spec: str, app_dir: str = ".") -> None:
    """Check, without importing anything, that TARGET's module can be found.

    The runner calls it before it binds or announces anything, so that a
    misspelt target fails first; a module that is found but fails to import,
    or lacks the attribute, is reported when a worker loads it.

    Raises:
        UsageError: a malformed spec, or no such module.
    """
    import importlib.machinery
    import os

    module_name, _ = _split(spec)
    paths = [os.path.abspath(app_dir), *sys.path] if app_dir is not None else list(sys.path)
    search: Optional[list[str]] = paths
    found = ""
    for part in module_name.split("."):
        name = f"{found}.{part}" if found else part
        if name in sys.modules:
            module = sys.modules[name]
            search = list(getattr(module, "__path__", None) or [])
        else:
            # PathFinder looks on disk only: no parent package is imported.
            found_spec = importlib.machinery.PathFinder.find_spec(name, search)
            if found_spec is None and (not found or found in sys.modules):
                # A builtin or frozen module, one a meta path hook provides
                # (an editable install), or one its already imported parent
                # makes (os.path): the full search imports nothing new here.
                try:
                    found_spec = importlib.util.find_spec(name)
                except (ImportError, ValueError):
                    found_spec = None
            if found_spec is None:
                raise UsageError(f"TARGET {spec!r}: no module named {name!r}")
            search = list(found_spec.submodule_search_locations or [])
        found = name


def load(spec: str, app_dir: str = ".") -> Any:
    """Import ``module:attribute`` (the attribute may be dotted).

    Raises:
        UsageError: a malformed spec, a module that does not import, or a
            missing attribute.
    """
    module_name, attr = _split(spec)
    if app_dir is not None:
        import os

        path = os.path.abspath(app_dir)
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(f"TARGET {spec!r}: no module named {exc.name!r}") from None
        if exc.name and exc.name.partition(".")[0] == "tornado":
            raise UsageError(
                f"TARGET {spec!r} imports {exc.name!r}, and 'tornado' is not Squall's here "
                "(SQUALL_TORNADO_ALIAS=0?): set SQUALL_TORNADO_ALIAS=1, or run "
                "python -m squall.compat -m squall run ..."
            ) from None
        raise
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(
                f"TARGET {spec!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    return obj


def _positional(func: Any) -> Optional[tuple[int, int]]:
    """(required, total) positional parameters of ``func``, or None if unknown."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    required = total = 0
    for param in sig.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            total += 1
            if param.default is param.empty:
                required += 1
        elif param.kind is param.VAR_POSITIONAL:
            total += 3
    return required, total


def _call_target(obj: Any) -> Any:
    """The function a call of ``obj`` runs (``__call__`` for instances)."""
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isclass(obj):
        return obj
    return getattr(obj, "__call__", None)  # noqa: B004 - we want the method itself


def _takes(obj: Any, n: int) -> bool:
    shape = _positional(_call_target(obj))
    return shape is not None and shape[0] <= n <= shape[1]


def is_asgi(obj: Any) -> bool:
    """An async callable of (scope, receive, send)."""
    func = _call_target(obj)
    return (
        func is not None
        and not inspect.isclass(obj)
        and inspect.iscoroutinefunction(func)
        and _takes(obj, 3)
    )


def is_wsgi(obj: Any) -> bool:
    """A plain callable of (environ, start_response)."""
    func = _call_target(obj)
    return (
        func is not None
        and not inspect.isclass(obj)
        and not inspect.iscoroutinefunction(func)
        and _takes(obj, 2)
    )


def is_asgi2_class(obj: Any) -> bool:
    """An ASGI 2 application class: made with the scope, its instances
    async callables of (receive, send)."""
    if not inspect.isclass(obj):
        return False
    call = getattr(obj, "__call__", None)  # noqa: B004 - the instances' method
    made = _positional(obj)
    return (
        call is not None
        and inspect.iscoroutinefunction(call)
        and made is not None
        and made[0] <= 1 <= made[1]
        and _takes(call, 3)  # self, receive, send
    )


class ASGI2Adapter:
    """An ASGI 2 application served as ASGI 3.

    ASGI 2 splits the call in two: ``app(scope)`` gives an instance, and
    ``await instance(receive, send)`` runs the connection; ASGI 3 is the one
    call ``app(scope, receive, send)``. The scope says version 2.0, as it
    would to the application under a server of ASGI 2.
    """

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        versions = scope.get("asgi")
        if isinstance(versions, dict):
            versions["version"] = "2.0"
        instance = self.app(scope)
        await instance(receive, send)


def _is_factory(obj: Any) -> bool:
    if not callable(obj) or inspect.isclass(obj):
        return False
    shape = _positional(_call_target(obj))
    return shape is not None and shape[0] == 0


def _describe(obj: Any) -> str:
    if inspect.isfunction(obj):
        shape = _positional(obj)
        n = shape[0] if shape else "?"
        kind = "async function" if inspect.iscoroutinefunction(obj) else "function"
        return f"a {kind} of {n} required argument(s)"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


_EXPECTED = (
    "expected a squall/Tornado Application (or HTTPServerConnectionDelegate), an ASGI app "
    "(async callable of scope, receive, send), a WSGI app (callable of environ, "
    "start_response), or a factory returning one; an ASGI 2 app (a callable of scope "
    "returning an async callable of receive, send) with --interface asgi2"
)


def _async_factory(spec: str) -> str:
    """The error for an async TARGET: most often a program's own ``main()``."""
    module = spec.partition(":")[0]
    return (
        f"TARGET {spec!r} is an async function. squall run serves an application, or a "
        "plain function returning one. If it is a program's own main() that starts its "
        "server (app.listen() inside asyncio.run), run the program instead: "
        f"python -m squall.compat {module.replace('.', '/')}.py"
    )


def serve_target(
    obj: Any,
    spec: str,
    root_path: str = "",
    factory: Optional[bool] = None,
    lifespan: str = "auto",
    ws_max_size: Optional[int] = None,
    ws_ping_interval: Optional[float] = None,
    asgi_wrapper: Optional[Callable[[Any], Any]] = None,
    webtransport: Optional[dict[str, int]] = None,
    interface: str = "auto",
) -> Served:
    """Wrap what TARGET named into something `HTTPServer` serves.

    Args:
        obj: the loaded object.
        spec: TARGET as written, for messages.
        root_path: given to an ASGI app as its ``root_path``.
        factory: True to call ``obj`` first, False never to, None to
            decide by shape (a callable taking no arguments).
        lifespan: an ASGI app's lifespan mode (``auto``, ``on``, ``off``).
        ws_max_size: an ASGI app's largest WebSocket message, if given.
        ws_ping_interval: an ASGI app's WebSocket ping interval, if given.
        asgi_wrapper: applied to an ASGI app (a middleware), if given.
        webtransport: an ASGI app's WebTransport limits (`ASGIServerDelegate`'s
            ``wt_*`` arguments), those given.
        interface: ``asgi2``: ``obj`` (once a factory is called) is an ASGI 2
            app, served through `ASGI2Adapter`; else its shape decides (an
            ASGI 2 class is found by its shape too).

    Raises:
        UsageError: ``obj`` has none of the shapes, or ASGI is unavailable.
    """
    if factory or (factory is None and _is_factory(obj)):
        if inspect.iscoroutinefunction(_call_target(obj)):
            raise UsageError(_async_factory(spec))
        try:
            made = obj()
        except TypeError as exc:
            raise UsageError(f"TARGET {spec!r}: calling the factory failed: {exc}") from None
        if inspect.isawaitable(made):
            close = getattr(made, "close", None)
            if close is not None:
                close()
            raise UsageError(_async_factory(spec))
        return serve_target(
            made,
            spec + "()",
            root_path,
            False,
            lifespan,
            ws_max_size,
            ws_ping_interval,
            asgi_wrapper,
            webtransport,
            interface,
        )
    if isinstance(obj, HTTPServerConnectionDelegate):
        if interface == "asgi2":
            raise UsageError(f"--interface asgi2: TARGET {spec!r} is {_describe(obj)}")
        return Served("squall", obj, obj)
    asgi3 = obj
    if interface == "asgi2" or (interface == "auto" and is_asgi2_class(obj)):
        if not callable(obj):
            raise UsageError(f"--interface asgi2: TARGET {spec!r} is {_describe(obj)}")
        asgi3 = ASGI2Adapter(obj)
    if is_asgi(asgi3):
        try:
            from squall.asgi import ASGIServerDelegate
        except ImportError as exc:
            raise UsageError(
                f"TARGET {spec!r} is an ASGI app, but squall.asgi is not available: {exc}"
            ) from None
        options: dict[str, Any] = {"lifespan": lifespan}
        if ws_max_size is not None:
            options["ws_max_message_size"] = ws_max_size
        if ws_ping_interval is not None:
            options["ws_ping_interval"] = ws_ping_interval or None
        options.update(webtransport or {})
        wrapped = asgi3 if asgi_wrapper is None else asgi_wrapper(asgi3)
        delegate = ASGIServerDelegate(wrapped, root_path=root_path, **options)
        return Served("asgi", delegate, obj, delegate.startup, delegate.shutdown)
    if is_wsgi(obj):
        from squall.wsgi import WSGIContainer

        return Served("wsgi", WSGIContainer(obj), obj)
    raise UsageError(f"TARGET {spec!r} is {_describe(obj)}: {_EXPECTED}")
