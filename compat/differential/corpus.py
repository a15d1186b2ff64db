"""Seed corpus for the differential run: raw request streams and responses.

Seeded from the RFC 9112 grammar (request-line, field lines, message body
framing, chunked coding, persistence) and from the published request
smuggling classes: CL.TE, TE.CL, TE.TE obfuscations, chunk-size tricks,
whitespace around values, bare CR/LF, NUL, obs-fold, duplicate or missing
Host, absolute-form targets, HTTP/1.0 keep-alive, pipelining, odd
Content-Length forms, invalid methods and versions, control characters and
very long lines. Each case is (name, bytes); response cases carry the method
of the request they answer.
"""

from __future__ import annotations

from collections.abc import Iterator

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


def req(
    method: bytes = b"GET",
    target: bytes = b"/",
    version: bytes = b"HTTP/1.1",
    headers: list[bytes] | None = None,
    body: bytes = b"",
    host: bool = True,
    eol: bytes = b"\r\n",
) -> bytes:
    """Build one request; ``headers`` are raw field lines without the EOL."""
    lines = [method + b" " + target + b" " + version]
    if host:
        lines.append(b"Host: a")
    lines += headers or []
    return eol.join(lines) + eol + eol + body


def _basics() -> Iterator[tuple[str, bytes]]:
    yield "get", req()
    yield "get-http10", req(version=b"HTTP/1.0", host=False)
    yield (
        "get-http10-keepalive-pipelined",
        req(version=b"HTTP/1.0", headers=[b"Connection: keep-alive"]) + NEXT,
    )
    yield "get-http10-no-keepalive-then-more", req(version=b"HTTP/1.0") + NEXT
    yield "post-cl", req(b"POST", headers=[b"Content-Length: 5"], body=b"hello")
    yield "post-cl0", req(b"POST", headers=[b"Content-Length: 0"])
    yield (
        "post-chunked",
        req(b"POST", headers=[b"Transfer-Encoding: chunked"], body=b"5\r\nhello\r\n0\r\n\r\n"),
    )
    yield (
        "post-chunked-trailers",
        req(
            b"POST",
            headers=[b"Transfer-Encoding: chunked"],
            body=b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        ),
    )
    yield (
        "post-chunked-http10",
        req(
            b"POST", version=b"HTTP/1.0", headers=[b"Transfer-Encoding: chunked"], body=b"0\r\n\r\n"
        ),
    )
    yield "pipelined-3", req() + req(b"POST", headers=[b"Content-Length: 2"], body=b"hi") + NEXT
    yield (
        "pipelined-chunked",
        req(b"POST", headers=[b"Transfer-Encoding: chunked"], body=b"2\r\nhi\r\n0\r\n\r\n") + NEXT,
    )
    yield "connection-close-then-more", req(headers=[b"Connection: close"]) + NEXT
    yield "connection-keepalive-close", req(headers=[b"Connection: keep-alive, close"]) + NEXT
    yield "connection-close-upper", req(headers=[b"Connection: CLOSE"]) + NEXT
    yield "leading-crlf", b"\r\n" + req()
    yield "leading-2crlf", b"\r\n\r\n" + req()
    yield "leading-lf", b"\n" + req()
    yield "options-star", req(b"OPTIONS", b"*")
    yield "connect-authority", req(b"CONNECT", b"a.example:443")
    yield "absolute-form", req(target=b"http://a.example/x?y=1")
    yield "absolute-form-other-host", req(target=b"http://b.example/x")
    yield "absolute-form-https", req(target=b"https://a.example:8443/")
    yield "target-query", req(target=b"/p?a=1&b=%20")
    yield "target-fragment", req(target=b"/p#frag")
    yield "target-utf8", req(target="/é".encode())
    yield "target-backslash", req(target=b"/a\\b")
    yield "target-doubleslash", req(target=b"//a/b")
    yield "target-no-slash", req(target=b"a/b")
    yield "target-empty-query", req(target=b"/?")
    yield (
        "expect-continue",
        req(b"POST", headers=[b"Expect: 100-continue", b"Content-Length: 2"], body=b"hi"),
    )
    yield (
        "upgrade-websocket",
        req(headers=[b"Connection: Upgrade", b"Upgrade: websocket"], body=b"") + NEXT,
    )
    yield (
        "upgrade-h2c",
        req(
            headers=[b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c", b"HTTP2-Settings: AA"]
        ),
    )
    yield "empty-value", req(headers=[b"X-Empty:"])
    yield "value-spaces", req(headers=[b"X-A:    spaced   "])
    yield "value-tabs", req(headers=[b"X-A:\tv\t"])
    yield "value-obs-text", req(headers=[b"X-A: caf\xe9"])
    yield "value-internal-spaces", req(headers=[b"X-A: a  b\tc"])
    yield "many-headers-100", req(headers=[b"X-%d: v" % i for i in range(100)])
    yield "cookie-repeat", req(headers=[b"Cookie: a=1", b"Cookie: b=2"])
    yield "get-with-cl-body", req(headers=[b"Content-Length: 3"], body=b"abc") + NEXT
    yield "head-with-cl", req(b"HEAD", headers=[b"Content-Length: 0"])
    yield (
        "delete-chunked",
        req(b"DELETE", headers=[b"Transfer-Encoding: chunked"], body=b"0\r\n\r\n"),
    )
    yield "incomplete-head", b"GET / HTTP/1.1\r\nHost: a\r\n"
    yield "incomplete-body", req(b"POST", headers=[b"Content-Length: 10"], body=b"abc")
    yield "incomplete-chunk", req(b"POST", headers=[b"Transfer-Encoding: chunked"], body=b"5\r\nhe")
    yield "empty-stream", b""
    yield "only-crlf", b"\r\n"


def _cl_te() -> Iterator[tuple[str, bytes]]:
    # CL.TE and TE.CL: both framings present, in either order.
    body = b"0\r\n\r\n" + SMUGGLED
    yield (
        "cl-te",
        req(
            b"POST",
            headers=[b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"],
            body=body,
        ),
    )
    yield (
        "te-cl",
        req(b"POST", headers=[b"Transfer-Encoding: chunked", b"Content-Length: 3"], body=body),
    )
    yield (
        "cl-te-short",
        req(b"POST", headers=[b"Content-Length: 6", b"Transfer-Encoding: chunked"], body=body),
    )
    yield (
        "te-cl-http10",
        req(
            b"POST",
            version=b"HTTP/1.0",
            headers=[b"Transfer-Encoding: chunked", b"Content-Length: 5"],
            body=b"0\r\n\r\n",
        ),
    )
    yield (
        "cl-te-identity",
        req(b"POST", headers=[b"Content-Length: 5", b"Transfer-Encoding: identity"], body=b"hello"),
    )
    yield (
        "cl-te-empty",
        req(b"POST", headers=[b"Content-Length: 5", b"Transfer-Encoding:"], body=b"hello"),
    )


TE_VALUES = [
    b"chunked",
    b"Chunked",
    b"CHUNKED",
    b" chunked",
    b"chunked ",
    b"\tchunked",
    b"chunked\t",
    b"xchunked",
    b"chunkedx",
    b"chunked, chunked",
    b"chunked,chunked",
    b"gzip, chunked",
    b"chunked, gzip",
    b"identity",
    b"identity, chunked",
    b"chunked, identity",
    b",chunked",
    b"chunked,",
    b", chunked",
    b'"chunked"',
    b"chunked;q=1",
    b"\x0bchunked",
    b"\x0cchunked",
    b"chunked\x00",
    b"ch\x00unked",
    b"chun ked",
    b"chunk\xe9d",
    b"",
    b"\xa0chunked",
]


def _te_te() -> Iterator[tuple[str, bytes]]:
    # TE.TE: an obfuscated Transfer-Encoding that one parser honours and
    # another ignores, with a Content-Length beside it or alone.
    chunked_body = b"5\r\nhello\r\n0\r\n\r\n"
    for i, value in enumerate(TE_VALUES):
        yield (
            f"te-value-{i}-{value!r}",
            req(b"POST", headers=[b"Transfer-Encoding: " + value], body=chunked_body) + NEXT,
        )
        yield (
            f"te-value-cl-{i}-{value!r}",
            req(
                b"POST",
                headers=[b"Content-Length: %d" % len(chunked_body), b"Transfer-Encoding: " + value],
                body=chunked_body,
            )
            + NEXT,
        )
    names = [
        b"Transfer-Encoding : chunked",
        b"Transfer-Encoding\t: chunked",
        b" Transfer-Encoding: chunked",
        b"Transfer_Encoding: chunked",
        b"Transfer-encoding: chunked",
        b"TRANSFER-ENCODING: chunked",
        b"Transfer-Encoding:chunked",
        b"Transfer-Encoding:\r\n chunked",
        b"Transfer-Encoding: chunked\r\n identity",
        b"X: y\r\n Transfer-Encoding: chunked",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
        b"X: y\nTransfer-Encoding: chunked",
        b"X: y\rTransfer-Encoding: chunked",
        b"Transfer-Encoding\x00: chunked",
        b"Transfer-Encoding\x0b: chunked",
        b"Transfer-Encoding:\x0bchunked",
    ]
    for i, line in enumerate(names):
        yield f"te-line-{i}-{line!r}", req(b"POST", headers=[line], body=chunked_body) + NEXT
        yield (
            f"te-line-cl-{i}-{line!r}",
            req(b"POST", headers=[b"Content-Length: 3", line], body=chunked_body) + NEXT,
        )


CHUNK_SIZES = [
    b"5",
    b"05",
    b"0005",
    b"0x5",
    b"0X5",
    b"+5",
    b"-5",
    b"5_",
    b"_5",
    b"0_5",
    b" 5",
    b"5 ",
    b"\t5",
    b"5\t",
    b"5 ;ext",
    b"5;ext",
    b"5; ext",
    b"5;ext=val",
    b'5;ext="q v"',
    b'5;ext="\\"x"',
    b"5;ext=",
    b"5;",
    b"5;=v",
    b"5;ext;ext2=2",
    b"5;e\x00t",
    b"5;e\x01",
    b"5\x00",
    b"5\r",
    b"5 \x0b",
    b"0000000000000000000000005",
    b"10000000000000005",
    b"fffffffffffffffff5",
    b"5g",
    b"g",
    b"",
    b"5" + b"0" * 20,
    b"5;" + b"x" * 2000,
]


def _chunks() -> Iterator[tuple[str, bytes]]:
    te = [b"Transfer-Encoding: chunked"]
    for i, size in enumerate(CHUNK_SIZES):
        yield (
            f"chunk-size-{i}-{size[:40]!r}",
            req(b"POST", headers=te, body=size + b"\r\nhello\r\n0\r\n\r\n") + NEXT,
        )
    bodies = {
        "chunk-bare-lf-size": b"5\nhello\r\n0\r\n\r\n",
        "chunk-bare-lf-data": b"5\r\nhello\n0\r\n\r\n",
        "chunk-bare-cr-data": b"5\r\nhello\r0\r\n\r\n",
        "chunk-no-crlf-after-data": b"5\r\nhelloXX0\r\n\r\n",
        "chunk-data-longer": b"3\r\nhello\r\n0\r\n\r\n",
        "chunk-data-shorter": b"7\r\nhello\r\n0\r\n\r\n",
        "chunk-last-ext": b"5\r\nhello\r\n0;ext=1\r\n\r\n",
        "chunk-last-bare-lf": b"5\r\nhello\r\n0\n\n",
        "chunk-last-lf-crlf": b"5\r\nhello\r\n0\r\n\n",
        "chunk-last-missing-final": b"5\r\nhello\r\n0\r\n",
        "chunk-last-00": b"5\r\nhello\r\n00\r\n\r\n",
        "chunk-trailer-cl": b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n",
        "chunk-trailer-te": b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "chunk-trailer-bad-name": b"5\r\nhello\r\n0\r\nBad Name: 1\r\n\r\n",
        "chunk-trailer-obs-fold": b"5\r\nhello\r\n0\r\nX: 1\r\n 2\r\n\r\n",
        "chunk-trailer-bare-lf": b"5\r\nhello\r\n0\r\nX: 1\n\r\n",
        "chunk-trailer-nul": b"5\r\nhello\r\n0\r\nX: \x001\r\n\r\n",
        "chunk-many-small": b"1\r\na\r\n" * 50 + b"0\r\n\r\n",
        "chunk-zero-size-middle": b"0\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "chunk-crlf-before-size": b"\r\n5\r\nhello\r\n0\r\n\r\n",
        "chunk-space-line": b"5\r\nhello\r\n \r\n0\r\n\r\n",
        "chunk-smuggle-in-data": b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n",
    }
    for name, body in bodies.items():
        yield name, req(b"POST", headers=te, body=body) + NEXT


CL_VALUES = [
    b"5",
    b"05",
    b"000005",
    b"+5",
    b"-5",
    b" 5",
    b"5 ",
    b"5\t",
    b"0x5",
    b"5.0",
    b"5e0",
    b"5_",
    b"5, 5",
    b"5,5",
    b"5 ,5",
    b"5, 6",
    b"5,",
    b",5",
    b"",
    b"5 5",
    b"\x0b5",
    b"5\x00",
    b"\xd9\xa5",
    b"99999999999999999999999",
    b"-0",
    b"0",
]


def _content_length() -> Iterator[tuple[str, bytes]]:
    for i, value in enumerate(CL_VALUES):
        yield (
            f"cl-value-{i}-{value!r}",
            req(b"POST", headers=[b"Content-Length: " + value], body=b"hello") + NEXT,
        )
    yield (
        "cl-dup-same",
        req(b"POST", headers=[b"Content-Length: 5", b"Content-Length: 5"], body=b"hello") + NEXT,
    )
    yield (
        "cl-dup-diff",
        req(b"POST", headers=[b"Content-Length: 5", b"Content-Length: 3"], body=b"hello") + NEXT,
    )
    yield (
        "cl-dup-empty",
        req(b"POST", headers=[b"Content-Length: 5", b"Content-Length:"], body=b"hello") + NEXT,
    )
    yield (
        "cl-space-before-colon",
        req(b"POST", headers=[b"Content-Length : 5"], body=b"hello") + NEXT,
    )
    yield "cl-obs-fold", req(b"POST", headers=[b"Content-Length:\r\n 5"], body=b"hello") + NEXT
    yield (
        "cl-on-get-smuggle",
        req(headers=[b"Content-Length: %d" % len(SMUGGLED)], body=SMUGGLED) + NEXT,
    )


def _request_line() -> Iterator[tuple[str, bytes]]:
    methods = [
        b"get",
        b"FOO",
        b"M-SEARCH",
        b"PROPFIND",
        b"G(T",
        b"G,T",
        b"G\x00T",
        b"G\x7fT",
        b"GET\x0b",
        b"\xc7ET",
        b"",
        b"GE T",
        b"G" * 100,
        b"PRI",
    ]
    for i, m in enumerate(methods):
        yield f"method-{i}-{m[:20]!r}", req(method=m) + NEXT
    versions = [
        b"HTTP/1.2",
        b"HTTP/1.9",
        b"HTTP/2.0",
        b"HTTP/0.9",
        b"HTTP/3.0",
        b"HTTP/1",
        b"HTTP/1.",
        b"HTTP/1.1.1",
        b"HTTP/01.1",
        b"HTTP/1.10",
        b"http/1.1",
        b"HTTPS/1.1",
        b"HTTP/1.1 ",
        b"HTTP/1.1\t",
        b"HTTP/ 1.1",
        b"HTTP/1.1\x00",
        b"HTTP/\xb9.1",
    ]
    for i, v in enumerate(versions):
        yield f"version-{i}-{v!r}", req(version=v) + NEXT
    lines = [
        b"GET  / HTTP/1.1",
        b"GET /  HTTP/1.1",
        b"GET\t/ HTTP/1.1",
        b"GET /\tHTTP/1.1",
        b" GET / HTTP/1.1",
        b"GET / HTTP/1.1 ",
        b"GET /",
        b"GET / HTTP/1.1 extra",
        b"GET",
        b"GET /a b HTTP/1.1",
        b"GET /a\x00b HTTP/1.1",
        b"GET /a\x7fb HTTP/1.1",
        b"GET /a\x01b HTTP/1.1",
        b"GET /a\xffb HTTP/1.1",
        b"GET /a\rb HTTP/1.1",
        b"GET \x0b/ HTTP/1.1",
        b"GET / HTTP/1.1\r",
    ]
    for i, line in enumerate(lines):
        yield f"request-line-{i}-{line[:30]!r}", line + b"\r\nHost: a\r\n\r\n" + NEXT


def _fields() -> Iterator[tuple[str, bytes]]:
    lines = [
        b"X-A : v",
        b"X-A\t: v",
        b" X-A: v",
        b"\tX-A: v",
        b"X A: v",
        b"X\x00A: v",
        b"X\x01A: v",
        b"X\x7fA: v",
        b"X\xe9A: v",
        b": v",
        b"X-A",
        b"X-A v",
        b"X-A:v",
        b"X-A: v\x00w",
        b"X-A: v\x01w",
        b"X-A: v\x7fw",
        b"X-A: v\rw",
        b"X-A: v\x0bw",
        b"X-A: v\x0cw",
        b"X-A: v\r\n w",
        b"X-A: v\r\n\tw",
        b"X-A: v\r\n\r\n",
        b"X-A:: v",
        b"X-A: v:w",
        b'X-A: "quoted"',
        b"X-(A): v",
        b"X-A/B: v",
        b"X-A@: v",
        b"X-A{}: v",
        b"X-A: v\n",
        b"X-A: v\nX-B: w",
        b"X-A: v\rX-B: w",
        b"X-A:\x00",
    ]
    for i, line in enumerate(lines):
        yield f"field-{i}-{line[:30]!r}", req(headers=[line]) + NEXT
    # Bare LF everywhere: a whole request with LF line endings.
    yield "all-bare-lf", req(eol=b"\n") + NEXT
    yield "all-bare-lf-post", req(b"POST", headers=[b"Content-Length: 2"], body=b"hi", eol=b"\n")
    yield "bare-lf-request-line", b"GET / HTTP/1.1\nHost: a\r\n\r\n" + NEXT
    yield "bare-cr-request-line", b"GET / HTTP/1.1\rHost: a\r\n\r\n" + NEXT
    yield "lf-crlf-end", b"GET / HTTP/1.1\r\nHost: a\n\r\n" + NEXT
    yield "crlf-lf-end", b"GET / HTTP/1.1\r\nHost: a\r\n\n" + NEXT


def _host() -> Iterator[tuple[str, bytes]]:
    yield "host-missing-11", req(host=False) + NEXT
    yield (
        "host-missing-10",
        req(version=b"HTTP/1.0", host=False, headers=[b"Connection: keep-alive"]),
    )
    # RFC 9112 §3.2: an HTTP/1.1 request lacking Host gets 400, whatever its
    # target form, and nothing after it on the connection is read.
    yield "host-missing-11-absolute-form", req(target=b"http://a/x", host=False) + NEXT
    yield "host-missing-11-connect", req(b"CONNECT", b"a:443", host=False) + NEXT
    yield "host-missing-11-options-star", req(b"OPTIONS", b"*", host=False) + NEXT
    yield (
        "host-missing-11-with-body",
        req(b"POST", host=False, headers=[b"Content-Length: 31"], body=NEXT),
    )
    yield "host-missing-11-after-valid", req() + req(host=False) + NEXT
    yield (
        "host-missing-10-then-11",
        req(version=b"HTTP/1.0", host=False, headers=[b"Connection: keep-alive"])
        + req(host=False)
        + NEXT,
    )
    yield "host-missing-11-x-forwarded-host", req(host=False, headers=[b"X-Forwarded-Host: a"])
    yield "host-duplicate", req(headers=[b"Host: b"]) + NEXT
    yield "host-duplicate-same", req(headers=[b"Host: a"]) + NEXT
    yield "host-empty", req(host=False, headers=[b"Host:"]) + NEXT
    for i, value in enumerate(
        [
            b"a b",
            b"a/b",
            b"a@b",
            b"a:80",
            b"a:port",
            b"[::1]:80",
            b"[::1",
            b"a\x00",
            b"a,b",
            b"a.example.",
            b"_a",
            b"a:80:80",
            b"a%20",
            b"\xe9",
        ]
    ):
        yield f"host-{i}-{value!r}", req(host=False, headers=[b"Host: " + value]) + NEXT


def _long() -> Iterator[tuple[str, bytes]]:
    for n in (4_000, 8_200, 17_000, 70_000):
        yield f"long-target-{n}", req(target=b"/" + b"a" * n)
    for n in (8_200, 17_000, 70_000, 100_000):
        yield f"long-value-{n}", req(headers=[b"X-A: " + b"v" * n])
    yield "long-name-300", req(headers=[b"X" * 300 + b": v"])
    for n in (200, 300, 1_000):
        yield f"many-headers-{n}", req(headers=[b"X-%d: v" % i for i in range(n)])
    yield "long-method", req(method=b"G" * 1_000)


def request_seeds() -> list[tuple[str, bytes]]:
    """All request-stream seed cases, names unique."""
    out: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for gen in (
        _basics,
        _cl_te,
        _te_te,
        _chunks,
        _content_length,
        _request_line,
        _fields,
        _host,
        _long,
    ):
        for name, data in gen():
            assert name not in seen, name
            seen.add(name)
            out.append((name, data))
    return out


def response_seeds() -> list[tuple[str, str, bytes]]:
    """Response cases: (name, request method, raw response bytes)."""
    r = b"HTTP/1.1 200 OK\r\n"
    cases: list[tuple[str, str, bytes]] = [
        ("cl", "GET", r + b"Content-Length: 5\r\n\r\nhello"),
        ("chunked", "GET", r + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("until-close", "GET", r + b"\r\nhello"),
        ("until-close-10", "GET", b"HTTP/1.0 200 OK\r\n\r\nhello"),
        ("head-cl", "HEAD", r + b"Content-Length: 5\r\n\r\n"),
        ("head-chunked", "HEAD", r + b"Transfer-Encoding: chunked\r\n\r\n"),
        ("204-cl0", "GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
        ("204-cl5", "GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"),
        ("204-body", "GET", b"HTTP/1.1 204 No Content\r\n\r\nhello"),
        ("304-cl", "GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
        (
            "100-then-200",
            "GET",
            b"HTTP/1.1 100 Continue\r\n\r\n" + r + b"Content-Length: 2\r\n\r\nok",
        ),
        (
            "103-then-200",
            "GET",
            b"HTTP/1.1 103 Early\r\nLink: x\r\n\r\n" + r + b"Content-Length: 0\r\n\r\n",
        ),
        (
            "cl-te",
            "GET",
            r + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        ("te-gzip", "GET", r + b"Transfer-Encoding: gzip\r\n\r\nhello"),
        ("te-gzip-chunked", "GET", r + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ("te-chunked-gzip", "GET", r + b"Transfer-Encoding: chunked, gzip\r\n\r\nhello"),
        ("te-identity", "GET", r + b"Transfer-Encoding: identity\r\n\r\nhello"),
        ("te-xchunked", "GET", r + b"Transfer-Encoding: xchunked\r\n\r\nhello"),
        ("cl-plus", "GET", r + b"Content-Length: +5\r\n\r\nhello"),
        ("cl-list-same", "GET", r + b"Content-Length: 5, 5\r\n\r\nhello"),
        ("cl-list-diff", "GET", r + b"Content-Length: 5, 3\r\n\r\nhello"),
        ("cl-dup-diff", "GET", r + b"Content-Length: 5\r\nContent-Length: 3\r\n\r\nhello"),
        ("cl-negative", "GET", r + b"Content-Length: -1\r\n\r\nhello"),
        ("obs-fold", "GET", r + b"X-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
        ("no-reason", "GET", b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
        ("no-reason-sp", "GET", b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"),
        ("status-4digit", "GET", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
        ("status-2digit", "GET", b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
        ("status-099", "GET", b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n"),
        ("status-600", "GET", b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n"),
        ("status-999", "GET", b"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n"),
        ("reason-ctl", "GET", b"HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n"),
        ("reason-obs-text", "GET", b"HTTP/1.1 200 \xe9t\xe9\r\nContent-Length: 0\r\n\r\n"),
        ("reason-tab", "GET", b"HTTP/1.1 200 O\tK\r\nContent-Length: 0\r\n\r\n"),
        ("version-12", "GET", b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("version-20", "GET", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("version-lower", "GET", b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("bare-lf", "GET", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
        ("bare-cr", "GET", b"HTTP/1.1 200 OK\rContent-Length: 2\r\n\r\nok"),
        ("field-space-colon", "GET", r + b"Content-Length : 2\r\n\r\nok"),
        ("field-nul", "GET", r + b"X-A: a\x00b\r\nContent-Length: 2\r\n\r\nok"),
        ("chunk-0x", "GET", r + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"),
        ("chunk-bare-lf", "GET", r + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n"),
        ("chunk-ext", "GET", r + b"Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n"),
        ("chunk-trailers", "GET", r + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n"),
        ("connect-200", "CONNECT", b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03"),
        ("101", "GET", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00"),
        ("leading-crlf", "GET", b"\r\n" + r + b"Content-Length: 0\r\n\r\n"),
        ("incomplete-body", "GET", r + b"Content-Length: 10\r\n\r\nhello"),
        ("incomplete-chunked", "GET", r + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel"),
        ("garbage", "GET", b"garbage\r\n\r\n"),
        ("http09", "GET", b"hello world"),
        ("long-value", "GET", r + b"X-A: " + b"v" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n"),
        (
            "many-headers",
            "GET",
            r + b"".join(b"X-%d: v\r\n" % i for i in range(300)) + b"Content-Length: 0\r\n\r\n",
        ),
    ]
    return cases
