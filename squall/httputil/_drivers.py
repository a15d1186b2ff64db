"""What the HTTP/1.1 drivers (`.HTTP1Connection` over an
`.IOStream`, the server's protocol in ``httpserver/_protocol``) and the
HTTP/2 server share around the sans-I/O core ``squall._h1``: a parser made
from a server's parameters, the switch to a lenient parser, the Host rule,
the error responses and their log line, body framing that raises
`.HTTPOutputError`, and the content-coding delegate.

It imports no driver: `.http1connection` re-exports these names for code that
imported them from there, `HTTP1ConnectionParameters` (whose home it is) included.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Optional

from squall._content_coding import ContentCodingError, Decoder, make_decoder
from squall._h1 import H1Connection, H1Limits, LocalProtocolError, ProtocolError
from squall._sizes import byte_count
from squall.httputil._delegates import HTTPMessageDelegate
from squall.httputil._headers import _ABNF, HTTPHeaders, HTTPInputError, HTTPOutputError
from squall.httputil._startline import ResponseStartLine, StartLine, responses
from squall.log import gen_log

#: Most interim (1xx) responses a client accepts before the final one.
_MAX_1XX_RESPONSES = 10
_DEFAULT_CHUNK_SIZE = 64 * 1024
_DEFAULT_MAX_HEADER_SIZE = 64 * 1024
_DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024
# Wire bytes parsed between two IOLoop iterations when a body is made of tiny chunks.
_SLICE = 2048


# Read once, when squall is imported, as squall._compiled reads it to choose
# the compiled modules: os.environ.get of an absent name raises and catches a
# KeyError inside, 8,500 instructions per connection (and per handshake).
_PARSER_CHOICE = "python" if os.environ.get("SQUALL_NO_SPEEDUPS") == "1" else "auto"


def _parser_choice() -> str:
    """``"python"`` when ``SQUALL_NO_SPEEDUPS=1`` (when squall was imported), else
    httptools if importable."""
    return _PARSER_CHOICE


class HTTP1ConnectionParameters:
    """Settings shared by the connections of one server or client.

    Args:
        no_keep_alive: close the connection after each request (server).
        chunk_size: largest body piece passed to ``data_received`` (64 KB).
        max_header_size: largest message head in bytes (64 KB).
        header_timeout: seconds to wait for a complete head (server).
        max_body_size: largest body in bytes (100 MB); for a content-coded
            body with ``decompress``, measured after decoding.
        body_timeout: seconds to wait for a complete body (server).
        decompress: decode ``Content-Encoding`` gzip bodies (br, zstd too
            when the ``brotli``/``zstd`` extras are installed).
    """

    __slots__ = (
        "no_keep_alive",
        "chunk_size",
        "max_header_size",
        "header_timeout",
        "max_body_size",
        "body_timeout",
        "decompress",
    )

    def __init__(
        self,
        no_keep_alive: bool = False,
        chunk_size: Optional[int] = None,
        max_header_size: Optional[int] = None,
        header_timeout: Optional[float] = None,
        max_body_size: Optional[int] = None,
        body_timeout: Optional[float] = None,
        decompress: bool = False,
    ) -> None:
        # The sizes as ints and the flags as bools, whatever number or truth
        # value the program gave (Tornado compares them as they are; the
        # parsers and the compiled build take these types: see squall._sizes).
        self.no_keep_alive = bool(no_keep_alive)
        self.chunk_size = byte_count("chunk_size", chunk_size) or _DEFAULT_CHUNK_SIZE
        self.max_header_size = (
            byte_count("max_header_size", max_header_size) or _DEFAULT_MAX_HEADER_SIZE
        )
        self.header_timeout = header_timeout
        self.max_body_size = byte_count("max_body_size", max_body_size)
        self.body_timeout = body_timeout
        self.decompress = bool(decompress)


def _limits(params: HTTP1ConnectionParameters) -> H1Limits:
    size = params.max_header_size
    key = (size, params.max_body_size, params.chunk_size)
    limits = _limits_made.get(key)
    if limits is None:
        limits = H1Limits(
            max_start_line=min(size, 16 * 1024),
            max_header_size=size,
            max_body_size=params.max_body_size or _DEFAULT_MAX_BODY_SIZE,
            max_data_event=params.chunk_size,
            max_informational=_MAX_1XX_RESPONSES,
        )
        if len(_limits_made) < 64:
            _limits_made[key] = limits
    return limits


# H1Limits by the parameters they come from: connections with the same
# settings share one (an idle server connection costs that much less).
_limits_made: dict[tuple[int, Optional[int], int], H1Limits] = {}


def _new_h1(
    role: str, params: HTTP1ConnectionParameters, allow_bare_lf: bool = True
) -> H1Connection:
    # Tornado accepts a bare LF as a line ending in heads; so do we (the
    # server starts strict, which is faster, and switches on the first one:
    # see _lenient_after).
    return H1Connection(
        role, limits=_limits(params), parser=_parser_choice(), allow_bare_lf=allow_bare_lf
    )


def _lenient_after(h1: H1Connection, params: HTTP1ConnectionParameters) -> Optional[H1Connection]:
    """If a strict parser failed on a head that uses bare LFs, return a
    lenient parser holding the same unparsed bytes; else None.

    Only at a message boundary (the failed head is the next thing to parse);
    the caller closes the connection when None is returned.
    """
    data = h1.detach()
    head = data[: params.max_header_size + 4]
    if head.count(b"\n") == head.count(b"\r\n"):
        return None
    lenient = _new_h1(h1.role, params, True)
    lenient.receive_data(data)
    return lenient


def _header_pairs(headers: HTTPHeaders) -> list[tuple[str, str]]:
    return [(name, value) for name, values in headers._as_list.items() for value in values]


# Host values that passed `_check_host`, for every connection of the
# process: a new connection's first request (a reconnecting client, a
# WebSocket handshake, a client without keep-alive) usually names a host
# seen before, and is then spared the grammar's regular expression (about
# 5k instructions). At most _GOOD_HOSTS_MAX values of at most
# _GOOD_HOST_MAX_LEN characters are kept; a client naming ever new hosts
# only makes the table start again.
_GOOD_HOSTS: dict[str, None] = {}
_GOOD_HOSTS_MAX = 64
_GOOD_HOST_MAX_LEN = 255


def _check_host(headers: HTTPHeaders, version: str) -> None:
    """RFC 9112 §3.2: one Host field with a valid uri-host[:port]; HTTP/1.0
    may leave it out, HTTP/1.1 (and any later 1.x) must send it."""
    hosts = headers.get_list("Host")
    if hosts:
        if len(hosts) > 1:
            raise HTTPInputError("Multiple Host headers")
        host = hosts[0]
        if type(host) is str and host in _GOOD_HOSTS:
            return
        if _ABNF.host.fullmatch(host) is None:
            raise HTTPInputError(f"Invalid Host header: {host[:100]!r}")
        if type(host) is str and len(host) <= _GOOD_HOST_MAX_LEN:
            if len(_GOOD_HOSTS) >= _GOOD_HOSTS_MAX:
                _GOOD_HOSTS.clear()
            _GOOD_HOSTS[host] = None
    elif version != "HTTP/1.0":
        raise HTTPInputError(f"Missing Host header in an {version} request")


def _error_message(exc: ProtocolError, headers: Optional[HTTPHeaders], client: bool) -> str:
    text = str(exc)
    if (
        client
        and exc.status_hint == 413
        and headers is not None
        and "Content-Length" not in headers
        and "Transfer-Encoding" not in headers
    ):
        # A body read until close has no Content-Length to be "too long".
        return "Body too long"
    return text


def _log_malformed(context: object, message: str, status_hint: int) -> None:
    """Log a peer's malformed message: one INFO line on ``squall.general``.

    A head over the size limits is worded as Tornado words it (its stream
    reports an unsatisfiable read); anything else is a malformed message.
    """
    if status_hint in (414, 431):
        gen_log.info("Unsatisfiable read from %s: %s", context, message)
    else:
        gen_log.info("Malformed HTTP message from %s: %s", context, message)


def _error_response(status_hint: int, reason: str = "", final: bool = False) -> bytes:
    """The response a server sends for a malformed request before closing.

    Tornado answers every malformed request, an oversized body included,
    with a bare 400; header and request-line limits get their own codes.
    ``final`` keeps any status (a 413 in place of a 100 Continue). A
    ``reason`` becomes a plain-text body (for a request the parser took but
    the server cannot serve, such as one with too many query arguments).
    """
    status = status_hint if final or status_hint in (414, 431, 505) else 400
    phrase = responses.get(status, "Bad Request").encode()
    if not reason:
        return b"HTTP/1.1 %d %s\r\n\r\n" % (status, phrase)
    body = b"%d %s: %s\n" % (status, phrase, reason.encode("utf-8", "replace"))
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
    )


def _response_head(
    h1: H1Connection,
    start_line: ResponseStartLine,
    headers: HTTPHeaders,
    no_keep_alive: bool,
) -> bytes:
    """Serialize a response head, turning misuse into `HTTPOutputError`."""
    pairs = _header_pairs(headers)
    if no_keep_alive and "Connection" not in headers:
        pairs.append(("Connection", "close"))
    try:
        return h1.send_response_head(start_line.code, start_line.reason, pairs)
    except LocalProtocolError as exc:
        raise HTTPOutputError(str(exc)) from None


def _body(h1: H1Connection, chunk: bytes) -> bytes:
    try:
        return h1.send_data(chunk)
    except LocalProtocolError as exc:
        raise HTTPOutputError(str(exc)) from None


def _end(h1: H1Connection) -> bytes:
    try:
        return h1.send_end()
    except LocalProtocolError as exc:
        raise HTTPOutputError(str(exc)) from None


class _GzipMessageDelegate(HTTPMessageDelegate):
    """Decodes a content-coded body (gzip; br and zstd when installed) before passing it on.

    Output pieces are at most ``chunk_size`` long and their total at most
    ``max_body_size`` (a small coded body must not expand without bound);
    the decoder never holds more than a bounded amount of output ahead.
    """

    __slots__ = ("_delegate", "_chunk_size", "_max_body_size", "_decompressor", "_total")

    def __init__(self, delegate: HTTPMessageDelegate, chunk_size: int, max_body_size: int) -> None:
        self._delegate = delegate
        self._chunk_size = chunk_size
        self._max_body_size = max_body_size
        self._decompressor: Optional[Decoder] = None
        self._total = 0

    def headers_received(
        self, start_line: StartLine, headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        coding = headers.get("Content-Encoding")
        if coding is not None:
            self._decompressor = make_decoder(coding)
            if self._decompressor is not None:
                # The application can still see how the body was sent.
                headers.add("X-Consumed-Content-Encoding", coding)
                del headers["Content-Encoding"]
        return self._delegate.headers_received(start_line, headers)

    def _step(self) -> bytes:
        decompressor = self._decompressor
        assert decompressor is not None
        try:
            out = decompressor.read(self._chunk_size)
        except ContentCodingError as exc:
            raise HTTPInputError(str(exc)) from exc
        if out:
            self._total += len(out)
            if self._total > self._max_body_size:
                raise HTTPInputError("decompressed body too large")
        return out

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        if self._decompressor is None:
            return self._delegate.data_received(chunk)
        self._decompressor.feed(chunk)
        # Synchronous unless the delegate asks us to wait.
        while out := self._step():
            ret = self._delegate.data_received(out)
            if ret is not None:
                return self._resume(ret)
        return None

    async def _resume(self, ret: Awaitable[None]) -> None:
        await ret
        while out := self._step():
            ret2 = self._delegate.data_received(out)
            if ret2 is not None:
                await ret2

    def finish(self) -> None:
        if self._decompressor is not None:
            try:
                self._decompressor.finish()
            except ContentCodingError as exc:
                raise HTTPInputError(str(exc)) from exc
        self._delegate.finish()

    def on_connection_close(self) -> None:
        self._delegate.on_connection_close()
