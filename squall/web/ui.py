"""UI modules: reusable page components that templates call with ``{% module %}``.

A `UIModule` renders a fragment and may ask for CSS and JavaScript (files or
inline) and extra ``<head>``/``<body>`` markup; `RequestHandler.render`
gathers those requests from every module used on the page and puts them in
place once, whatever the number of times each module was rendered.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional, Union

from squall import escape

if TYPE_CHECKING:
    from squall.httputil import HTTPServerRequest
    from squall.locale import Locale
    from squall.util import ObjectDict
    from squall.web.handler import RequestHandler

__all__ = ["TemplateModule", "UIModule"]


class UIModule:
    """A re-usable, modular UI unit on a page.

    One instance per handler and module name serves every ``{% module %}``
    call on the page, so a module can collect state across its renders.

    Attributes:
        handler: the `RequestHandler` rendering the page.
        request: the handler's request.
        ui: the handler's UI namespace (``handler.ui``).
        locale: the handler's locale.
    """

    def __init__(self, handler: RequestHandler) -> None:
        self.handler = handler
        self.request: HTTPServerRequest = handler.request
        self.ui: ObjectDict = handler.ui
        self.locale: Locale = handler.locale

    @property
    def current_user(self) -> Any:
        """The handler's `RequestHandler.current_user` (computed only if used)."""
        return self.handler.current_user

    def render(self, *args: Any, **kwargs: Any) -> Union[str, bytes]:
        """Returns the module's markup; every subclass defines it."""
        raise NotImplementedError()

    def embedded_javascript(self) -> Optional[str]:
        """JavaScript to put inline at the end of the page's body."""
        return None

    def javascript_files(self) -> Optional[Union[str, list[str]]]:
        """JavaScript files for the page: URLs, or paths relative to the static directory."""
        return None

    def embedded_css(self) -> Optional[str]:
        """CSS to put inline in the page's head."""
        return None

    def css_files(self) -> Optional[Union[str, list[str]]]:
        """CSS files for the page: URLs, or paths relative to the static directory."""
        return None

    def html_head(self) -> Optional[str]:
        """Markup to put at the end of the page's ``<head>``."""
        return None

    def html_body(self) -> Optional[str]:
        """Markup to put at the end of the page's ``<body>``."""
        return None

    def render_string(self, path: str, **kwargs: Any) -> bytes:
        """Renders a template with the handler's namespace and ``kwargs``."""
        return self.handler.render_string(path, **kwargs)


class _linkify(UIModule):  # noqa: N801 (the module's name in templates)
    def render(self, text: str, **kwargs: Any) -> str:
        return escape.linkify(text, **kwargs)


class _xsrf_form_html(UIModule):  # noqa: N801 (the module's name in templates)
    def render(self) -> str:
        return self.handler.xsrf_form_html()


class TemplateModule(UIModule):
    """Renders a template as a module: ``{% module Template("item.html", item=i) %}``.

    The template may call ``set_resources(css_files=..., embedded_javascript=...,
    html_head=...)`` (any of the `UIModule` resource names) to declare what
    the page needs; each template's resources are included once.
    """

    def __init__(self, handler: RequestHandler) -> None:
        super().__init__(handler)
        # Resources by template path, in the order templates first declared them.
        self._resources: dict[str, dict[str, Any]] = {}

    def render(self, path: str, **kwargs: Any) -> bytes:
        """Renders the template ``path`` with ``kwargs``."""

        def set_resources(**resources: Any) -> str:
            known = self._resources.setdefault(path, resources)
            if known != resources:
                raise ValueError(
                    f"set_resources called with different resources for the same template {path!r}"
                )
            return ""

        return self.render_string(path, set_resources=set_resources, **kwargs)

    def _each(self, key: str) -> Iterator[Any]:
        return (resources[key] for resources in self._resources.values() if key in resources)

    def _files(self, key: str) -> list[str]:
        files: list[str] = []
        for item in self._each(key):
            if isinstance(item, (str, bytes)):
                files.append(escape.to_unicode(item))
            else:
                files.extend(item)
        return files

    def embedded_javascript(self) -> str:
        """The inline JavaScript of every rendered template, one per line."""
        return "\n".join(self._each("embedded_javascript"))

    def javascript_files(self) -> list[str]:
        """The JavaScript files of every rendered template."""
        return self._files("javascript_files")

    def embedded_css(self) -> str:
        """The inline CSS of every rendered template, one per line."""
        return "\n".join(self._each("embedded_css"))

    def css_files(self) -> list[str]:
        """The CSS files of every rendered template."""
        return self._files("css_files")

    def html_head(self) -> str:
        """The ``<head>`` markup of every rendered template."""
        return "".join(self._each("html_head"))

    def html_body(self) -> str:
        """The ``<body>`` markup of every rendered template."""
        return "".join(self._each("html_body"))


DEFAULT_UI_MODULES: dict[str, type[UIModule]] = {
    "linkify": _linkify,
    "xsrf_form_html": _xsrf_form_html,
    "Template": TemplateModule,
}
"""The modules every application has, under the names templates use."""
