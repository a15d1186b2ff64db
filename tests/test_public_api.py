"""The public surface of every squall module: names, attributes users read, keyword arguments.

Squall promises Tornado's public API; these tests pin the parts a program
touches (module names, documented instance attributes, keyword arguments and
their defaults) so that a refactoring cannot drop one unnoticed. Items that
are known to be missing are strict xfails: they start failing once fixed, so
the marker is removed with the fix. tests/COMPAT.md lists every difference.
"""

from __future__ import annotations

import importlib
import inspect
import socket
import unittest
from collections.abc import Callable
from typing import Any

import pytest

import squall
from squall import http1connection, httputil, iostream, template, web, websocket
from squall.httpclient import AsyncHTTPClient
from squall.simple_httpclient import SimpleAsyncHTTPClient
from squall.testing import AsyncHTTPTestCase, gen_test

PUBLIC_MODULES = sorted(
    [f"squall.{name}" for name in squall.__all__ if name != "curl_httpclient"]
    + ["squall.websocket", "squall.wsgi", "squall.platform.asyncio"]
)

# The module-level names of Tornado 6.6 that programs use, per module.
TORNADO_NAMES: dict[str, str] = {
    "squall": "version version_info",
    "squall.auth": "AuthError FacebookGraphMixin GoogleOAuth2Mixin OAuth2Mixin OAuthMixin "
    "OpenIdMixin TwitterMixin",
    "squall.autoreload": "add_reload_hook main signal start wait watch",
    "squall.concurrent": "DummyExecutor FUTURES Future ReturnValueIgnoredError chain_future "
    "dummy_executor future_add_done_callback future_set_exc_info "
    "future_set_exception_unless_cancelled future_set_result_unless_cancelled is_future "
    "run_on_executor",
    "squall.escape": "json_decode json_encode linkify native_str parse_qs_bytes "
    "recursive_unicode squeeze to_basestring to_unicode url_escape url_unescape utf8 "
    "xhtml_escape xhtml_unescape",
    "squall.gen": "BadYieldError KeyReuseError LeakedCallbackError Multi Return "
    "ReturnValueIgnoredError Runner TimeoutError UnknownKeyError WaitIterator convert_yielded "
    "coroutine is_coroutine_function maybe_future moment multi multi_future sleep with_timeout",
    "squall.http1connection": "CR_OR_LF_RE DIGITS HEXDIGITS HTTP1Connection "
    "HTTP1ConnectionParameters HTTP1ServerConnection is_transfer_encoding_chunked "
    "parse_hex_int parse_int",
    "squall.httpclient": "AsyncHTTPClient HTTPClient HTTPClientError HTTPError HTTPRequest "
    "HTTPResponse main",
    "squall.httpserver": "HTTPServer",
    "squall.httputil": "HTTPConnection HTTPFile HTTPHeaders HTTPInputError HTTPMessageDelegate "
    "HTTPOutputError HTTPServerConnectionDelegate HTTPServerRequest HTTP_WHITESPACE "
    "ParseBodyConfig ParseMultipartConfig ParseUrlEncodedConfig RequestStartLine "
    "ResponseStartLine doctests encode_username_password format_timestamp "
    "parse_body_arguments parse_cookie parse_multipart_form_data parse_request_start_line "
    "parse_response_start_line qs_to_qsl responses set_parse_body_config "
    "split_host_and_port url_concat",
    "squall.ioloop": "Configurable IOLoop PeriodicCallback TimeoutError import_object",
    "squall.iostream": "BaseIOStream IOStream PipeIOStream SSLIOStream StreamBufferFullError "
    "StreamClosedError UnsatisfiableReadError doctests",
    "squall.locale": "CONTEXT_SEPARATOR CSVLocale GettextLocale LOCALE_NAMES Locale get "
    "get_supported_locales load_gettext_translations load_translations set_default_locale",
    "squall.locks": "BoundedSemaphore Condition Event Lock Semaphore",
    "squall.log": "LogFormatter access_log app_log colorama curses define_logging_options "
    "enable_pretty_logging gen_log",
    "squall.netutil": "BlockingResolver DefaultExecutorResolver DefaultLoopResolver "
    "ExecutorResolver OverrideResolver Resolver ThreadedResolver add_accept_handler "
    "bind_sockets bind_unix_socket is_valid_ip ssl_options_to_context ssl_wrap_socket",
    "squall.options": "Error OptionParser add_parse_callback define options "
    "parse_command_line parse_config_file print_help",
    "squall.platform.asyncio": "AddThreadSelectorEventLoop AsyncIOLoop AsyncIOMainLoop "
    "BaseAsyncIOLoop SelectorThread to_asyncio_future to_tornado_future",
    "squall.process": "CalledProcessError Subprocess cpu_count fork_processes task_id",
    "squall.queues": "LifoQueue PriorityQueue Queue QueueEmpty QueueFull",
    "squall.routing": "AnyMatches DefaultHostMatches HostMatches Matcher PathMatches "
    "ReversibleRouter ReversibleRuleRouter Router Rule RuleRouter URLSpec",
    "squall.simple_httpclient": "HTTPStreamClosedError HTTPTimeoutError SimpleAsyncHTTPClient",
    "squall.tcpclient": "TCPClient",
    "squall.tcpserver": "TCPServer",
    "squall.template": "BaseLoader DictLoader Loader ParseError Template filter_whitespace",
    "squall.testing": "AsyncHTTPSTestCase AsyncHTTPTestCase AsyncTestCase ExpectLog "
    "bind_unused_port gen_test get_async_test_timeout main setup_with_context_manager",
    "squall.util": "ArgReplacer Configurable GzipDecompressor ObjectDict TimeoutError "
    "basestring_type bytes_type doctests errno_from_exception exec_in import_object "
    "raise_exc_info re_unescape timedelta_to_seconds unicode_type",
    "squall.web": "Application DEFAULT_SIGNED_VALUE_MIN_VERSION DEFAULT_SIGNED_VALUE_VERSION "
    "ErrorHandler FallbackHandler Finish GZipContentEncoding HTTPError "
    "MAX_SUPPORTED_SIGNED_VALUE_VERSION MIN_SUPPORTED_SIGNED_VALUE_VERSION "
    "MissingArgumentError OutputTransform RedirectHandler RequestHandler StaticFileHandler "
    "TemplateModule UIModule URLSpec addslash authenticated create_signed_value "
    "decode_signed_value get_signature_key_version is_absolute removeslash "
    "stream_request_body url",
    "squall.websocket": "WebSocketClientConnection WebSocketClosedError WebSocketError "
    "WebSocketHandler WebSocketProtocol WebSocketProtocol13 websocket_connect",
    "squall.wsgi": "HTTPRequest WSGIContainer to_wsgi_str",
}


