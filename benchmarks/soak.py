"""Soak: `squall run` under a mixed, bounded load for N minutes; fails on steady growth.

The server (`squall run soak:make_app --http2`, one process, pinned to CPU 0)
serves a small application; this script (on CPU 1) keeps a fixed number of
clients busy with a mix of traffic for the whole run:

  churn     HTTP/1.1 keep-alive connections that make 1-20 requests (small
            answers and answers up to 64 KB), then close;
  body      a POST announcing 1 MB whose client aborts after 64 KB;
  response  a GET of a 4 MB answer whose client aborts after 64 KB;
  ws        WebSocket cycles: handshake, ten echoes, close handshake;
  h2        HTTP/2 (h2c, prior knowledge, the h2 package) connections of 20
            streams, every fourth a large answer reset with CANCEL, every
            fifth a file by ASGI http.response.pathsend (the copying path);
  h2ws      WebSockets over HTTP/2 (RFC 8441): two on one connection, ten
            echoes each, close handshakes;
  pathsend  HTTP/1.1 connections fetching a 200 KB file 1-3 times from an
            ASGI application mounted in the Application (sendfile);
  h3        (with aioquic) HTTP/3 connections of 1-10 requests, every
            fourth stream reset half-way, to a second server in the
            worker (TLS and QUIC, Retry past 100 half-open connections);
  h3_hostile  20 first Initials never answered (half-open connections,
            then Retries) and one with a forged Retry token;

and, with prometheus_client installed, the server runs with --metrics-bind
(a supervisor and one worker) and a scraper reads /metrics and /livez every
two seconds (its lines are counted: they must stay bounded).

Every --interval seconds it samples the serving process's resident set
(VmRSS; the worker's, when there is a supervisor) and its open descriptors.
After the warm-up (the first fifth of the run) it fits a least-squares line
to RSS over the requests served and reports its slope in KB per 1,000
requests (a leak of N bytes per request shows as N), with the slope's
standard error. The run fails when that slope is over --max-kb-per-1000 (5)
by more than twice its error, when the descriptors grow under load by more
than --max-fds-per-min (1) over the same window, when they do not come back
to where they started once the load has stopped and its connections are
closed, or when a client met an error. A slope that twice its error does not
tell from the limit (over it within the scatter, or under it with an error
wider than half the limit: a short run, a slow or noisy machine) is
UNDECIDED (exit status 2), not a pass. `--only h3_session,h3_hostile` (or any kinds' names) runs part of the
mix, to find which part a slope comes from.

With --memory-report DIR the server also records, each minute, what its
memory is made of (glibc's heap in use and free, pymalloc's arenas, live
objects by type; with --tracemalloc N, a tracemalloc snapshot), and the run
ends with where it went between --compare-from (minute 3) and the end,
then after a full collection and after malloc_trim(0). Growth that a
collection removes was garbage waiting for one; growth that malloc_trim
gives back was free heap kept, not live data; objects that stay are held.

Usage: python benchmarks/soak.py [--minutes 10] [--interval 5]
       [--max-kb-per-1000 5] [--memory-report DIR [--tracemalloc 1]]
       (make soak SOAK_MINUTES=10 SOAK_ARGS="--memory-report /tmp/soak")
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


# --- the server's application (imported by `squall run soak:make_app`) ----------


# The file the mounted ASGI application sends by http.response.pathsend.
BLOB_SIZE = 200_000


def make_app() -> Any:
    import tempfile

    from squall.asgi import mount
    from squall.iostream import StreamClosedError
    from squall.web import Application, RequestHandler, stream_request_body
    from squall.websocket import WebSocketHandler

    class Small(RequestHandler):
        def get(self) -> None:
            self.set_header("Cache-Control", "no-store")
            self.write({"q": self.get_argument("q", ""), "ok": True})

    class Big(RequestHandler):
        async def get(self) -> None:
            left = int(self.get_argument("n"))
            piece = b"x" * min(left, 65536)
            try:
                while left > 0:
                    self.write(piece[:left])
                    left -= len(piece)
                    await self.flush()
            except StreamClosedError:
                pass  # the client went away (a reset stream, an aborted read)

    @stream_request_body
    class Upload(RequestHandler):
        def prepare(self) -> None:
            self.received = 0

        def data_received(self, chunk: bytes) -> None:
            self.received += len(chunk)

        def post(self) -> None:
            self.write(str(self.received))

    class Echo(WebSocketHandler):
        def on_message(self, message: str | bytes) -> None:
            self.write_message(message, binary=isinstance(message, bytes))

    blob = os.path.join(tempfile.mkdtemp(prefix="squall-soak-"), "blob")
    with open(blob, "wb") as f:
        f.write(os.urandom(BLOB_SIZE))

    async def files(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": blob})

    routes: list[Any] = [
        ("/", Small),
        ("/big", Big),
        ("/upload", Upload),
        ("/ws", Echo),
        mount("/files", files),
    ]
    memory_dir = os.environ.get("SOAK_MEMORY_DIR")
    if memory_dir:
        routes.append(("/_soak/memory", memory_probe(memory_dir)))
    app = Application(routes, max_body_size=2 * 1024 * 1024)
    h3_port = os.environ.get("SOAK_H3_PORT")
    if h3_port:
        # HTTP/3 in the same process (squall run's listener is plain, so
        # that the other clients need no TLS): a second server, over TLS and
        # QUIC at that port, on the worker's loop (a factory runs on it).
        from squall.httpserver import HTTPServer

        certs = HERE.parent / "squall" / "_certs"
        h3 = HTTPServer(
            app,
            ssl_options={"certfile": str(certs / "test.crt"), "keyfile": str(certs / "test.key")},
            http3=True,
            http3_retry_threshold=int(os.environ.get("SOAK_H3_RETRY", "100")),
        )
        h3.listen(int(h3_port), "127.0.0.1")
    return app


# --- where the memory goes (--memory-report) ------------------------------------


def memory_probe(directory: str) -> Any:
    """A handler that records, in the serving process, what its memory is made of.

    ``GET /_soak/memory?label=L`` writes ``L.json`` in ``directory``: VmRSS,
    glibc's malloc totals (mallinfo2: bytes in use and free inside the
    heap), pymalloc's arenas (from ``sys._debugmallocstats``), and the count
    of gc-tracked objects by type; with tracemalloc on (PYTHONTRACEMALLOC in
    the server's environment) also ``L.tracemalloc``, a snapshot.
    ``&collect=1`` runs a full collection first (what is then gone was
    garbage in reference cycles, waiting for one), and ``&trim=1`` calls
    ``malloc_trim(0)``: RSS that this gives back was free memory the heap
    kept, not live data.
    """
    import gc
    import json
    import tracemalloc

    from squall.web import RequestHandler

    try:
        libc: Any = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        libc = None

    class Memory(RequestHandler):
        def get(self) -> None:
            label = self.get_argument("label")
            if not label.isalnum():
                self.send_error(400)
                return
            if self.get_argument("collect", ""):
                report_collected = gc.collect()
            else:
                report_collected = None
            if self.get_argument("trim", "") and libc is not None:
                libc.malloc_trim(0)
            report: dict[str, Any] = {"rss_kb": rss_kb(os.getpid())}
            if report_collected is not None:
                report["collected"] = report_collected
            if libc is not None:
                info = libc.mallinfo2()
                report["malloc"] = {name: getattr(info, name) for name, _ in info._fields_}
            report["pymalloc"] = pymalloc_stats()
            counts: Counter[str] = Counter(type(o).__qualname__ for o in gc.get_objects())
            report["gc_objects"] = dict(counts)
            report["gc_stats"] = gc.get_stats()
            if tracemalloc.is_tracing():
                tracemalloc.take_snapshot().dump(os.path.join(directory, f"{label}.tracemalloc"))
                report["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
            with open(os.path.join(directory, f"{label}.json"), "w") as f:
                json.dump(report, f)
            self.write({"ok": True})

    return Memory


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (every field a size_t)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes obtained by sbrk (the main heap)
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in mmap'd blocks
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use
            "fordblks",  # bytes free inside the heap
            "keepcost",
        )
    ]


def pymalloc_stats() -> dict[str, int]:
    """pymalloc's arena totals, parsed from ``sys._debugmallocstats()`` (which
    writes to the C stderr: it is sent to a temporary file for the call)."""
    import re
    import tempfile

    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("ascii", "replace")
    stats = {}
    for key, pattern in {
        "arenas_allocated_current": r"# arenas allocated current\s*=\s*([\d,]+)",
        "arenas_highwater": r"# arenas highwater mark\s*=\s*([\d,]+)",
        "bytes_in_allocated_blocks": r"# bytes in allocated blocks\s*=\s*([\d,]+)",
        "bytes_in_available_blocks": r"# bytes in available blocks\s*=\s*([\d,]+)",
        "bytes_in_arenas": r"Total\s*=\s*([\d,]+)",
    }.items():
        found = re.search(pattern, text)
        if found:
            stats[key] = int(found.group(1).replace(",", ""))
    return stats


# --- the load ---------------------------------------------------------------------

stats: Counter[str] = Counter()


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"transfer-encoding":
            chunked = True
    if not chunked:
        return await reader.readexactly(length)
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
        body += await reader.readexactly(size + 2)
        if not size:
            return bytes(body)


async def churn(port: int, rng: random.Random) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(rng.randint(1, 20)):
            if rng.random() < 0.8:
                target = f"/?q={rng.getrandbits(32):x}-{i}"
            else:
                target = f"/big?n={rng.randint(1, 65536)}"
            writer.write(f"GET {target} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
            await read_response(reader)
            stats["requests"] += 1
            stats["h1 requests"] += 1
    finally:
        writer.close()


async def aborted_body(port: int, rng: random.Random) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 1048576\r\n\r\n")
    writer.write(b"b" * 65536)
    await writer.drain()
    writer.transport.abort()
    stats["requests"] += 1
    stats["aborted bodies"] += 1


async def aborted_response(port: int, rng: random.Random) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /big?n=4000000 HTTP/1.1\r\nHost: soak\r\n\r\n")
    await reader.readexactly(65536)
    writer.transport.abort()
    stats["requests"] += 1
    stats["aborted responses"] += 1


async def ws_cycle(port: int, rng: random.Random) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
        for i in range(10):
            message = f"{rng.getrandbits(64):x}-{i}" * rng.randint(1, 50)
            await ws.send(message)
            if await ws.recv() != message:
                raise AssertionError("WebSocket echo differs")
            stats["ws messages"] += 1
    stats["requests"] += 1
    stats["ws cycles"] += 1


async def h2_session(port: int, rng: random.Random) -> None:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    open_streams: set[int] = set()
    to_reset: set[int] = set()
    for i in range(20):
        stream_id = conn.get_next_available_stream_id()
        big = i % 4 == 3
        path = "/big?n=1000000" if big else f"/?q=h2-{rng.getrandbits(32):x}"
        if i % 5 == 1:
            path = "/files/blob"
        conn.send_headers(
            stream_id,
            [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "soak")],
            end_stream=True,
        )
        open_streams.add(stream_id)
        if big:
            to_reset.add(stream_id)
    writer.write(conn.data_to_send())
    try:
        while open_streams:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the server closed an HTTP/2 connection")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    if event.stream_id in to_reset and event.stream_id in open_streams:
                        # The client loses interest half-way: RST_STREAM(CANCEL).
                        conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.CANCEL)
                        open_streams.discard(event.stream_id)
                        stats["h2 resets"] += 1
                        stats["requests"] += 1
                elif isinstance(event, h2.events.StreamEnded):
                    if event.stream_id in open_streams:
                        open_streams.discard(event.stream_id)
                        stats["h2 streams"] += 1
                        stats["requests"] += 1
                elif isinstance(event, h2.events.StreamReset):
                    open_streams.discard(event.stream_id)
            writer.write(conn.data_to_send())
        conn.close_connection()
        writer.write(conn.data_to_send())
        await writer.drain()
    finally:
        writer.close()


# The server's HTTP/3 (QUIC) port, when it has one (see main).
H3_PORT = 0


def h3_config() -> Any:
    import ssl

    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
    config.verify_mode = ssl.CERT_NONE
    return config


async def h3_session(port: int, rng: random.Random) -> None:
    """One HTTP/3 connection of 1-10 requests (small and up to 256 KB
    answers), every fourth large one reset half-way."""
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived

    class Client(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.done: dict[int, asyncio.Future[int]] = {}

        def quic_event_received(self, event: Any) -> None:
            for h3_event in self.h3.handle_event(event):
                sid = getattr(h3_event, "stream_id", -1)
                waiter = self.done.get(sid)
                if waiter is None or waiter.done():
                    continue
                if isinstance(h3_event, (HeadersReceived, DataReceived)):
                    if h3_event.stream_ended:
                        waiter.set_result(0)
                    elif isinstance(h3_event, DataReceived) and sid % 16 == 12:
                        self._quic.stop_stream(sid, 0x10C)  # H3_REQUEST_CANCELLED
                        self._quic.reset_stream(sid, 0x10C)
                        waiter.set_result(1)
                        self.transmit()

    async with connect(
        "127.0.0.1", H3_PORT, configuration=h3_config(), create_protocol=Client
    ) as client:
        assert isinstance(client, Client)
        for _ in range(rng.randint(1, 10)):
            sid = client._quic.get_next_available_stream_id()
            big = sid % 16 == 12
            path = "/big?n=262144" if big else f"/?q=h3-{rng.getrandbits(32):x}"
            client.done[sid] = waiter = asyncio.get_running_loop().create_future()
            client.h3.send_headers(
                sid,
                [
                    (b":method", b"GET"),
                    (b":scheme", b"https"),
                    (b":authority", b"soak"),
                    (b":path", path.encode()),
                ],
                end_stream=True,
            )
            client.transmit()
            reset = await waiter
            stats["requests"] += 1
            stats["h3 resets" if reset else "h3 requests"] += 1


async def h3_hostile(port: int, rng: random.Random) -> None:
    """What an attacker sends over QUIC: 20 first Initials from one port,
    never answered (half-open connections, or Retries past the threshold),
    and an Initial with a forged Retry token."""
    import os as _os

    from aioquic.quic.connection import QuicConnection

    datagrams = []
    for i in range(21):
        config = h3_config()
        if i == 20:
            config.token = _os.urandom(60)
        quic = QuicConnection(configuration=config)
        quic.connect(("127.0.0.1", H3_PORT), now=time.monotonic())
        datagrams.append(quic.datagrams_to_send(now=time.monotonic())[0][0])
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", H3_PORT)
    )
    try:
        for data in datagrams:
            transport.sendto(data)
    finally:
        transport.close()
    stats["requests"] += 1
    stats["h3 hostile Initials"] += len(datagrams)


async def pathsend(port: int, rng: random.Random) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(rng.randint(1, 3)):
            writer.write(b"GET /files/blob HTTP/1.1\r\nHost: soak\r\n\r\n")
            if len(await read_response(reader)) != BLOB_SIZE:
                raise AssertionError("pathsend body differs in length")
            stats["requests"] += 1
            stats["pathsend requests"] += 1
    finally:
        writer.close()


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Takes the complete (unmasked) server frames off the front of ``buf``."""
    out = []
    while len(buf) >= 2:
        n, at = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, at = int.from_bytes(buf[2:4], "big"), 4
        if len(buf) < at + n:
            break
        out.append((buf[0] & 0x0F, bytes(buf[at : at + n])))
        del buf[: at + n]
    return out


