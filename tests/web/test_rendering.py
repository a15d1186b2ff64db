"""Rendering: render/render_string, the template namespace, loaders and static URLs."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Optional

import pytest

from squall import template
from squall.template import DictLoader
from squall.testing import AsyncHTTPTestCase
from squall.web import Application, RequestHandler
from squall.web.rendering import RenderMixin, reset_template_caches
from squall.web.static import StaticFileHandler

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "web")
STATIC = os.path.join(DATA, "static")
TEMPLATES = os.path.join(DATA, "templates")
# static_url carries the first 32 hex characters of the SHA-512.
ROBOTS_HASH = hashlib.sha512(b"Disallow: /\n").hexdigest()[:32]


class RenderTestCase(AsyncHTTPTestCase):
    def setUp(self) -> None:
        RenderMixin._template_loaders.clear()
        StaticFileHandler.reset()
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        RenderMixin._template_loaders.clear()
        StaticFileHandler.reset()


class NamespaceTest(RenderTestCase):
    def get_app(self) -> Application:
        loader = DictLoader(
            {
                "names.html": (
                    "{{ handler.__class__.__name__ }}|{{ request.path }}|{{ current_user }}|"
                    "{{ locale.code }}|{{ _('Hello') }}|{{ pgettext('ctx', 'Hi') }}|"
                    "{{ reverse_url('page') }}|{{ static_url('robots.txt') }}|{{ shout('x') }}|"
                    "{{ extra }}"
                ),
                "form.html": "{% raw xsrf_form_html() %}",
                "escaped.html": "{{ text }}",
            },
            autoescape="xhtml_escape",
        )

        class Page(RequestHandler):
            def get_current_user(self) -> str:
                return "ann"

            def get(self) -> None:
                self.render(self.get_argument("t"), extra="e", text="<b>")

        def shout(handler: RequestHandler, text: str) -> str:
            return text.upper() + handler.request.method

        return Application(
            [(r"/page", Page, {}, "page")],
            template_loader=loader,
            static_path=STATIC,
            ui_methods={"shout": shout},
            cookie_secret="x",
        )

    def test_namespace(self) -> None:
        body = self.fetch("/page?t=names.html").body.decode()
        assert (
            body == f"Page|/page|ann|en_US|Hello|Hi|/page|/static/robots.txt?v={ROBOTS_HASH}|XGET|e"
        )

    def test_xsrf_form_html_in_templates(self) -> None:
        response = self.fetch("/page?t=form.html")
        assert response.body.startswith(b'<input type="hidden" name="_xsrf" value="2|')

    def test_autoescape(self) -> None:
        assert self.fetch("/page?t=escaped.html").body == b"&lt;b&gt;"


class FileLoaderTest(RenderTestCase):
    def get_app(self) -> Application:
        class Page(RequestHandler):
            def get(self) -> None:
                self.render("hello.html", name="<world>")

        return Application(
            [("/", Page)], template_path=TEMPLATES, autoescape=None, template_whitespace="all"
        )

    def test_settings_reach_the_loader(self) -> None:
        assert self.fetch("/").body == b"<p><world></p>\n"
        loader = RenderMixin._template_loaders[TEMPLATES]
        assert isinstance(loader, template.Loader)
        assert loader.autoescape is None
        assert loader.whitespace == "all"

    def test_loaders_are_shared_and_resettable(self) -> None:
        self.fetch("/")
        loader = RenderMixin._template_loaders[TEMPLATES]
        assert loader.templates
        self.fetch("/")
        assert RenderMixin._template_loaders[TEMPLATES] is loader
        reset_template_caches()
        assert not loader.templates


class DefaultTemplatePathTest(RenderTestCase):
    seen: list[str] = []

    def get_app(self) -> Application:
        seen = self.seen

        class Page(RequestHandler):
            def create_template_loader(self, template_path: str) -> template.BaseLoader:
                seen.append(template_path)
                return DictLoader({"t.html": "ok"})

            def get(self) -> None:
                self.render("t.html")

        return Application([("/", Page)])

    def test_templates_default_to_the_callers_directory(self) -> None:
        assert self.fetch("/").body == b"ok"
        assert self.seen == [os.path.dirname(os.path.abspath(__file__))]


class RenderFlowTest(RenderTestCase):
    errors: list[str]

    def get_app(self) -> Application:
        errors = self.errors = []

        class Twice(RequestHandler):
            def get(self) -> None:
                self.finish("done")
                try:
                    self.render("x.html")
                except RuntimeError as exc:
                    errors.append(str(exc))

        class Future(RequestHandler):
            async def get(self) -> None:
                await self.render("x.html")

        return Application(
            [("/twice", Twice), ("/future", Future)], template_loader=DictLoader({"x.html": "x"})
        )

    def test_render_after_finish_raises(self) -> None:
        assert self.fetch("/twice").body == b"done"
        assert self.errors == ["Cannot render() after finish()"]

    def test_render_returns_the_finish_future(self) -> None:
        assert self.fetch("/future").body == b"x"


class _Shouted(template.Template):
    """A template whose generate() is its own: render must call it."""

    def generate(self, **kwargs: Any) -> bytes:
        return super().generate(**kwargs).upper()


class _ShoutingLoader(DictLoader):
    def _create_template(self, name: str) -> template.Template:
        return _Shouted(self.dict[name], name=name, loader=self)


class OverridesTest(RenderTestCase):
    """render() and render_string() take a shorter way with the stock methods:
    overrides on the class or on the handler itself must still be called."""

    def get_app(self) -> Application:
        loader = DictLoader({"t.html": "{{ who }}|{{ locale.code }}|{{ extra }}|{{ _tt_modules }}"})

        class Plain(RequestHandler):
            def get(self) -> None:
                if self.get_argument("instance", None) == "render_string":
                    self.render_string = lambda name, **kw: f"instance {name} {kw}".encode()  # type: ignore[method-assign]
                if self.get_argument("instance", None) == "namespace":
                    self.get_template_namespace = lambda: {  # type: ignore[method-assign]
                        "locale": self.locale,
                        "extra": "instance",
                        "_tt_modules": "m",
                    }
                self.render("t.html", who="<plain>", extra="plain")

        class OwnRenderString(Plain):
            def render_string(self, template_name: str, **kwargs: Any) -> bytes:
                kwargs["extra"] = "own"
                return b"own:" + super().render_string(template_name, **kwargs)

        class OwnNamespace(Plain):
            def get_template_namespace(self) -> dict[str, Any]:
                namespace = super().get_template_namespace()
                namespace["extra"] = "ns"
                namespace["_tt_modules"] = "modules"
                return namespace

        return Application(
            [("/plain", Plain), ("/own_rs", OwnRenderString), ("/own_ns", OwnNamespace)],
            template_loader=loader,
        )

    def test_stock(self) -> None:
        body = self.fetch("/plain").body
        assert body.startswith(
            b"&lt;plain&gt;|en_US|plain|&lt;squall.web.rendering._UIModuleNamespace"
        )

    def test_render_string_overridden(self) -> None:
        assert self.fetch("/own_rs").body.startswith(b"own:&lt;plain&gt;|en_US|own|")
        body = self.fetch("/plain?instance=render_string").body
        assert body == b"instance t.html {'who': '<plain>', 'extra': 'plain'}"

    def test_namespace_overridden(self) -> None:
        # The arguments win over the namespace.
        assert self.fetch("/own_ns").body == b"&lt;plain&gt;|en_US|plain|modules"
        assert self.fetch("/plain?instance=namespace").body == b"&lt;plain&gt;|en_US|plain|m"

    def test_stock_namespace_is_what_templates_see(self) -> None:
        names: dict[str, Any] = {}

        class Spy(RequestHandler):
            def get(self) -> None:
                names.update(self.get_template_namespace())
                self.finish()

        handler_names = {"handler", "request", "current_user", "locale", "_", "pgettext"}
        handler_names |= {"static_url", "xsrf_form_html", "reverse_url", "_tt_modules", "modules"}
        self._app.add_handlers(".*", [("/spy", Spy)])
        assert self.fetch("/spy").code == 200
        assert set(names) == handler_names


class TemplateSubclassTest(RenderTestCase):
    def get_app(self) -> Application:
        class Page(RequestHandler):
            def get(self) -> None:
                self.render("t.html", who="<x>")

        loader = _ShoutingLoader({"t.html": "{{ who }} {{ locale.code }}"})
        return Application([("/", Page)], template_loader=loader)

    def test_own_generate_is_called(self) -> None:
        assert self.fetch("/").body == b"&LT;X&GT; EN_US"


class StaticUrlTest(RenderTestCase):
    def get_app(self) -> Application:
        class Url(RequestHandler):
            def get(self, path: str) -> None:
                host = self.get_argument("host", None)
                version = self.get_argument("version", "1") == "1"
                self.write(
                    self.static_url(
                        path,
                        include_host=None if host is None else host == "1",
                        include_version=version,
                    )
                )

        class HostUrl(Url):
            include_host = True

        return Application(
            [("/url/(.*)", Url), ("/hosturl/(.*)", HostUrl)],
            static_path=STATIC,
            static_url_prefix="/assets/",
        )

    def test_relative(self) -> None:
        assert self.fetch("/url/robots.txt").body.decode() == f"/assets/robots.txt?v={ROBOTS_HASH}"
        assert self.fetch("/url/robots.txt?version=0").body == b"/assets/robots.txt"

    def test_missing_file_has_no_version(self) -> None:
        from squall.testing import ExpectLog

        with ExpectLog("squall.general", "Could not open static file"):
            assert self.fetch("/url/missing.txt").body == b"/assets/missing.txt"

    def test_include_host(self) -> None:
        base = self.get_url("/assets/robots.txt")
        assert self.fetch("/hosturl/robots.txt?version=0").body.decode() == base
        assert self.fetch("/url/robots.txt?version=0&host=1").body.decode() == base
        assert self.fetch("/hosturl/robots.txt?version=0&host=0").body == b"/assets/robots.txt"

    def test_files_are_served_at_the_prefix(self) -> None:
        assert self.fetch("/assets/robots.txt").body == b"Disallow: /\n"


class CustomStaticClassTest(RenderTestCase):
    def get_app(self) -> Application:
        class Versioned(StaticFileHandler):
            @classmethod
            def make_static_url(
                cls, settings: dict[str, Any], path: str, include_version: bool = True
            ) -> str:
                return f"/v/{path}"

        class Url(RequestHandler):
            def get(self) -> None:
                self.write(self.static_url("a.css"))

        return Application([("/", Url)], static_path=STATIC, static_handler_class=Versioned)

    def test_static_handler_class_makes_the_url(self) -> None:
        assert self.fetch("/").body == b"/v/a.css"


def test_static_url_needs_static_path() -> None:
    class Fake(RenderMixin):
        application: Any = type("App", (), {"settings": {}})()

        def require_setting(self, name: str, feature: str = "this feature") -> None:
            if not self.application.settings.get(name):
                raise Exception(f"You must define the {name!r} setting to use {feature}")

    with pytest.raises(Exception, match="static_path"):
        Fake().static_url("x")


def test_template_path_setting() -> None:
    class Fake(RenderMixin):
        def __init__(self, path: Optional[str]) -> None:
            self.application = type(
                "App", (), {"settings": {"template_path": path} if path else {}}
            )()

    assert Fake("/t").get_template_path() == "/t"
    assert Fake(None).get_template_path() is None
