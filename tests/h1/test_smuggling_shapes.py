"""Squall-side expectations from the differential run (compat/differential):
the request-smuggling shapes of its corpus, each with the outcome Squall's
core must keep on both backends, and the findings fixed in the core."""

from __future__ import annotations

import pytest

from squall._h1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Connection,
    RemoteProtocolError,
    Request,
)

NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


def outcome(parser: str, data: bytes) -> tuple[list[tuple[str, str, bytes]], bool]:
    """(requests accepted in full as (method, target, body), refused?)."""
    conn = H1Connection("server", parser=parser)
    conn.receive_data(data)
    conn.receive_data(b"")
    done: list[tuple[str, str, bytes]] = []
    head: Request | None = None
    body = b""
    try:
        for _ in range(1000):
            ev = conn.next_event()
            if ev is PAUSED and conn.our_state == "IDLE" and conn.their_state == "DONE":
                conn.send_response(200, "OK", [("Content-Length", "0")], b"")
                continue
            if ev is NEED_DATA or ev is PAUSED or isinstance(ev, ConnectionClosed):
                return done, False
            if isinstance(ev, Request):
                head, body = ev, b""
            elif isinstance(ev, Data):
                body += ev.data
            elif isinstance(ev, EndOfMessage):
                assert head is not None
                done.append((head.method, head.target, body))
                if conn.our_state == "IDLE":
                    conn.send_response(200, "OK", [("Content-Length", "0")], b"")
    except RemoteProtocolError:
        return done, True
    raise AssertionError("no end")


def post(*fields: bytes, body: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: a\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body
    )


CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"
TE = b"Transfer-Encoding: "

# Refused before any request is delivered.
REFUSED = {
    "cl-te": post(b"Content-Length: 20", TE + b"chunked", body=CHUNKED + NEXT),
    "te-cl": post(TE + b"chunked", b"Content-Length: 3", body=CHUNKED + NEXT),
    "te-xchunked": post(TE + b"xchunked", body=CHUNKED),
    "te-twice-in-list": post(TE + b"chunked, chunked", body=CHUNKED),
    "te-gzip-chunked": post(TE + b"gzip, chunked", body=CHUNKED),
    "te-chunked-identity-fields": post(TE + b"chunked", TE + b"identity", body=CHUNKED),
    "te-vtab": post(TE + b"\x0bchunked", body=CHUNKED),
    "te-nbsp": post(TE + b"\xa0chunked", body=CHUNKED),
    "te-quoted": post(TE + b'"chunked"', body=CHUNKED),
    "te-space-before-colon": post(b"Transfer-Encoding : chunked", body=CHUNKED),
    "te-obs-fold": post(b"Transfer-Encoding:", b" chunked", body=CHUNKED),
    "te-bare-lf": post(b"X: y\nTransfer-Encoding: chunked", body=CHUNKED),
    "te-bare-cr": post(b"X: y\rTransfer-Encoding: chunked", body=CHUNKED),
    "cl-plus": post(b"Content-Length: +5", body=b"hello"),
    "cl-minus": post(b"Content-Length: -5", body=b"hello"),
    "cl-hex": post(b"Content-Length: 0x5", body=b"hello"),
    "cl-differing-list": post(b"Content-Length: 5, 6", body=b"hello"),
    "cl-differing-fields": post(b"Content-Length: 5", b"Content-Length: 3", body=b"hello"),
    "cl-empty": post(b"Content-Length:", body=b"hello"),
    "cl-arabic-digit": post(b"Content-Length: \xd9\xa5", body=b"hello"),
    "nul-in-value": post(b"X: a\x00b"),
    "nul-in-name": post(b"X\x00: a"),
    "space-in-name": post(b"X Y: a"),
    "obs-fold": post(b"X: a", b" b"),
    "request-line-double-space": b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    "request-line-tab": b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "target-space": b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    "target-not-a-form": b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n",
    "asterisk-not-options": b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "version-lowercase": b"GET / http/1.1\r\nHost: a\r\n\r\n",
    "version-2": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "method-nul": b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n",
}

CHUNK_SIZES_REFUSED = [b"0x5", b"0X5", b"+5", b"-5", b"5_", b"_5", b" 5", b"5 ", b"\t5", b"5g", b""]
for size in CHUNK_SIZES_REFUSED:
    REFUSED[f"chunk-size-{size!r}"] = post(TE + b"chunked", body=size + b"\r\nhello\r\n0\r\n\r\n")