async def h2_ws_session(port: int, rng: random.Random) -> None:
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    inbox: dict[int, bytearray] = {}
    ended: set[int] = set()

    async def pump() -> list[Any]:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("the server closed an HTTP/2 connection")
        events = conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                inbox.setdefault(event.stream_id, bytearray()).extend(event.data)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended.add(event.stream_id)
        writer.write(conn.data_to_send())
        return events

    try:
        # Extended CONNECT waits for the server's SETTINGS_ENABLE_CONNECT_PROTOCOL.
        while not any(isinstance(e, h2.events.RemoteSettingsChanged) for e in await pump()):
            pass
        sids = []
        for _ in range(2):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(
                sid,
                [
                    (":method", "CONNECT"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":path", "/ws"),
                    (":authority", "soak"),
                    ("sec-websocket-version", "13"),
                ],
            )
            sids.append(sid)
        writer.write(conn.data_to_send())
        for i in range(10):
            sent = {}
            for sid in sids:
                sent[sid] = f"{rng.getrandbits(64):x}-{i}".encode() * rng.randint(1, 50)
                conn.send_data(sid, ws_frame(1, sent[sid]))
            writer.write(conn.data_to_send())
            got: dict[int, bytes] = {}
            while len(got) < len(sids):
                await pump()
                for sid in sids:
                    for opcode, payload in ws_frames(inbox.setdefault(sid, bytearray())):
                        if opcode == 1:
                            got[sid] = payload
            if got != sent:
                raise AssertionError("WebSocket over HTTP/2 echo differs")
            stats["h2ws messages"] += len(sids)
        for sid in sids:
            conn.send_data(sid, ws_frame(8, (1000).to_bytes(2, "big")))
        writer.write(conn.data_to_send())
        while not set(sids) <= ended:
            await pump()
        conn.close_connection()
        writer.write(conn.data_to_send())
        await writer.drain()
        stats["requests"] += len(sids)
        stats["h2ws cycles"] += len(sids)
    finally:
        writer.close()


