"""`HTTPServerRequest` and the delegate interfaces between server, router and application."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar, Union

from squall.httputil import _forms
from squall.httputil._forms import HTTPFile, _latin1_or_utf8, _parse_qs_bytes, parse_cookie
from squall.httputil._headers import HTTPHeaders, HTTPInputError
from squall.httputil._misc import RequestStartLine, ResponseStartLine, split_host_and_port

if TYPE_CHECKING:
    import http.cookies
    from asyncio import Future

__all__ = [
    "HTTPConnection",
    "HTTPMessageDelegate",
    "HTTPServerConnectionDelegate",
    "HTTPServerRequest",
]


_T = TypeVar("_T")


# The package that imports this module; its _DEFAULT_PARSE_BODY_CONFIG is
# read when a request is built.
_PACKAGE = "squall.httputil"


class _LazyAttribute(Generic[_T]):
    # Computes an attribute on first read and stores it in the instance
    # dict, where later reads find it before this (non-data) descriptor;
    # assigning the attribute simply stores the new value there.
    __slots__ = ("compute", "name")

    def __init__(self, compute: Callable[[Any], _T]) -> None:
        self.compute = compute
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        value = self.compute(obj)
        obj.__dict__[self.name] = value
        return value


class HTTPServerConnectionDelegate:
    """What a server calls for each connection it accepts (`.HTTPServer` is one)."""

    def start_request(
        self, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        """Called as a new request begins on a connection.

        Args:
            server_conn: an opaque object standing for the long-lived
                (possibly multi-request) connection.
            request_conn: the `HTTPConnection` for this one request.

        Returns:
            The `HTTPMessageDelegate` that will receive the request.
        """
        raise NotImplementedError()

    def on_close(self, server_conn: object) -> None:
        """Called once a connection has closed.

        Args:
            server_conn: the object that was passed to `start_request`.
        """


class HTTPMessageDelegate:
    """Receives one HTTP message (a request on a server, a response on a client).

    The methods are called in order: `headers_received` once, `data_received`
    for each piece of the body, then `finish`, or `on_connection_close` if the
    connection closes first.
    """

    def headers_received(
        self,
        start_line: Union[RequestStartLine, ResponseStartLine],
        headers: HTTPHeaders,
    ) -> Optional[Awaitable[None]]:
        """Called when the start line and headers have arrived.

        Args:
            start_line: a `.RequestStartLine` or `.ResponseStartLine`.
            headers: the message's headers.

        Returns:
            ``None``, or an awaitable to apply flow control: no more body is
            read until it completes.
        """
        return None

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        """Called with each chunk of the body.

        Returns:
            ``None``, or an awaitable that delays reading until it completes.
        """
        return None

    def finish(self) -> None:
        """Called after the last chunk of the body."""

    def on_connection_close(self) -> None:
        """Called if the connection closes before the message is complete."""


class HTTPConnection:
    """The application's side of one HTTP message exchange: what it writes the response to."""

    def write_headers(
        self,
        start_line: Union[RequestStartLine, ResponseStartLine],
        headers: HTTPHeaders,
        chunk: Optional[bytes] = None,
    ) -> Future[None]:
        """Writes the start line and headers, and optionally the first body chunk.

        Args:
            start_line: a `.RequestStartLine` or `.ResponseStartLine`.
            headers: the headers to send.
            chunk: the first (possibly only) piece of the body.

        Returns:
            A future that resolves once the data has been written out.
        """
        raise NotImplementedError()

    def write(self, chunk: bytes) -> Future[None]:
        """Writes a chunk of the body.

        Returns:
            A future that resolves once the chunk has been written out.
        """
        raise NotImplementedError()

    def finish(self) -> None:
        """Marks the end of the message."""
        raise NotImplementedError()


