"""Long polls woken by one message: the chat demos, Squall against Tornado.

P clients (bare uvloop protocols, one process pinned to CPU 1) each hold a
long poll on ``/a/message/updates`` of a chat server (pinned to CPU 0);
one POST to ``/a/message/new`` wakes them all. Per wake, two figures:

* server CPU per woken waiter: the server's CPU clock (benchmarks/cpuclock.py)
  from just before the POST until it has gone quiet after the last answer,
  divided by P. Connecting and parking the polls are outside it;
* the time from sending the POST until the last client has its answer.

After each wake every client polls again from the new message's cursor
(over its kept-alive connection) and, once the server is quiet, the next
wake is measured: ``--wakes`` per server, the server's median is kept, and
the table shows the median over ``--rounds`` rounds, contenders alternated.

Servers:

* ``tornado``: benchmarks/c10k/tornado_chat/app.py (our program of the shape
  of Tornado 6.6.1's ``demos/chat``, which Tornado's sdist does not ship) on
  real Tornado, on asyncio's loop, as it ships;
* ``compat-BUILD-LOOP``: the same file, unchanged, under ``python -m
  squall.compat``;
* ``chat-BUILD-LOOP``: Squall's own chat demo, demos/chat/app.py (a
  logged-in visitor's poll, xsrf token and signed name cookie included).

BUILD is ``compiled`` (the bench venv's squall) or ``pure``
(SQUALL_NO_SPEEDUPS=1); LOOP is ``uvloop`` or ``asyncio`` (set by the
launcher, with_loop.py, before the program starts; the programs themselves
call ``asyncio.run``).

"Quiet" is 150 ms in which the server used no more than an idle one does
(`IDLE_CPU` per 25 ms reading): its CPU clock counts nanoseconds, where
/proc's ticks made the figure per waiter exact to 10 ms / P only (2 us at
5,000 waiters). The machine's load disturbs the time column, less the CPU
one.

Usage: python benchmarks/c10k/longpoll.py [--polls 5000] [--rounds 5]
       [--wakes 3] [--only tornado,compat-compiled-uvloop,...] [--json]
       [--server-args=--logging=none]
(``make bench-longpoll LONGPOLL_ARGS=...``; ``make bench-c10k`` runs it after
its own table.) ``--server-args`` are given to every server: the programs
log an access line per request by default, as they ship.

``--record`` writes benchmarks/results/longpoll.json (benchmarks/figures.py)
and regenerates the README's tables: server CPU per woken waiter of each
Squall server that ran against Tornado on the same program (the real demo's
against ``tornado-demo``, the stand-in's and Squall's own demo's against
``tornado``), the medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

import real_chat  # noqa: E402
from cpuclock import cpu_seconds  # noqa: E402
from run import free_port, pin, wait_listening  # noqa: E402

TORNADO_CHAT = HERE / "tornado_chat" / "app.py"
SQUALL_CHAT = ROOT / "demos" / "chat" / "app.py"
LAUNCHER = HERE / "with_loop.py"
XSRF = "0123456789abcdef0123456789abcdef"
SECRET = "longpoll-bench"
LINGER_RESET = struct.pack("ii", 1, 0)


def contenders() -> list[tuple[str, list[str], dict[str, str], str]]:
    """(name, command after the launcher, environment, app) for every server."""
    demo = str(real_chat.demo_dir() / "chatdemo.py")
    out: list[tuple[str, list[str], dict[str, str], str]] = [
        ("tornado-demo", ["asyncio", demo, "--debug=false"], {}, "tornado-chat"),
        ("tornado", ["asyncio", str(TORNADO_CHAT)], {}, "tornado-chat"),
    ]
    for build in ("compiled", "pure"):
        env = {"SQUALL_NO_SPEEDUPS": "1"} if build == "pure" else {}
        for loop in ("uvloop", "asyncio"):
            out.append(
                (
                    f"demo-{build}-{loop}",
                    [loop, "-m", "squall.compat", demo, "--debug=false"],
                    env,
                    "tornado-chat",
                )
            )
            out.append(
                (
                    f"compat-{build}-{loop}",
                    [loop, "-m", "squall.compat", str(TORNADO_CHAT)],
                    env,
                    "tornado-chat",
                )
            )
            out.append(
                (
                    f"chat-{build}-{loop}",
                    [
                        loop,
                        str(SQUALL_CHAT),
                        f"--cookie_secret={SECRET}",
                        "--address=127.0.0.1",
                        # Longer than a loaded machine may take to park them all.
                        "--poll_timeout=900",
                    ],
                    env,
                    "squall-chat",
                )
            )
    return out


# -- the client ------------------------------------------------------------------------


def form(path: str, body: str, cookie: str) -> bytes:
    data = body.encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n"
        f"Cookie: {cookie}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


class Poller(asyncio.Protocol):
    """One keep-alive connection; resolves ``done`` with each whole response.

    The first request goes out as soon as the connection is made (a server
    may bound the time to a first request head).
    """

    __slots__ = ("transport", "buf", "done", "first", "again")

    def __init__(self, first: bytes, done: asyncio.Future[tuple[float, bytes]]) -> None:
        self.buf = b""
        self.first = first
        self.done: Optional[asyncio.Future[tuple[float, bytes]]] = done
        # With --repoll: the next request from an answer's body, sent at once.
        self.again: Optional[Callable[[bytes], bytes]] = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.first)

    def send(self, request: bytes, done: asyncio.Future[tuple[float, bytes]]) -> None:
        self.done = done
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        i = buf.lower().find(b"content-length:", 0, end)
        length = int(buf[i + 15 : buf.find(b"\r\n", i)]) if i >= 0 else 0
        if len(buf) < end + 4 + length:
            self.buf = buf
            return
        self.buf = buf[end + 4 + length :]
        done, self.done = self.done, None
        if done is None or done.done():
            return
        if buf.startswith(b"HTTP/1.1 200"):
            body = buf[end + 4 : end + 4 + length]
            if self.again is not None:
                self.done = done.get_loop().create_future()
                self.transport.write(self.again(body))
            done.set_result((time.perf_counter(), body))
        else:
            done.set_exception(RuntimeError(f"bad response {buf[:200]!r}"))

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(RuntimeError(f"connection lost: {exc}"))


def reset(transport: Any) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        except OSError:
            pass
    transport.abort()


# What an idle server may use between two readings of quiet(), 25 ms apart:
# its CPU clock counts nanoseconds, so a timer's wake-up moves it too.
IDLE_CPU = 0.0005


async def quiet(pid: int, still: float = 0.15, limit: float = 60.0) -> float:
    """Waits until the server has been idle for ``still`` seconds; returns its CPU."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.025)
        now = cpu_seconds(pid)
        busy = now - last > IDLE_CPU
        last = now
        if busy:
            since = time.monotonic()
        elif time.monotonic() - since >= still:
            return now
    raise RuntimeError("the server never went quiet")


