"""The same raw HTTP/1.1 requests sent to app.py under Tornado and under Squall, answers compared.

``python compat/differential/app_run.py --requests 2000 [--gzip] [--seed N]``
in a venv where Tornado 6.6.1 and Squall are both importable (``make
differential`` runs it in ``.venv-differential``). Hypothesis chooses each
request: a method (mostly GET), one of app.py's routes with the query
arguments its handler reads, and the headers that change answers (Cookie,
XSRF tokens, Range, If-None-Match, If-Modified-Since, Accept-Language,
X-Forwarded-*/X-Real-Ip, Host, Accept-Encoding, Expect) and a body (a
form, a multipart form, chunked or not). Each request goes on a fresh
connection to both servers and the two answers are reduced to one form:
status, reason, the header fields sorted (without Date and Server; cookie
dates, signatures and XSRF tokens redacted, since they depend on the
clock and on chance), the body de-chunked and un-gzipped.

Where Squall departs on purpose the pair is counted under the reason
(tests/COMPAT.md lists them); any other difference is printed with the
request and the run exits 1.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hunt import generated, launch
from hypothesis import given
from hypothesis import strategies as st
from tls import client_context

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 30.0  # a connection that says nothing for this long is a hang, reported

# -- requests -----------------------------------------------------------------

# Pieces of argument values: the characters that escaping, splitting and
# decoding treat specially, joined at random and sent percent-encoded or raw.
_PIECES = [
    *"abc<>&\"'%+=;:,/?#@!$()*~. ",
    "é", "☃", "%zz", "%C3%A9", "%ff", "%00", "%0A", "%20", "+", "\t", "http://x.y/z", "www.a.b",
    "javascript:1", "raise", "/b", "//evil", "\\", "..", "0", "-1", "1.5", "200", "404", "9999",
]  # fmt: skip
_text = st.lists(st.sampled_from(_PIECES), max_size=5).map("".join)
_small = st.sampled_from(["", "a", "0", "1", "7", "-2", "x y", "a;b", "é", "/x", "a\\b"])


@st.composite
def _value(draw: Any) -> str:
    """A value for the query: percent-encoded (so anything passes), or raw where it can go raw."""
    text = draw(_text)
    if draw(st.booleans()):
        return quote(text, safe=draw(st.sampled_from(["", "/", "/:;,=+&"])))
    return "".join(c for c in text if "!" <= c <= "~" and c not in "#&") or "a"


_ROUTES: dict[str, list[str]] = {
    "/arg": ["a", "a", "r"],
    "/p/{x}/{y}": ["a"],
    "/k/{x}": ["a"],
    "/cookie": [
        "n", "v", "domain", "path", "samesite", "expires_days", "max_age", "httponly",
        "secure", "expires", "clear", "cpath", "clearall",
    ],
    "/header": ["v", "kind", "add", "name", "clear"],
    "/redirect": ["u", "perm", "status"],
    "/status": ["c", "r", "body"],
    "/error": ["c", "how", "r", "log", "body"],
    "/etag": ["body", "set"],
    "/json": ["k"],
    "/flush": [],
    "/auth": ["user"],
    "/slash{x}": [],
    "/add{x}": [],
    "/signed": ["set"],
    "/xsrf": [],
    "/onlyget": [],
    "/stream": [],
    "/render": ["v"],
    "/rh/{x}": ["a"],
    "/files/{f}": ["v"],
    "/static/{f}": ["v"],
    "/nowhere{x}": [],
    "/page": ["v", "loc"],
    "/dates": ["loc", "gmt", "v", "v"],
    "/cond": ["body", "explicit", "none"],
    "/co": ["v", "a"],
    "/l1/{x}": ["a"],
    "/named/{x}": [],
    "/gone": [],
    "/late": ["how"],
}  # fmt: skip

# Values that the handlers read as numbers, names or choices.
_CHOICES: dict[str, list[str]] = {
    "c": ["200", "204", "299", "304", "301", "400", "404", "405", "418", "500", "503", "599", "600", "99", "x"],
    "status": ["", "301", "302", "303", "307", "308", "200", "400", "x"],
    "kind": ["str", "int", "bytes", "datetime"],
    "k": ["dict", "list", "none", "bytes", "str"],
    "name": ["X-A", "Content-Type", "Etag", "Location", "Set-Cookie", "Content-Length", "x_y", "X A", "X:A", "Transfer-Encoding"],
    "clear": ["X-A", "Content-Type", "Server", "c"],
    "samesite": ["Lax", "Strict", "None", "lax", "bad"],
    "expires_days": ["1", "0", "-1", "1.5", "x"],
    "max_age": ["10", "0", "-5", "x"],
    "perm": ["", "1"],
    "set": ["", "v1", "a b", "é", '"q"', "x;y"],
    "loc": ["fr", "fr_FR", "fr-fr", "en", "zz", "es_LA", "es", "ar_AR", "zh_CN", "he", ""],
    "gmt": ["0", "60", "-300", "1440", "x"],
    "explicit": ["1"],
    "how": ["raise", "send", "exception", "finish", "missing", "none",
            "clear", "finish-write", "finish-twice", "redirect", "status", "http-error",
            "on-finish", "prepare-finish"],
    "none": ["1"],
}  # fmt: skip

_FILES = ["a.txt", "b.html", "c.css", "sub/", "sub/index.html", "sub", "", "missing.txt",
          "../app.py", "%2e%2e/a.txt", "a.txt/", "A.TXT", "./a.txt", "sub/../a.txt"]  # fmt: skip


@st.composite
def _route(draw: Any) -> str:
    template = draw(st.sampled_from(sorted(_ROUTES)))
    path = template.format(
        x=draw(st.sampled_from(["", "/", "a", "a/", "x%20y", "%C3%A9", "a/b"])),
        y=draw(st.sampled_from(["", "b", "b/c", "%2F"])),
        f=draw(st.sampled_from(_FILES)),
    )
    names = _ROUTES[template]
    chosen = draw(st.lists(st.sampled_from(names), max_size=4)) if names else []
    if draw(st.integers(0, 9)) == 0:
        chosen.append(draw(st.sampled_from(["_xsrf", "a", "zz"])))
    pairs = []
    for name in chosen:
        if name in _CHOICES and draw(st.integers(0, 4)):
            value = quote(draw(st.sampled_from(_CHOICES[name])), safe="")
        else:
            value = draw(_value())
        pairs.append(f"{name}={value}" if draw(st.integers(0, 9)) else name)
    query = "&".join(pairs)
    return path + ("?" + query if query or draw(st.integers(0, 9)) == 0 else "")


_HEADERS: dict[str, Callable[[], Any]] = {
    "Cookie": lambda: st.lists(
        st.sampled_from(["c=1", "c=é", 'c="q w"', "_xsrf=t", "s=bad", "c", "a=b; c=d", "=x", "c=%41"]),
        min_size=1, max_size=3,
    ).map("; ".join),
    "X-Xsrftoken": lambda: st.sampled_from(["t", "", "2|aa|bb|1", "1|x"]),
    "Range": lambda: st.sampled_from(["bytes=0-4", "bytes=5-", "bytes=-3", "bytes=10-2", "bytes=0-0,2-3", "bytes=100-",
                                      "bytes=-0", "bits=0-1", "bytes=0-99999", "bytes=", "bytes=19-"]),
    "If-None-Match": lambda: st.sampled_from(['"x"', "*", 'W/"x"', '"0f0"', "a, b"]),
    "If-Modified-Since": lambda: st.sampled_from(["Thu, 01 Jan 2099 00:00:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "junk", ""]),
    "Accept-Language": lambda: st.sampled_from(["fr", "en-US,fr;q=0.5", "zz", "es;q=x", "*", "de-DE;q=0.9, ja"]),
    "X-Forwarded-For": lambda: st.sampled_from(["1.2.3.4", "1.2.3.4, 5.6.7.8", "junk", "::1", ""]),
    "X-Real-Ip": lambda: st.sampled_from(["9.9.9.9", "x", "::2"]),
    "X-Forwarded-Proto": lambda: st.sampled_from(["https", "http", "ftp", "https, http"]),
    "X-Scheme": lambda: st.sampled_from(["https", "gopher"]),
    "Host": lambda: st.sampled_from(["a.example", "a.example:81", "[::1]:80", "A.Example", "", "x y"]),
    "Accept-Encoding": lambda: st.sampled_from(["gzip", "gzip, deflate", "identity", "*"]),
    "Expect": lambda: st.sampled_from(["100-continue", "nonsense"]),
    "Referer": lambda: st.sampled_from(["http://a.example/", "x"]),
    "X-Long": lambda: st.sampled_from([100, 400, 3000]).map(lambda n: "l" * n),
}  # fmt: skip

_FORMS = st.sampled_from(["a=1", "a=1&a=2", "a=%zz", "a=é", "b=2", "a", "a=+x+", "=&=", "a=1;a=2"])
_MULTIPART_PARTS = st.sampled_from([
    'Content-Disposition: form-data; name="a"\r\n\r\nv',
    'Content-Disposition: form-data; name="f"; filename="x.txt"\r\nContent-Type: text/plain\r\n\r\nfile',
    'Content-Disposition: form-data; name="f"; filename*=UTF-8\'\'%C3%A9.txt\r\n\r\nz',
    'Content-Disposition: form-data\r\n\r\nnoname',
    "Content-Type: text/plain\r\n\r\nnodisp",
])  # fmt: skip


@st.composite
def requests(draw: Any, last: bool = True, version: str = "1.1") -> bytes:
    """One request; ``last`` asks the server to close after it (HTTP/1.1)."""
    method = draw(
        st.sampled_from(["GET"] * 8 + ["POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"])
    )
    target = draw(_route())
    fields = [("Host", "127.0.0.1")]
    for name in draw(st.lists(st.sampled_from(sorted(_HEADERS)), max_size=4, unique=True)):
        value = draw(_HEADERS[name]())
        if name == "Host":
            fields[0] = ("Host", value)
        else:
            fields.append((name, value))
    body = b""
    if method in ("POST", "PUT", "PATCH") and draw(st.integers(0, 4)):
        kind = draw(st.sampled_from(["form", "form", "multipart", "raw", "gzip", "big"]))
        if kind in ("form", "gzip"):
            body = draw(_FORMS).encode()
            fields.append(("Content-Type", "application/x-www-form-urlencoded"))
            if kind == "gzip":
                # A compressed form (decompress_request), or not gzip at all.
                body = gzip.compress(body, mtime=0) if draw(st.integers(0, 3)) else b"not gzip"
                fields.append(("Content-Encoding", "gzip"))
        elif kind == "big":
            # Around a small max_body_size, and far past it.
            body = b"z" * draw(st.sampled_from([63, 64, 65, 300, 5000]))
        elif kind == "multipart":
            parts = draw(st.lists(_MULTIPART_PARTS, min_size=1, max_size=3))
            body = "".join(f"--B\r\n{p}\r\n" for p in parts).encode() + b"--B--\r\n"
            fields.append(("Content-Type", "multipart/form-data; boundary=B"))
        else:
            body = draw(st.sampled_from([b"x", b"0123456789" * 10, b'{"a": 1}']))
        if draw(st.integers(0, 3)) == 0 and body:
            fields.append(("Transfer-Encoding", "chunked"))
            cut = len(body) // 2
            body = (
                b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:cut], body[cut:]) if p)
                + b"0\r\n\r\n"
            )
        else:
            fields.append(("Content-Length", str(len(body))))
    if last and version == "1.1":
        fields.append(("Connection", "close"))
    head = f"{method} {target} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    return head.encode("utf-8") + b"\r\n" + body


_WS_FIELDS: dict[str, list[str | None]] = {
    "Upgrade": ["websocket", "websocket", "WebSocket", "h2c", None],
    "Connection": ["Upgrade", "Upgrade", "keep-alive, Upgrade", "close", None],
    "Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ==", "abc", "", None],
    "Sec-WebSocket-Version": ["13", "13", "8", "x", None],
    "Origin": [None, "http://127.0.0.1", "http://evil.example", "null", "http://[::1"],
    "Sec-WebSocket-Protocol": [None, "a", "a, b", "a,,b", ""],
    "Sec-WebSocket-Extensions": [
        None, "permessage-deflate", "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10", "permessage-deflate; bogus", "x-unknown",
    ],
}  # fmt: skip


def _frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    else:
        head += bytes([mask_bit | 126]) + size.to_bytes(2, "big")
    if not masked:
        return head + payload
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


_WS_FRAMES = [
    _frame(1, b"hi"),
    _frame(1, "é☃".encode()),
    _frame(1, b"close"),
    _frame(2, b"\x01\x02\x03"),
    _frame(9, b"pp"),
    _frame(10, b"pong"),
    _frame(1, b"a", fin=False) + _frame(0, b"b"),
    _frame(1, b"x" * 300),
    _frame(8, (1000).to_bytes(2, "big") + b"done"),
    _frame(8, (999).to_bytes(2, "big")),
    _frame(8, b"\x03"),
    _frame(1, b"\xff\xfe"),
    _frame(1, b"r", rsv=0x20),
    _frame(1, b"unmasked", masked=False),
    _frame(9, b"p" * 126),
    _frame(0, b"stray"),
    _frame(3, b"reserved opcode"),
]


@st.composite
def ws_conversations(draw: Any) -> tuple[bytes, list[bytes], bool]:
    """A WebSocket handshake to /ws (its fields each right, odd or missing), then frames, then a close.

    The third item says whether the client half-closes after its close
    frame (``shutdown(SHUT_WR)``) and reads on; ``async`` in the query has
    the handler answer each message from a coroutine that awaits first.
    """
    options = ["strict", "proto", "deflate", "async"]
    query = "&".join(draw(st.lists(st.sampled_from(options), unique=True)))
    path = draw(st.sampled_from(["/ws", "/ws/x", "/ws/%C3%A9"]))
    head = f"GET {path}{'?' + query if query else ''} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for name, values in _WS_FIELDS.items():
        value = draw(st.sampled_from(values)) if draw(st.integers(0, 3)) == 0 else values[0]
        if value is not None:
            head += f"{name}: {value}\r\n"
    frames = draw(st.lists(st.sampled_from(_WS_FRAMES), max_size=4))
    half_close = draw(st.integers(0, 2)) == 0
    return (head + "\r\n").encode(), [*frames, _frame(8, (1000).to_bytes(2, "big"))], half_close


@st.composite
def conversations(draw: Any) -> Any:
    """One to three requests on one connection; now and then one HTTP/1.0 request or a WebSocket."""
    if draw(st.integers(0, 7)) == 0:
        return draw(ws_conversations())
    if draw(st.integers(0, 9)) == 0:
        return [draw(requests(version="1.0"))]
    count = draw(st.integers(1, 3))
    chosen = [draw(requests(last=i == count - 1)) for i in range(count)]
    return Pipelined(chosen) if count > 1 and draw(st.integers(0, 3)) == 0 else chosen


class Pipelined(list):  # type: ignore[type-arg]
    """Requests sent at once, before any answer is read (RFC 9112 section 9.3.2)."""


# -- answers ------------------------------------------------------------------


NO_ANSWER = b"<no answer, connection left open>"
CLOSED = b"<connection closed>"
GARBLED = b"<not an HTTP response>"


def _read_answer(f: Any, method: bytes) -> bytes:
    """One response as sent (interim 1xx ones before it included), read by its framing."""
    raw = b""
    while True:
        head = b""
        while not head.endswith((b"\r\n\r\n", b"\n\n")):
            line = f.readline(65537)
            if not line:
                return raw + head if raw or head else CLOSED
            head += line
        raw += head
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return raw + GARBLED
        if not 100 <= status < 200 or status == 101:
            break
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
        return raw
    if fields.get(b"transfer-encoding") == b"chunked":
        while True:
            size_line = f.readline(65537)
            raw += size_line
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (line := f.readline(65537)) not in (b"\r\n", b""):
                    raw += line
                return raw + line
            raw += f.read(size + 2)
    if b"content-length" in fields:
        return raw + f.read(int(fields[b"content-length"]))
    return raw + f.read()


# Set by --tls: the servers listen with TLS, the client connects with it.
CLIENT_TLS: list[ssl.SSLContext] = []


def connect(port: int) -> socket.socket:
    """A connection to the server on ``port`` (over TLS with --tls)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if CLIENT_TLS:
        return CLIENT_TLS[0].wrap_socket(sock, server_hostname="localhost")
    return sock


