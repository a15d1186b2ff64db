"""Hypothesis properties of the parser and serializer, on both backends."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squall._h1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    H1Connection,
    H1Limits,
    ProtocolError,
    Request,
    Response,
)

from .conftest import BACKENDS

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Properties that parse whole pipelines on both backends per example.
HEAVY = settings(SETTINGS, max_examples=100)

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TCHARS, min_size=1, max_size=12)
values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=30,
).map(lambda v: v.strip(" \t"))
# RFC 9112 §3.2 origin-form: "/" then visible ASCII (other forms in test_server).
targets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=29).map(
    lambda t: "/" + t
)
plain_headers = st.lists(
    st.tuples(tokens, values).filter(
        lambda h: (
            h[0].lower() not in ("content-length", "transfer-encoding", "connection", "expect")
        )
    ),
    max_size=6,
)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=60).map(lambda b: ("cl", b)),
    st.tuples(
        st.lists(st.binary(min_size=1, max_size=20), max_size=5),
        st.lists(
            st.tuples(tokens, values).filter(
                # Framing and routing fields are refused in trailers.
                lambda h: h[0].lower() not in ("content-length", "transfer-encoding", "host")
            ),
            max_size=2,
        ),
        st.sampled_from(["", ";a=b", ' ; x="q\\"y"']),
    ).map(lambda t: ("chunked", t)),
)


def encode_request(
    method: str, target: str, headers: list[tuple[str, str]], body: object, nl: str = "\r\n"
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"] + [f"{n}: {v}" for n, v in headers]
    tail = b""
    if isinstance(body, tuple) and body[0] == "cl":
        lines.append(f"Content-Length: {len(body[1])}")
        tail = body[1]
    elif isinstance(body, tuple):
        chunks, trailers, ext = body[1]
        lines.append("Transfer-Encoding: chunked")
        tail = b"".join(b"%x%s\r\n%s\r\n" % (len(c), ext.encode(), c) for c in chunks)
        tail += (
            b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers) + b"\r\n"
        )
    return (nl.join(lines) + nl + nl).encode("latin-1") + tail


requests = st.tuples(
    st.sampled_from(["GET", "POST", "PUT", "FOO", "get", "M-SEARCH"]),
    targets,
    plain_headers,
    bodies,
)


def normalize(events: list[Event]) -> list[object]:
    """Merge adjacent Data events: their boundaries depend on the reads."""
    out: list[object] = []
    for ev in events:
        if isinstance(ev, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + ev.data)
        else:
            out.append(ev)
    return out


def serve(conn: H1Connection, pieces: list[bytes]) -> list[Event]:
    """Feed ``pieces`` to a server, answering each request; return all events."""
    events: list[Event] = []
    for piece in [*pieces, b""]:
        conn.receive_data(piece)
        for _ in range(100_000):
            ev = conn.next_event()
            if ev is NEED_DATA:
                break
            if ev is PAUSED:
                if conn.our_state != "IDLE":
                    break
                conn.send_response(200, "OK", [], b"ok")
                continue
            assert not isinstance(ev, type(NEED_DATA))
            events.append(ev)
            if isinstance(ev, ConnectionClosed):
                return events
        else:
            raise AssertionError("no progress")
    return events


@HEAVY
@given(st.lists(requests, min_size=1, max_size=3), st.data())
def test_any_split_of_a_pipelined_stream_parses_the_same(reqs: list, data: st.DataObject) -> None:  # type: ignore[type-arg]
    stream = b"".join(encode_request(*r) for r in reqs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    pieces = [p for p in pieces if p]
    for backend in BACKENDS:
        whole = normalize(serve(H1Connection("server", parser=backend), [stream]))
        split = normalize(serve(H1Connection("server", parser=backend), pieces))
        assert whole == split
        assert sum(isinstance(e, Request) for e in whole) == len(reqs)
        assert sum(isinstance(e, EndOfMessage) for e in whole) == len(reqs)
        for (method, target, headers, _body), req in zip(
            reqs, [e for e in whole if isinstance(e, Request)], strict=True
        ):
            assert (req.method, req.target) == (method, target)
            assert req.headers[: len(headers)] == headers


def _outcome(role: str, backend: str, pieces: list[bytes], limits: H1Limits) -> object:
    conn = H1Connection(role, parser=backend, limits=limits)
    if role == "client":
        conn.send_request("GET", "/", [])
    try:
        events: list[object] = []
        for piece in [*pieces, b""]:
            conn.receive_data(piece)
            for _ in range(10_000):
                ev = conn.next_event()
                if ev is NEED_DATA:
                    break
                if ev is PAUSED:
                    if role == "server" and conn.our_state == "IDLE":
                        conn.send_response(200, "OK", [], b"")
                        continue
                    return normalize(events)  # type: ignore[arg-type]
                events.append(ev)
                if isinstance(ev, ConnectionClosed):
                    return normalize(events)  # type: ignore[arg-type]
            else:
                raise AssertionError("no progress")
        return normalize(events)  # type: ignore[arg-type]
    except ProtocolError as exc:
        return (type(exc).__name__, str(exc), exc.status_hint)


SMALL = H1Limits(max_header_size=400, max_start_line=100, max_header_count=8, max_chunk_line=40)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(["server", "client"]))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes, role: str) -> None:
    results = {backend: _outcome(role, backend, [data], SMALL) for backend in BACKENDS}
    assert results["python"] == results["httptools"]


VALID_PREFIXES = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nX: a\r\n b\r\n\r\nbody",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
]
NASTY = [
    b"\r",
    b"\n",
    b" ",
    b"\t",
    b":",
    b"\x00",
    b"\x7f",
    b"\xff",
    b",",
    b";",
    b"0",
    b"HTTP/1.1",
    b"\r\n",
]


@SETTINGS
@given(
    st.sampled_from(VALID_PREFIXES),
    st.lists(st.tuples(st.integers(0, 200), st.sampled_from(NASTY), st.booleans()), max_size=4),
    st.sampled_from(["server", "client"]),
    st.integers(1, 50),
)
def test_mutated_messages_same_outcome_on_both_backends(
    base: bytes, edits: list[tuple[int, bytes, bool]], role: str, step: int
) -> None:
    data = bytearray(base)
    for pos, piece, replace in edits:
        pos = min(pos, len(data))
        data[pos : pos + (1 if replace else 0)] = piece
    raw = bytes(data)
    pieces = [raw[i : i + step] for i in range(0, len(raw), step)]
    results = {backend: _outcome(role, backend, pieces, SMALL) for backend in BACKENDS}
    assert results["python"] == results["httptools"]
    # The split does not change the outcome either.
    assert _outcome(role, "python", [raw], SMALL) == results["python"]


@SETTINGS
@given(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "X-CUSTOM"]),
    targets,
    plain_headers,
    st.lists(st.binary(max_size=40), max_size=4),
    st.booleans(),
    st.integers(100, 599).filter(lambda s: s != 101),
    values.map(lambda v: v.replace("\t", " ")),
    st.sampled_from(BACKENDS),
)
def test_round_trip_client_server(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: list[bytes],
    chunked: bool,
    status: int,
    reason: str,
    backend: str,
) -> None:
    cli = H1Connection("client", parser=backend)
    srv = H1Connection("server", parser=backend)
    whole = b"".join(body)
    req_headers = [*headers] if chunked else [*headers, ("Content-Length", str(len(whole)))]
    if chunked and method not in ("POST", "PUT", "PATCH"):
        req_headers.append(("Transfer-Encoding", "chunked"))
    wire = cli.send_request_head(method, target, req_headers)
    for piece in body:
        wire += cli.send_data(piece)
    wire += cli.send_end([("X-Trailer", "t")] if chunked else None)
    srv.receive_data(wire)
    events = normalize(serve_once(srv))
    req = events[0]
    assert isinstance(req, Request)
    assert (req.method, req.target, req.version) == (method, target, "HTTP/1.1")
    assert req.headers[: len(headers)] == headers
    got = b"".join(e.data for e in events if isinstance(e, Data))
    assert got == whole
    assert events[-1] == EndOfMessage([("X-Trailer", "t")] if chunked else [])
    resp_body = b"" if status in (204, 304) else whole
    if status < 200:
        srv.send_informational(status, reason, headers)
        cli.receive_data(srv.send_response(200, reason, headers, whole))
    else:
        cli.receive_data(srv.send_response(status, reason, headers, resp_body))
    resp_events = normalize(serve_once(cli))
    first = resp_events[0]
    assert isinstance(first, Response)
    assert first.reason == reason
    assert first.headers[: len(headers)] == headers
    expect_body = b"" if first.status in (204, 304) or method == "HEAD" else whole
    assert b"".join(e.data for e in resp_events if isinstance(e, Data)) == expect_body
    assert resp_events[-1] == EndOfMessage()
    assert srv.keep_alive and cli.keep_alive


def serve_once(conn: H1Connection) -> list[Event]:
    out: list[Event] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA or ev is PAUSED:
            return out
        assert not isinstance(ev, type(NEED_DATA))
        out.append(ev)


@HEAVY
@given(st.lists(requests, min_size=1, max_size=3), st.lists(st.booleans(), min_size=3), st.data())
def test_bare_lf_heads_parse_like_crlf_heads_when_allowed(
    reqs: list,
    bare: list[bool],
    data: st.DataObject,  # type: ignore[type-arg]
) -> None:
    strict = b"".join(encode_request(*r) for r in reqs)
    mixed = b"".join(
        encode_request(*r, nl="\n" if use_lf else "\r\n")
        for r, use_lf in zip(reqs, bare, strict=False)
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(mixed)), max_size=6)))
    pieces = [mixed[a:b] for a, b in zip([0, *cuts], [*cuts, len(mixed)], strict=True)]
    for backend in BACKENDS:
        expected = normalize(serve(H1Connection("server", parser=backend), [strict]))
        lenient = H1Connection("server", parser=backend, allow_bare_lf=True)
        assert normalize(serve(lenient, [p for p in pieces if p])) == expected


junk = st.binary(max_size=3)
line_parts = st.lists(
    st.one_of(
        st.sampled_from(
            [b"GET", b"POST", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"200", b"OK", b"/", b"*"]
        ),
        st.sampled_from([b" ", b"  ", b"\t", b":", b"\r", b"\n", b"\x00", b"\xff", b","]),
        junk,
    ),
    max_size=8,
)
field_lines = st.lists(
    st.tuples(
        st.one_of(tokens.map(str.encode), junk),
        st.sampled_from([b":", b": ", b" :", b":\t", b""]),
        st.one_of(values.map(lambda v: v.encode("latin-1")), junk),
    ).map(b"".join),
    max_size=5,
)


@HEAVY
@given(line_parts, field_lines, st.sampled_from(["server", "client"]))
def test_random_heads_same_outcome_on_both_backends(
    start: list[bytes], fields: list[bytes], role: str
) -> None:
    raw = b"\r\n".join([b"".join(start), *fields]) + b"\r\n\r\n"
    results = {backend: _outcome(role, backend, [raw], SMALL) for backend in BACKENDS}
    assert results["python"] == results["httptools"]
