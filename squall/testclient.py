"""An in-process client for fast unit tests: `TestClient` drives an Application
without a socket.

::

    from squall.testclient import TestClient

    def test_home():
        client = TestClient(make_app())
        response = client.get("/", params={"q": "x"})
        assert response.status_code == 200
        assert response.json() == {"q": "x"}

The client stands where the server would: it calls the application's
`~squall.httputil.HTTPServerConnectionDelegate` interface (``start_request``,
then the request's ``headers_received``, ``data_received`` and ``finish``)
with a connection of its own that collects what the handler writes. Routing,
handlers, transforms (gzip), cookies, XSRF and error pages run exactly as
behind `.HTTPServer`; only the HTTP/1.1 framing (and so the ``Date`` header
and chunked encoding) is not there. A WebSocket needs a socket: use the
pytest plugin's ``ws_connect`` fixture.

The methods (`TestClient.get`, `~squall.testclient.TestClient.post`, ...) are synchronous: each runs the
client's own event loop until the response is complete, so the application's
background callbacks run during requests. Inside a coroutine (a test already
running on a loop) use ``await client.fetch(...)`` instead.

Like a browser, the client keeps the cookies the application sets (one jar,
whatever the domain or path; an expired one is dropped) and follows redirects
unless told not to. An exception in a handler is what it is behind a server:
a 500 response and a log line, not an exception in the test.
"""

from __future__ import annotations

import asyncio
import http.cookies
import json as _json
import time
import urllib.parse
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Optional, Union

from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPOutputError,
    HTTPServerConnectionDelegate,
    RequestStartLine,
    ResponseStartLine,
)
from squall.httputil._misc import StartLine

__all__ = ["TestClient", "TestResponse"]

_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_MAX_REDIRECTS = 10


class _Context:
    """``request.connection.context``: the client's address as the request sees it."""

    __slots__ = ("address", "remote_ip", "protocol")

    def __init__(self, remote_ip: str, protocol: str) -> None:
        self.address = (remote_ip, 0)
        self.remote_ip = remote_ip
        self.protocol = protocol

    def __str__(self) -> str:
        return self.remote_ip