def params(func: Callable[..., Any]) -> dict[str, Any]:
    """Parameter name -> default (``inspect.Parameter.empty`` when required)."""
    return {p.name: p.default for p in inspect.signature(func).parameters.values()}


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_all_names_exist_once(modname: str) -> None:
    module = importlib.import_module(modname)
    exported = list(getattr(module, "__all__", []))
    assert len(exported) == len(set(exported)), f"duplicates in {modname}.__all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{modname}.__all__ names what the module lacks"


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_exported_objects_live_where_their_module_says(modname: str) -> None:
    # A class re-homed to its package (``__module__`` rewritten) must be
    # reachable there, or pickling and reprs would name a path that fails.
    module = importlib.import_module(modname)
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not obj.__module__.startswith("squall"):
            continue
        home = importlib.import_module(obj.__module__)
        assert getattr(home, obj.__name__, None) is obj, f"{modname}.{name}"


@pytest.mark.parametrize("modname", sorted(TORNADO_NAMES))
def test_tornado_names_present(modname: str) -> None:
    module = importlib.import_module(modname)
    missing = [name for name in TORNADO_NAMES[modname].split() if not hasattr(module, name)]
    assert missing == []


def test_squall_lists_the_tornado_submodules() -> None:
    assert set(squall.__all__) >= {
        m.removeprefix("squall.").split(".")[0] for m in TORNADO_NAMES
    } - {
        "squall",
        "websocket",
        "wsgi",
    }
    # curl_httpclient is there with pycurl (the curl extra), else names the extra.
    try:
        import pycurl  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"squall\[curl\]"):
            importlib.import_module("squall.curl_httpclient")
    else:
        assert importlib.import_module("squall.curl_httpclient").CurlAsyncHTTPClient