async def client(
    port: int, pid: int, app: str, polls: int, wakes: int, batch: int, repoll: bool
) -> Any:
    loop = asyncio.get_running_loop()
    cookie = f"_xsrf={XSRF}"
    if app == "squall-chat":
        from squall.web import create_signed_value

        cookie += "; chatuser=" + create_signed_value(SECRET, "chatuser", "bench").decode()

    def poll_request(cursor: str) -> bytes:
        body = f"_xsrf={XSRF}" + (f"&cursor={cursor}" if cursor else "")
        return form("/a/message/updates", body, cookie)

    async def connect(first: bytes, pending: list[asyncio.Future[Any]]) -> Poller:
        done: asyncio.Future[Any] = loop.create_future()
        pending.append(done)
        _, proto = await loop.create_connection(lambda: Poller(first, done), "127.0.0.1", port)
        return proto

    def poll_all(pollers: list[Poller], cursor: str) -> list[asyncio.Future[Any]]:
        request = poll_request(cursor)
        futures = []
        for p in pollers:
            f: asyncio.Future[Any] = loop.create_future()
            p.send(request, f)
            futures.append(f)
        return futures

    cursor = "0" if app == "squall-chat" else ""
    # The poster's first request is a page (Tornado's demo: its form; Squall's: the room).
    page: list[asyncio.Future[Any]] = []
    head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n"
    poster = await connect(head.encode(), page)
    await page[0]
    # Warm-up: a few polls woken, so that first-time costs are paid.
    pending: list[asyncio.Future[Any]] = []
    warm = [await connect(poll_request(cursor), pending) for _ in range(20)]
    await quiet(pid)
    cursor = await post(poster, cookie, app, "warm")
    await asyncio.gather(*pending)
    for p in warm:
        reset(p.transport)
    pollers: list[Poller] = []
    pending = []
    request = poll_request(cursor)
    for start in range(0, polls, batch):
        pollers += await asyncio.gather(
            *(connect(request, pending) for _ in range(min(batch, polls - start)))
        )
    if repoll:
        requests: dict[str, bytes] = {}

        def again(body: bytes) -> bytes:
            answer = json.loads(body)
            last = str(answer["messages"][-1]["seq" if app == "squall-chat" else "id"])
            if last not in requests:
                requests[last] = poll_request(last)
            return requests[last]

        for p in pollers:
            p.again = again
    out: dict[str, list[float]] = {"cpu_us": [], "last_s": []}
    for n in range(wakes):
        cpu0 = await quiet(pid)
        t0 = time.perf_counter()
        new_cursor = await post(poster, cookie, app, f"wake {n}")
        answers = await asyncio.wait_for(asyncio.gather(*pending), 120)
        last = max(t for t, _ in answers)
        cpu1 = await quiet(pid)
        check = answers[-1][1]
        if new_cursor.encode() not in check:
            raise RuntimeError(f"a poll was answered without the message: {check[:200]!r}")
        out["cpu_us"].append((cpu1 - cpu0) / polls * 1e6)
        out["last_s"].append(last - t0)
        cursor = new_cursor
        if repoll:
            pending = [p.done for p in pollers if p.done is not None]
        elif n + 1 < wakes:
            pending = poll_all(pollers, cursor)
    for p in pollers + [poster]:
        reset(p.transport)
    return out


