"""What an idle WebSocket keeps alive on the server, measured in-process.

The server (a `WebSocketHandler` that echoes, as benchmarks/servers/squall_ws.py)
runs in this process on the chosen loop; a client process opens connections
over loopback, each upgrading with a browser's request (its own key, an
offer of permessage-deflate), and then holds them idle: no message either
way. After a warm-up (``--warmup`` connections opened and closed), this
process reads, before and after ``-n`` connections are held:

* its resident set (VmRSS): what the OS charges per connection, allocator
  slack included;
* tracemalloc's traced memory, and the diff of two snapshots grouped by
  the line that allocated (``--top`` lines, bytes per connection): where
  that memory comes from (C objects that do not allocate through Python's
  allocators, libuv's handles say, are only in the RSS);
* with ``--objects``, the objects one idle connection holds: every object
  reachable from its handler through `gc.get_referents` that no other
  connection's handler reaches (the loop, the application and the module
  state are shared), by type, with `sys.getsizeof` (containers' own size,
  as tracemalloc counts them).

Tracing adds tracemalloc's own bookkeeping (a record per block) to the
RSS: read the RSS from a run with ``--no-trace``, and the traced figures
and the lines from one without.

``benchmarks/idle_rss.py --ws`` measures the same from outside (a server
process per contender); this one says where the bytes go.

Usage: python benchmarks/idle_ws_memory.py [-n 3000] [--loop uvloop|asyncio]
       [--top 25] [--objects] [--no-trace]
Run it with the lead's venv (PYTHONPATH=tree, pure) or the bench venv
(compiled); it prints which squall it imported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FunctionType as _FunctionType
from types import ModuleType as _ModuleType
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from idle_rss import hold, rss_kb, upgrades  # noqa: E402

# -- the client process --------------------------------------------------------------------------


def clients(port: int) -> None:
    """Reads commands on stdin: ``hold K`` (open K more), ``drop`` (close all); answers ``ok``."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        held: list[asyncio.BaseTransport] = []
        key = 1
        while True:
            line = (await reader.readline()).decode().split()
            if not line:
                return
            if line[0] == "hold":
                count = int(line[1])
                requests = upgrades(key + count - 1)[key - 1 :]
                key += count
                held += await hold(port, requests, 200)
            else:
                for transport in held:
                    transport.close()
                held.clear()
            sys.stdout.write("ok\n")
            sys.stdout.flush()

    asyncio.run(main())


# -- the server, in this process ------------------------------------------------------------------


class _Server:
    def __init__(self) -> None:
        from squall.web import Application
        from squall.websocket import WebSocketHandler

        server = self
        self.open = 0
        self.target = 0
        self.reached: Optional[asyncio.Future[None]] = None
        self.handlers: list[Any] = []
        self.keep = False

        class Echo(WebSocketHandler):
            def check_origin(self, origin: str) -> bool:
                return True

            def open(self, *args: Any) -> None:
                server.count(1)
                if server.keep:
                    server.handlers.append(self)

            def on_message(self, message: Any) -> None:
                self.write_message(message, binary=isinstance(message, bytes))

            def on_close(self) -> None:
                server.count(-1)

        self.app = Application([("/ws", Echo)])

    def count(self, delta: int) -> None:
        self.open += delta
        if self.open == self.target and self.reached is not None and not self.reached.done():
            self.reached.set_result(None)

    async def until(self, target: int) -> None:
        self.target = target
        if self.open != target:
            self.reached = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.reached, 120)


async def _command(child: Any, line: str) -> None:
    child.stdin.write(line.encode() + b"\n")
    await child.stdin.drain()
    answer = await asyncio.wait_for(child.stdout.readline(), 300)
    if answer != b"ok\n":
        raise RuntimeError(f"client said {answer!r}")


# A container of more than this many objects is the server's shared state
# (a table of every connection, say), not one connection's.
_HUB = 64


def _walk(root: Any, stop: set[int]) -> dict[int, Any]:
    """Objects reachable from ``root``, not through ``stop``, types, modules,
    functions or a container of more than `_HUB` objects."""
    seen: dict[int, Any] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        key = id(obj)
        if key in seen or key in stop or isinstance(obj, (type, _ModuleType, _FunctionType)):
            continue
        if isinstance(obj, (dict, set, frozenset, list, tuple)) and len(obj) > _HUB:
            continue
        seen[key] = obj
        stack.extend(gc.get_referents(obj))
    return seen


