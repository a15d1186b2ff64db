"""``make bench-c10k``: many long-lived connections, Squall against aiohttp, Tornado and the floor.

Each round starts every contender's server (benchmarks/c10k/server.py) in
turn, pinned to CPU 0, and runs the load generator (client.py, uvloop
protocols that count bytes) pinned to CPU 1; the order rotates from round
to round. Prints one table of medians over the rounds, every contender side
by side, and the raw rounds as JSON with ``--json``.

Contenders: squall (the speedups build on uvloop), squall-pure
(SQUALL_NO_SPEEDUPS=1: pure Python on asyncio's loop), aiohttp on uvloop,
Tornado (on asyncio's loop, as it ships) and the floor (a bare uvloop
Protocol writing one pre-built frame to every transport). Broadcast figures
are given for a loop over the subscribers (what a new user writes) and, for
Squall, for ``squall.websocket.broadcast``.

CPU figures are the server process's CPU clock (benchmarks/cpuclock.py:
nanoseconds, not /proc's 10 ms ticks), which a busy machine disturbs little;
times are wall clock and are not. The server
is told ``--backlog`` (default 2048) so that the storm measures accepting,
not a short default queue; ``--backlog 0`` keeps each server's own default.

The handshake is measured alone (N subscribers, ``--batch`` at a time) and in
a crowd (``--crowd`` C more connecting at once, then C more while the server
broadcasts to every subscriber each time ``--broadcast-per`` more have opened,
the same number of broadcasts for every server).

Usage: python benchmarks/c10k/run.py [--subscribers 15000] [--polls 10000]
       [--storm 2000] [--rounds 5] [--messages 40] [--only squall,floor] [--backlog N]
       [--crowd 5000] [--broadcast-per 200] [--record]

``--record`` writes this Python's benchmarks/results/c10k-py3.X.json
(benchmarks/figures.py; ``make bench-c10k PY=python3.13`` records 3.13's
beside 3.11's) and regenerates the README's tables: for Squall and each
other contender that ran, server CPU per handshake (alone, in a crowd, in a
crowd while broadcasting) and per delivered message, the medians over the
rounds, and ``squall.websocket.broadcast``'s CPU per delivered message
against each other contender's loop (the floor has no other way to fan
out); with the load average at the start and the end of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from figures import loadavg  # noqa: E402
from run import free_port, pin, wait_listening  # noqa: E402

# name, server kind, environment, broadcast styles
CONTENDERS: list[tuple[str, str, dict[str, str], str]] = [
    ("squall", "squall", {}, "loop,helper"),
    ("squall-pure", "squall", {"SQUALL_NO_SPEEDUPS": "1"}, "loop,helper"),
    ("aiohttp-uvloop", "aiohttp", {}, "loop"),
    ("tornado", "tornado", {}, "loop"),
    ("floor", "floor", {}, "loop"),
]

ROWS: list[tuple[str, str, str]] = [
    ("connect_s", "time to connect N subscribers, {batch} at a time", "{:.2f} s"),
    ("handshake_cpu_us", "server CPU per handshake", "{:.0f} us"),
    ("handshake_crowd_cpu_us", "  ... C connecting at once", "{:.0f} us"),
    ("handshake_crowd_bcast_cpu_us", "  ... C at once while broadcasting", "{:.0f} us"),
    ("handshake_crowd_bcast_net_cpu_us", "    less the broadcasts (estimated)", "{:.0f} us"),
    ("crowd_bcast_publishes", "    broadcasts meanwhile", "{:.0f}"),
    ("crowd_bcast_s", "    time for the crowd (broadcasting)", "{:.2f} s"),
    ("rss_per_ws_kb", "server RSS per idle WebSocket", "{:.1f} KB"),
    ("deliver_loop_cpu_us", "server CPU per delivered 100-byte message (loop)", "{:.2f} us"),
    ("deliver_helper_cpu_us", "  ... with squall.websocket.broadcast", "{:.2f} us"),
    ("bcast_loop_p99_ms", "broadcast p99 to N subscribers (loop)", "{:.0f} ms"),
    ("bcast_helper_p99_ms", "  ... with squall.websocket.broadcast", "{:.0f} ms"),
    ("bcast_loop_last_ms", "broadcast: last subscriber has it (loop)", "{:.0f} ms"),
    ("bcast_helper_last_ms", "  ... with squall.websocket.broadcast", "{:.0f} ms"),
    ("polls_woken_s", "P long polls woken by one message: last has it", "{:.3f} s"),
    ("storm_s", "S clients connecting at once: last answered", "{:.3f} s"),
    ("storm_overflows", "  listen-queue overflows meanwhile", "{:.0f}"),
    ("client_cpu_s", "load generator CPU, whole run", "{:.1f} s"),
]


# Recorded rows: key, what was measured (formatted with the run's arguments),
# and the other contender's key when it is not the same (Squall's broadcast()
# against each other server's own loop).
RECORD_ROWS: list[tuple[str, str] | tuple[str, str, str]] = [
    (
        "handshake_cpu_us",
        "server CPU per WebSocket handshake, {n:,} subscribers opened {batch} at a time",
    ),
    (
        "handshake_crowd_cpu_us",
        "server CPU per WebSocket handshake, {crowd:,} connecting at once beside {n:,} open",
    ),
    (
        "handshake_crowd_bcast_cpu_us",
        "server CPU per WebSocket handshake, {crowd:,} connecting at once beside {n:,} open "
        "while the server broadcasts to all every {per} new (broadcasts' CPU included)",
    ),
    (
        "deliver_loop_cpu_us",
        "server CPU per delivered 100-byte WebSocket message, a loop over {n:,} subscribers",
    ),
    (
        "deliver_helper_cpu_us",
        "server CPU per delivered 100-byte WebSocket message to {n:,} subscribers, "
        "`squall.websocket.broadcast` against the other's loop",
        "deliver_loop_cpu_us",
    ),
]
RECORD_NAMES = {
    "squall": "Squall (compiled, uvloop)",
    "squall-pure": "pure Squall (asyncio's loop)",
    "aiohttp-uvloop": "aiohttp on uvloop",
    "tornado": "Tornado 6.6.1",
    "floor": "the floor (a bare uvloop Protocol, no framework)",
}


def record_rows(
    medians: dict[str, dict[str, float]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """figures.py rows: each Squall build against each other contender, per measured key."""
    rows = []
    what = {"n": args.subscribers, "batch": args.batch, "crowd": args.crowd}
    what["per"] = args.broadcast_per
    for key, label, *theirs in RECORD_ROWS:
        other_key = theirs[0] if theirs else key
        for ours in ("squall", "squall-pure"):
            for other, got in medians.items():
                if (
                    other.startswith("squall")
                    or other_key not in got
                    or key not in medians.get(ours, {})
                ):
                    continue
                rows.append(
                    {
                        "label": f"{label.format(**what)}, "
                        f"{RECORD_NAMES[ours]} / {RECORD_NAMES[other]}, "
                        f"median of {args.rounds} round(s)",
                        "squall": round(medians[ours][key], 2),
                        "other": round(got[other_key], 2),
                        "unit": "us",
                    }
                )
    return rows


def record(
    medians: dict[str, dict[str, float]], args: argparse.Namespace, load: dict[str, str]
) -> None:
    """Writes this Python's benchmarks/results/c10k-py3.X.json and regenerates the README's tables."""
    import figures

    rows = record_rows(medians, args)
    if not rows:
        raise SystemExit("--record: no Squall build and other contender both ran")
    path = figures.record(
        "c10k",
        Path(__file__).resolve(),
        figures.squall_build(),
        {
            "rows": rows,
            "rounds": args.rounds,
            "subscribers": args.subscribers,
            "batch": args.batch,
            "crowd": args.crowd,
            "broadcast_per": args.broadcast_per,
            "messages": args.messages,
            "backlog": args.backlog,
            "medians": medians,
            "load_average": load,
        },
        # A record per Python, each beside the others (the README's headline is the newest).
        per_python=True,
    )
    figures.main_update()
    print(f"recorded in {path}")


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measure(
    kind: str, env: dict[str, str], styles: str, args: argparse.Namespace
) -> dict[str, Any]:
    port = free_port()
    server_env = dict(os.environ, **env)
    if args.backlog:
        server_env["C10K_BACKLOG"] = str(args.backlog)
    log = open(os.devnull, "wb") if not args.verbose else None
    proc = subprocess.Popen(
        pin(0) + [sys.executable, str(HERE / "server.py"), kind, str(port)],
        env=server_env,
        stderr=log,
        preexec_fn=raise_nofile,
    )
    try:
        wait_listening(port, proc, time.monotonic() + 30)
        cmd = pin(1) + [
            sys.executable,
            str(HERE / "client.py"),
            str(port),
            str(proc.pid),
            "--subscribers",
            str(args.subscribers),
            "--polls",
            str(args.polls),
            "--storm",
            str(args.storm),
            "--batch",
            str(args.batch),
            "--styles",
            styles,
            "--messages",
            str(args.messages),
            "--crowd",
            str(args.crowd),
            "--broadcast-per",
            str(args.broadcast_per),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"client failed for {kind}:\n{out.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.stdout)
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None:
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", type=int, default=15000)
    parser.add_argument("--polls", type=int, default=10000)
    parser.add_argument("--storm", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--messages",
        type=int,
        default=40,
        help="messages per subscriber for the CPU-per-delivery rows (40; when CPU "
        "was read in 10 ms clock ticks, 10 messages to 5,000 subscribers gave 0.2 us "
        "steps on a 6-7 us figure)",
    )
    parser.add_argument(
        "--crowd",
        type=int,
        default=5000,
        help="subscribers connecting at once beside the N open (a reconnect storm), alone and "
        "while a broadcast goes out each --broadcast-per new subscribers; 0: no crowd rows",
    )
    parser.add_argument("--broadcast-per", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument("--only", default="", help="comma-separated contender names")
    parser.add_argument("--json", action="store_true", help="also print every round")
    parser.add_argument("--verbose", action="store_true", help="show the servers' stderr")
    parser.add_argument(
        "--record",
        action="store_true",
        help="write benchmarks/results/c10k-py3.X.json (this Python's) and regenerate "
        "the README's tables",
    )
    args = parser.parse_args()
    raise_nofile()
    wanted = [c for c in CONTENDERS if not args.only or c[0] in args.only.split(",")]
    rounds: dict[str, list[dict[str, Any]]] = {c[0]: [] for c in wanted}
    load = {"start": loadavg()}
    for r in range(args.rounds):
        order = wanted[r % len(wanted) :] + wanted[: r % len(wanted)]
        for name, kind, env, styles in order:
            got = measure(kind, env, styles, args)
            rounds[name].append(got)
            print(
                f"round {r + 1} {name} (load {loadavg()}): {json.dumps(got)}",
                file=sys.stderr,
                flush=True,
            )
    load["end"] = loadavg()
    names = [c[0] for c in wanted]
    label_width = 52
    print(
        f"\nc10k: N={args.subscribers} WebSockets, P={args.polls} long polls, "
        f"S={args.storm} storm; {args.messages} messages per subscriber for CPU per "
        f"delivery; backlog {args.backlog or 'default'}; "
        f"median of {args.rounds} round(s); server on CPU 0, client on CPU 1; "
        f"load average {load['start']} at the start, {load['end']} at the end"
    )
    print(f"{'':{label_width}}" + "".join(f"{n:>16}" for n in names))
    medians: dict[str, dict[str, float]] = {n: {} for n in names}
    for key, label, fmt in ROWS:
        text = label.format(batch=args.batch)
        cells = []
        for n in names:
            values = [got[key] for got in rounds[n] if key in got]
            if values:
                medians[n][key] = statistics.median(values)
            cells.append(fmt.format(medians[n][key]) if values else "-")
        print(f"{text:{label_width}}" + "".join(f"{c:>16}" for c in cells))
    if args.json:
        print(json.dumps(rounds))
    if args.record:
        record(medians, args, load)


if __name__ == "__main__":
    main()
