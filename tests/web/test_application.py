"""Application: routes, hosts, settings, logging, delegates and listen()."""

from __future__ import annotations

import logging
import sys
import types
from typing import Any, Optional
from unittest import mock

import pytest
import wrapt

from squall import httputil
from squall.concurrent import Future
from squall.log import access_log
from squall.routing import HostMatches, PathMatches, Rule, url
from squall.testing import AsyncHTTPTestCase, AsyncTestCase, ExpectLog, bind_unused_port
from squall.web import Application, ErrorHandler, HTTPError, RequestHandler, stream_request_body
from squall.web.application import _clear_template_loaders, _HandlerDelegate


class Reply(RequestHandler):
    def initialize(self, reply: str = "reply") -> None:
        self.reply = reply

    def get(self, *args: str, **kwargs: str) -> None:
        self.write(self.reply)


class Quiet(AsyncHTTPTestCase):
    def setUp(self) -> None:
        self._level = access_log.level
        access_log.setLevel(logging.CRITICAL)
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        access_log.setLevel(self._level)


class HostTest(Quiet):
    def get_app(self) -> Application:
        self.app = Application([("/foo", Reply, {"reply": "wildcard"})])
        return self.app

    def test_host_specific_routes_come_first(self) -> None:
        self.app.add_handlers("www.example.com", [("/foo", Reply, {"reply": "[0]"})])
        self.app.add_handlers(r"www\.example\.com", [("/bar", Reply, {"reply": "[1]"})])
        self.app.add_handlers("www.e.*e.com", [("/baz", Reply, {"reply": "[2]"})])
        host = {"Host": "www.example.com"}
        assert self.fetch("/foo").body == b"wildcard"
        assert self.fetch("/bar").code == 404
        assert self.fetch("/foo", headers=host).body == b"[0]"
        assert self.fetch("/bar", headers=host).body == b"[1]"
        assert self.fetch("/baz", headers={"Host": "www.exe.com"}).body == b"[2]"


class DefaultHostTest(Quiet):
    def get_app(self) -> Application:
        self.app = Application([], default_host="www.example.com")
        return self.app

    def test_default_host_routes_serve_other_hosts(self) -> None:
        self.app.add_handlers("www.example.com", [("/foo", Reply, {"reply": "[0]"})])
        self.app.add_handlers("www.test.com", [("/baz", Reply, {"reply": "[1]"})])
        assert self.fetch("/foo").body == b"[0]"
        assert self.fetch("/baz").code == 404
        assert self.fetch("/foo", headers={"X-Real-Ip": "1.2.3.4"}).code == 404
        self.app.default_host = "www.test.com"
        assert self.fetch("/baz").body == b"[1]"


class NestedRulesTest(Quiet):
    def get_app(self) -> Application:
        def plain_callable(request: httputil.HTTPServerRequest) -> None:
            assert request.connection is not None
            request.connection.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", 200, "OK"),
                httputil.HTTPHeaders({"Content-Length": "4"}),
                b"call",
            )
            request.connection.finish()

        self.app = Application(
            [
                (HostMatches("nested.test"), [(PathMatches("/n"), Reply, {"reply": "nested"})]),
                Rule(PathMatches("/callable"), plain_callable),
                url(r"/named/(\d+)", Reply, name="named"),
                ("/by_name", "tests.web.test_application.Reply", {"reply": "imported"}),
            ]
        )
        return self.app

    def test_targets(self) -> None:
        assert self.fetch("/n", headers={"Host": "nested.test"}).body == b"nested"
        assert self.fetch("/n").code == 404
        assert self.fetch("/callable").body == b"call"
        assert self.fetch("/named/3").body == b"reply"
        assert self.fetch("/by_name").body == b"imported"

    def test_reverse_url(self) -> None:
        assert self.app.reverse_url("named", 42) == "/named/42"
        with pytest.raises(KeyError, match="missing not found in named urls"):
            self.app.reverse_url("missing")


class DefaultHandlerTest(Quiet):
    def get_app(self) -> Application:
        return Application(
            [("/foo", Reply)],
            default_handler_class=ErrorHandler,
            default_handler_args={"status_code": 403},
        )

    def test_default_handler_class(self) -> None:
        assert self.fetch("/nope").code == 403


