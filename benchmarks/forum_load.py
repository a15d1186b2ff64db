"""Load test of the forum demo: many WebSocket readers on one topic while others post.

For each configuration (``single``: one process; ``workers``: one ``squall
run --workers 2`` whose workers share the port, with Redis between them;
``nginx``: two workers on Unix sockets behind nginx, with Redis) it starts the forum on a fresh SQLite file, connects ``--clients``
WebSocket readers to one topic, and then posts replies through the forum's
own form (HTTP POST with session cookie and XSRF token):

* latency phase: ``--rate`` posts per second for ``--posts`` posts; for every
  (post, reader) pair, the time from sending the POST to the reader receiving
  the post is recorded; p50/p99/max are reported;
* throughput phase: ``--posters`` clients post back to back, ``--posts`` in
  all; reported as posts per second, each post delivered to every reader.

Readers are bare protocols (`RawReader`: frames parsed by hand, post ids
found by a regex), so that one core holds 10,000 of them and the figures
are the server's; ``--websocket-client`` uses squall.websocket clients (a
coroutine and a JSON decode per message: at 1,000 readers that alone took
p50 from ~14 ms to ~350 ms).

The server side is pinned to CPU ``--server-cpu`` and this load generator to
``--client-cpu`` (by default 0 and 1, for a two-core machine: in the
two-worker runs both workers and Redis share CPU 0, so they show the cost of
the Redis hop rather than scaling; with cores to spare, ``--server-cpu 0,1
--client-cpu 2`` lets the two workers scale). At 10,000 readers and 10
posts/s a delivery costing 10 us is a whole core: one process is at its limit
there. Run:

    make bench-forum FORUM_READERS=10000        # single and workers, then a table
    .venv/bin/python benchmarks/forum_load.py --configs single,workers,nginx
    .venv/bin/python benchmarks/forum_load.py --only single --clients 200
    .venv/bin/python benchmarks/forum_load.py --only single --db postgresql://u@host/db
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Optional

from squall.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from squall.websocket import WebSocketClientConnection, websocket_connect

ROOT = Path(__file__).resolve().parent.parent
FORUM = ROOT / "demos" / "forum"


def load_cluster() -> Any:
    spec = importlib.util.spec_from_file_location("forum_cluster", FORUM / "cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Poster:
    """A logged-in forum user posting through the reply form."""

    def __init__(self, base: str, http: AsyncHTTPClient) -> None:
        self.base = base
        self.http = http
        self.cookies: dict[str, str] = {}

    async def fetch(self, path: str, form: Optional[dict[str, str]] = None) -> HTTPResponse:
        body = None
        if form is not None:
            body = urllib.parse.urlencode({"_xsrf": self.cookies.get("_xsrf", ""), **form})
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.http.fetch(
            HTTPRequest(
                self.base + path,
                method="GET" if form is None else "POST",
                body=body,
                headers={"Cookie": cookie} if cookie else {},
                follow_redirects=False,
                # Generous: an overloaded server makes posts wait, which the
                # latency figures must show rather than abort the run.
                connect_timeout=120,
                request_timeout=120,
            ),
            raise_error=False,
        )
        for header in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        if response.code >= 400:
            raise RuntimeError(f"{path}: HTTP {response.code} {response.reason}")
        return response

    async def sign_up(self, name: str) -> None:
        await self.fetch("/signup")
        await self.fetch("/signup", {"name": name, "password": "load test password"})

    async def reply(self, topic: int, body: str) -> int:
        response = await self.fetch(f"/t/{topic}", {"body": body})
        found = re.search(r"#p(\d+)$", response.headers.get("Location", ""))
        if not found:
            raise RuntimeError(f"reply not accepted: {response.code}")
        return int(found.group(1))


class Reader:
    """One WebSocket reader; records when each post id arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.conn: Optional[WebSocketClientConnection] = None
        self.changed = asyncio.Event()

    async def connect(self, url: str) -> None:
        self.conn = await websocket_connect(url, connect_timeout=30)
        asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.conn is not None
        while (raw := await self.conn.read_message()) is not None:
            now = time.perf_counter()
            for post in json.loads(raw)["posts"]:
                self.arrivals.setdefault(post["id"], now)
            self.changed.set()


_POST_ID = re.compile(rb'\{"id": (\d+)')