def exchange(port: int, conversation: list[bytes]) -> list[bytes]:
    """Each request's answer, in turn on one connection; a server that goes quiet for TIMEOUT is marked."""
    answers = []
    with connect(port) as sock:
        # No half-close after the last request: Tornado may take the end of
        # input for a gone client and close without answering (a race).
        f = sock.makefile("rb")
        if isinstance(conversation, Pipelined):
            sock.sendall(b"".join(conversation))
        for request in conversation:
            try:
                if not isinstance(conversation, Pipelined):
                    sock.sendall(request)
                answers.append(_read_answer(f, request.split(b" ", 1)[0]))
            except TimeoutError:
                answers.append(NO_ANSWER)
            except OSError:
                answers.append(CLOSED)
            if answers[-1] in (NO_ANSWER, CLOSED) or answers[-1].endswith(GARBLED):
                break
    return answers


def _read_frames(f: Any) -> list[Any]:
    """The server's frames until its close frame or the end of the connection (payloads inflated)."""
    frames: list[Any] = []
    inflater = zlib.decompressobj(-15)
    while len(frames) < 20:
        first = f.read(2)
        if len(first) < 2:
            frames.append("end")
            return frames
        size = first[1] & 0x7F
        if size == 126:
            size = int.from_bytes(f.read(2), "big")
        elif size == 127:
            size = int.from_bytes(f.read(8), "big")
        payload = f.read(size)
        if first[0] & 0x40:
            payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
        frames.append((first[0] & 0x8F, payload))
        if first[0] & 0x0F == 8:
            return frames
    return frames