for name, tail in {
    "chunk-bare-lf-size": b"5\nhello\r\n0\r\n\r\n",
    "chunk-bare-lf-data": b"5\r\nhello\n0\r\n\r\n",
    "chunk-no-crlf": b"5\r\nhelloXX0\r\n\r\n",
    "chunk-overflow": b"fffffffffffffffff5\r\nhello\r\n0\r\n\r\n",
    "trailer-content-length": b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n",
    "trailer-transfer-encoding": b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
    "trailer-host": b"5\r\nhello\r\n0\r\nHost: b\r\n\r\n",
    "trailer-lone-bare-lf": b"5\r\nhello\r\n0\r\n\n",
}.items():
    REFUSED[name] = post(TE + b"chunked", body=tail)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_smuggling_shape_is_refused(parser: str, name: str) -> None:
    requests, refused = outcome(parser, REFUSED[name] + NEXT)
    assert refused and requests == []


# Accepted, with a reason in tests/COMPAT.md (the differential's known.json).
ACCEPTED = {
    # RFC 9112 §2.2: empty lines before a request-line are ignored.
    "leading-empty-lines": (b"\r\n\r\n" + NEXT, [("GET", "/next", b"")]),
    # RFC 9110 §5.6.1.2: empty list elements are ignored.
    "te-empty-element": (
        post(TE + b", chunked", body=CHUNKED) + NEXT,
        [("POST", "/", b"hello"), ("GET", "/next", b"")],
    ),
    # RFC 9112 §7.1.1: BWS around chunk extensions; unknown extensions ignored.
    "chunk-extension-bws": (
        post(TE + b"chunked", body=b'5 ; a = "q v"\r\nhello\r\n0;b\r\n\r\n') + NEXT,
        [("POST", "/", b"hello"), ("GET", "/next", b"")],
    ),
    # RFC 9110 §8.6: identical Content-Length values may be merged.
    "cl-identical-list": (
        post(b"Content-Length: 5, 5", body=b"hello") + NEXT,
        [("POST", "/", b"hello"), ("GET", "/next", b"")],
    ),
    # RFC 9112 §3.2: the four request-target forms.
    "target-forms": (
        b"GET http://a.example/x HTTP/1.1\r\nHost: a\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        [("GET", "http://a.example/x", b""), ("OPTIONS", "*", b"")],
    ),
    # RFC 9112 §7.1.2: other trailer fields are fine.
    "trailer-plain": (
        post(TE + b"chunked", body=b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n") + NEXT,
        [("POST", "/", b"hello"), ("GET", "/next", b"")],
    ),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_justified_shape_is_accepted(parser: str, name: str) -> None:
    data, expected = ACCEPTED[name]
    assert outcome(parser, data) == (expected, False)


@pytest.mark.parametrize(
    "data",
    [
        # RFC 9112 §9.6: nothing after a "close" request is processed.
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + NEXT,
        b"GET / HTTP/1.0\r\n\r\n" + NEXT,
    ],
)
def test_nothing_after_close(parser: str, data: bytes) -> None:
    assert outcome(parser, data) == ([("GET", "/", b"")], False)


def test_lone_bare_lf_in_trailer_section_is_refused_at_once(parser: str) -> None:
    conn = H1Connection("server", parser=parser)
    conn.receive_data(post(TE + b"chunked", body=b"0\r\n\n"))
    assert isinstance(conn.next_event(), Request)
    with pytest.raises(RemoteProtocolError, match="bare LF"):
        conn.next_event()


@pytest.mark.parametrize(
    ("target", "ok"),
    [
        (b"a.example:443", True),
        (b"[::1]:8443", True),
        (b"127.0.0.1:80", True),
        (b'a.pl":443', False),
        (b"/x", False),
        (b"a.example", False),
        (b"http://a.example:443/", False),
    ],
)
def test_connect_takes_the_authority_form_only(parser: str, target: bytes, ok: bool) -> None:
    # RFC 9112 §3.2.3.
    requests, refused = outcome(parser, b"CONNECT " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (requests == [("CONNECT", target.decode(), b"")], refused) == (
        (True, False) if ok else (False, True)
    )