async def scraper(mport: int, until: float) -> None:
    """Reads /metrics and /livez every two seconds while the load runs."""
    while time.monotonic() < until:
        for path in ("/metrics", "/livez"):
            reader, writer = await asyncio.open_connection("127.0.0.1", mport)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
                body = await asyncio.wait_for(read_response(reader), 30)
            finally:
                writer.close()
            if path == "/metrics":
                stats["metrics scrapes"] += 1
                lines = body.count(b"\n")
                stats["metrics lines (max)"] = max(stats["metrics lines (max)"], lines)
        await asyncio.sleep(2)  # a scrape interval, not a wait for an event


# What each client does next, by weight.
MIX = [
    (churn, 60),
    (aborted_body, 5),
    (aborted_response, 5),
    (ws_cycle, 10),
    (h2_session, 10),
    (h2_ws_session, 5),
    (pathsend, 5),
]
# With aioquic installed: HTTP/3 sessions and hostile Initials (see main).
H3_MIX = [(h3_session, 10), (h3_hostile, 2)]
CLIENTS = 12


async def client(port: int, seed: int, until: float) -> None:
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    while time.monotonic() < until:
        (kind,) = rng.choices(kinds, weights)
        try:
            await asyncio.wait_for(kind(port, rng), 30)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            stats[f"errors ({kind.__name__}: {type(exc).__name__})"] += 1


