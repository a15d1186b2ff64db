"""Blocking and non-blocking HTTP clients.

* `AsyncHTTPClient`: ``await client.fetch(url_or_request, **options)`` gives an
  `HTTPResponse`. One instance per `~squall.ioloop.IOLoop` (unless
  ``force_instance=True``); the implementation is chosen with
  `AsyncHTTPClient.configure` and defaults to
  `squall.simple_httpclient.SimpleAsyncHTTPClient`, which keeps connections
  alive in a pool and can go through an HTTP proxy.
* `HTTPClient`: the same, blocking, on a private `~squall.ioloop.IOLoop`.
* `HTTPRequest` holds every option of a request; ``_RequestProxy`` fills the
  options a request leaves unset from the client's ``defaults``.

Errors::

    HTTPClientError (code, message, response)   also exported as HTTPError
     +-- simple_httpclient.HTTPTimeoutError      599, a timeout
     +-- simple_httpclient.HTTPStreamClosedError 599, the connection closed

A response with a non-2xx status carries an `HTTPClientError` in ``error``;
``fetch(raise_error=False)`` returns such responses instead of raising, but
still raises every other error (timeouts, refused connections, bad input).
"""

from __future__ import annotations

import datetime
import functools
import ssl
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any, Optional, Union, cast

from squall import gen
from squall.concurrent import (
    Future,
    future_set_exception_unless_cancelled,
)
from squall.escape import utf8
from squall.httputil import HTTPHeaders, HTTPInputError, format_timestamp, responses
from squall.ioloop import IOLoop
from squall.util import Configurable

__all__ = [
    "AsyncHTTPClient",
    "HTTPClient",
    "HTTPClientError",
    "HTTPError",
    "HTTPRequest",
    "HTTPResponse",
    "main",
]

_Headers = Union[dict[str, str], HTTPHeaders]


