"""``Alt-Svc`` on the TCP responses of a server that also serves HTTP/3.

RFC 9114 section 3.1.1: a client learns of the HTTP/3 endpoint from an
``Alt-Svc: h3=":PORT"`` field on a response it got over TCP. `HTTPServer`
puts `_AltSvcConnection` in front of each HTTP/1.1 and HTTP/2 exchange only
when ``http3`` is on: the drivers, and the server's path without HTTP/3,
stay as they are.
"""

from __future__ import annotations

__all__: list[str] = []

import asyncio

from squall.httputil import HTTPConnection, HTTPHeaders
from squall.httputil._startline import ResponseStartLine
from squall.httputil._wrapped import WrappedConnection


class _AltSvcConnection(WrappedConnection):
    """``request.connection``: a `.WrappedConnection` over the driver's
    exchange that adds ``Alt-Svc`` to a final response head that has none.
    The driver's connection reports its close here (`watch_close`)."""

    def __init__(self, conn: HTTPConnection, value: str) -> None:
        WrappedConnection.__init__(self, conn)
        self._value = value
        self.watch_close()

    def _emit_head(
        self, start_line: ResponseStartLine, headers: HTTPHeaders, chunk: bytes
    ) -> asyncio.Future[None]:
        if start_line.code >= 200 and "Alt-Svc" not in headers:
            headers["Alt-Svc"] = self._value
        return super()._emit_head(start_line, headers, chunk)
