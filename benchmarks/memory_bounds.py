"""Server memory under hostile input: how far RSS grows, and whether it comes back.

Each case starts a fresh Squall server process (pinned to CPU 0; this script
and its clients run on CPU 1), warms it up, then reads its resident set
(VmRSS in /proc/PID/status) before the attack, at its peak (VmHWM, reset
after the warm-up through /proc/PID/clear_refs) and after the attack's
connections are gone. Cases:

  heads        N connections (10,000) each send a head just under
               max_header_size and stop before its final CRLF; once every
               byte has been read by the server (its sockets' receive queues
               are empty, /proc/net/tcp) the peak is taken; then each
               connection finishes its head, reads its 200 and closes.
  body-length  a request declaring Content-Length far over max_body_size.
  body-chunked a chunked body that runs on past max_body_size (no length
               known in advance); the client writes until the server answers.
  gzip-bomb    a gzip body of 1 GB of zeros (about 1 MB on the wire) with
               decompress_request on; the expansion is what max_body_size
               must bound.
  ws-frame     one WebSocket frame announcing a payload over
               websocket_max_message_size (the client streams it until the
               server closes); the server must close with 1009.
  ws-fragments the same size in 64 KB fragments of one message.
  pipeline     one connection pipelines 300 `GET /big?n=1000000` (1 MB
               responses) and never reads; the server must stop starting
               requests while the connection's unwritten output is over the
               transport's high-water mark (bound: 64 KB + one response).

The bound printed for each case is the figure the limits name: connections x
(max_header_size + 4 KB of connection state) for heads, max_body_size for
bodies, max_message_size for WebSocket messages; growth/bound near 1 (read
buffers and allocator slack come on top) means the limit holds, a ratio
that grows with the attack's size would mean it does not.

Usage: .venv/bin/python benchmarks/memory_bounds.py [--connections 10000]
       [--cases heads,gzip-bomb] [--max-header-size 65536]
Not part of `make test`: the heads case alone moves about 700 MB through loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import free_port, pin, wait_listening  # noqa: E402

MB = 1024 * 1024
MAX_BODY = 10 * MB
MAX_MESSAGE = 1 * MB
CONNECTION_STATE = 4 * 1024


# --- the server (run as a child: memory_bounds.py --serve PORT ...) ---------


def serve(port: int, max_header_size: int, decompress: bool, header_timeout: float) -> None:
    from squall.httpserver import HTTPServer
    from squall.ioloop import IOLoop
    from squall.web import Application, RequestHandler
    from squall.websocket import WebSocketHandler

    class Hello(RequestHandler):
        def get(self) -> None:
            self.write("ok")

        def post(self) -> None:
            self.write(str(len(self.request.body)))

    class Big(RequestHandler):
        def get(self) -> None:
            self.write(b"x" * int(self.get_argument("n")))

    class Echo(WebSocketHandler):
        def on_message(self, message: str | bytes) -> None:
            self.write_message(message, binary=isinstance(message, bytes))

    app = Application(
        [("/", Hello), ("/ws", Echo), ("/big", Big)], websocket_max_message_size=MAX_MESSAGE
    )
    server = HTTPServer(
        app,
        max_header_size=max_header_size,
        max_body_size=MAX_BODY,
        decompress_request=decompress,
        idle_connection_timeout=3600,
        header_timeout=header_timeout,
    )
    server.listen(port, "127.0.0.1", backlog=4096)
    IOLoop.current().start()


# --- measuring ------------------------------------------------------------------


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def reset_peak(pid: int) -> bool:
    """Resets VmHWM to the current RSS (Linux 4.0+); False where not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def accept_queue(port: int) -> int:
    """Connections waiting in the listen queue of ``port`` (its LISTEN line's rx_queue)."""
    want = f":{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            if fields[1].endswith(want) and fields[3] == "0A":
                return int(fields[4].split(":")[1], 16)
    raise RuntimeError(f"nothing listens on {port}")


def server_rx_queued(port: int) -> tuple[int, int]:
    """(sockets, bytes) still unread in the receive queues of sockets on ``port``."""
    want = f":{port:04X}"
    sockets = queued = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "01":  # ESTABLISHED
                        sockets += 1
                        queued += int(fields[4].split(":")[1], 16)
        except FileNotFoundError:
            pass
    return sockets, queued


