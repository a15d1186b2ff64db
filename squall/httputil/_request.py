"""`HTTPServerRequest`: one HTTP request as a server received it.

This module holds nothing else, so that the speedups build can compile it
(mypyc); the delegate interfaces beside it live in ``_delegates``.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import TYPE_CHECKING, Any, Final, Optional, Union, cast

from squall._compiled import mypyc_attr
from squall.httputil import _forms
from squall.httputil._delegates import HTTPConnection, _OpenAttributes
from squall.httputil._exchange import Exchange, RequestContextBase
from squall.httputil._forms import HTTPFile, _latin1_or_utf8, parse_cookie
from squall.httputil._headers import HTTPHeaders, HTTPInputError
from squall.httputil._qs import _parse_qs_bytes, parse_qs_text
from squall.httputil._startline import RequestStartLine, StartLine
from squall.httputil._urls import split_host_and_port

if TYPE_CHECKING:
    import http.cookies

__all__ = ["HTTPServerRequest"]


# The namespace of the package that imports this module (in sys.modules
# already while it does): its _DEFAULT_PARSE_BODY_CONFIG is read when a
# request is built, from the dict (a module's namespace is one dict for its
# life; a dict read costs less than an attribute lookup on the module).
_PACKAGE: Final = "squall.httputil"
# Final: C variables in the compiled build, read without a lookup in the
# module's dict.
_package_namespace: Final[dict[str, Any]] = sys.modules[_PACKAGE].__dict__
_HTTPHeaders: Final = HTTPHeaders


# Cookie names a SimpleCookie was asked to hold, and whether it took them
# (names recur from request to request; bounded all the same).
_jar_names: Final[dict[str, bool]] = {}


def _jar_takes(name: str) -> bool:
    """Whether ``SimpleCookie()[name] = value`` succeeds (a legal, unreserved name)."""
    took = _jar_names.get(name)
    if took is None:
        import http.cookies

        try:
            http.cookies.SimpleCookie()[name] = ""
            took = True
        except http.cookies.CookieError:
            took = False
        if len(_jar_names) >= 512:
            _jar_names.clear()
        _jar_names[name] = took
    return took


# Applications subclass it (and may override any method): compiled, it must
# let interpreted subclasses in. The interpreted base gives instances a
# __dict__ in both builds, for the attributes applications hang on requests.
@mypyc_attr(allow_interpreted_subclasses=True)
class HTTPServerRequest(_OpenAttributes):
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
        host_name: ``host`` without its port, lowercased.
        path: the part of ``uri`` before ``?``.
        query: the part of ``uri`` after ``?``.
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
    # These two come from the connection's context, which may be any object
    # (a test's mock, say): the Any in the union keeps the compiled build
    # from checking their type, as Python does not.
    remote_ip: Union[str, None, Any]
    protocol: Union[str, Any]
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
            # Tornado's words and defaults (GET /): programs filter these
            # warnings by their text, and tests build bare requests.
            if method is not None or uri is not None or version != "HTTP/1.0":
                warnings.warn(
                    "The method, uri, and version arguments to HTTPServerRequest are deprecated"
                    " and will be removed in Tornado 6.7. Use the start_line argument instead.",
                    DeprecationWarning,
                    stacklevel=2,
                )
            warnings.warn(
                "The start_line argument to HTTPServerRequest will be required in Tornado 6.7.",
                DeprecationWarning,
                stacklevel=2,
            )
            method = "GET" if method is None else method
            uri = "/" if uri is None else uri
        if host is not None:
            warnings.warn(
                "The host argument to HTTPServerRequest is deprecated and will be removed "
                "in Tornado 6.7. Use headers['Host'] instead.",
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
            # The server's exchanges and contexts have compiled bases whose
            # fields are read without a lookup; any other, by name.
            if isinstance(connection, Exchange):
                context = connection.context
            else:
                context = connection.context  # type: ignore[union-attr]
            if isinstance(context, RequestContextBase):
                self.remote_ip = context.remote_ip
                self.protocol = context.protocol
            else:
                self.remote_ip = context.remote_ip
                self.protocol = context.protocol
        except AttributeError:
            context = getattr(connection, "context", None)
            self.remote_ip = getattr(context, "remote_ip", None)
            self.protocol = getattr(context, "protocol", "http")
        # An empty Host field (allowed: RFC 9112 section 3.2) stays empty, as
        # in Tornado; only a request without one is taken as for 127.0.0.1.
        if not host:
            if type(headers) is _HTTPHeaders:
                # The stock headers are read through their dict: no calls.
                hosts = headers._as_list.get("Host")
                if hosts:
                    host = hosts[0] if len(hosts) == 1 else ",".join(hosts)
                else:
                    host = "127.0.0.1"
            else:
                host = headers.get("Host", "127.0.0.1")
        self.host = host
        if files:
            self._files = files
        self.connection = connection
        self.server_connection = server_connection
        self._start_time = time.time()
        self._finish_time: Optional[float] = None
        # None, the parsed Cookie fields ({name: value}, a plain dict: what
        # cookie_value reads) or, once `cookies` is read, the jar.
        self._cookies: Union[http.cookies.SimpleCookie, dict[str, str], None] = None
        self.path, _, query = uri.partition("?")
        self.query = query
        if query:
            # Only the count is checked now (it is what bounds the work);
            # decoding waits until someone reads the arguments. The limit is
            # the package attribute _forms._default_config() reads.
            config = _package_namespace["_DEFAULT_PARSE_BODY_CONFIG"]
            limit = config.urlencoded.max_arguments
            if query.count("&") >= limit:
                raise HTTPInputError(
                    f"Invalid query string: Max number of fields exceeded (the limit is {limit})"
                )

    @classmethod
    def _for_server(
        cls,
        connection: HTTPConnection,
        server_connection: object,
        start_line: StartLine,
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

    # The lazy fields: None until first read (or assigned). Class-level
    # defaults, not slots: the pure build stores them in the instance dict
    # only when they are made, so building a request costs nothing more.
    _host_name: Optional[str] = None
    _query_arguments: Optional[dict[str, list[bytes]]] = None
    _arguments: Optional[dict[str, list[bytes]]] = None
    _files: Optional[dict[str, list[HTTPFile]]] = None
    _body_arguments: Optional[dict[str, list[bytes]]] = None

    @property
    def host_name(self) -> str:
        """``host`` without its port, lowercased (split on first read; only host routing reads it)."""
        value = self._host_name
        if value is None:
            value = self._host_name = split_host_and_port(self.host.lower())[0]
        return value

    @host_name.setter
    def host_name(self, value: str) -> None:
        self._host_name = value

    @property
    def query_arguments(self) -> dict[str, list[bytes]]:
        """Arguments from the query string, ``{name: [bytes, ...]}`` (decoded on first read)."""
        value = self._query_arguments
        if value is None:
            value = self._query_arguments = self._parse_query()
        return value

    @query_arguments.setter
    def query_arguments(self, value: dict[str, list[bytes]]) -> None:
        self._query_arguments = value

    def _parse_query(self) -> dict[str, list[bytes]]:
        query = self.query
        try:
            # The latin-1 text a server's request target decodes to.
            return parse_qs_text(query, None)
        except UnicodeEncodeError:
            # A target set by hand, beyond latin-1: as its UTF-8 bytes.
            return _parse_qs_bytes(_latin1_or_utf8(query), None)

    @property
    def arguments(self) -> dict[str, list[bytes]]:
        """Query and body arguments together (merged on first read)."""
        value = self._arguments
        if value is None:
            body = self._body_arguments  # not made for a request without one
            if not body and self._query_arguments is None:
                # The query's arguments alone, not read yet: a parse of
                # their own instead of a copy (query_arguments, if read
                # later, parses again: the two never share a list).
                value = self._parse_query()
            else:
                value = {key: list(values) for key, values in self.query_arguments.items()}
                if body:
                    for key, values in body.items():
                        value.setdefault(key, []).extend(values)
            self._arguments = value
        return value

    @arguments.setter
    def arguments(self, value: dict[str, list[bytes]]) -> None:
        self._arguments = value

    # Most requests have no body: these two are made when first read.
    @property
    def files(self) -> dict[str, list[HTTPFile]]:
        """Uploaded files, ``{field name: [HTTPFile, ...]}``."""
        value = self._files
        if value is None:
            value = self._files = {}
        return value

    @files.setter
    def files(self, value: dict[str, list[HTTPFile]]) -> None:
        self._files = value

    @property
    def body_arguments(self) -> dict[str, list[bytes]]:
        """Arguments from a form body, ``{name: [bytes, ...]}``."""
        value = self._body_arguments
        if value is None:
            value = self._body_arguments = {}
        return value

    @body_arguments.setter
    def body_arguments(self, value: dict[str, list[bytes]]) -> None:
        self._body_arguments = value

    @property
    def cookies(self) -> http.cookies.SimpleCookie:
        """The request's cookies, as an `http.cookies.SimpleCookie` (parsed on first use)."""
        held = self._cookies
        if held is None or type(held) is dict:
            import http.cookies

            jar = http.cookies.SimpleCookie()
            fields = self._cookie_fields() if held is None else cast("dict[str, str]", held)
            for name, value in fields.items():
                try:
                    jar[name] = value
                except http.cookies.CookieError:
                    pass  # a name SimpleCookie refuses; browsers send such junk
            self._cookies = jar
            return jar
        return cast("http.cookies.SimpleCookie", held)

    def _cookie_fields(self) -> dict[str, str]:
        values = self.headers.get_list("Cookie")
        if not values:
            return {}
        # RFC 9113 section 8.2.3: split Cookie fields rejoin with "; ".
        return parse_cookie("; ".join(values))

    def cookie_value(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """``cookies[name].value``, or ``default`` when there is no such cookie.

        Until `cookies` is read no jar is built: the Cookie fields are parsed
        once into names and values (a `~http.cookies.Morsel` each costs more
        than the parse), and a name the jar would refuse is not found.
        """
        held = self._cookies
        if held is None:
            held = self._cookies = self._cookie_fields()
        if type(held) is dict:
            value = cast("dict[str, str]", held).get(name)
            if value is None or not _jar_takes(name):
                return default
            return value
        morsel = cast("http.cookies.SimpleCookie", held).get(name)
        return default if morsel is None else morsel.value

    def full_url(self) -> str:
        """The URL the client asked for: protocol, host and ``uri``."""
        return f"{self.protocol}://{self.host}{self.uri}"

    def request_time(self) -> float:
        """Seconds this request has taken so far, or took in all once finished."""
        if self._finish_time is None:
            return time.time() - self._start_time
        return self._finish_time - self._start_time

    def get_ssl_certificate(
        self, binary_form: object = False
    ) -> Union[None, dict[str, Any], bytes]:
        """The client's TLS certificate, if the connection is TLS and one was sent.

        The server must have asked for one (``ssl_options`` with ``cert_reqs``);
        otherwise this is ``None``. See `ssl.SSLSocket.getpeercert` for the
        two forms.

        Args:
            binary_form: return the DER bytes instead of the decoded dict
                (any value: its truth).
        """
        import ssl

        binary_form = bool(binary_form)

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
        arguments = self._arguments
        if arguments is None:
            return  # not built yet: it will include the body arguments
        for key, values in self.body_arguments.items():
            arguments.setdefault(key, []).extend(values)

    def __repr__(self) -> str:
        fields = ("protocol", "host", "method", "uri", "version", "remote_ip")
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in fields)
        return f"{type(self).__name__}({shown})"
