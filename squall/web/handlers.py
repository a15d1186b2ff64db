"""Ready-made handlers: `ErrorHandler`, `RedirectHandler`, `FallbackHandler`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Optional

from squall.httputil import HTTPServerRequest, qs_to_qsl, url_concat
from squall.web.errors import HTTPError
from squall.web.handler import RequestHandler

__all__ = ["ErrorHandler", "FallbackHandler", "RedirectHandler"]


class ErrorHandler(RequestHandler):
    """Answers every request with the error ``status_code`` (an argument of the route).

    It is the default 404 handler. The cross-origin and XSRF checks are
    skipped: they would turn every error into a 403.
    """

    def initialize(self, status_code: int) -> None:
        self.set_status(status_code)

    def prepare(self) -> None:
        raise HTTPError(self._status_code)

    def check_xsrf_cookie(self) -> None:
        pass

    def _check_cross_origin(self) -> None:
        pass

    def check_trusted_origin(self, origin: str) -> bool:
        """Every origin may see an error page."""
        return True


class FallbackHandler(RequestHandler):
    """Passes the request to a callable taking it (such as a `.WSGIContainer`).

    Example: ``(r".*", FallbackHandler, dict(fallback=wsgi_app))``.
    """

    def initialize(self, fallback: Callable[[HTTPServerRequest], None]) -> None:
        self.fallback = fallback

    def prepare(self) -> None:
        self.fallback(self.request)
        self._finished = True
        self.on_finish()


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# Schemes whose URLs always have an authority: browsers read "https:host"
# and "https:///host" as "https://host".
_SPECIAL_SCHEMES = frozenset(("http", "https", "ws", "wss", "ftp", "file"))
_AUTHORITY_END = re.compile(r"[/?#]")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _origin(url: str) -> tuple[str, Optional[str]]:
    # The (scheme, authority) a browser would take from ``url``: backslashes
    # count as slashes, tabs are dropped, and any run of slashes may lead to
    # the host.
    url = url.replace("\t", "").replace("\\", "/").lstrip(" ")
    match = _SCHEME.match(url)
    scheme = ""
    if match is not None:
        scheme = match.group()[:-1].lower()
        url = url[match.end() :]
        if scheme not in _SPECIAL_SCHEMES and not url.startswith("//"):
            return scheme, None
    elif not url.startswith("//"):
        return "", None
    authority = _AUTHORITY_END.split(url.lstrip("/"), maxsplit=1)[0]
    return scheme, authority.lower()


def _literal_prefix(template: str) -> str:
    # The text of a str.format template before its first replacement field.
    out = []
    i = 0
    while i < len(template):
        char = template[i]
        if char in "{}":
            if template[i + 1 : i + 2] == char:
                out.append(char)
                i += 2
                continue
            break
        out.append(char)
        i += 1
    return "".join(out)


class RedirectHandler(RequestHandler):
    """Redirects every GET to ``url`` (arguments of the route: ``url``, ``permanent``).

    ``url`` is a `str.format` template filled with the route's groups, so
    ``(r"/pictures/(.*)", RedirectHandler, dict(url="/photos/{0}"))`` moves a
    whole tree. The request's query arguments are appended. A substitution
    may not change the scheme or host that the template sets (an open
    redirect); such a request gets a 400.
    """

    def initialize(self, url: str, permanent: bool = True) -> None:
        self._url = url
        self._permanent = permanent

    def get(self, *args: Any, **kwargs: Any) -> None:
        to_url = self._url.format(*args, **kwargs)
        if _FORBIDDEN.search(to_url) is not None:
            raise HTTPError(400, "Redirect URL contains invalid characters: %r", to_url)
        if self.request.query_arguments:
            try:
                to_url = url_concat(to_url, list(qs_to_qsl(self.request.query_arguments)))
            except ValueError:
                raise HTTPError(400, "Redirect URL cannot be parsed: %r", to_url)
        if (args or kwargs) and _origin(to_url) != _origin(_literal_prefix(self._url)):
            raise HTTPError(400, "Redirect URL cannot change the scheme or netloc: %r", to_url)
        self.redirect(to_url, permanent=self._permanent)
