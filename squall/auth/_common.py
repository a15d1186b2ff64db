"""What every provider mixin shares: the error type and the HTTP client."""

from __future__ import annotations

import urllib.parse
from typing import Any, Optional, cast

from squall import escape
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


async def _fetch_json(
    client: AsyncHTTPClient, url: str, post_args: Optional[dict[str, Any]]
) -> Any:
    """GET ``url`` (or POST ``post_args`` to it, form-encoded) and decode the JSON answer."""
    if post_args is not None:
        response = await client.fetch(url, method="POST", body=urllib.parse.urlencode(post_args))
    else:
        response = await client.fetch(url)
    return escape.json_decode(response.body)
