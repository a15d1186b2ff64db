"""Start lines, URLs, dates and the other small helpers of squall.httputil."""

from __future__ import annotations

import calendar
import datetime
import time
import unittest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import squall.httputil
from squall.httputil import (
    _ABNF,
    HTTPInputError,
    RequestStartLine,
    ResponseStartLine,
    _get_content_range,
    _int_or_none,
    _parse_request_range,
    encode_username_password,
    format_timestamp,
    parse_request_start_line,
    parse_response_start_line,
    qs_to_qsl,
    responses,
    split_host_and_port,
    url_concat,
)


class TestRequestStartLine:
    def test_fields(self) -> None:
        line = parse_request_start_line("GET /foo?a=b HTTP/1.1")
        assert line == RequestStartLine("GET", "/foo?a=b", "HTTP/1.1")
        assert (line.method, line.path, line.version) == ("GET", "/foo?a=b", "HTTP/1.1")
        assert isinstance(line, tuple)

    @pytest.mark.parametrize(
        "line",
        [
            "",
            "GET /",
            "GET  / HTTP/1.1",
            "GET / HTTP/1.1 ",
            "GET /a b HTTP/1.1",
            "G(T / HTTP/1.1",
            "GET /\x00 HTTP/1.1",
            "GET / http/1.1",
            "GET / HTTP/11",
            "GET / HTTP/1.1\r\n",
        ],
    )
    def test_malformed(self, line: str) -> None:
        with pytest.raises(HTTPInputError, match="Malformed HTTP request line"):
            parse_request_start_line(line)

    def test_other_versions(self) -> None:
        with pytest.raises(HTTPInputError, match="Unexpected HTTP version 'HTTP/2.0'"):
            parse_request_start_line("GET / HTTP/2.0")
        assert parse_request_start_line("GET / HTTP/1.0").version == "HTTP/1.0"

    @settings(max_examples=100, deadline=None)
    @given(st.text())
    def test_arbitrary_text(self, line: str) -> None:
        try:
            parsed = parse_request_start_line(line)
        except HTTPInputError:
            return
        assert " ".join(parsed) == line


class TestResponseStartLine:
    def test_fields(self) -> None:
        line = parse_response_start_line("HTTP/1.1 404 Not Found")
        assert line == ResponseStartLine("HTTP/1.1", 404, "Not Found")
        assert (line.version, line.code, line.reason) == ("HTTP/1.1", 404, "Not Found")

    def test_empty_reason_needs_the_space(self) -> None:
        assert parse_response_start_line("HTTP/1.0 200 ").reason == ""
        with pytest.raises(HTTPInputError, match="Error parsing response start line"):
            parse_response_start_line("HTTP/1.0 200")

    @pytest.mark.parametrize(
        "line", ["HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTPS/1.1 200 OK", "HTTP/1.1 200 O\nK"]
    )
    def test_malformed(self, line: str) -> None:
        with pytest.raises(HTTPInputError):
            parse_response_start_line(line)

    @settings(max_examples=60, deadline=None)
    @given(
        st.sampled_from(["HTTP/1.0", "HTTP/1.1"]),
        st.integers(0, 999),
        st.one_of(st.just(""), st.from_regex(_ABNF.reason_phrase, fullmatch=True)),
    )
    def test_round_trip(self, version: str, code: int, reason: str) -> None:
        parsed = parse_response_start_line(f"{version} {code:03d} {reason}")
        assert parsed == (version, code, reason)


class TestSplitHostAndPort:
    @pytest.mark.parametrize(
        ("netloc", "expected"),
        [
            ("example.com", ("example.com", None)),
            ("example.com:8080", ("example.com", 8080)),
            ("[::1]", ("[::1]", None)),
            ("[::1]:443", ("[::1]", 443)),
            ("a:1:2", ("a:1", 2)),
            (":80", (":80", None)),
            ("host:", ("host:", None)),
            ("host:x1", ("host:x1", None)),
            ("host:\u0663", ("host:\u0663", None)),
        ],
    )
    def test_cases(self, netloc: str, expected: tuple[str, int | None]) -> None:
        assert split_host_and_port(netloc) == expected


