"""Building ASGI scopes from what the HTTP driver hands a delegate."""

from __future__ import annotations

__all__: list[str] = []

import ssl
import time
from collections.abc import Callable
from typing import Any, Final, Optional

from squall.asgi._types import address_tuple, split_target
from squall.httputil import HTTPConnection, HTTPHeaders, RequestStartLine, format_timestamp
from squall.httputil._exchange import RequestContextBase

# The Date header, formatted once per second: [the time it stops being
# current, its value, the end of a head that carries it,
# b"\r\nDate: value\r\n\r\n"]. Read in place on the response path (see
# _HTTPCycle.send), refreshed by _http_date.
_date_cache: Final[list[Any]] = [0.0, "", b""]


def _http_date() -> str:
    """The Date header's value for now."""
    now = time.time()
    cache = _date_cache
    if now >= cache[0]:
        second = int(now)
        text = format_timestamp(second)
        # Replaced whole (once a second): no reader sees a value of one
        # second with the head's end of another.
        cache[:] = [second + 1.0, text, b"\r\nDate: " + text.encode("latin-1") + b"\r\n\r\n"]
    value: str = cache[1]
    return value


# Start-line versions to the scope's "http_version" (RFC 9113 streams say "2").
_HTTP_VERSIONS: Final = {
    "HTTP/1.1": "1.1",
    "HTTP/1.0": "1.0",
    "HTTP/2.0": "2",
    "HTTP/2": "2",
    "HTTP/3": "3",
}

# Header names as scopes carry them (lowercased bytes), by HTTPHeaders' name.
_SCOPE_NAMES: Final[dict[str, bytes]] = {}


def _scope_name(name: str) -> bytes:
    low = name.lower().encode("latin-1")
    if len(_SCOPE_NAMES) < 512:
        _SCOPE_NAMES[name] = low
    return low


def _scope_fields(fields: dict[str, list[str]]) -> list[tuple[bytes, bytes]]:
    """A scope's ``headers`` from the fields by name the parser made."""
    # The parser decoded names and values as Latin-1: encoding back gives
    # the bytes that were sent. (A plain loop: measured cheaper here than
    # the map/zip forms, and than splitting the raw head again.)
    get = _SCOPE_NAMES.get
    out: list[tuple[bytes, bytes]] = []
    append = out.append
    for name, values in fields.items():
        low = get(name)
        if low is None:
            low = _scope_name(name)
        for value in values:
            append((low, value.encode("latin-1")))
    return out


def _is_websocket(start_line: RequestStartLine, headers: HTTPHeaders) -> bool:
    upgrade = headers._as_list.get("Upgrade")
    return (
        upgrade is not None
        and start_line.method == "GET"
        and any("websocket" in value.lower() for value in upgrade)
    )


# What a request's scope advertises in "extensions" (ASGI 2.4+), shared by
# the requests of every connection of a kind (applications read it; a
# connection over TLS gets its own dict, with its "tls" entry).
# http.response.early_hint: a 103 (RFC 8297) through the connection's
# write_informational, which an HTTP/1.0 client's declines.
_EXTENSIONS_HTTP1: Final[dict[str, Any]] = {
    "http.response.pathsend": {},
    "http.response.early_hint": {},
}
# RFC 9113 §8.1, RFC 9114 §4.1: trailers go in a HEADERS frame that ends
# the stream (HTTP/2 and HTTP/3).
_EXTENSIONS_HTTP2: Final[dict[str, Any]] = {
    "http.response.pathsend": {},
    "http.response.trailers": {},
    "http.response.early_hint": {},
}

