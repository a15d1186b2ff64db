"""The limits, as a table: for each protocol, side and limit, the attack,
the bytes it sends, the answer, and the most memory the attacked side may
spend before it refuses (every limit checked before the work it bounds).

Memory is tracemalloc's peak over the exchange, both ends together (the
attack's bytes are built before it starts): a bound far below what the
attack would cost if its work were done first (a bomb decoded, a frame
gathered). The work itself is also counted where it can be: the bytes a
QPACK decoder produced. No wall clock is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import logging
import struct
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import hpack
import pytest

from squall.testing import AsyncHTTPSTestCase, ExpectLog
from squall.web import Application, RequestHandler

from ._serve import connect, read_response, run, serving

aioquic = pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from aioquic.buffer import encode_uint_var  # noqa: E402
from aioquic.h3.connection import FrameType, encode_frame  # noqa: E402

from squall._quicstack import H3Connection as StackH3Connection  # noqa: E402
from tests.h3._client import Response, h3_client  # noqa: E402

from . import test_h3_client as hostile_h3  # noqa: E402
from .test_h3 import qpack_bomb  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
LIMIT = 64 * KiB  # max_header_size's default, every protocol's


class Echo(RequestHandler):
    def get(self) -> None:
        self.write("ok")

    def post(self) -> None:
        self.write(str(len(self.request.body)))


def app() -> Application:
    return Application([("/", Echo)])


@dataclass
class Attack:
    sent: int  # bytes the attack wrote (HTTP/1.1 request, HTTP/2 frames, HTTP/3 stream data)
    answer: str  # what came back: a status, or how the connection ended


# -- HTTP/1.1 --------------------------------------------------------------------------


async def h1_exchange(request: bytes, **options: Any) -> Attack:
    async with serving(app(), **options) as (_, port):
        reader, writer = await connect(port)
        try:
            writer.write(request)
            status, _, _ = await read_response(reader)
        finally:
            writer.close()
    return Attack(len(request), str(status))


def h1_request(fields: bytes, body: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n" + body


async def h1_header_section() -> Attack:
    return await h1_exchange(
        h1_request(b"".join(b"X-%d: %s\r\n" % (i, b"v" * 900) for i in range(100)))
    )


async def h1_field_count() -> Attack:
    return await h1_exchange(h1_request(b"".join(b"X-%d: v\r\n" % i for i in range(1000))))


async def h1_single_field() -> Attack:
    return await h1_exchange(h1_request(b"X: " + b"v" * (70 * KiB) + b"\r\n"))


async def h1_body() -> Attack:
    # A Content-Length over the limit: refused before any of the body is read.
    head = h1_request(b"Content-Length: %d\r\n" % (64 * MiB), method=b"POST")
    return await h1_exchange(head, max_body_size=MiB)


@functools.cache
def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * (16 * MiB))


async def h1_decompressed() -> Attack:
    bomb = gzip_bomb()
    fields = b"Content-Encoding: gzip\r\nContent-Length: %d\r\n" % len(bomb)
    return await h1_exchange(
        h1_request(fields, bomb, method=b"POST"), decompress_request=True, max_body_size=MiB
    )


# -- HTTP/2 ----------------------------------------------------------------------------


def h2_frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", sid)
        + payload
    )


async def h2_exchange(block: bytes, frames: bytes = b"", **options: Any) -> Attack:
    """A HEADERS frame of ``block`` (HPACK) on stream 1 (or ``frames`` as
    given), by prior knowledge; the answer: the status, or GOAWAY's code."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0, b"")
    frames = frames or h2_frame(0x1, 0x5, 1, block)  # END_STREAM|END_HEADERS
    async with serving(app(), http2=True, **options) as (_, port):
        reader, writer = await connect(port)
        try:
            writer.write(preface + frames)
            data = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
                answer = h2_answer(data)
                if answer:
                    return Attack(len(frames), answer)
        finally:
            writer.close()
    return Attack(len(frames), h2_answer(data) or "closed")