async def until(
    check: Callable[[], bool], what: str, timeout: float = 300.0, every: float = 0.02
) -> None:
    """Polls ``check`` each ``every`` seconds until it holds; raises after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


# --- attacks ----------------------------------------------------------------------


class Holder(asyncio.Protocol):
    """One connection of the heads case: collects what the server sends."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def heads(port: int, pid: int, count: int, max_header_size: int) -> str:
    loop = asyncio.get_running_loop()
    before_kb = [status_kb(pid, "VmRSS")]
    prefix = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: "
    # The whole head, final CRLF included, stays 64 bytes under the limit.
    pad = max_header_size - 64 - len(prefix) - 4
    head = prefix + b"p" * pad + b"\r\n"
    holders: list[Holder] = []
    t0 = time.monotonic()
    for start in range(0, count, 200):
        batch = [
            loop.create_connection(Holder, "127.0.0.1", port)
            for _ in range(min(200, count - start))
        ]
        for _, proto in await asyncio.gather(*batch):
            assert proto.transport is not None
            proto.transport.write(head)
            holders.append(proto)
        # Connect at the pace the server accepts: a full listen queue drops
        # SYNs (and, later, connections) on a busy machine.
        await until(lambda: accept_queue(port) == 0, "the server to accept a batch", every=0.02)
    await until(
        lambda: all(h.transport.get_write_buffer_size() == 0 for h in holders if h.transport),
        "the heads to leave the client",
    )
    # /proc/net/tcp lists 2 x count sockets: read it a few times a second.
    await until(
        lambda: server_rx_queued(port) == (sum(not h.closed.done() for h in holders), 0),
        "the server to read every head",
        every=0.25,
    )
    held_count = sum(not h.closed.done() for h in holders)
    held = status_kb(pid, "VmRSS")
    t_held = time.monotonic() - t0
    holders = [h for h in holders if not h.closed.done()]
    for h in holders:
        assert h.transport is not None
        h.transport.write(b"\r\n")
    await until(lambda: all(h.received.endswith(b"\r\n\r\nok") for h in holders), "200s", every=0.1)
    ok = sum(h.received.startswith(b"HTTP/1.1 200") for h in holders)
    for h in holders:
        assert h.transport is not None
        h.transport.close()
    await asyncio.gather(*(h.closed for h in holders))
    return (
        f"{ok}/{count} 200; RSS {held / 1024:.0f} MB with {held_count} heads held"
        f" ({t_held:.0f} s to send them), {(held - before_kb[0]) / held_count:.1f} KB"
        " per connection"
    )