def ws_exchange(port: int, handshake: bytes, frames: list[bytes], half_close: bool) -> list[Any]:
    """The handshake's answer and, after a 101, the frames the server sends back."""
    with connect(port) as sock:
        f = sock.makefile("rb")
        try:
            sock.sendall(handshake)
            answer = _read_answer(f, b"GET")
            if not answer.startswith(b"HTTP/1.1 101"):
                return [answer]
            sock.sendall(b"".join(frames))
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            return [answer, *_read_frames(f)]
        except TimeoutError:
            return [NO_ANSWER]
        except OSError:
            return [CLOSED]


_REDACT = [
    (re.compile(r"(?i)(expires=)[^;]*"), r"\1<date>"),
    (re.compile(r'(s=)"?2\|1:0\|10:\d+\|([^;"]*)\|[0-9a-f]{64}"?'), r"\1<signed \2>"),
    (re.compile(r"(_xsrf=)[^;]*"), r"\1<token>"),
]


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def normal(raw: bytes, request: bytes) -> tuple[Any, ...]:
    """The answer's status, reason, header fields and body, without what depends on the clock."""
    if raw in (CLOSED, NO_ANSWER):
        return (raw.decode(), "", "", (), b"")
    # An interim 100 Continue is answered by Squall only where a body is read; see COMPAT.md.
    while raw.startswith(b"HTTP/1.1 100"):
        raw = raw.partition(b"\r\n\r\n")[2]
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status, _, reason = rest.partition(" ")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.lower(), value.strip()
        if name in ("date", "server"):
            continue
        if name in ("set-cookie", "expires"):
            for pattern, replacement in _REDACT:
                value = pattern.sub(replacement, value)
            if name == "expires":
                value = "<date>"
        fields.append((name, value))
    names = {n for n, _ in fields}
    if not request.startswith(b"HEAD "):
        if ("transfer-encoding", "chunked") in fields:
            body = _dechunk(body)
        if ("content-encoding", "gzip") in fields and body:
            body = gzip.decompress(body)
            fields = [(n, v) for n, v in fields if n != "content-length"]
    del names
    if request.split(b" ", 2)[1].startswith(b"/page"):
        # The page holds an XSRF token, new on every request, and its entity tag hashes it.
        body = re.sub(rb'(name="_xsrf" value=")[^"]*', rb"\1<token>", body)
        fields = [(n, "<hash of a token>" if n == "etag" else v) for n, v in fields]
    return (version, status, reason, tuple(sorted(fields)), body)


