"""Drive Tornado-API objects through their life, the same code on Tornado and on Squall.

`run(package)` returns three dicts (see probe.py): ``states`` (the attributes
of an object after each step), ``warnings`` (the warnings each call or step
emits) and ``raises`` (where a failing call's exception surfaces, and its
type). Each scenario runs on its own event loop with loopback sockets on
port 0; nothing here sleeps to wait for something: every wait is on a future
or an event, bounded by `_DEADLINE`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import socket
import unittest
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from probe import kind_of, type_name

_DEADLINE = 5.0
# An awaitable that has not finished by then is recorded as hanging.
_HANG = 0.5

# Private attributes that plugins and applications read (tests/COMPAT.md):
# API in practice, so their presence is compared too.
_PRIVATE_API = {
    "HTTPServer": ("_sockets", "_handlers"),
    "TCPServer": ("_sockets", "_handlers"),
    "IOStream": ("_write_buffer", "_total_write_index", "_total_write_done_index"),
    "RequestHandler": ("_transforms", "_headers", "_current_user", "_xsrf_token"),
}


class _Modules:
    """``M.web`` is the package's ``web`` module, under whichever name it has."""

    def __init__(self, package: str) -> None:
        self._package = package

    def __getattr__(self, name: str) -> Any:
        return importlib.import_module(f"{self._package}.{name.replace('__', '.')}")


