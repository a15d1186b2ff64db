"""`IdentityMixin`, part of `RequestHandler`: who is asking and from where.

The user (`~squall.web.RequestHandler.current_user`, `get_current_user`, `~squall.web.RequestHandler.get_login_url`), the locale,
the settings a feature needs, and the cross-origin check run before
`prepare` for unsafe methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from squall import locale as locale_module
from squall.httputil._urls import origin_names_host
from squall.web.errors import HTTPError

if TYPE_CHECKING:
    from squall.httputil import HTTPServerRequest

__all__ = ["IdentityMixin"]

# current_user before its first computation (None is a valid user: anonymous).
_UNSET: Any = object()


class IdentityMixin:
    """The user, locale, settings and cross-origin methods of `RequestHandler`."""

    request: HTTPServerRequest
    application: Any
    settings: dict[str, Any]
    _locale: locale_module.Locale
    _current_user: Any

    @property
    def locale(self) -> locale_module.Locale:
        """The user's locale, from `get_user_locale`, else `get_browser_locale` (may be assigned)."""
        # getattr, not self.__dict__: reading __dict__ makes CPython build
        # it, and every attribute access on the handler is slower after.
        loc = getattr(self, "_locale", None)
        if loc is None:
            loc = self.get_user_locale()
            if loc is None:
                loc = self.get_browser_locale()
            self._locale = loc
        result: locale_module.Locale = loc
        return result

    @locale.setter
    def locale(self, value: locale_module.Locale) -> None:
        self._locale = value

    def get_user_locale(self) -> Optional[locale_module.Locale]:
        """Override to choose the locale from the user (a preference, say); None means the browser's."""
        return None

    def get_browser_locale(self, default: str = "en_US") -> locale_module.Locale:
        """The best locale for the request's ``Accept-Language`` (q-values honoured)."""
        # Parsed in squall.locale, which remembers the few distinct values
        # real clients send.
        return locale_module._browser_locale(self.request.headers.get("Accept-Language"), default)

    @property
    def current_user(self) -> Any:
        """The authenticated user, `get_current_user`'s result, computed once (may be assigned)."""
        user = getattr(self, "_current_user", _UNSET)
        if user is _UNSET:
            user = self._current_user = self.get_current_user()
        return user

    @current_user.setter
    def current_user(self, value: Any) -> None:
        self._current_user = value

    def get_current_user(self) -> Any:
        """Override to identify the user (from a signed cookie, say); None means anonymous."""
        return None

    def get_login_url(self) -> str:
        """The URL `authenticated` redirects to: the ``login_url`` setting."""
        self.require_setting("login_url", "@squall.web.authenticated")
        url: str = self.application.settings["login_url"]
        return url

    def require_setting(self, name: str, feature: str = "this feature") -> None:
        """Raises an exception unless the application has the setting ``name``.

        Raises:
            Exception: naming the missing setting and the feature that needs it.
        """
        if not self.application.settings.get(name):
            raise Exception(
                f"You must define the '{name}' setting in your application to use {feature}"
            )

    def reverse_url(self, name: str, *args: Any) -> str:
        """`.Application.reverse_url`."""
        url: str = self.application.reverse_url(name, *args)
        return url

    def _check_cross_origin(self) -> None:
        """Rejects a cross-origin request (the ``cross_origin_protection`` setting).

        Runs before `prepare` for methods other than GET, HEAD and OPTIONS. A
        browser's ``Sec-Fetch-Site`` header decides when present (only
        ``same-origin`` and ``none`` pass); otherwise the ``Origin`` header must
        name this server. Origins accepted by `check_trusted_origin` pass
        either way. Requests with neither header (non-browser clients) pass.

        Raises:
            HTTPError: 403, for a cross-origin request.
        """
        headers = self.request.headers
        site = headers.get("Sec-Fetch-Site")
        origin = headers.get("Origin")
        if site is not None:
            if site in ("same-origin", "none"):
                return
            if origin is not None and self.check_trusted_origin(origin):
                return
            raise HTTPError(
                403,
                "Cross-origin request: Sec-Fetch-Site %s from Origin %r not allowed",
                site,
                origin,
            )
        if origin is None:
            return
        if origin_names_host(origin, headers.get("Host")) or self.check_trusted_origin(origin):
            return
        raise HTTPError(403, "Cross-origin request: Origin %r not allowed", origin)

    def check_trusted_origin(self, origin: str) -> bool:
        """Whether a cross-origin request from ``origin`` is allowed.

        By default, origins listed exactly in the ``trusted_origins`` setting.
        """
        return origin in self.settings.get("trusted_origins", ())