# -- departures kept on purpose ------------------------------------------------------


# The run's HTTPServer options (--server), which some departures depend on.
SERVER: dict[str, Any] = {}
_QUIET_CLOSE = ("<connection closed>", "", "", (), b"")


def _options_departure(
    request: bytes, tornado: tuple[Any, ...], squall: tuple[Any, ...]
) -> str | None:
    """The departures the run's server options (--server) bring out."""
    if tornado == _QUIET_CLOSE and squall[1] in ("431", "414") and "max_header_size" in SERVER:
        return "a head over max_header_size gets 431 (a start line, 414) before the close (Tornado closes without a word)"
    if (
        squall[1] == "413"
        and b"Expect: 100-continue" in request
        and (tornado == _QUIET_CLOSE or tornado[1] == "400")
    ):
        return "an Expect: 100-continue request whose Content-Length is past max_body_size gets 413 without the 100"
    body = request.partition(b"\r\n\r\n")[2]
    if tornado == _QUIET_CLOSE and squall[1] == "400" and body:
        if "max_body_size" in SERVER and (
            len(body) > SERVER["max_body_size"] or b"Content-Encoding: gzip" in request
        ):
            return "a body past max_body_size gets 400 before the close (Tornado closes without a word)"
        # Closing with the body unread, Tornado's server resets the
        # connection, which can lose the answer it wrote; Squall's reads
        # what is left before it closes.
        return "a refused request's 400 arrives (Tornado's, closing with the body unread, can be lost to the reset)"
    if (
        SERVER.get("no_keep_alive")
        and request.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0")
        and [f for f in squall[3] if f != ("connection", "close")] == list(tornado[3])
        and tornado[:3] == squall[:3]
        and tornado[4] == squall[4]
    ):
        return "with no_keep_alive, an HTTP/1.0 answer says Connection: close"
    return None


