"""Tornado's simple HTTP client and Squall's, fetching from the same scripted answers; results compared.

``python compat/differential/client_run.py --cases 1500 [--seed N]`` in a
venv with Tornado 6.6.1 and Squall (``make differential`` runs it in
``.venv-differential``). Hypothesis chooses each case: the request (method,
path, fields, a body or a ``body_producer``'s pieces, credentials,
redirect and decompression options, ``expect_100_continue``,
``if_modified_since``, the client's ``max_body_size``) and one to three answers of a raw server (plain, chunked, gzip, until close,
HTTP/1.0, 1xx before the final answer, 204, 304, redirects of every kind
to relative and absolute places, cookies, a body shorter than its
Content-Length, repeated Content-Length, errors, garbage). client_peer.py
runs the cases under each framework; the requests the server received and
what each fetch gave (code, reason, fields, body, ``effective_url``, the
error) are compared. A difference that tests/COMPAT.md lists is counted
under its reason; any other is printed and the run exits 1.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import subprocess
import sys
from collections import Counter
from typing import Any

from hunt import generated
from hypothesis import given
from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))

_GZ = gzip.compress(b"hello gzip", mtime=0)
_ANSWERS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\n!!!\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(_GZ), _GZ),
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end<close>",
    b"HTTP/1.0 200 OK\r\n\r\nold style<close>",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nka",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 301 Moved Permanently\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/abs?x=1\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 303 See Other\r\nLocation: other\r\nContent-Length: 3\r\n\r\nbye",
    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /keep#frag\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 308 Permanent Redirect\r\nLocation: ../up\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2; Path=/\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort<close>",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nerror",
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
    b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="r"\r\nContent-Length: 0\r\n\r\n',
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=latin-1\r\nContent-Length: 1\r\n\r\n\xe9",
    b"HTTP/1.1 200 Fine Thanks\r\nX-Empty:\r\nX-Space:   padded  \r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 418 \r\nContent-Length: 0\r\n\r\n",
    b"not http at all\r\n\r\n<close>",
    b"<close>",
]
# The redirects a client follows with a GET (301 and 302 after a POST, 303).
_TO_GET = (b"HTTP/1.1 301 ", b"HTTP/1.1 302 ", b"HTTP/1.1 303 ")
_PATHS = ["/", "/p", "/p?q=1&q=2", "/a/b/c", "/%C3%A9?x=%20", "/p?", "/é", "/a b"]
_FIELDS = [
    {"X-A": "1"}, {"Accept-Encoding": "identity"}, {"Cookie": "a=b"}, {"Host": "other.example"},
    {"Content-Type": "application/json"}, {"User-Agent": "mine"}, {"Connection": "close"},
    {"If-None-Match": '"x"'}, {"Authorization": "Bearer t"},
]  # fmt: skip


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    method = draw(
        st.sampled_from(["GET"] * 5 + ["POST", "PUT", "PATCH", "HEAD", "DELETE", "OPTIONS"])
    )
    request: dict[str, Any] = {"method": method}
    if method in ("POST", "PUT", "PATCH"):
        if draw(st.integers(0, 3)) == 0:
            # A body_producer's pieces (chunked, unless the case names a
            # Content-Length below).
            request["producer"] = draw(st.lists(st.sampled_from(["", "ab", "x" * 70]), max_size=3))
        else:
            request["body"] = draw(st.sampled_from(["", "a=1", "x" * 70, None]))
    headers: dict[str, str] = {}
    for fields in draw(st.lists(st.sampled_from(_FIELDS), max_size=3)):
        headers.update(fields)
    if headers:
        request["headers"] = headers
    for name, values in {
        "follow_redirects": [True, False],
        "max_redirects": [0, 1, 5],
        "decompress_response": [True, False],
        "allow_nonstandard_methods": [True],
        "user_agent": ["UA/1"],
        "auth_username": ["user"],
        "callbacks": [True],
        "expect_100_continue": [True],
        "client_max_body_size": [0, 4, 100],
        "if_modified_since": [0, 1359312200.5],
    }.items():
        if draw(st.integers(0, 3)) == 0:
            request[name] = draw(st.sampled_from(values))
    if "producer" in request and draw(st.booleans()):
        length = str(sum(len(p) for p in request["producer"]))
        request["headers"] = {**request.get("headers", {}), "Content-Length": length}
    if "auth_username" in request:
        request["auth_password"] = draw(st.sampled_from(["pw", "", "é:x"]))
    script = draw(st.lists(st.sampled_from(_ANSWERS), min_size=1, max_size=3))
    return {
        "request": request,
        # (Mostly plain paths: the two with a space or raw non-ASCII are departures.)
        "path": draw(st.sampled_from(_PATHS[:6] * 4 + _PATHS[6:])),
        "script": [base64.b64encode(a).decode() for a in script],
    }


def _server_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    size = len(payload)
    length = bytes([size]) if size < 126 else bytes([126]) + size.to_bytes(2, "big")
    return bytes([(0x80 if fin else 0) | rsv | opcode]) + length + payload


_WS_HANDSHAKES = [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: {accept}\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: b\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: zzz\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: x-unknown\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
]
_WS_SERVER_FRAMES = [
    _server_frame(1, b"hello"),
    _server_frame(2, b"\x00\x01"),
    _server_frame(1, "é☃".encode()),
    _server_frame(1, b"par", fin=False) + _server_frame(0, b"ts"),
    _server_frame(9, b"ping"),
    _server_frame(10, b"pong"),
    _server_frame(1, b"\xff"),
    _server_frame(1, b"r", rsv=0x40),
    _server_frame(1, b"m\x80\x00\x00\x00\x00", fin=True)[:1] + b"\x81\x01\x02\x03\x04m",
    _server_frame(0, b"stray"),
    _server_frame(8, (1001).to_bytes(2, "big") + b"going"),
    _server_frame(8, (999).to_bytes(2, "big")),
    _server_frame(8, b""),
    _server_frame(1, b"x" * 200),
]


@st.composite
def ws_cases(draw: Any) -> dict[str, Any]:
    frames = draw(st.lists(st.sampled_from(_WS_SERVER_FRAMES), max_size=4))
    abrupt = draw(st.integers(0, 5)) == 0
    if not abrupt:
        frames.append(_server_frame(8, (1000).to_bytes(2, "big") + b"bye"))
    return {
        "ws": True,
        "path": draw(st.sampled_from(["/ws", "/ws?x=1", "/é"])),
        "subprotocols": draw(st.sampled_from([None, ["a"], ["a", "b"]])),
        "compress": draw(st.booleans()),
        "send": draw(st.sampled_from([[], ["hi"], ["a", "é"]])),
        "handshake": base64.b64encode(draw(st.sampled_from(_WS_HANDSHAKES))).decode(),
        "frames": [base64.b64encode(f).decode() for f in frames],
        "abrupt": abrupt,
        # The client's two ways of reading: read_message, or an
        # on_message_callback (which a kernel's or a gateway's client uses).
        "callback": draw(st.booleans()),
    }


def run_peer(
    framework: str, batch: list[dict[str, Any]], peer: str = "client_peer.py"
) -> list[dict[str, Any]]:
    # Squall's side runs the same Tornado program through squall.compat, as
    # a user runs one: the fetches are Tornado's calls, answered by Squall.
    runner = ["-m", "squall.compat"] if framework == "squall" else []
    done = subprocess.run(
        [sys.executable, *runner, os.path.join(HERE, peer), "tornado"],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        timeout=600 + 20 * len(batch),
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{peer} {framework} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def _in_order(received: list[str]) -> list[Any]:
    """Each request as its line, its fields sorted by name (their order carries no meaning), its body."""
    out = []
    for text in received:
        head, _, body = text.partition("\r\n\r\n")
        line, *fields = head.split("\r\n")
        out.append([line, sorted(fields, key=lambda f: f.partition(":")[0].lower()), body])
    return out


def departure(case: dict[str, Any], t: dict[str, Any], s: dict[str, Any]) -> str | None:
    """The reason Squall's client does otherwise, where COMPAT.md lists it; else None."""
    if "ws" in case:
        t_raised, s_raised = t.get("raised", [None])[0], s.get("raised", [None])[0]
        if s_raised == "WebSocketError" and t_raised in ("StreamClosedError", None):
            return "a 101 that breaks RFC 6455 section 4.1 fails with a WebSocketError naming the fault"
        t_rest = {k: v for k, v in t.items() if k not in ("frames", "write_errors")}
        s_rest = {k: v for k, v in s.items() if k not in ("frames", "write_errors")}
        if len(s.get("write_errors", [])) > len(t.get("write_errors", [])) and t_rest == s_rest:
            return (
                "frames behind the 101 are read at once: a close there is seen before write_message"
            )
        faulty = {
            base64.b64encode(f).decode()
            for f in _WS_SERVER_FRAMES[6:12]
            if f[0] != 0x88 or f[2:4] != b"\x03\xe9"
        }
        if faulty & set(case["frames"]):
            # (Masked, reserved bits, invalid UTF-8, a stray continuation, close code 999.)
            return "a protocol error from the server is failed with 1002 or 1007 (Tornado's client reads on)"
        if (
            os.environ.get("DIFF_TLS") == "1"
            and t_rest == s_rest
            and [f for f in s.get("frames", []) if f[0] != 136] == t.get("frames")
            and len(s["frames"]) == len(t["frames"]) + 1
        ):
            # (Over plain TCP Tornado's client sends it too.)
            return "over TLS, a close frame is answered with one (Tornado's client sends none)"
        last = s.get("frames", [[0, ""]])[-1] if s.get("frames") else [0, ""]
        if last[0] == 136:
            payload = base64.b64decode(last[1])
            if int.from_bytes(payload[:2], "big") in (1002, 1007) and len(payload) > 2:
                return "a protocol error from the server is failed with 1002 or 1007 saying which"
        return None
    encoded = None
    if "é" in case["path"] and len(t.get("received", ())) == len(s.get("received", ())):
        # Compared without the requests' targets, the other departures may
        # still be found (one case can show two).
        encoded = (
            "a URL's non-ASCII characters are sent percent-encoded as UTF-8 (Tornado: raw UTF-8)"
        )
        s = {**s, **{k: t[k] for k in ("received", "effective_url") if k in t}}
        if t == s:
            return encoded
    if t.get("header_lines") != s.get("header_lines") and {**t, "header_lines": 0} == {
        **s,
        "header_lines": 0,
    }:
        once = [
            line for i, line in enumerate(t["header_lines"]) if line not in t["header_lines"][:i]
        ]
        if once == s["header_lines"]:
            return "equal repeated Content-Length lines reach header_callback as the one field kept"
        if [line.replace(" None\r\n", " \r\n", 1) for line in t["header_lines"]] == s[
            "header_lines"
        ]:
            return (
                "a status line with an empty reason reaches header_callback as sent (Tornado: None)"
            )
    if (
        "producer" in case["request"]
        and t.get("raised") == "ValueError"
        and s.get("raised") != "ValueError"
        and s.get("received", [])[:1] == t["received"]
        and base64.b64decode(case["script"][0]).startswith(_TO_GET)
    ):
        return (
            "a redirect that makes a body_producer's request a GET is followed"
            " (Tornado keeps the producer on the GET and raises ValueError)"
        )
    if case["path"] == "/a b" and s == {"raised": "ValueError", "received": []}:
        return "a URL with a space is refused with ValueError before anything is sent (Tornado sends it)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, help="Hypothesis seed (default: random; printed)")
    parser.add_argument(
        "--tls", action="store_true", help="the scripted servers over TLS (https://, wss://)"
    )
    opts = parser.parse_args()
    chosen_seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(4), "big")
    batch: list[dict[str, Any]] = []
    if opts.tls:
        os.environ["DIFF_TLS"] = "1"  # read by the peers (tls.py)

    @generated(opts.cases, chosen_seed)
    @given(st.one_of(cases(), cases(), cases(), ws_cases()))
    def collect(case: dict[str, Any]) -> None:
        batch.append(case)

    collect()
    http = [case for case in batch if "ws" not in case]
    ws = [case for case in batch if "ws" in case]
    tornado = run_peer("tornado", http) + run_peer("tornado", ws, "ws_peer.py")
    squall = run_peer("squall", http) + run_peer("squall", ws, "ws_peer.py")
    batch = http + ws
    kept: Counter[str] = Counter()
    unexplained = []
    for case, t, s in zip(batch, tornado, squall, strict=True):
        if "received" in t:
            t["received"], s["received"] = _in_order(t["received"]), _in_order(s["received"])
        if "frames" in t:
            # The client's pongs and messages in any order: Squall's client
            # answers a ping as it arrives, Tornado's when it reads it.
            for side in (t, s):
                side["frames"] = sorted(side["frames"], key=lambda f: (f[0] == 136, f))
        if "handshake" in t:
            # Field names compared without case (Tornado's client writes
            # Sec-Websocket-Key); Tornado's handshake, an HTTP fetch, also
            # asks for gzip, which a 101 has no body to use.
            for side in (t, s):
                lines = [line.partition(":") for line in side["handshake"]]
                # A non-ASCII path: percent-encoded as UTF-8 on Squall's
                # side, raw UTF-8 on Tornado's (COMPAT.md): compared as the former.
                side["handshake"] = [
                    re.sub(r"[^\x00-\x7f]", lambda m: f"%{ord(m.group()):02x}", n).lower() + c + v
                    for n, c, v in lines
                    if n.lower() != "accept-encoding"
                ]
        if t == s:
            continue
        reason = departure(case, t, s)
        if reason:
            kept[reason] += 1
        else:
            unexplained.append((case, t, s))
    print(
        f"client_run: seed {chosen_seed}, {len(batch)} cases ({len(ws)} WebSocket)"
        f"{' over TLS' if opts.tls else ''}, {sum(kept.values())} departures"
        f" kept on purpose, {len(unexplained)} unexplained"
    )
    for reason, count in kept.most_common():
        print(f"  {count:5d}  {reason}")
    for case, t, s in unexplained[:3]:
        if "ws" in case:
            shown = [
                base64.b64decode(case["handshake"])[:40],
                [base64.b64decode(f) for f in case["frames"]],
            ]
            print(
                "\ncase:",
                {k: v for k, v in case.items() if k not in ("handshake", "frames")},
                shown,
            )
        else:
            script = [base64.b64decode(a) for a in case["script"]]
            print("\ncase:", case["request"], case["path"], script)
        print("  tornado:", json.dumps(t)[:600])
        print("  squall: ", json.dumps(s)[:600])
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