class Default404Test(Quiet):
    def get_app(self) -> Application:
        return Application([("/foo", Reply)])

    def test_404_page(self) -> None:
        response = self.fetch("/")
        assert response.code == 404
        assert response.body == (
            b"<html><title>404: Not Found</title><body>404: Not Found</body></html>"
        )


class LogFunctionTest(Quiet):
    def get_app(self) -> Application:
        self.logged: list[tuple[int, str]] = []
        return Application(
            [("/", Reply)],
            log_function=lambda h: self.logged.append((h.get_status(), h.request.uri)),
        )

    def test_log_function_replaces_the_access_log(self) -> None:
        self.fetch("/?x=1")
        assert self.logged == [(200, "/?x=1")]


class AccessLogTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        class Status(RequestHandler):
            def get(self) -> None:
                self.set_status(int(self.get_argument("code")))

        return Application([("/", Status)])

    def test_levels_by_status(self) -> None:
        with mock.patch.object(access_log, "level", logging.INFO):
            with ExpectLog(
                access_log, r"200 GET /\?code=200 \(127.0.0.1\) [0-9.]+ms", level=logging.INFO
            ):
                self.fetch("/?code=200")
            with ExpectLog(access_log, r"404 GET", level=logging.WARNING):
                self.fetch("/?code=404")
            with ExpectLog(access_log, r"503 GET", level=logging.ERROR):
                self.fetch("/?code=503")


class OldStyleCallTest(Quiet):
    def get_app(self) -> Application:
        self.app = Application([("/", Reply, {"reply": "called"})])
        return self.app

    def test_app_as_request_callback(self) -> None:
        from squall.httpserver import HTTPServer

        assert isinstance(self.app.start_request(None, mock.Mock()), httputil.HTTPMessageDelegate)

        def callback(request: httputil.HTTPServerRequest) -> None:
            self.app(request)

        server = HTTPServer(callback)
        sock, port = bind_unused_port()
        server.add_sockets([sock])
        try:
            response = self.fetch(f"http://127.0.0.1:{port}/")
            assert response.body == b"called"
        finally:
            server.stop()
            self.io_loop.run_sync(server.close_all_connections)


class ListenTest(AsyncTestCase):
    def test_listen_returns_a_listening_server(self) -> None:
        app = Application([])
        server = app.listen(0, address="127.0.0.1", backlog=8, flags=0)
        try:
            assert server is not None
        finally:
            server.stop()


@stream_request_body
class Streaming(RequestHandler):
    def prepare(self) -> None:
        self.chunks: list[bytes] = []

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def put(self) -> None:
        self.write(b"|".join(self.chunks))


def _conn() -> Any:
    conn = mock.Mock()
    conn.write_headers.return_value = None
    return conn


def _request(conn: Any, method: str = "GET", path: str = "/") -> httputil.HTTPServerRequest:
    return httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine(method, path, "HTTP/1.1"),
        headers=httputil.HTTPHeaders(),
        connection=conn,
    )


def test_handler_delegate_streams_to_the_handler() -> None:
    import asyncio

    async def run() -> bytes:
        app = Application([("/", Streaming)])
        conn = _conn()
        request = _request(conn, "PUT")
        delegate = app.find_handler(request)
        assert isinstance(delegate, _HandlerDelegate) and delegate.stream_request_body
        prepared = delegate.headers_received(
            httputil.RequestStartLine("PUT", "/", "HTTP/1.1"), request.headers
        )
        assert isinstance(prepared, Future)
        await prepared
        assert delegate.data_received(b"a") is None
        delegate.data_received(b"b")
        delegate.finish()
        for _ in range(5):
            await asyncio.sleep(0)
        return conn.write_headers.call_args[0][2]  # type: ignore[no-any-return]

    assert asyncio.run(run()) == b"a|b"


def test_handler_delegate_drops_the_body_on_close() -> None:
    app = Application([("/", Reply)])
    delegate = app.find_handler(_request(_conn()))
    delegate.data_received(b"partial")
    delegate.on_connection_close()
    assert not delegate.chunks