def test_qs_to_qsl() -> None:
    assert sorted(qs_to_qsl({"a": ["1", "3"], "b": ["2"]})) == [("a", "1"), ("a", "3"), ("b", "2")]
    assert list(qs_to_qsl({})) == []


class TestUrlConcat:
    @pytest.mark.parametrize(
        ("url", "args", "expected"),
        [
            ("https://h/p", [("y", "y"), ("z", "z")], "https://h/p?y=y&z=z"),
            ("https://h/p", [("y", "/y")], "https://h/p?y=%2Fy"),
            ("https://h/p?", [("y", "y")], "https://h/p?y=y"),
            ("https://h/p?x", [("y", "y")], "https://h/p?x=&y=y"),
            ("https://h/p?x&", [("y", "y")], "https://h/p?x=&y=y"),
            ("https://h/p?a=1&a=2", (("y", "1"), ("y", "2")), "https://h/p?a=1&a=2&y=1&y=2"),
            ("https://h/p?r=1", [], "https://h/p?r=1"),
            ("https://h/p?r=1", None, "https://h/p?r=1"),
            ("https://h/p#tab", [("y", "y")], "https://h/p?y=y#tab"),
            ("/p", {"y": "é"}, "/p?y=%C3%A9"),
        ],
    )
    def test_cases(self, url: str, args: object, expected: str) -> None:
        assert url_concat(url, args) == expected  # type: ignore[arg-type]

    def test_bad_args(self) -> None:
        with pytest.raises(TypeError, match="should be dict, list or tuple"):
            url_concat("/p", "a=b")  # type: ignore[arg-type]


class TestFormatTimestamp:
    TS = 1359312200.503611
    EXPECTED = "Sun, 27 Jan 2013 18:43:20 GMT"

    def test_numbers(self) -> None:
        assert format_timestamp(self.TS) == self.EXPECTED
        assert format_timestamp(int(self.TS)) == self.EXPECTED
        assert format_timestamp(0) == "Thu, 01 Jan 1970 00:00:00 GMT"

    def test_tuples(self) -> None:
        assert format_timestamp(time.gmtime(self.TS)) == self.EXPECTED
        assert format_timestamp(tuple(time.gmtime(self.TS))) == self.EXPECTED

    def test_datetimes(self) -> None:
        aware = datetime.datetime.fromtimestamp(self.TS, datetime.UTC)
        assert format_timestamp(aware) == self.EXPECTED
        assert format_timestamp(aware.replace(tzinfo=None)) == self.EXPECTED
        other = aware.astimezone(datetime.timezone(datetime.timedelta(hours=-4)))
        assert format_timestamp(other) == self.EXPECTED

    def test_every_month_and_weekday(self) -> None:
        import email.utils

        for day in range(0, 400, 13):
            ts = 1_700_000_000 + day * 86400 + 3661
            assert format_timestamp(ts) == email.utils.formatdate(ts, usegmt=True)

    def test_fractions_round_to_the_microsecond_first(self) -> None:
        assert format_timestamp(1.9999996) == "Thu, 01 Jan 1970 00:00:02 GMT"
        assert format_timestamp(1.9999994) == "Thu, 01 Jan 1970 00:00:01 GMT"
        assert format_timestamp(-2e-16) == "Thu, 01 Jan 1970 00:00:00 GMT"
        assert format_timestamp(-0.4) == "Wed, 31 Dec 1969 23:59:59 GMT"

    def test_datetime_fractions_are_dropped(self) -> None:
        late = datetime.datetime(3059, 1, 1, 0, 0, 0, 999_997)
        assert format_timestamp(late) == "Sat, 01 Jan 3059 00:00:00 GMT"
        early = datetime.datetime(1969, 12, 31, 23, 59, 59, 999_999)
        assert format_timestamp(early) == "Wed, 31 Dec 1969 23:59:59 GMT"

    def test_years_an_http_date_cannot_hold(self) -> None:
        last = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
        assert format_timestamp(last) == "Fri, 31 Dec 9999 23:59:59 GMT"
        first = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)
        assert format_timestamp(first) == "Mon, 01 Jan 0001 00:00:00 GMT"
        for ts in (last.timestamp() + 1, first.timestamp() - 1, (10000, 1, 1, 0, 0, 0, 0, 1, 0)):
            with pytest.raises(ValueError, match="year .* is out of range"):
                format_timestamp(ts)

    def test_bad_type(self) -> None:
        with pytest.raises(TypeError, match="unknown timestamp type"):
            format_timestamp("yesterday")  # type: ignore[arg-type]

    @settings(max_examples=300)
    @given(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False))
    def test_any_second_as_email_utils_says(self, ts: float) -> None:
        # Rounded to the microsecond, then the fraction dropped toward the
        # past, as datetime does under email.utils; a second formatted
        # before (the recent ones are kept) reads the same.
        import email.utils

        expected = email.utils.formatdate(ts, usegmt=True)
        assert format_timestamp(ts) == expected
        assert format_timestamp(ts) == expected
        # A datetime holds microseconds: its own second, as its time tuple has it.
        naive = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=ts)
        expected = email.utils.formatdate(calendar.timegm(naive.utctimetuple()), usegmt=True)
        assert format_timestamp(naive) == expected
        assert format_timestamp(naive.replace(tzinfo=datetime.UTC)) == expected

    def test_many_seconds_then_an_early_one_again(self) -> None:
        # More seconds than are kept: each still formats as its own.
        import email.utils

        seconds = [1_700_000_000 + 37 * n for n in range(200)]
        for ts in [*seconds, *seconds[:5]]:
            assert format_timestamp(ts) == email.utils.formatdate(ts, usegmt=True)