def h2_answer(data: bytes) -> str:
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        kind = data[pos + 3]
        payload = data[pos + 9 : pos + 9 + length]
        if len(payload) < length:
            break
        if kind == 0x7:
            return f"GOAWAY {int.from_bytes(payload[4:8], 'big'):#x}"
        if kind == 0x1:
            # The server's first field block: a fresh decoder reads it.
            fields = dict(hpack.Decoder().decode(payload))
            return str(fields.get(":status", "HEADERS"))
        pos += 9 + length
    return ""


H2_HEAD = b"\x82\x84\x86\x41\x01a"  # GET, /, http, :authority a (indexed, literal)


async def h2_header_section() -> Attack:
    # One 120-byte entry and 600 references to it: 92 KB of header list
    # from a 730-byte block (a block over the frame size would be refused
    # as a frame first).
    value = b"v" * 120
    field = b"\x40\x01x" + bytes([len(value)]) + value  # literal, incremental indexing
    return await h2_exchange(H2_HEAD + field + b"\xbe" * 600)


async def h2_single_field() -> Attack:
    # One 70 KB literal field, in a HEADERS frame and four CONTINUATIONs of
    # 16 KB (the largest frame the server allows).
    value = b"v" * (70 * KiB)
    length = len(value) - 127
    encoded = bytearray()
    while length >= 128:
        encoded.append(length % 128 + 128)
        length //= 128
    encoded.append(length)
    block = H2_HEAD + b"\x40\x01x\x7f" + bytes(encoded) + value
    pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
    frames = h2_frame(0x1, 0x1, 1, pieces[0])  # END_STREAM
    for i, piece in enumerate(pieces[1:], 1):
        frames += h2_frame(0x9, 0x4 if i == len(pieces) - 1 else 0, 1, piece)
    return await h2_exchange(b"", frames)


async def h2_frame_size() -> Attack:
    # A HEADERS frame of 64 KB, past the 16 KB SETTINGS_MAX_FRAME_SIZE.
    return await h2_exchange(H2_HEAD + b"\x40\x01x\x7f" + b"\x81\x80\x04" + b"v" * 65538)


async def h2_body() -> Attack:
    # A POST whose Content-Length is over max_body_size, body still to come.
    block = b"\x83\x84\x86\x41\x01a\x0f\x0d\x08" + b"%d" % (64 * MiB)  # content-length
    return await h2_exchange(b"", h2_frame(0x1, 0x4, 1, block), max_body_size=MiB)