def test_streaming_delegate_reports_close_to_the_handler() -> None:
    import asyncio

    closed: list[bool] = []

    @stream_request_body
    class Watch(Streaming):
        def on_connection_close(self) -> None:
            super().on_connection_close()
            closed.append(self.request._body_future.done())  # type: ignore[attr-defined]

    async def run() -> None:
        app = Application([("/", Watch)])
        request = _request(_conn(), "PUT")
        delegate = app.find_handler(request)
        delegate.on_connection_close()  # no handler yet: nothing happens
        delegate.headers_received(
            httputil.RequestStartLine("PUT", "/", "HTTP/1.1"), request.headers
        )
        delegate.on_connection_close()
        for _ in range(5):
            await asyncio.sleep(0)

    asyncio.run(run())
    assert closed == [True]


# --- settings ---------------------------------------------------------------------------


def test_debug_implies_development_settings() -> None:
    app = Application(debug=True, autoreload=False)
    assert app.settings["compiled_template_cache"] is False
    assert app.settings["static_hash_cache"] is False
    assert app.settings["serve_traceback"] is True
    assert app.settings["autoreload"] is False


def test_autoreload_starts_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[bool] = []
    fake = types.ModuleType("squall.autoreload")
    fake.start = lambda: started.append(True)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "squall.autoreload", fake)
    with mock.patch("importlib.util.find_spec", return_value=object()):
        Application(autoreload=True)
    assert started == [True]
    with mock.patch("importlib.util.find_spec", return_value=None):
        Application(autoreload=True)
    assert started == [True]


def test_transforms_setting() -> None:
    class T:
        def __init__(self, request: Any) -> None:
            pass

    assert Application(transforms=[T]).transforms == [T]  # type: ignore[list-item]
    app = Application()
    assert app.transforms == []
    app.add_transform(T)  # type: ignore[arg-type]
    assert app.transforms == [T]


def test_compress_response_adds_gzip() -> None:
    transforms = pytest.importorskip("squall.web.transforms")
    assert Application(compress_response=True).transforms == [transforms.GZipContentEncoding]
    assert Application(gzip=True).transforms == [transforms.GZipContentEncoding]


def test_static_path_adds_static_routes() -> None:
    static = pytest.importorskip("squall.web.static")
    app = Application(static_path="/tmp", static_url_prefix="/s/", static_handler_args={"x": 1})
    patterns = [rule.matcher.regex.pattern for rule in app.wildcard_router.rules]  # type: ignore[attr-defined]
    assert patterns[:3] == [r"/(robots\.txt)$", r"/(favicon\.ico)$", r"/s/(.*)$"]
    rule = app.wildcard_router.rules[0]
    assert rule.target is static.StaticFileHandler
    assert rule.target_kwargs == {"x": 1, "path": "/tmp"}

    class Custom(static.StaticFileHandler):  # type: ignore[misc, name-defined]
        pass

    app = Application(static_path="/tmp", static_handler_class=Custom)
    assert app.wildcard_router.rules[0].target is Custom


def test_ui_methods_from_modules_lists_and_dicts() -> None:
    methods = types.ModuleType("methods")
    methods.shout = lambda handler, s: s.upper()  # type: ignore[attr-defined]
    methods._private = lambda handler: None  # type: ignore[attr-defined]
    methods.Capital = lambda handler: None  # type: ignore[attr-defined]
    methods.CONSTANT = 3  # type: ignore[attr-defined]
    app = Application(ui_methods=[methods, {"whisper": lambda h, s: s.lower()}])
    assert sorted(app.ui_methods) == ["shout", "whisper"]


def test_ui_modules_from_modules_lists_and_dicts() -> None:
    ui = pytest.importorskip("squall.web.ui")

    class Box(ui.UIModule):  # type: ignore[misc, name-defined]
        def render(self) -> str:
            return "box"

    modules = types.ModuleType("modules")
    modules.Box = Box  # type: ignore[attr-defined]
    modules.other = 3  # type: ignore[attr-defined]
    app = Application(ui_modules=[modules, {"Box2": Box, "junk": object}])
    assert app.ui_modules["Box"] is Box and app.ui_modules["Box2"] is Box
    assert "junk" not in app.ui_modules and "other" not in app.ui_modules
    assert {"linkify", "xsrf_form_html", "Template"} <= set(app.ui_modules)


