"""UI modules: built-ins, TemplateModule resources, and their placement by render()."""

from __future__ import annotations

import os
from typing import Any

import pytest

from squall.template import DictLoader
from squall.testing import AsyncHTTPTestCase
from squall.web import Application, RequestHandler
from squall.web.rendering import RenderMixin
from squall.web.static import StaticFileHandler
from squall.web.ui import DEFAULT_UI_MODULES, TemplateModule, UIModule

STATIC = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "web", "static")


class Counter(UIModule):
    """Counts its renders on the page; asks for every kind of resource."""

    def render(self, label: str) -> str:
        self.count = getattr(self, "count", 0) + 1
        return f"[{label}{self.count}]"

    def embedded_javascript(self) -> str:
        return "count()"

    def javascript_files(self) -> list[str]:
        return ["/a.js", "sub/site.css", "/a.js"]

    def embedded_css(self) -> str:
        return ".c{}"

    def css_files(self) -> str:
        return "https://cdn.example/c.css"

    def html_head(self) -> str:
        return "<meta name=c>"

    def html_body(self) -> str:
        return "<i>end</i>"


class WhoAmI(UIModule):
    def render(self) -> str:
        return f"{self.current_user}/{self.locale.code}/{self.request.path}/{'modules' in self.ui}"


class Inline(UIModule):
    def render(self) -> bytes:
        return self.render_string("inline.html", word="hi")


TEMPLATES = {
    "counter.html": (
        "<html><head><title>t</title></head><body>"
        "{% module Counter('a') %}{% module Counter('b') %}{{ modules.Counter('c') }}"
        "</body></html>"
    ),
    "builtins.html": "{% module linkify('see http://example.com') %} {% module xsrf_form_html() %}",
    "page.html": (
        "<html><head></head><body>"
        "{% for i in items %}{% module Template('item.html', i=i) %}{% end %}"
        "{% module Template('other.html') %}</body></html>"
    ),
    "item.html": (
        "{{ set_resources(css_files=['/item.css'], javascript_files='/item.js', "
        "embedded_css='.item{}', embedded_javascript='item()', html_head='<h>', html_body='<b>') }}"
        "<li>{{ i }}</li>"
    ),
    "other.html": "{{ set_resources(javascript_files=['/other.js', '/item.js']) }}<p>other</p>",
    "conflict.html": "{% module Template('bad.html', n=1) %}{% module Template('bad.html', n=2) %}",
    "bad.html": "{{ set_resources(embedded_css='.n' + str(n)) }}",
    "who.html": "{% module WhoAmI() %}",
    "inline.html": "<{{ word }}>",
    "uses_inline.html": "{% module Inline() %}",
    "plain.html": "<html><head></head><body>plain</body></html>",
}


