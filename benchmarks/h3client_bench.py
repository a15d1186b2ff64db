"""HTTP/3 client CPU per request: Squall's `H3AsyncHTTPClient` against what a
Python user would otherwise reach for, on one fixed server.

The server (Squall's HTTP/3 hello, ``h3_bench.py``'s) runs pinned to core 0
for the whole benchmark; each client run (``h3client_load.py``) is pinned
to core 1 and measures its own CPU time over its window, and the server's
CPU over the same run is read from /proc. Contenders alternate over
``--rounds`` rounds (the order rotates each round); the report gives
medians of client CPU per request, requests per client CPU-second, the
server's CPU per request in the same runs, and each contender's ratio to
Squall's client.

Contenders:
- ``squall``: `H3AsyncHTTPClient` (``http3_prior_knowledge``), this tree.
- ``squall@base``: the same from another tree (``--base PATH``, a
  directory holding a ``squall`` package), for a before/after.
- ``aioquic``: aioquic's example-client shape (``h3load.py``'s loader): the
  floor a Python client on that stack has, no HTTP client around it.
- ``niquests``: niquests' `AsyncSession` over qh3, from ``--niquests-python``
  (an interpreter with niquests; left out, saying so, without it).

    python benchmarks/h3client_bench.py [--rounds 5] [--duration 3]
        [--niquests-python PATH] [--base PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cpuclock import tree_cpu_seconds  # noqa: E402
from h2_bench import free_port, wait_listening  # noqa: E402
from h3_bench import CERT, KEY, ROOT, SQUALL_SERVER  # noqa: E402


def client_run(
    python: str,
    path: Optional[str],
    client: str,
    port: int,
    args: argparse.Namespace,
    check: bool = True,
) -> dict[str, float]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = path
    argv = [
        "taskset", "-c", "1", python, os.path.join(HERE, "h3client_load.py"), str(port),
        "--client", client, "--connections", str(args.connections),
        "--streams", str(args.streams), "--duration", f"{args.duration:g}",
        "--warm-up", f"{args.warm_up:g}",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{client} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    if check and (result["errors"] or not result["requests"]):
        raise RuntimeError(f"{client}: {result}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--warm-up", type=float, default=1.0)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--niquests-python", help="an interpreter with niquests installed")
    ap.add_argument("--base", help="a directory with another squall package, as squall@base")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    contenders: list[tuple[str, str, Optional[str], str]] = [
        ("squall", sys.executable, ROOT, "squall"),
        ("aioquic", sys.executable, ROOT, "aioquic"),
    ]
    if args.base:
        contenders.insert(1, ("squall@base", sys.executable, args.base, "squall"))
    if args.niquests_python:
        contenders.append(("niquests", args.niquests_python, None, "niquests"))
    else:
        print("niquests left out: no --niquests-python given", file=sys.stderr)

    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT)
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-c", SQUALL_SERVER, str(port), CERT, KEY],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name, *_ in contenders}
    try:
        wait_listening(port, server)
        # The UDP endpoint starts on the server loop's first turns: one
        # short run of the loader, which retries its connections, first.
        warm = argparse.Namespace(**{**vars(args), "duration": 0.5, "warm_up": 0.2})
        client_run(sys.executable, ROOT, "aioquic", port, warm, check=False)
        for round_no in range(args.rounds):
            order = (
                contenders[round_no % len(contenders) :] + contenders[: round_no % len(contenders)]
            )
            for name, python, path, client in order:
                for attempt in range(3):
                    before = tree_cpu_seconds(server.pid)
                    try:
                        result = client_run(python, path, client, port, args)
                    except RuntimeError as exc:
                        # (Before the client's connection fix, one first QUIC connection in
                        # three under uvloop lost its handshake: that run is
                        # made again, and said.)
                        if attempt == 2:
                            raise RuntimeError(f"{name}: {exc}") from None
                        print(f"round {round_no + 1} {name}: run failed, again", file=sys.stderr)
                        continue
                    break
                server_cpu = tree_cpu_seconds(server.pid) - before
                n = result["requests"]
                rows[name].append(
                    (result["cpu"] / n * 1e6, n / result["seconds"], server_cpu / n * 1e6)
                )
                print(
                    f"round {round_no + 1} {name:<12} {n / result['seconds']:>8,.0f} req/s  "
                    f"client {result['cpu'] / n * 1e6:>7,.1f} us/req",
                    file=sys.stderr,
                )
    finally:
        server.terminate()
        server.wait(10)

    medians = {
        name: tuple(statistics.median(r[i] for r in runs) for i in range(3))
        for name, runs in rows.items()
    }
    ours = medians["squall"][0]
    print(
        f"== HTTP/3 client CPU per request, {args.connections} connections x {args.streams} "
        f"streams, {args.duration:g} s runs, medians of {args.rounds} alternated rounds; "
        "server (Squall, pure) on core 0, clients on core 1"
    )
    print(
        f"{'client':<12} {'client us/req':>14} {'req/client CPU-s':>17} {'vs squall':>10} "
        f"{'req/s':>8} {'server us/req':>14}"
    )
    for name, (us, rate, server_us) in medians.items():
        print(
            f"{name:<12} {us:>14,.1f} {1e6 / us:>17,.0f} {ours / us:>9.2f}x "
            f"{rate:>8,.0f} {server_us:>14,.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"medians": medians, "runs": rows, "args": vars(args)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
