from __future__ import annotations

import base64

import pytest

from squall._ws import (
    HandshakeError,
    accept_key,
    check_request,
    check_response,
    client_headers,
    new_key,
    parse_subprotocols,
    server_headers,
)
from squall.httputil import HTTPHeaders

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request_headers(**overrides: str) -> HTTPHeaders:
    headers = HTTPHeaders(
        {
            "Host": "example.com",
            "Upgrade": "websocket",
            "Connection": "keep-alive, Upgrade",
            "Sec-WebSocket-Key": KEY,
            "Sec-WebSocket-Version": "13",
        }
    )
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value:
            headers[name] = value
        else:
            del headers[name]
    return headers


def test_accept_key_matches_rfc_example() -> None:
    # RFC 6455 section 1.3.
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_new_key_is_16_random_bytes() -> None:
    key = new_key()
    assert len(base64.b64decode(key)) == 16
    assert new_key() != key


def test_valid_request() -> None:
    assert check_request("GET", request_headers()) == KEY
    assert check_request("GET", request_headers(Upgrade="WebSocket", Connection="upgrade")) == KEY


@pytest.mark.parametrize(
    ("method", "overrides", "status", "message"),
    [
        ("POST", {}, 400, "uses GET"),
        ("GET", {"Upgrade": ""}, 400, "Upgrade"),
        ("GET", {"Upgrade": "h2c"}, 400, "Upgrade"),
        ("GET", {"Connection": "keep-alive"}, 400, "Connection"),
        ("GET", {"Sec_WebSocket_Version": "12"}, 426, "version"),
        ("GET", {"Sec_WebSocket_Version": ""}, 426, "version"),
        ("GET", {"Sec_WebSocket_Key": ""}, 400, "Missing"),
        ("GET", {"Sec_WebSocket_Key": "not base64!"}, 400, "Invalid"),
        ("GET", {"Sec_WebSocket_Key": base64.b64encode(b"short").decode()}, 400, "Invalid"),
        ("GET", {"Sec_WebSocket_Key": "\u00e9"}, 400, "Invalid"),
    ],
)
def test_invalid_requests(
    method: str, overrides: dict[str, str], status: int, message: str
) -> None:
    with pytest.raises(HandshakeError, match=message) as info:
        check_request(method, request_headers(**overrides))
    assert info.value.status_hint == status
    if status == 426:
        assert info.value.headers == [("Sec-WebSocket-Version", "13")]


def test_subprotocol_parsing() -> None:
    assert parse_subprotocols(None) == []
    assert parse_subprotocols("chat, superchat ,") == ["chat", "superchat"]


def test_server_and_client_headers() -> None:
    assert server_headers(KEY) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]
    full = dict(server_headers(KEY, "chat", "permessage-deflate"))
    assert full["Sec-WebSocket-Protocol"] == "chat"
    assert full["Sec-WebSocket-Extensions"] == "permessage-deflate"
    client = dict(client_headers(KEY, ["a", "b"], "permessage-deflate"))
    assert client["Sec-WebSocket-Version"] == "13"
    assert client["Sec-WebSocket-Protocol"] == "a,b"
    assert client["Sec-WebSocket-Extensions"] == "permessage-deflate"
    assert "Sec-WebSocket-Protocol" not in dict(client_headers(KEY))


def response_headers(**overrides: str) -> HTTPHeaders:
    headers = HTTPHeaders(dict(server_headers(KEY)))
    for name, value in overrides.items():
        headers[name.replace("_", "-")] = value
    return headers


def test_valid_responses() -> None:
    assert check_response(101, response_headers(), KEY) is None
    headers = response_headers(Sec_WebSocket_Protocol="b")
    assert check_response(101, headers, KEY, ["a", "b"]) == "b"


@pytest.mark.parametrize(
    ("status", "overrides", "message"),
    [
        (200, {}, "101"),
        (101, {"Upgrade": "h2c"}, "upgrade"),
        (101, {"Connection": "close"}, "Connection"),
        (101, {"Sec_WebSocket_Accept": "wrong"}, "Accept"),
        (101, {"Sec_WebSocket_Protocol": "c"}, "did not offer"),
    ],
)
def test_invalid_responses(status: int, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(HandshakeError, match=message):
        check_response(status, response_headers(**overrides), KEY, ["a"])