def test_encode_username_password() -> None:
    assert encode_username_password("user", "pass") == b"user:pass"
    assert encode_username_password(b"u\xff", "pässword") == b"u\xff:p\xc3\xa4ssword"
    assert encode_username_password("ü", b"x") == b"\xc3\xbc:x"


def test_responses() -> None:
    assert responses[200] == "OK"
    assert responses[404] == "Not Found"
    assert squall.httputil.responses is responses


class TestRanges:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("bytes=1-2", (1, 3)),
            ("bytes=6-", (6, None)),
            ("bytes=-6", (-6, None)),
            ("bytes=-0", (None, 0)),
            ("bytes=", (None, None)),
            (" bytes = 0-0 ", (0, 1)),
            ("foo=42", None),
            ("bytes=1-2,6-10", None),
            ("bytes=a-b", None),
            ("bytes=+1-2", None),
        ],
    )
    def test_parse(self, header: str, expected: object) -> None:
        assert _parse_request_range(header) == expected

    def test_slices(self) -> None:
        data = list(range(10))
        start, end = _parse_request_range("bytes=2-4")  # type: ignore[misc]
        assert data[start:end] == [2, 3, 4]

    def test_content_range(self) -> None:
        assert _get_content_range(None, 1, 4) == "bytes 0-0/4"
        assert _get_content_range(1, 3, 4) == "bytes 1-2/4"
        assert _get_content_range(None, None, 4) == "bytes 0-3/4"

    def test_int_or_none(self) -> None:
        assert _int_or_none(" 12 ") == 12
        assert _int_or_none("  ") is None
        with pytest.raises(ValueError, match="not a byte position"):
            _int_or_none("1_0")


def test_doctests_pass() -> None:
    suite = squall.httputil.doctests()
    assert suite.countTestCases() >= 10
    result = unittest.TestResult()
    suite.run(result)
    assert result.wasSuccessful(), result.failures + result.errors


def test_public_names_live_in_the_package() -> None:
    for name in squall.httputil.__all__:
        obj = getattr(squall.httputil, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "squall.httputil", name