async def h2_decompressed() -> Attack:
    # HPACK bomb: one 4 KB entry and 12,000 one-byte references to it (48 MiB).
    value = b"v" * 4000
    field = (
        b"\x40\x01x\x7f"
        + bytes([(len(value) - 127) % 128 | 128, (len(value) - 127) // 128])
        + value
    )
    return await h2_exchange(H2_HEAD + field + b"\xbe" * 12_000)


# -- HTTP/3 server -----------------------------------------------------------------------


def h3_options(**extra: Any) -> dict[str, Any]:
    return {"ssl_options": AsyncHTTPSTestCase.default_ssl_options(), "http3": True, **extra}


async def h3_raw(
    payload: Callable[[Any], tuple[bytes, bytes]], end: bool = True, **options: Any
) -> Attack:
    """Stream bytes given by ``payload(client)`` -> (encoder stream, request
    stream, ended by FIN unless ``end`` is false); the answer's status."""
    async with serving(app(), **h3_options(**options)) as (server, port):
        await asyncio.gather(*server._h3_tasks)
        async with h3_client(port) as client:
            encoder, request = payload(client)
            if encoder:
                client._quic.send_stream_data(client.h3._local_encoder_stream_id, encoder)
                client.transmit()
                await client.ping()
            sid = client._quic.get_next_available_stream_id()
            client.responses[sid] = r = Response()
            client._quic.send_stream_data(sid, request, end)
            client.transmit()
            await client.until(lambda: r.ended or r.reset is not None or client.terminated)
            if r.status:
                answer = str(r.status)
            elif r.reset is not None:
                answer = f"reset {r.reset}"
            else:
                assert client.terminated is not None
                answer = f"closed {client.terminated.error_code:#x}"
            client._closed.set()
    return Attack(len(encoder) + len(request), answer)


def h3_headers(
    fields: list[tuple[bytes, bytes]], method: bytes = b"GET"
) -> Callable[[Any], tuple[bytes, bytes]]:
    def payload(client: Any) -> tuple[bytes, bytes]:
        head = [
            (b":method", method),
            (b":scheme", b"https"),
            (b":authority", b"a"),
            (b":path", b"/"),
        ]
        encoder, block = client.h3._encoder.encode(0, head + fields)
        return encoder, encode_frame(FrameType.HEADERS, block)

    return payload


async def h3_header_section() -> Attack:
    return await h3_raw(h3_headers([(b"x-%d" % i, b"v" * 900) for i in range(100)]))


async def h3_field_count() -> Attack:
    return await h3_raw(h3_headers([(b"x-%d" % i, b"v") for i in range(1000)]))


async def h3_single_field() -> Attack:
    value = b"v" * (70 * KiB)
    literal = b"\x21x\x7f" + hostile_h3.encode_int(len(value) - 127) + value
    block = b"\x00\x00\xd1\xd7\xc1\x50\x01a" + literal
    return await h3_raw(lambda client: (b"", encode_frame(FrameType.HEADERS, block)))


async def h3_frame_size() -> Attack:
    start = encode_uint_var(FrameType.HEADERS) + encode_uint_var(1 << 30)
    return await h3_raw(lambda client: (b"", start + b"\x00" * (256 * KiB)))


async def h3_body() -> Attack:
    fields = [(b"content-length", b"%d" % (64 * MiB))]
    # The body still to come (no FIN).
    return await h3_raw(h3_headers(fields, method=b"POST"), end=False, max_body_size=MiB)


async def h3_decompressed() -> Attack:
    instructions, section = qpack_bomb(16_000)
    return await h3_raw(lambda client: (instructions, encode_frame(FrameType.HEADERS, section)))


# -- HTTP/1.1 client ------------------------------------------------------------------------


def h1_client_row(head: bytes) -> Callable[[], Awaitable[Attack]]:
    """A server that answers any request with ``head``; the client's outcome."""

    async def attack() -> Attack:
        from squall.httpclient import AsyncHTTPClient, HTTPClientError
        from squall.iostream import StreamClosedError, UnsatisfiableReadError

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(head)
                await writer.drain()
                await reader.read()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client hung up: what the row expects
            finally:
                writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = AsyncHTTPClient(force_instance=True)
        try:
            await client.fetch(f"http://127.0.0.1:{port}/", request_timeout=5)
            outcome = "kept"
        except (HTTPClientError, StreamClosedError, UnsatisfiableReadError) as exc:
            outcome = "refused" if "too large" in str(exc) else str(exc)
        finally:
            client.close()
            server.close()
            await server.wait_closed()
        return Attack(len(head), outcome)

    return attack


H1_OK = b"HTTP/1.1 200 OK\r\n"
H1_END = b"Content-Length: 0\r\n\r\n"


# -- HTTP/2 client ------------------------------------------------------------------------


def h2_client_row(fields: list[tuple[bytes, bytes]]) -> Callable[[], Awaitable[Attack]]:
    """An h2c server that answers stream 1 with ``fields`` (HPACK-encoded by
    the hpack package, once, before the measured run: a field repeated
    becomes one-byte references to its table entry); the client's outcome."""
    frames: list[bytes] = []

    def encoded() -> bytes:
        if not frames:
            block = hpack.Encoder().encode([(b":status", b"200"), *fields])
            pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
            out = h2_frame(0x4, 0, 0, b"") + h2_frame(0x4, 0x1, 0, b"")  # SETTINGS, its ACK
            for i, piece in enumerate(pieces):
                last = 0x4 if i == len(pieces) - 1 else 0  # END_HEADERS
                out += h2_frame(0x1 if i == 0 else 0x9, last | (0x1 if i == 0 else 0), 1, piece)
            frames.append(out)
        return frames[0]

    async def attack() -> Attack:
        from squall.h2client import H2AsyncHTTPClient
        from squall.httpclient import HTTPClientError

        answer_bytes = encoded()

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readexactly(24 + 9)  # the preface and a SETTINGS frame's head
                writer.write(answer_bytes)
                await writer.drain()
                await reader.read()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client hung up: what the row expects
            finally:
                writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = H2AsyncHTTPClient(force_instance=True, http2_prior_knowledge=True)
        try:
            await client.fetch(f"http://127.0.0.1:{port}/", request_timeout=5)
            outcome = "kept"
        except HTTPClientError as exc:
            outcome = "refused" if "larger than" in str(exc) else str(exc)
        finally:
            client.close()
            server.close()
            await server.wait_closed()
        return Attack(len(answer_bytes), outcome)

    return attack


# -- HTTP/3 client -------------------------------------------------------------------------


def h3_client_row(answer: Callable[[], tuple[bytes, bytes]]) -> Callable[[], Awaitable[Attack]]:
    async def attack() -> Attack:
        from squall.h3client import H3AsyncHTTPClient
        from squall.httpclient import HTTPClientError

        instructions, section = answer()
        async with hostile_h3.hostile_server((instructions, section)) as port:
            client = H3AsyncHTTPClient(force_instance=True, http3_prior_knowledge=True)
            try:
                await client.fetch(
                    f"https://127.0.0.1:{port}/", validate_cert=False, request_timeout=5
                )
                outcome = "kept"
            except HTTPClientError as exc:
                outcome = "refused" if "refused" in str(exc) else str(exc)
            finally:
                client.close()
        return Attack(len(instructions) + len(section), outcome)

    return attack


@dataclass
class Row:
    protocol: str
    side: str
    limit: str
    attack: Callable[[], Awaitable[Attack]]
    answer: str
    # The most the exchange may allocate at its peak (both ends).
    memory: int
    # What the refusing side says (a server at INFO, a client at WARNING;
    # empty: nothing, the refusal is the caller's exception).
    log: str = "(Malformed HTTP|Unsatisfiable read)"
    # The log line's level, where it is not the side's.
    level: int = 0


H2_CLIENT_LOG = "HTTP/2 error from server"
BODY_LOG = "(Malformed HTTP|Content-Length too long|body)"

ROWS = [
    Row("h1", "server", "header section (90 KB)", h1_header_section, "431", MiB),
    Row("h1", "server", "field count (1,000)", h1_field_count, "431", MiB),
    Row("h1", "server", "single field (70 KB)", h1_single_field, "431", MiB),
    # 400, not 413, as Tornado answers a Content-Length over the limit.
    Row("h1", "server", "body (Content-Length 64 MiB)", h1_body, "400", MiB),
    Row("h1", "server", "decompressed (16 MiB gzip bomb)", h1_decompressed, "400", 4 * MiB),
    Row("h2", "server", "header section (600 refs)", h2_header_section, "GOAWAY 0xb", MiB),
    Row("h2", "server", "single field (70 KB)", h2_single_field, "GOAWAY 0xb", MiB),
    Row(
        "h2",
        "server",
        "frame size (64 KB HEADERS)",
        h2_frame_size,
        "GOAWAY 0x6",
        MiB,
        "HTTP/2 error",
    ),
    Row("h2", "server", "body (Content-Length 64 MiB)", h2_body, "413", MiB, BODY_LOG),
    Row("h2", "server", "decompressed (HPACK bomb)", h2_decompressed, "GOAWAY 0xb", MiB),
    Row("h3", "server", "header section (90 KB)", h3_header_section, "431", 2 * MiB),
    Row("h3", "server", "field count (1,000)", h3_field_count, "431", 2 * MiB),
    Row("h3", "server", "single field (70 KB)", h3_single_field, "431", 2 * MiB),
    Row("h3", "server", "frame size (1 GiB announced)", h3_frame_size, "431", 4 * MiB),
    Row("h3", "server", "body (Content-Length 64 MiB)", h3_body, "413", 2 * MiB, BODY_LOG),
    Row("h3", "server", "decompressed (QPACK bomb)", h3_decompressed, "431", 2 * MiB),
    Row(
        "h1",
        "client",
        "header section (90 KB)",
        h1_client_row(
            H1_OK + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 900) for i in range(100)) + H1_END
        ),
        "refused",
        MiB,
        "",
    ),
    Row(
        "h1",
        "client",
        "field count (60,000)",
        h1_client_row(H1_OK + b"".join(b"X-%d: v\r\n" % i for i in range(60_000)) + H1_END),
        "refused",
        2 * MiB,
        "",
    ),
    Row(
        "h1",
        "client",
        "single field (70 KB)",
        h1_client_row(H1_OK + b"X: " + b"v" * (70 * KiB) + b"\r\n" + H1_END),
        "refused",
        MiB,
        "",
    ),
    Row(
        "h2",
        "client",
        "header section (90 KB)",
        h2_client_row([(b"x-%d" % i, b"v" * 900) for i in range(100)]),
        "refused",
        MiB,
        H2_CLIENT_LOG,
        logging.INFO,
    ),
    Row(
        "h2",
        "client",
        "field count (20,000)",
        h2_client_row([(b"x-%d" % i, b"v") for i in range(20_000)]),
        "refused",
        2 * MiB,
        H2_CLIENT_LOG,
        logging.INFO,
    ),
    Row(
        "h2",
        "client",
        "single field (70 KB)",
        h2_client_row([(b"x", b"v" * (70 * KiB))]),
        "refused",
        MiB,
        H2_CLIENT_LOG,
        logging.INFO,
    ),
    Row(
        "h2",
        "client",
        "decompressed (HPACK bomb)",
        h2_client_row([(b"x", b"v" * 4000)] * 12_000),
        "refused",
        MiB,
        H2_CLIENT_LOG,
        logging.INFO,
    ),
    Row(
        "h3",
        "client",
        "field count (60,000)",
        h3_client_row(hostile_h3.many_fields),
        "refused",
        2 * MiB,
    ),
    Row(
        "h3",
        "client",
        "single field (70 KB)",
        h3_client_row(hostile_h3.one_large_field),
        "refused",
        2 * MiB,
    ),
    Row(
        "h3",
        "client",
        "decompressed (QPACK bomb)",
        h3_client_row(hostile_h3.qpack_bomb),
        "refused",
        2 * MiB,
    ),
]