def _private(handlers: list[Any], shared: list[Any]) -> list[tuple[str, int, int]]:
    """Objects one connection holds: reachable from its handler, not from two others'.

    The walk stops at ``shared`` (the loop, the application, the server):
    everything reaches everything through them.
    """
    stop = {id(obj) for obj in shared}
    mine = _walk(handlers[0], stop)
    for other in handlers[1:3]:
        for key in _walk(other, stop):
            mine.pop(key, None)
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for obj in mine.values():
        name = type(obj).__qualname__
        sizes[name] += sys.getsizeof(obj)
        counts[name] += 1
    return [(name, size, counts[name]) for name, size in sizes.most_common()]


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    from squall.httpserver import HTTPServer
    from squall.netutil import bind_sockets

    server = _Server()
    sockets = bind_sockets(0, "127.0.0.1", backlog=4096)
    port = sockets[0].getsockname()[1]
    http = HTTPServer(server.app)
    http.add_sockets(sockets)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--clients",
        str(port),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        await _command(child, f"hold {args.warmup}")
        await server.until(args.warmup)
        await _command(child, "drop")
        await server.until(0)
        gc.collect()
        rss_before = rss_kb(os.getpid())
        if args.trace:
            tracemalloc.start(args.frames)
            first = tracemalloc.take_snapshot()
            traced_before = tracemalloc.get_traced_memory()[0]
        server.keep = args.objects
        await _command(child, f"hold {args.n}")
        await server.until(args.n)
        gc.collect()
        result: dict[str, Any] = {}
        if args.trace:
            traced_after = tracemalloc.get_traced_memory()[0]
            second = tracemalloc.take_snapshot()
            tracemalloc.stop()
            result["traced"] = (traced_after - traced_before) / args.n
            stats = second.compare_to(first, "traceback" if args.frames > 1 else "lineno")
            result["top"] = [
                (stat.size_diff / args.n, stat.count_diff / args.n, stat.traceback.format())
                for stat in stats[: args.top]
            ]
        result["rss"] = (rss_kb(os.getpid()) - rss_before) * 1024 / args.n
        if args.objects:
            shared = [asyncio.get_running_loop(), server.app, http, server, sys.modules]
            result["objects"] = _private(server.handlers, shared)
            server.handlers = []
        await _command(child, "drop")
        await server.until(0)
        return result
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        await child.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=3000, help="idle WebSockets held")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("--top", type=int, default=25, help="allocating lines shown")
    ap.add_argument("--frames", type=int, default=1, help="traceback depth of each line")
    ap.add_argument("--trace", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--objects", action="store_true", help="list one connection's objects")
    ap.add_argument("--clients", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.clients:
        clients(int(args.clients))
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 2 * args.n + 1000:
        print(f"fd limit {hard} too low for {args.n} connections", file=sys.stderr)
        return 2
    if args.loop == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    import squall
    from squall import speedups

    compiled = speedups.compiled
    print(
        f"== idle WebSockets held in-process: {args.n}, {type(loop).__module__} loop, "
        f"squall from {Path(squall.__file__).parent} ({'compiled' if compiled else 'pure'})"
    )
    result = loop.run_until_complete(serve(args))
    loop.close()
    print(f"  RSS per connection:    {result['rss'] / 1024:6.2f} KB")
    if "traced" in result:
        print(f"  traced per connection: {result['traced'] / 1024:6.2f} KB")
        print("  top allocating lines (bytes, blocks per connection):")
        for size, count, lines in result["top"]:
            where = " <- ".join(line.strip() for line in lines[::-1] if line.strip())
            print(f"    {size:8.1f} {count:5.2f}  {where[:150]}")
    if "objects" in result:
        total = sum(size for _, size, _ in result["objects"])
        print(f"  one connection's own objects: {total} bytes (sys.getsizeof)")
        for name, size, count in result["objects"]:
            print(f"    {size:6d} {count:4d}  {name}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
