"""`ErrorPageMixin`, part of `RequestHandler`: what a failed request answers and logs.

`send_error` replaces the response with an error page (`~squall.web.RequestHandler.write_error`
writes its body); `log_exception` logs the exception that ended the request.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any, Optional, Union

from squall import escape
from squall.log import app_log, gen_log
from squall.web._records import web as _records
from squall.web.errors import HTTPError

if TYPE_CHECKING:
    from types import TracebackType

    from squall.concurrent import Future
    from squall.httputil import HTTPServerRequest

__all__ = ["ErrorPageMixin"]


class ErrorPageMixin:
    """The error page and exception log of `RequestHandler`."""

    request: HTTPServerRequest
    settings: dict[str, Any]
    _headers_written: bool
    _finished: bool
    _reason: str

    if TYPE_CHECKING:
        # Provided by RequestHandler.
        def clear(self) -> None: ...
        def set_status(self, status_code: int, reason: Optional[str] = None) -> None: ...
        def set_header(self, name: str, value: Any) -> None: ...
        def write(self, chunk: Union[str, bytes, dict[str, Any]]) -> None: ...
        def finish(self, chunk: Union[None, str, bytes, dict[str, Any]] = None) -> Future[None]: ...

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """Replaces the response with an error page (see `~squall.web.RequestHandler.write_error`) and finishes it.

        Args:
            status_code: the status of the error response.
            kwargs: passed to `~squall.web.RequestHandler.write_error`; ``reason`` sets the reason phrase,
                ``exc_info`` is the exception that caused the error.
        """
        if self._headers_written:
            _records.send_error(gen_log, "Cannot send error response after headers written")
            if not self._finished:
                try:
                    self.finish()
                except Exception:
                    _records.send_error(gen_log, "Failed to flush partial response", exc_info=True)
            return
        self.clear()
        reason = kwargs.get("reason")
        if "exc_info" in kwargs:
            exception = kwargs["exc_info"][1]
            if isinstance(exception, HTTPError) and exception.reason:
                reason = exception.reason
        self.set_status(status_code, reason=reason)
        # RFC 9110 sections 15.3.5 and 15.4.5: these statuses have no body,
        # so there is no error page to write.
        if status_code not in (204, 304) and not 100 <= status_code < 200:
            try:
                self.write_error(status_code, **kwargs)
            except Exception:
                _records.send_error(app_log, "Uncaught exception in write_error", exc_info=True)
        if not self._finished:
            self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Writes the body of an error page; override for custom pages.

        With the ``serve_traceback`` setting and an ``exc_info`` keyword, the
        page is the traceback as plain text.
        """
        if self.settings.get("serve_traceback") and "exc_info" in kwargs:
            self.set_header("Content-Type", "text/plain")
            for line in traceback.format_exception(*kwargs["exc_info"]):
                self.write(line)
            self.finish()
        else:
            reason = escape.xhtml_escape(self._reason)
            # (%d: a code given as another number, 404.0, reads 404, as on Tornado.)
            code = "%d" % status_code  # noqa: UP031
            self.finish(
                f"<html><title>{code}: {reason}</title><body>{code}: {reason}</body></html>"
            )

    def _request_summary(self) -> str:
        request = self.request
        return f"{request.method} {request.uri} ({request.remote_ip})"

    def log_exception(
        self,
        typ: Optional[type[BaseException]],
        value: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        """Logs an exception that ended the request; override to change how.

        An `HTTPError` is logged as a warning without traceback (and only if
        it has a ``log_message``); anything else as an error with traceback.
        """
        # Logged from a file named web.py, so that the record's filename,
        # module and funcName are those of Tornado's (squall/web/_records).
        _records.log_exception(self._request_summary(), self.request, typ, value, tb)