def departure(request: bytes, tornado: tuple[Any, ...], squall: tuple[Any, ...]) -> str | None:
    """The reason Squall answers otherwise, where COMPAT.md lists it; else None."""
    by_options = _options_departure(request, tornado, squall)
    if by_options:
        return by_options
    head = request.partition(b"\r\n\r\n")[0].decode("utf-8", "replace")
    target = head.split(" ", 2)[1]
    hashless = [
        (
            *a[:3],
            [f for f in a[3] if f[0] != "content-length"],
            re.sub(rb"\?v=[0-9a-f]{32,128}", b"?v=", a[4]),
        )
        for a in (tornado, squall)
    ]
    if b"?v=" in tornado[4] and hashless[0] == hashless[1]:
        return "static_url's ?v= holds the first 32 hex digits of the hash (Tornado: all 128)"
    names = {n for n, _ in squall[3]}
    if {"transfer-encoding", "content-length"} <= names and ("connection", "close") in squall[3]:
        if [f for f in squall[3] if f != ("connection", "close")] == list(tornado[3]):
            return "an answer with both Content-Length and Transfer-Encoding closes the connection"
    if tornado[1] == squall[1] == "400" and not tornado[3] and not tornado[4]:
        return "a refused request's 400 says in its body what was wrong (Tornado's is empty)"
    if tornado[1] == "500" and squall[1] in ("204", "304") and not squall[4]:
        return "a 204 or 304 after write('') is sent (Tornado: a RuntimeError, the 500 page)"
    if tornado[1] == "500" and squall[1].startswith("4"):
        return "Tornado answers 500 where Squall names the client's mistake with a 4xx"
    if (
        squall[1] == "500"
        and target.startswith(("/header", "/status", "/error"))
        and tornado[1] != "500"
    ):
        return "a response head the connection refuses unsent (a status outside 200-999, a field it cannot send) is a 500"
    if target.startswith("/cookie") and not tornado[1] and squall[1:5:3] == ("299", b"ValueError"):
        return "set_cookie with an attribute beyond Latin-1 raises ValueError (Tornado fails writing the head: no answer)"
    if (
        target.startswith("/cookie")
        and tornado[1] == squall[1] == "299"
        and tornado[4] == squall[4]
    ):
        return "set_cookie that raises on an argument sets nothing (Tornado keeps the cookie half made)"
    if target.startswith("/header") and squall[4] == b"HTTPInputError":
        return "set_header refuses a name that is not an HTTP token (Tornado sends it)"
    if (
        "Accept-Encoding: *" in head
        and tornado[4] == squall[4]
        and ("content-encoding", "gzip") in squall[3]
    ):
        return "content codings are chosen by Accept-Encoding as RFC 9110 reads it ('*' takes gzip); Tornado looks for 'gzip'"
    if tornado[4] == b"AssertionError" and squall[4] in (b"ValueError", b"TypeError"):
        return "a bad argument raises ValueError or TypeError naming it (Tornado: an assert, gone under python -O)"
    if (
        tornado[:2] == squall[:2]
        and tornado[3:] == squall[3:]
        and tornado[2] == squall[2].encode("utf-8").decode("latin-1")
    ):
        return "a reason phrase with latin-1 characters is sent as those octets (Tornado: UTF-8)"
    return None