async def post(poster: Poller, cookie: str, app: str, text: str) -> str:
    """Posts one message; returns the cursor that follows it."""
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    poster.send(form("/a/message/new", f"_xsrf={XSRF}&body={text.replace(' ', '+')}", cookie), done)
    _, body = await done
    answer = json.loads(body)
    if app == "tornado-chat":
        return str(answer["id"])
    return str(answer["messages"][-1]["seq"])


def client_main(argv: list[str]) -> None:
    port, pid, app, polls, wakes, batch, repoll = argv
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    out = uvloop.run(
        client(int(port), int(pid), app, int(polls), int(wakes), int(batch), repoll == "1")
    )
    json.dump(out, sys.stdout)


# -- the record ------------------------------------------------------------------------

# What each server ran, for the recorded rows' labels.
PROGRAMS = {
    "demo": "Tornado 6.6.1's demos/chat run unchanged",
    "compat": "benchmarks/c10k/tornado_chat (a stand-in of the demo's shape)",
    "chat": "Squall's demos/chat (a logged-in visitor's poll)",
}
BUILDS = {"compiled": "compiled", "pure": "pure Python"}
LOOPS = {"uvloop": "uvloop", "asyncio": "asyncio's loop"}


def base_of(name: str) -> str:
    """The Tornado server a Squall server is compared with."""
    return "tornado-demo" if name.startswith("demo") else "tornado"


def record_rows(cpu_us: dict[str, float], args: argparse.Namespace) -> list[dict[str, Any]]:
    """figures.py rows: each Squall server that ran against its Tornado server."""
    rows = []
    for name, ours in cpu_us.items():
        if name.startswith("tornado") or base_of(name) not in cpu_us:
            continue
        program, build, loop = name.split("-")
        how = f"({BUILDS[build]}, {LOOPS[loop]})"
        if program == "chat":
            what = f"{PROGRAMS[program]} {how} / the stand-in under Tornado 6.6.1"
        else:
            what = (
                f"{PROGRAMS[program]}, under `python -m squall.compat` {how} / under Tornado 6.6.1"
            )
        mode = ", each answered client polling again at once" if args.repoll else ""
        rows.append(
            {
                "label": f"server CPU per woken long poll, {args.polls:,} waiters woken by one "
                f"POST{mode}: {what} (asyncio's loop), median of {args.rounds} round(s) "
                f"of {args.wakes} wakes",
                "squall": round(ours, 2),
                "other": round(cpu_us[base_of(name)], 2),
                "unit": "us",
            }
        )
    return rows