def test_debug_clears_template_loaders_per_request() -> None:
    import asyncio

    cleared: list[bool] = []

    class Loaders(dict[str, Any]):
        def clear(self) -> None:
            cleared.append(True)

    with mock.patch.object(RequestHandler, "_template_loaders", Loaders(), create=True):
        _clear_template_loaders()
        assert cleared == [True]

        async def run() -> None:
            app = Application([("/", Reply)], compiled_template_cache=False)
            app.find_handler(_request(_conn())).finish()

        asyncio.run(run())
        assert cleared == [True, True]


def test_errors_of_http_error_objects() -> None:
    import copy

    error = HTTPError(403, "denied %s", "x", reason="Go away")
    assert str(error) == "HTTP 403: Go away (denied x)"
    assert str(HTTPError(682)) == "HTTP 682: Unknown"
    assert str(HTTPError(404, "50% off")) == "HTTP 404: Not Found (50% off)"
    clone = copy.copy(error)
    assert clone is not error and (clone.status_code, clone.reason) == (403, "Go away")


def test_http_error_log_message_is_a_read_only_property() -> None:
    # JupyterHub's SpawnException: a class attribute shadows the property,
    # the subclass sets its own message, then calls HTTPError.__init__ with
    # another; its own is what the log shows.
    class SpawnError(HTTPError):
        log_message = ""

        def __init__(self, message: str, *, log_message: str = "") -> None:
            self.log_message = log_message or message
            super().__init__(400, message)

    error = SpawnError("shown", log_message="logged")
    assert error.log_message == "logged"
    assert str(error) == "HTTP 400: Bad Request (shown)"
    assert isinstance(vars(HTTPError).get("log_message"), property)
    with pytest.raises(AttributeError):
        HTTPError(500).log_message = "x"  # type: ignore[misc]
    # Without args the message is meant as is: "%" doubled for the log's
    # formatting; with args, as given.
    assert HTTPError(404, "50% off").log_message == "50%% off"
    assert HTTPError(404, "%s off", 50).log_message == "%s off"
    assert HTTPError(404, "%s off", 50).get_message() == "50 off"
    assert HTTPError(404).log_message is None and HTTPError(404).get_message() is None
    assert (HTTPError(404, "").get_message(), str(HTTPError(404, ""))) == (
        "",
        "HTTP 404: Not Found",
    )


def test_handler_delegate_defaults() -> None:
    app = Application()
    delegate = app.get_handler_delegate(_request(_conn()), Reply)
    assert (delegate.handler_kwargs, delegate.path_args, delegate.path_kwargs) == ({}, [], {})
    none: Optional[Any] = delegate.headers_received(
        httputil.RequestStartLine("GET", "/", "HTTP/1.1"), httputil.HTTPHeaders()
    )
    assert none is None


def test_log_request_honours_an_overridden_get_status() -> None:
    class Teapot(Reply):
        def get_status(self) -> int:
            return 418

    handler = Teapot(Application(), _request(_conn()))
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    try:
        with mock.patch.object(access_log, "handle") as handle:
            handler.application.log_request(handler)
    finally:
        access_log.setLevel(level)
    record = handle.call_args[0][0]
    assert record.levelno == logging.WARNING and record.args[0] == 418


def test_log_request_follows_level_changes_after_a_request_was_logged() -> None:
    # The level is read from the logger's cache: setLevel() and
    # logging.disable() must still take effect at once.
    handler = Reply(Application(), _request(_conn()))
    level = access_log.level
    try:
        with mock.patch.object(access_log, "handle") as log:
            access_log.setLevel(logging.CRITICAL)
            handler.application.log_request(handler)
            assert not log.called
            access_log.setLevel(logging.INFO)
            handler.application.log_request(handler)
            assert log.call_count == 1
            logging.disable(logging.INFO)
            try:
                handler.application.log_request(handler)
            finally:
                logging.disable(logging.NOTSET)
            assert log.call_count == 1
            access_log.disabled = True
            try:
                handler.application.log_request(handler)
            finally:
                access_log.disabled = False
            assert log.call_count == 1
            handler.application.log_request(handler)
            assert log.call_count == 2
    finally:
        access_log.setLevel(level)


