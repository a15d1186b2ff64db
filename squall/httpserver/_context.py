"""Per-connection context (peer address, scheme, X- headers) and the
delegates `HTTPServer` puts between a connection and the application."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPServerRequest,
    RequestStartLine,
)
from squall.httputil._exchange import RequestContextBase
from squall.httputil._proxy import ProxyHeaders
from squall.httputil._startline import StartLine

__all__ = ["_CallableAdapter", "_HTTPRequestContext", "_ProxyAdapter"]

_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_NO_PROXIES: frozenset[str] = frozenset()
# xheaders=True: Tornado's headers from any peer; the addresses to skip in
# X-Forwarded-For are the connection's (trusted_downstream).
_XHEADERS = ProxyHeaders("xheaders")
# One model per trusted_downstream set (one per server, in practice).
_SKIPPING: dict[frozenset[str], ProxyHeaders] = {}


class _HTTPRequestContext(RequestContextBase):
    """What a request knows about its connection: ``remote_ip``, ``protocol``.

    Args:
        family: the socket's address family.
        address: the peer address (a tuple for IP, a path or "" for Unix).
        protocol: a forced scheme (HTTPServer's ``protocol``), or None.
        trusted_downstream: proxy addresses skipped in X-Forwarded-For.
        tls: whether the connection is TLS (the scheme is then https).
    """

    # remote_ip and protocol: RequestContextBase's.
    __slots__ = (
        "address",
        "address_family",
        "trusted_downstream",
        "tls",
        "_orig_remote_ip",
        "_orig_protocol",
    )

    def __init__(
        self,
        family: int,
        address: Any,
        protocol: Optional[str],
        trusted_downstream: Optional[Any] = None,
        tls: bool = False,
    ) -> None:
        self.address = address
        self.address_family = family
        self.tls = tls
        self.derived = None
        if family in _IP_FAMILIES and address is not None:
            self.remote_ip: str = address[0]
        else:
            # Unix sockets have no peer address; Tornado reports this one.
            self.remote_ip = "0.0.0.0"
        if protocol:
            self.protocol = protocol
        else:
            self.protocol = "https" if tls else "http"
        self._orig_remote_ip = self.remote_ip
        self._orig_protocol = self.protocol
        # Most servers trust no proxy: every connection shares the empty set
        # (an empty set() of its own would cost each idle connection 216 bytes).
        self.trusted_downstream: frozenset[str] = (
            frozenset(trusted_downstream) if trusted_downstream else _NO_PROXIES
        )

    def __str__(self) -> str:
        if self.address_family in _IP_FAMILIES:
            return self.remote_ip
        if isinstance(self.address, bytes):
            return self.address.decode("latin-1")
        return str(self.address)

    def apply_xheaders(self, headers: HTTPHeaders) -> None:
        """Take the client's address and scheme from a proxy's headers
        (`squall.httputil._proxy`, style ``xheaders``)."""
        model = _XHEADERS
        skip = self.trusted_downstream
        if skip:
            model = _SKIPPING.get(skip)  # type: ignore[assignment]
            if model is None:
                model = _SKIPPING[skip] = ProxyHeaders("xheaders", skip=skip)
        named = model.resolve(self, headers._as_list)
        if named is not None:
            ip, scheme = named
            if ip is not None:
                self.remote_ip = ip
            if scheme is not None:
                self.protocol = scheme

    def unapply_xheaders(self) -> None:
        """Back to the connection's own values (for the next request)."""
        self.remote_ip = self._orig_remote_ip
        self.protocol = self._orig_protocol


class _CallableAdapter(HTTPMessageDelegate):
    """Collects a request and calls a plain ``callback(request)`` with it."""

    __slots__ = ("connection", "server_conn", "callback", "request", "_chunks")

    def __init__(
        self,
        callback: Callable[[HTTPServerRequest], Any],
        server_conn: object,
        connection: HTTPConnection,
    ) -> None:
        self.connection = connection
        self.server_conn = server_conn
        self.callback = callback
        self.request: Optional[HTTPServerRequest] = None
        self._chunks: list[bytes] = []

    def headers_received(
        self, start_line: StartLine, headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        assert isinstance(start_line, RequestStartLine)
        self.request = HTTPServerRequest(
            connection=self.connection,
            server_connection=self.server_conn,
            start_line=start_line,
            headers=headers,
        )
        return None

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        self._chunks.append(chunk)
        return None

    def finish(self) -> None:
        request = self.request
        assert request is not None
        chunks = self._chunks
        if chunks:
            request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            request._parse_body()
        self.callback(request)

    def on_connection_close(self) -> None:
        self._chunks = []


class _ProxyAdapter(HTTPMessageDelegate):
    """Applies X-Real-Ip / X-Forwarded-For / X-Scheme to the context for one request."""

    __slots__ = ("delegate", "context")

    def __init__(self, delegate: HTTPMessageDelegate, context: Optional[_HTTPRequestContext]):
        self.delegate = delegate
        self.context = context

    def headers_received(
        self, start_line: StartLine, headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        if self.context is not None:
            self.context.apply_xheaders(headers)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        try:
            self.delegate.finish()
        finally:
            self._cleanup()

    def on_connection_close(self) -> None:
        try:
            self.delegate.on_connection_close()
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self.context is not None:
            self.context.unapply_xheaders()
