"""squall._h2's rules on fields (_rules) and stream states (_state), and what
the server core reads of a request head for the driver."""

from __future__ import annotations

import pytest

from squall._h2 import H2Connection, Request, content_length, response_fields, trailer_fields
from squall._h2._client import H2ClientConnection
from squall._h2._state import (
    CLOSED,
    HALF_CLOSED_LOCAL,
    HALF_CLOSED_REMOTE,
    IDLE,
    OPEN,
    RECV_END,
    RECV_HEADERS,
    SEND_END,
    SEND_HEADERS,
    SEND_RESET,
    TRANSITIONS,
    next_state,
)


def test_response_fields_drop_connection_fields_and_lowercase() -> None:
    fields = response_fields(
        [
            ("Content-Type", ["text/plain"]),
            ("Connection", ["close"]),
            ("Transfer-Encoding", ["chunked"]),
            ("Keep-Alive", ["timeout=5"]),
            ("Set-Cookie", ["a=1", "b=2"]),
            ("X-Name", ["é", " padded\t"]),
        ]
    )
    assert fields == [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-name", "é".encode("latin-1")),
        (b"x-name", b"padded"),
    ]
    # The second time the names come from the memo: the same answer.
    assert response_fields([("Connection", ["x"]), ("X-Name", ["v"])]) == [(b"x-name", b"v")]


@pytest.mark.parametrize("fields", [[("X-A", [1])], [("Nåme\u0100", ["v"])], [(None, ["v"])]])
def test_response_fields_refuse_what_is_not_text(fields: list) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match="must be"):
        response_fields(fields)


@pytest.mark.parametrize(
    "name", ["Content-Length", "transfer-encoding", "TE", "Host", "Set-Cookie", ":status"]
)
def test_trailer_fields_refuse_framing_and_routing_fields(name: str) -> None:
    with pytest.raises(ValueError, match="may not be a trailer field"):
        trailer_fields([("X-Ok", "1"), (name, "v")])


def test_trailer_fields_pass_the_others() -> None:
    assert trailer_fields([("X-Checksum", "abc"), ("Grpc-Status", "0")]) == [
        (b"x-checksum", b"abc"),
        (b"grpc-status", b"0"),
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (None, -1),
        (["12"], 12),
        (["0"], 0),
        (["+1"], -2),
        (["1_0"], -2),
        (["٣"], -2),
        (["1", "1"], -2),
    ],
)
def test_content_length(values: list[str] | None, expected: int) -> None:
    assert content_length(values) == expected


def test_state_table_follows_rfc9113_5_1() -> None:
    assert next_state(IDLE, RECV_HEADERS) is OPEN
    assert next_state(IDLE, SEND_HEADERS) is OPEN
    assert next_state(OPEN, RECV_END) is HALF_CLOSED_REMOTE
    assert next_state(HALF_CLOSED_REMOTE, SEND_END) is CLOSED
    assert next_state(OPEN, SEND_END) is HALF_CLOSED_LOCAL
    assert next_state(HALF_CLOSED_LOCAL, RECV_END) is CLOSED
    # Not allowed: a second END_STREAM from one side, anything after closed.
    assert next_state(HALF_CLOSED_REMOTE, RECV_END) is None
    assert next_state(HALF_CLOSED_LOCAL, SEND_END) is None
    assert all(state is not CLOSED for state, _ in TRANSITIONS)
    for state in (OPEN, HALF_CLOSED_LOCAL, HALF_CLOSED_REMOTE):
        assert next_state(state, SEND_RESET) is CLOSED
        # What the hot path reads is the table's.
        assert state.after_send_end is next_state(state, SEND_END)
        assert state.after_recv_end is next_state(state, RECV_END)
    assert (OPEN.peer_open, OPEN.self_open) == (True, True)
    assert (HALF_CLOSED_LOCAL.peer_open, HALF_CLOSED_LOCAL.self_open) == (True, False)
    assert (HALF_CLOSED_REMOTE.peer_open, HALF_CLOSED_REMOTE.self_open) == (False, True)


def request_of(headers: list[tuple[str, str]]) -> Request:
    server = H2Connection()
    server.initiate()
    client = H2ClientConnection()
    client.initiate()
    client.send_request("POST", "http", "a", "/", headers, False)
    events = server.receive_data(client.data_to_send(), 0.0)
    return next(e for e in events if isinstance(e, Request))


def test_request_content_length_and_expect_read_by_the_core() -> None:
    plain = request_of([("user-agent", "t")])
    assert (plain.content_length, plain.expect_continue) == (-1, False)
    sized = request_of([("content-length", "5"), ("expect", "100-Continue")])
    assert (sized.content_length, sized.expect_continue) == (5, True)
    bad = request_of([("content-length", "5"), ("content-length", "6")])
    assert bad.content_length == -2
    other = request_of([("expect", "something-else")])
    assert other.expect_continue is False


def test_content_length_sentinels_are_named() -> None:
    from squall._h2 import INVALID_LENGTH, NO_LENGTH

    assert content_length(None) == NO_LENGTH
    assert content_length(["+1"]) == INVALID_LENGTH
    assert content_length(["12"]) == 12
    assert NO_LENGTH < 0 and INVALID_LENGTH < 0 and NO_LENGTH != INVALID_LENGTH


def test_response_fields_refuse_values_outside_latin1_as_http1_does() -> None:
    # HTTP/1.1 refuses the same head ("header text must be latin-1"), so a
    # handler gets one error whichever protocol carries its response; before,
    # HTTP/2 sent the value's UTF-8 bytes.
    with pytest.raises(ValueError, match=r"header text must be latin-1: 'X-U: \u20ac'"):
        response_fields([("X-U", ["\u20ac"])])
    with pytest.raises(ValueError, match="latin-1"):
        trailer_fields([("X-T", "\u2603")])


def test_response_field_values_lose_whitespace_at_either_end() -> None:
    # RFC 9113 §8.2.1 makes such a value malformed (h2 and nghttp2 clients
    # reject the response); an HTTP/1.1 reader drops the same whitespace.
    assert response_fields([("X-S", [" v ", "\ta b\t", "", "  "])]) == [
        (b"x-s", b"v"),
        (b"x-s", b"a b"),
        (b"x-s", b""),
        (b"x-s", b""),
    ]
    assert trailer_fields([("X-T", " t ")]) == [(b"x-t", b"t")]


@pytest.mark.parametrize(
    "value", ["a\x01b", "\x7f", "x\x1f", "a\x0bb", "ok\x00", "a\rb", "a\nb", " a", "a\t"]
)
def test_bad_value_refuses_control_characters_and_edge_whitespace(value: str) -> None:
    from squall._h2._rules import bad_value

    assert bad_value(value)


@pytest.mark.parametrize("value", ["a\tb", "caf\xe9", "\x80\xa0\xff", "x", "Mozilla/5.0 (X11)"])
def test_bad_value_takes_tab_and_obs_text(value: str) -> None:
    from squall._h2._rules import bad_value

    assert not bad_value(value)