def record(rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    """Writes benchmarks/results/longpoll.json and regenerates the README's tables."""
    import figures

    cpu_us = {
        name: statistics.median(g["cpu_us"] for g in got) for name, got in rounds.items() if got
    }
    rows = record_rows(cpu_us, args)
    if not rows:
        raise SystemExit("--record: no Squall server and its Tornado server both ran")
    path = figures.record(
        "longpoll",
        Path(__file__).resolve(),
        figures.squall_build(),
        {
            "rows": rows,
            "polls": args.polls,
            "rounds": args.rounds,
            "wakes": args.wakes,
            "repoll": args.repoll,
            "server_args": args.server_args,
            "cpu_us_per_waiter": cpu_us,
            "last_answer_s": {
                name: statistics.median(g["last_s"] for g in got)
                for name, got in rounds.items()
                if got
            },
        },
    )
    figures.main_update()
    print(f"recorded in {path}")


# -- the runner ------------------------------------------------------------------------


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measure(
    name: str, command: list[str], env: dict[str, str], app: str, args: argparse.Namespace
) -> dict[str, float]:
    port = free_port()
    server_env = dict(os.environ, **env)
    log = None if args.verbose else open(os.devnull, "wb")
    proc = subprocess.Popen(
        pin(0)
        + [sys.executable, str(LAUNCHER), *command, f"--port={port}", *args.server_args.split()],
        env=server_env,
        stdout=log,
        stderr=log,
        preexec_fn=raise_nofile,
    )
    try:
        wait_listening(port, proc, time.monotonic() + 60)
        cmd = pin(1) + [
            sys.executable,
            __file__,
            "--client",
            str(port),
            str(proc.pid),
            app,
            str(args.polls),
            str(args.wakes),
            str(args.batch),
            "1" if args.repoll else "0",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"client failed for {name}:\n{out.stderr[-3000:]}")
        got = json.loads(out.stdout)
        return {
            "cpu_us": statistics.median(got["cpu_us"]),
            "last_s": statistics.median(got["last_s"]),
            "wakes": got,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None:
            log.close()


NETNS_MARK = "SQUALL_LONGPOLL_NETNS"


def in_own_network() -> None:
    """Runs this benchmark again in a network namespace whose only interface is loopback.

    Tornado's demo listens on every address (it has no option to choose
    one), so it is run where every address is loopback. The demo is checked
    out before (the namespace has no way out to clone it).
    """
    if shutil.which("unshare") is None:
        raise SystemExit("the real demo needs unshare(1) (util-linux) for a network of its own")
    env = dict(os.environ, **{NETNS_MARK: "1"})
    script = 'ip link set lo up && exec "$0" "$@"'
    os.execvpe("unshare", ["unshare", "--net", "sh", "-c", script, sys.executable, *sys.argv], env)


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        client_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--polls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wakes", type=int, default=3, help="wakes measured per server")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--repoll",
        action="store_true",
        help="every client polls again as soon as it is answered (as the demo's chat.js "
        "does); the wake's CPU then includes the new polls parked",
    )
    parser.add_argument("--only", default="", help="comma-separated contender names")
    parser.add_argument("--json", action="store_true", help="also print every round")
    parser.add_argument("--verbose", action="store_true", help="show the servers' output")
    parser.add_argument("--server-args", default="", help="more arguments for every server")
    parser.add_argument(
        "--record",
        action="store_true",
        help="write benchmarks/results/longpoll.json and regenerate the README's tables",
    )
    args = parser.parse_args()
    raise_nofile()
    wanted = [c for c in contenders() if not args.only or c[0] in args.only.split(",")]
    if os.environ.get(NETNS_MARK) is None and any("demo" in c[0] for c in wanted):
        in_own_network()
    rounds: dict[str, list[dict[str, Any]]] = {c[0]: [] for c in wanted}
    for r in range(args.rounds):
        order = wanted[r % len(wanted) :] + wanted[: r % len(wanted)]
        for name, command, env, app in order:
            got = measure(name, command, env, app, args)
            rounds[name].append(got)
            print(
                f"round {r + 1} {name}: {got['cpu_us']:.1f} us/waiter, last {got['last_s']:.3f} s",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\nlong polls: P={args.polls} waiters woken by one POST, {args.wakes} wakes per server, "
        f"median of {args.rounds} round(s); server on CPU 0, clients on CPU 1"
    )
    bases = {
        name: statistics.median(g["cpu_us"] for g in rounds[name])
        for name in ("tornado", "tornado-demo")
        if rounds.get(name)
    }
    print(f"{'server':<26}{'CPU per waiter':>16}{'vs Tornado':>12}{'last answer':>14}")
    for name in rounds:
        if not rounds[name]:
            continue
        cpu = statistics.median(g["cpu_us"] for g in rounds[name])
        last = statistics.median(g["last_s"] for g in rounds[name])
        base = bases.get("tornado-demo" if "demo" in name else "tornado")
        ratio = f"{cpu / base:.2f}x" if base else "-"
        print(f"{name:<26}{cpu:>13.1f} us{ratio:>12}{last:>12.3f} s")
    if args.json:
        print(json.dumps(rounds))
    if args.record:
        record(rounds, args)


if __name__ == "__main__":
    main()
