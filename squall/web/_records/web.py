"""The log records of `squall.web` that Tornado's ``web.py`` makes.

A record says where it was made (``%(filename)s``, ``%(module)s``,
``%(funcName)s`` in a log format): Tornado's "Uncaught exception", HTTP
error warnings, failed error pages and access lines say ``web.py``, module
``web``, and the method that logs them (``log_exception``, ``send_error``,
``log_request``). Deployments grep and alert on those, so the calls are made
from this file, by functions of those names; a ``stacklevel`` cannot do it
(the caller's file is ``handler.py`` or ``application.py``).
"""

from __future__ import annotations

import logging
import sys
import types
from types import TracebackType
from typing import TYPE_CHECKING, Optional

from squall.log import UNKNOWN_SITE, access_log, app_log, gen_log, handle_line
from squall.web.errors import HTTPError

if TYPE_CHECKING:
    from squall.web.handler import RequestHandler

__all__ = ["log_exception", "log_request", "send_error"]

_ACCESS_INFO = logging.INFO
_ACCESS_WARNING = logging.WARNING
_ACCESS_ERROR = logging.ERROR


def log_exception(
    summary: str,
    request: object,
    typ: Optional[type[BaseException]],
    value: Optional[BaseException],
    tb: Optional[TracebackType],
) -> None:
    """Log the exception that ended a request (`RequestHandler.log_exception`).

    An `HTTPError` as a warning without traceback (and only if it has a
    ``log_message``); anything else as an error with traceback.
    """
    if isinstance(value, HTTPError):
        if value.log_message:
            # The message filled in first, as Tornado 6.6 does: one fixed
            # format for every HTTPError's record.
            gen_log.warning("%d %s: %s", value.status_code, summary, value.get_message())
    else:
        app_log.error(
            "Uncaught exception %s\n%r",
            summary,
            request,
            exc_info=(typ, value, tb),  # type: ignore[arg-type]
        )


def send_error(logger: logging.Logger, message: str, exc_info: bool = False) -> None:
    """Log what went wrong while `RequestHandler.send_error` answered."""
    logger.error(message, exc_info=exc_info)


def log_request(status: int, handler: RequestHandler) -> None:
    """Write the access line of a finished request (`Application.log_request`).

    Below 400 at INFO, 4xx at WARNING, 5xx at ERROR, as
    ``"<status> <method> <uri> (<ip>) <time>ms"``.
    """
    if status < 400:
        level = _ACCESS_INFO
    elif status < 500:
        level = _ACCESS_WARNING
    else:
        level = _ACCESS_ERROR
    # isEnabledFor()'s own answer, read from the logger's level cache
    # without the call (it is most of this method's cost when the level
    # is off, as it is for INFO in production); the call on a miss.
    try:
        enabled = not access_log.disabled and access_log._cache[level]  # type: ignore[attr-defined]
    except (AttributeError, KeyError):
        enabled = access_log.isEnabledFor(level)
    if enabled:
        request_time = 1000.0 * handler.request.request_time()
        args = (status, handler._request_summary(), request_time)
        # The record Logger.log would make, without its walk up the
        # stack for the caller (this function, found once): an access
        # line per request, thousands at once when long polls wake.
        if logging._srcfile is None:  # the caller lookup is turned off
            site = UNKNOWN_SITE
        else:
            site = _access_site or _find_access_site(sys._getframe())
        handle_line(access_log, level, site, "%d %s %.2fms", args)


# What findCaller answers for the access log's record: the place in
# log_request that makes it, taken from its frame the first time.
_access_site: Optional[tuple[str, int, str]] = None


def _find_access_site(frame: types.FrameType) -> tuple[str, int, str]:
    global _access_site
    code = frame.f_code
    _access_site = (code.co_filename, frame.f_lineno, code.co_name)
    return _access_site
