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
        # Stored aside, behind a read-only property: a subclass that sets
        # its own ``log_message`` (a class attribute shadowing the property,
        # as JupyterHub's SpawnException has) before calling this keeps it.
        self._log_message = log_message
        self.args = args
        self.reason: Optional[str] = kwargs.get("reason")

    @property
    def log_message(self) -> Optional[str]:
        """The message for the log, ready to be %-formatted with ``args``.

        Without ``args`` the message is meant as is, so a literal ``%`` (from
        a percent-encoded URL, say) comes back doubled to survive formatting.
        """
        message = self._log_message
        if message and not self.args:
            return message.replace("%", "%%")
        return message

    def get_message(self) -> Optional[str]:
        """The log message with its placeholders filled from ``args`` (None if no message)."""
        message = self._log_message
        if message is None or not self.args:
            return message
        return message % self.args

    def __str__(self) -> str:
        # (%d: a code given as another number, 403.0, reads 403, as on Tornado.)
        code = "%d" % self.status_code  # noqa: UP031
        message = f"HTTP {code}: {self.reason or responses.get(self.status_code, 'Unknown')}"
        detail = self.get_message()
        return f"{message} ({detail})" if detail else message


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
