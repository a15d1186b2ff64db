"""One program, run under Tornado or Squall: every hook patched every way, at every moment.

    python compat/hooks/program.py FRAMEWORK OUT.json [--only REGEX]

FRAMEWORK is the package to import (``tornado`` or ``squall``); the program
imports nothing else of either. For each case (a hook, a way to patch it, a
moment, a kind of handler) it makes fresh handler classes, an application
and a server on a port of its own, patches the hook at that moment, serves
requests over a raw socket (so that the client is the same under both),
removes the patch and serves once more. It records, per request, which
hooks ran in what order (the patches' wrappers and the application's own
code), whether each saw ``asyncio.current_task()`` as a Task and which
(numbered by first sight in the request), the context variable set in
``prepare()`` (or ``open()``), and the response (status, headers but Date
and Server, body; the message echoed for a WebSocket). compat/hooks/run.py
compares two such files.

Ways: on the framework's class, ``plain`` (a function), ``wraps`` (a
``functools.wraps`` decorator's), ``wrapt`` (``wrapt.FunctionWrapper``),
``mock`` (``unittest.mock.patch.object(..., autospec=True,
side_effect=...)``); on the application's class, ``wrapt-wfw``
(``wrapt.wrap_function_wrapper`` by module path, as agents instrument the
application code their configuration names), ``classdeco`` (a class
decorator's ``functools.wraps`` wrapper), ``mixin`` (the method put on a
mixin the application's class has first); ``instance`` (an attribute of
the live object: the connection, the IOLoop, the application, the
server). Moments: ``before-app`` (before the
application's classes are made), ``before-start`` (before the server
listens), ``after-served`` (after the class served a request). Every case
ends ``removed``: the patch undone, one more request.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import json
import re
import socket
import sys
import types
from collections.abc import Callable
from typing import Any, Optional
from unittest import mock

import wrapt

FW = sys.argv[1]
web: Any = importlib.import_module(f"{FW}.web")
websocket: Any = importlib.import_module(f"{FW}.websocket")
httpserver: Any = importlib.import_module(f"{FW}.httpserver")
ioloop: Any = importlib.import_module(f"{FW}.ioloop")
netutil: Any = importlib.import_module(f"{FW}.netutil")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# The module the application's classes are reached through by path
# (wrapt.wrap_function_wrapper patches by module and dotted name).
apps = types.ModuleType("hooks_apps")
sys.modules["hooks_apps"] = apps


class Recorder:
    """The events of the request being served."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Optional[int], str]] = []
        self.tasks: dict[int, int] = {}
        self.pending: list[asyncio.Future[None]] = []

    def note(self, name: str) -> None:
        task = asyncio.current_task()
        number: Optional[int] = None
        if isinstance(task, asyncio.Task):
            number = self.tasks.setdefault(id(task), len(self.tasks))
        self.events.append((name, number, request_id.get()))

    def take(self) -> dict[str, Any]:
        events, self.events, self.tasks = self.events, [], {}
        return {
            "calls": [name for name, _, _ in events],
            "tasks": [task for _, task, _ in events],
            "context": [value for _, _, value in events],
        }


REC = Recorder()

# -- the application -------------------------------------------------------------------