class HTTPClient:
    """A blocking HTTP client over a private IOLoop.

    Use it in scripts and threads that do not run an event loop; it must
    not be used while an IOLoop runs in the calling thread::

        client = HTTPClient()
        try:
            print(client.fetch("http://example.com/").body)
        finally:
            client.close()

    Args:
        async_client_class: The `AsyncHTTPClient` subclass to drive
            (the configured one by default).
        **kwargs: Passed to that class's constructor.
    """

    def __init__(
        self,
        async_client_class: Optional[type[AsyncHTTPClient]] = None,
        **kwargs: Any,
    ) -> None:
        # close() (and __del__) must work even if the constructor fails.
        self._closed = True
        self._io_loop = IOLoop(make_current=False)
        client_class = AsyncHTTPClient if async_client_class is None else async_client_class

        async def make_client() -> AsyncHTTPClient:
            # The client binds to IOLoop.current(), which is only ours once
            # the loop runs.
            await gen.sleep(0)
            return client_class(**kwargs)

        self._async_client: AsyncHTTPClient = self._io_loop.run_sync(make_client)
        self._closed = False

    # The check is bound as a default: at interpreter exit this module's
    # globals may already be None (``sys`` among them, Python 3.13).
    def __del__(self, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
        if _finalizing():
            # At interpreter exit the modules that closing needs (weakref,
            # selectors) may be torn down already (Python 3.13), and the
            # process releases the loop's resources anyway.
            return
        self.close()

    def close(self) -> None:
        """Close the client and its IOLoop; idempotent."""
        if not self._closed:
            self._async_client.close()
            if not sys.is_finalizing():
                # One more loop turn lets closed connections finish closing.
                self._io_loop.run_sync(lambda: gen.sleep(0))
            self._io_loop.close()
            self._closed = True

    def fetch(self, request: Union[HTTPRequest, str], **kwargs: Any) -> HTTPResponse:
        """Fetch a URL or `HTTPRequest`, blocking until the response is complete.

        Args:
            request: A URL or an `HTTPRequest`.
            **kwargs: `HTTPRequest` options (only with a URL), and
                ``raise_error``.

        Returns:
            The `HTTPResponse`.

        Raises:
            HTTPError: For a non-2xx status unless ``raise_error=False``,
                and for timeouts and closed connections.
        """
        response: HTTPResponse = self._io_loop.run_sync(
            functools.partial(self._async_client.fetch, request, **kwargs)
        )
        return response


class AsyncHTTPClient(Configurable):
    """A non-blocking HTTP client.

    ``AsyncHTTPClient()`` returns the instance of the current IOLoop (made
    on first use) of the configured implementation; ``force_instance=True``
    makes a new one, which the caller should `close`. Keyword arguments
    go to the implementation (``max_clients``, ``defaults``, ...)::

        AsyncHTTPClient.configure(None, max_clients=50)
        response = await AsyncHTTPClient().fetch("http://example.com/")
    """

    _instance_cache: Optional[weakref.WeakKeyDictionary[IOLoop, AsyncHTTPClient]]
    io_loop: IOLoop
    defaults: dict[str, Any]
    _closed: bool

    @classmethod
    def configurable_base(cls) -> type[Configurable]:
        return AsyncHTTPClient

    @classmethod
    def configurable_default(cls) -> type[Configurable]:
        from squall.simple_httpclient import SimpleAsyncHTTPClient

        return SimpleAsyncHTTPClient

    @classmethod
    def _async_clients(cls) -> weakref.WeakKeyDictionary[IOLoop, AsyncHTTPClient]:
        # One cache per class, so that a subclass asked for by name never
        # hands out an instance of its parent.
        attr = "_async_client_dict_" + cls.__name__
        cache = cls.__dict__.get(attr)
        if cache is None:
            cache = weakref.WeakKeyDictionary()
            setattr(cls, attr, cache)
        return cast("weakref.WeakKeyDictionary[IOLoop, AsyncHTTPClient]", cache)

    def __new__(cls, force_instance: bool = False, **kwargs: Any) -> AsyncHTTPClient:
        io_loop = IOLoop.current()
        cache = None if force_instance else cls._async_clients()
        if cache is not None:
            existing = cache.get(io_loop)
            if existing is not None:
                return existing
        instance = cast(AsyncHTTPClient, super().__new__(cls, **kwargs))
        # The cache is remembered so close() can remove exactly this entry.
        instance._instance_cache = cache
        if cache is not None:
            cache[instance.io_loop] = instance
        return instance

    def initialize(self, defaults: Optional[dict[str, Any]] = None) -> None:
        """Set up the instance (called once, by the constructor).

        Args:
            defaults: Values for `~squall.httpclient.HTTPRequest` options a request leaves unset.
        """
        self.io_loop = IOLoop.current()
        self.defaults = dict(HTTPRequest._DEFAULTS)
        if defaults is not None:
            self.defaults.update(defaults)
        self._closed = False

    def close(self) -> None:
        """Release the client's resources (connections, resolver).

        Not needed for the shared instance in normal use; needed for one
        made with ``force_instance=True``. No fetch may be made afterwards.

        Raises:
            RuntimeError: If the per-IOLoop cache holds another instance.
        """
        if self._closed:
            return
        self._closed = True
        cache = getattr(self, "_instance_cache", None)
        if cache is not None:
            cached = cache.pop(self.io_loop, None)
            # A closed instance must not linger, nor may we drop another one.
            if cached is not None and cached is not self:
                raise RuntimeError("inconsistent AsyncHTTPClient cache")

    def fetch(
        self,
        request: Union[str, HTTPRequest],
        raise_error: bool = True,
        **kwargs: Any,
    ) -> Future[HTTPResponse]:
        """Start fetching a URL or an `HTTPRequest`.

        Args:
            request: A URL, or an `HTTPRequest` (then no ``kwargs``).
            raise_error: If False, a response with a non-2xx status is
                returned rather than raised. Other errors always raise.
            **kwargs: `HTTPRequest` options, with a URL.

        Returns:
            A Future of the `HTTPResponse`.

        Raises:
            RuntimeError: If the client is closed.
            ValueError: If ``kwargs`` are given with an `HTTPRequest`.
        """
        if self._closed:
            raise RuntimeError("fetch() called on closed AsyncHTTPClient")
        if not isinstance(request, HTTPRequest):
            request = HTTPRequest(url=request, **kwargs)
            # A headers object the request made itself is nobody else's.
            shared = kwargs.get("headers") is not None
        elif kwargs:
            raise ValueError(
                f"kwargs can't be used if request is an HTTPRequest object (got {sorted(kwargs)})"
            )
        else:
            shared = True
        if shared:
            # The caller's headers object may be shared with other requests;
            # the client adds Host, Authorization... to a copy.
            try:
                request.headers = HTTPHeaders(request.headers)
            except HTTPInputError as exc:
                raise ValueError(str(exc)) from None
        future: Future[HTTPResponse] = Future()

        def handle_response(response: HTTPResponse) -> None:
            error = response.error
            if error is not None and (raise_error or not response._error_is_response_code):
                future_set_exception_unless_cancelled(future, error)
            elif not future.cancelled():
                future.set_result(response)

        # Typed as the request it stands for (no typing.cast call per fetch).
        proxy: Any = _RequestProxy(request, self.defaults)
        self.fetch_impl(proxy, handle_response)
        return future

    def fetch_impl(self, request: HTTPRequest, callback: Callable[[HTTPResponse], None]) -> None:
        """Run ``request`` and call ``callback`` with its response (implementations)."""
        raise NotImplementedError()

    @classmethod
    def configure(cls, impl: Any, **kwargs: Any) -> None:
        """Choose the implementation `AsyncHTTPClient()` creates, and its arguments.

        Args:
            impl: An `AsyncHTTPClient` subclass, its dotted name, or None for
                `~squall.simple_httpclient.SimpleAsyncHTTPClient`.
            **kwargs: Constructor arguments for every instance
                (``max_clients``, ``defaults``...).
        """
        super().configure(impl, **kwargs)


class HTTPRequest:
    """An HTTP request and how to make it.

    Every option left as None takes the client's default (see
    ``AsyncHTTPClient(defaults=...)``) and then the built-in one.

    Args:
        url: The URL, ``http`` or ``https``; ``user:password@`` in it
            means basic auth.
        method: The method (``GET`` by default).
        headers: A dict or `~squall.httputil.HTTPHeaders`.
        body: The body (text is encoded as UTF-8); see also ``body_producer``.
        auth_username: User for HTTP authentication.
        auth_password: Password for HTTP authentication.
        auth_mode: ``"basic"`` (default) or ``"digest"``.
        connect_timeout: Seconds to resolve, connect and handshake (20); 0
            means none.
        request_timeout: Seconds for the whole request (20); 0 means none.
        if_modified_since: Sets ``If-Modified-Since`` from a timestamp or
            datetime.
        follow_redirects: Follow 3xx redirects (True).
        max_redirects: How many redirects to follow (5).
        user_agent: The ``User-Agent`` to send.
        use_gzip: Old name of ``decompress_response``.
        network_interface: Local address to connect from.
        streaming_callback: Called with each chunk of the body (which then
            is not kept in the response); may return an awaitable.
        header_callback: Called with the status line and each header line
            (CRLF included), then ``"\\r\\n"``.
        prepare_curl_callback: Called with the ``pycurl.Curl`` handle by
            `~squall.curl_httpclient.CurlAsyncHTTPClient`; the simple client ignores it.
        proxy_host: HTTP proxy host.
        proxy_port: HTTP proxy port.
        proxy_username: Proxy user (basic auth).
        proxy_password: Proxy password.
        proxy_auth_mode: ``"basic"`` (the only one supported).
        allow_nonstandard_methods: Allow a method beyond GET, HEAD, POST,
            PUT, DELETE, PATCH and OPTIONS (refused with `KeyError`
            otherwise), and a body with any method (and none with POST,
            PUT and PATCH).
        validate_cert: Verify the server's certificate (True).
        ca_certs: PEM file of CA certificates to verify against.
        allow_ipv6: Use IPv6 addresses when the name has them (True).
        client_key: Client private key file.
        client_cert: Client certificate file.
        body_producer: ``producer(write)`` writes the body with
            ``await write(chunk)``; chunked unless a Content-Length is set.
        expect_100_continue: Send ``Expect: 100-continue`` and wait for the
            server's go-ahead before sending the body.
        decompress_response: Ask for gzip, and decode a gzip (or, with the
            ``brotli``/``zstd`` extras, br or zstd) body (True).
        ssl_options: An `ssl.SSLContext` or dict of TLS options (overrides
            ``validate_cert``, ``ca_certs``, ``client_key``, ``client_cert``).
    """

    _headers: Optional[_Headers] = None
    _body: Optional[bytes] = None
    prepare_curl_callback: Optional[Callable[[Any], None]] = None
    #: For a redirected request, the one the caller made.
    original_request: Optional[HTTPRequest] = None

    _DEFAULTS: dict[str, Any] = dict(
        connect_timeout=20.0,
        request_timeout=20.0,
        follow_redirects=True,
        max_redirects=5,
        decompress_response=True,
        proxy_password="",
        allow_nonstandard_methods=False,
        validate_cert=True,
    )

    def __init__(
        self,
        url: str,
        method: str = "GET",
        headers: Optional[_Headers] = None,
        body: Optional[Union[bytes, str]] = None,
        auth_username: Optional[str] = None,
        auth_password: Optional[str] = None,
        auth_mode: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        request_timeout: Optional[float] = None,
        if_modified_since: Optional[Union[float, datetime.datetime]] = None,
        follow_redirects: Optional[bool] = None,
        max_redirects: Optional[int] = None,
        user_agent: Optional[str] = None,
        use_gzip: Optional[bool] = None,
        network_interface: Optional[str] = None,
        streaming_callback: Optional[Callable[[bytes], Any]] = None,
        header_callback: Optional[Callable[[str], None]] = None,
        prepare_curl_callback: Optional[Callable[[Any], None]] = None,
        proxy_host: Optional[str] = None,
        proxy_port: Optional[int] = None,
        proxy_username: Optional[str] = None,
        proxy_password: Optional[str] = None,
        proxy_auth_mode: Optional[str] = None,
        allow_nonstandard_methods: Optional[bool] = None,
        validate_cert: Optional[bool] = None,
        ca_certs: Optional[str] = None,
        allow_ipv6: Optional[bool] = None,
        client_key: Optional[str] = None,
        client_cert: Optional[str] = None,
        body_producer: Optional[Callable[[Callable[[bytes], Awaitable[None]]], Any]] = None,
        expect_100_continue: bool = False,
        decompress_response: Optional[bool] = None,
        ssl_options: Optional[Union[dict[str, Any], ssl.SSLContext]] = None,
    ) -> None:
        # This runs once per fetch. Attributes are set directly rather than
        # through the properties, and those that are usually None (headers,
        # body, prepare_curl_callback, original_request) only when given,
        # the class holding their None: CPython keeps instances of up to 30
        # attributes in its compact shared-key layout, which halves the cost
        # of setting them. The empty HTTPHeaders is made when first asked for.
        self.proxy_host = proxy_host
        self.proxy_port = proxy_port
        self.proxy_username = proxy_username
        self.proxy_password = proxy_password
        self.proxy_auth_mode = proxy_auth_mode
        self.url = url
        self.method = method
        self.body_producer = body_producer
        self.auth_username = auth_username
        self.auth_password = auth_password
        self.auth_mode = auth_mode
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self.decompress_response = (
            decompress_response if decompress_response is not None else use_gzip
        )
        self.network_interface = network_interface
        self.streaming_callback = streaming_callback
        self.header_callback = header_callback
        if prepare_curl_callback is not None:
            self.prepare_curl_callback = prepare_curl_callback
        self.allow_nonstandard_methods = allow_nonstandard_methods
        self.validate_cert = validate_cert
        self.ca_certs = ca_certs
        self.allow_ipv6 = allow_ipv6
        self.client_key = client_key
        self.client_cert = client_cert
        self.ssl_options = ssl_options
        self.expect_100_continue = expect_100_continue
        #: Wall-clock time the request was made (`time.time`).
        self.start_time = time.time()
        if headers is not None:
            self._headers = headers
        if if_modified_since:
            self.headers["If-Modified-Since"] = format_timestamp(if_modified_since)
        if body is not None:
            self._body = utf8(body)

    @property
    def headers(self) -> HTTPHeaders:
        """The request headers (a dict or `~squall.httputil.HTTPHeaders`)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = HTTPHeaders()
        # Typed as HTTPHeaders, as Tornado does: both support what callers use.
        return headers  # type: ignore[return-value]

    @headers.setter
    def headers(self, value: Optional[_Headers]) -> None:
        self._headers = HTTPHeaders() if value is None else value

    @property
    def body(self) -> bytes:
        """The body, as bytes (None when there is none)."""
        return self._body  # type: ignore[return-value]

    @body.setter
    def body(self, value: Optional[Union[bytes, str]]) -> None:
        self._body = None if value is None else utf8(value)


class HTTPResponse:
    """The response to an `HTTPRequest`.

    Attributes:
        request: The request as the caller made it (not a redirect's).
        code: The status code (599 for an error without a response).
        reason: The reason phrase.
        headers: The response `~squall.httputil.HTTPHeaders`.
        effective_url: The URL after redirects.
        buffer: The body as a `io.BytesIO`; see `body`.
        error: An exception, or None; any non-2xx ``code`` gives an
            `HTTPClientError`.
        request_time: Seconds from the start of the request to the end.
        start_time: Wall-clock start of the request (`time.time`).
        time_info: Timings by phase. The simple client, like Tornado's,
            has no curl timings: it is empty, except ``{"queue": seconds}``
            for a request that waited for a ``max_clients`` slot.
    """

    # ``headers``, ``buffer`` and ``body`` are made when first read: a
    # response from the client arrives as the received (name, value) pairs
    # and body bytes, and many callers read neither the headers nor the buffer.
    _headers: Optional[HTTPHeaders]
    _header_pairs: Optional[list[tuple[str, str]]]
    _buffer: Optional[BytesIO]
    _body: Optional[bytes]
    # On the class as well as on each response, as on Tornado: a test's
    # ``Mock(spec=HTTPResponse)`` (or ``create_autospec``) offers only the
    # names the class has, and code under test reads ``response.error``.
    error: Optional[BaseException] = None
    _error_is_response_code = False

    def __init__(
        self,
        request: HTTPRequest,
        code: int,
        headers: Optional[HTTPHeaders] = None,
        buffer: Optional[BytesIO] = None,
        effective_url: Optional[str] = None,
        error: Optional[BaseException] = None,
        request_time: Optional[float] = None,
        time_info: Optional[dict[str, float]] = None,
        reason: Optional[str] = None,
        start_time: Optional[float] = None,
    ) -> None:
        if isinstance(request, _RequestProxy):
            self.request = request.request
        else:
            self.request = request
        self.code = code
        self.reason = reason or responses.get(code, "Unknown")
        self._headers = headers
        self._header_pairs = None
        self._buffer = buffer
        self._body = None
        self.effective_url = request.url if effective_url is None else effective_url
        self._error_is_response_code = False
        if error is None:
            if code < 200 or code >= 300:
                self._error_is_response_code = True
                self.error = HTTPClientError(code, message=self.reason, response=self)
            else:
                self.error = None
        else:
            self.error = error
        self.start_time = start_time
        self.request_time = request_time
        self.time_info = time_info or {}

    @classmethod
    def _received(
        cls,
        request: HTTPRequest,
        code: int,
        reason: str,
        header_pairs: Optional[list[tuple[str, str]]],
        headers: Optional[HTTPHeaders],
        body: Optional[bytes],
        buffer: Optional[BytesIO],
        effective_url: str,
        request_time: float,
        start_time: float,
        time_info: Optional[dict[str, float]],
    ) -> HTTPResponse:
        """A response as a client received it (for implementations).

        Like the constructor, but takes the head's ``(name, value)`` pairs
        (already valid) instead of `HTTPHeaders` when ``headers`` is None,
        and the body as bytes when ``buffer`` is None.
        """
        self = cls(
            request,
            code,
            headers,
            buffer,
            effective_url,
            request_time=request_time,
            time_info=time_info,
            reason=reason,
            start_time=start_time,
        )
        self._header_pairs = header_pairs
        self._body = body
        return self

    @property
    def headers(self) -> HTTPHeaders:
        """The response `~squall.httputil.HTTPHeaders`."""
        headers = self._headers
        if headers is None:
            pairs = self._header_pairs
            headers = self._headers = (
                HTTPHeaders() if pairs is None else HTTPHeaders._from_pairs(pairs)
            )
            self._header_pairs = None
        return headers

    @headers.setter
    def headers(self, value: HTTPHeaders) -> None:
        self._headers = value
        self._header_pairs = None

    @property
    def buffer(self) -> Optional[BytesIO]:
        """The body as a `io.BytesIO` (None when there is no body)."""
        buffer = self._buffer
        if buffer is None and self._body is not None:
            buffer = self._buffer = BytesIO(self._body)
        return buffer

    @buffer.setter
    def buffer(self, value: Optional[BytesIO]) -> None:
        self._buffer = value
        self._body = None

    @property
    def body(self) -> bytes:
        """The whole body (``b""`` when there is none)."""
        body = self._body
        if body is None:
            buffer = self._buffer
            if buffer is None:
                return b""
            body = self._body = buffer.getvalue()
        return body

    def rethrow(self) -> None:
        """Raise ``error`` if there is one."""
        if self.error:
            raise self.error

    def __repr__(self) -> str:
        fields = {
            name: value
            for name, value in self.__dict__.items()
            if name not in ("_headers", "_header_pairs", "_buffer")
        }
        fields["headers"] = self.headers
        fields["buffer"] = self.buffer
        args = ",".join(f"{name}={value!r}" for name, value in sorted(fields.items()))
        return f"{type(self).__name__}({args})"


class HTTPClientError(Exception):
    """An unsuccessful HTTP request.

    Attributes:
        code: The HTTP status; 599 for a timeout or a connection problem.
        message: Text describing the error (the reason phrase by default).
        response: The `HTTPResponse`, when there is one.
    """

    def __init__(
        self,
        code: int,
        message: Optional[str] = None,
        response: Optional[HTTPResponse] = None,
    ) -> None:
        self.code = code
        self.message = message or responses.get(code, "Unknown")
        self.response = response
        super().__init__(code, message, response)

    def __str__(self) -> str:
        return f"HTTP {self.code}: {self.message}"

    # The default repr would show the response's (large) repr.
    __repr__ = __str__


HTTPError = HTTPClientError


class _RequestProxy:
    """An `HTTPRequest` whose unset (None) options come from ``defaults``."""

    __slots__ = ("request", "defaults")

    def __init__(self, request: HTTPRequest, defaults: Optional[dict[str, Any]]) -> None:
        self.request = request
        self.defaults = defaults

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.request, name)
        if value is not None:
            return value
        if self.defaults is not None:
            return self.defaults.get(name, None)
        return None


def main() -> None:
    """Fetch the URLs given on the command line and print them (for testing).

    Options: ``--print_headers``, ``--print_body`` (on), ``--follow_redirects``
    (on), ``--validate_cert`` (on), ``--proxy_host``, ``--proxy_port``.
    """
    from squall.options import define, options, parse_command_line

    define("print_headers", type=bool, default=False)
    define("print_body", type=bool, default=True)
    define("follow_redirects", type=bool, default=True)
    define("validate_cert", type=bool, default=True)
    define("proxy_host", type=str)
    define("proxy_port", type=int)
    args = parse_command_line()
    client = HTTPClient()
    try:
        for arg in args:
            try:
                response = client.fetch(
                    arg,
                    follow_redirects=options.follow_redirects,
                    validate_cert=options.validate_cert,
                    proxy_host=options.proxy_host,
                    proxy_port=options.proxy_port,
                )
            except HTTPError as exc:
                if exc.response is None:
                    raise
                response = exc.response
            if options.print_headers:
                print(response.headers)
            if options.print_body:
                print(response.body.decode("utf-8", "replace"))
    finally:
        client.close()


if __name__ == "__main__":
    main()
