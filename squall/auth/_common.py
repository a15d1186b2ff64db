"""What every provider mixin shares: the error type and the HTTP client."""

from __future__ import annotations

from typing import cast

from squall.httpclient import AsyncHTTPClient
from squall.web import RequestHandler


class AuthError(Exception):
    """The provider's answer was missing, inconsistent or not valid."""


def _as_handler(mixin: object) -> RequestHandler:
    # The mixins only work combined with a RequestHandler; saying so once
    # keeps the type checker informed without repeating casts everywhere.
    return cast(RequestHandler, mixin)


def _default_http_client() -> AsyncHTTPClient:
    return AsyncHTTPClient()
