"""Template rendering, UI modules and static URLs for request handlers.

`RenderMixin` is part of `RequestHandler`. Template loaders are shared by all
handlers, one per template directory, in ``RequestHandler._template_loaders``;
with the ``compiled_template_cache`` setting off, `reset_template_caches`
empties their caches before each request.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

from squall import template
from squall.escape import to_unicode, utf8, xhtml_escape
from squall.util import ObjectDict

if TYPE_CHECKING:
    from squall.concurrent import Future
    from squall.httputil import HTTPServerRequest
    from squall.locale import Locale
    from squall.web.ui import UIModule

__all__ = ["RenderMixin", "is_absolute", "reset_template_caches"]

_WEB_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def is_absolute(path: str) -> bool:
    """Whether a resource path is a URL as is (rooted or with a scheme), not a static file path."""
    return path.startswith(("/", "http:", "https:"))


def _caller_directory() -> str:
    """The directory of the first caller outside squall.web: the default template path."""
    frame = sys._getframe(1)
    while (
        frame.f_back is not None
        and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _WEB_PACKAGE
    ):
        frame = frame.f_back
    return os.path.dirname(os.path.abspath(frame.f_code.co_filename))


def _as_list(part: Union[None, str, bytes, Iterable[str]]) -> list[str]:
    if not part:
        return []
    if isinstance(part, (str, bytes)):
        return [to_unicode(part)]
    return list(part)


def _insert_before(html: bytes, marker: bytes, insert: bytes, last: bool) -> bytes:
    at = html.rindex(marker) if last else html.index(marker)
    return html[:at] + insert + b"\n" + html[at:]


class RenderMixin:
    """Template, UI-module and static-URL methods of `RequestHandler`."""

    _template_loaders: ClassVar[dict[str, template.BaseLoader]] = {}
    _template_loader_lock: ClassVar[threading.Lock] = threading.Lock()

    request: HTTPServerRequest
    application: Any
    settings: dict[str, Any]
    ui: ObjectDict
    _finished: bool
    # The UI modules rendered on this page, by name; set on the handler at
    # the first one. A class default rather than a read of the handler's
    # __dict__: on CPython 3.11 reading __dict__ materialises it, and every
    # later attribute access on that handler costs more.
    _active_modules: Optional[dict[str, UIModule]] = None

    if TYPE_CHECKING:
        # Provided by RequestHandler.
        @property
        def current_user(self) -> Any: ...
        @property
        def locale(self) -> Locale: ...
        def require_setting(self, name: str, feature: str = "this feature") -> None: ...
        def reverse_url(self, name: str, *args: Any) -> str: ...
        def xsrf_form_html(self) -> str: ...
        def finish(self, chunk: Union[None, str, bytes, dict[str, Any]] = None) -> Future[None]: ...

    def render(self, template_name: str, **kwargs: Any) -> Future[None]:
        """Renders the template with the arguments as the response and finishes it.

        The CSS and JavaScript that the page's UI modules asked for are put in
        before ``</head>`` and ``</body>``.

        Returns:
            The future of `RequestHandler.finish`.

        Raises:
            RuntimeError: if the response is already finished.
        """
        if self._finished:
            raise RuntimeError("Cannot render() after finish()")
        # Unless render_string is overridden (on the class or the handler),
        # its work without passing the arguments as keywords again: a
        # keyword call copies them into a new dict (~3k instructions here).
        if getattr(self.render_string, "__func__", None) is _STOCK_RENDER_STRING:
            html = self._render_template(template_name, kwargs)
        else:
            html = self.render_string(template_name, **kwargs)
        modules = self._active_modules
        if modules:
            html = self._add_module_parts(html, modules.values())
        return self.finish(html)

    def _add_module_parts(self, html: bytes, modules: Iterable[UIModule]) -> bytes:
        """``html`` with the CSS, JavaScript and head/body parts of the UI modules used."""
        js_embed: list[bytes] = []
        js_files: list[str] = []
        css_embed: list[bytes] = []
        css_files: list[str] = []
        heads: list[bytes] = []
        bodies: list[bytes] = []
        for module in modules:
            part = module.embedded_javascript()
            if part:
                js_embed.append(utf8(part))
            js_files.extend(_as_list(module.javascript_files()))
            part = module.embedded_css()
            if part:
                css_embed.append(utf8(part))
            css_files.extend(_as_list(module.css_files()))
            part = module.html_head()
            if part:
                heads.append(utf8(part))
            part = module.html_body()
            if part:
                bodies.append(utf8(part))
        if js_files:
            html = _insert_before(
                html, b"</body>", utf8(self.render_linked_js(js_files)), last=True
            )
        if js_embed:
            html = _insert_before(html, b"</body>", self.render_embed_js(js_embed), last=True)
        if css_files:
            html = _insert_before(
                html, b"</head>", utf8(self.render_linked_css(css_files)), last=False
            )
        if css_embed:
            html = _insert_before(html, b"</head>", self.render_embed_css(css_embed), last=False)
        if heads:
            html = _insert_before(html, b"</head>", b"".join(heads), last=False)
        if bodies:
            html = _insert_before(html, b"</body>", b"".join(bodies), last=False)
        return html

    def _unique_urls(self, paths: Iterable[str]) -> list[str]:
        urls: dict[str, None] = {}
        for path in paths:
            urls[path if is_absolute(path) else self.static_url(path)] = None
        return list(urls)

    def render_linked_js(self, js_files: Iterable[str]) -> str:
        """The ``<script>`` tags of the JavaScript files of the UI modules, each once.

        Relative paths become `static_url` URLs.
        """
        return "".join(
            f'<script src="{xhtml_escape(url)}" type="text/javascript"></script>'
            for url in self._unique_urls(js_files)
        )

    def render_embed_js(self, js_embed: Iterable[bytes]) -> bytes:
        """The inline ``<script>`` block of the UI modules' JavaScript."""
        return (
            b'<script type="text/javascript">\n//<![CDATA[\n'
            + b"\n".join(js_embed)
            + b"\n//]]>\n</script>"
        )

    def render_linked_css(self, css_files: Iterable[str]) -> str:
        """The ``<link>`` tags of the CSS files of the UI modules, each once.

        Relative paths become `static_url` URLs.
        """
        return "".join(
            f'<link href="{xhtml_escape(url)}" type="text/css" rel="stylesheet"/>'
            for url in self._unique_urls(css_files)
        )

    def render_embed_css(self, css_embed: Iterable[bytes]) -> bytes:
        """The inline ``<style>`` block of the UI modules' CSS."""
        return b'<style type="text/css">\n' + b"\n".join(css_embed) + b"\n</style>"

    def render_string(self, template_name: str, **kwargs: Any) -> bytes:
        """Renders the template with the namespace and the arguments and returns the bytes.

        Templates are looked up under `get_template_path`, or by default beside
        the file of the code that called this.
        """
        return self._render_template(template_name, kwargs)

    def _render_template(self, template_name: str, kwargs: dict[str, Any]) -> bytes:
        template_path = self.get_template_path()
        if not template_path:
            template_path = _caller_directory()
        loaders = RenderMixin._template_loaders
        # Reading a dict is atomic: the lock is only for a miss, so that
        # two threads do not make two loaders.
        loader = loaders.get(template_path)
        if loader is None:
            with RenderMixin._template_loader_lock:
                loader = loaders.get(template_path)
                if loader is None:
                    loader = loaders[template_path] = self.create_template_loader(template_path)
        compiled = loader.load(template_name)
        if type(compiled).generate is not template.Template.generate:
            namespace = self.get_template_namespace()
            namespace.update(kwargs)
            return compiled.generate(**namespace)
        # The same as generate(**namespace), without copying the namespace
        # into keywords; the handler's names go straight into the template's
        # namespace unless get_template_namespace is overridden.
        namespace = compiled._namespace()
        if getattr(self.get_template_namespace, "__func__", None) is _STOCK_NAMESPACE:
            self._add_template_names(namespace)
        else:
            namespace.update(self.get_template_namespace())
        namespace.update(kwargs)
        return compiled._execute(namespace)

    def get_template_namespace(self) -> dict[str, Any]:
        """The names every template sees, besides its arguments.

        ``handler``, ``request``, ``current_user``, ``locale``, ``_`` (the
        locale's translate), ``pgettext``, ``static_url``, ``xsrf_form_html``,
        ``reverse_url``, and the application's UI methods and modules (``modules``).
        Override to add more.
        """
        namespace: dict[str, Any] = {}
        self._add_template_names(namespace)
        return namespace

    def _add_template_names(self, namespace: dict[str, Any]) -> None:
        """Puts the names of `get_template_namespace` in ``namespace``."""
        locale = self.locale
        namespace["handler"] = self
        namespace["request"] = self.request
        namespace["current_user"] = self.current_user
        namespace["locale"] = locale
        namespace["_"] = locale.translate
        namespace["pgettext"] = locale.pgettext
        namespace["static_url"] = self.static_url
        namespace["xsrf_form_html"] = self.xsrf_form_html
        namespace["reverse_url"] = self.reverse_url
        namespace.update(self.ui)

    def create_template_loader(self, template_path: str) -> template.BaseLoader:
        """Returns the template loader for ``template_path``.

        The ``template_loader`` setting wins if given; otherwise a
        `squall.template.Loader` with the ``autoescape`` and
        ``template_whitespace`` settings. Override for another loader.
        """
        settings = self.application.settings
        if "template_loader" in settings:
            loader: template.BaseLoader = settings["template_loader"]
            return loader
        kwargs: dict[str, Any] = {}
        if "autoescape" in settings:
            # None is a legitimate value: no autoescaping.
            kwargs["autoescape"] = settings["autoescape"]
        if "template_whitespace" in settings:
            kwargs["whitespace"] = settings["template_whitespace"]
        return template.Loader(template_path, **kwargs)

    def get_template_path(self) -> Optional[str]:
        """The directory templates are loaded from: the ``template_path`` setting.

        None means the directory of the file that calls `render`. Override to
        choose per handler.
        """
        path: Optional[str] = self.application.settings.get("template_path")
        return path

    def static_url(self, path: str, include_host: Optional[bool] = None, **kwargs: Any) -> str:
        """Returns a URL of the static file ``path``, with a version for caching.

        Needs the ``static_path`` setting. The URL comes from the
        ``static_handler_class`` setting's ``make_static_url`` (by default
        ``/static/path?v=<content hash>``), so files can be cached forever.

        Args:
            path: the file, relative to the static directory.
            include_host: make the URL absolute (``scheme://host/...``); by
                default the handler's ``include_host`` attribute, else False.
            kwargs: passed to ``make_static_url`` (``include_version=False``
                leaves the version out).
        """
        self.require_setting("static_path", "static_url")
        handler_class = self.application.settings.get("static_handler_class")
        if handler_class is None:
            from squall.web.static import StaticFileHandler

            handler_class = StaticFileHandler
        if include_host is None:
            include_host = getattr(self, "include_host", False)
        base = f"{self.request.protocol}://{self.request.host}" if include_host else ""
        url: str = handler_class.make_static_url(self.application.settings, path, **kwargs)
        return base + url

    def _ui_module(self, name: str, module: type[UIModule]) -> Callable[..., str]:
        """A template-callable that renders the handler's instance of ``module``."""

        def render(*args: Any, **kwargs: Any) -> str:
            active = self._active_modules
            if active is None:
                active = self._active_modules = {}
            instance = active.get(name)
            if instance is None:
                instance = active[name] = module(self)  # type: ignore[arg-type]
            return to_unicode(instance.render(*args, **kwargs))

        return render

    def _ui_method(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """Binds a UI method to the handler: templates call it without the handler."""
        return lambda *args, **kwargs: method(self, *args, **kwargs)


_STOCK_RENDER_STRING = RenderMixin.render_string
_STOCK_NAMESPACE = RenderMixin.get_template_namespace


def reset_template_caches() -> None:
    """Empties every shared template loader's cache (for ``compiled_template_cache=False``)."""
    with RenderMixin._template_loader_lock:
        for loader in RenderMixin._template_loaders.values():
            loader.reset()


class _UIModuleNamespace:
    # ``handler.ui.modules``: each UI module bound to the handler on first use.
    __slots__ = ("handler", "ui_modules")

    def __init__(self, handler: RenderMixin, ui_modules: dict[str, Any]) -> None:
        self.handler = handler
        self.ui_modules = ui_modules

    def __getitem__(self, key: str) -> Any:
        return self.handler._ui_module(key, self.ui_modules[key])

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(str(exc)) from exc