class Recorder:
    def __init__(self, package: str) -> None:
        self.package = package
        self.states: dict[str, str] = {}
        self.warnings: dict[str, str] = {}
        self.raises: dict[str, str] = {}
        self.private: dict[str, str] = {}
        self.first_step: dict[str, str] = {}
        self.messages: dict[str, str] = {}
        self.log_sites: dict[str, str] = {}
        self.call_shapes: dict[str, str] = {}
        self.values: dict[str, str] = {}

    # -- messages

    def message(self, label: str, fn: Callable[[], Any]) -> None:
        """The exception ``fn()`` raises, type and text (what users' tests
        assert), or ``str()`` of what it returns (an exception object)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = fn()
            except Exception as exc:
                self.messages[label] = f"{type_name(exc)}: {exc}"
            else:
                self.messages[label] = f"returns: {result}"

    # -- states

    def state(self, label: str, obj: Any, role: str = "") -> None:
        """Record the attributes of ``obj`` under ``label`` (one key per attribute)."""
        cls_names = {c.__name__ for c in type(obj).__mro__}
        private = [
            n for c, names in _PRIVATE_API.items() if c in cls_names or c == role for n in names
        ]
        for name in sorted(set(dir(obj)) | set(private)):
            # Private attributes (what instrumentation may read, those a
            # private base class gave included) go to their own part; the
            # ones plugins are known to read are compared with the public.
            into = self.states
            if name.startswith("_") and name not in private:
                if name.startswith("__") and name.endswith("__"):
                    continue
                into = self.private
            try:
                value = getattr(obj, name)
            except Exception as exc:  # a property that refuses in this state
                desc = f"raises {type(exc).__name__}"
            else:
                if (
                    inspect.ismethod(value)
                    or inspect.isbuiltin(value)
                    and getattr(value, "__self__", None) is obj
                ):
                    continue
                if name in type(obj).__dict__ and isinstance(type(obj).__dict__[name], type):
                    continue  # a nested class
                if inspect.isfunction(value) and name in _class_functions(type(obj)):
                    continue  # a staticmethod's function
                desc = kind_of(value, self.package)
            into[f"{label}.{name}"] = desc
        if not any(k.startswith(label + ".") for k in self.states):
            self.states[label] = "(no attributes)"

    # -- warnings

    def warned(self, label: str, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` and record the warnings it emits (the exception, if any, too)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = fn()
            except Exception as exc:
                result = None
                self.warnings[label + " (raised)"] = type(exc).__name__
        self._note(label, caught)
        return result

    def _note(self, label: str, caught: list[warnings.WarningMessage]) -> None:
        texts = sorted(
            f"{w.category.__name__}: {w.message}"
            for w in caught
            if not issubclass(w.category, ResourceWarning)
        )
        self.warnings[label] = " | ".join(texts) or "(none)"

    # -- raises

    async def attempt(self, label: str, fn: Callable[[], Any]) -> None:
        """Where a call's failure surfaces: ``call: Type``, ``await: Type`` or ``ok``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = fn()
            except Exception as exc:
                self.raises[label] = f"call: {type_name(exc)}"
                return
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                await asyncio.wait([task], timeout=_HANG)
                if not task.done():
                    task.cancel()
                    self.raises[label] = "await: hangs"
                elif task.cancelled():
                    self.raises[label] = "await: CancelledError"
                elif task.exception() is not None:
                    self.raises[label] = f"await: {type_name(task.exception())}"
                else:
                    self.raises[label] = "ok (awaitable)"
                return
        self.raises[label] = "ok"

    # -- first steps

    def first(self, label: str, fn: Callable[[], Any]) -> None:
        """What calling ``fn`` and taking the first step of what it returns does.

        ``call: Type`` (the call raised), ``first step: Type`` (a coroutine
        whose first ``send(None)`` raised), ``first step: returns``,
        ``first step: suspends``; for a Future, its state right after the
        call (``future: failed Type``, ``future: done``, ``future: pending``).
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = fn()
            except Exception as exc:
                self.first_step[label] = f"call: {type_name(exc)}"
                return
            if inspect.iscoroutine(result):
                try:
                    yielded = result.send(None)
                except StopIteration:
                    self.first_step[label] = "first step: returns"
                except Exception as exc:
                    self.first_step[label] = f"first step: {type_name(exc)}"
                else:
                    self.first_step[label] = "first step: suspends"
                    if isinstance(yielded, asyncio.Future):
                        # A future the coroutine waited on: its outcome is
                        # not wanted (and not retrieving it would warn).
                        yielded.add_done_callback(_retrieve)
                    result.close()
            elif isinstance(result, asyncio.Future):
                if not result.done():
                    self.first_step[label] = "future: pending"
                    result.add_done_callback(_retrieve)
                elif result.cancelled() or result.exception() is None:
                    self.first_step[label] = "future: done"
                else:
                    exc = result.exception()
                    self.first_step[label] = f"future: failed {type_name(exc)}"
            else:
                self.first_step[label] = f"returns {type_name(result)}"


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _class_functions(cls: type) -> set[str]:
    return {
        name
        for klass in cls.__mro__
        for name, raw in vars(klass).items()
        if isinstance(raw, staticmethod)
    }


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return int(port)


# -- scenarios --------------------------------------------------------------


async def tcpserver(r: Recorder, M: _Modules) -> None:
    server = M.tcpserver.TCPServer()
    r.state("tcpserver.new", server)
    r.warned("tcpserver.listen", lambda: server.listen(0, "127.0.0.1"))
    r.state("tcpserver.listen", server)
    r.warned("tcpserver.stop", server.stop)
    r.state("tcpserver.stop", server)
    other = M.tcpserver.TCPServer()
    r.warned("tcpserver.bind", lambda: other.bind(0, "127.0.0.1"))
    r.state("tcpserver.bind", other)
    r.warned("tcpserver.start", lambda: other.start(1))
    r.state("tcpserver.start", other)
    other.stop()


async def iostream(r: Recorder, M: _Modules) -> None:
    accepted: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    class Server(M.tcpserver.TCPServer):  # type: ignore[name-defined,misc]
        def handle_stream(self, stream: Any, address: Any) -> None:
            accepted.set_result(stream)

    server = Server()
    sock = M.netutil.bind_sockets(0, "127.0.0.1")[0]
    port = sock.getsockname()[1]
    server.add_sockets([sock])
    stream = M.iostream.IOStream(socket.socket())
    r.state("iostream.new", stream)
    await stream.connect(("127.0.0.1", port))
    r.state("iostream.connected", stream, "IOStream")
    peer = await asyncio.wait_for(accepted, _DEADLINE)
    await stream.write(b"ping\n")
    assert await peer.read_until(b"\n") == b"ping\n"
    r.state("iostream.after_io", stream, "IOStream")
    stream.close()
    r.state("iostream.closed", stream, "IOStream")
    await r.attempt("iostream.closed.write", lambda: stream.write(b"x"))
    await r.attempt("iostream.closed.read_bytes", lambda: stream.read_bytes(1))
    await r.attempt("iostream.closed.read_until", lambda: stream.read_until(b"\n"))
    await r.attempt("iostream.closed.read_until_close", lambda: stream.read_until_close())
    await r.attempt("iostream.peer.read_until_close", lambda: peer.read_until_close())
    peer.close()
    server.stop()
    refused = M.iostream.IOStream(socket.socket())
    await r.attempt(
        "iostream.connect.refused", lambda: refused.connect(("127.0.0.1", _closed_port()))
    )
    refused.close()
    await r.attempt(
        "tcpclient.connect.refused",
        lambda: M.tcpclient.TCPClient().connect("127.0.0.1", _closed_port()),
    )


async def http(r: Recorder, M: _Modules) -> None:
    web, websocket = M.web, M.websocket
    done: dict[str, asyncio.Event] = {k: asyncio.Event() for k in ("plain", "finish", "ws_close")}

    class Plain(web.RequestHandler):  # type: ignore[misc,name-defined]
        def get(self) -> None:
            r.state("handler.get", self, "RequestHandler")
            r.state("request.in_handler", self.request)
            r.state("connection.before_detach", self.request.connection)
            r.warned(
                "handler.set_cookie_capitalized", lambda: self.set_cookie("a", "b", HttpOnly=True)
            )
            self.write("ok")

        def on_finish(self) -> None:
            r.state("handler.on_finish", self, "RequestHandler")
            done["plain"].set()

    class Finished(web.RequestHandler):  # type: ignore[misc,name-defined]
        async def get(self) -> None:
            self.finish("done")
            r.state("handler.finished", self, "RequestHandler")
            await r.attempt("handler.finished.write", lambda: self.write("x"))
            await r.attempt("handler.finished.finish", lambda: self.finish())
            await r.attempt("handler.finished.flush", lambda: self.flush())
            await r.attempt("handler.finished.redirect", lambda: self.redirect("/"))
            await r.attempt("handler.finished.send_error", lambda: self.send_error(500))
            done["finish"].set()

    class Detach(web.RequestHandler):  # type: ignore[misc,name-defined]
        def get(self) -> None:
            conn = self.request.connection
            stream = conn.detach()
            r.state("connection.after_detach", conn)
            r.state("detached_stream", stream, "IOStream")
            stream.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            stream.close()

    class Echo(websocket.WebSocketHandler):  # type: ignore[misc,name-defined]
        def open(self) -> None:
            r.state("ws_handler.open", self)

        def on_message(self, message: Any) -> None:
            r.state("ws_handler.message", self)
            self.write_message(message)

        def on_close(self) -> None:
            r.state("ws_handler.close", self)
            self.after_close = True
            done["ws_close"].set()
            Echo.closed_handler = self

    app = web.Application(
        [("/plain", Plain), ("/finished", Finished), ("/detach", Detach), ("/ws", Echo)]
    )
    r.state("application.new", app)
    server = M.httpserver.HTTPServer(app)
    r.state("httpserver.new", server)
    sock = M.netutil.bind_sockets(0, "127.0.0.1")[0]
    port = sock.getsockname()[1]
    server.add_sockets([sock])
    r.state("httpserver.listen", server, "HTTPServer")
    client = M.httpclient.AsyncHTTPClient(force_instance=True)
    base = f"http://127.0.0.1:{port}"
    response = await client.fetch(base + "/plain")
    r.state("httpresponse.ok", response)
    await asyncio.wait_for(done["plain"].wait(), _DEADLINE)
    error = await client.fetch(base + "/nope", raise_error=False)
    r.state("httpresponse.404", error)
    await client.fetch(base + "/finished")
    await asyncio.wait_for(done["finish"].wait(), _DEADLINE)
    detached = await client.fetch(base + "/detach")
    assert detached.body == b"ok"
    await r.attempt("httpclient.fetch.404", lambda: client.fetch(base + "/nope"))
    await r.attempt(
        "httpclient.fetch.refused", lambda: client.fetch(f"http://127.0.0.1:{_closed_port()}/")
    )
    await r.attempt("httpclient.fetch.bad_url", lambda: client.fetch("nope://x"))

    ws = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
    r.state("ws_client.open", ws)
    await ws.write_message("hi")
    assert await ws.read_message() == "hi"
    r.state("ws_client.message", ws)
    ws.close()
    await asyncio.wait_for(done["ws_close"].wait(), _DEADLINE)
    assert await asyncio.wait_for(ws.read_message(), _DEADLINE) is None
    r.state("ws_client.close", ws)
    handler = Echo.closed_handler
    r.state("ws_handler.after_close", handler)
    await r.attempt("ws_client.closed.write_message", lambda: ws.write_message("x"))
    await r.attempt("ws_client.closed.ping", lambda: ws.ping(b"x"))
    await r.attempt("ws_client.closed.read_message", lambda: ws.read_message())
    await r.attempt("ws_handler.closed.write_message", lambda: handler.write_message("x"))
    await r.attempt("ws_handler.closed.ping", lambda: handler.ping(b"x"))
    await r.attempt(
        "websocket_connect.refused",
        lambda: websocket.websocket_connect(f"ws://127.0.0.1:{_closed_port()}/"),
    )
    await r.attempt(
        "websocket_connect.404", lambda: websocket.websocket_connect(f"ws://127.0.0.1:{port}/nope")
    )
    client.close()
    server.stop()
    r.state("httpserver.stop", server, "HTTPServer")
    await server.close_all_connections()


class _Sites(logging.Handler):
    """Where each log record says it was made (``%(filename)s`` and friends)."""

    def __init__(self, r: Recorder, package: str) -> None:
        super().__init__(logging.DEBUG)
        self.r = r
        self.package = package

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name.replace(self.package, "tornado", 1)
        key = f"{name}: {record.msg}"
        where = f"{record.levelname} {record.filename} {record.module} {record.funcName}"
        self.r.log_sites[key] = where


async def log_sites(r: Recorder, M: _Modules) -> None:
    """A request that fails, an HTTPError, a failed error page, an access
    line: the records' file, module and function."""
    web = M.web

    class Boom(web.RequestHandler):  # type: ignore[misc,name-defined]
        def get(self) -> None:
            kind = self.get_argument("kind")
            if kind == "http":
                raise web.HTTPError(410, "gone %s", "away")
            if kind == "late":
                self.flush()
            if kind == "page":
                self.write_error = lambda *a, **k: 1 / 0
            raise ZeroDivisionError("boom")

    logger = logging.getLogger("tornado")
    sites = _Sites(r, "tornado")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(sites)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    server = M.httpserver.HTTPServer(web.Application([("/", Boom)]))
    sock = M.netutil.bind_sockets(0, "127.0.0.1")[0]
    server.add_sockets([sock])
    client = M.httpclient.AsyncHTTPClient(force_instance=True)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}/?kind="
    try:
        for kind in ("error", "http", "late", "page"):
            await client.fetch(base + kind, raise_error=False)
    finally:
        logger.removeHandler(sites)
        logger.setLevel(level)
        logger.propagate = propagate
        client.close()
        server.stop()
        await server.close_all_connections()


