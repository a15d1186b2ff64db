"""Head parser backend on httptools (llhttp).

llhttp is given exactly one complete head at a time (the connection finds
its extent), so it never runs ahead into a body or the next message and the
two backends see the same bytes. Where llhttp is stricter than our rules (it
knows a fixed list of methods, rejects "5, 5" Content-Length lists and
obs-fold in responses) the Python parser decides; where it is more lenient
(several spaces in a request line, any HTTP/x.y, control characters in a
reason phrase, status codes below 100) the checks below send the head to the
Python parser too, so both accept and reject the same inputs with the same
messages.
"""

from __future__ import annotations

from httptools import (
    HttpParserError,
    HttpParserUpgrade,
    HttpRequestParser,
    HttpResponseParser,
)

from ._events import Headers, Request
from ._heads import HeadParser, PythonHeadParser, ResponseHead
from ._rules import STR_VALUE_RE, bad

__all__ = ["LLHTTPHeadParser"]


class _Sink:
    """llhttp callbacks: collect one head."""

    __slots__ = ("url", "flat", "reason", "done", "complete")

    def __init__(self) -> None:
        self.url = b""
        self.flat: list[bytes] = []
        self.reason = b""
        self.done = False
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.flat.append(name)
        self.flat.append(value)

    def on_headers_complete(self) -> None:
        self.done = True

    def on_message_complete(self) -> None:
        self.complete = True


def _headers(flat: list[bytes]) -> Headers:
    # One join and one decode for the whole block: NUL cannot occur in a
    # field llhttp accepted, so it safely separates the parts.
    text = b"\0".join(flat).decode("latin-1")
    it = iter(text.split("\0"))
    # llhttp drops leading OWS of a value but keeps trailing OWS.
    if " \0" in text or "\t\0" in text or text[-1] in " \t":
        return [(n, v.rstrip(" \t")) for n, v in zip(it, it, strict=False)]
    return list(zip(it, it, strict=False))


class LLHTTPHeadParser(HeadParser):
    """Head parser on llhttp; see the module docstring."""

    __slots__ = ("_sink", "_req", "_resp", "_python")
    name = "httptools"

    def __init__(self, max_header_count: int) -> None:
        super().__init__(max_header_count)
        self._sink = _Sink()
        self._req: HttpRequestParser | None = None
        self._resp: HttpResponseParser | None = None
        self._python = PythonHeadParser(max_header_count)

    def _reset(self) -> _Sink:
        sink = self._sink
        sink.url = b""
        sink.flat = []
        sink.reason = b""
        sink.done = False
        sink.complete = False
        return sink

    def request(self, buf: bytes | bytearray, start: int, line_end: int, end: int) -> Request:
        sink = self._reset()
        p = self._req
        if p is None:
            p = HttpRequestParser(sink)
        try:
            p.feed_data(buf[start : end + 4])
        except HttpParserUpgrade:
            # CONNECT or an Upgrade request: the head is complete.
            sink.complete = False
        except HttpParserError:
            self._req = None
            return self._python.request(buf, start, line_end, end)
        version = p.get_http_version()
        if not sink.done or (version != "1.1" and version != "1.0"):
            self._req = None
            return self._python.request(buf, start, line_end, end)
        # Reuse the parser only when it ended the message and expects another.
        self._req = p if sink.complete and p.should_keep_alive() else None
        url = sink.url
        method = p.get_method()
        # llhttp skips a stray CR before the method and accepts runs of
        # spaces in the request-line (RFC 9112 §3 lenient parsing); we
        # require the exact single-space form.
        if buf[start:line_end] != b"%s %s HTTP/%s" % (method, url, version.encode()):
            return self._python.request(buf, start, line_end, end)
        target = url.decode("latin-1")
        # llhttp accepts any target shape (RFC 9112 §3.2 forms, CONNECT's
        # included, are checked by the Python parser) and visible non-ASCII
        # bytes.
        if not (url[:1] == b"/" and target.isascii() and target.isprintable()) or (
            method == b"CONNECT"
        ):
            return self._python.request(buf, start, line_end, end)
        flat = sink.flat
        if len(flat) > 2 * self.max_header_count:
            raise bad(f"Too many header fields (more than {self.max_header_count})", 431)
        return Request(
            method.decode("ascii"), target, "HTTP/" + version, _headers(flat) if flat else []
        )

    def response(self, buf: bytes | bytearray, start: int, line_end: int, end: int) -> ResponseHead:
        sink = self._reset()
        p = self._resp
        if p is None:
            p = HttpResponseParser(sink)
        try:
            p.feed_data(buf[start : end + 4])
        except HttpParserUpgrade:
            sink.complete = False
        except HttpParserError:
            self._resp = None
            return self._python.response(buf, start, line_end, end)
        version = p.get_http_version()
        status = p.get_status_code()
        reason = sink.reason.decode("latin-1")
        if (
            not sink.done
            or (version != "1.1" and version != "1.0")
            or status < 100
            or not (reason.isprintable() or STR_VALUE_RE.fullmatch(reason))
            # llhttp accepts "HTTP/1.1 200" and "HTTP/1.1 200 "; so do we,
            # but the reason phrase must then be what follows one SP.
            or not buf.startswith(b"HTTP/%s %03d" % (version.encode(), status), start)
            or buf[start + 12 : start + 13] not in (b" ", b"\r")
        ):
            self._resp = None
            return self._python.response(buf, start, line_end, end)
        self._resp = p if sink.complete and p.should_keep_alive() else None
        flat = sink.flat
        if len(flat) > 2 * self.max_header_count:
            raise bad(f"Too many header fields (more than {self.max_header_count})", 431)
        return "HTTP/" + version, status, reason, _headers(flat) if flat else []