async def read_response_status(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    return line.decode("latin-1").strip()


async def stream_until_answered(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    pieces: Callable[[], bytes | None],
) -> tuple[str, int]:
    """Writes ``pieces()`` until it returns None or the server answers or closes."""
    answer = asyncio.ensure_future(read_response_status(reader))
    sent = 0
    while not answer.done():
        piece = pieces()
        if piece is None:
            break
        writer.write(piece)
        sent += len(piece)
        if await drained_or(writer, answer):
            break
    return await answer, sent


async def drained_or(writer: asyncio.StreamWriter, other: asyncio.Future[str]) -> bool:
    """Waits for the write buffer to drain or ``other`` to finish; True if
    the connection broke (a server that stops reading closes it)."""
    drain = asyncio.ensure_future(writer.drain())
    await asyncio.wait({drain, other}, return_when=asyncio.FIRST_COMPLETED)
    if not drain.done():
        drain.cancel()
        return False
    return drain.exception() is not None


async def body_length(port: int, pid: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (100 * MAX_BODY))
    chunk = b"x" * MB
    budget = [100]

    def pieces() -> bytes | None:
        budget[0] -= 1
        return chunk if budget[0] >= 0 else None

    status, sent = await stream_until_answered(reader, writer, pieces)
    writer.close()
    return f"{status!r} after {sent / MB:.0f} MB sent"


async def body_chunked(port: int, pid: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % MB + b"x" * MB + b"\r\n"
    budget = [20 * MAX_BODY // MB]

    def pieces() -> bytes | None:
        budget[0] -= 1
        return chunk if budget[0] >= 0 else None

    status, sent = await stream_until_answered(reader, writer, pieces)
    writer.close()
    return f"{status!r} after {sent / MB:.0f} MB sent"


def gzip_of_zeros(size: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MB)
    out = [comp.compress(block) for _ in range(size // MB)]
    out.append(comp.flush())
    return b"".join(out)


BOMB_SIZE = 1024 * MB


async def gzip_bomb(port: int, pid: int) -> str:
    bomb = gzip_of_zeros(BOMB_SIZE)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        % len(bomb)
    )
    view = memoryview(bomb)
    pos = [0]

    def pieces() -> bytes | None:
        if pos[0] >= len(view):
            return None
        piece = bytes(view[pos[0] : pos[0] + 64 * 1024])
        pos[0] += len(piece)
        return piece

    status, sent = await stream_until_answered(reader, writer, pieces)
    writer.close()
    return f"{status!r}; {len(bomb) / 1024:.0f} KB of gzip for {BOMB_SIZE / MB:.0f} MB, {sent / 1024:.0f} KB sent"


def ws_frame_head(opcode: int, fin: bool, length: int) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([first, 0x80 | length])
    if length < 1 << 16:
        return bytes([first, 0x80 | 126]) + length.to_bytes(2, "big")
    return bytes([first, 0x80 | 127]) + length.to_bytes(8, "big")


async def ws_connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:80]!r}")
    return reader, writer


async def ws_close_code(reader: asyncio.StreamReader) -> str:
    """Reads server frames until a close frame; returns its code."""
    while True:
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if first & 0x0F == 0x8:
            return f"close {int.from_bytes(payload[:2], 'big')}" if payload else "close (no code)"


async def ws_stream(port: int, fragments: bool) -> str:
    reader, writer = await ws_connect(port)
    total = 64 * MB
    piece = 64 * 1024
    # A zero mask key leaves the payload as is (cheap to produce).
    zero_key = b"\0\0\0\0"
    payload = b"x" * piece
    count = total // piece
    if fragments:
        first = ws_frame_head(0x2, False, piece) + zero_key + payload
        middle = ws_frame_head(0x0, False, piece) + zero_key + payload
        last = ws_frame_head(0x0, True, piece) + zero_key + payload
        sent_pieces = [first] + [middle] * (count - 2) + [last]
    else:
        sent_pieces = [ws_frame_head(0x2, True, total) + zero_key] + [payload] * count
    closed = asyncio.ensure_future(ws_close_code(reader))
    sent = 0
    for item in sent_pieces:
        if closed.done():
            break
        writer.write(item)
        sent += len(item)
        if await drained_or(writer, closed):
            break
    try:
        code = await asyncio.wait_for(closed, 30)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        code = f"no close frame ({type(exc).__name__})"
    writer.close()
    return f"{code} after {sent / MB:.1f} MB sent"


async def ws_frame(port: int, pid: int) -> str:
    return await ws_stream(port, fragments=False)


async def ws_fragments(port: int, pid: int) -> str:
    return await ws_stream(port, fragments=True)


PIPELINED = 300
BIG_RESPONSE = 1_000_000


async def pipeline(port: int, pid: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /big?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % BIG_RESPONSE
    writer.write(request * PIPELINED)
    # The peak is reached once the server's resident set stops moving (the
    # client reads nothing, so the server either holds back or buffers all).
    last = [-1, time.monotonic()]

    def settled() -> bool:
        rss = status_kb(pid, "VmRSS")
        now = time.monotonic()
        if rss != last[0]:
            last[:] = [rss, now]
        return now - last[1] > 2.0

    await until(settled, "the server's RSS to settle", every=0.1)
    writer.transport.abort()
    return f"{PIPELINED} x {BIG_RESPONSE / MB:.2f} MB pipelined, nothing read"


# --- the run ----------------------------------------------------------------------


async def warm_up(port: int) -> None:
    """One of each kind of exchange, so lazily built state exists before 'before'."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
    )
    await reader.readuntil(b"ok")
    await reader.readuntil(b"2")
    writer.close()
    r, w = await ws_connect(port)
    w.write(ws_frame_head(0x1, True, 2) + b"\0\0\0\0hi")
    await r.readexactly(4)
    w.close()


Attack = Callable[[int, int], Awaitable[str]]


def run_case(name: str, attack: Attack, args: argparse.Namespace, bound_kb: int) -> tuple[str, ...]:
    port = free_port()
    cmd = pin(0) + [
        sys.executable,
        __file__,
        "--serve",
        str(port),
        "--max-header-size",
        str(args.max_header_size),
        "--header-timeout",
        str(args.header_timeout),
    ]
    if name == "gzip-bomb":
        cmd.append("--decompress")
    proc = subprocess.Popen(cmd)
    try:
        wait_listening(port, proc, time.monotonic() + 20)

        async def go() -> tuple[int, int, int, str]:
            await warm_up(port)
            await until(lambda: open_fds(proc.pid) <= baseline_fds[0] + 1, "warm-up closes")
            before = status_kb(proc.pid, "VmRSS")
            if not reset_peak(proc.pid):
                print("  (VmHWM cannot be reset here: peak includes start-up)")
            outcome = await attack(port, proc.pid)
            for _ in range(args.repeat - 1):
                # Again on the same server: a leak would raise "after" each time.
                await until(lambda: open_fds(proc.pid) <= baseline_fds[0] + 1, "the closes")
                outcome = await attack(port, proc.pid)
            peak = status_kb(proc.pid, "VmHWM")
            await until(lambda: open_fds(proc.pid) <= baseline_fds[0] + 1, "the server's closes")
            after = status_kb(proc.pid, "VmRSS")
            return before, peak, after, outcome

        baseline_fds = [open_fds(proc.pid)]
        before, peak, after, outcome = asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(10)
    growth = peak - before
    return (
        name,
        f"{before / 1024:.1f}",
        f"{peak / 1024:.1f}",
        f"{after / 1024:.1f}",
        f"{growth / 1024:.1f}",
        f"{bound_kb / 1024:.0f}",
        f"{growth / bound_kb:.2f}",
        outcome,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--decompress", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--max-header-size", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=1, help="run each attack this many times")
    ap.add_argument(
        "--header-timeout",
        type=float,
        default=600.0,
        help="the server's header_timeout (Squall's default, 10 s, closes held heads sooner)",
    )
    ap.add_argument(
        "--cases", default="heads,body-length,body-chunked,gzip-bomb,ws-frame,ws-fragments,pipeline"
    )
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if args.serve:
        serve(args.serve, args.max_header_size, args.decompress, args.header_timeout)
        return 0
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < args.connections + 100:
        print(f"fd limit {hard} too low for {args.connections} connections", file=sys.stderr)
        return 2
    # The client side runs on the other core.
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    cases: dict[str, tuple[Attack, int]] = {
        "heads": (
            lambda port, pid: heads(port, pid, args.connections, args.max_header_size),
            # Each connection's own state (protocol, transport) besides its head.
            args.connections * (args.max_header_size + CONNECTION_STATE) // 1024,
        ),
        "body-length": (body_length, MAX_BODY // 1024),
        "body-chunked": (body_chunked, MAX_BODY // 1024),
        "gzip-bomb": (gzip_bomb, MAX_BODY // 1024),
        "ws-frame": (ws_frame, MAX_MESSAGE // 1024),
        "ws-fragments": (ws_fragments, MAX_MESSAGE // 1024),
        "pipeline": (pipeline, (64 * 1024 + BIG_RESPONSE) // 1024),
    }
    print(
        f"== server RSS under hostile input (MB); max_header_size {args.max_header_size},"
        f" max_body_size {MAX_BODY // MB} MB, websocket_max_message_size {MAX_MESSAGE // MB} MB,"
        f" heads over {args.connections} connections, header_timeout {args.header_timeout:g} s"
    )
    rows = [("case", "before", "peak", "after", "growth", "bound", "growth/bound", "outcome")]
    for name in args.cases.split(","):
        attack, bound = cases[name]
        rows.append(run_case(name, attack, args, bound))
        print("  done:", " | ".join(rows[-1]), flush=True)
    widths = [max(len(r[i]) for r in rows) for i in range(7)]
    for row in rows:
        print(
            "  "
            + "  ".join(c.rjust(w) for c, w in zip(row[:7], widths, strict=False))
            + "  "
            + row[7]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
