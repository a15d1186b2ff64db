"""``Alt-Svc`` on the TCP responses of a server that also serves HTTP/3.

RFC 9114 section 3.1.1: a client learns of the HTTP/3 endpoint from an
``Alt-Svc: h3=":PORT"`` field on a response it got over TCP. `HTTPServer`
puts `_AltSvcConnection` in front of each HTTP/1.1 and HTTP/2 exchange only
when ``http3`` is on: the drivers, and the server's path without HTTP/3,
stay as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Optional

from squall.httputil import HTTPConnection, HTTPHeaders
from squall.httputil._misc import ResponseStartLine, StartLine

__all__ = ["_AltSvcConnection"]


class _AltSvcConnection(HTTPConnection):
    """``request.connection``: the driver's exchange, with ``Alt-Svc`` added
    to a final response head that has none. Everything else is the
    driver's (attributes such as ``stream`` and ``trailers`` are read
    through)."""

    def __init__(self, conn: HTTPConnection, value: str) -> None:
        self._conn = conn
        self._value = value
        self.context = conn.context
        # The close is reported through set_close_callback, forwarded.
        self.close_callback_attribute = False
        self.close_callback: Optional[Callable[[], None]] = None

    def write_headers(
        self, start_line: StartLine, headers: HTTPHeaders, chunk: Optional[bytes] = None
    ) -> asyncio.Future[None]:
        if (
            isinstance(start_line, ResponseStartLine)
            and start_line.code >= 200
            and "Alt-Svc" not in headers
        ):
            headers["Alt-Svc"] = self._value
        return self._conn.write_headers(start_line, headers, chunk)

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        return self._conn.write(chunk)

    def finish(self) -> None:
        self._conn.finish()

    def write_informational(self, code: int, headers: HTTPHeaders) -> bool:
        return self._conn.write_informational(code, headers)

    @property
    def head_written(self) -> bool:
        return getattr(self._conn, "head_written", True) is not False

    def set_close_callback(self, callback: Optional[Callable[[], None]]) -> None:
        self._conn.set_close_callback(callback)

    def set_body_timeout(self, timeout: float) -> None:
        self._conn.set_body_timeout(timeout)

    def set_max_body_size(self, max_body_size: int) -> None:
        self._conn.set_max_body_size(max_body_size)

    def detach(self) -> Any:
        return self._conn.detach()

    def close(self) -> None:
        self._conn.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
