"""The client policy (squall/simple_httpclient/_policy.py) without sockets:
what a redirect keeps, what the default fields are; and where the HTTP/2
client that uses it is published."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from squall.httpclient import HTTPRequest, _RequestProxy
from squall.simple_httpclient._policy import (
    CREDENTIAL_FIELDS,
    USER_AGENT,
    options,
    origin,
    redirected,
    request_fields,
)

CREDENTIALS = {"Authorization": "Bearer t", "Cookie": "c=1", "Proxy-Authorization": "Basic p"}


def follow(status: int, location: str, **kwargs: Any) -> HTTPRequest:
    kwargs.setdefault("url", "http://a.example/start")
    request = HTTPRequest(**kwargs)
    proxy: Any = _RequestProxy(request, {"max_redirects": 5})
    return redirected(proxy, status, location, None, request)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://a.example/", "http://user:pw@a.example/x", True),
        ("http://a.example/", "http://a.example:80/", True),
        ("https://a.example/", "https://A.EXAMPLE:443/", True),
        ("http://a.example/", "https://a.example/", False),
        ("http://a.example/", "http://a.example:8080/", False),
        ("http://a.example/", "http://b.example/", False),
    ],
)
def test_origin_is_scheme_host_and_port(a: str, b: str, same: bool) -> None:
    assert (origin(a) == origin(b)) is same


@pytest.mark.parametrize(
    ("status", "method", "becomes_get"),
    [
        (301, "POST", True),
        (302, "POST", True),
        (303, "POST", True),
        (303, "PUT", True),
        (303, "HEAD", False),
        (301, "PUT", False),
        (307, "POST", False),
        (308, "POST", False),
    ],
)
def test_which_redirects_become_a_get(status: int, method: str, becomes_get: bool) -> None:
    headers = {"Content-Type": "text/plain", "Transfer-Encoding": "chunked", "X-Kept": "1"}
    new = follow(
        status,
        "/next",
        method=method,
        body=None if method == "HEAD" else b"abc",
        body_producer=None,
        headers=headers,
        allow_nonstandard_methods=True,
    )
    assert new.url == "http://a.example/next"
    assert new.max_redirects == 4
    assert new.headers["X-Kept"] == "1"
    if becomes_get:
        assert (new.method, new.body, new.body_producer) == ("GET", None, None)
        assert "Content-Type" not in new.headers and "Transfer-Encoding" not in new.headers
    else:
        assert new.method == method
        assert new.headers["Transfer-Encoding"] == "chunked"


@pytest.mark.parametrize("location", ["http://b.example/", "https://a.example/", "//a.example:81/"])
def test_another_origin_gets_no_credentials(location: str) -> None:
    new = follow(302, location, headers=CREDENTIALS, auth_username="u", auth_password="p")
    assert not any(name in new.headers for name in CREDENTIAL_FIELDS)
    assert (new.auth_username, new.auth_password) == (None, None)


def test_same_origin_keeps_credentials_and_host_is_recomputed() -> None:
    new = follow(302, "http://user@a.example:80/x", headers={**CREDENTIALS, "Host": "a.example"})
    assert {name: new.headers[name] for name in CREDENTIALS} == CREDENTIALS
    assert "Host" not in new.headers


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("/a b?q=c d#e f", "http://a.example/a%20b?q=c%20d#e%20f"),
        # A field's characters are its bytes: UTF-8 and latin-1 alike.
        ("/caf\xc3\xa9", "http://a.example/caf%C3%A9"),
        ("http://b.example/caf\xe9", "http://b.example/caf%E9"),
        ("/caf%C3%A9", "http://a.example/caf%C3%A9"),
        ('/"<>^`{|}', 'http://a.example/"<>^`{|}'),
        ("other", "http://a.example/other"),
    ],
)
def test_location_is_made_a_uri_reference(location: str, url: str) -> None:
    # As libcurl follows it (Tornado's curl client); a space was a
    # ValueError, and UTF-8 was encoded twice.
    assert follow(302, location).url == url


def test_default_fields() -> None:
    request = HTTPRequest(
        "http://u:p%40@a.example:8080/p?q", method="POST", body=b"xy", headers={"Host": "h"}
    )
    opts = options(_RequestProxy(request, HTTPRequest._DEFAULTS))  # type: ignore[arg-type]
    parsed = urllib.parse.urlsplit(request.url)
    fields, digest = request_fields(opts, parsed, "a.example:8080")
    assert not digest
    assert dict(fields) == {
        "Host": "h",
        "Authorization": "Basic dTpwQA==",
        "User-Agent": USER_AGENT,
        "Content-Length": "2",
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept-Encoding": "gzip",
    }
    with pytest.raises(ValueError, match="Unsafe header"):
        bad = HTTPRequest("http://a.example/", headers={"X": "a\nb"})
        request_fields(options(bad), urllib.parse.urlsplit(bad.url), "a.example")


def test_h2client_is_published_where_it_was() -> None:
    import squall.h2client
    from squall.simple_httpclient import SimpleAsyncHTTPClient

    cls = squall.h2client.H2AsyncHTTPClient
    assert squall.h2client.__all__ == ["H2AsyncHTTPClient"]
    assert cls.__module__ == "squall.h2client"
    assert issubclass(cls, SimpleAsyncHTTPClient)