async def call_shapes(r: Recorder, M: _Modules) -> None:
    """What instrumentation that wraps public methods on their classes sees:
    the calls of ``AsyncHTTPClient.fetch`` for a fetch that is redirected
    twice (Tornado's client fetches each hop through it), and of
    ``HTTPServer.start_request`` and ``RequestHandler._execute`` per request,
    with a web Application and with an application that is its own delegate."""
    web, httpclient, httpserver, httputil = M.web, M.httpclient, M.httpserver, M.httputil
    seen: list[str] = []

    class Hop(web.RequestHandler):  # type: ignore[misc,name-defined]
        def get(self, n: str) -> None:
            if int(n):
                self.redirect(f"/hop/{int(n) - 1}")
            else:
                self.write("landed")

    class Own(httputil.HTTPServerConnectionDelegate, httputil.HTTPMessageDelegate):  # type: ignore[misc,name-defined]
        def start_request(self, server_conn: Any, request_conn: Any) -> Any:
            self.conn = request_conn
            return self

        def finish(self) -> None:
            headers = httputil.HTTPHeaders({"Content-Length": "2"})
            self.conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", 200, "OK"), headers)
            self.conn.write(b"ok")
            self.conn.finish()

    def shape(request: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        what = "url" if isinstance(request, str) else type_name(request)
        named = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
        return f"fetch({what}{', ' * bool(args)}{', '.join(map(repr, args))}{', ' * bool(named)}{named})"

    fetch = httpclient.AsyncHTTPClient.fetch
    start_request = httpserver.HTTPServer.start_request
    execute = web.RequestHandler._execute

    def fetch_spy(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(shape(request, args, kwargs))
        return fetch(self, request, *args, **kwargs)

    def start_spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append("start_request")
        return start_request(self, *args, **kwargs)

    def execute_spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append("_execute")
        return execute(self, *args, **kwargs)

    httpclient.AsyncHTTPClient.fetch = fetch_spy
    httpserver.HTTPServer.start_request = start_spy
    web.RequestHandler._execute = execute_spy
    servers = []
    client = httpclient.AsyncHTTPClient(force_instance=True)
    try:
        for label, app in (("web", web.Application([(r"/hop/(\d+)", Hop)])), ("own", Own())):
            server = httpserver.HTTPServer(app)
            servers.append(server)
            sock = M.netutil.bind_sockets(0, "127.0.0.1")[0]
            server.add_sockets([sock])
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/hop/2"
            seen.clear()
            await client.fetch(url)
            fetches = [call for call in seen if call.startswith("fetch(")]
            served = [call for call in seen if not call.startswith("fetch(")]
            r.call_shapes[f"{label}.redirected_twice.client"] = " | ".join(fetches)
            r.call_shapes[f"{label}.redirected_twice.server"] = " | ".join(served)
    finally:
        httpclient.AsyncHTTPClient.fetch = fetch
        httpserver.HTTPServer.start_request = start_request
        web.RequestHandler._execute = execute
        client.close()
        for server in servers:
            server.stop()
            await server.close_all_connections()


# Values Tornado takes by their number or truth (a float size, an int flag, a
# float status code): what a handler's call, a server's or client's setting
# or a WebSocket's call with one comes to. The compiled build's typed fields
# once refused some of these, and a few closed every connection unlogged.
_HANDLER_VALUES: dict[str, Callable[[Any], Any]] = {
    "set_status.float": lambda h: (h.set_status(201.0), h.write("x")),
    "set_status.str": lambda h: (h.set_status("201"), h.write("x")),
    "send_error.float": lambda h: h.send_error(404.0),
    "get_argument.strip_int": lambda h: h.write(h.get_argument("a", "-", strip=1)),
    "get_query_argument.strip_zero": lambda h: h.write(h.get_query_argument("a", "-", strip=0)),
    "get_arguments.strip_int": lambda h: h.write(",".join(h.get_arguments("a", 1))),
    "set_cookie.max_age_float": lambda h: (h.set_cookie("a", "b", max_age=10.7), h.write("x")),
    "set_cookie.max_age_zero": lambda h: (h.set_cookie("a", "b", max_age=0), h.write("x")),
    "set_cookie.flags_int": lambda h: (h.set_cookie("a", "b", httponly=1, secure=0), h.write("x")),
    "clear_cookie": lambda h: (h.clear_cookie("a"), h.write("x")),
    "set_header.int": lambda h: (h.set_header("X-A", 5), h.write("x")),
    "redirect.permanent_int": lambda h: h.redirect("/x", permanent=1),
    "redirect.status_float": lambda h: h.redirect("/x", status=302.0),
    "connection.set_max_body_size.float": lambda h: (
        h.request.connection.set_max_body_size(1.5 * 1024**3),
        h.write("x"),
    ),
    "connection.set_body_timeout.none": lambda h: (
        h.request.connection.set_body_timeout(None),
        h.write("x"),
    ),
}
_SOCKET_VALUES: dict[str, Callable[[Any], Any]] = {
    "write_message.binary_int": lambda h: h.write_message(b"m", binary=1),
    "write_message.binary_none": lambda h: h.write_message("m", binary=None),
    "write_message.dict_binary_int": lambda h: h.write_message({"m": 1}, binary=1),
    "ping.str": lambda h: (h.ping("p"), h.write_message("m")),
    "set_nodelay.int": lambda h: (h.set_nodelay(1), h.write_message("m")),
    "close.code_float": lambda h: h.close(1000.0, "bye"),
}
_SERVER_VALUES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (HTTPServer's keywords, Application's settings)
    "max_body_size.float": ({"max_body_size": 1e7}, {}),
    "max_buffer_size.float": ({"max_buffer_size": 1e8}, {}),
    "max_header_size.float": ({"max_header_size": 65536.0}, {}),
    "no_keep_alive.int": ({"no_keep_alive": 0}, {}),
    "decompress_request.int": ({"decompress_request": 1}, {}),
    "xheaders.int": ({"xheaders": 1}, {}),
    "idle_connection_timeout.int": ({"idle_connection_timeout": 30}, {}),
    "websocket_max_message_size.float": ({}, {"websocket_max_message_size": 1e4}),
    "compress_response.int": ({}, {"compress_response": 1}),
}
_CLIENT_VALUES: dict[str, dict[str, Any]] = {
    # AsyncHTTPClient's keywords
    "max_body_size.float": {"max_body_size": 1e7},
    "max_buffer_size.float": {"max_buffer_size": 1e8},
}
_REQUEST_VALUES: dict[str, dict[str, Any]] = {
    # fetch's keywords
    "follow_redirects.int": {"follow_redirects": 1},
    "max_redirects.float": {"max_redirects": 5.0},
    "timeouts.int": {"connect_timeout": 5, "request_timeout": 10},
    "decompress_response.int": {"decompress_response": 1},
    "body.bytearray": {"method": "POST", "body": bytearray(b"abc")},
}


async def values(r: Recorder, M: _Modules) -> None:
    """Each of the values above, as a program gives it: the response a
    client gets (status, body and the header the call sets), "closed" when
    the connection closes without one, or "refused" when the call raises
    (its exception's type is in ``messages`` where users' tests read it)."""
    web, websocket, httpclient, httpserver = M.web, M.websocket, M.httpclient, M.httpserver

    class Case(web.RequestHandler):  # type: ignore[misc,name-defined]
        def get(self, name: str) -> None:
            case = _HANDLER_VALUES.get(name)
            if case is None:
                self.write("ok")
                return
            try:
                case(self)
            except Exception:
                if not self._finished:
                    self.clear()
                    self.set_status(599)
                    self.finish("refused")

        def post(self, name: str) -> None:
            self.write(str(len(self.request.body)))

    class Socket(websocket.WebSocketHandler):  # type: ignore[misc,name-defined]
        def open(self, name: str) -> None:
            case = _SOCKET_VALUES.get(name)
            if case is None:
                return  # (an echo)
            try:
                case(self)
            except Exception:
                self.write_message("refused")

        def on_message(self, message: Any) -> None:
            self.write_message(message)

    def seen(response: Any) -> str:
        keep = ("Set-Cookie", "X-A", "Location")
        headers = [f"{k}: {v}" for k, v in response.headers.get_all() if k in keep]
        # (a cookie's expires date moves: its name is enough)
        headers = [
            h.split("; expires=")[0] + "; expires=..." if "expires=" in h else h for h in headers
        ]
        return " | ".join([str(response.code), response.body.decode("latin-1")[:40], *headers])

    async def serve(server_kwargs: dict[str, Any], settings: dict[str, Any]) -> tuple[Any, str]:
        app = web.Application([(r"/ws/(.*)", Socket), (r"/(.*)", Case)], **settings)
        server = httpserver.HTTPServer(app, **server_kwargs)
        sock = M.netutil.bind_sockets(0, "127.0.0.1")[0]
        server.add_sockets([sock])
        return server, f"127.0.0.1:{sock.getsockname()[1]}"

    async def fetch(client: Any, url: str, **kwargs: Any) -> str:
        try:
            kwargs.setdefault("follow_redirects", False)
            response = await asyncio.wait_for(
                client.fetch(url, raise_error=False, **kwargs), _DEADLINE
            )
        except Exception as exc:
            return (
                f"closed ({type_name(exc)})"
                if "lose" in str(exc)
                else f"refused ({type_name(exc)})"
            )
        return seen(response)

    async def socket_says(host: str, name: str, send: Any = None, **kwargs: Any) -> str:
        try:
            ws = await asyncio.wait_for(
                websocket.websocket_connect(f"ws://{host}/ws/{name}", **kwargs), _DEADLINE
            )
        except Exception as exc:
            return f"closed ({type_name(exc)})"
        try:
            if send is not None:
                await ws.write_message(send, binary=isinstance(send, bytes))
            message = await asyncio.wait_for(ws.read_message(), _DEADLINE)
            return f"{message!r} close {ws.close_code}"
        finally:
            ws.close()

    client = httpclient.AsyncHTTPClient(force_instance=True)
    server, host = await serve({}, {"cookie_secret": "s"})
    try:
        for name in _HANDLER_VALUES:
            r.values[f"handler.{name}"] = await fetch(client, f"http://{host}/{name}?a=+v+")
        for name in _SOCKET_VALUES:
            r.values[f"websocket.{name}"] = await socket_says(host, name)
        for name, kwargs in _REQUEST_VALUES.items():
            r.values[f"fetch.{name}"] = await fetch(client, f"http://{host}/post", **kwargs)
        for name, kwargs in _CLIENT_VALUES.items():
            other = httpclient.AsyncHTTPClient(force_instance=True, **kwargs)
            try:
                r.values[f"client.{name}"] = await fetch(
                    other, f"http://{host}/post", method="POST", body=b"x" * 100
                )
            finally:
                other.close()
    finally:
        server.stop()
        await server.close_all_connections()
    try:
        for name, (server_kwargs, settings) in _SERVER_VALUES.items():
            try:
                server, host = await serve(server_kwargs, settings)
            except Exception as exc:
                r.values[f"server.{name}"] = f"refused ({type_name(exc)})"
                continue
            try:
                got = await fetch(client, f"http://{host}/post", method="POST", body=b"x" * 1000)
                echo = await socket_says(host, "echo", send="hi")
                r.values[f"server.{name}"] = f"{got} || websocket {echo}"
            finally:
                server.stop()
                await server.close_all_connections()
    finally:
        client.close()


async def messages(r: Recorder, M: _Modules) -> None:
    """Error texts that Tornado's users' tests assert (ddtrace's, ...)."""
    concurrent, gen = M.concurrent, M.gen

    def method(self: Any) -> None:
        pass

    r.message(
        "concurrent.run_on_executor.function_and_keywords",
        lambda: concurrent.run_on_executor(method, executor="pool"),
    )
    r.message(
        "concurrent.run_on_executor.two_functions",
        lambda: concurrent.run_on_executor(method, method),
    )
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done.set_result(1)
    r.message("gen.WaitIterator.both", lambda: gen.WaitIterator(done, a=done))
    closed = M.httpclient.AsyncHTTPClient(force_instance=True)
    closed.close()
    r.message("httpclient.AsyncHTTPClient.fetch.closed", lambda: closed.fetch("http://x/"))
    r.message("web.HTTPError.str", lambda: M.web.HTTPError(404, "no %s", "page"))
    r.message("web.HTTPError.str_bare", lambda: M.web.HTTPError(599))
    r.message("web.MissingArgumentError.str", lambda: M.web.MissingArgumentError("q"))
    r.message("httpclient.HTTPClientError.str", lambda: M.httpclient.HTTPClientError(404))
    r.message(
        "httpclient.HTTPClientError.str_message",
        lambda: M.httpclient.HTTPClientError(599, "Timeout"),
    )
    r.message("iostream.StreamClosedError.str", lambda: M.iostream.StreamClosedError())
    r.message("locks.Semaphore.negative", lambda: M.locks.Semaphore(-1))
    r.message("queues.Queue.negative", lambda: M.queues.Queue(-1))
    r.message("queues.Queue.maxsize_none", lambda: M.queues.Queue(None))
    r.message("queues.Queue.task_done_extra", lambda: M.queues.Queue().task_done())
    r.message("locks.BoundedSemaphore.over_release", lambda: M.locks.BoundedSemaphore().release())
    r.message("locks.Lock.release_unlocked", lambda: M.locks.Lock().release())
    r.message("locks.Semaphore.plain_with", lambda: M.locks.Semaphore().__enter__())
    r.message("locks.Lock.plain_with", lambda: M.locks.Lock().__enter__())
    r.message("locks.Condition.wait.bad_deadline", lambda: M.locks.Condition().wait("soon"))
    r.message(
        "ioloop.IOLoop.add_timeout.bad_deadline",
        lambda: M.ioloop.IOLoop.current().add_timeout("soon", lambda: None),
    )
    r.message("ioloop.PeriodicCallback.zero", lambda: M.ioloop.PeriodicCallback(lambda: None, 0))
    r.message("gen.convert_yielded.bad", lambda: M.gen.convert_yielded(5))
    r.message("escape.json_decode.bad", lambda: M.escape.json_decode("{"))
    r.message("util.import_object.missing", lambda: M.util.import_object("nope_module_x.y"))
    await refused(r, M)


async def refused(r: Recorder, M: _Modules) -> None:
    """What each client raises, or answers, where nothing listens: the
    errno's text alone (Salt's http.query returns it as its error, and its
    tests compare it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # bound, never listening: a connection to it is refused

    async def record(label: str, attempt: Callable[[], Awaitable[Any]]) -> None:
        try:
            result = await attempt()
        except Exception as exc:
            r.messages[label] = f"{type_name(exc)}: {exc}"
        else:
            r.messages[label] = f"returns: {result}"

    client = M.httpclient.AsyncHTTPClient(force_instance=True)
    url = f"http://127.0.0.1:{port}/"
    await record("httpclient.fetch.refused", lambda: client.fetch(url))

    async def no_raise() -> str:
        response = await client.fetch(url, raise_error=False)
        return f"{response.code} {type_name(response.error)}: {response.error}"

    await record("httpclient.fetch.refused_no_raise", no_raise)
    client.close()
    await record(
        "websocket.websocket_connect.refused",
        lambda: M.websocket.websocket_connect(f"ws://127.0.0.1:{port}/"),
    )
    await record(
        "tcpclient.connect.refused", lambda: M.tcpclient.TCPClient().connect("127.0.0.1", port)
    )


async def client_objects(r: Recorder, M: _Modules) -> None:
    """The HTTP client's request and response objects, as a fetch leaves them."""
    web = M.web

    class Hello(web.RequestHandler):  # type: ignore[misc,name-defined]
        def get(self) -> None:
            self.write("hello")

    request = M.httpclient.HTTPRequest("http://127.0.0.1/", method="GET")
    r.state("httprequest.new", request)
    server = M.httpserver.HTTPServer(web.Application([("/", Hello)]))
    sock = M.netutil.bind_sockets(0, "127.0.0.1")[0]
    port = sock.getsockname()[1]
    server.add_sockets([sock])
    client = M.httpclient.AsyncHTTPClient(force_instance=True)
    response = await client.fetch(f"http://127.0.0.1:{port}/")
    r.state("httpresponse.ok.request", response.request)
    client.close()
    server.stop()
    await server.close_all_connections()


async def first_steps(r: Recorder, M: _Modules) -> None:
    """Public coroutines (and calls returning Futures) with bad arguments,
    driven by hand: what happens before the first suspension."""
    tcpclient, netutil = M.tcpclient, M.netutil

    class FailingResolver(netutil.Resolver):  # type: ignore[misc,name-defined]
        async def resolve(self, host: str, port: int, family: Any = socket.AF_UNSPEC) -> Any:
            raise socket.gaierror(socket.EAI_FAMILY, "refused by the stub")

    client = tcpclient.TCPClient()
    stub = tcpclient.TCPClient(resolver=FailingResolver())
    r.first(
        "tcpclient.connect.af_mismatch",
        lambda: client.connect(host="::1", port=1234, af=socket.AF_INET),
    )
    r.first("tcpclient.connect.unresolvable", lambda: client.connect("nope.invalid", 1234))
    r.first("tcpclient.connect.bad_timeout", lambda: client.connect("127.0.0.1", 1, timeout="5"))
    r.first(
        "tcpclient.connect.resolver_fails", lambda: stub.connect("::1", 1234, af=socket.AF_INET)
    )
    r.first(
        "tcpclient.connect.resolver_fails_with_timeout",
        lambda: stub.connect("::1", 1234, af=socket.AF_INET, timeout=5),
    )
    r.first(
        "netutil.DefaultLoopResolver.resolve.af_mismatch",
        lambda: netutil.DefaultLoopResolver().resolve("::1", 1, socket.AF_INET),
    )
    r.first(
        "netutil.DefaultExecutorResolver.resolve.af_mismatch",
        lambda: netutil.DefaultExecutorResolver().resolve("::1", 1, socket.AF_INET),
    )
    r.first(
        "netutil.Resolver.resolve.base", lambda: netutil.Resolver.resolve(stub.resolver, "a", 1)
    )
    closed = M.iostream.IOStream(socket.socket())
    closed.close()
    r.first("iostream.closed.connect", lambda: closed.connect(("127.0.0.1", 1)))
    r.first("iostream.closed.read_bytes", lambda: closed.read_bytes(1))
    r.first("iostream.closed.write", lambda: closed.write(b"x"))
    r.first("iostream.closed.start_tls", lambda: closed.start_tls(False))
    r.first("gen.sleep.negative", lambda: M.gen.sleep(-1))
    r.first("locks.Event.wait.bad_timeout", lambda: M.locks.Event().wait(timeout="x"))
    r.first("queues.Queue.get.past_deadline", lambda: M.queues.Queue().get(timeout=-1))
    r.first("queues.Queue.join.past_deadline", lambda: _unfinished(M).join(timeout=-1))
    r.first(
        "httpclient.fetch.bad_scheme",
        lambda: M.httpclient.AsyncHTTPClient(force_instance=True).fetch("nope://x"),
    )
    r.first(
        "websocket.websocket_connect.bad_scheme",
        lambda: M.websocket.websocket_connect("nope://x"),
    )
    r.first(
        "websocket.websocket_connect.unresolvable",
        lambda: M.websocket.websocket_connect("ws://nope.invalid/"),
    )
    loop = M.ioloop.IOLoop.current()
    r.first("ioloop.run_in_executor.bad", lambda: loop.run_in_executor(None, 42))
    r.first("gen.multi.bad", lambda: M.gen.multi([42]))
    r.first("gen.convert_yielded.bad", lambda: M.gen.convert_yielded(42))
    client.close()
    stub.close()


def _unfinished(M: _Modules) -> Any:
    queue = M.queues.Queue()
    queue.put_nowait(1)
    return queue


async def calls(r: Recorder, M: _Modules) -> None:
    """Plain calls that raise: where and what."""
    httputil = M.httputil
    await r.attempt(
        "httputil.parse_request_start_line.bad", lambda: httputil.parse_request_start_line("bad")
    )
    await r.attempt(
        "httputil.parse_response_start_line.bad", lambda: httputil.parse_response_start_line("bad")
    )
    await r.attempt(
        "httputil.HTTPHeaders.parse.bad", lambda: httputil.HTTPHeaders.parse("no colon\r\n")
    )
    await r.attempt("escape.json_decode.bad", lambda: M.escape.json_decode("{"))
    await r.attempt(
        "escape.url_unescape.bytes_plus", lambda: M.escape.url_unescape(b"a+b", encoding=None)
    )
    await r.attempt("queues.Queue.get_nowait.empty", lambda: M.queues.Queue().get_nowait())
    full = M.queues.Queue(1)
    full.put_nowait(1)
    await r.attempt("queues.Queue.put_nowait.full", lambda: full.put_nowait(2))
    await r.attempt("queues.Queue.get.timeout", lambda: M.queues.Queue().get(timeout=0.01))
    await r.attempt("locks.Lock.release.unlocked", lambda: M.locks.Lock().release())
    await r.attempt(
        "locks.BoundedSemaphore.release.over", lambda: M.locks.BoundedSemaphore(1).release()
    )
    await r.attempt("locks.Event.wait.timeout", lambda: M.locks.Event().wait(timeout=0.01))
    await r.attempt("locks.Condition.wait.timeout", lambda: M.locks.Condition().wait(timeout=0.01))
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await r.attempt("gen.with_timeout.expired", lambda: M.gen.with_timeout(0.01, never))
    never.cancel()
    await r.attempt("gen.convert_yielded.bad", lambda: M.gen.convert_yielded(42))
    await r.attempt(
        "web.Application.reverse_url.missing", lambda: M.web.Application().reverse_url("nope")
    )
    await r.attempt("web.url.bad_regex", lambda: M.web.url("(", M.web.RequestHandler))
    await r.attempt("template.Template.bad", lambda: M.template.Template("{% if %}"))
    await r.attempt(
        "template.Template.undefined", lambda: M.template.Template("{{ x }}").generate()
    )
    opts = M.options.OptionParser()
    opts.define("port", default=1, type=int)
    await r.attempt("options.define.twice", lambda: opts.define("port", default=2, type=int))
    await r.attempt(
        "options.parse_command_line.bad_int", lambda: opts.parse_command_line(["prog", "--port=x"])
    )
    await r.attempt("options.getattr.missing", lambda: opts.missing)
    await r.attempt(
        "netutil.bind_sockets.bad_address", lambda: M.netutil.bind_sockets(0, "256.0.0.1")
    )
    await r.attempt(
        "httpclient.HTTPRequest.bad_header",
        lambda: M.httpclient.HTTPRequest("http://x/", headers={"a": "b\r\nc: d"}),
    )
    await r.attempt("util.import_object.missing", lambda: M.util.import_object("nope_module_x.y"))
    await r.attempt("concurrent.Future.result.pending", lambda: M.concurrent.Future().result())


async def deprecated(r: Recorder, M: _Modules) -> None:
    """The calls Tornado documents as deprecated (and where it warns)."""
    ioloop = M.ioloop
    loop = ioloop.IOLoop.current()
    r.warned("ioloop.IOLoop.current.running", lambda: ioloop.IOLoop.current())
    r.warned("ioloop.add_callback_from_signal", lambda: loop.add_callback_from_signal(lambda: None))
    httputil = M.httputil
    r.warned(
        "httputil.HTTPServerRequest.method_uri",
        lambda: httputil.HTTPServerRequest(method="GET", uri="/"),
    )
    start = httputil.RequestStartLine("GET", "/", "HTTP/1.1")
    r.warned(
        "httputil.HTTPServerRequest.start_line",
        lambda: httputil.HTTPServerRequest(start_line=start),
    )
    r.warned(
        "httputil.HTTPServerRequest.host",
        lambda: httputil.HTTPServerRequest(start_line=start, host="h"),
    )
    r.warned("httputil.HTTPServerRequest.no_args", lambda: httputil.HTTPServerRequest())
    request = httputil.HTTPServerRequest(
        start_line=start, headers=httputil.HTTPHeaders({"Host": "h"})
    )
    r.state("httpserverrequest.new", request)
    r.warned(
        "util.GzipDecompressor.no_max_length", lambda: M.util.GzipDecompressor().decompress(b"")
    )
    r.warned("auth.OpenIdMixin", lambda: M.auth.OpenIdMixin())
    r.warned(
        "platform.asyncio.AnyThreadEventLoopPolicy",
        lambda: M.platform__asyncio.AnyThreadEventLoopPolicy(),
    )
    future = r.warned(
        "websocket.websocket_connect.callback",
        lambda: M.websocket.websocket_connect(
            f"ws://127.0.0.1:{_closed_port()}/", callback=lambda f: None
        ),
    )
    if future is not None:
        try:
            await asyncio.wait_for(future, _DEADLINE)
        except Exception:
            pass
    logger = logging.getLogger("surface.probe")
    logger.propagate = False

    def expect_info() -> None:
        with M.testing.ExpectLog(logger, "hello"):
            logger.info("hello")

    old = logger.level
    logger.setLevel(logging.INFO)
    r.warned("testing.ExpectLog.info_without_level", expect_info)
    logger.setLevel(old)


def sync_deprecated(r: Recorder, M: _Modules) -> None:
    """Deprecated calls that need no running loop."""
    ioloop = M.ioloop

    def make_and_clear() -> None:
        loop = ioloop.IOLoop(make_current=False)
        try:
            r.warned("ioloop.IOLoop.make_current", loop.make_current)
            r.warned("ioloop.IOLoop.clear_current", ioloop.IOLoop.clear_current)
        finally:
            loop.close()

    r.warned("ioloop.IOLoop.make_current.outer", make_and_clear)
    del r.warnings["ioloop.IOLoop.make_current.outer"]

    class Old(M.testing.AsyncTestCase):  # type: ignore[misc,name-defined]
        def get_new_ioloop(self) -> Any:
            return ioloop.IOLoop(make_current=False)

        def test_nothing(self) -> None:
            pass

    def run_case() -> None:
        result = unittest.TestResult()
        Old("test_nothing").run(result)

    r.warned("testing.AsyncTestCase.get_new_ioloop", run_case)


# Texts for the escape functions: the edges by hand, then a seeded run of
# pieces (entities, schemes, percent escapes, punctuation) that linkify,
# xhtml_unescape and the URL functions read differently when they differ.
_ESCAPE_EDGES = (
    "",
    "plain",
    "<b> & \"q\" 'a'",
    "&lt;b&gt; &amp; &quot; &#39; &#x27;",
    "&amp &copy2 &nosuch; &#0; &#128; &#x9F; &#xD800; &#x110000; &#99999999999; &#12a;",
    "&#xZZ; &#; &#x; &",
    "caf\u00e9 \U0001f600 \u2028",
    "a+b c%20d%2B%zz%e9%",
    "http://x.org/a?b=c&d=e#f",
    "HTTP://upper.example/ Https://mixed.example",
    "www.example.com/path/to/a/rather/long/page.html?query=1&x=2",
    "see (http://en.wikipedia.org/wiki/Foo_(bar)) now.",
    "ftp://files.example/x mailto:a@b.example javascript:alert(1)",
    "http://example.com/a&amp;b/very/long/path/segment?and=query&more=1",
    "--http://lead.example -www.x.org",
    "a=1&b=&c&=d&a=2",
    "  spaced \t\n out  ",
    '{"k": [1, 2.5, null, true, "s"]}',
    "[1,",
)
_ESCAPE_PIECES = (
    list("abc XYZ019<>&\"'/\\:.?#=%+-_@~!*()[]{},;\t\n\r")
    + ["\u00e9", "\u2028", "\U0001f600", "http://", "https://", "HTTP://", "www.", "ftp://"]
    + ["mailto:", ".com", "&amp;", "&#39;", "&lt;", "&#x41;", "&nbsp;", "&#0;", "&bogus;"]
    + ["%41", "%e9", "%zz", "javascript:", "x.org/a?b=c&d", "/very/long/path/piece"]
)


def _escape_texts() -> list[str]:
    import random

    rnd = random.Random(20261130)
    made = [
        "".join(rnd.choice(_ESCAPE_PIECES) for _ in range(rnd.randint(1, 24))) for _ in range(40)
    ]
    return [*_ESCAPE_EDGES, *made]


async def escapes(r: Recorder, M: _Modules) -> None:
    """What each function of ``escape`` returns for the texts above (its
    repr), or the exception's type it raises: pages and their snapshot
    tests compare these bytes."""
    escape = M.escape

    def hrefs(url: str) -> str:
        return 'class="ext"' if "x" in url else ""

    calls: dict[str, Callable[[str], Any]] = {
        "xhtml_escape": escape.xhtml_escape,
        "xhtml_unescape": escape.xhtml_unescape,
        "url_escape": escape.url_escape,
        "url_escape.noplus": lambda s: escape.url_escape(s, plus=False),
        "url_unescape": escape.url_unescape,
        "url_unescape.noplus": lambda s: escape.url_unescape(s, plus=False),
        "url_unescape.bytes": lambda s: escape.url_unescape(s, encoding=None),
        "squeeze": escape.squeeze,
        "linkify": escape.linkify,
        "linkify.shorten": lambda s: escape.linkify(s, shorten=True),
        "linkify.params": lambda s: escape.linkify(
            s, extra_params='rel="nofollow"', require_protocol=True
        ),
        "linkify.callable": lambda s: escape.linkify(s, extra_params=hrefs),
        "linkify.permitted": lambda s: escape.linkify(
            s, permitted_protocols=["http", "ftp", "mailto", "HTTP"]
        ),
        "json_encode": lambda s: escape.json_encode({"k": s, s: [s]}),
        "json_decode": escape.json_decode,
        "parse_qs_bytes": lambda s: escape.parse_qs_bytes(s, keep_blank_values=True),
        "recursive_unicode": lambda s: escape.recursive_unicode({s.encode(): [s.encode()]}),
    }
    for index, text in enumerate(_escape_texts()):
        for name, call in calls.items():
            try:
                got = repr(call(text))
            except Exception as exc:
                got = f"raises {type(exc).__name__}"
            r.values[f"escape.{name}.{index:02d}"] = got


def run(package: str) -> dict[str, dict[str, str]]:
    M = _Modules(package)
    r = Recorder(package)
    sync_deprecated(r, M)
    for scenario in (
        tcpserver,
        iostream,
        http,
        client_objects,
        calls,
        deprecated,
        first_steps,
        messages,
        log_sites,
        call_shapes,
        values,
        escapes,
    ):
        asyncio.run(_guarded(r, scenario, M))
    return {
        "states": r.states,
        "warnings": r.warnings,
        "raises": r.raises,
        "private": r.private,
        "first_step": r.first_step,
        "messages": r.messages,
        "log_sites": r.log_sites,
        "call_shapes": r.call_shapes,
        "values": r.values,
    }


async def _guarded(
    r: Recorder, scenario: Callable[[Recorder, _Modules], Awaitable[None]], M: _Modules
) -> None:
    name = scenario.__name__
    try:
        await asyncio.wait_for(scenario(r, M), 30)
    except Exception as exc:  # a scenario that breaks is itself a difference
        r.raises[f"scenario {name}"] = f"broke: {type(exc).__name__}: {exc}"
