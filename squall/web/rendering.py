"""Template rendering, UI modules and static URLs for request handlers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from squall.concurrent import Future
from squall.util import ObjectDict

if TYPE_CHECKING:
    from squall import template

__all__ = ["RenderMixin"]


class RenderMixin:
    """Template and UI-module methods of `RequestHandler`."""

    settings: dict[str, Any]
    ui: ObjectDict

    def render(self, template_name: str, **kwargs: Any) -> Future[None]:
        """Renders the template with the arguments and finishes the response."""
        raise NotImplementedError

    def render_linked_js(self, js_files: Iterable[str]) -> str:
        """The ``<script>`` tags of the JavaScript files of the UI modules."""
        raise NotImplementedError

    def render_embed_js(self, js_embed: Iterable[bytes]) -> bytes:
        """The inline ``<script>`` block of the UI modules' JavaScript."""
        raise NotImplementedError

    def render_linked_css(self, css_files: Iterable[str]) -> str:
        """The ``<link>`` tags of the CSS files of the UI modules."""
        raise NotImplementedError

    def render_embed_css(self, css_embed: Iterable[bytes]) -> bytes:
        """The inline ``<style>`` block of the UI modules' CSS."""
        raise NotImplementedError

    def render_string(self, template_name: str, **kwargs: Any) -> bytes:
        """Renders the template with the arguments and returns the bytes."""
        raise NotImplementedError

    def get_template_namespace(self) -> dict[str, Any]:
        """The default names available to every template."""
        raise NotImplementedError

    def create_template_loader(self, template_path: str) -> template.BaseLoader:
        """Returns a template loader for ``template_path``."""
        raise NotImplementedError

    def get_template_path(self) -> Optional[str]:
        """The directory templates are loaded from (the ``template_path`` setting)."""
        raise NotImplementedError

    def static_url(self, path: str, include_host: Optional[bool] = None, **kwargs: Any) -> str:
        """Returns a versioned URL of the static file ``path``."""
        raise NotImplementedError

    def _ui_module(self, name: str, module: type[Any]) -> Any:
        raise NotImplementedError

    def _ui_method(self, method: Any) -> Any:
        raise NotImplementedError
