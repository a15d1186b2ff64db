"""squall._sse: event formatting and Last-Event-ID checks, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squall._sse import (
    MAX_LAST_EVENT_ID,
    EventStreamError,
    check_last_event_id,
    format_comment,
    format_event,
    format_retry,
    split_lines,
)


def parse_stream(raw: bytes) -> list[dict[str, str]]:
    """A client's reading of an event stream (HTML 9.2.6), for round trips."""
    events: list[dict[str, str]] = []
    data: list[str] = []
    fields: dict[str, str] = {}
    for line in split_lines(raw.decode("utf-8")):
        if line == "":
            if data or "id" in fields:
                events.append({**fields, "data": "\n".join(data)})
            data, fields = [], {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    return events


def test_one_line_event() -> None:
    assert format_event("hi") == b"data: hi\n\n"


def test_fields_in_order() -> None:
    raw = format_event("x", event="post", id="7-ab", retry=1500)
    assert raw == b"event: post\nid: 7-ab\nretry: 1500\ndata: x\n\n"


@pytest.mark.parametrize(
    "text, lines",
    [
        ("a\nb", ["a", "b"]),
        ("a\r\nb", ["a", "b"]),
        ("a\rb", ["a", "b"]),
        ("a\n\nb\n", ["a", "", "b", ""]),
        ("", [""]),
    ],
)
def test_multi_line_data_is_one_data_line_per_line(text: str, lines: list[str]) -> None:
    raw = format_event(text)
    assert raw == b"".join(b"data: " + line.encode() + b"\n" for line in lines) + b"\n"


def test_form_feed_and_unicode_line_separators_are_data() -> None:
    assert format_event("a\x0cb\u2028c") == "data: a\x0cb\u2028c\n\n".encode()


@pytest.mark.parametrize("bad", ["a\nevent: x", "a\r", "\r\nid: 1"])
def test_line_breaks_in_event_type_are_refused(bad: str) -> None:
    with pytest.raises(EventStreamError, match="type may not contain CR or LF"):
        format_event("x", event=bad)


@pytest.mark.parametrize("bad", ["1\ndata: injected", "1\r", "1\x00"])
def test_line_breaks_and_nul_in_id_are_refused(bad: str) -> None:
    with pytest.raises(EventStreamError, match="id may not contain"):
        format_event("x", id=bad)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_retry_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(EventStreamError, match="retry must be"):
        format_event("x", retry=bad)  # type: ignore[arg-type]
    with pytest.raises(EventStreamError):
        format_retry(bad)  # type: ignore[arg-type]


def test_retry_block_and_comments() -> None:
    assert format_retry(3000) == b"retry: 3000\n\n"
    assert format_comment("ping") == b": ping\n\n"
    assert format_comment() == b":\n\n"
    with pytest.raises(EventStreamError):
        format_comment("a\nb")


def test_event_stream_error_is_a_value_error() -> None:
    assert issubclass(EventStreamError, ValueError)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_a_lone_surrogate_is_refused_with_a_clear_error() -> None:
    for fields in ({"id": "\ud800"}, {"event": "a\udcff"}, {}):
        with pytest.raises(EventStreamError, match="UTF-8"):
            format_event("x\ud800" if not fields else "x", **fields)


@given(
    data=st.text(),
    event=st.none() | st.text().filter(lambda t: "\n" not in t and "\r" not in t),
    ident=st.text(alphabet=st.characters(blacklist_characters="\r\n\x00")),
)
def test_what_a_client_reads_back_is_what_was_sent(
    data: str, event: str | None, ident: str
) -> None:
    # Text with a lone surrogate has no UTF-8 form: refused, saying so.
    if any(not _encodable(t) for t in (data, event or "", ident)):
        with pytest.raises(EventStreamError, match="UTF-8"):
            format_event(data, event=event, id=ident)
        return
    # Leading spaces would lose one to the format's optional space: the
    # client strips exactly one, and we write exactly one.
    events = parse_stream(format_event(data, event=event, id=ident))
    assert len(events) == 1
    expected = "\n".join(split_lines(data))
    assert events[0]["data"] == expected
    assert events[0]["id"] == ident
    assert events[0].get("event") == event


def test_last_event_id_accepts_what_we_send() -> None:
    assert check_last_event_id("42-Xk3f9a") == "42-Xk3f9a"
    assert check_last_event_id("") == ""
    assert check_last_event_id("x" * MAX_LAST_EVENT_ID) == "x" * MAX_LAST_EVENT_ID


@pytest.mark.parametrize(
    "bad, why",
    [
        ("x" * (MAX_LAST_EVENT_ID + 1), "characters long"),
        ("1-a\x00", "control character"),
        ("1-a\tb", "control character"),
        ("1-a\x7f", "control character"),
        ("1-a\nb", "control character"),
    ],
)
def test_malformed_last_event_id_says_why(bad: str, why: str) -> None:
    with pytest.raises(EventStreamError, match=why):
        check_last_event_id(bad)
