"""One application, served by Tornado or by Squall: ``python app.py tornado|squall STATIC_DIR [gzip]``.

Prints its port, then serves on 127.0.0.1 until killed. The handlers turn
query arguments into calls of the `RequestHandler` API that applications
make (arguments, cookies, signed cookies, headers, redirects, status and
errors, JSON, flushing, streaming bodies, XSRF checks, ``authenticated``,
``addslash``/``removeslash``, templates, static files), so that
app_run.py can compare the two servers' answers to the same requests.
A call that raises answers 299 with the exception's type name.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import sys
import traceback
from typing import Any

from tls import server_context

FRAMEWORK = sys.argv[1]
web: Any = importlib.import_module(f"{FRAMEWORK}.web")
template: Any = importlib.import_module(f"{FRAMEWORK}.template")


class Handler(web.RequestHandler):
    def arg(self, name: str, default: Any = None) -> Any:
        return self.get_query_argument(name, default)

    def failed(self, exc: Exception) -> None:
        traceback.print_exception(exc)  # to stderr, for whoever runs app.py by hand
        self.clear()
        self.set_status(299)
        self.write(type(exc).__name__)


class Request(Handler):
    """What the handler reads of the request, as JSON."""

    def get(self, *args: str, **kwargs: str) -> None:
        readings = {
            "arg": lambda: self.get_argument("a", None),
            "arg_nostrip": lambda: self.get_argument("a", None, strip=False),
            "args": lambda: self.get_arguments("a"),
            "query": lambda: self.get_query_arguments("a"),
            "body": lambda: self.get_body_arguments("a"),
            "required": lambda: self.get_argument("r"),
            "cookie": lambda: self.get_cookie("c"),
            "cookies": lambda: sorted((k, v.value) for k, v in self.cookies.items()),
            "path_args": lambda: self.path_args,
            "path_kwargs": lambda: self.path_kwargs,
            "files": lambda: sorted(
                (k, [(f.filename, f.content_type, f.body.decode("latin-1")) for f in v])
                for k, v in self.request.files.items()
            ),
            "host": lambda: self.request.host,
            "host_name": lambda: self.request.host_name,
            "uri": lambda: self.request.uri,
            "path": lambda: self.request.path,
            "query_text": lambda: self.request.query,
            "full_url": lambda: self.request.full_url(),
            "protocol": lambda: self.request.protocol,
            "remote_ip": lambda: self.request.remote_ip,
            "locale": lambda: self.get_browser_locale().code,
        }
        out: dict[str, Any] = {}
        for label, read in readings.items():
            try:
                out[label] = read()
            except web.HTTPError as exc:
                out[label] = ["HTTPError", exc.status_code]
            except Exception as exc:
                out[label] = ["raised", type(exc).__name__]
        self.write(json.dumps(out, default=repr, sort_keys=True))

    post = get


class Cookie(Handler):
    def get(self) -> None:
        kw: dict[str, Any] = {}
        for key in ("domain", "path", "samesite"):
            if self.arg(key) is not None:
                kw[key] = self.arg(key)
        for key in ("expires_days", "max_age"):
            value = self.arg(key)
            if value is not None:
                try:
                    kw[key] = float(value) if "." in value else int(value)
                except ValueError:
                    kw[key] = value
        for key in ("httponly", "secure"):
            if self.arg(key) is not None:
                kw[key] = self.arg(key) == "1"
        if self.arg("expires") is not None:
            kw["expires"] = datetime.datetime(2030, 1, 2, 3, 4, 5)
        try:
            self.set_cookie(self.arg("n", "c"), self.arg("v", "v"), **kw)
            if self.arg("clear"):
                self.clear_cookie(self.arg("clear"), path=self.arg("cpath", "/"))
            if self.arg("clearall"):
                self.clear_all_cookies()
        except Exception as exc:
            self.failed(exc)


class Header(Handler):
    def get(self) -> None:
        text = self.arg("v", "")
        value = {
            "int": len(text),
            "bytes": text.encode("utf-8", "surrogateescape"),
            "datetime": datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=len(text)),
        }.get(self.arg("kind", "str"), text)
        try:
            if self.arg("add"):
                self.add_header(self.arg("name", "X-A"), value)
            else:
                self.set_header(self.arg("name", "X-A"), value)
            if self.arg("clear"):
                self.clear_header(self.arg("clear"))
        except Exception as exc:
            self.failed(exc)


class Redirect(Handler):
    def get(self) -> None:
        status = self.arg("status")
        try:
            self.redirect(
                self.arg("u", "/"),
                permanent=bool(self.arg("perm")),
                status=int(status) if status else None,
            )
        except Exception as exc:
            self.failed(exc)


class Status(Handler):
    def get(self) -> None:
        try:
            self.set_status(int(self.arg("c", "200")), self.arg("r"))
            self.write(self.arg("body", "x"))
        except Exception as exc:
            self.failed(exc)


class Error(Handler):
    def get(self) -> None:
        code = int(self.arg("c", "500"))
        how = self.arg("how", "raise")
        if how == "raise":
            raise web.HTTPError(code, self.arg("log"), reason=self.arg("r"))
        if how == "send":
            self.send_error(code, reason=self.arg("r"))
        elif how == "exception":
            raise ValueError("boom")
        elif how == "finish":
            raise web.Finish(self.arg("body", "done"))
        elif how == "missing":
            raise web.MissingArgumentError("zz")


class Etag(Handler):
    def get(self) -> None:
        self.write(self.arg("body", "hello"))
        if self.arg("set"):
            self.set_header("Etag", self.arg("set"))


class Json(Handler):
    VALUES = {"dict": {"a": "</script>", "b": [1, 2]}, "list": [1], "none": None,
              "bytes": b"\xff", "str": "\u2028<"}  # fmt: skip

    def get(self) -> None:
        try:
            self.write(self.VALUES[self.arg("k", "dict")])
        except Exception as exc:
            self.failed(exc)


class Flush(Handler):
    async def get(self) -> None:
        self.write("a")
        await self.flush()
        self.write("b")
        self.finish("c")


class Auth(Handler):
    def get_current_user(self) -> Any:
        return self.arg("user")

    @web.authenticated
    def get(self) -> None:
        self.write("in " + self.current_user)

    @web.authenticated
    def post(self) -> None:
        self.write("posted")


class RemoveSlash(Handler):
    @web.removeslash
    def get(self) -> None:
        self.write(self.request.uri)


class AddSlash(Handler):
    @web.addslash
    def get(self) -> None:
        self.write(self.request.uri)


class Signed(Handler):
    def get(self) -> None:
        if self.arg("set") is not None:
            self.set_signed_cookie("s", self.arg("set"), expires_days=None)
        try:
            value = self.get_signed_cookie("s", max_age_days=31)
        except Exception as exc:
            value = type(exc).__name__
        self.write(repr(value))


class Xsrf(Handler):
    def check_xsrf_cookie(self) -> None:
        pass  # checked in the method, so that its answer is the body

    def get(self) -> None:
        try:
            web.RequestHandler.check_xsrf_cookie(self)
            self.write("ok")
        except web.HTTPError as exc:
            self.write(f"refused {exc.status_code}")

    post = get


class OnlyGet(Handler):
    def get(self) -> None:
        self.write("g")


@web.stream_request_body
class Stream(Handler):
    def prepare(self) -> None:
        self.received = 0

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)

    def put(self) -> None:
        self.write(f"got {self.received}")

    post = put


class Render(Handler):
    SOURCE = (
        "{{ v }}|{% raw v %}|{{ json_encode(v) }}|{{ url_escape(v) }}|{{ squeeze(v) }}"
        "|{{ linkify(v) }}|{% try %}<{{ v.encode('ascii') }}>{% except %}!{% end %}"
    )

    def get(self) -> None:
        namespace = self.get_template_namespace()
        namespace["v"] = self.arg("v", "")
        self.write(template.Template(self.SOURCE).generate(**namespace))


gen: Any = importlib.import_module(f"{FRAMEWORK}.gen")
locale: Any = importlib.import_module(f"{FRAMEWORK}.locale")


class Box(web.UIModule):
    def render(self, text: str) -> str:
        return f"<b>{text}</b>"

    def embedded_css(self) -> str:
        return "b{}"

    def javascript_files(self) -> list[str]:
        return ["a.txt", "/x.js", "http://cdn.example/y.js"]


class Page(Handler):
    """A template from the template path: static_url, xsrf_form_html, reverse_url, a UI module, locale."""

    def get_user_locale(self) -> Any:
        code = self.arg("loc")
        return locale.get(code) if code else None

    def get(self) -> None:
        try:
            self.render("page.html", v=self.arg("v", ""), n=len(self.arg("v", "")))
        except Exception as exc:
            self.failed(exc)


class Dates(Handler):
    """What a locale makes of dates and numbers (fixed dates: nothing here depends on the clock)."""

    def get(self) -> None:
        loc = locale.get(self.arg("loc", "en_US"))
        when = datetime.datetime(2020, 2, 29, 13, 5, 9)
        try:
            offset = int(self.arg("gmt", "0") or 0)
            self.write(
                {
                    "code": loc.code,
                    "rtl": loc.rtl,
                    "date": loc.format_date(when, gmt_offset=offset, relative=False),
                    "full": loc.format_date(when, gmt_offset=offset, full_format=True),
                    "shorter": loc.format_date(
                        when, gmt_offset=offset, relative=False, shorter=True
                    ),
                    "day": loc.format_day(when, gmt_offset=offset),
                    "dow": loc.format_day(when, gmt_offset=offset, dow=False),
                    "number": loc.friendly_number(len(self.arg("v", "")) * 123457),
                    "list": loc.list(self.get_arguments("v")),
                    "plural": loc.translate("one", "many", len(self.get_arguments("v"))),
                }
            )
        except Exception as exc:
            self.failed(exc)


class Conditional(Handler):
    """Entity tags as an application sets and checks them itself."""

    def compute_etag(self) -> Any:
        return None if self.arg("none") else super().compute_etag()

    def get(self) -> None:
        self.write(self.arg("body", "hello"))
        if self.arg("explicit"):
            self.set_etag_header()
            if self.check_etag_header():
                self.clear()
                self.set_status(304)

    def head(self) -> None:
        self.set_header("Content-Length", "5")


class Coroutines(Handler):
    @gen.coroutine
    def get(self) -> Any:
        yield gen.moment
        value = yield self.later(self.arg("v", "x"))
        self.write(value)

    async def post(self) -> None:
        await asyncio.sleep(0)
        self.write(
            {"body": self.request.body.decode("latin-1"), "args": self.get_body_arguments("a")}
        )

    @gen.coroutine
    def later(self, value: str) -> Any:
        yield gen.moment
        if value == "raise":
            raise web.HTTPError(409, reason="Conflicted")
        return value * 2


class Latin1Args(Handler):
    def decode_argument(self, value: bytes, name: Any = None) -> str:
        return value.decode("latin-1")

    def get(self, part: str) -> None:
        self.write(repr((part, self.get_argument("a", None))))


PAGE = """<html><head>{% autoescape xhtml_escape %}<link href="{{ static_url('a.txt') }}"></head><body>
{% raw xsrf_form_html() %}|{{ reverse_url('named', v) }}|{% module Box(v) %}
|{{ _('Sign in') }}|{{ locale.code }}|{{ _('%(n)d item', '%(n)d items', n) % {'n': n} }}
{% for i in range(n % 3) %}[{{ i }}]{% end %}{% set w = v.upper() %}{{ w }}
{% apply linkify %} a http://x.y/?a=1&b=2 {{ v }} {% end %}{% comment nothing %}{# nor this #}
{% if v %}yes{% elif n %}n{% else %}no{% end %}{% while False %}{% end %}</body></html>"""


class Late(Handler):
    """The order mistakes applications make: after flush(), after finish(), in prepare or on_finish."""

    def prepare(self) -> None:
        if self.arg("how") == "prepare-finish":
            self.finish("early")

    async def get(self) -> None:
        how = self.arg("how", "")
        self.write("a")
        if how == "clear":
            self.clear()
            self.write("b")
            return
        if how.startswith("finish"):
            self.finish("f")
            if how == "finish-write":
                self.write("late")
            elif how == "finish-twice":
                self.finish()
            return
        await self.flush()
        if how == "raise":
            raise ValueError("after the head")
        if how == "redirect":
            self.redirect("/elsewhere")
        elif how == "status":
            self.set_status(404)
            self.set_header("X-Late", "1")
        elif how == "http-error":
            raise web.HTTPError(403)
        self.write("z")

    def on_finish(self) -> None:
        if self.arg("how") == "on-finish":
            raise RuntimeError("in on_finish")


websocket: Any = importlib.import_module(f"{FRAMEWORK}.websocket")


class Echo(websocket.WebSocketHandler):
    """A WebSocket as applications write one: origin check, subprotocols, compression, echo."""

    def check_origin(self, origin: str) -> bool:
        return bool(self.get_query_argument("strict", None) is None or super().check_origin(origin))

    def select_subprotocol(self, subprotocols: list[str]) -> Any:
        if self.get_query_argument("proto", None) is not None and subprotocols:
            return subprotocols[-1]
        return None

    def get_compression_options(self) -> Any:
        return {} if self.get_query_argument("deflate", None) is not None else None

    def open(self, *args: str) -> None:
        self.write_message(f"open {self.selected_subprotocol} {args}")

    def on_message(self, message: Any) -> Any:
        if self.get_query_argument("async", None) is not None:
            return self.answer_later(message)
        self.answer(message)
        return None

    async def answer_later(self, message: Any) -> None:
        # As a handler that looks something up first: the next message
        # waits until this one is answered, on both servers.
        await asyncio.sleep(0)
        self.answer(message)

    def answer(self, message: Any) -> None:
        if message == "close":
            self.close(4000, "bye")
        elif isinstance(message, bytes):
            self.write_message(message[::-1], binary=True)
        else:
            self.write_message({"echo": message, "n": len(message)})

    def on_ping(self, data: bytes) -> None:
        self.write_message("ping " + data.hex())


TRANSLATIONS = {
    "fr_FR": '"Sign in","Se connecter"\n"%(n)d item","%(n)d élément",singular\n'
    '"%(n)d items","%(n)d éléments",plural\n"one","un",singular\n"many","beaucoup",plural\n',
    "es_LA": '"Sign in","Iniciar sesión"\n"one","uno",singular\n"many","muchos",plural\n',
    "ar_AR": '"Sign in","تسجيل الدخول"\n',
}


def make_app(static: str, gzip: bool) -> Any:
    return web.Application(
        [
            (r"/arg", Request),
            (r"/p/([^/]*)/(.*)", Request),
            (r"/k/(?P<x>[^/]+)", Request),
            (r"/cookie", Cookie),
            (r"/header", Header),
            (r"/redirect", Redirect),
            (r"/status", Status),
            (r"/error", Error),
            (r"/etag", Etag),
            (r"/json", Json),
            (r"/flush", Flush),
            (r"/auth", Auth),
            (r"/slash/?", RemoveSlash),
            (r"/add/?", AddSlash),
            (r"/signed", Signed),
            (r"/xsrf", Xsrf),
            (r"/onlyget", OnlyGet),
            (r"/stream", Stream),
            (r"/render", Render),
            (r"/rh/(.*)", web.RedirectHandler, {"url": "/to/{0}"}),
            (
                r"/files/(.*)",
                web.StaticFileHandler,
                {"path": static, "default_filename": "index.html"},
            ),
            (r"/page", Page),
            (r"/late", Late),
            (r"/ws(/.*)?", Echo),
            (r"/dates", Dates),
            (r"/cond", Conditional),
            (r"/co", Coroutines),
            (r"/l1/(.*)", Latin1Args),
            web.url(r"/named/([^/]*)", OnlyGet, name="named"),
            (r"/gone", web.ErrorHandler, {"status_code": 410}),
        ],
        static_path=static,
        template_path=static,
        ui_modules={"Box": Box},
        cookie_secret="s",
        login_url="/login?a=b",
        compress_response=gzip,
    )


async def main() -> None:
    with open(f"{sys.argv[2]}/page.html", "w") as f:
        f.write(PAGE)
    for code, text in TRANSLATIONS.items():
        with open(f"{sys.argv[2]}/{code}.csv", "w", encoding="utf-8") as f:
            f.write(text)
    locale.load_translations(sys.argv[2])
    app = make_app(sys.argv[2], "gzip" in sys.argv[3:])
    tls = server_context() if "tls" in sys.argv[3:] else None
    # "opts=JSON": HTTPServer options of the run (app_run.py --server).
    options = json.loads(next((a[5:] for a in sys.argv[3:] if a.startswith("opts=")), "{}"))
    server = app.listen(0, "127.0.0.1", ssl_options=tls, **{"xheaders": True, **options})
    port = next(iter(server._sockets.values())).getsockname()[1]
    print(port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
