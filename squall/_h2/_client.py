"""The client side of one HTTP/2 connection, for the HTTP client.

The same framing, stream states, flow-control queues and flood limits as
the server side (`squall._h2._base`), with requests out and responses in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Optional, Union

from squall._h2._base import (
    _END_STREAM,
    PREFACE,
    ErrorCode,
    H2Base,
    _ConnectionError,
)
from squall._h2._errors import LocalProtocolError
from squall._h2._events import Event, Fields, Response, Trailers
from squall._h2._limits import H2Limits
from squall._h2._rules import (
    CONNECTION_FIELDS,
    bad_value,
    content_length,
    good_name,
    length_mismatch,
)

__all__ = ["H2ClientConnection", "Response"]

_MAX_STREAM_ID: Final = 2**31 - 1


def _response_problem(
    fields: list[tuple[str, str]], out: list[tuple[str, str]], trailers: bool
) -> Union[str, int]:
    """Check a response head or trailer section (RFC 9113 §8.2, §8.3.2).

    Returns the status (0 for trailers) with the regular fields appended to
    ``out``, or what is wrong with it, as text.
    """
    status = 0
    regular = False
    for name, value in fields:
        if name[:1] == ":":
            if name != ":status" or status or regular or trailers:
                return f"unexpected or repeated pseudo-header {name}"
            if len(value) != 3 or not value.isdigit():
                return f"invalid :status {value[:20]!r}"
            status = int(value)
            continue
        regular = True
        if good_name(name) is None:
            return f"invalid field name {name!r}"
        if value and bad_value(value):
            return f"invalid value of {name!r}"
        if name in CONNECTION_FIELDS or name == "te":
            return f"connection-specific field {name!r}"
        out.append((name, value))
    if not status and not trailers:
        return "no :status"
    return status


class H2ClientConnection(H2Base):
    """The client side of an HTTP/2 connection: requests out, responses in.

    Args:
        limits: Limits on what the server may send (`H2Limits`); its
            ``max_concurrent_streams`` is not used (the server's is).
    """

    def __init__(self, limits: Optional[H2Limits] = None) -> None:
        super().__init__(limits, peer_opens=False)
        self._next_id = 1
        # Streams whose request was HEAD: their response's Content-Length
        # describes a body that is not sent (RFC 9110 §9.3.2).
        self._heads: set[int] = set()

    def initiate(self) -> None:
        """Queue the client preface and SETTINGS, and open the receive window."""
        self._out.append(PREFACE)
        self._send_settings()

    @property
    def max_streams(self) -> int:
        """Streams the server lets us have open at once."""
        return self._peer_max_streams

    def send_request(
        self,
        method: str,
        scheme: str,
        authority: str,
        path: str,
        headers: Sequence[tuple[str, Union[str, bytes]]],
        end_stream: bool,
    ) -> int:
        """Open a stream with a request head; return its id.

        ``headers`` have lowercase names; text values go out one byte per
        character where they can (as HTTP/1.1 sends them), else as UTF-8.

        Raises:
            LocalProtocolError: the connection cannot take a new stream, or
                a field is not valid in HTTP/2 (RFC 9113 §8.2).
        """
        if self._terminated or self._goaway_sent:
            raise LocalProtocolError("cannot send the request: the connection is closing")
        sid = self._next_id
        if sid > _MAX_STREAM_ID:
            raise LocalProtocolError("cannot send the request: no stream ids left")
        fields: list[tuple[Union[str, bytes], Union[str, bytes]]] = [
            (":method", method),
            (":scheme", scheme),
            (":authority", authority),
            (":path", path),
        ]
        for name, value in headers:
            if isinstance(value, bytes):
                raw = value
            else:
                try:
                    raw = value.encode("latin-1")
                except UnicodeEncodeError:
                    raw = value.encode("utf-8")
            text = raw.decode("latin-1")
            if good_name(name) is None or (text and bad_value(text)):
                raise LocalProtocolError(f"cannot send the request: invalid field {name!r}")
            if name in CONNECTION_FIELDS or (name == "te" and text != "trailers"):
                raise LocalProtocolError(
                    f"cannot send the request: connection-specific field {name!r}"
                )
            fields.append((name.encode("ascii"), raw))
        self._next_id = sid + 2
        self._highest = sid
        self._new_stream(sid)
        if method == "HEAD":
            self._heads.add(sid)
        block = b"".join([self._encoder.encode_field(field) for field in fields])
        self._header_frames(sid, block, end_stream)
        if end_stream:
            self._local_end(sid, self._streams[sid])
        return sid

    def _forget(self, stream_id: int) -> None:
        super()._forget(stream_id)
        self._heads.discard(stream_id)

    def _headers_done(
        self, sid: int, flags: int, fields: Fields, cyclic: bool, events: list[Event], now: float
    ) -> None:
        """A header block from the server: a response head (informational
        or final) or the response's trailers (RFC 9113 §8.1)."""
        stream = self._streams.get(sid)
        if stream is None:
            if sid > self._highest or not sid & 1:
                # The server opens no stream: push is off (RFC 9113 §8.4).
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, f"HEADERS on idle stream {sid}")
            if sid not in self._reset_by_us:
                self._stream_error(sid, ErrorCode.STREAM_CLOSED, events)
            return
        if not stream.state.peer_open:
            self._stream_error(sid, ErrorCode.STREAM_CLOSED, events)
            return
        end_stream = bool(flags & _END_STREAM)
        out: list[tuple[str, str]] = []
        # A stream's declared length is -1 until its final head arrives.
        checked = _response_problem(fields, out, stream.declared != -1)
        if isinstance(checked, str) or cyclic:
            # RFC 9113 §8.1.1: a malformed response is a stream error.
            reason = checked if isinstance(checked, str) else "a stream that depends on itself"
            self._stream_error(sid, ErrorCode.PROTOCOL_ERROR, events, reason)
            return
        if checked == 0:
            if not end_stream:
                self._stream_error(
                    sid, ErrorCode.PROTOCOL_ERROR, events, "trailers without END_STREAM"
                )
                return
            if stream.declared >= 0 and stream.received != stream.declared:
                problem = length_mismatch(stream.received, stream.declared)
                self._stream_error(sid, ErrorCode.PROTOCOL_ERROR, events, problem)
                return
            if out:
                events.append(Trailers(sid, out))
        elif checked < 200:
            # 1xx: more heads follow; nothing for the fetch to do (101 is
            # not allowed in HTTP/2, §8.6).
            if checked == 101 or end_stream:
                self._stream_error(
                    sid,
                    ErrorCode.PROTOCOL_ERROR,
                    events,
                    "a 101 response"
                    if checked == 101
                    else f"a {checked} response ending the stream",
                )
            return
        else:
            stream.declared = -2  # a final head arrived: the next block is trailers
            if sid not in self._heads and checked not in (204, 304):
                declared = content_length([v for n, v in out if n == "content-length"] or None)
                if declared >= 0:
                    stream.declared = declared
            if end_stream and stream.declared > 0:
                problem = length_mismatch(0, stream.declared)
                self._stream_error(sid, ErrorCode.PROTOCOL_ERROR, events, problem)
                return
            events.append(Response(sid, checked, out))
        if end_stream:
            self._remote_end(sid, stream, events)