@pytest.mark.parametrize(
    "row", ROWS, ids=lambda r: f"{r.protocol}-{r.side}-{r.limit.split(' (')[0]}"
)
def test_limit_refused_before_the_work(row: Row, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    original = StackH3Connection._decode_headers

    def counting(self: Any, stream_id: int, frame_data: Any, **where: Any) -> Any:
        headers = original(self, stream_id, frame_data, **where)
        decoded.append(sum(len(n) + len(v) for n, v in headers))
        return headers

    monkeypatch.setattr(StackH3Connection, "_decode_headers", counting)

    async def main() -> tuple[Attack, int]:
        level = row.level or (logging.WARNING if row.side == "client" else logging.INFO)
        expected = (
            ExpectLog("squall.general", row.log, level=level)
            if row.log
            else contextlib.nullcontext()
        )
        with expected:
            # Once to warm up (imports, caches, the first server's sockets),
            # then measured.
            await row.attack()
            decoded.clear()
            tracemalloc.start()
            try:
                attack = await row.attack()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        return attack, peak

    attack, peak = run(main, "asyncio")
    print(
        f"{row.protocol} {row.side} {row.limit}: sent {attack.sent} B, {attack.answer}, peak {peak} B"
    )
    assert attack.answer == row.answer
    assert peak <= row.memory, f"peak {peak} B over {row.memory} B"
    # What QPACK decoded (HTTP/3 rows): at most 4x the limit, the budget.
    assert sum(decoded) <= 4 * LIMIT