class _Connection(HTTPConnection):
    """The request's `HTTPConnection`: keeps the response instead of sending it."""

    def __init__(self, context: _Context) -> None:
        self.context = context
        self.start_line: Optional[ResponseStartLine] = None
        self.headers: Optional[HTTPHeaders] = None
        self.chunks: list[bytes] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._close_callback: Optional[Any] = None

    def _written(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def write_headers(
        self, start_line: StartLine, headers: HTTPHeaders, chunk: Optional[bytes] = None
    ) -> asyncio.Future[None]:
        if self.start_line is not None:
            raise HTTPOutputError("the response has already started")
        assert isinstance(start_line, ResponseStartLine)
        self.start_line = start_line
        self.headers = headers
        if chunk:
            self.chunks.append(bytes(chunk))
        return self._written()

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        if self.start_line is None:
            raise HTTPOutputError("write() before write_headers()")
        if self.done.done():
            raise HTTPOutputError("write() after finish()")
        self.chunks.append(bytes(chunk))
        return self._written()

    def finish(self) -> None:
        if self.start_line is None:
            raise HTTPOutputError("finish() before write_headers()")
        if not self.done.done():
            self.done.set_result(None)

    def set_close_callback(self, callback: Optional[Any]) -> None:
        """Kept, never called: the in-process client does not go away mid-response."""
        self._close_callback = callback

    def set_body_timeout(self, timeout: float) -> None:
        """Accepted for the interface; the whole body is there at once."""

    def set_max_body_size(self, max_body_size: int) -> None:
        """Accepted for the interface; the test chose the body."""

    def detach(self) -> Any:
        raise HTTPOutputError(
            "the in-process TestClient has no socket to hand over (a WebSocket?): "
            "use the pytest plugin's ws_connect fixture"
        )


class TestResponse:
    """A response the `TestClient` received.

    Attributes:
        status_code: the status, such as 200 (``code`` is the same, by
            Tornado's `.HTTPResponse` name).
        reason: the reason phrase.
        headers: the response's `.HTTPHeaders`.
        body: the body, as bytes.
        url: the URL that gave this response (after redirects).
        history: the redirect responses that led here, oldest first.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self, status_code: int, reason: str, headers: HTTPHeaders, body: bytes, url: str
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        self.body = body
        self.url = url
        self.history: list[TestResponse] = []

    @property
    def code(self) -> int:
        """The status (Tornado's name for ``status_code``)."""
        return self.status_code

    @property
    def text(self) -> str:
        """The body decoded by the Content-Type's charset (UTF-8 when it names none)."""
        charset = "utf-8"
        for param in self.headers.get("Content-Type", "").split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        return self.body.decode(charset, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: the body is not JSON (the message quotes its start).
        """
        try:
            return _json.loads(self.body)
        except ValueError as exc:
            raise ValueError(f"response body is not JSON ({exc}): {self.body[:80]!r}") from None

    def raise_for_status(self) -> None:
        """Raises `AssertionError` naming the status when it is 400 or above."""
        if self.status_code >= 400:
            raise AssertionError(f"{self.status_code} {self.reason} from {self.url}")

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_code} {self.url}>"


class TestClient:
    """Sends requests to an Application in-process, without a socket.

    Args:
        app: the `~squall.web.Application` (any `~squall.httputil.HTTPServerConnectionDelegate`).
        base_url: the scheme and host the requests are made to; the host
            becomes the ``Host`` header, the scheme ``request.protocol``.
        headers: headers sent with every request.
        follow_redirects: the default for each request.
        remote_ip: ``request.remote_ip`` of every request.
        timeout: seconds a request may take before `TimeoutError`.

    Use it as a context manager, or call `close`, to close its event loop.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        app: HTTPServerConnectionDelegate,
        base_url: str = "http://testserver",
        headers: Optional[Mapping[str, str]] = None,
        follow_redirects: bool = True,
        remote_ip: str = "127.0.0.1",
        timeout: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be http(s)://host[:port], not {base_url!r}")
        self.app = app
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.headers = dict(headers or {})
        self.follow_redirects = follow_redirects
        self.remote_ip = remote_ip
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        """The cookie jar (name to value), sent with every request."""
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # -- the synchronous API --------------------------------------------------------------

    def request(self, method: str, url: str, **kwargs: Any) -> TestResponse:
        """Sends one request and returns its response; see `fetch` for the arguments.

        Raises:
            RuntimeError: called from a running event loop (use ``await fetch()``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "TestClient's methods run their own event loop; inside a coroutine "
                "use `await client.fetch(url, method=...)`"
            )
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self.fetch(url, method=method, **kwargs))

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("HEAD", url, ...)``."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("OPTIONS", url, ...)``."""
        return self.request("OPTIONS", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("DELETE", url, ...)``."""
        return self.request("DELETE", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("PUT", url, ...)``."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("PATCH", url, ...)``."""
        return self.request("PATCH", url, **kwargs)

    def close(self) -> None:
        """Closes the client's event loop (after letting its pending callbacks run)."""
        loop = self._loop
        self._loop = None
        if loop is not None and not loop.is_closed():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the asynchronous API -------------------------------------------------------------

    async def fetch(
        self,
        url: str,
        method: str = "GET",
        *,
        params: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
        body: Union[None, bytes, str] = None,
        data: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        cookies: Optional[Mapping[str, str]] = None,
        follow_redirects: Optional[bool] = None,
    ) -> TestResponse:
        """Sends one request on the running loop and returns its response.

        Args:
            url: a path (``"/x?y=1"``) or an absolute URL on the base URL's host.
            method: the request method.
            params: query arguments added to the URL (a value may be a list).
            headers: request headers, over the client's own.
            body: the raw body.
            data: form fields, sent ``application/x-www-form-urlencoded``.
            json: a value sent as JSON.
            cookies: cookies for this request, over the jar's.
            follow_redirects: overrides the client's default.

        Raises:
            ValueError: more than one of ``body``, ``data`` and ``json``, or a URL
                on another host.
            TimeoutError: no complete response within the client's timeout.
        """
        if sum(x is not None for x in (body, data, json)) > 1:
            raise ValueError("pass at most one of body, data and json")
        sent_headers = {**self.headers, **(headers or {})}
        payload: Optional[bytes] = None
        if data is not None:
            payload = urllib.parse.urlencode(data, doseq=True).encode()
            sent_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json is not None:
            payload = _json.dumps(json).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            payload = body.encode() if isinstance(body, str) else bytes(body)
        target = self._target(url, params)
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        history: list[TestResponse] = []
        while True:
            response = await asyncio.wait_for(
                self._exchange(method, target, sent_headers, payload, cookies), self.timeout
            )
            if not (follow and response.status_code in _REDIRECTS):
                break
            location = response.headers.get("Location")
            if not location:
                break
            if len(history) >= _MAX_REDIRECTS:
                raise ValueError(f"more than {_MAX_REDIRECTS} redirects from {url!r}")
            history.append(response)
            target = self._target(urllib.parse.urljoin(response.url, location), None)
            # RFC 9110 section 15.4: 303 turns the request into a GET; so do
            # 301 and 302 after a POST, as every browser does.
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                if method != "HEAD":
                    method = "GET"
                payload = None
                sent_headers = {
                    k: v for k, v in sent_headers.items() if k.lower() != "content-type"
                }
        response.history = history
        return response

    def _target(self, url: str, params: Optional[Mapping[str, Any]]) -> str:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme or parts.netloc:
            base = urllib.parse.urlsplit(self.base_url)
            if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
                raise ValueError(f"{url!r} is not on the client's base URL {self.base_url!r}")
        path = parts.path or "/"
        if not path.startswith("/"):
            raise ValueError(f"a path must start with '/': {url!r}")
        query = parts.query
        if params:
            extra = urllib.parse.urlencode(params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        return f"{path}?{query}" if query else path

    async def _exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        payload: Optional[bytes],
        cookies: Optional[Mapping[str, str]],
    ) -> TestResponse:
        request_headers = HTTPHeaders()
        request_headers["Host"] = urllib.parse.urlsplit(self.base_url).netloc
        for name, value in headers.items():
            request_headers[name] = value
        jar = {**self.cookies, **(cookies or {})}
        if jar and "Cookie" not in request_headers:
            request_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if payload is not None or method in ("POST", "PUT", "PATCH"):
            request_headers["Content-Length"] = str(len(payload or b""))
        scheme = urllib.parse.urlsplit(self.base_url).scheme
        connection = _Connection(_Context(self.remote_ip, scheme))
        server_conn = object()
        delegate: HTTPMessageDelegate = self.app.start_request(server_conn, connection)
        try:
            waiting = delegate.headers_received(
                RequestStartLine(method, target, "HTTP/1.1"), request_headers
            )
            if waiting is not None:
                await waiting
            if payload:
                waiting = delegate.data_received(payload)
                if waiting is not None:
                    await waiting
            delegate.finish()
            await connection.done
        finally:
            if not connection.done.done():
                delegate.on_connection_close()
            self.app.on_close(server_conn)
        assert connection.start_line is not None and connection.headers is not None
        response = TestResponse(
            connection.start_line.code,
            connection.start_line.reason,
            connection.headers,
            b"" if method == "HEAD" else b"".join(connection.chunks),
            self.base_url + target,
        )
        self._keep_cookies(response.headers)
        return response

    def _keep_cookies(self, headers: HTTPHeaders) -> None:
        for line in headers.get_list("Set-Cookie"):
            parsed = http.cookies.SimpleCookie()
            try:
                parsed.load(line)
            except http.cookies.CookieError:
                continue  # the application's mistake: a browser drops it too
            for name, morsel in parsed.items():
                if _expired(morsel):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value


def _expired(morsel: http.cookies.Morsel[str]) -> bool:
    max_age = morsel["max-age"]
    if max_age:
        try:
            return int(max_age) <= 0
        except ValueError:
            return False
    expires = morsel["expires"]
    if expires:
        try:
            return parsedate_to_datetime(expires).timestamp() <= time.time()
        except (TypeError, ValueError):
            return False
    return False