# -- aliases and helpers added for Tornado parity


def test_web_url_is_urlspec() -> None:
    assert web.url is web.URLSpec
    spec = web.url(r"/a/(\d+)", web.RequestHandler, name="a")
    assert spec.reverse(3) == "/a/3"


def test_web_signed_value_versions() -> None:
    assert web.MIN_SUPPORTED_SIGNED_VALUE_VERSION <= web.DEFAULT_SIGNED_VALUE_MIN_VERSION
    assert web.DEFAULT_SIGNED_VALUE_VERSION <= web.MAX_SUPPORTED_SIGNED_VALUE_VERSION


def test_web_is_absolute() -> None:
    assert web.is_absolute("/static/a.css")
    assert web.is_absolute("https://cdn.example/a.js")
    assert not web.is_absolute("a.css")


def test_http_error_get_message() -> None:
    err = web.HTTPError(404, "no %s here", "page", reason="Gone Fishing")
    assert (err.status_code, err.reason, err.args) == (404, "Gone Fishing", ("page",))
    assert err.get_message() == "no page here"
    assert str(err) == "HTTP 404: Gone Fishing (no page here)"
    assert web.HTTPError(500).get_message() is None
    # Without args the message is literal, "%" included.
    assert web.HTTPError(400, "100% wrong").get_message() == "100% wrong"
    assert web.MissingArgumentError("q").arg_name == "q"


def test_http1connection_integers() -> None:
    assert http1connection.parse_int("0042") == 42
    assert http1connection.parse_hex_int("1aF") == 0x1AF
    for bad in ("", "+1", "-1", " 1", "1_0", "0x10"):
        with pytest.raises(ValueError, match="integer"):
            http1connection.parse_int(bad)
    for bad in ("", "g", "-a", " a"):
        with pytest.raises(ValueError, match="hexadecimal"):
            http1connection.parse_hex_int(bad)
    assert http1connection.DIGITS.fullmatch("123")
    assert http1connection.HEXDIGITS.fullmatch("beef")
    assert http1connection.CR_OR_LF_RE.search(b"a\nb")
    assert not http1connection.CR_OR_LF_RE.search(b"ab")


def test_http1connection_transfer_encoding() -> None:
    chunked = http1connection.is_transfer_encoding_chunked
    assert chunked(httputil.HTTPHeaders()) is False
    assert chunked(httputil.HTTPHeaders({"Transfer-Encoding": "Chunked"})) is True
    with pytest.raises(httputil.HTTPInputError, match="Unsupported Transfer-Encoding gzip"):
        chunked(httputil.HTTPHeaders({"Transfer-Encoding": "gzip"}))
    with pytest.raises(httputil.HTTPInputError, match="both Transfer-Encoding and Content"):
        chunked(httputil.HTTPHeaders({"Transfer-Encoding": "chunked", "Content-Length": "1"}))


def test_http1connection_signature() -> None:
    assert list(params(http1connection.HTTP1Connection.__init__)) == [
        "self",
        "stream",
        "is_client",
        "params",
        "context",
    ]


def test_iostream_doctests_is_a_suite() -> None:
    assert isinstance(iostream.doctests(), unittest.TestSuite)
    assert iostream.StreamClosedError().real_error is None


