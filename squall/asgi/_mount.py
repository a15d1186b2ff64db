"""Mounting an ASGI application inside a Squall `Application`: `ASGIHandler`, `mount`."""

from __future__ import annotations

import re
from typing import Any

from squall.asgi._server import ASGIServerDelegate
from squall.asgi._types import ASGIApp
from squall.routing import PathMatches, Rule

__all__ = ["ASGIHandler", "mount"]


class ASGIHandler(ASGIServerDelegate):
    """A rule target that hands matching requests to an ASGI application.

    The application sees the full request path and ``root_path`` set to
    ``prefix`` (Starlette's ``Mount`` convention), so a FastAPI route
    ``/items`` answers ``/api/items`` under ``prefix="/api"``. Its lifespan
    runs only if you call `~squall.asgi.ASGIServerDelegate.startup` / `~squall.asgi.ASGIServerDelegate.shutdown` (the Application does not).

    Args:
        app: the ASGI application.
        prefix: the path the application is mounted at ("" for none).
        **kwargs: as for `ASGIServerDelegate`.
    """

    def __init__(self, app: ASGIApp, prefix: str = "", **kwargs: Any) -> None:
        super().__init__(app, root_path=prefix, **kwargs)
        self.prefix_in_path = True


def mount(prefix: str, app: ASGIApp, **kwargs: Any) -> Rule:
    """The routing rule sending ``prefix`` and everything under it to ``app``.

    ``Application([mount("/api", fastapi_app), (r"/", MainHandler)])``.

    Args:
        prefix: a path such as ``"/api"`` (no trailing slash).
        app: the ASGI application.
        **kwargs: as for `ASGIServerDelegate`.
    """
    prefix = prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise ValueError(f"a mount prefix starts with '/', got {prefix!r}")
    pattern = re.escape(prefix) + r"(?:/.*)?$" if prefix else r"/.*$"
    return Rule(PathMatches(pattern), ASGIHandler(app, prefix, **kwargs))
