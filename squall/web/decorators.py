"""Decorators for request handlers and their methods."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Optional, TypeVar
from urllib.parse import urlencode, urlsplit

from squall.web.errors import HTTPError

if TYPE_CHECKING:
    from squall.web.handler import RequestHandler

__all__ = ["addslash", "authenticated", "removeslash", "stream_request_body"]

_HandlerType = TypeVar("_HandlerType", bound=type)
_Method = Callable[..., Optional[Awaitable[None]]]


def stream_request_body(cls: _HandlerType) -> _HandlerType:
    """Class decorator: the handler receives the request body as it arrives.

    Instead of ``self.request.body`` being complete when the method runs, each
    piece is passed to ``data_received`` (which may return an awaitable to
    slow the client down); the HTTP method runs after the last piece.
    ``prepare`` runs once the headers are in, and may be a coroutine that
    holds back the body until it completes.

    Raises:
        TypeError: if ``cls`` is not a `RequestHandler` subclass.
    """
    from squall.web.handler import RequestHandler

    if not (isinstance(cls, type) and issubclass(cls, RequestHandler)):
        raise TypeError(f"expected subclass of RequestHandler, got {cls!r}")
    cls._stream_request_body = True
    return cls


def _has_stream_request_body(cls: type[Any]) -> bool:
    from squall.web.handler import RequestHandler

    if not (isinstance(cls, type) and issubclass(cls, RequestHandler)):
        raise TypeError(f"expected subclass of RequestHandler, got {cls!r}")
    return cls._stream_request_body


def authenticated(method: _Method) -> _Method:
    """Method decorator: only for a logged-in user (a true `~squall.web.RequestHandler.current_user`).

    Anonymous GET and HEAD requests are redirected to `~squall.web.RequestHandler.get_login_url`, with
    the requested URL as the ``next`` argument; other methods get a 403.
    """

    @functools.wraps(method)
    def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Optional[Awaitable[None]]:
        if not self.current_user:
            if self.request.method in ("GET", "HEAD"):
                url = self.get_login_url()
                if "?" not in url:
                    # An absolute login URL is on another host: give it ours.
                    next_url = self.request.full_url() if urlsplit(url).scheme else self.request.uri
                    url += "?" + urlencode({"next": next_url})
                self.redirect(url)
                return None
            raise HTTPError(403)
        return method(self, *args, **kwargs)

    return wrapper


def _local_redirect(self: RequestHandler, path: str) -> None:
    # A path starting with two slashes (or a slash and a backslash, which
    # browsers read alike) is a protocol-relative URL: another host.
    if path.startswith(("//", "/\\")):
        raise HTTPError(403, "cannot redirect path with two initial slashes: %r", path)
    if self.request.query:
        path += "?" + self.request.query
    self.redirect(path, permanent=True)


def removeslash(method: _Method) -> _Method:
    """Method decorator: redirects ``/path/`` to ``/path`` (GET/HEAD; 404 otherwise)."""

    @functools.wraps(method)
    def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Optional[Awaitable[None]]:
        if self.request.path.endswith("/"):
            if self.request.method not in ("GET", "HEAD"):
                raise HTTPError(404)
            path = self.request.path.rstrip("/")
            if path:  # "/" itself stays
                _local_redirect(self, path)
                return None
        return method(self, *args, **kwargs)

    return wrapper


def addslash(method: _Method) -> _Method:
    """Method decorator: redirects ``/path`` to ``/path/`` (GET/HEAD; 404 otherwise)."""

    @functools.wraps(method)
    def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Optional[Awaitable[None]]:
        if not self.request.path.endswith("/"):
            if self.request.method not in ("GET", "HEAD"):
                raise HTTPError(404)
            _local_redirect(self, self.request.path + "/")
            return None
        return method(self, *args, **kwargs)

    return wrapper