# --- measuring ----------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def settled_fds(pid: int, target: int = 0, limit: float = 15.0) -> int:
    """The server's descriptor count once it reaches ``target`` or stops
    moving for a second (lingering closes take up to two)."""
    deadline = time.monotonic() + limit
    last, since = open_fds(pid), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = open_fds(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif now <= target or time.monotonic() - since > 3:
            break
    return last


async def probe_memory(port: int, label: str, collect: bool = False, trim: bool = False) -> None:
    """Has the server record its memory (see `memory_probe`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        query = f"label={label}" + ("&collect=1" if collect else "") + ("&trim=1" if trim else "")
        writer.write(f"GET /_soak/memory?{query} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
        await asyncio.wait_for(read_response(reader), 60)
    finally:
        writer.close()


def print_memory_report(directory: Path, compare_from: int) -> None:
    """Where the memory went: per minute, then what grew from ``compare_from`` to the end."""
    reports = {p.stem: json.loads(p.read_text()) for p in directory.glob("*.json")}
    order = sorted((k for k in reports if k[1:].isdigit()), key=lambda k: int(k[1:]))
    order += [k for k in ("end", "after", "collected", "trimmed") if k in reports]
    print("== memory, in the serving process (KB):")
    print(
        "   sample    RSS   malloc in use   malloc free   mmap'd   pymalloc arenas"
        "   (blocks in use)   gc objects   full collections   traced"
    )
    for key in order:
        r = reports[key]
        m = r.get("malloc", {})
        pm = r["pymalloc"]
        print(
            f"   {key:>7} {r['rss_kb']:>7,} {m.get('uordblks', 0) // 1024:>14,}"
            f" {m.get('fordblks', 0) // 1024:>13,} {m.get('hblkhd', 0) // 1024:>8,}"
            f" {pm.get('bytes_in_arenas', 0) // 1024:>17,}"
            f" {pm.get('bytes_in_allocated_blocks', 0) // 1024:>17,}"
            f" {sum(r['gc_objects'].values()):>12,}"
            f" {r['gc_stats'][2]['collections'] if 'gc_stats' in r else '-':>18}"
            f" {r.get('traced_kb', '-'):>8}"
        )
    first, last = reports.get(f"m{compare_from}"), reports.get("end")
    if first is None or last is None:
        return
    grown = Counter(last["gc_objects"])
    grown.subtract(first["gc_objects"])
    print(f"== gc-tracked objects by type, minute {compare_from} to the end (largest changes):")
    for name, n in sorted(grown.items(), key=lambda kv: -abs(kv[1]))[:15]:
        if n:
            print(f"   {n:+8,} {name}")
    before, after = directory / f"m{compare_from}.tracemalloc", directory / "end.tracemalloc"
    if before.exists() and after.exists():
        import tracemalloc

        diff = tracemalloc.Snapshot.load(str(after)).compare_to(
            tracemalloc.Snapshot.load(str(before)), "lineno"
        )
        total = sum(d.size_diff for d in diff)
        print(
            f"== tracemalloc, minute {compare_from} to the end: {total / 1024:+,.0f} KB in all;"
            " largest changes by line:"
        )
        for d in sorted(diff, key=lambda d: -abs(d.size_diff))[:20]:
            frame = d.traceback[0]
            print(
                f"   {d.size_diff / 1024:+9,.1f} KB {d.count_diff:+7,} blocks"
                f"  {frame.filename}:{frame.lineno}"
            )


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope of ys over xs, and its standard error (how far
    the samples' scatter alone could move it: a slope within two or three
    of these of zero is no evidence of growth)."""
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if not var or n < 3:
        return 0.0, 0.0
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    residual = sum((y - my - b * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
    return b, (residual / (n - 2) / var) ** 0.5


def serving_pid(pid: int) -> int:
    """The process that serves: ``pid``'s one child (a worker under a
    supervisor, with --metrics-bind), else ``pid`` itself."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = [int(c) for c in f.read().split()]
    return children[0] if len(children) == 1 else pid


async def soak(pid: int, port: int, args: argparse.Namespace, mport: int | None) -> int:
    # One of each kind first: the loop's lazily made descriptors (thread
    # pool, io_uring, wake-up pipes) exist before the count that must come back.
    rng = random.Random(-1)
    for kind, _ in MIX:
        await kind(port, rng)
    supervisor = pid
    pid = serving_pid(pid)
    base_fds = await settled_fds(pid)
    stats.clear()
    start = time.monotonic()
    until = start + args.minutes * 60
    tasks = [asyncio.ensure_future(client(port, seed, until)) for seed in range(CLIENTS)]
    if mport is not None:
        tasks.append(asyncio.ensure_future(scraper(mport, until)))
    supervisor_rss = [rss_kb(supervisor)] if supervisor != pid else []
    samples: list[tuple[float, int, int, int]] = []
    next_print = start
    while time.monotonic() < until:
        await asyncio.sleep(args.interval)  # a sampling period, not a wait for an event
        sample = (time.monotonic() - start, stats["requests"], rss_kb(pid), open_fds(pid))
        samples.append(sample)
        if supervisor_rss:
            supervisor_rss.append(rss_kb(supervisor))
        if sample[0] >= next_print - start:
            next_print += 60
            if args.memory_report:
                await probe_memory(port, f"m{round(sample[0] / 60)}")
            print(
                f"  {sample[0] / 60:5.1f} min  {sample[1]:>9,} requests"
                f"  RSS {sample[2] / 1024:7.1f} MB  {sample[3]:4} fds",
                flush=True,
            )
    if args.memory_report:
        await probe_memory(port, "end")
    await asyncio.gather(*tasks)
    # Once the clients' connections are gone the descriptors must come back.
    end_fds = await settled_fds(pid, base_fds)
    if args.memory_report:
        await probe_memory(port, "after")
        await probe_memory(port, "collected", collect=True)
        await probe_memory(port, "trimmed", trim=True)
        print_memory_report(Path(args.memory_report), args.compare_from)
    if end_fds > base_fds:
        fd_dir = f"/proc/{pid}/fd"
        print(
            "   open after the load:",
            sorted(os.readlink(f"{fd_dir}/{n}") for n in os.listdir(fd_dir)),
        )
    steady = samples[len(samples) // 5 :]
    if len(steady) < 3:
        print("too few samples for a slope: run longer")
        return 2
    kb_per_1000, kb_error = (
        1000 * v for v in slope([s[1] for s in steady], [s[2] for s in steady])
    )
    # The same over the run's second half: a warm-up that settles (the
    # allocator's heap reaching its working size) flattens here, a leak not.
    late = samples[len(samples) // 2 :]
    late_kb_per_1000 = 1000 * slope([s[1] for s in late], [s[2] for s in late])[0]
    fds_per_min = 60 * slope([s[0] for s in steady], [s[3] for s in steady])[0]
    total = stats["requests"]
    print(f"== {total:,} requests in {args.minutes:g} min ({total / (args.minutes * 60):,.0f}/s)")
    for name, value in sorted(stats.items()):
        if name != "requests":
            print(f"   {name}: {value:,}")
    print(
        f"== RSS {steady[0][2] / 1024:.1f} MB after the warm-up, {samples[-1][2] / 1024:.1f} MB"
        f" at the end (max {max(s[2] for s in samples) / 1024:.1f});"
        f" slope {kb_per_1000:+.3f} ± {kb_error:.3f} KB per 1,000 requests"
        f" (limit {args.max_kb_per_1000:g}); over the second half {late_kb_per_1000:+.3f}"
    )
    if supervisor_rss:
        print(
            f"== supervisor (metrics) RSS {supervisor_rss[0] / 1024:.1f} MB at the start,"
            f" {supervisor_rss[-1] / 1024:.1f} MB at the end"
            f" (max {max(supervisor_rss) / 1024:.1f})"
        )
    print(
        f"== descriptors: {base_fds} before, {max(s[3] for s in samples)} at most under load,"
        f" slope {fds_per_min:+.2f} per minute (limit {args.max_fds_per_min:g}),"
        f" {end_fds} after the load"
    )
    failed = []
    # Growth past the limit by more than twice the slope's error fails; a
    # slope that cannot be told from the limit either way (over it within
    # the scatter, or under it with an error as wide as the limit: a short
    # run, a slow or noisy machine) decides nothing.
    undecided = False
    if kb_per_1000 - 2 * kb_error > args.max_kb_per_1000:
        failed.append("RSS grows steadily")
    elif kb_per_1000 > args.max_kb_per_1000 or 2 * kb_error > args.max_kb_per_1000:
        undecided = True
    if end_fds > base_fds + 2:
        failed.append("descriptors left open")
    if fds_per_min > args.max_fds_per_min:
        failed.append("descriptors grow under load")
    if any(name.startswith("errors") for name in stats):
        failed.append("clients met errors")
    if failed:
        print("== FAIL: " + "; ".join(failed))
        return 1
    if undecided:
        print(
            f"== UNDECIDED: the RSS slope is not told from the limit by twice its error"
            f" ({kb_per_1000:+.1f} ± {2 * kb_error:.1f} against {args.max_kb_per_1000:g}):"
            " run longer (or on a quieter machine)"
        )
        return 2
    print("== PASS")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    ap.add_argument(
        "--max-kb-per-1000",
        type=float,
        default=5.0,
        help="the most RSS may grow after the warm-up, in KB per 1,000 requests (5: a leak "
        "of 5 bytes a request fails)",
    )
    ap.add_argument(
        "--max-fds-per-min",
        type=float,
        default=1.0,
        help="the most the open descriptors may grow under load, per minute (1)",
    )
    ap.add_argument(
        "--memory-report",
        metavar="DIR",
        help="every minute, have the server record what its memory is made of (malloc and "
        "pymalloc totals, gc objects by type) in DIR, and print where it went",
    )
    ap.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="with --memory-report: run the server under tracemalloc (FRAMES deep; slow) "
        "and print the lines whose allocations grew",
    )
    ap.add_argument(
        "--compare-from",
        type=int,
        default=3,
        metavar="MINUTE",
        help="with --memory-report: the minute the end is compared with (3)",
    )
    ap.add_argument(
        "--no-http3",
        action="store_true",
        help="leave HTTP/3 and the hostile QUIC clients out of the mix (they are in it "
        "when aioquic is installed)",
    )
    ap.add_argument(
        "--only",
        metavar="KIND,...",
        help="only these kinds of client (their names in the mix: h3_session,h3_hostile, say), "
        "to find which part of the mix a slope comes from",
    )
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from run import free_port, pin, wait_listening

    port = free_port()
    env = dict(os.environ)
    global H3_PORT
    try:
        import aioquic  # noqa: F401

        if args.no_http3:
            raise ImportError("--no-http3")
        H3_PORT = free_port()
        env["SOAK_H3_PORT"] = str(H3_PORT)
        MIX.extend(H3_MIX)
    except ImportError:
        pass
    if args.only:
        wanted = set(args.only.split(","))
        MIX[:] = [(kind, weight) for kind, weight in MIX if kind.__name__ in wanted]
        missing = wanted - {kind.__name__ for kind, _ in MIX}
        if missing:
            ap.error(f"--only: not in the mix: {', '.join(sorted(missing))}")
    try:
        import prometheus_client  # noqa: F401

        mport: int | None = free_port()
    except ImportError:
        mport = None
    cmd = pin(0) + [
        sys.executable,
        "-m",
        "squall",
        "run",
        "soak:make_app",
        "--factory",
        "--app-dir",
        str(HERE),
        "--bind",
        f"127.0.0.1:{port}",
        "--http2",
        "--no-access-log",
    ]
    if mport is not None:
        cmd += ["--metrics-bind", f"127.0.0.1:{mport}"]
    if args.memory_report:
        os.makedirs(args.memory_report, exist_ok=True)
        env["SOAK_MEMORY_DIR"] = os.path.abspath(args.memory_report)
        if args.tracemalloc:
            env["PYTHONTRACEMALLOC"] = str(args.tracemalloc)
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_listening(port, proc, time.monotonic() + 30)
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        print(
            f"== soak: squall run (pid {proc.pid}) for {args.minutes:g} min, sampled every"
            f" {args.interval:g} s; {CLIENTS} clients, each picking by weight: "
            + ", ".join(f"{kind.__name__} {weight}" for kind, weight in MIX)
            + (f"; /metrics scraped every 2 s on port {mport}" if mport else ""),
            flush=True,
        )
        return asyncio.run(soak(proc.pid, port, args, mport))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