class RawReader(asyncio.Protocol):
    """A reader as a bare protocol (as benchmarks/c10k's client): it parses the
    server's frames itself and takes each post's id from the JSON with a
    regex, so that 10,000 readers fit on one core; `Reader` runs a coroutine
    per socket and decodes every message.
    """

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.changed = asyncio.Event()
        self.buf = b""
        self.transport: Any = None
        self.opened: Optional[asyncio.Future[None]] = None
        self.conn = self  # what the load closes at the end

    async def connect(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        request = (
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.transport, _ = await loop.create_connection(
            lambda: self, parts.hostname, parts.port or 80
        )
        self.transport.write(request)
        await asyncio.wait_for(self.opened, 30)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        opened = self.opened
        if opened is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.opened = None
            if not buf.startswith(b"HTTP/1.1 101"):
                opened.set_exception(RuntimeError(f"no upgrade: {buf[:80]!r}"))
                return
            opened.set_result(None)
            buf = buf[end + 4 :]
        now = time.perf_counter()
        pos = 0
        found = False
        # RFC 6455 section 5.2: server frames are unmasked.
        while len(buf) - pos >= 2:
            size = buf[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if len(buf) - pos < 4:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif size == 127:
                if len(buf) - pos < 10:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if len(buf) - pos < head + size:
                break
            if buf[pos] & 0x0F == 1:  # text: {"posts": [{"id": N, ...}, ...]}
                for match in _POST_ID.finditer(buf, pos + head, pos + head + size):
                    self.arrivals.setdefault(int(match.group(1)), now)
                    found = True
            pos += head + size
        self.buf = buf[pos:]
        if found:
            self.changed.set()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.opened is not None and not self.opened.done():
            self.opened.set_exception(RuntimeError(f"lost before the upgrade: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def wait_all(readers: list[Any], ids: list[int], timeout: float) -> int:
    """Waits until every reader has every id; returns how many (reader, id) pairs are missing."""
    deadline = time.monotonic() + timeout
    for reader in readers:
        while any(i not in reader.arrivals for i in ids):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return sum(1 for r in readers for i in ids if i not in r.arrivals)
            reader.changed.clear()
            try:
                await asyncio.wait_for(reader.changed.wait(), remaining)
            except TimeoutError:
                pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def open_sockets(pids: list[int]) -> list[int]:
    """Sockets each process holds (how the workers shared the readers)."""
    counts = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        count = 0
        for fd in fds:
            try:
                count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:
                pass
        counts.append(count)
    return counts


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run_load(
    base: str, args: argparse.Namespace, label: str, server_pids: Callable[[], list[int]]
) -> dict[str, Any]:
    """The load on one configuration; a failure says in which phase it happened."""
    phase = ["sign-up"]
    try:
        return await _run_load(base, args, label, server_pids, phase)
    except Exception as exc:
        raise RuntimeError(f"{phase[0]}: {type(exc).__name__}: {exc}") from exc


async def _run_load(
    base: str,
    args: argparse.Namespace,
    label: str,
    server_pids: Callable[[], list[int]],
    phase: list[str],
) -> dict[str, Any]:
    # Enough slots for the open-loop schedule's posts in flight at once.
    # Pooled connections are reused for 2 s at most, under `squall run`'s
    # 5 s --timeout-keep-alive: a post sent on a connection the worker was
    # closing as idle fails, and POST is not retried (RFC 9110, 9.2.2). The
    # race is wide here: while 10,000 readers take a post, one turn of this
    # loop lasts long enough that the worker's FIN is not read before the
    # connection goes back to work (two of three runs of `workers` at
    # 10,000 readers failed on it: "Connection reset by peer", "Connection
    # closed").
    http = AsyncHTTPClient(
        force_instance=True, max_clients=max(args.posters, 64) + 4, idle_timeout=2.0
    )
    owner = Poster(base, http)
    await owner.sign_up("owner")
    response = await owner.fetch("/b/performance", {"title": "load test", "body": "watch this"})
    topic = int(response.headers["Location"].rsplit("/", 1)[1])
    posters = [owner] + [Poster(base, http) for _ in range(args.posters - 1)]
    await asyncio.gather(*(p.sign_up(f"poster{n}") for n, p in enumerate(posters[1:])))

    ws_base = (
        base.replace("http", "ws", 1) + f"/t/{topic}/live?after=0"
    )  # the opening post comes first
    readers: list[Any] = [RawReader() if args.raw else Reader() for _ in range(args.clients)]
    phase[0] = "readers connecting"
    started = time.perf_counter()
    for batch in range(0, len(readers), 100):
        connected = await asyncio.gather(
            *(r.connect(ws_base) for r in readers[batch : batch + 100]), return_exceptions=True
        )
        failed = [e for e in connected if isinstance(e, BaseException)]
        if failed:
            raise RuntimeError(
                f"{len(failed)} of readers {batch}-{batch + 99} did not connect: {failed[0]}"
            )
    connect_seconds = time.perf_counter() - started
    # Asked again now: nginx forks its workers after cluster.start() returns.
    pids = server_pids()
    split = open_sockets(pids)

    phase[0] = "warm-up"
    warm = [await owner.reply(topic, f"warm-up {n}") for n in range(3)]
    missing = await wait_all(readers, warm, 30)
    if missing:
        raise RuntimeError(f"warm-up: {missing} deliveries missing")

    # Latency: an open-loop schedule at --rate posts per second.
    sent: dict[int, float] = {}

    async def post_at(n: int, poster: Poster) -> None:
        t0 = time.perf_counter()
        post_id = await poster.reply(topic, f"latency {n}")
        sent[post_id] = t0

    phase[0] = "latency"
    tasks = []
    client_cpu = time.process_time()
    begin = time.perf_counter()
    for n in range(args.posts):
        delay = begin + n / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(post_at(n, posters[n % len(posters)])))
    await asyncio.gather(*tasks)
    ids = list(sent)
    missing = await wait_all(readers, ids, 60)
    client_cpu_latency = (time.process_time() - client_cpu) / (time.perf_counter() - begin)
    latencies = [(r.arrivals[i] - sent[i]) * 1000 for r in readers for i in ids if i in r.arrivals]

    # Throughput: posters flat out; every post reaches every reader.
    phase[0] = "throughput"
    count = iter(range(args.posts))
    done: list[int] = []
    server_cpu, client_cpu = cpu_seconds(pids), time.process_time()

    async def post_loop(poster: Poster) -> None:
        for n in count:
            done.append(await poster.reply(topic, f"throughput {n}"))

    begin = time.perf_counter()
    await asyncio.gather(*(post_loop(p) for p in posters))
    posted = time.perf_counter() - begin
    missing_tp = await wait_all(readers, done, 120)
    delivered = time.perf_counter() - begin
    server_cpu = cpu_seconds(pids) - server_cpu
    client_cpu = time.process_time() - client_cpu

    for r in readers:
        if r.conn is not None:
            r.conn.close()
    http.close()
    return {
        "config": label,
        "clients": args.clients,
        "connect_s": round(connect_seconds, 2),
        "latency_rate": args.rate,
        "latency_posts": len(ids),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "missing": missing + missing_tp,
        "posters": args.posters,
        "posts_per_s": round(len(done) / posted, 1),
        "posts_per_s_delivered": round(len(done) / delivered, 1),
        "deliveries_per_s": round(len(done) * len(readers) / delivered),
        # CPU use during the throughput phase: which side was the limit.
        "server_cpu_pct": round(100 * server_cpu / delivered),
        "client_cpu_pct": round(100 * client_cpu / delivered),
        "client_cpu_pct_latency": round(100 * client_cpu_latency),
        "connections_per_process": split,
        # Server CPU per delivered message: the figure least moved by other
        # load on the machine.
        "server_cpu_us_per_delivery": round(1e6 * server_cpu / (len(done) * len(readers)), 1),
    }


async def with_single(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    db = args.db or f"sqlite:///{workdir / 'single.sqlite3'}"
    proc = await asyncio.create_subprocess_exec(
        "taskset",
        "-c",
        ",".join(map(str, sorted(args.server_cpu))),
        sys.executable,
        str(FORUM / "app.py"),
        "--port=0",
        f"--db={db}",
        f"--data_dir={workdir}",  # its cookie secret, not in the source tree
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    found = re.search(r"http://\S+?(?=/ )", line)
    if not found:
        proc.kill()
        raise RuntimeError(f"the forum printed no address: {line!r}")
    try:
        return await run_load(found.group(0), args, "single", lambda: [proc.pid])
    finally:
        proc.terminate()
        await proc.wait()


async def with_cluster(
    args: argparse.Namespace, workdir: Path, nginx: bool = True
) -> dict[str, Any]:
    cluster_module = load_cluster()
    # The posters post back to back: the forum's per-user write limit is
    # for people, not for this load (the workers inherit the environment).
    os.environ.setdefault("FORUM_POST_LIMIT", "off")
    cluster = cluster_module.Cluster(
        workdir, port=0, workers=2, echo=args.echo, nginx=nginx, nginx_workers=args.nginx_workers
    )
    # The cluster's processes inherit the server CPU; this process goes back to its own.
    os.sched_setaffinity(0, args.server_cpu)
    try:
        cluster.start()
    finally:
        os.sched_setaffinity(0, args.client_cpu)
    label = "2 workers + nginx + redis" if nginx else "2 workers + redis"
    try:
        return await run_load(cluster.url, args, label, cluster.server_pids)
    finally:
        cluster.stop()


async def with_workers(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Two workers of one ``squall run --workers 2`` sharing the port, Redis between them."""
    return await with_cluster(args, workdir, nginx=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket readers (1000)")
    parser.add_argument("--posts", type=int, default=100, help="posts per phase (100)")
    parser.add_argument("--rate", type=float, default=10.0, help="latency phase posts/s (10)")
    parser.add_argument("--posters", type=int, default=4, help="concurrent posters (4)")
    parser.add_argument(
        "--configs",
        default="single,workers",
        help="comma-separated, in order: single (one process), workers (squall run "
        "--workers 2 sharing the port, Redis), nginx (2 workers behind nginx, Redis) "
        "(default single,workers)",
    )
    parser.add_argument("--only", choices=list(RUNNERS), help="one configuration")
    parser.add_argument(
        "--nginx-workers", type=int, default=2, help="nginx's worker_processes in `nginx` (2)"
    )
    parser.add_argument("--db", help="the single process's database URL (a fresh SQLite file)")
    parser.add_argument(
        "--server-cpu",
        type=_cpus,
        default={0},
        help="CPUs of the server side, e.g. 0 or 0,2 (default 0; give two to let two "
        "workers scale on a machine with cores to spare)",
    )
    parser.add_argument("--client-cpu", type=_cpus, default={1}, help="the load generator's (1)")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    parser.add_argument(
        "--echo",
        action="store_true",
        help="copy the cluster's logs (workers, nginx, Redis) to stderr",
    )
    parser.add_argument(
        "--websocket-client",
        dest="raw",
        action="store_false",
        help="readers through squall.websocket (a coroutine each) instead of bare protocols",
    )
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.clients * 3 + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    os.sched_setaffinity(0, args.client_cpu)
    names = [args.only] if args.only else [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)} (choose from {', '.join(RUNNERS)})")
    if not args.json:
        # The servers import the same squall as this process (no PYTHONPATH
        # is set for them): say which build they run.
        from squall import speedups

        print(f"squall: {speedups.report().splitlines()[0]}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="squall-forum-load-") as tmp:
        for name in names:
            workdir = Path(tmp) / name
            workdir.mkdir()
            try:
                result = _run(RUNNERS[name](args, workdir))
            except Exception as exc:  # one configuration failing still prints the others
                result = {"config": name, "clients": args.clients, "error": str(exc)}
            results.append(result)
            print(json.dumps(result) if args.json else _line(result), flush=True)
    if not args.json:
        print(_table(results, args), flush=True)
    return 0 if all(r.get("missing", 1) == 0 for r in results) else 1


RUNNERS = {"single": with_single, "workers": with_workers, "nginx": with_cluster}


def _cpus(text: str) -> set[int]:
    try:
        cpus = {int(n) for n in text.split(",") if n.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CPU numbers such as 0 or 0,2")
    if not cpus:
        raise argparse.ArgumentTypeError("no CPU given")
    return cpus


def _run(coro: Any) -> Any:
    """Runs the load on uvloop when installed (what lets one core drive 10,000 readers)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The figures as a Markdown table, one row per configuration."""
    rows = [
        "| configuration | readers | posts/s | p50 ms | p99 ms | missing "
        "| server us/delivery | flat out posts/s | load generator CPU % (latency / flat out) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['config']} | {r['clients']} | failed: {r['error']} |")
            continue
        rows.append(
            f"| {r['config']} | {r['clients']} | {r['latency_rate']:g} | {r['p50_ms']} "
            f"| {r['p99_ms']} | {r['missing']} | {r['server_cpu_us_per_delivery']} "
            f"| {r['posts_per_s_delivered']} "
            f"| {r['client_cpu_pct_latency']} / {r['client_cpu_pct']} |"
        )
    return "\n".join(rows)


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['config']}: {r['clients']} readers: FAILED: {r['error']}"
    return (
        f"{r['config']}: {r['clients']} readers (connected in {r['connect_s']} s); post-to-delivery at {r['latency_rate']:g} posts/s: "
        f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms; "
        f"{r['posters']} posters flat out: {r['posts_per_s']} posts/s accepted, "
        f"{r['posts_per_s_delivered']} posts/s delivered to all "
        f"({r['deliveries_per_s']} messages/s); CPU server {r['server_cpu_pct']}% "
        f"({r['server_cpu_us_per_delivery']} us per delivery), "
        f"load generator {r['client_cpu_pct_latency']}% / {r['client_cpu_pct']}%; "
        f"sockets per server process {r['connections_per_process']}; missing {r['missing']}"
    )


if __name__ == "__main__":
    sys.exit(main())