# TLS protocol names (ssl.SSLSocket.version()) to the numbers the "tls"
# extension gives (RFC 8446 §4.1.2 legacy_version style).
_TLS_VERSIONS: Final = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _tls_extension(transport: Any) -> Optional[dict[str, Any]]:
    """The ``tls`` scope extension of a connection over TLS, or None."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    chain: list[str] = []
    name: Optional[str] = None
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        subject = (ssl_object.getpeercert() or {}).get("subject", ())
        # RFC 4514: the most specific RDN first, comma-separated.
        name = ",".join(
            "+".join(f"{key}={value}" for key, value in rdn) for rdn in reversed(subject)
        )
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        # The ssl module names the cipher suite but does not give its number.
        "cipher_suite": None,
    }


# What `squall run` sets on the delegate to honour proxy headers without a
# delegate in front (``ASGIServerDelegate._proxy``): called with the
# connection's context and the request's fields, it returns the client's
# address and the scheme ("http"/"https") trusted proxy headers name
# (either None when they name none), or None. Asked only of a request with
# a Forwarded, X-Forwarded-For or X-Forwarded-Proto field.
ProxyView = Callable[[Any, dict[str, list[str]]], Optional[tuple[Optional[str], Optional[str]]]]


def _behind_proxy(
    proxy: Optional[ProxyView],
    conn: HTTPConnection,
    fields: dict[str, list[str]],
    client: Any,
    scheme: Optional[str],
) -> tuple[Any, Optional[str]]:
    """(client, scheme) of a request, after what its proxy headers name."""
    if proxy is None or (
        "Forwarded" not in fields
        and "X-Forwarded-For" not in fields
        and "X-Forwarded-Proto" not in fields
    ):
        return client, scheme
    named = proxy(getattr(conn, "context", None), fields)
    if named is not None:
        address, protocol = named
        if address is not None and client is not None:
            # The peer's port stays, as it does for xheaders.
            client = (address, client[1])
        if protocol is not None:
            scheme = protocol
    return client, scheme


def _connection_addresses(
    request_conn: HTTPConnection, trailers: bool = False
) -> tuple[Any, Any, Optional[str], dict[str, Any]]:
    """(client, server, scheme, extensions) of the connection a request
    came on; ``trailers``: its protocol carries response trailers."""
    base = _EXTENSIONS_HTTP2 if trailers else _EXTENSIONS_HTTP1
    context = getattr(request_conn, "context", None)
    if context is None:
        return None, None, None, base
    # (peer port, server address, extensions): the same for every request
    # of a connection, worked out once and kept on its context.
    known = getattr(context, "derived", None)
    if known is None:
        peer = address_tuple(getattr(context, "address", None))
        server = None
        extensions = base
        transport = getattr(request_conn, "transport", None)
        if transport is not None:
            server = address_tuple(transport.get_extra_info("sockname"))
            tls = _tls_extension(transport)
            if tls is not None:
                extensions = {**base, "tls": tls}
        else:
            sock = getattr(getattr(request_conn, "stream", None), "socket", None)
            if sock is not None:
                try:
                    server = address_tuple(sock.getsockname())
                except OSError:
                    server = None
        known = (peer[1] if peer is not None else None, server, extensions)
        if isinstance(context, RequestContextBase):
            context.derived = known
    port, server, extensions = known
    # The address is read per request: X-Real-Ip (xheaders=True) replaces
    # it for one request, not the port.
    client = (context.remote_ip, port) if port is not None else None
    return client, server, getattr(context, "protocol", None), extensions


# An http scope's keys, in order: a copy of this dict, its values then
# replaced, costs less than a dict built key by key (one table copied, no
# insertion).
_HTTP_SCOPE: Final[dict[str, Any]] = {
    "type": "http",
    "asgi": None,
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "root_path": "",
    "headers": None,
    "client": None,
    "server": None,
    "state": None,
    "extensions": None,
}


def _http_scope(
    start_line: RequestStartLine,
    fields: dict[str, list[str]],
    conn: HTTPConnection,
    root: str,
    prefix_in_path: bool,
    state: dict[str, Any],
    proxy: Optional[ProxyView] = None,
) -> dict[str, Any]:
    """The ``http`` scope of a request (compiled: see squall._compiled)."""
    target = start_line.path
    raw, _, query = target.partition("?")
    if raw[:1] == "/" and raw.isascii() and "%" not in raw:
        # The usual origin-form target: nothing to decode.
        path = raw
        raw_path = raw.encode("latin-1")
        query_string = query.encode("latin-1")
    else:
        path, raw_path, query_string = split_target(target)
    if root and not prefix_in_path:
        path = root + path
        # (UTF-8, as split_target decodes the path: a root outside
        # Latin-1 is no error.)
        raw_path = root.encode("utf-8") + raw_path
    http_version = _HTTP_VERSIONS.get(start_line.version, "1.1")
    client, server, scheme, extensions = _connection_addresses(conn, http_version in ("2", "3"))
    client, scheme = _behind_proxy(proxy, conn, fields, client, scheme)
    names = _SCOPE_NAMES
    try:
        # The usual head: each name once and already seen (a name sent
        # twice fails the unpacking, a new one the lookup).
        headers = [(names[name], value.encode("latin-1")) for name, (value,) in fields.items()]
    except (KeyError, ValueError):
        headers = _scope_fields(fields)
    scope = _HTTP_SCOPE.copy()
    scope["asgi"] = {"version": "3.0", "spec_version": "2.5"}
    scope["http_version"] = http_version
    scope["method"] = start_line.method
    scope["scheme"] = scheme or "http"
    scope["path"] = path
    scope["raw_path"] = raw_path
    scope["query_string"] = query_string
    scope["root_path"] = root
    scope["headers"] = headers
    scope["client"] = client
    scope["server"] = server
    scope["state"] = state.copy()
    scope["extensions"] = extensions
    return scope


def _websocket_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """The ``websocket`` scope of an upgrade request, made of its ``http``
    ``scope``: the WebSocket's type, scheme and extensions (the caller adds
    ``subprotocols``)."""
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    tls = scope["extensions"].get("tls")
    extensions: dict[str, Any] = {"websocket.http.response": {}}
    if tls is not None:
        extensions["tls"] = tls
    scope["extensions"] = extensions
    return scope
