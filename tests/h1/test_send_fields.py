"""`H1Connection.send_fields` (fields by name, its own path for the usual
answer) against `send_head` on the same lines: the same bytes, the same
state after, the same errors."""

from __future__ import annotations

from typing import Any

import pytest

from squall._h1 import H1Connection, LocalProtocolError
from squall._h1._events import Fields

from .conftest import drain

BODY = b"Hello, world"


def answered(request: bytes, how: str, status: int, reason: str, fields: Fields, **kw: Any) -> Any:
    """(bytes or error, state after, then what ending the message gives)."""
    conn = H1Connection("server")
    conn.receive_data(request)
    drain(conn)
    data: bytes = kw.get("data", BODY)
    checked: bool = kw.get("checked", True)
    close: bool = kw.get("close", False)
    try:
        if how == "fields":
            out: Any = conn.send_fields(status, reason, fields, data, checked, close)
        else:
            lines = [f"{n}: {v}\r\n" for n, values in fields.items() for v in values]
            conn_values = fields.get("Connection")
            if conn_values is None and close:
                conn_values = ["close"]
                lines.append("Connection: close\r\n")
            out = conn.send_head(
                status,
                reason,
                lines,
                fields.get("Content-Length"),
                fields.get("Transfer-Encoding"),
                conn_values,
                data,
                checked,
            )
    except LocalProtocolError as exc:
        out = ("error", str(exc))
    state = (conn.our_state, conn.their_state, conn.keep_alive, conn.expects_continue)
    try:
        end: Any = conn.send_end()
    except LocalProtocolError as exc:
        end = ("error", str(exc))
    return out, state, end, (conn.our_state, conn.their_state)


GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
CASES: list[tuple[bytes, int, str, Fields, dict[str, Any]]] = [
    (GET, 200, "OK", {"Content-Type": ["text/plain"], "Content-Length": ["12"]}, {}),
    (GET, 200, "OK", {"Content-Length": ["20"]}, {}),  # more to come
    (GET, 200, "OK", {"Content-Length": ["5"]}, {}),  # too much data
    (GET, 200, "OK", {"Content-Length": ["012"]}, {}),
    (GET, 200, "OK", {"Content-Length": [" 12"]}, {}),
    (GET, 200, "OK", {"Content-Length": ["1_2"]}, {}),
    (GET, 200, "OK", {"Content-Length": ["12", "12"]}, {}),
    (GET, 201, "Made", {"Content-Length": ["12"]}, {}),
    (GET, 201, "Created", {"Content-Length": ["12"]}, {}),  # same code, other reason
    (GET, 200, "O\nK", {"Content-Length": ["12"]}, {}),
    (GET, 200, "OK", {"X": ["caf\u00e9"], "Content-Length": ["12"]}, {}),
    (GET, 200, "OK", {"X": ["\u20ac"], "Content-Length": ["12"]}, {}),  # not latin-1
    (GET, 200, "OK", {"X": ["a", "b"], "Content-Length": ["12"]}, {}),
    (GET, 200, "OK", {"Content-Length": ["12"]}, {"close": True}),
    (GET, 200, "OK", {"Content-Length": ["12"], "Connection": ["close"]}, {}),
    (GET, 200, "OK", {"Transfer-Encoding": ["chunked"]}, {}),
    (GET, 200, "OK", {}, {}),
    (GET, 204, "No Content", {"Content-Length": ["0"]}, {"data": b""}),
    (GET, 304, "Not Modified", {"Content-Length": ["12"]}, {"data": b""}),
    (GET, 101, "Switching Protocols", {"Upgrade": ["x"]}, {"data": b""}),
    (GET, 99, "Odd", {"Content-Length": ["12"]}, {}),
    (GET, 200, "OK", {"Content-Length": ["12"]}, {"checked": False}),
    (GET, 200, "OK", {"X": ["a\r\nY: b"], "Content-Length": ["12"]}, {"checked": False}),
    (b"HEAD / HTTP/1.1\r\n\r\n", 200, "OK", {"Content-Length": ["12"]}, {}),
    (b"GET / HTTP/1.0\r\n\r\n", 200, "OK", {"Content-Length": ["12"]}, {}),
    (
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        200,
        "OK",
        {"Content-Length": ["12"]},
        {},
    ),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 200, "OK", {"Content-Length": ["12"]}, {}),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab", 200, "OK", {"Content-Length": ["12"]}, {}),
    (b"CONNECT a:1 HTTP/1.1\r\n\r\n", 200, "OK", {"Content-Length": ["12"]}, {}),
]


@pytest.mark.parametrize(("request_", "status", "reason", "fields", "kw"), CASES)
def test_same_as_send_head(
    request_: bytes, status: int, reason: str, fields: Fields, kw: dict[str, Any]
) -> None:
    # Twice: the second time the status line may come from what the first left.
    for _ in range(2):
        got = answered(request_, "fields", status, reason, fields, **kw)
        assert got == answered(request_, "head", status, reason, fields, **kw)


def test_the_usual_answer_in_full() -> None:
    out, state, end, after = answered(
        GET, "fields", 200, "OK", {"Server": ["s"], "Content-Length": ["12"]}
    )
    assert out == b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 12\r\n\r\n" + BODY
    assert state == ("BODY", "DONE", True, False)
    assert (end, after) == (b"", ("IDLE", "HEAD"))


def test_a_value_that_is_not_a_str_is_refused() -> None:
    conn = H1Connection("server")
    conn.receive_data(GET)
    drain(conn)
    with pytest.raises(LocalProtocolError, match=r"\(str, str\) pairs"):
        conn.send_fields(200, "OK", {"X": [1]}, b"", False)  # type: ignore[list-item]
