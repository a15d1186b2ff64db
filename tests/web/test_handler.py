"""RequestHandler through a real server and client: arguments, headers, output, errors."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import socket
from typing import Any, Optional
from unittest import mock

import pytest

from squall import gen, locale
from squall.concurrent import Future
from squall.escape import utf8
from squall.httpclient import HTTPResponse
from squall.log import access_log, app_log, gen_log
from squall.simple_httpclient import HTTPStreamClosedError
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test
from squall.util import ObjectDict
from squall.web import (
    Application,
    Finish,
    HTTPError,
    MissingArgumentError,
    RequestHandler,
)


class WebCase(AsyncHTTPTestCase):
    """Serves ``handlers`` with ``settings``; the access log is kept quiet."""

    handlers: list[Any] = []
    settings: dict[str, Any] = {}

    def setUp(self) -> None:
        access = logging.getLogger("squall.access")
        self._access_level = access.level
        access.setLevel(logging.CRITICAL)
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        logging.getLogger("squall.access").setLevel(self._access_level)

    def get_app(self) -> Application:
        self.app = Application(self.handlers, **self.settings)
        return self.app

    def json(self, path: str, **kwargs: Any) -> Any:
        response = self.fetch(path, **kwargs)
        assert response.code == 200, response
        return json.loads(response.body)


# --- arguments ---------------------------------------------------------------------------


class ArgsHandler(RequestHandler):
    def get(self, *path_args: str) -> None:
        source = self.get_query_argument("source", "all")
        getter = {
            "all": (self.get_argument, self.get_arguments),
            "query": (self.get_query_argument, self.get_query_arguments),
            "body": (self.get_body_argument, self.get_body_arguments),
        }[source or "all"]
        self.write(
            {
                "one": getter[0]("foo", "default"),
                "all": getter[1]("foo"),
                "raw": getter[1]("foo", strip=False),
                "path_args": list(path_args),
                "path_kwargs": self.path_kwargs,
            }
        )

    post = get


class RequiredHandler(RequestHandler):
    def get(self) -> None:
        try:
            self.get_argument("needed")
        except MissingArgumentError as exc:
            self.write({"arg_name": exc.arg_name, "log_message": exc.log_message})

    def post(self) -> None:
        self.write(self.get_body_argument("needed"))


class BadStripHandler(RequestHandler):
    def get(self) -> None:
        self.get_arguments("x", strip=1)  # type: ignore[arg-type]


class Latin1ArgsHandler(ArgsHandler):
    # A decode_argument of its own: every argument goes through it.
    def decode_argument(self, value: bytes, name: Optional[str] = None) -> str:
        return value.decode("latin-1").upper()


class ErrorDetailHandler(RequestHandler):
    # Shows what a write_error sees of the HTTPError that ended the request.
    def get(self) -> None:
        self.get_argument("foo")

    post = get

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs["exc_info"][1]
        self.finish({"log_message": exc.log_message, "args": [repr(a) for a in exc.args]})


class KwHandler(RequestHandler):
    def get(self, slug: str) -> None:
        self.write({"slug": slug, "kwargs": self.path_kwargs})


class ArgumentTest(WebCase):
    handlers = [
        ("/args", ArgsHandler),
        (r"/args/([^/]*)/([^/]*)", ArgsHandler),
        (r"/kw/(?P<slug>.*)", KwHandler),
        ("/required", RequiredHandler),
        ("/badstrip", BadStripHandler),
        ("/latin1", Latin1ArgsHandler),
        ("/detail", ErrorDetailHandler),
    ]

    def test_an_overridden_decode_argument_decodes_every_argument(self) -> None:
        # The stock decoding has a compiled path of its own; an override
        # is still called for each value.
        data = self.json("/latin1?foo=%E9t%E9&foo=%20b%20")
        assert data["all"] == ["ÉTÉ", "B"] and data["raw"] == ["ÉTÉ", " B "]
        assert data["one"] == "B"

    def test_query_arguments_last_value_stripped(self) -> None:
        data = self.json("/args?foo=a&foo=%20b%20")
        assert data["one"] == "b"
        assert data["all"] == ["a", "b"]
        assert data["raw"] == ["a", " b "]
        assert self.json("/args")["one"] == "default"

    def test_body_and_query_sources(self) -> None:
        body = "foo=body"
        merged = self.json("/args?foo=query", method="POST", body=body)
        assert merged["one"] == "body" and merged["all"] == ["query", "body"]
        assert self.json("/args?source=query&foo=q", method="POST", body=body)["all"] == ["q"]
        assert self.json("/args?source=body&foo=q", method="POST", body=body)["all"] == ["body"]

    def test_control_characters_become_spaces(self) -> None:
        assert self.json("/args?foo=a%01b%0Ac")["one"] == "a b\nc"

    def test_non_printable_values_are_cleaned_then_stripped(self) -> None:
        # Printable values skip the control-character replacement; the
        # others (a control, an NBSP, a tab) get it, and strip() after it.
        data = self.json("/args?foo=%01%C2%A0x%09y%1F&foo=%20%E2%80%A8z%20")
        assert data["all"] == ["x\ty", "z"]
        assert data["raw"] == [" \xa0x\ty ", " \u2028z "]
        assert data["one"] == "z"
        data = self.json("/args?foo=%0E%08q%7F")
        assert data["raw"] == ["  q\x7f"]  # DEL is no control replaced
        assert data["one"] == "q\x7f"

    def test_path_arguments_are_decoded(self) -> None:
        data = self.json("/args/a%2Fb/%C3%A9")
        assert data["path_args"] == ["a/b", "é"]
        assert self.json("/kw/x%20y") == {"slug": "x y", "kwargs": {"slug": "x y"}}

    def test_invalid_utf8_is_a_400(self) -> None:
        with ExpectLog(gen_log, ".*Invalid unicode in url"):
            assert self.fetch("/args/%FF/x").code == 400
        with ExpectLog(gen_log, ".*Invalid unicode in foo"):
            assert self.fetch("/args?foo=%FF").code == 400

    def test_decoding_and_body_errors_carry_their_message_formatted(self) -> None:
        # As on Tornado: log_message holds the whole text and args is empty,
        # so a write_error that shows exc.log_message shows what was wrong
        # (a literal % doubled, ready for formatting with the empty args).
        with ExpectLog(gen_log, ".*Invalid unicode in foo"):
            response = self.fetch("/detail?foo=%FF%25s")
        assert json.loads(response.body) == {
            "log_message": "Invalid unicode in foo: b'\\xff%%s'",
            "args": [],
        }
        with ExpectLog(gen_log, ".*Invalid body"):
            response = self.fetch(
                "/detail",
                method="POST",
                body="x",
                headers={"Content-Type": "multipart/form-data"},
            )
        detail = json.loads(response.body)
        assert detail["args"] == []
        assert detail["log_message"].startswith("Invalid body: Invalid multipart/form-data: ")
        assert "%s" not in detail["log_message"]

    def test_missing_argument(self) -> None:
        assert self.json("/required") == {
            "arg_name": "needed",
            "log_message": "Missing argument needed",
        }
        with ExpectLog(gen_log, ".*Missing argument needed"):
            response = self.fetch("/required", method="POST", body="")
        assert response.code == 400

    def test_strip_must_be_a_bool(self) -> None:
        with ExpectLog(app_log, "Uncaught exception"):
            assert self.fetch("/badstrip").code == 500

    def test_malformed_body_is_a_400(self) -> None:
        with ExpectLog(gen_log, ".*Invalid body"):
            response = self.fetch(
                "/args",
                method="POST",
                body="x",
                headers={"Content-Type": "multipart/form-data"},
            )
        assert response.code == 400


# --- status and headers ---------------------------------------------------------------------


class HeaderHandler(RequestHandler):
    def get(self) -> None:
        self.set_header("X-Str", "s")
        self.set_header("X-Bytes", b"b\xe9")
        self.set_header("X-Int", 42)
        self.set_header("X-Date", datetime.datetime(2020, 1, 2, 3, 4, 5))
        self.set_header("X-Tab", "a\tb")
        self.set_header("X-Gone", "1")
        self.clear_header("X-Gone")
        self.clear_header("X-Never-Set")
        self.add_header("X-Multi", "1")
        self.add_header("X-Multi", 2)
        errors = []
        for bad in ("a\r\nb", "a\x00", "a\x7f", "a\nb"):
            try:
                self.set_header("X-Bad", bad)
            except ValueError as exc:
                errors.append("Unsafe header value" in str(exc))
        try:
            self.set_header("X-Obj", object())  # type: ignore[arg-type]
        except TypeError:
            errors.append(True)
        self.write({"errors": errors})


class StatusHandler(RequestHandler):
    def get(self) -> None:
        code = int(self.get_argument("code"))
        reason = self.get_argument("reason", None)
        self.set_status(code, reason)
        self.write(str(self.get_status()))


class DefaultHeadersHandler(RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("X-Default", "yes")

    def get(self) -> None:
        raise HTTPError(418)


class HeaderTest(WebCase):
    handlers = [
        ("/headers", HeaderHandler),
        ("/status", StatusHandler),
        ("/defaults", DefaultHeadersHandler),
    ]

    def test_header_values_are_converted_and_checked(self) -> None:
        response = self.fetch("/headers")
        headers = response.headers
        assert headers["X-Str"] == "s"
        assert headers["X-Bytes"] == "b\xe9"
        assert headers["X-Int"] == "42"
        assert headers["X-Date"] == "Thu, 02 Jan 2020 03:04:05 GMT"
        assert headers["X-Tab"] == "a\tb"
        assert "X-Gone" not in headers
        assert headers.get_list("X-Multi") == ["1", "2"]
        assert json.loads(response.body) == {"errors": [True] * 5}

    def test_default_headers(self) -> None:
        response = self.fetch("/status?code=200")
        assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
        assert response.headers["Server"].startswith("SquallServer/")
        assert response.headers["Date"].endswith(" GMT")
        assert response.headers["Content-Length"] == "3"
        # set_default_headers also applies to error pages.
        error = self.fetch("/defaults")
        assert error.code == 418 and error.headers["X-Default"] == "yes"

    def test_status_with_and_without_reason(self) -> None:
        response = self.fetch("/status?code=201&reason=Made+It")
        assert (response.code, response.reason, response.body) == (201, "Made It", b"201")
        response = self.fetch("/status?code=299")
        assert (response.code, response.reason) == (299, "Unknown")
        # A reason that could break the status line or inject markup is replaced.
        assert self.fetch("/status?code=200&reason=OK%0D%0AX-Evil:1").reason == "Unknown"
        assert self.fetch("/status?code=200&reason=%3Cb%3E").reason == "Unknown"


# --- output -----------------------------------------------------------------------------------


class WriteHandler(RequestHandler):
    def get(self) -> None:
        kind = self.get_argument("kind")
        if kind == "dict":
            self.write({"a": [1, 2]})
        elif kind == "list":
            self.write([1, 2])  # type: ignore[arg-type]
        elif kind == "int":
            self.write(3)  # type: ignore[arg-type]
        else:
            self.write("text ")
            self.write(b"bytes")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(str(kwargs["exc_info"][1]))


class FinishTwiceHandler(RequestHandler):
    def get(self) -> None:
        self.finish("once")
        try:
            self.finish()
        except RuntimeError as exc:
            self.application.settings["errors"].append(str(exc))
        try:
            self.write("late")
        except RuntimeError as exc:
            self.application.settings["errors"].append(str(exc))


class FlushHandler(RequestHandler):
    @gen.coroutine
    def get(self) -> Any:
        futures = [self.flush()]
        yield futures[0]
        futures.append(self.flush())
        self.write("a")
        futures.append(self.flush())
        yield futures[-1]
        futures.append(self.finish("b"))
        yield futures[-1]
        self.application.settings["futures"] = futures


class HeadHandler(RequestHandler):
    def head(self) -> None:
        self.write("not sent")
        self.flush()
        self.write("nor this")


class EtagHandler(RequestHandler):
    def get(self) -> None:
        self.write(self.get_argument("body"))


class CustomEtagHandler(RequestHandler):
    def compute_etag(self) -> Optional[str]:
        return None if self.get_argument("none", None) else '"fixed"'

    def get(self) -> None:
        self.write("x")


class CheckEtagHandler(RequestHandler):
    def check_etag_header(self) -> bool:
        return True

    def get(self) -> None:
        self.set_header("Content-Language", "en")
        self.write("x")


class NoBodyHandler(RequestHandler):
    def get(self) -> None:
        self.set_status(int(self.get_argument("code")))
        if self.get_argument("body", None):
            self.write("body")


class OutputTest(WebCase):
    handlers = [
        ("/write", WriteHandler),
        ("/twice", FinishTwiceHandler),
        ("/flush", FlushHandler),
        ("/head", HeadHandler),
        ("/etag", EtagHandler),
        ("/custom_etag", CustomEtagHandler),
        ("/check_etag", CheckEtagHandler),
        ("/nobody", NoBodyHandler),
    ]
    settings = {"errors": [], "futures": None}

    def setUp(self) -> None:
        super().setUp()
        self.app.settings["errors"] = []

    def test_write_types(self) -> None:
        assert self.fetch("/write?kind=text").body == b"text bytes"
        response = self.fetch("/write?kind=dict")
        assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
        assert json.loads(response.body) == {"a": [1, 2]}
        with ExpectLog(app_log, "Uncaught exception"):
            listed = self.fetch("/write?kind=list")
        assert listed.code == 500 and b"Lists not accepted" in listed.body
        with ExpectLog(app_log, "Uncaught exception"):
            other = self.fetch("/write?kind=int")
        assert b"only accepts bytes, unicode, and dict" in other.body

    def test_finish_twice_and_write_after_finish(self) -> None:
        assert self.fetch("/twice").body == b"once"
        assert self.app.settings["errors"] == [
            "finish() called twice",
            "Cannot write() after finish()",
        ]

    def test_flush_and_finish_return_futures(self) -> None:
        response = self.fetch("/flush")
        assert response.body == b"ab"
        futures = self.app.settings["futures"]
        assert len(futures) == 4
        assert all(isinstance(f, Future) and f.done() for f in futures)

    def test_head_sends_no_body(self) -> None:
        response = self.fetch("/head", method="HEAD")
        assert response.code == 200 and response.body == b""

    def test_etag_and_if_none_match(self) -> None:
        first = self.fetch("/etag?body=hello")
        etag = first.headers["Etag"]
        assert etag.startswith('"') and first.headers["Content-Length"] == "5"
        for sent in (etag, "W/" + etag, f'"other", {etag}', "*"):
            cached = self.fetch("/etag?body=hello", headers={"If-None-Match": sent})
            assert cached.code == 304, sent
            assert "Content-Length" not in cached.headers
        for sent in ('"other"', "W/\"other\", 'x'", "junk"):
            assert self.fetch("/etag?body=hello", headers={"If-None-Match": sent}).code == 200

    def test_overridden_etag_methods(self) -> None:
        assert self.fetch("/custom_etag").headers["Etag"] == '"fixed"'
        assert self.fetch("/custom_etag", headers={"If-None-Match": '"fixed"'}).code == 304
        assert "Etag" not in self.fetch("/custom_etag?none=1").headers
        not_modified = self.fetch("/check_etag")
        assert not_modified.code == 304
        assert "Content-Language" not in not_modified.headers

    def test_bodiless_statuses(self) -> None:
        response = self.fetch("/nobody?code=204")
        assert response.code == 204 and "Content-Length" not in response.headers
        with ExpectLog(app_log, "Uncaught exception"):
            assert self.fetch("/nobody?code=204&body=1").code == 500


# --- errors -------------------------------------------------------------------------------------


class ErrorsHandler(RequestHandler):
    def get(self) -> None:
        kind = self.get_argument("kind")
        if kind == "http":
            raise HTTPError(410, "gone %s", "away")
        if kind == "http_reason":
            raise HTTPError(499, reason="Custom")
        if kind == "http_quiet":
            raise HTTPError(403)
        if kind == "send_error":
            self.send_error(503, reason="Busy")
            return
        if kind == "finish":
            self.set_status(401)
            raise Finish("stopped")
        if kind == "finish_empty":
            self.write("written")
            raise Finish()
        if kind == "after_flush":
            self.write("partial")
            self.flush()
            raise ValueError("late")
        if kind == "over_length":
            self.set_header("Content-Length", "1")
            self.write("abc")
            return
        raise ZeroDivisionError("boom")

    def on_finish(self) -> None:
        self.application.settings.setdefault("finished", []).append(self.get_argument("kind"))


class CustomErrorHandler(RequestHandler):
    def get(self) -> None:
        raise KeyError("k")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs["exc_info"][1]
        self.set_status(409)
        self.write(f"custom {status_code} {type(exc).__name__}")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        app_log.warning("custom log %s", type(value).__name__)


class BrokenErrorHandler(RequestHandler):
    def get(self) -> None:
        raise ValueError("first")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        raise RuntimeError("in write_error")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        raise RuntimeError("in log_exception")


class TracebackHandler(RequestHandler):
    def get(self) -> None:
        raise ValueError("shown")


class ErrorTest(WebCase):
    handlers = [
        ("/errors", ErrorsHandler),
        ("/custom", CustomErrorHandler),
        ("/broken", BrokenErrorHandler),
    ]

    def test_uncaught_exception_is_a_logged_500(self) -> None:
        with ExpectLog(app_log, "Uncaught exception GET /errors\\?kind=zero"):
            response = self.fetch("/errors?kind=zero")
        assert response.code == 500
        assert response.body == (
            b"<html><title>500: Internal Server Error</title>"
            b"<body>500: Internal Server Error</body></html>"
        )

    def test_log_records_say_web_py_as_tornado_s_do(self) -> None:
        # A log format with %(filename)s or %(module)s shows web.py for
        # these records on Tornado; deployments grep for it.
        with (
            mock.patch.object(app_log, "handle") as app,
            mock.patch.object(gen_log, "handle") as gen,
        ):
            self.fetch("/errors?kind=zero")
            self.fetch("/errors?kind=http")
        records: list[logging.LogRecord] = [
            call.args[0] for call in app.call_args_list + gen.call_args_list
        ]
        sites = {(r.msg, r.filename, r.module, r.funcName) for r in records}
        assert sites == {
            ("Uncaught exception %s\n%r", "web.py", "web", "log_exception"),
            ("%d %s: %s", "web.py", "web", "log_exception"),
        }

    def test_http_error_is_logged_as_a_warning_with_its_message(self) -> None:
        with ExpectLog(gen_log, r"410 GET /errors\?kind=http \(127.0.0.1\): gone away"):
            response = self.fetch("/errors?kind=http")
        assert response.code == 410 and b"410: Gone" in response.body
        response = self.fetch("/errors?kind=http_reason")
        assert (response.code, response.reason) == (499, "Custom")
        assert b"499: Custom" in response.body
        assert self.fetch("/errors?kind=http_quiet").code == 403

    def test_send_error_with_reason(self) -> None:
        response = self.fetch("/errors?kind=send_error")
        assert (response.code, response.reason) == (503, "Busy")

    def test_finish_exception(self) -> None:
        response = self.fetch("/errors?kind=finish")
        assert (response.code, response.body) == (401, b"stopped")
        assert self.fetch("/errors?kind=finish_empty").body == b"written"

    def test_error_after_headers_were_sent(self) -> None:
        with ExpectLog(app_log, "Uncaught exception"):
            with ExpectLog(gen_log, "Cannot send error response after headers written"):
                response = self.fetch("/errors?kind=after_flush")
        assert response.body == b"partial"

    def test_body_longer_than_its_length_still_finishes_the_request(self) -> None:
        # The response cannot be framed, so the connection is dropped; the
        # request still ends as on Tornado: logged, and on_finish called.
        with ExpectLog(app_log, "Uncaught exception"):
            with ExpectLog(gen_log, "Cannot send error response after headers written"):
                with ExpectLog(
                    access_log, r"200 GET /errors\?kind=over_length", level=logging.INFO
                ):
                    with pytest.raises(HTTPStreamClosedError):
                        self.fetch("/errors?kind=over_length")
        assert self._app.settings["finished"] == ["over_length"]

    def test_overridden_write_error_and_log_exception(self) -> None:
        with ExpectLog(app_log, "custom log KeyError"):
            response = self.fetch("/custom")
        assert (response.code, response.body) == (409, b"custom 500 KeyError")

    def test_failures_inside_error_handling_are_logged(self) -> None:
        with ExpectLog(app_log, "Error in exception logger"):
            with ExpectLog(app_log, "Uncaught exception in write_error"):
                response = self.fetch("/broken")
        assert (response.code, response.body) == (500, b"")


class TracebackTest(WebCase):
    handlers = [("/", TracebackHandler)]
    settings = {"serve_traceback": True}

    def test_traceback_is_served(self) -> None:
        with ExpectLog(app_log, "Uncaught exception"):
            response = self.fetch("/")
        assert response.code == 500
        assert response.headers["Content-Type"] == "text/plain"
        assert b"Traceback" in response.body and b"ValueError: shown" in response.body


# --- methods, hooks and the execution path ---------------------------------------------------------


class HookHandler(RequestHandler):
    def initialize(self, log: list[str]) -> None:
        self.log = log
        log.append("initialize")

    def prepare(self) -> None:
        self.log.append("prepare")
        if self.get_argument("stop", None):
            self.finish("stopped in prepare")

    def get(self) -> None:
        self.log.append("get")
        self.write("got")

    def on_finish(self) -> None:
        self.log.append("on_finish")


class AsyncHandler(RequestHandler):
    async def prepare(self) -> None:
        await asyncio.sleep(0)
        self.prepared = True

    async def get(self) -> None:
        await asyncio.sleep(0)
        self.write({"prepared": self.prepared})

    @gen.coroutine
    def post(self) -> Any:
        yield gen.moment
        self.write("gen")

    async def put(self) -> None:
        await asyncio.sleep(0)
        raise HTTPError(402)

    async def delete(self) -> None:
        self.finish("explicit")


class AsyncPrepareFailsHandler(RequestHandler):
    async def prepare(self) -> None:
        raise HTTPError(451)


class CancelledHandler(RequestHandler):
    async def get(self) -> None:
        future: Future[None] = Future()
        future.cancel()
        await future


class CustomMethodsHandler(RequestHandler):
    SUPPORTED_METHODS = RequestHandler.SUPPORTED_METHODS + ("PROPFIND",)

    def propfind(self) -> None:
        self.write("found")

    def options(self) -> None:
        self.write("options")


class NoAutoFinishHandler(RequestHandler):
    def get(self) -> None:
        self._auto_finish = False
        self.write("later")
        asyncio.get_running_loop().call_soon(self.finish)


class InstanceHookHandler(RequestHandler):
    """Sets its hooks on the instance, as mocks and some apps do."""

    def initialize(self, log: list[str]) -> None:
        self.log = log
        self.prepare = lambda: log.append("instance prepare")  # type: ignore[method-assign]
        self.on_finish = lambda: log.append("instance on_finish")  # type: ignore[method-assign]
        self.compute_etag = lambda: '"fixed"'  # type: ignore[method-assign]

        def flush(include_footers: bool = False) -> Any:
            log.append("instance flush")
            return RequestHandler.flush(self, include_footers)

        self.flush = flush  # type: ignore[method-assign]

    def get(self) -> None:
        self.write("instance")


class PlainHandler(RequestHandler):
    def get(self) -> None:
        self.write("plain")


class ExecutionTest(WebCase):
    log: list[str] = []
    handlers = [
        ("/plain", PlainHandler),
        ("/hooks", HookHandler, {"log": log}),
        ("/instance_hooks", InstanceHookHandler, {"log": log}),
        ("/async", AsyncHandler),
        ("/async_prepare_fails", AsyncPrepareFailsHandler),
        ("/cancelled", CancelledHandler),
        ("/methods", CustomMethodsHandler),
        ("/base", RequestHandler),
        ("/later", NoAutoFinishHandler),
    ]

    def setUp(self) -> None:
        super().setUp()
        self.log.clear()

    def test_hooks_run_in_order(self) -> None:
        assert self.fetch("/hooks").body == b"got"
        assert self.log == ["initialize", "prepare", "get", "on_finish"]
        self.log.clear()
        assert self.fetch("/hooks?stop=1").body == b"stopped in prepare"
        assert self.log == ["initialize", "prepare", "on_finish"]

    def test_hooks_set_on_the_instance_are_called(self) -> None:
        response = self.fetch("/instance_hooks")
        assert response.body == b"instance"
        assert response.headers["Etag"] == '"fixed"'
        assert self.log == ["instance prepare", "instance flush", "instance on_finish"]
        self.log.clear()
        cached = self.fetch("/instance_hooks", headers={"If-None-Match": '"fixed"'})
        assert cached.code == 304

    def test_hook_patched_on_the_instance_with_mock(self) -> None:
        # PlainHandler overrides no hook: only the instance's patch can run.
        seen: list[RequestHandler] = []
        patchers: list[Any] = []

        def initialize(handler: RequestHandler) -> None:
            patcher = mock.patch.object(handler, "on_finish", lambda: seen.append(handler))
            patcher.start()
            patchers.append(patcher)

        with mock.patch.object(PlainHandler, "initialize", initialize, create=True):
            assert self.fetch("/plain").body == b"plain"
        for patcher in patchers:
            patcher.stop()
        assert len(seen) == 1

    def test_coroutine_methods_are_awaited(self) -> None:
        assert self.json("/async") == {"prepared": True}
        assert self.fetch("/async", method="POST", body="").body == b"gen"
        assert self.fetch("/async", method="PUT", body="").code == 402
        assert self.fetch("/async", method="DELETE").body == b"explicit"
        assert self.fetch("/async_prepare_fails").code == 451

    def test_awaiting_a_cancelled_future_is_an_error(self) -> None:
        with ExpectLog(app_log, "Uncaught exception"):
            assert self.fetch("/cancelled").code == 500

    def test_unimplemented_and_unsupported_methods(self) -> None:
        for method in ("GET", "HEAD", "DELETE", "OPTIONS"):
            assert self.fetch("/base", method=method).code == 405
        for method in ("POST", "PUT", "PATCH"):
            assert self.fetch("/base", method=method, body="").code == 405
        response = self.fetch("/methods", method="PROPFIND", allow_nonstandard_methods=True)
        assert response.body == b"found"
        assert self.fetch("/methods", method="OPTIONS").body == b"options"
        other = self.fetch("/methods", method="OTHER", allow_nonstandard_methods=True)
        assert other.code == 405

    def test_auto_finish_can_be_turned_off(self) -> None:
        assert self.fetch("/later").body == b"later"


class TaskedHandler(RequestHandler):
    def get(self) -> None:
        self.write("sync")


class TaskFactoryTest(WebCase):
    handlers = [("/", TaskedHandler)]

    def test_a_loop_task_factory_makes_each_requests_task(self) -> None:
        # What an agent that watches Tasks installs (aiomonitor, tracers):
        # the handler's Task is made by it, one per request, on every Python.
        made: list[tuple[str, asyncio.Task[Any]]] = []
        loop = asyncio.get_event_loop_policy().get_event_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            code = getattr(coro, "cr_code", None)
            made.append((getattr(code, "co_qualname", ""), task))
            return task

        loop.set_task_factory(factory)
        try:
            assert self.fetch("/").body == b"sync"
            assert self.fetch("/").body == b"sync"
        finally:
            loop.set_task_factory(None)
        ours = [task for name, task in made if name == "RequestHandler._execute"]
        assert len(ours) == 2 and ours[0] is not ours[1]
        assert all(task.done() for task in ours)


# --- user, locale, misc -----------------------------------------------------------------------------


class FakeLocale:
    def __init__(self, code: str) -> None:
        self.code = code


class UserHandler(RequestHandler):
    calls = 0

    def get_current_user(self) -> Any:
        type(self).calls += 1
        return self.get_argument("user", None)

    def get(self) -> None:
        first = self.current_user
        self.write({"user": first, "again": self.current_user})


class AssignedUserHandler(RequestHandler):
    def prepare(self) -> None:
        self.current_user = "assigned"
        self.locale = FakeLocale("fr_FR")  # type: ignore[assignment]

    def get_current_user(self) -> Any:
        raise AssertionError("not called once assigned")

    def get_user_locale(self) -> Any:
        raise AssertionError("not called once assigned")

    def get(self) -> None:
        self.write(f"{self.current_user} {self.locale.code}")


class LocaleHandler(RequestHandler):
    def get(self) -> None:
        self.write(self.locale.code)


class UserLocaleHandler(RequestHandler):
    def get_user_locale(self) -> Any:
        return FakeLocale("es_ES")

    def get(self) -> None:
        self.write(self.locale.code)


class MiscHandler(RequestHandler):
    def get(self) -> None:
        what = self.get_argument("what")
        if what == "login":
            self.write(self.get_login_url())
        elif what == "reverse":
            self.write(self.reverse_url("misc"))
        elif what == "summary":
            self.request.remote_ip = None
            self.write(self._request_summary())
        elif what == "settings":
            self.write({"same": self.settings is self.application.settings})
        elif what == "redirect":
            self.redirect(
                "/target",
                status=int(self.get_argument("status", "0")) or None,
                permanent=bool(self.get_argument("permanent", "")),
            )
        elif what == "bad_redirect":
            try:
                self.redirect("/x", status=200)
            except ValueError as exc:
                self.write(str(exc))
        elif what == "late_redirect":
            self.flush()
            try:
                self.redirect("/x")
            except RuntimeError as exc:
                self.finish(str(exc))
        elif what == "ui":
            self.write({"names": sorted(k for k in self.ui if not k.startswith("_"))})


class UserAndLocaleTest(WebCase):
    handlers = [
        ("/user", UserHandler),
        ("/assigned", AssignedUserHandler),
        ("/locale", LocaleHandler),
        ("/user_locale", UserLocaleHandler),
        (r"/misc", MiscHandler, {}, "misc"),
    ]
    settings = {"login_url": "/login", "ui_methods": {"shout": lambda handler, s: s.upper()}}

    def test_current_user_is_computed_once(self) -> None:
        UserHandler.calls = 0
        assert self.json("/user?user=ann") == {"user": "ann", "again": "ann"}
        assert UserHandler.calls == 1
        assert self.fetch("/assigned").body == b"assigned fr_FR"

    def test_browser_locale_from_accept_language(self) -> None:
        def chosen(header: Optional[str]) -> str:
            headers = {"Accept-Language": header} if header is not None else {}
            response = self.fetch("/locale", headers=headers)
            assert response.code == 200
            return response.body.decode()

        supported = frozenset(["en_US", "fr_FR", "es", "de"])
        with (
            mock.patch.object(locale, "_supported_locales", supported),
            mock.patch.object(locale.Locale, "_cache", {}),
        ):
            assert chosen(None) == "en_US"
            assert chosen("fr-FR;q=0.9") == "fr_FR"
            # Best q-value first; an unsupported code gives way to the next.
            assert chosen("de;q=0.3, fr-FR; q=0.9, es") == "es"
            assert chosen("de;q=0.3, fr-FR; q=0.9, it") == "fr_FR"
            assert chosen("fr-FR;q=0") == "en_US"
            assert chosen("fr-FR;q=-1") == "en_US"
            assert chosen("fr-FR;q=abc, de;q=0.1") == "de"
        assert self.fetch("/user_locale").body == b"es_ES"

    def test_small_helpers(self) -> None:
        assert self.fetch("/misc?what=login").body == b"/login"
        assert self.fetch("/misc?what=reverse").body == b"/misc"
        assert self.fetch("/misc?what=summary").body == b"GET /misc?what=summary (None)"
        assert self.json("/misc?what=settings") == {"same": True}
        assert "shout" in self.json("/misc?what=ui")["names"]

    def test_redirects(self) -> None:
        response = self.fetch("/misc?what=redirect", follow_redirects=False)
        assert (response.code, response.headers["Location"]) == (302, "/target")
        permanent = self.fetch("/misc?what=redirect&permanent=1", follow_redirects=False)
        assert permanent.code == 301
        assert self.fetch("/misc?what=redirect&status=307", follow_redirects=False).code == 307
        assert b"3xx" in self.fetch("/misc?what=bad_redirect").body
        assert b"Cannot redirect" in self.fetch("/misc?what=late_redirect").body


class NoLoginUrlTest(WebCase):
    handlers = [("/misc", MiscHandler)]

    def test_require_setting(self) -> None:
        with ExpectLog(app_log, "Uncaught exception"):
            response = self.fetch("/misc?what=login")
        assert response.code == 500


# --- cross-origin protection ---------------------------------------------------------------------


class PostHandler(RequestHandler):
    def get(self) -> None:
        self.write("ok")

    def post(self) -> None:
        self.write("ok")


class TrustingHandler(PostHandler):
    def check_trusted_origin(self, origin: str) -> bool:
        return origin.endswith(".example.com")


class CrossOriginTest(WebCase):
    handlers = [("/", PostHandler), ("/trusting", TrustingHandler)]
    settings = {"cross_origin_protection": True, "trusted_origins": ["https://ok.test"]}

    def post(self, headers: dict[str, str], path: str = "/") -> HTTPResponse:
        return self.fetch(path, method="POST", body="", headers=headers)

    def test_allowed(self) -> None:
        for headers in (
            {},
            {"Sec-Fetch-Site": "same-origin"},
            {"Sec-Fetch-Site": "none"},
            {"Sec-Fetch-Site": "cross-site", "Origin": "https://ok.test"},
            {"Origin": self.get_url("/path").upper().replace("HTTP://", "http://")},
            {"Origin": "https://ok.test"},
        ):
            assert self.post(headers).code == 200, headers
        safe = self.fetch("/", headers={"Sec-Fetch-Site": "cross-site"})
        assert safe.code == 200
        assert self.post({"Origin": "https://a.example.com"}, "/trusting").code == 200

    def test_rejected(self) -> None:
        for headers, message in (
            ({"Sec-Fetch-Site": "cross-site"}, ".*Sec-Fetch-Site cross-site .* not allowed"),
            (
                {"Sec-Fetch-Site": "same-site", "Origin": "https://x.y"},
                ".*same-site .* not allowed",
            ),
            ({"Origin": "null"}, ".*Origin 'null' not allowed"),
            ({"Origin": "https://ok.test/"}, ".*Origin .* not allowed"),
            # An authority that does not parse is refused, not a 500.
            ({"Origin": "http://[::1"}, ".*Origin .* not allowed"),
        ):
            with ExpectLog(gen_log, message):
                assert self.post(headers).code == 403

    def test_the_scheme_of_an_origin_naming_this_host_is_not_compared(self) -> None:
        # A page of https://host behind a proxy that ends TLS posts to a
        # server that sees plain HTTP: the same origin, as Tornado reads it.
        host = f"127.0.0.1:{self.get_http_port()}"
        for origin in (f"https://{host}", f"HTTPS://{host.upper()}/page", f"ws://{host}"):
            assert self.post({"Origin": origin}).code == 200, origin


class OwnXsrfCheck(PostHandler):
    def check_xsrf_cookie(self) -> None:
        raise HTTPError(418, "this handler's own XSRF check")


class CrossOriginAfterXsrfTest(WebCase):
    handlers = [("/", OwnXsrfCheck)]
    settings = {"cross_origin_protection": True, "xsrf_cookies": True}

    def test_the_xsrf_check_is_heard_first(self) -> None:
        # As in Tornado: the handler's own XSRF check answers a cross-site
        # POST before the cross-origin check would refuse it.
        with ExpectLog(gen_log, ".*own XSRF check"):
            response = self.fetch(
                "/",
                method="POST",
                body="",
                headers={"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
            )
        assert response.code == 418


# --- direct use without a server --------------------------------------------------------------------


class _Conn:
    def __init__(self) -> None:
        self.detached = False
        self.callback: Any = "unset"

    def set_close_callback(self, callback: Any) -> None:
        self.callback = callback

    def detach(self) -> str:
        self.detached = True
        return "stream"


def _request(conn: Any) -> Any:
    from squall.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    return HTTPServerRequest(
        start_line=RequestStartLine("GET", "/", "HTTP/1.1"), headers=HTTPHeaders(), connection=conn
    )


def test_detach_hands_over_the_connection() -> None:
    conn = _Conn()
    handler = RequestHandler(Application(), _request(conn))
    assert handler.detach() == "stream"
    assert conn.detached and handler._finished


def test_on_connection_close_is_reported_once() -> None:
    closes: list[int] = []

    class Watch(RequestHandler):
        def on_connection_close(self) -> None:
            closes.append(1)

    conn = _Conn()
    handler = Watch(Application(), _request(conn))
    conn.callback()
    handler._connection_closed()
    assert closes == [1]


def test_a_connection_answering_any_attribute_is_asked_for_its_close() -> None:
    # A stand-in such as unittest.mock.Mock has every attribute: only a real
    # True takes HTTPConnection's close_callback_attribute path.
    from unittest import mock

    conn = mock.Mock()
    handler = RequestHandler(Application(), _request(conn))
    conn.set_close_callback.assert_called_once_with(handler._connection_closed)


def test_initialize_rejects_unexpected_arguments() -> None:
    with pytest.raises(TypeError):
        RequestHandler(Application(), _request(_Conn()), surprise=1)


def test_data_received_must_be_overridden() -> None:
    handler = RequestHandler(Application(), _request(_Conn()))
    with pytest.raises(NotImplementedError):
        handler.data_received(b"x")
    handler.clear()
    assert handler.get_status() == 200
    assert utf8(handler._headers["Content-Type"]) == b"text/html; charset=UTF-8"


# --- remaining corners ---------------------------------------------------------------------------


class ModuleUser(RequestHandler):
    def get(self) -> None:
        modules = self.ui["modules"]
        try:
            modules.Missing  # noqa: B018
        except AttributeError as exc:
            missing = str(exc)
        self.write({"linkify": type(modules["linkify"]).__name__, "missing": missing})


class HeadFlushHandler(RequestHandler):
    async def head(self) -> None:
        await self.flush()
        self.write("body")
        self.application.settings["second"] = await self.flush()


class CheckEtagDirect(RequestHandler):
    def get(self) -> None:
        self.set_header("Etag", self.get_argument("etag", ""))
        self.write({"match": self.check_etag_header()})

    def compute_etag(self) -> Optional[str]:
        return None


class OwnTaskHandler(RequestHandler):
    async def get(self) -> None:
        self.application.settings["task"] = asyncio.current_task()
        self.application.settings["started"].set_result(None)
        await Future()


class CornerTest(WebCase):
    handlers = [
        ("/modules", ModuleUser),
        ("/head", HeadFlushHandler),
        ("/check", CheckEtagDirect),
        ("/own_task", OwnTaskHandler),
    ]
    settings = {"second": "unset"}

    def test_ui_module_namespace(self) -> None:
        data = self.json("/modules")
        assert data["linkify"] == "function" and "Missing" in data["missing"]

    def test_head_flushes_send_nothing(self) -> None:
        assert self.fetch("/head", method="HEAD").code == 200
        assert self.app.settings["second"] is None

    def test_check_etag_header_edge_cases(self) -> None:
        assert self.json("/check?etag=%22a%22")["match"] is False
        assert self.json("/check", headers={"If-None-Match": '"a"'})["match"] is False
        assert self.json("/check?etag=%22a%22", headers={"If-None-Match": "junk"})["match"] is False
        assert self.json("/check?etag=W/%22a%22", headers={"If-None-Match": '"a"'})["match"] is True

    def test_cancelling_the_handler_task_answers_500_quietly(self) -> None:
        started: Future[None] = Future()
        self.app.settings["started"] = started

        async def run() -> Any:
            fetch = self.http_client.fetch(self.get_url("/own_task"), raise_error=False)
            await started
            task = self.app.settings["task"]
            task.cancel()
            response = await fetch
            return response, task

        response, task = self.io_loop.run_sync(run)
        assert response.code == 500
        assert task.cancelled()


def test_break_cycles_can_be_postponed() -> None:
    calls: list[str] = []

    class Keeps(RequestHandler):
        def _break_cycles(self) -> None:
            calls.append("break")

    conn = _Conn()
    conn.write_headers = lambda *args: None  # type: ignore[attr-defined]
    conn.finish = lambda: None  # type: ignore[attr-defined]
    handler = Keeps(Application(), _request(conn))
    assert handler.ui is handler.ui
    handler.finish()
    assert calls == ["break"] and handler._ui_namespace is not None


def test_ui_is_cleared_by_finish_and_can_be_assigned() -> None:
    conn = _Conn()
    conn.write_headers = lambda *args: None  # type: ignore[attr-defined]
    conn.finish = lambda: None  # type: ignore[attr-defined]
    handler = RequestHandler(Application(), _request(conn))
    first = handler.ui
    assert first is handler.ui and "modules" in first
    handler.finish()
    # The namespace (which refers back to the handler) is dropped; reading
    # ui again builds a new one.
    assert handler._ui_namespace is None and handler.ui is not first
    mine = ObjectDict(x=1)
    handler.ui = mine
    assert handler.ui is mine


def test_finish_goes_through_an_overridden_flush() -> None:
    calls: list[Any] = []

    class Counting(RequestHandler):
        def flush(self, include_footers: bool = False) -> Any:
            calls.append(include_footers)
            return super().flush(include_footers)

    conn = _Conn()
    conn.write_headers = lambda *args: calls.append(args[2])  # type: ignore[attr-defined]
    conn.finish = lambda: None  # type: ignore[attr-defined]
    handler = Counting(Application(), _request(conn))
    handler.write("body")
    handler.finish()
    assert calls == [True, b"body"]


def _run_to_end(coro: Any) -> None:
    # A handler that never waits ends in its coroutine's first step.
    with pytest.raises(StopIteration):
        coro.send(None)


def test_execute_runs_an_overridden_start_and_checks_methods() -> None:
    started: list[str] = []
    sent: list[Any] = []

    class Checked(RequestHandler):
        SUPPORTED_METHODS = ("POST",)

        def _start(self, *args: Any, **kwargs: Any) -> None:
            started.append(self.request.method)
            super()._start(*args, **kwargs)

    conn = _Conn()
    conn.write_headers = lambda *args: sent.append(args[0].code)  # type: ignore[attr-defined]
    conn.finish = lambda: None  # type: ignore[attr-defined]
    with ExpectLog("squall.access", "405", required=False):
        _run_to_end(Checked(Application(), _request(conn))._execute([]))
    assert started == ["GET"] and sent == [405]

    class PostOnly(RequestHandler):
        SUPPORTED_METHODS = ("POST",)

    sent.clear()
    with ExpectLog("squall.access", "405", required=False):
        _run_to_end(PostOnly(Application(), _request(conn))._execute([]))
    assert sent == [405]


def test_a_mixin_after_request_handler_is_initialized() -> None:
    class Mixin:
        def __init__(self) -> None:
            self.mixed = True

    class Mixed(RequestHandler, Mixin):
        pass

    class Before(Mixin, RequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            RequestHandler.__init__(self, *args, **kwargs)

    assert Mixed._next_init and not Before._next_init and not RequestHandler._next_init
    handler = Mixed(Application(), _request(_Conn()))
    assert handler.mixed
    assert not hasattr(Before(Application(), _request(_Conn())), "mixed")


def test_etag_of_a_repeated_small_body_is_remembered() -> None:
    import hashlib

    from squall.web import _etag as etag_module

    sent: list[str] = []

    def finish_with(parts: list[bytes]) -> None:
        conn = _Conn()
        conn.write_headers = lambda start, headers, chunk: sent.append(headers["Etag"])  # type: ignore[attr-defined]
        conn.finish = lambda: None  # type: ignore[attr-defined]
        handler = RequestHandler(Application(), _request(conn))
        for part in parts:
            handler.write(part)
        handler.finish()

    bodies = [[b"a"], [b"b"], [b"a"], [b"x" * 200], [b"x" * 200], [b"a", b"b"], [b"ab"]]
    for parts in bodies:
        finish_with(parts)
    assert sent == [f'"{hashlib.sha1(b"".join(parts)).hexdigest()}"' for parts in bodies]
    # The long body was not kept; the last small one-part body was.
    assert etag_module._etag_memo[0] == b"ab"


def test_date_header_follows_the_clock_second_by_second() -> None:
    from squall.httputil import format_timestamp
    from squall.web import _status as status_module

    class Clock:
        now = 0.0

        def time(self) -> float:
            return self.now

    clock = Clock()
    with mock.patch.object(status_module, "time", clock):
        # Within a second, across a second's edge, and a clock set back.
        for now in (1_000_000.25, 1_000_000.99, 1_000_001.0, 1_000_001.5, 999_999.75, 1_000_001.5):
            clock.now = now
            headers = status_module._new_headers()
            assert headers["Date"] == format_timestamp(int(now)), now


def test_a_response_header_set_or_cleared_stays_with_its_response() -> None:
    # The default fields of a second are copied for each response: what one
    # handler sets or clears is not in the next one's head.
    first = RequestHandler(Application(), _request(_Conn()))
    defaults = dict(first._headers.get_all())
    first.set_header("X-Only-First", "1")
    first.clear_header("Server")
    second = RequestHandler(Application(), _request(_Conn()))
    assert dict(second._headers.get_all()) == defaults
    assert "Server" in defaults and "X-Only-First" not in second._headers


def test_transforms_default_to_an_empty_immutable_sequence() -> None:
    handler = RequestHandler(Application(), _request(_Conn()))
    assert list(handler._transforms) == []
    with pytest.raises(AttributeError):
        handler._transforms.append(None)  # type: ignore[attr-defined]


def test_added_default_header_values_stay_with_their_response() -> None:
    # The default fields' value lists are shared between responses until
    # one of them adds a value.
    first = RequestHandler(Application(), _request(_Conn()))
    second = RequestHandler(Application(), _request(_Conn()))
    server = second._headers.get_list("Server")[:]
    first.add_header("Server", "extra/1.0")
    first.add_header("Date", "Thu, 01 Jan 2099 00:00:00 GMT")
    assert first._headers.get_list("Server") == [*server, "extra/1.0"]
    assert second._headers.get_list("Server") == server
    assert len(second._headers.get_list("Date")) == 1
    third = RequestHandler(Application(), _request(_Conn()))
    assert third._headers.get_list("Server") == server
    assert len(third._headers.get_list("Date")) == 1
    with pytest.raises(ValueError):
        first.add_header("Content-Type", "text/plain\r\nX-Evil: 1")
    assert third._headers.get_list("Content-Type") == ["text/html; charset=UTF-8"]


def test_content_length_lists_are_shared_by_length_and_bounded() -> None:
    from squall.web import handler as handler_module

    def finish(body: bytes) -> list[str]:
        conn = _Conn()
        conn.write_headers = lambda *args: None  # type: ignore[attr-defined]
        conn.finish = lambda: None  # type: ignore[attr-defined]
        handler = RequestHandler(Application(), _request(conn))
        handler.finish(body)
        return handler._headers.get_list("Content-Length")

    first, second = finish(b"abc"), finish(b"xyz")
    assert first == ["3"] and first is second
    assert finish(b"") == ["0"] and finish(b"x" * 70000) == ["70000"]
    with (
        mock.patch.object(handler_module, "_LENGTHS", {}),
        mock.patch.object(handler_module, "_LENGTHS_MAX", 1),
    ):
        assert finish(b"ab") == ["2"] and finish(b"abcd") == ["4"]
        assert list(handler_module._LENGTHS) == [2]


def test_stock_etag_value_list_is_the_memo_s_and_overrides_are_checked() -> None:
    import hashlib

    from squall.web import _etag as etag_module

    def finish(handler: RequestHandler, body: bytes) -> list[str]:
        handler.request.connection.write_headers = lambda *args: None  # type: ignore[union-attr]
        handler.request.connection.finish = lambda: None  # type: ignore[union-attr]
        handler.finish(body)
        return handler._headers.get_list("Etag")

    expected = f'"{hashlib.sha1(b"same").hexdigest()}"'
    first = finish(RequestHandler(Application(), _request(_Conn())), b"same")
    second = finish(RequestHandler(Application(), _request(_Conn())), b"same")
    assert first == [expected] and second is first is etag_module._etag_memo[2]

    class Equal(RequestHandler):
        def compute_etag(self) -> Optional[str]:
            # Equal to the memo's text, not the same object: checked as usual.
            return "".join(expected)

    assert finish(Equal(Application(), _request(_Conn())), b"same") == [expected]

    class Bad(RequestHandler):
        def compute_etag(self) -> Optional[str]:
            return '"x"\r\nX-Injected: 1'

    with pytest.raises(ValueError):
        finish(Bad(Application(), _request(_Conn())), b"same")


class _Watched(RequestHandler):
    # Records whether the server's connection would report a close to it.
    def initialize(self, seen: dict[str, Any]) -> None:
        self.seen = seen

    def on_connection_close(self) -> None:
        closed = self.seen["closed"]
        if not closed.done():
            closed.set_result(self.request.path)


class _WatchedSync(_Watched):
    def get(self) -> None:
        self.seen["handler"] = self
        self.write("done")


class _WatchedAsync(_Watched):
    async def get(self) -> None:
        self.seen["started"].set_result(None)
        await Future()


class _WatchedWaits(_Watched):
    async def get(self) -> None:
        await asyncio.sleep(0)
        self.write("waited")


class _WatchedManual(_Watched):
    def get(self) -> None:
        # Tornado's old asynchronous style: finished later, or never.
        self._auto_finish = False
        self.seen["started"].set_result(None)


class CloseWatchTest(WebCase):
    def setUp(self) -> None:
        self.seen: dict[str, Any] = {}
        self.handlers = [
            ("/sync", _WatchedSync, {"seen": self.seen}),
            ("/async", _WatchedAsync, {"seen": self.seen}),
            ("/manual", _WatchedManual, {"seen": self.seen}),
            ("/waits", _WatchedWaits, {"seen": self.seen}),
        ]
        super().setUp()
        self.seen["closed"] = Future()
        self.seen["started"] = Future()

    def test_a_finished_handler_is_not_left_watching(self) -> None:
        assert self.fetch("/sync").body == b"done"
        connection = self.seen["handler"].request.connection
        # The server's own connection keeps its close callback in the
        # attribute of HTTPConnection's contract.
        assert connection.close_callback_attribute
        assert connection.close_callback is None

    async def _close_while_running(self, path: str) -> Any:
        from squall.iostream import IOStream

        stream = IOStream(socket.socket())
        await stream.connect(("127.0.0.1", self.get_http_port()))
        await stream.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await self.seen["started"]
        stream.close()
        return await self.seen["closed"]

    @gen_test
    async def test_a_coroutine_hears_the_close(self) -> None:
        assert await self._close_while_running("/async") == "/async"

    @gen_test
    async def test_a_handler_left_unfinished_hears_the_close(self) -> None:
        assert await self._close_while_running("/manual") == "/manual"

    def test_only_a_handler_that_waits_gets_a_callback_after_its_first_step(self) -> None:
        # Where the Task's first step runs on the loop's turn (3.11, or a
        # task factory), the close watch is set once that step has
        # returned: by a loop callback for a handler that waits, by nothing
        # more for one done in that step (most). With an eager start (3.12+)
        # the delegate sees the step's end itself.
        import sys

        from tests._first_step import first_step_watches

        with first_step_watches() as calls:
            assert self.fetch("/sync").body == b"done"
            assert self.fetch("/waits").body == b"waited"
        assert calls == (["/waits"] if sys.version_info < (3, 12) else [])
        # Either way, a finished handler is left with no close callback.
        assert self.seen["handler"].request.connection.close_callback is None


def test_decoded_arguments_leaves_what_it_cannot_decode_to_the_handler() -> None:
    from squall.httputil._qs import decoded_arguments

    assert decoded_arguments(None, True) == []
    assert decoded_arguments([b" a ", b"b\x01c"], True) == ["a", "b c"]
    assert decoded_arguments([b" a "], False) == [" a "]
    # Not UTF-8, or not bytes (an application may put str there): None,
    # and RequestHandler's own decode_argument takes them.
    assert decoded_arguments([b"ok", b"\xff"], True) is None
    assert decoded_arguments(["str"], True) is None
    assert decoded_arguments((b"a",), True) is None


def test_arguments_an_application_set_by_hand_still_decode() -> None:
    # Values that are not a list of bytes go through decode_argument.
    handler = RequestHandler(Application(), _request(_Conn()))
    handler.request.arguments = {"a": (b" x ", "y")}  # type: ignore[dict-item]
    assert handler.get_arguments("a") == ["x", "y"]
    assert handler.get_argument("a") == "y"
