"""Fuzz targets: each takes arbitrary bytes and raises only on a bug.

A target drives one parser the way Squall's drivers do and accepts only the
errors that parser documents for bad input (a protocol error with a status
hint, an HTTPInputError, a template ParseError, ...). Anything else escaping
(IndexError, UnicodeDecodeError, an assertion, a hang caught by the fuzzer's
timeout) is a crash worth a regression test.

Used by fuzz/run.py (atheris, coverage-guided) and by the regression replay
in tests/h1/test_fuzz_regressions.py.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from collections.abc import Callable

from squall import httputil
from squall._h1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    EndOfMessage,
    H1Connection,
    H1Limits,
    ProtocolError,
)
from squall._ws import (
    Frame,
    FrameParser,
    Message,
    PerMessageDeflate,
    ProtocolFailed,
    RemoteProtocolError,
    WSConnection,
    parse_extensions,
    server_accept,
)
from squall.httputil import HTTPInputError
from squall.template import ParseError, Template

# Small limits so that the fuzzer reaches the limit checks.
_LIMITS = H1Limits(
    max_start_line=256,
    max_header_size=1024,
    max_header_count=16,
    max_body_size=2048,
    max_chunk_line=64,
    max_trailer_size=256,
    max_informational=3,
    max_data_event=128,
)


def _split(data: bytes) -> tuple[int, list[bytes]]:
    """Use the first byte as a control byte: options and a split step."""
    if not data:
        return 0, [b""]
    ctl = data[0]
    rest = data[1:]
    step = (ctl >> 3) + 1
    return ctl, [rest[i : i + step] for i in range(0, len(rest), step)] or [b""]


def _drive(conn: H1Connection, pieces: list[bytes], server: bool) -> None:
    for piece in [*pieces, b""]:
        if piece:
            conn.receive_data(piece)
        else:
            conn.receive_data(b"")
        for _ in range(10_000):
            ev = conn.next_event()
            if ev is NEED_DATA:
                break
            if ev is PAUSED:
                if server and conn.our_state == "IDLE" and conn.their_state == "DONE":
                    conn.send_response(200, "OK", [("Content-Length", "0")], b"")
                    continue
                break
            if isinstance(ev, ConnectionClosed):
                return
            if isinstance(ev, EndOfMessage) and server and conn.our_state == "IDLE":
                conn.send_response(200, "OK", [("Content-Length", "1")], b"x")
        else:
            raise AssertionError("next_event made no progress")


def h1_request(data: bytes) -> None:
    """Server role: parse a request stream, answering each request."""
    ctl, pieces = _split(data)
    conn = H1Connection(
        "server",
        parser="httptools" if ctl & 1 else "python",
        limits=_LIMITS,
        allow_bare_lf=bool(ctl & 2),
    )
    try:
        _drive(conn, pieces, True)
    except ProtocolError as exc:
        assert 400 <= exc.status_hint < 600, exc.status_hint


def h1_response(data: bytes) -> None:
    """Client role: send a request, parse the response stream."""
    ctl, pieces = _split(data)
    conn = H1Connection(
        "client",
        parser="httptools" if ctl & 1 else "python",
        limits=_LIMITS,
        allow_bare_lf=bool(ctl & 2),
    )
    method = ["GET", "HEAD", "CONNECT", "POST"][(ctl >> 2) & 3]
    conn.send_request(method, "/", [("Host", "a")], b"")
    try:
        _drive(conn, pieces, False)
    except ProtocolError as exc:
        assert 400 <= exc.status_hint < 600, exc.status_hint


def ws_frames(data: bytes) -> None:
    """WebSocket frames into messages, both roles, with and without deflate."""
    ctl, pieces = _split(data)
    client = bool(ctl & 1)
    ext = PerMessageDeflate(client=client) if ctl & 2 else None
    conn = WSConnection(client=client, extension=ext, max_message_size=4096)
    for piece in pieces:
        for ev in conn.receive_data(piece):
            if isinstance(ev, ProtocolFailed):
                assert ev.code in (1002, 1007, 1009), ev.code
            elif isinstance(ev, Message):
                assert len(ev.data) <= 4096
    # A raw frame parser too, unmasked and masked.
    parser = FrameParser(masked=bool(ctl & 4), allow_rsv1=True)
    parser.max_payload = 4096
    parser.feed(data)
    try:
        while True:
            frame = parser.next_frame()
            if frame is None:
                break
            assert isinstance(frame, Frame)
    except RemoteProtocolError:
        pass


def ws_deflate(data: bytes) -> None:
    """permessage-deflate: negotiation header parsing, then inflation of
    arbitrary bytes with a bound on the output."""
    ctl, _ = _split(data)
    header = data[1:64].decode("latin-1")
    try:
        offers = parse_extensions(header)
        server_accept(header, {})
    except Exception as exc:  # the documented failure is HandshakeError
        from squall._ws import HandshakeError

        if not isinstance(exc, HandshakeError):
            raise
        offers = []
    del offers
    ext = PerMessageDeflate(client=bool(ctl & 1), client_no_context_takeover=bool(ctl & 2))
    payload = data[64:]
    # Half the time, feed a real compressed stream with a mutated tail.
    if ctl & 4:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)[:-4]
    try:
        out = ext.decompress(payload, final=True, limit=8192)
        assert len(out) <= 8192
    except RemoteProtocolError as exc:
        assert exc.close_code in (1007, 1009), exc.close_code


def multipart(data: bytes) -> None:
    """Form bodies: multipart/form-data (with a boundary from the input) and
    urlencoded."""
    ctl, _ = _split(data)
    body = data[1:]
    args: dict[str, list[bytes]] = {}
    files: dict[str, list[httputil.HTTPFile]] = {}
    if ctl & 1:
        content_type = "application/x-www-form-urlencoded"
    else:
        boundary = body[:16].split(b"\r\n", 1)[0].decode("latin-1") or "b"
        content_type = f"multipart/form-data; boundary={boundary}"
        if ctl & 2:
            content_type = f'multipart/form-data; boundary="{boundary}"'
    try:
        httputil.parse_body_arguments(content_type, body, args, files)
    except HTTPInputError:
        pass


def cookies(data: bytes) -> None:
    """Cookie header parsing (as a str, decoded the way headers are)."""
    text = data.decode("latin-1")
    result = httputil.parse_cookie(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


def template(data: bytes) -> None:
    """Template tokenizer and parser: compile only, never run the code."""
    source = data.decode("utf-8", "replace")
    try:
        with warnings.catch_warnings():
            # compile() warns about odd escapes in the generated code, and a
            # template that does not compile has its code logged: neither
            # is a finding, and both would flood the fuzzer's output.
            warnings.simplefilter("ignore")
            logging.disable(logging.CRITICAL)
            try:
                Template(source, name="fuzz.html")
            finally:
                logging.disable(logging.NOTSET)
    except (ParseError, SyntaxError):
        pass
    except ValueError as exc:
        # compile() of a source with a NUL character (Python 3.11).
        if "null" not in str(exc):
            raise


TARGETS: dict[str, Callable[[bytes], None]] = {
    "h1_request": h1_request,
    "h1_response": h1_response,
    "ws_frames": ws_frames,
    "ws_deflate": ws_deflate,
    "multipart": multipart,
    "cookies": cookies,
    "template": template,
}