def test_access_record_is_made_without_a_caller_lookup_per_request() -> None:
    # Thousands of long polls answered at once log thousands of lines: the
    # record says where log_request made it, as findCaller would, without
    # walking the stack for each one.
    handler = Reply(Application(), _request(_conn()))
    level = access_log.level
    access_log.setLevel(logging.INFO)
    try:
        handler.application.log_request(handler)  # the place is found once
        with (
            mock.patch.object(access_log, "findCaller", side_effect=AssertionError) as find,
            mock.patch.object(access_log, "handle") as handle,
        ):
            for _ in range(3):
                handler.application.log_request(handler)
    finally:
        access_log.setLevel(level)
    assert not find.called and handle.call_count == 3
    record = handle.call_args[0][0]
    assert record.funcName == "log_request"
    # As on Tornado, whose log_request is in web.py (log formats show it).
    assert (record.module, record.filename) == ("web", "web.py") and record.lineno > 0
    assert record.getMessage().startswith("200 GET / (")


def _get(path: str) -> httputil.HTTPServerRequest:
    return httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine("GET", path, "HTTP/1.1"),
        headers=httputil.HTTPHeaders({"Host": "example.com"}),
    )


class Other(Reply):
    pass


def test_literal_route_found_directly_keeps_rule_order() -> None:
    app = Application(
        [
            ("/a", Reply, {"reply": "a"}),
            (r"/(b)", Other),
            ("/b", Reply),
            ("/c", Reply),
        ]
    )
    first = app.find_handler(_get("/a"))
    assert first.handler_class is Reply and first.handler_kwargs == {"reply": "a"}
    # A pattern rule listed before the literal one still wins.
    second = app.find_handler(_get("/b"))
    assert second.handler_class is Other and second.path_args == [b"b"]
    assert app.find_handler(_get("/c")).handler_class is Reply
    # Rules added later are seen.
    app.wildcard_router.add_rules([("/d", Other)])
    assert app.find_handler(_get("/d")).handler_class is Other


def test_literal_route_after_patterns_that_cannot_match_it_is_direct() -> None:
    # Jupyter's order: a few patterns, then its literal API routes.
    app = Application(
        [
            (r"/(robots\.txt)", Other),
            (r"/static/(.*)", Other),
            ("/api/spec.yaml", Other),
            ("/api/status", Reply, {"reply": "status"}),
            (r"/api/(\w+)", Other),
            ("/api/kernels", Reply),
        ]
    )
    router = app.wildcard_router
    assert router.direct_target("/api/status") == (Reply, {"reply": "status"})
    # A pattern before it that matches the path: routed in order, not directly.
    assert router.direct_target("/api/kernels") is None
    assert app.find_handler(_get("/api/kernels")).handler_class is Other
    delegate = app.find_handler(_get("/api/status"))
    assert delegate.handler_class is Reply and delegate.handler_kwargs == {"reply": "status"}
    # A rule added later that matches the path takes it back.
    router.rules.insert(0, Rule(PathMatches(r"/api/stat(us)"), Other))
    assert router.direct_target("/api/status") is None
    assert app.find_handler(_get("/api/status")).handler_class is Other


def test_a_matcher_not_of_paths_before_a_literal_route_keeps_it_routed_in_order() -> None:
    app = Application([(HostMatches("other.example"), [("/a", Other)]), ("/a", Reply)])
    assert app.wildcard_router.direct_target("/a") is None
    assert app.find_handler(_get("/a")).handler_class is Reply


def test_host_rules_that_cannot_route_a_path_are_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Jupyter's extensions add their routes for every host (".*$").
    app = Application([("/x", Reply, {"reply": "wildcard"})])
    app.add_handlers(".*$", [(r"/ext/(\w+)", Other), ("/ext", Other)])
    tried: list[str] = []
    through = app.default_router.find_handler

    def counting(request: Any, **kwargs: Any) -> Any:
        tried.append(request.path)
        return through(request, **kwargs)

    monkeypatch.setattr(app.default_router, "find_handler", counting)
    assert app.find_handler(_get("/x")).handler_kwargs == {"reply": "wildcard"}
    assert tried == []  # straight to the wildcard router
    assert app.find_handler(_get("/ext/a")).handler_class is Other
    assert tried == ["/ext/a"]
    # A host rule added later, or a route added to one, that can match the path wins.
    app.add_handlers(".*$", [("/x", Other)])
    assert app.find_handler(_get("/x")).handler_class is Other
    app.default_router.rules.pop(1)
    assert app.find_handler(_get("/x")).handler_class is Reply
    app.default_router.rules[0].target.add_rules([(r"/(x)", Other)])
    assert app.find_handler(_get("/x")).handler_class is Other


