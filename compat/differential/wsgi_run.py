"""One WSGI application in Tornado's WSGIContainer and in Squall's, the same raw requests, answers compared.

``python compat/differential/wsgi_run.py --requests 2000 [--executor] [--seed N]``
in a venv where Tornado 6.6.1 and Squall are both importable (``make
differential`` runs it in ``.venv-differential``). wsgi_app.py is served by
each library's HTTPServer; Hypothesis chooses each request: a method, a
path (percent-encoded octets, slashes, UTF-8 and not), a query, header
fields (repeated ones, cookies, Host forms, Content-Type), a body (with
Content-Length or chunked), HTTP/1.0 now and then, and a script in its
``X-Script`` field that the application follows: a status (with odd
reasons, 204, 304), header fields (repeated, Set-Cookie, its own Server,
Date, Content-Length right or wrong, Connection), body chunks (empty ones
too) and how they come (a list, a tuple, a generator, an iterable with a
close(), write() then a list, start_response called inside the iterable,
start_response again with exc_info). ``/env`` answers with the environ
the application saw. After each conversation ``/closes`` says how many
times a response's close() ran.

Compared: status, reason, the header fields (without Date and Server,
which the containers set), the body, and the close() count. Where Squall
departs on purpose (tests/COMPAT.md, WSGIContainer) the pair is counted
under the reason; any other difference is printed and the run exits 1.
Applications that raise are not sent: Tornado's container then leaves the
client without an answer (tests/COMPAT.md), which only a timeout would
tell.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any

from app_run import CLOSED, exchange, normal, report
from hunt import generated, launch
from hypothesis import given
from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))

_PATHS = st.lists(
    st.sampled_from(
        ["a", "b", "%2F", "%C3%A9", "%ff", "%20", "x+y", "", ".", "..", "%25", "é", "a;b", "~"]
    ),
    max_size=3,
).map(lambda parts: "/" + "/".join(parts))
_QUERIES = st.sampled_from(["", "?", "?a=1", "?a=1&a=2", "?a=%C3%A9", "?x=y+z", "?%ff", "?a=b?c"])
_FIELDS = {
    "Cookie": ["a=1", "b=2; c=3"],
    "X-Dup": ["1", "2", ""],
    "Content-Type": ["text/plain", "application/x-www-form-urlencoded", ""],
    "Host": ["127.0.0.1", "a.example:8080", "[::1]", "A.Example", "x.y:0"],
    "Accept": ["*/*", "text/html"],
    "X-Under_score": ["u"],
    "Authorization": ["Basic YTpi"],
}
_STATUSES = [
    "200 OK", "201 Created", "204 No Content", "304 Not Modified", "404 Not Found",
    "299 Custom Reason", "500 Oops", "200 ", "418 I'm a teapot", "302 Found",
]  # fmt: skip
_RESPONSE_FIELDS = [
    ("Content-Type", "text/plain"), ("X-A", "1"), ("X-A", "2"), ("Set-Cookie", "a=b"),
    ("Set-Cookie", "c=d; Path=/"), ("Server", "mine"), ("Date", "then"), ("X-Empty", ""),
    ("Content-Length", "LEN"), ("Content-Length", "1"), ("Connection", "close"),
    ("Location", "/elsewhere"), ("Content-Type", "application/json; charset=utf-8"),
]  # fmt: skip
_CHUNKS = st.lists(st.sampled_from(["", "a", "hello ", "é", "x" * 100, "{}"]), max_size=4)
_KINDS = ["list", "list", "tuple", "generator", "closing", "write", "late", "exc_info"]


@st.composite
def scripts(draw: Any) -> dict[str, Any]:
    chunks = draw(_CHUNKS)
    fields = [list(f) for f in draw(st.lists(st.sampled_from(_RESPONSE_FIELDS), max_size=4))]
    for field in fields:
        if field[1] == "LEN":
            field[1] = str(len("".join(chunks).encode()))
    # One Content-Length at most: Tornado's container fails on two (its
    # int() of "2,2"), and leaves the client waiting (tests/COMPAT.md, as
    # for an application that raises).
    lengths = [f for f in fields if f[0] == "Content-Length"]
    fields = [f for f in fields if f[0] != "Content-Length" or f is lengths[0]]
    return {
        "status": draw(st.sampled_from(_STATUSES)),
        "headers": fields,
        "body": chunks,
        "kind": draw(st.sampled_from(_KINDS)),
    }


@st.composite
def requests(draw: Any, last: bool) -> tuple[bytes, dict[str, Any]]:
    """One request and the script it carries."""
    version = "1.0" if draw(st.integers(0, 9)) == 0 else "1.1"
    method = draw(st.sampled_from(["GET", "GET", "GET", "POST", "HEAD", "PUT", "DELETE"]))
    env = draw(st.integers(0, 3)) == 0
    target = ("/env" if env else "") + draw(_PATHS) + draw(_QUERIES)
    script = draw(scripts())
    fields = [("Host", "127.0.0.1")]
    names = draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=3))
    if names and draw(st.integers(0, 3)) == 0:
        names.append(draw(st.sampled_from(names)))  # a field repeated
    for name in names:
        value = draw(st.sampled_from(_FIELDS[name]))
        if name == "Host":
            fields[0] = ("Host", value)
        else:
            fields.append((name, value))
    fields.append(("X-Script", json.dumps(script, separators=(",", ":"))))
    body = b""
    if method in ("POST", "PUT") and draw(st.booleans()):
        body = draw(st.sampled_from([b"x", b"a=1&b=2", "é".encode(), b"0123456789" * 5]))
        if version == "1.1" and draw(st.integers(0, 2)) == 0:
            fields.append(("Transfer-Encoding", "chunked"))
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        else:
            fields.append(("Content-Length", str(len(body))))
    if last and version == "1.1":
        fields.append(("Connection", "close"))
    head = f"{method} {target} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    return head.encode("utf-8") + b"\r\n" + body, script


@st.composite
def conversations(draw: Any) -> list[tuple[bytes, dict[str, Any]]]:
    count = draw(st.integers(1, 3))
    return [draw(requests(last=i == count - 1)) for i in range(count)]


# -- departures kept on purpose -------------------------------------------------


def _framing_aside(answer: tuple[Any, ...]) -> tuple[Any, ...]:
    version, status, reason, fields, body = answer
    kept = tuple(f for f in fields if f[0] not in ("content-length", "transfer-encoding"))
    return (version, status, reason, kept, body)


def departure(
    request: bytes,
    script: dict[str, Any],
    tornado: tuple[Any, ...],
    squall: tuple[Any, ...],
    before: list[dict[str, Any]],
) -> str | None:
    """The reason Squall answers otherwise, where tests/COMPAT.md lists it
    (``before``: the scripts of the requests before it on the connection);
    else None."""
    if (
        squall[0] == "<connection closed>"
        and tornado[0] not in ("<connection closed>", "<no answer, connection left open>")
        and any(f[0] == "Connection" for earlier in before for f in earlier["headers"])
    ):
        return (
            "hop-by-hop fields the application sets are the server's (Connection: close honoured)"
        )
    if (
        squall[0] == "HTTP/1.1"
        and tornado[0] != squall[0]
        and any(
            earlier["status"][:3] in ("204", "304") and "".join(earlier["body"])
            for earlier in before
        )
    ):
        return (
            "a 204 or 304 is sent without the body the application gave "
            "(Tornado's container may send it, and the next answer then starts with it)"
        )
    method, target = request.split(b" ", 2)[:2]
    has_body = bool("".join(script["body"])) or target.startswith(b"/env")
    if tornado[0] == "<connection closed>" and squall[0] == "HTTP/1.1" and has_body:
        if method == b"HEAD":
            return "a HEAD request gets the head alone (Tornado's container fails writing the body: no answer)"
        if squall[1] in ("204", "304") and not target.startswith(b"/env"):
            return "a 204 or 304 is sent without the body the application gave (Tornado: no answer)"
    s_fields = dict(squall[3])
    if target.startswith(b"/env") and tornado[:3] == squall[:3]:
        t_env, s_env = json.loads(tornado[4] or b"{}"), json.loads(squall[4] or b"{}")
        reasons = []
        if t_env.get("SERVER_NAME", "").startswith("["):
            reasons.append("SERVER_NAME of an IPv6 Host is the address alone")
            t_env["SERVER_NAME"], t_env["SERVER_PORT"] = s_env["SERVER_NAME"], s_env["SERVER_PORT"]
        if request.count(b"\r\nCookie: ") > 1:
            reasons.append(
                "repeated Cookie fields are joined with '; ' (RFC 6265 5.4; Tornado: ',')"
            )
            t_env["HTTP_COOKIE"] = t_env.get("HTTP_COOKIE", "").replace(",", "; ")
        if b"Transfer-Encoding: chunked" in request:
            reasons.append("a chunked request's CONTENT_LENGTH is the length of the body read")
            if "CONTENT_LENGTH" in s_env:
                t_env["CONTENT_LENGTH"] = s_env["CONTENT_LENGTH"]
        if reasons and t_env == s_env:
            return "; ".join(reasons)
    declared = [int(f[1]) for f in script["headers"] if f[0] == "Content-Length"]
    if (
        declared
        and declared[0] < len("".join(script["body"]).encode())
        and tornado[0] == "<connection closed>"
        and squall[1] == script["status"].split(" ")[0]
        and len(squall[4]) == declared[0]
    ):
        return "a body longer than its Content-Length is cut there and the connection closed (Tornado's container sends nothing)"
    if squall[1] in ("204", "304") and tornado[1] == squall[1]:
        own = {h[0].lower() for h in script["headers"]}
        added = {"content-length", "content-type"} - own
        if [f for f in tornado[3] if f[0] not in added] == list(squall[3]):
            return "a 204 or 304 gets no Content-Length or Content-Type from the container"
    hop = {h[0].lower() for h in script["headers"]} & {"connection", "transfer-encoding"}
    if hop and tornado[1:3] == squall[1:3]:
        return (
            "hop-by-hop fields the application sets are the server's (Connection: close honoured)"
        )
    # Over HTTP/1.0, streamed until the close.
    streamed = s_fields.get("transfer-encoding") == "chunked" or (
        request.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0") and "content-length" not in s_fields
    )
    if (
        script["kind"] not in ("list", "tuple", "exc_info", "write")
        and streamed
        and _framing_aside(tornado) == _framing_aside(squall)
    ):
        return "a body the application yields is streamed (chunked), not collected"
    if script["kind"] == "write" and _framing_aside(tornado) == _framing_aside(squall):
        return "write() output is streamed (chunked), not collected"
    return None


# -- run --------------------------------------------------------------------------


def start(framework: str, executor: bool) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, os.path.join(HERE, "wsgi_app.py"), framework]
    if executor:
        args.append("executor")
    return launch(args, f"{framework}: wsgi_app.py")


_CLOSES = b"GET /closes HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="conversations of 1-3 requests")
    parser.add_argument("--executor", action="store_true", help="containers with a thread pool")
    parser.add_argument("--seed", type=int, help="Hypothesis seed (default: random; printed)")
    opts = parser.parse_args()
    chosen_seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(4), "big")
    kept: Counter[str] = Counter()
    unexplained: list[tuple[bytes, Any, Any]] = []
    sent = [0]
    servers = [start(name, opts.executor) for name in ("tornado", "squall")]
    try:

        @generated(opts.requests, chosen_seed)
        @given(conversations())
        def compare(conversation: list[tuple[bytes, dict[str, Any]]]) -> None:
            raw = [request for request, _ in conversation]
            answers = [exchange(port, raw) for _, port in servers]
            closes = [
                exchange(port, [_CLOSES])[0].rpartition(b"\r\n\r\n")[2] for _, port in servers
            ]
            for i, (request, script) in enumerate(conversation):
                sent[0] += 1
                t, s = (normal(a[i] if i < len(a) else CLOSED, request) for a in answers)
                if t == s:
                    continue
                earlier = [script for _, script in conversation[:i]]
                reason = departure(request, script, t, s, earlier)
                if reason:
                    kept[reason] += 1
                elif len(unexplained) < 200:
                    unexplained.append((b"".join(raw[: i + 1]), t, s))
                # What follows a difference may follow from it.
                return
            # After an application's Connection: close, Tornado may still
            # run a request sent behind it (and drop its answer: "nothing
            # after close" in tests/COMPAT.md); its close() then counts.
            closed_early = any(
                f[0] == "Connection" for _, script in conversation[:-1] for f in script["headers"]
            )
            if closes[0] != closes[1] and not closed_early and len(unexplained) < 200:
                unexplained.append((b"".join(raw) + b" <close() count>", closes[0], closes[1]))

        compare()
    finally:
        for proc, _ in servers:
            proc.kill()
            proc.wait()
    print(
        f"wsgi_run: seed {chosen_seed}, {sent[0]} requests"
        f"{' (executor)' if opts.executor else ''}, "
        f"{sum(kept.values())} departures kept on purpose, {len(unexplained)} unexplained"
    )
    return report(kept, unexplained)


if __name__ == "__main__":
    sys.exit(main())