async def turn() -> None:
    """Waits one loop turn (Tornado's ``gen.moment`` is for ``yield`` only)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_soon(future.set_result, None)
    await future


def make_classes(kind: str) -> dict[str, Any]:
    """Fresh classes for one case: the mixins the ``mixin`` way patches,
    the handlers, the application and the server."""

    class PageMix:
        pass

    class SocketMix:
        pass

    class AppMix:
        pass

    class ServerMix:
        pass

    class Page(PageMix, web.RequestHandler):  # type: ignore[misc, valid-type]
        def prepare(self) -> Any:
            request_id.set("req")
            REC.note("app.prepare")
            instance_patches(self)
            return super().prepare()

        def on_finish(self) -> None:
            REC.note("app.on_finish")
            super().on_finish()

        if kind == "sync":

            def get(self) -> None:
                REC.note("app.get")
                self.work()

        else:

            async def get(self) -> None:
                REC.note("app.get")
                await turn()
                REC.note("app.get.resumed")
                self.work()

        def work(self) -> None:
            loop = ioloop.IOLoop.current()
            for entry in ("add_callback", "spawn_callback"):
                done = asyncio.get_running_loop().create_future()
                REC.pending.append(done)
                getattr(loop, entry)(tagged(entry, done))
            done = asyncio.get_running_loop().create_future()
            ran = asyncio.get_running_loop().create_future()
            REC.pending.append(ran)
            loop.add_future(done, tagged_future("add_future", ran))
            done.set_result(None)
            argument = self.get_argument("a")
            self.set_header("X-Clear", "1")
            self.clear_header("X-Clear")
            self.set_header("X-Status", str(self.get_status()))
            self.write(f"body {argument}")

    class Socket(SocketMix, websocket.WebSocketHandler):  # type: ignore[misc, valid-type]
        if kind == "sync":

            def open(self, *args: Any) -> Any:
                request_id.set("ws")
                REC.note("app.open")
                return super().open(*args)

            def on_message(self, message: Any) -> Any:
                REC.note("app.on_message")
                return self.write_message(message)

        else:

            async def open(self, *args: Any) -> None:
                request_id.set("ws")
                REC.note("app.open")
                await turn()
                REC.note("app.open.resumed")
                super().open(*args)

            async def on_message(self, message: Any) -> None:
                REC.note("app.on_message")
                await turn()
                await self.write_message(message)

        def on_close(self) -> None:
            REC.note("app.on_close")
            super().on_close()
            closed = self.application.settings["closed"]
            if not closed.done():
                closed.set_result(None)

    class App(AppMix, web.Application):  # type: ignore[misc, valid-type]
        pass

    class Server(ServerMix, httpserver.HTTPServer):  # type: ignore[misc, valid-type]
        pass

    classes = {
        "PageMix": PageMix,
        "SocketMix": SocketMix,
        "AppMix": AppMix,
        "ServerMix": ServerMix,
        "Page": Page,
        "Socket": Socket,
        "App": App,
        "Server": Server,
    }
    for name, cls in classes.items():
        setattr(apps, name, cls)
    return classes


def tagged(entry: str, done: asyncio.Future[None]) -> Callable[[], None]:
    def callback() -> None:
        REC.note(f"app.{entry}.ran")
        if not done.done():
            done.set_result(None)

    callback.hooks_tag = entry  # type: ignore[attr-defined]
    return callback


def tagged_future(entry: str, ran: asyncio.Future[None]) -> Callable[[Any], None]:
    def callback(future: Any) -> None:
        REC.note(f"app.{entry}.ran")
        if not ran.done():
            ran.set_result(None)

    callback.hooks_tag = entry  # type: ignore[attr-defined]
    return callback


# -- what is patched -------------------------------------------------------------------

# Family: (the framework's class, the mixin, the application's class).
HOOKS: dict[str, list[str]] = {
    "RequestHandler": [
        "initialize",
        "prepare",
        "on_finish",
        "set_default_headers",
        "get_status",
        "decode_argument",
        "clear_header",
        "write",
        "finish",
        "flush",
        "compute_etag",
        "_execute",
    ],
    "WebSocketHandler": [
        "initialize",
        "prepare",
        "open",
        "on_message",
        "on_close",
        "check_origin",
        "select_subprotocol",
        "get_compression_options",
        "set_default_headers",
        "write_message",
    ],
    "Application": ["find_handler", "get_handler_delegate", "log_request"],
    "HTTPServer": ["start_request"],
    "connection": ["set_close_callback", "finish", "write"],
    "IOLoop": ["add_callback", "spawn_callback", "add_future"],
}
# On a class with an application subclass (framework's class, application's
# class, mixin), and on an object the application gets (connection, IOLoop).
CLASS_WAYS = ["plain", "wraps", "wrapt", "wrapt-wfw", "mock", "mixin", "classdeco"]
OBJECT_WAYS = ["plain", "wraps", "wrapt", "mock", "instance"]
WAYS: dict[str, list[str]] = {
    "RequestHandler": CLASS_WAYS,
    "WebSocketHandler": CLASS_WAYS,
    "Application": [*CLASS_WAYS, "instance"],
    "HTTPServer": [*CLASS_WAYS, "instance"],
    "connection": OBJECT_WAYS,
    "IOLoop": OBJECT_WAYS,
}
MOMENTS = ["before-app", "before-start", "after-served"]
KINDS = ["sync", "async"]

# The application's class of each family (the ``classdeco`` and
# ``wrapt-wfw`` ways patch it; the others patch the framework's class).
APP_CLASSES = {
    "RequestHandler": "Page",
    "WebSocketHandler": "Socket",
    "Application": "App",
    "HTTPServer": "Server",
}

# The live state of the case being run.
STATE: dict[str, Any] = {}


def note_call(family: str, name: str, args: tuple[Any, ...]) -> bool:
    """Records a wrapper's call: always for the handlers', application's and
    server's hooks; for the IOLoop's, only the application's own calls (by
    their tagged callbacks), not the framework's."""
    if family == "IOLoop":
        tag = next((getattr(a, "hooks_tag", None) for a in args if callable(a)), None)
        if tag is None:
            return False
    REC.note(f"wrap.{name}")
    return True


def live_class(family: str) -> Any:
    """The framework's class that holds the family's hooks."""
    if family == "RequestHandler":
        return web.RequestHandler
    if family == "WebSocketHandler":
        return websocket.WebSocketHandler
    if family == "Application":
        return web.Application
    if family == "HTTPServer":
        return httpserver.HTTPServer
    if family == "connection":
        return STATE["connection_class"]
    return type(ioloop.IOLoop.current())


