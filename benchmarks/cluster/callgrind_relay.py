"""What one pub/sub message costs a node, by instructions: the cluster lab's node in process.

A redis-server (a subprocess, not counted) carries ``PUBLISH``es of
messages in the form Squall's publish script gives them (position, channel,
the lab's 70-byte text) on one channel; the node, in this process under
callgrind, is node_app.py's pattern: `squall.pubsub.RedisPubSub` and one
`~squall.pubsub.PubSub.relay` to ``--sockets`` open WebSockets
(callgrind_handshake.py's server and fake transports, which drop what is
written). Each message is PUBLISHed from a plain socket of this process
once the last was written to every WebSocket, so that each arrives alone,
as the lab's 100 messages a second over 100 channels do. Count per message
= (count of K2 messages - count of K1) / (K2 - K1), after a warm-up
(callgrind_hotpath's probes and annotate, as the gate's workloads).

``--profile`` probes squall.pubsub's and squall.websocket's functions
(inclusive and self instructions per message); the rest of a message
(the loop, redis-py's reading) is what the probes leave.

Usage: python benchmarks/cluster/callgrind_relay.py [--sockets 50] [--loop uvloop|asyncio]
       [--profile] [--keep FILE] [-n 200]
(valgrind and redis-server on the PATH; the venv's build, SQUALL_NO_SPEEDUPS=1 for pure.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

WARMUP = 50
K1 = 50
CHANNEL = "bench.0"


def _resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def wire(offset: int, epoch: str, origin: str, channel: str, data: str) -> bytes:
    """A publication as the publish script PUBLISHes it, with its origin
    (the publisher's token and count: squall.pubsub._redis_scripts.decode)."""
    name = channel.encode()
    return b"\x1d%d %s %s %d %s%s" % (
        offset,
        epoch.encode(),
        origin.encode(),
        len(name),
        name,
        data.encode(),
    )


def _redis(port: int, tmp: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Tried a bounded number of times, not until a time: the gate (which
    # runs this) stops the clocks.
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def inner(cfg: dict[str, Any]) -> None:
    import _probe
    from callgrind_handshake import _make_driver

    import squall.pubsub

    mod = _probe.load()
    with tempfile.TemporaryDirectory() as tmp:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        server = _redis(port, tmp)
        try:
            _run(cfg, mod, port, _make_driver, squall.pubsub)
        finally:
            server.kill()
            server.wait()


def _run(cfg: dict[str, Any], mod: Any, port: int, make_driver: Any, pubsub_mod: Any) -> None:
    driver = make_driver({"loop": cfg["loop"], "server": "squall"})
    loop = driver.loop
    driver.crowd(cfg["sockets"], cfg["sockets"])
    room = driver.room
    if len(room) != cfg["sockets"]:
        raise RuntimeError(f"{len(room)} of {cfg['sockets']} WebSockets open")
    # The last socket written to sends the next message: each arrives
    # alone, and nothing of the harness's but a send runs per message.
    watched = next(iter(room)).ws_connection._sink
    publisher = socket.create_connection(("127.0.0.1", port))
    publisher.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    state: dict[str, Any] = {"offset": 0, "queue": [], "done": None}

    def command() -> bytes:
        state["offset"] += 1
        n = state["offset"]
        data = f"0 {n} {1_800_000_000 + n / 100:.6f} {'x' * 40}"
        return _resp(
            b"PUBLISH", CHANNEL.encode(), wire(n, "e1", f"a1b2c3d4e5f6.{n}", CHANNEL, data)
        )

    def seen(data: Any) -> None:
        queue = state["queue"]
        if queue:
            publisher.sendall(queue.pop())
        else:
            state["done"].set_result(None)

    class Watched(type(watched)):  # type: ignore[misc]
        # The same slots (so the class can be swapped), a write that calls seen.
        __slots__ = ()

        def write(self, data: Any) -> None:
            seen(data)

    watched.__class__ = Watched
    pubsub = pubsub_mod.connect(f"redis://127.0.0.1:{port}/0")

    async def setup() -> Any:
        await pubsub.wait_connected(10.0)
        return await pubsub.relay(CHANNEL, room, max_skips=100)

    relay = loop.run_until_complete(setup())

    def publish(k: int) -> Any:
        """A run of k messages, one after the other (their commands made beforehand)."""
        queue = [command() for _ in range(k)][::-1]

        def run() -> None:
            state["queue"] = queue
            done = state["done"] = loop.create_future()
            timer = loop.call_later(60.0, lambda: done.done() or done.set_exception(TimeoutError()))
            publisher.sendall(queue.pop())
            loop.run_until_complete(done)
            timer.cancel()

        return run

    labels: list[Any] = []
    publish(WARMUP)()
    if cfg["profile"]:
        from callgrind_hotpath import Probes

        probes = Probes(mod)
        probes.wrap_all(("squall.pubsub", "squall.websocket"))
        labels = probes.labels
        mod.reset()
    mod.measure_a(publish(K1))
    mod.measure_b(publish(K1 + cfg["n"]))
    publisher.close()
    result = {
        "relayed": relay.messages,
        "sent": relay.sent,
        "loop": type(loop).__name__,
        "labels": labels,
        "edges": mod.edges() if labels else [],
    }
    loop.run_until_complete(pubsub.close())
    Path(cfg["out"]).write_text(json.dumps(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=50)
    ap.add_argument("-n", type=int, default=200, help="messages in the difference")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--keep", help="keep the callgrind output (callgrind_annotate)")
    args = ap.parse_args()
    missing = [tool for tool in ("valgrind", "redis-server") if shutil.which(tool) is None]
    if missing:
        print(f"needs {' and '.join(missing)}", file=sys.stderr)
        return 2
    from callgrind_hotpath import add_probe_costs, run_inner

    cfg = {"sockets": args.sockets, "n": args.n, "loop": args.loop, "profile": args.profile}
    result, incl, _ = run_inner(__file__, cfg, args.keep, build_from_env=True)
    per = (incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)) / args.n
    build = "pure" if os.environ.get("SQUALL_NO_SPEEDUPS") else "installed"
    print(
        f"{per:,.0f} instructions per message to {args.sockets} WebSockets "
        f"({result['loop']}, {build} build; {result['sent']} deliveries in all)"
    )
    if result["labels"]:
        add_probe_costs(result, incl, 2 * K1 + args.n)
        rows = [
            (
                result["probe_incl"].get(str(slot), 0.0),
                result["probe_self"].get(str(slot), 0.0),
                name,
            )
            for slot, (_label, name) in enumerate(result["labels"])
        ]
        print(f"  {'inclusive':>10} {'self':>10}  per message")
        for inc, own, name in sorted(rows, reverse=True):
            if inc:
                print(f"  {inc:10,.0f} {own:10,.0f}  {name}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inner"]:
        inner(json.loads(sys.argv[2]))
        os._exit(0)
    sys.exit(main())