class HTTPServerRequest:
    """One HTTP request as a server received it.

    Everything except `cookies` is a plain attribute that may be reassigned.
    The query string is checked against the argument limit when the request
    is built, but `query_arguments` and `arguments` are decoded the first time
    they are read, and `cookies` the first time it is read.

    Attributes:
        method: the request method, such as ``"GET"``.
        uri: the request-target as sent (path and query).
        version: the protocol version, such as ``"HTTP/1.1"``.
        headers: the request's `.HTTPHeaders`.
        body: the whole body, as bytes.
        remote_ip: the client's address, as a string (``None`` if unknown).
        protocol: ``"http"`` or ``"https"``.
        host: the requested host, from the ``Host`` header.
        host_name: `host` without its port, lowercased.
        path: the part of `uri` before ``?``.
        query: the part of `uri` after ``?``.
        files: uploaded files, ``{field name: [HTTPFile, ...]}``.
        query_arguments: arguments from the query string, ``{name: [bytes, ...]}``.
        body_arguments: arguments from a form body, in the same shape.
        arguments: query and body arguments together.
        connection: the `HTTPConnection` the response is written to.
        server_connection: the server's object for the underlying connection.
    """

    # "__dict__" keeps the class open to attributes that applications and
    # middleware hang on requests; the hot fields stay in slots.
    __slots__ = (
        "method",
        "uri",
        "version",
        "headers",
        "body",
        "remote_ip",
        "protocol",
        "host",
        "connection",
        "server_connection",
        "path",
        "query",
        "_start_time",
        "_finish_time",
        "_cookies",
        "__dict__",
        "__weakref__",
    )

    method: str
    uri: str
    version: str
    headers: HTTPHeaders
    body: bytes
    remote_ip: Optional[str]
    protocol: str
    host: str
    connection: Optional[HTTPConnection]
    server_connection: Optional[object]
    path: str
    query: str

    def __init__(
        self,
        method: Optional[str] = None,
        uri: Optional[str] = None,
        version: str = "HTTP/1.0",
        headers: Optional[HTTPHeaders] = None,
        body: Optional[bytes] = None,
        host: Optional[str] = None,
        files: Optional[dict[str, list[HTTPFile]]] = None,
        connection: Optional[HTTPConnection] = None,
        start_line: Optional[RequestStartLine] = None,
        server_connection: Optional[object] = None,
    ) -> None:
        """Builds a request; servers pass ``start_line``, ``headers`` and ``connection``.

        Raises:
            ValueError: without ``start_line``, unless both ``method`` and
                ``uri`` are given.
            HTTPInputError: if the query string has more fields than the
                ``urlencoded.max_arguments`` limit.
        """
        if start_line is not None:
            method, uri, version = start_line
        else:
            if method is None or uri is None:
                raise ValueError("HTTPServerRequest needs start_line, or else both method and uri")
            warnings.warn(
                "HTTPServerRequest's method, uri and version arguments are deprecated;"
                " pass start_line=RequestStartLine(method, uri, version)",
                DeprecationWarning,
                stacklevel=2,
            )
        if host is not None:
            warnings.warn(
                "HTTPServerRequest's host argument is deprecated; send a Host header instead",
                DeprecationWarning,
                stacklevel=2,
            )
        self.method = method
        self.uri = uri
        self.version = version
        if headers is None:
            headers = HTTPHeaders()
        self.headers = headers
        self.body = body or b""
        # The server's connection has a context with both attributes; other
        # connections may have neither, or only some. (Attribute reads in a
        # try cost less than getattr() calls when the attributes are there.)
        try:
            context = connection.context  # type: ignore[union-attr]
            self.remote_ip = context.remote_ip
            self.protocol = context.protocol
        except AttributeError:
            context = getattr(connection, "context", None)
            self.remote_ip = getattr(context, "remote_ip", None)
            self.protocol = getattr(context, "protocol", "http")
        if not host:
            if type(headers) is HTTPHeaders:
                # The stock headers are read through their dict: no calls.
                hosts = headers._as_list.get("Host")
                if hosts:
                    host = hosts[0] if len(hosts) == 1 else ",".join(hosts)
            else:
                host = headers.get("Host")
        self.host = host or "127.0.0.1"
        if files:
            self.files = files
        self.connection = connection
        self.server_connection = server_connection
        self._start_time = time.time()
        self._finish_time: Optional[float] = None
        self._cookies: Optional[http.cookies.SimpleCookie] = None
        self.path, _, query = uri.partition("?")
        self.query = query
        if query:
            # Only the count is checked now (it is what bounds the work);
            # decoding waits until someone reads the arguments. The limit is
            # the package attribute _forms._default_config() reads.
            package: Any = sys.modules[_PACKAGE]
            limit = package._DEFAULT_PARSE_BODY_CONFIG.urlencoded.max_arguments
            if query.count("&") >= limit:
                raise HTTPInputError(
                    f"Invalid query string: Max number of fields exceeded (the limit is {limit})"
                )

    @classmethod
    def _for_server(
        cls,
        connection: HTTPConnection,
        server_connection: object,
        start_line: Union[RequestStartLine, ResponseStartLine],
        headers: HTTPHeaders,
    ) -> HTTPServerRequest:
        # The constructor, positionally, as routers called it before there
        # was only one (kept for them and their tests).
        assert isinstance(start_line, RequestStartLine)
        return cls(
            connection=connection,
            server_connection=server_connection,
            start_line=start_line,
            headers=headers,
        )

    def _parse_query_arguments(self) -> dict[str, list[bytes]]:
        return _parse_qs_bytes(_latin1_or_utf8(self.query), None)

    def _host_name(self) -> str:
        return split_host_and_port(self.host.lower())[0]

    def _merge_arguments(self) -> dict[str, list[bytes]]:
        merged = {key: list(values) for key, values in self.query_arguments.items()}
        for key, values in self.body_arguments.items():
            merged.setdefault(key, []).extend(values)
        return merged

    def _new_dict(self) -> dict[str, Any]:
        return {}

    if TYPE_CHECKING:
        query_arguments: dict[str, list[bytes]]
        arguments: dict[str, list[bytes]]
        host_name: str
        files: dict[str, list[HTTPFile]]
        body_arguments: dict[str, list[bytes]]
    else:
        # Only host routing reads it: split on first use.
        host_name = _LazyAttribute(_host_name)
        query_arguments = _LazyAttribute(_parse_query_arguments)
        arguments = _LazyAttribute(_merge_arguments)
        # Most requests have no body: these are made when first read.
        files = _LazyAttribute(_new_dict)
        body_arguments = _LazyAttribute(_new_dict)

    @property
    def cookies(self) -> http.cookies.SimpleCookie:
        """The request's cookies, as an `http.cookies.SimpleCookie` (parsed on first use)."""
        if self._cookies is None:
            import http.cookies

            jar = http.cookies.SimpleCookie()
            values = self.headers.get_list("Cookie")
            if values:
                # RFC 9113 section 8.2.3: split Cookie fields rejoin with "; ".
                for name, value in parse_cookie("; ".join(values)).items():
                    try:
                        jar[name] = value
                    except http.cookies.CookieError:
                        pass  # a name SimpleCookie refuses; browsers send such junk
            self._cookies = jar
        return self._cookies

    def full_url(self) -> str:
        """The URL the client asked for: protocol, host and `uri`."""
        return f"{self.protocol}://{self.host}{self.uri}"

    def request_time(self) -> float:
        """Seconds this request has taken so far, or took in all once finished."""
        if self._finish_time is None:
            return time.time() - self._start_time
        return self._finish_time - self._start_time

    def get_ssl_certificate(self, binary_form: bool = False) -> Union[None, dict[str, Any], bytes]:
        """The client's TLS certificate, if the connection is TLS and one was sent.

        The server must have asked for one (``ssl_options`` with ``cert_reqs``);
        otherwise this is ``None``. See `ssl.SSLSocket.getpeercert` for the
        two forms.

        Args:
            binary_form: return the DER bytes instead of the decoded dict.
        """
        import ssl

        conn: Any = self.connection
        if conn is None:
            return None
        try:
            stream = getattr(conn, "stream", None)
            sock = getattr(stream, "socket", None)
            if sock is not None and hasattr(sock, "getpeercert"):
                cert: Union[None, dict[str, Any], bytes] = sock.getpeercert(binary_form=binary_form)
                return cert
            # Our protocol-based server keeps an asyncio transport instead.
            transport = getattr(conn, "transport", None)
            if transport is not None:
                ssl_object = transport.get_extra_info("ssl_object")
                if ssl_object is not None:
                    cert = ssl_object.getpeercert(binary_form=binary_form)
                    return cert
        except ssl.SSLError:
            return None
        return None

    def _parse_body(self) -> None:
        _forms.parse_body_arguments(
            self.headers.get("Content-Type", ""),
            self.body,
            self.body_arguments,
            self.files,
            self.headers,
        )
        arguments = vars(self).get("arguments")
        if arguments is None:
            return  # not built yet: it will include the body arguments
        for key, values in self.body_arguments.items():
            arguments.setdefault(key, []).extend(values)

    def __repr__(self) -> str:
        fields = ("protocol", "host", "method", "uri", "version", "remote_ip")
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in fields)
        return f"{type(self).__name__}({shown})"