class UIModuleTest(AsyncHTTPTestCase):
    def setUp(self) -> None:
        RenderMixin._template_loaders.clear()
        StaticFileHandler.reset()
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        RenderMixin._template_loaders.clear()

    def get_app(self) -> Application:
        class Page(RequestHandler):
            def get_current_user(self) -> str:
                return "ann"

            def get(self, name: str) -> None:
                self.render(name, items=[1, 2])

        return Application(
            [("/(.*)", Page)],
            template_loader=DictLoader(TEMPLATES, autoescape=None),
            ui_modules={"Counter": Counter, "WhoAmI": WhoAmI, "Inline": Inline},
            static_path=STATIC,
            cookie_secret="s",
        )

    def test_one_instance_per_page_and_resources_placed_once(self) -> None:
        body = self.fetch("/counter.html").body.decode()
        css_version = StaticFileHandler.get_version({"static_path": STATIC}, "sub/site.css")
        assert css_version is not None
        css_version = css_version[: StaticFileHandler.VERSION_URL_LENGTH]
        assert body == (
            "<html><head><title>t</title>"
            '<link href="https://cdn.example/c.css" type="text/css" rel="stylesheet"/>\n'
            '<style type="text/css">\n.c{}\n</style>\n'
            "<meta name=c>\n"
            "</head><body>[a1][b2][c3]"
            '<script src="/a.js" type="text/javascript"></script>'
            f'<script src="/static/sub/site.css?v={css_version}" type="text/javascript"></script>\n'
            '<script type="text/javascript">\n//<![CDATA[\ncount()\n//]]>\n</script>\n'
            "<i>end</i>\n"
            "</body></html>"
        )

    def test_builtin_modules(self) -> None:
        body = self.fetch("/builtins.html").body.decode()
        assert body.startswith('see <a href="http://example.com">http://example.com</a> ')
        assert '<input type="hidden" name="_xsrf" value="2|' in body

    def test_template_module_collects_resources_per_template(self) -> None:
        body = self.fetch("/page.html").body.decode()
        assert body == (
            '<html><head><link href="/item.css" type="text/css" rel="stylesheet"/>\n'
            '<style type="text/css">\n.item{}\n</style>\n'
            "<h>\n"
            "</head><body><li>1</li><li>2</li><p>other</p>"
            '<script src="/item.js" type="text/javascript"></script>'
            '<script src="/other.js" type="text/javascript"></script>\n'
            '<script type="text/javascript">\n//<![CDATA[\nitem()\n//]]>\n</script>\n'
            "<b>\n"
            "</body></html>"
        )

    def test_conflicting_resources_are_an_error(self) -> None:
        from squall.testing import ExpectLog

        with ExpectLog("squall.application", "Uncaught exception"):
            assert self.fetch("/conflict.html").code == 500

    def test_module_sees_the_handler(self) -> None:
        assert self.fetch("/who.html").body == b"ann/en_US//who.html/True"

    def test_module_render_string(self) -> None:
        assert self.fetch("/uses_inline.html").body == b"<hi>"

    def test_page_without_modules_is_untouched(self) -> None:
        assert self.fetch("/plain.html").body == b"<html><head></head><body>plain</body></html>"


class Recorder:
    """A stand-in handler for UIModule's own behaviour."""

    def __init__(self) -> None:
        self.request = "the request"
        self.ui: dict[str, Any] = {}
        self.current_user = "bob"
        self.locale = "fr"
        self.rendered: list[tuple[str, dict[str, Any]]] = []

    def render_string(self, path: str, **kwargs: Any) -> bytes:
        self.rendered.append((path, kwargs))
        return b"rendered"


def test_base_module_defaults() -> None:
    handler = Recorder()
    module = UIModule(handler)  # type: ignore[arg-type]
    assert (module.request, module.current_user, module.locale) == ("the request", "bob", "fr")
    with pytest.raises(NotImplementedError):
        module.render()
    for hook in (
        module.embedded_javascript,
        module.javascript_files,
        module.embedded_css,
        module.css_files,
        module.html_head,
        module.html_body,
    ):
        assert hook() is None
    assert module.render_string("x.html", a=1) == b"rendered"
    assert handler.rendered == [("x.html", {"a": 1})]


def test_template_module_without_resources() -> None:
    module = TemplateModule(Recorder())  # type: ignore[arg-type]
    assert module.render("t.html", a=1) == b"rendered"
    assert (
        module.embedded_javascript(),
        module.embedded_css(),
        module.html_head(),
        module.html_body(),
    ) == (
        "",
        "",
        "",
        "",
    )
    assert module.javascript_files() == [] and module.css_files() == []


def test_template_module_bytes_file_names() -> None:
    handler = Recorder()
    module = TemplateModule(handler)  # type: ignore[arg-type]
    module.render("t.html")
    handler.rendered[0][1]["set_resources"](css_files=b"/x.css")
    assert module.css_files() == ["/x.css"]


def test_default_modules() -> None:
    assert set(DEFAULT_UI_MODULES) == {"linkify", "xsrf_form_html", "Template"}
    assert DEFAULT_UI_MODULES["Template"] is TemplateModule