def wrapper_for(family: str, name: str, original: Any, way: str) -> Any:
    if way == "wrapt":

        def around(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            note_call(family, name, args)
            return wrapped(*args, **kwargs)

        return wrapt.FunctionWrapper(original, around)

    def plain(self: Any, *args: Any, **kwargs: Any) -> Any:
        note_call(family, name, args)
        return original(self, *args, **kwargs)

    if way == "wraps" or way == "classdeco":
        return functools.wraps(original)(plain)
    return plain


class Patch:
    """One hook patched one way; `undo` removes it."""

    def __init__(self, family: str, name: str, way: str, classes: dict[str, Any]) -> None:
        self.family, self.name, self.way, self.classes = family, name, way, classes
        self.undo_steps: list[Callable[[], None]] = []

    def apply(self) -> None:
        family, name, way = self.family, self.name, self.way
        if way == "instance":
            STATE["instance_patch"] = self
            if family in ("Application", "HTTPServer", "IOLoop"):
                self.apply_to_instance(STATE["instances"][family])
            return
        if way == "mixin":
            mix = self.classes[APP_CLASSES[family] + "Mix"]
            self.set(mix, name, self.mixin_function(mix))
            return
        if way in ("classdeco", "wrapt-wfw"):
            # The application's own class: a class decorator's wrapper, or
            # wrapt's by module path (as agents instrument application code
            # named in their configuration).
            app_class = APP_CLASSES[family]
            target = self.classes[app_class]
            if way == "classdeco":
                self.set(target, name, wrapper_for(family, name, getattr(target, name), way))
                return

            def around(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                note_call(family, name, args)
                return wrapped(*args, **kwargs)

            had = name in target.__dict__
            before = target.__dict__.get(name)
            wrapt.wrap_function_wrapper(apps, f"{app_class}.{name}", around)
            self.undo_steps.append(lambda: self.restore(target, name, had, before))
            return
        target = live_class(family)
        original = target.__dict__.get(name) or getattr(target, name)
        if way == "mock" and not inspect.isfunction(original):
            # autospec makes a plain function of a method that is not a
            # Python function (a compiled class's): the instance is not
            # passed, and every call fails. Recorded, not served.
            raise TypeError(f"autospec cannot bind {type(original).__name__}")
        if way == "mock":

            def effect(*args: Any, **kwargs: Any) -> Any:
                note_call(family, name, args[1:])
                return original(*args, **kwargs)

            if inspect.iscoroutinefunction(original):

                async def effect_async(*args: Any, **kwargs: Any) -> Any:
                    note_call(family, name, args[1:])
                    return await original(*args, **kwargs)

                patcher = mock.patch.object(target, name, autospec=True, side_effect=effect_async)
            else:
                patcher = mock.patch.object(target, name, autospec=True, side_effect=effect)
            patcher.start()
            self.undo_steps.append(patcher.stop)
            return
        self.set(target, name, wrapper_for(family, name, original, way))

    def mixin_function(self, mix: Any) -> Any:
        family, name = self.family, self.name

        def mixed(self: Any, *args: Any, **kwargs: Any) -> Any:
            note_call(family, name, args)
            return getattr(super(mix, self), name)(*args, **kwargs)

        return mixed

    def set(self, target: Any, name: str, value: Any) -> None:
        had = name in target.__dict__
        before = target.__dict__.get(name)
        setattr(target, name, value)
        self.undo_steps.append(lambda: self.restore(target, name, had, before))

    @staticmethod
    def restore(target: Any, name: str, had: bool, before: Any) -> None:
        if had:
            setattr(target, name, before)
        else:
            delattr(target, name)

    def apply_to_instance(self, obj: Any) -> None:
        name = self.name
        original = getattr(obj, name)
        family = self.family

        def patched(*args: Any, **kwargs: Any) -> Any:
            note_call(family, name, args)
            return original(*args, **kwargs)

        setattr(obj, name, patched)
        self.undo_steps.append(lambda: obj.__dict__.pop(name, None))

    def undo(self) -> None:
        STATE.pop("instance_patch", None)
        for step in reversed(self.undo_steps):
            step()
        self.undo_steps = []


def instance_patches(handler: Any) -> None:
    """The ``instance`` way on the connection: patched in prepare()."""
    patch = STATE.get("instance_patch")
    if patch is not None and patch.family == "connection":
        try:
            patch.apply_to_instance(handler.request.connection)
        except Exception as exc:  # refused: a difference of its own
            STATE["instance_refused"] = type(exc).__name__


# -- a case ------------------------------------------------------------------------------


async def fetch(port: int, path: str) -> dict[str, Any]:
    """A raw HTTP/1.1 request, the same bytes under both frameworks."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: hooks\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.lower() not in ("date", "server"):
            headers[key.strip().lower()] = value.strip()
    return {
        "status": lines[0].split(" ")[1] if lines[0] else "",
        "headers": headers,
        "body": body.decode("latin-1"),
    }


async def socket_exchange(port: int, closed: asyncio.Future[None]) -> dict[str, Any]:
    connection = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
    await connection.write_message("ping")
    echoed = await connection.read_message()
    connection.close()
    await closed
    return {"echo": echoed}


async def serve_once(family: str, port: int, app: Any) -> dict[str, Any]:
    if family == "WebSocketHandler":
        closed = asyncio.get_running_loop().create_future()
        app.settings["closed"] = closed
        response = await socket_exchange(port, closed)
    else:
        response = await fetch(port, "/page?a=x")
    pending, REC.pending = REC.pending, []
    for future in pending:
        await future
    trace = REC.take()
    trace["response"] = response
    return trace


async def run_case(family: str, name: str, way: str, moment: str, kind: str) -> dict[str, Any]:
    STATE.pop("instance_patch", None)
    patch: Optional[Patch] = None
    classes: dict[str, Any] = {}
    trace: dict[str, Any] = {}

    def patch_now() -> None:
        nonlocal patch
        patch = Patch(family, name, way, classes)
        try:
            patch.apply()
        except Exception as exc:  # refused: a difference of its own
            trace["refused"] = type(exc).__name__
            patch.undo()
            patch = None

    STATE["instances"] = {"IOLoop": ioloop.IOLoop.current()}
    # Before the application is made: the framework's classes before the
    # application's classes are; the application's own classes (mixin,
    # class decorator, wrapt by module path) as soon as they are made.
    on_app_classes = way in ("mixin", "classdeco", "wrapt-wfw")
    if moment == "before-app" and not on_app_classes and way != "instance":
        patch_now()
    classes.update(make_classes(kind))
    if moment == "before-app" and on_app_classes:
        patch_now()
    app = classes["App"]([("/page", classes["Page"]), ("/ws", classes["Socket"])])
    STATE["instances"]["Application"] = app
    server = classes["Server"](app)
    STATE["instances"]["HTTPServer"] = server
    if moment == "before-start" or (moment == "before-app" and way == "instance"):
        patch_now()
    sockets = netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    port = sockets[0].getsockname()[1]
    server.add_sockets(sockets)
    try:
        requests = []
        REC.take()
        requests.append(await serve_once(family, port, app))
        if moment == "after-served":
            patch_now()
            requests.append(await serve_once(family, port, app))
        if patch is not None:
            patch.undo()
        requests.append(await serve_once(family, port, app))
        trace["requests"] = requests
        refused = STATE.pop("instance_refused", None)
        if refused is not None:
            trace["refused"] = refused
    finally:
        server.stop()
        await server.close_all_connections()
        if patch is not None:
            patch.undo()
    return trace


async def discover() -> None:
    """The class of ``request.connection`` (the ``connection`` family's)."""
    seen: list[Any] = []

    class Probe(web.RequestHandler):  # type: ignore[misc, valid-type]
        def get(self) -> None:
            seen.append(type(self.request.connection))
            self.write("probe")

    app = web.Application([("/page", Probe)])
    server = httpserver.HTTPServer(app)
    sockets = netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server.add_sockets(sockets)
    await fetch(sockets[0].getsockname()[1], "/page")
    server.stop()
    await server.close_all_connections()
    STATE["connection_class"] = seen[0]


def cases(only: Optional[str]) -> list[tuple[str, str, str, str, str]]:
    out = []
    for family, names in HOOKS.items():
        for name in names:
            for way in WAYS[family]:
                for moment in MOMENTS:
                    for kind in KINDS:
                        key = case_key(family, name, way, moment, kind)
                        if only is None or re.search(only, key):
                            out.append((family, name, way, moment, kind))
    return out


def case_key(family: str, name: str, way: str, moment: str, kind: str) -> str:
    return f"{family}.{name}/{way}/{moment}/{kind}"


# A hang guard per case (a case takes milliseconds): a hang is reported
# with its case, not waited out by the test that runs this.
HANG_GUARD = 60


async def main() -> None:
    out_path = sys.argv[2]
    only = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--only" else None
    await discover()
    result: dict[str, Any] = {}
    for case in cases(only):
        try:
            result[case_key(*case)] = await asyncio.wait_for(run_case(*case), HANG_GUARD)
        except TimeoutError:
            raise SystemExit(f"{FW}: case {case_key(*case)} hung") from None
    with open(out_path, "w") as out:
        json.dump(result, out, indent=0, sort_keys=True)


if __name__ == "__main__":
    asyncio.run(main())
