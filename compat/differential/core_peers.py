"""In-process parsers, each reduced to one normal form.

A result is ``(messages, end)``: the messages accepted in full, in order,
and ``"refused"`` if the parser raised a protocol error at some point, else
``"open"`` (the stream ended cleanly, or the parser is waiting for more).
A request message is ``(method, target, version, headers, body)``, a
response ``(status, headers, body)``, with headers as a tuple of
(lowercase name, value stripped of SP/HTAB) in arrival order, sorted by name
only (stable), and the body with the chunked coding removed. Trailers and
1xx responses are left out: peers report them too differently to compare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Msg = tuple[Any, ...]
Result = tuple[tuple[Msg, ...], str]


def norm_headers(pairs: Iterable[tuple[Any, Any]]) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in pairs:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        out.append((name.lower(), value.strip(" \t")))
    out.sort(key=lambda p: p[0])
    return tuple(out)


def norm_version(v: Any) -> str:
    if isinstance(v, bytes):
        v = v.decode("latin-1")
    return v[5:] if v.startswith("HTTP/") else v


# -- Squall's _h1 ------------------------------------------------------------------


def squall_requests(data: bytes, backend: str) -> Result:
    from squall._h1 import (
        NEED_DATA,
        PAUSED,
        ConnectionClosed,
        Data,
        EndOfMessage,
        H1Connection,
        ProtocolError,
        Request,
    )

    conn = H1Connection("server", parser=backend)
    msgs: list[Msg] = []
    if data:
        conn.receive_data(data)
    conn.receive_data(b"")
    cur: list[Any] | None = None
    body: list[bytes] = []
    try:
        for _ in range(100_000):
            ev = conn.next_event()
            if ev is NEED_DATA:
                return tuple(msgs), "open"
            if ev is PAUSED:
                if conn.our_state == "IDLE" and conn.their_state == "DONE":
                    conn.send_response(200, "OK", [("Content-Length", "0")], b"")
                    continue
                return tuple(msgs), "closed" if conn.their_state == "MUST_CLOSE" else "open"
            if isinstance(ev, Request):
                cur = [ev.method, ev.target, norm_version(ev.version), norm_headers(ev.headers)]
                body = []
            elif isinstance(ev, Data):
                body.append(bytes(ev.data))
            elif isinstance(ev, EndOfMessage):
                assert cur is not None
                msgs.append((*cur, b"".join(body)))
                cur = None
                if conn.our_state == "IDLE":
                    conn.send_response(200, "OK", [("Content-Length", "0")], b"")
            elif isinstance(ev, ConnectionClosed):
                return tuple(msgs), "closed" if not conn.keep_alive and not ev.truncated else "open"
    except ProtocolError:
        return tuple(msgs), "refused"
    raise AssertionError("squall: no end")


def squall_responses(method: str, data: bytes, backend: str) -> Result:
    from squall._h1 import (
        NEED_DATA,
        PAUSED,
        ConnectionClosed,
        Data,
        EndOfMessage,
        H1Connection,
        ProtocolError,
        Response,
    )

    conn = H1Connection("client", parser=backend)
    conn.send_request(method, "/", [("Host", "a")], b"")
    msgs: list[Msg] = []
    try:
        if data:
            conn.receive_data(data)
        conn.receive_data(b"")
        cur: list[Any] | None = None
        body: list[bytes] = []
        for _ in range(100_000):
            ev = conn.next_event()
            if ev is NEED_DATA or ev is PAUSED or isinstance(ev, ConnectionClosed):
                return tuple(msgs), "open"
            if isinstance(ev, Response):
                cur = [ev.status, norm_headers(ev.headers)]
                body = []
            elif isinstance(ev, Data):
                body.append(bytes(ev.data))
            elif isinstance(ev, EndOfMessage) and cur is not None:
                msgs.append((*cur, b"".join(body)))
                return tuple(msgs), "open"
    except ProtocolError:
        return tuple(msgs), "refused"
    raise AssertionError("squall: no end")


# -- h11 ---------------------------------------------------------------------------


def h11_requests(data: bytes) -> Result:
    import h11

    conn = h11.Connection(h11.SERVER)
    msgs: list[Msg] = []
    conn.receive_data(data)
    conn.receive_data(b"")
    cur: list[Any] | None = None
    body: list[bytes] = []
    try:
        for _ in range(100_000):
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                return tuple(msgs), "open"
            if ev is h11.PAUSED:
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                return tuple(msgs), "closed" if conn.their_state is h11.MUST_CLOSE else "open"
            if isinstance(ev, h11.Request):
                cur = [
                    ev.method.decode("latin-1"),
                    ev.target.decode("latin-1"),
                    norm_version(ev.http_version),
                    norm_headers(ev.headers.raw_items()),
                ]
                body = []
            elif isinstance(ev, h11.Data):
                body.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                assert cur is not None
                msgs.append((*cur, b"".join(body)))
                cur = None
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                if conn.our_state is h11.SWITCHED_PROTOCOL:
                    # A 2xx to CONNECT: the rest is another protocol.
                    return tuple(msgs), "upgrade"
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
            elif isinstance(ev, h11.ConnectionClosed):
                return tuple(msgs), "open"
    except h11.RemoteProtocolError:
        return tuple(msgs), "refused"
    raise AssertionError("h11: no end")


def h11_responses(method: str, data: bytes) -> Result:
    import h11

    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    conn.send(h11.EndOfMessage())
    msgs: list[Msg] = []
    try:
        conn.receive_data(data)
        conn.receive_data(b"")
        cur: list[Any] | None = None
        body: list[bytes] = []
        for _ in range(100_000):
            ev = conn.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED or isinstance(ev, h11.ConnectionClosed):
                return tuple(msgs), "open"
            if isinstance(ev, h11.Response):
                cur = [ev.status_code, norm_headers(ev.headers.raw_items())]
                body = []
                if conn.their_state is h11.SWITCHED_PROTOCOL:
                    msgs.append((*cur, b""))
                    return tuple(msgs), "open"
            elif isinstance(ev, h11.Data):
                body.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage) and cur is not None:
                msgs.append((*cur, b"".join(body)))
                return tuple(msgs), "open"
    except h11.RemoteProtocolError:
        return tuple(msgs), "refused"
    raise AssertionError("h11: no end")


# -- httptools (llhttp) ------------------------------------------------------------


class _Collect:
    def __init__(self) -> None:
        self.msgs: list[Msg] = []
        self.parser: Any = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.in_head = True
        self.response = False

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        if self.response:
            self.msgs.append((p.get_status_code(), norm_headers(self.headers), b"".join(self.body)))
        else:
            self.msgs.append(
                (
                    p.get_method().decode("latin-1"),
                    self.url.decode("latin-1"),
                    p.get_http_version(),
                    norm_headers(self.headers),
                    b"".join(self.body),
                )
            )


def httptools_requests(data: bytes) -> Result:
    import httptools

    sink = _Collect()
    p = httptools.HttpRequestParser(sink)
    sink.parser = p
    try:
        p.feed_data(data)
    except httptools.HttpParserUpgrade:
        return tuple(sink.msgs), "upgrade"
    except httptools.HttpParserError:
        return tuple(sink.msgs), "refused"
    return tuple(sink.msgs), "open"


def httptools_responses(method: str, data: bytes) -> Result:
    import httptools

    sink = _Collect()
    sink.response = True
    p = httptools.HttpResponseParser(sink)
    sink.parser = p
    # llhttp cannot be told the request method: for HEAD it would wait for
    # a body. Its result for HEAD cases is not comparable and is skipped.
    try:
        p.feed_data(data)
    except httptools.HttpParserUpgrade:
        return tuple(_final(sink.msgs)), "upgrade"
    except httptools.HttpParserError:
        return tuple(_final(sink.msgs)), "refused"
    return tuple(_final(sink.msgs)), "open"


def _final(msgs: list[Msg]) -> list[Msg]:
    # Keep the first final (non-1xx) response, as the other peers do.
    for m in msgs:
        if m[0] >= 200 or m[0] == 101:
            return [m]
    return []


REQUEST_PEERS: dict[str, Callable[[bytes], Result]] = {
    "squall-python": lambda d: squall_requests(d, "python"),
    "squall-httptools": lambda d: squall_requests(d, "httptools"),
    "h11": h11_requests,
    "httptools": httptools_requests,
}

RESPONSE_PEERS: dict[str, Callable[[str, bytes], Result]] = {
    "squall-python": lambda m, d: squall_responses(m, d, "python"),
    "squall-httptools": lambda m, d: squall_responses(m, d, "httptools"),
    "h11": h11_responses,
    "httptools": httptools_responses,
}