def ws_departure(
    conversation: tuple[bytes, list[bytes], bool], tornado: list[Any], squall: list[Any]
) -> str | None:
    """The reason a WebSocket conversation goes otherwise on Squall, where COMPAT.md lists it."""
    handshake, frames, half_close = conversation
    t0, s0 = tornado[0], squall[0]
    key = re.search(rb"Sec-WebSocket-Key: ([^\r]*)", handshake)
    bad_key = not key or len(key.group(1)) != 24
    if SERVER.get("no_keep_alive") and (s0[1] == "101" or (s0[1] == "400" and bad_key)):
        if tornado == [_QUIET_CLOSE] or (t0[1] == "101" and ("connection", "close") in t0[3]):
            return "with no_keep_alive, a WebSocket handshake is served (Tornado's says Connection: close, and closes)"
    if tornado == [_QUIET_CLOSE] and (s0[1] == "101" or (s0[1] == "400" and bad_key)):
        if "chunk_size" in SERVER:
            # Tornado's server, its reads cut small, closes (on a protocol
            # error, the client's end, or the handler's close) with frames
            # still unread: a reset, which loses the 101 and the frames the
            # client had not read yet.
            return "with a small chunk_size, a WebSocket that closes with frames unread is not reset (Tornado's is)"
    if b"Origin: http://[::1\r\n" in handshake and t0[1] == "500":
        return "an Origin that does not parse is cross-origin unless check_origin takes it (Tornado: 500)"
    key = re.search(rb"Sec-WebSocket-Key: ([^\r]*)", handshake)
    if key and len(key.group(1)) != 24 and s0[1] == "400" and t0[1] == "101":
        return "a Sec-WebSocket-Key that is not 16 bytes in base64 gets 400 (RFC 6455 4.2.1; Tornado takes any)"
    if t0[1] == s0[1] == "101":
        t_rest, s_rest = ([f for f in a[3] if f[0] != "sec-websocket-extensions"] for a in (t0, s0))
        if (*t0[:3], t_rest, t0[4]) == (*s0[:3], s_rest, s0[4]):
            if b"permessage-deflate; bogus" in handshake:
                reason = "an offer of permessage-deflate with an unknown parameter is declined (RFC 7692 section 7)"
            elif b"server_no_context_takeover" in handshake:
                reason = "an offer's server_no_context_takeover is named in the answer (RFC 7692 7.1.1.1)"
            else:
                reason = None
            if reason and tornado[1:] == squall[1:]:
                return reason
            if reason:
                # The extension's answer apart, the frames may still show a departure.
                tornado, squall = [s0, *tornado[1:]], [s0, *squall[1:]]
    same = 0
    while same < min(len(tornado), len(squall)) and tornado[same] == squall[same]:
        same += 1
    rest = squall[same:]
    if (
        half_close
        and b"async" in handshake.split(b" ", 2)[1]
        and tornado[same:] == ["end"]
        and rest
        and all(isinstance(frame, tuple) for frame in rest)
        and rest[-1][0] == 0x88
    ):
        # Tornado's server sees the client's end while the coroutine
        # awaits, closes, and drops what the coroutine and the close
        # would have sent.
        return "a client's half-close leaves a coroutine on_message's answers and the close still sent (Tornado drops them)"
    if same and rest and isinstance(rest[0], tuple) and rest[0][0] == 0x88:
        code = int.from_bytes(rest[0][1][:2], "big")
        if code in (1002, 1007) and len(rest[0][1]) > 2:
            return "a protocol error gets a close frame of 1002 or 1007 saying which (Tornado drops the connection, or reads on)"
    return None