def test_literal_route_honours_an_overridden_get_handler_delegate() -> None:
    seen: list[str] = []

    class Custom(Application):
        def get_handler_delegate(self, request: Any, target_class: Any, *args: Any) -> Any:
            seen.append(request.path)
            return super().get_handler_delegate(request, target_class, *args)

    app = Custom([("/a", Reply)])
    assert app.find_handler(_get("/a")).handler_class is Reply
    assert seen == ["/a"]


class Echo(RequestHandler):
    def initialize(self, prefix: bytes = b"") -> None:
        self.prefix = prefix

    def post(self) -> None:
        self.write(self.prefix + self.request.body)


def _serve(app: Application, method: str, path: str, body: list[bytes]) -> tuple[Any, Any]:
    # Drives the application's own delegate the way the server does.
    import asyncio

    conn = _conn()

    async def run() -> Any:
        delegate = app.start_request("server", conn)
        start = httputil.RequestStartLine(method, path, "HTTP/1.1")
        ret = delegate.headers_received(start, httputil.HTTPHeaders({"Host": "h"}))
        if ret is not None:
            await ret
        for chunk in body:
            delegate.data_received(chunk)
        delegate.finish()
        for _ in range(5):
            await asyncio.sleep(0)
        return delegate

    return asyncio.run(run()), conn


def test_application_delegate_serves_literal_routes_itself() -> None:
    app = Application([("/e", Echo, {"prefix": b">"}), ("/plain", Echo)])
    delegate, conn = _serve(app, "POST", "/e", [b"a", b"b"])
    # One delegate per request: nothing was forwarded to a second one.
    assert delegate.delegate is None and delegate.handler_class is Echo
    assert delegate.request.host == "h" and delegate.request.server_connection == "server"
    assert conn.write_headers.call_args[0][2] == b">ab"
    _, conn = _serve(app, "POST", "/plain", [b"x"])
    assert conn.write_headers.call_args[0][2] == b"x"
    _, conn = _serve(app, "POST", "/plain", [])
    assert conn.write_headers.call_args[0][2] == b""


def test_application_delegate_forwards_everything_else() -> None:
    app = Application([(r"/p/(\w+)", Reply), ("/s", Streaming)])
    delegate, conn = _serve(app, "GET", "/p/x", [])
    assert isinstance(delegate.delegate, _HandlerDelegate)
    assert delegate.delegate.path_args == [b"x"]
    assert conn.write_headers.call_args[0][2] == b"reply"
    delegate, conn = _serve(app, "PUT", "/s", [b"1", b"2"])
    assert delegate.delegate.stream_request_body
    assert conn.write_headers.call_args[0][2] == b"1|2"
    with ExpectLog(access_log, "404", required=False):
        delegate, conn = _serve(app, "GET", "/missing", [])
    assert conn.write_headers.call_args[0][0].code == 404


def test_application_delegate_honours_an_overridden_find_handler() -> None:
    class Custom(Application):
        def find_handler(self, request: Any, **kwargs: Any) -> Any:
            return self.get_handler_delegate(request, Reply, {"reply": "custom"})

    delegate, conn = _serve(Custom([("/", Echo)]), "GET", "/", [])
    assert delegate.delegate.handler_class is Reply
    assert conn.write_headers.call_args[0][2] == b"custom"


