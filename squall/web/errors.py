"""The exceptions a request handler raises to end a request early."""

from __future__ import annotations

from typing import Any, Optional

from squall.httputil import responses

__all__ = ["Finish", "HTTPError", "MissingArgumentError"]


class HTTPError(Exception):
    """Ends the request with an HTTP error response.

    Raising it from a handler is the same as calling `RequestHandler.send_error`
    and is cheaper than writing the error page by hand: `~squall.web.RequestHandler.write_error` renders
    it and the error is logged as a warning (with ``log_message``) instead of
    with a traceback.

    Args:
        status_code: the HTTP status code of the response.
        log_message: a message for the log (not for the client); may hold
            ``%s``-style placeholders filled from ``args``.
        args: values for the placeholders of ``log_message``.
        reason: the reason phrase of the status line; by default the
            standard phrase of ``status_code`` (or ``"Unknown"``).
    """

    def __init__(
        self,
        status_code: int = 500,
        log_message: Optional[str] = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(status_code, log_message, *args)
        self.status_code = status_code
        self.log_message = log_message
        self.args = args
        self.reason: Optional[str] = kwargs.get("reason")
        if log_message and not args:
            # Without args the message is shown as is, so a literal "%"
            # (from a percent-encoded URL, say) must survive formatting.
            self.log_message = log_message.replace("%", "%%")

    def get_message(self) -> Optional[str]:
        """The log message with its placeholders filled from ``args`` (None if no message)."""
        if not self.log_message:
            return None
        return self.log_message % self.args

    def __str__(self) -> str:
        message = (
            f"HTTP {self.status_code}: {self.reason or responses.get(self.status_code, 'Unknown')}"
        )
        detail = self.get_message()
        return message if detail is None else f"{message} ({detail})"


class Finish(Exception):
    """Ends the request successfully, without an error page.

    Whatever was written so far is sent; ``Finish(chunk)`` writes ``chunk``
    first (as `RequestHandler.finish` would).
    """


class MissingArgumentError(HTTPError):
    """A required argument was absent: a 400 response.

    Attributes:
        arg_name: the name of the missing argument.
    """

    def __init__(self, arg_name: str) -> None:
        super().__init__(400, f"Missing argument {arg_name}")
        self.arg_name = arg_name