# -- run ------------------------------------------------------------------------------


def start(
    framework: str, static: str, gzip_on: bool, tls: bool = False, server: str = "{}"
) -> tuple[subprocess.Popen[str], int]:
    # "squall-compat": the program as written for Tornado, run through squall.compat.
    runner = ["-m", "squall.compat"] if framework == "squall-compat" else []
    imports = "tornado" if framework == "squall-compat" else framework
    args = [sys.executable, *runner, os.path.join(HERE, "app.py"), imports, static]
    args += ["gzip"] * gzip_on + ["tls"] * tls + [f"opts={server}"]
    return launch(args, f"{framework}: app.py")


def make_static(root: str) -> None:
    os.makedirs(os.path.join(root, "sub"))
    for name, text in [
        ("a.txt", "0123456789abcdefghij"),
        ("b.html", "<p>b</p>"),
        ("c.css", "p{}"),
        ("sub/index.html", "<p>index</p>"),
    ]:
        with open(os.path.join(root, name), "w") as f:
            f.write(text)
        os.utime(os.path.join(root, name), (1_600_000_000, 1_600_000_000))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="conversations of 1-3 requests")
    parser.add_argument("--gzip", action="store_true", help="serve with compress_response=True")
    parser.add_argument(
        "--compat",
        action="store_true",
        help="run Squall's side through squall.compat, importing tornado",
    )
    parser.add_argument("--tls", action="store_true", help="both servers over TLS")
    parser.add_argument(
        "--server",
        default="{}",
        help='HTTPServer options as JSON, e.g. \'{"decompress_request": true, "max_body_size": 64}\'',
    )
    parser.add_argument("--seed", type=int, help="Hypothesis seed (default: random; printed)")
    opts = parser.parse_args()
    chosen_seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(4), "big")
    kept: Counter[str] = Counter()
    unexplained: list[tuple[bytes, Any, Any]] = []
    sent = [0]
    SERVER.update(json.loads(opts.server))
    if opts.tls:
        CLIENT_TLS.append(client_context())
    with tempfile.TemporaryDirectory() as static:
        make_static(static)
        squall_side = "squall-compat" if opts.compat else "squall"
        servers = [
            start(name, static, opts.gzip, opts.tls, opts.server)
            for name in ("tornado", squall_side)
        ]
        try:

            @generated(opts.requests, chosen_seed)
            @given(conversations())
            def compare(conversation: Any) -> None:
                if isinstance(conversation, tuple):
                    if CLIENT_TLS:
                        # No half-close: Python's SSLSocket.shutdown drops TLS
                        # from the socket (its later reads would return the
                        # records undecrypted).
                        conversation = (*conversation[:2], False)
                    sent[0] += 1
                    t, s = (ws_exchange(port, *conversation) for _, port in servers)
                    t[0], s[0] = normal(t[0], b"GET /ws "), normal(s[0], b"GET /ws ")
                    if t == s:
                        return
                    reason = ws_departure(conversation, t, s)
                    if reason:
                        kept[reason] += 1
                    elif len(unexplained) < 200:
                        sent_end = b"<SHUT_WR>" if conversation[2] else b""
                        unexplained.append(
                            (conversation[0] + b"".join(conversation[1]) + sent_end, t, s)
                        )
                    return
                tornado, squall = (exchange(port, conversation) for _, port in servers)
                for i, request in enumerate(conversation):
                    sent[0] += 1
                    t = normal(tornado[i] if i < len(tornado) else CLOSED, request)
                    s = normal(squall[i] if i < len(squall) else CLOSED, request)
                    if t == s:
                        continue
                    reason = departure(request, t, s)
                    if reason:
                        kept[reason] += 1
                    elif len(unexplained) < 200:
                        unexplained.append((b"".join(conversation[: i + 1]), t, s))
                    # What follows a difference may follow from it (one
                    # server closed, the other kept the connection).
                    break

            compare()
        finally:
            for proc, _ in servers:
                proc.kill()
                proc.wait()
    print(f"app_run: seed {chosen_seed}, {sent[0]} requests{' (gzip)' if opts.gzip else ''}{' (TLS)' if opts.tls else ''}, "
          f"{sum(kept.values())} departures kept on purpose, {len(unexplained)} unexplained")  # fmt: skip
    return report(kept, unexplained)


def report(kept: Counter[str], unexplained: list[tuple[bytes, Any, Any]]) -> int:
    """Prints the departures counted and the first differences left; the exit status."""
    for reason, count in kept.most_common():
        print(f"  {count:5d}  {reason}")
    for request, t, s in unexplained[:10]:
        print("\nrequest:", request)
        print("  tornado:", str(t)[:800])
        print("  squall: ", str(s)[:800])
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
