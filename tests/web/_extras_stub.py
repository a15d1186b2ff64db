"""A stand-in handler for testing the web mixins without a server."""

from __future__ import annotations

from typing import Any, Optional

from squall.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from squall.util import ObjectDict
from squall.web.cookies import CookieMixin


class StubHandler(CookieMixin):
    """Just enough of `RequestHandler` for `CookieMixin`: request, settings, headers, arguments."""

    def __init__(
        self,
        cookie: Optional[str] = None,
        arguments: Optional[dict[str, str]] = None,
        headers: Optional[dict[str, str]] = None,
        current_user: Any = None,
        **settings: Any,
    ) -> None:
        request_headers = HTTPHeaders(headers or {})
        if cookie is not None:
            request_headers["Cookie"] = cookie
        self.request = HTTPServerRequest(
            headers=request_headers, start_line=RequestStartLine("POST", "/", "HTTP/1.1")
        )
        self.application = ObjectDict(settings=settings)
        self._headers = HTTPHeaders()
        self._arguments = arguments or {}
        self._user = current_user

    @property
    def settings(self) -> dict[str, Any]:  # type: ignore[override]
        settings: dict[str, Any] = self.application.settings
        return settings

    @property
    def current_user(self) -> Any:
        return self._user

    def require_setting(self, name: str, feature: str = "this feature") -> None:
        if not self.application.settings.get(name):
            raise Exception(f"You must define the {name!r} setting to use {feature}")

    def get_argument(
        self, name: str, default: Optional[str] = None, strip: bool = True
    ) -> Optional[str]:
        return self._arguments.get(name, default)

    def set_cookies(self) -> list[str]:
        """The Set-Cookie lines of the response so far."""
        return self._headers.get_list("Set-Cookie")