def test_websocket_protocol_constants() -> None:
    proto = websocket.WebSocketProtocol13
    assert (proto.FIN, proto.RSV1, proto.RSV2, proto.RSV3) == (0x80, 0x40, 0x20, 0x10)
    assert (proto.RSV_MASK, proto.OPCODE_MASK) == (0x70, 0x0F)
    # RFC 6455 §1.3's example.
    assert proto.compute_accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert proto.compute_accept_value(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_websocket_close_callback_arguments_are_optional() -> None:
    for cls in (websocket.WebSocketHandler, websocket.WebSocketClientConnection):
        defaults = params(cls.on_ws_connection_close)
        assert defaults["close_code"] is None and defaults["close_reason"] is None


def test_websocket_protocol_interface() -> None:
    base = websocket.WebSocketProtocol
    for name in ("close", "write_message", "write_ping", "set_nodelay", "on_connection_close"):
        assert callable(getattr(base, name))
        assert getattr(websocket.WebSocketProtocol13, name) is not getattr(base, name)


# -- instance attributes that programs read


def test_template_attributes() -> None:
    loader = template.DictLoader({"page.html": "{{ x }}"}, namespace={"n": 1})
    page = loader.load("page.html")
    for name in ("name", "code", "compiled", "autoescape", "namespace", "loader", "file"):
        assert hasattr(page, name), name
    assert page.name == "page.html" and page.loader is loader
    assert "page.html" in loader.templates and loader.dict == {"page.html": "{{ x }}"}
    for name in ("autoescape", "namespace", "whitespace", "lock"):
        assert hasattr(loader, name), name
    assert template.Loader("/tmp").root == "/tmp"
    err = template.ParseError("bad", "f.html", 3)
    assert (err.message, err.filename, err.lineno) == ("bad", "f.html", 3)


def test_application_attributes() -> None:
    app = web.Application([], cookie_secret="s", ui_modules={}, default_host="example.com")
    assert app.settings["cookie_secret"] == "s"
    assert app.default_host == "example.com"
    for name in ("ui_modules", "ui_methods", "transforms", "default_router", "wildcard_router"):
        assert hasattr(app, name), name


def test_application_listen_keywords() -> None:
    names = params(web.Application.listen)
    assert {"port", "address", "family", "backlog", "flags", "reuse_port"} <= set(names)


def test_application_listen_defaults_match_tornado() -> None:
    names = params(web.Application.listen)
    assert names["family"] == socket.AF_UNSPEC and names["backlog"] == 128


def test_httpserver_request_alias() -> None:
    from squall import httpserver

    assert getattr(httpserver, "HTTPRequest", None) is httputil.HTTPServerRequest


def test_handler_cookie_and_render_keywords() -> None:
    handler = web.RequestHandler
    assert {
        "domain",
        "expires",
        "path",
        "expires_days",
        "max_age",
        "httponly",
        "secure",
        "samesite",
    } <= set(params(handler.set_cookie))
    assert params(handler.get_signed_cookie)["max_age_days"] == 31
    assert params(handler.set_signed_cookie)["expires_days"] == 30
    assert params(handler.static_url)["include_host"] is None
    assert hasattr(handler, "check_trusted_origin")
    # Error pages skip the cross-origin check, as in Tornado.
    assert web.ErrorHandler.check_trusted_origin is not handler.check_trusted_origin


class Seen(web.RequestHandler):
    def get(self, *args: str, **kwargs: str) -> None:
        self.write(
            {
                "request": self.request.uri,
                "application": self.application is self.settings["app_ref"][0],
                "path_args": list(self.path_args),
                "path_kwargs": self.path_kwargs,
                "ui": hasattr(self.ui, "modules"),
            }
        )


class HandlerAttributesTest(AsyncHTTPTestCase):
    def get_app(self) -> web.Application:
        ref: list[web.Application] = []
        app = web.Application([(r"/seen/(\w+)", Seen), (r"/kw/(?P<key>\w+)", Seen)], app_ref=ref)
        ref.append(app)
        return app

    def test_positional(self) -> None:
        body = self.fetch("/seen/abc").body
        assert body == (
            b'{"request": "/seen/abc", "application": true, "path_args": ["abc"], '
            b'"path_kwargs": {}, "ui": true}'
        )

    def test_keyword(self) -> None:
        body = self.fetch("/kw/k1").body
        assert b'"path_args": []' in body and b'"path_kwargs": {"key": "k1"}' in body

    @gen_test
    async def test_httpserver_and_client_attributes(self) -> None:
        for name in ("request_callback", "xheaders", "protocol", "conn_params"):
            assert hasattr(self.http_server, name), name
        client = SimpleAsyncHTTPClient(force_instance=True, max_clients=3)
        try:
            assert isinstance(client, AsyncHTTPClient)
            assert client.max_clients == 3
            for name in (
                "queue",
                "active",
                "waiting",
                "max_buffer_size",
                "max_header_size",
                "max_body_size",
                "resolver",
                "own_resolver",
            ):
                assert hasattr(client, name), name
        finally:
            client.close()


def test_internal_names_stay_private() -> None:
    from squall import simple_httpclient

    assert "ConnectionPool" not in simple_httpclient.__all__
    assert not hasattr(simple_httpclient, "ConnectionPool")
    assert not hasattr(web.RequestHandler, "check_cross_origin")
