"""Server-Sent Events, sans I/O: events in, ``text/event-stream`` bytes out.

The format is the HTML Standard's "Server-sent events" section (9.2.6,
"Interpreting an event stream"): UTF-8 lines ended by LF, CR or CRLF;
``field: value`` lines; a blank line dispatches the event; a line starting
with ``:`` is a comment. Everything that goes on one line (the event's type,
its id) must hold no line break, or a client would read the rest as fields
of its own: that is refused here, with `EventStreamError`, rather than
escaped. Data is split into one ``data:`` line per line of the text, which
the client joins back with LF.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "EventStreamError",
    "MAX_LAST_EVENT_ID",
    "CONTENT_TYPE",
    "format_event",
    "format_comment",
    "format_retry",
    "check_last_event_id",
    "split_lines",
]

CONTENT_TYPE = "text/event-stream"

#: The longest ``Last-Event-ID`` accepted. Ids here are positions
#: (``<offset>-<epoch>``: 20 digits, a dash, 32 characters at most), so
#: anything far longer is not one of ours.
MAX_LAST_EVENT_ID = 256


class EventStreamError(ValueError):
    """An event that cannot be written as asked (a line break in its type or
    id), or a ``Last-Event-ID`` that is not one we could have sent."""


def split_lines(text: str) -> list[str]:
    """``text`` cut at every CRLF, CR or LF (the three line ends of the format).

    Unlike `str.splitlines`, only those three: a form feed or U+2028 is
    data, since the client does not break lines there either.
    """
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _one_line(what: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise EventStreamError(f"an event's {what} may not contain CR or LF: {value!r}")
    return value


def format_event(
    data: str,
    *,
    event: Optional[str] = None,
    id: Optional[str] = None,
    retry: Optional[int] = None,
) -> bytes:
    """One event, ready to write: its ``event:``, ``id:``, ``retry:`` and ``data:`` lines.

    Args:
        data: the message; each of its lines becomes a ``data:`` line (an
            empty string is one empty ``data:`` line, which the client
            dispatches as an empty message).
        event: the event's type (the name of the client's listener);
            None for the default, ``message``.
        id: the id the client sends back as ``Last-Event-ID`` when it
            reconnects; "" resets it. It may not contain NUL (the client
            would ignore it).
        retry: milliseconds the client waits before reconnecting.

    Raises:
        EventStreamError: ``event`` or ``id`` holds CR or LF, ``id`` holds NUL,
            or ``retry`` is negative.
    """
    parts: list[str] = []
    if event is not None:
        parts.append(f"event: {_one_line('type', event)}\n")
    if id is not None:
        if "\0" in id:
            raise EventStreamError(f"an event's id may not contain NUL: {id!r}")
        parts.append(f"id: {_one_line('id', id)}\n")
    if retry is not None:
        parts.append(_retry_line(retry))
    for line in split_lines(data):
        parts.append(f"data: {line}\n")
    parts.append("\n")
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (text decoded with surrogateescape, say): the
        # stream is UTF-8 and has no way to carry it.
        raise EventStreamError(
            f"an event may hold only text that UTF-8 can encode: {exc.object[exc.start : exc.end]!r}"
        ) from None


def _retry_line(retry: int) -> str:
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
        raise EventStreamError(f"retry must be a non-negative int (milliseconds), not {retry!r}")
    return f"retry: {retry}\n"


def format_retry(retry: int) -> bytes:
    """A block that only sets the client's reconnection delay (milliseconds).

    Raises:
        EventStreamError: ``retry`` is negative or not an int.
    """
    return (_retry_line(retry) + "\n").encode("ascii")


def format_comment(text: str = "") -> bytes:
    """A comment block (``: text``): ignored by the client, it keeps idle
    connections open through proxies that close silent ones.

    Raises:
        EventStreamError: ``text`` holds CR or LF.
    """
    line = f": {_one_line('comment', text)}" if text else ":"
    return (line + "\n\n").encode("utf-8")


def check_last_event_id(value: str) -> str:
    """``value`` if it can be an id this server sent, else `EventStreamError`.

    The client sends back the last id it saw, verbatim, so anything with a
    line break, a NUL, another control character or too many characters
    did not come from us.

    Raises:
        EventStreamError: saying what is wrong with it.
    """
    if len(value) > MAX_LAST_EVENT_ID:
        raise EventStreamError(
            f"Last-Event-ID is {len(value)} characters long; at most {MAX_LAST_EVENT_ID}"
        )
    for char in value:
        if char < " " or char == "\x7f":
            raise EventStreamError(f"Last-Event-ID contains a control character: {value!r}")
    return value
