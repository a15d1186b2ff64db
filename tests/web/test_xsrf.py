"""XSRF tokens: cookie issue, masking, versions, and the check on unsafe requests."""

from __future__ import annotations

import binascii
import logging
import re
import urllib.parse

import pytest

from squall.testing import AsyncHTTPTestCase, ExpectLog
from squall.util import _websocket_mask
from squall.web import Application, HTTPError, RequestHandler
from tests.web._extras_stub import StubHandler

RAW = bytes(range(16))
RAW_HEX = RAW.hex()


def masked(token: bytes, mask: bytes = b"\x01\x02\x03\x04", timestamp: int = 1234) -> str:
    return f"2|{mask.hex()}|{_websocket_mask(mask, token).hex()}|{timestamp}"


def unmask(value: bytes) -> bytes:
    version, mask, body, _ = value.split(b"|")
    assert version == b"2"
    return _websocket_mask(binascii.a2b_hex(mask), binascii.a2b_hex(body))


def cookie_value(line: str) -> str:
    return line.split(";")[0].split("=", 1)[1]


def test_new_token_sets_the_cookie_once() -> None:
    handler = StubHandler()
    token = handler.xsrf_token
    assert handler.xsrf_token is token
    (line,) = handler.set_cookies()
    assert line.startswith("_xsrf=2|") and line.endswith("; Path=/")
    # The cookie and the page token hide the same raw token under different masks.
    assert unmask(cookie_value(line).encode()) == unmask(token)
    assert re.fullmatch(rb"2\|[0-9a-f]{8}\|[0-9a-f]{32}\|\d+", token)


def test_existing_cookie_is_reused_and_not_set_again() -> None:
    handler = StubHandler(cookie=f"_xsrf={masked(RAW)}")
    assert unmask(handler.xsrf_token) == RAW
    assert handler.set_cookies() == []


def test_tokens_are_masked_differently_each_time() -> None:
    tokens = {StubHandler(cookie=f"_xsrf={RAW_HEX}").xsrf_token for _ in range(5)}
    assert len(tokens) == 5
    assert all(RAW_HEX.encode() not in token for token in tokens)


def test_version_1_output_is_the_bare_hex_token() -> None:
    handler = StubHandler(cookie=f"_xsrf={masked(RAW)}", xsrf_cookie_version=1)
    assert handler.xsrf_token == RAW_HEX.encode()


def test_unknown_output_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown xsrf cookie version 9"):
        _ = StubHandler(xsrf_cookie_version=9).xsrf_token


def test_cookie_name_and_kwargs_settings() -> None:
    handler = StubHandler(
        xsrf_cookie_name="__Host-xsrf", xsrf_cookie_kwargs={"secure": True, "httponly": True}
    )
    _ = handler.xsrf_token
    (line,) = handler.set_cookies()
    assert line.startswith("__Host-xsrf=2|")
    assert line.endswith("; HttpOnly; Path=/; Secure")


def test_logged_in_users_get_a_lasting_cookie() -> None:
    _ = (handler := StubHandler(current_user="ann")).xsrf_token
    assert "expires=" in handler.set_cookies()[0]
    _ = (
        handler := StubHandler(current_user="ann", xsrf_cookie_kwargs={"expires_days": None})
    ).xsrf_token
    assert "expires=" not in handler.set_cookies()[0]
    _ = (handler := StubHandler()).xsrf_token
    assert "expires=" not in handler.set_cookies()[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (masked(RAW, timestamp=77), (2, RAW, 77.0)),
        (RAW_HEX, (1, RAW, None)),
        ("xoxo", (1, b"xoxo", None)),
        ("3|abc", (None, None, None)),
        ("2|zz|00|1", (None, None, None)),
        ("2|00|00", (None, None, None)),
        ("2|0102|00|soon", (None, None, None)),
    ],
)
def test_decode(value: str, expected: tuple[object, object, object]) -> None:
    version, token, timestamp = StubHandler()._decode_xsrf_token(value)
    assert (version, token) == expected[:2]
    if expected[2] is not None or version is None:
        assert timestamp == expected[2]
    else:
        assert isinstance(timestamp, float)


def test_malformed_cookie_gets_a_fresh_token() -> None:
    handler = StubHandler(cookie="_xsrf=3|")
    version, token, _ = handler._get_raw_xsrf_token()
    assert version is None and len(token) == 16
    _ = handler.xsrf_token
    assert len(handler.set_cookies()) == 1


@pytest.mark.parametrize(
    "source",
    [
        {"arguments": {"_xsrf": masked(RAW)}},
        {"headers": {"X-Xsrftoken": RAW_HEX}},
        {"headers": {"X-Csrftoken": masked(RAW, b"\xff\x00\xff\x00")}},
    ],
)
def test_check_passes_with_matching_token(source: dict[str, dict[str, str]]) -> None:
    StubHandler(cookie=f"_xsrf={RAW_HEX}", **source).check_xsrf_cookie()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cookie": f"_xsrf={RAW_HEX}"}, "'_xsrf' argument missing from POST"),
        (
            {"cookie": f"_xsrf={RAW_HEX}", "arguments": {"_xsrf": "3|"}},
            "'_xsrf' argument has invalid format",
        ),
        ({"arguments": {"_xsrf": RAW_HEX}}, "XSRF cookie does not match POST argument"),
        (
            {"cookie": "_xsrf=beef", "arguments": {"_xsrf": RAW_HEX}},
            "XSRF cookie does not match POST argument",
        ),
    ],
)
def test_check_fails(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(HTTPError) as info:
        StubHandler(**kwargs).check_xsrf_cookie()  # type: ignore[arg-type]
    assert info.value.status_code == 403
    assert info.value.log_message == message


def test_form_html() -> None:
    html = StubHandler(cookie=f"_xsrf={RAW_HEX}", xsrf_cookie_version=1).xsrf_form_html()
    assert html == f'<input type="hidden" name="_xsrf" value="{RAW_HEX}"/>'


class XSRFServerTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        class Handler(RequestHandler):
            def get(self) -> None:
                self.write(self.xsrf_token)

            def post(self) -> None:
                self.write("ok")

        return Application([("/", Handler)], xsrf_cookies=True)

    def test_token_round_trip(self) -> None:
        response = self.fetch("/")
        token = response.body.decode()
        cookie = response.headers["Set-Cookie"].split(";")[0]
        body = urllib.parse.urlencode({"_xsrf": token})
        assert self.fetch("/", method="POST", body=body, headers={"Cookie": cookie}).body == b"ok"
        headers = {"Cookie": cookie, "X-Xsrftoken": token}
        assert self.fetch("/", method="POST", body="", headers=headers).code == 200

    def test_missing_token_is_403(self) -> None:
        with ExpectLog("squall.general", ".*'_xsrf' argument missing", level=logging.WARNING):
            response = self.fetch("/", method="POST", body="")
        assert response.code == 403

    def test_safe_methods_are_not_checked(self) -> None:
        assert self.fetch("/").code == 200