def test_application_delegate_calls_a_wrapper_put_on_application(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An agent or a profiler wraps Application.find_handler on the class:
    # every request goes through the wrapper, literal routes included.
    seen: list[str] = []
    stock = Application.find_handler

    def wrapper(self: Application, request: Any, **kwargs: Any) -> Any:
        seen.append(request.path)
        return stock(self, request, **kwargs)

    monkeypatch.setattr(Application, "find_handler", wrapper)
    _, conn = _serve(Application([("/", Reply)]), "GET", "/", [])
    assert seen == ["/"]
    assert conn.write_headers.call_args[0][2] == b"reply"


def test_application_delegate_drops_the_body_on_close() -> None:
    app = Application([("/", Echo)])
    delegate = app.start_request("server", _conn())
    delegate.on_connection_close()  # before the head: nothing to do
    delegate.headers_received(
        httputil.RequestStartLine("POST", "/", "HTTP/1.1"), httputil.HTTPHeaders()
    )
    delegate.data_received(b"partial")
    delegate.on_connection_close()
    assert delegate.chunks is None


def test_application_delegate_with_host_routes_uses_find_handler() -> None:
    app = Application([("/", Reply)])
    app.add_handlers("other.example", [("/", Reply, {"reply": "other"})])
    delegate, conn = _serve(app, "GET", "/", [])
    assert isinstance(delegate.delegate, _HandlerDelegate)
    assert conn.write_headers.call_args[0][2] == b"reply"


def test_pattern_route_gets_the_body_and_debug_settings_reset_caches() -> None:
    class EchoPath(Echo):
        def post(self, *args: str) -> None:
            self.write(self.request.body)

    with mock.patch("squall.web.static.StaticFileHandler.reset") as reset:
        app = Application([(r"/(\w+)", EchoPath), ("/lit", Echo)], static_hash_cache=False)
        _, conn = _serve(app, "POST", "/x", [b"a", b"b"])
        assert conn.write_headers.call_args[0][2] == b"ab"
        _, conn = _serve(app, "POST", "/lit", [b"c"])
        assert conn.write_headers.call_args[0][2] == b"c"
    assert reset.call_count == 2


def test_start_request_read_from_an_application_or_from_the_class() -> None:
    app = Application([("/", Reply)])
    conn = _conn()
    # As a server reads it (once per connection), then calls it per request.
    starter = app.start_request
    # Bound to the application, as a method read from one is (one object,
    # where a partial made three for each connection).
    assert starter.__self__ is app
    first, second = starter("server", conn), starter("server", conn)
    assert isinstance(first, _HandlerDelegate) and first is not second
    assert first.application is app and first.server_conn == "server"
    assert first.request_conn is conn and first.request is None
    # From the class: the function, with its name, to call with the application.
    assert Application.start_request.__name__ == "start_request"
    plain = Application.start_request(app, "server", conn)
    assert isinstance(plain, _HandlerDelegate) and plain.application is app

    calls: list[object] = []

    class Mine(Application):
        def start_request(
            self, server_conn: object, request_conn: httputil.HTTPConnection
        ) -> httputil.HTTPMessageDelegate:
            calls.append(server_conn)
            return super().start_request(server_conn, request_conn)

    mine = Mine([("/", Reply)])
    assert isinstance(mine.start_request("s", conn), _HandlerDelegate) and calls == ["s"]
    with mock.patch.object(app, "start_request") as patched:
        app.start_request("server", conn)
    assert patched.call_count == 1


class PatchedDelegateTest(Quiet):
    """A wrapper put on Application.get_handler_delegate (as tracers do) is
    called for every request it routes, before start-up or after the
    application served; removed, it is not."""

    def get_app(self) -> Application:
        return Application([("/", Reply)])

    def test_a_wrapper_on_get_handler_delegate_is_called(self) -> None:
        calls: list[str] = []
        original = Application.get_handler_delegate

        def plain(self: Application, *args: Any, **kwargs: Any) -> Any:
            calls.append("plain")
            return original(self, *args, **kwargs)

        def around(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            calls.append("wrapt")
            return wrapped(*args, **kwargs)

        assert self.fetch("/").code == 200
        for name, wrapper in (("plain", plain), ("wrapt", wrapt.FunctionWrapper(original, around))):
            calls.clear()
            with mock.patch.object(Application, "get_handler_delegate", wrapper):
                assert self.fetch("/").code == 200
            assert calls == [name]
            assert self.fetch("/").code == 200
            assert calls == [name]
