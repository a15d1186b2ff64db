"""What a publish costs the broker: Redis CPU per publish, plain against Squall.

    python benchmarks/broker_cost.py [--shards 1,3,6] [--publishes 20000] [--rounds 5]
                                     [--history 100] [--tree PATH] [--modes plain,off,...]
                                     [--period 4000] [--json PATH] [--callgrind]

Starts its own brokers on free 127.0.0.1 ports (tests/pubsub/_servers.py):
one redis-server (``1``) and Redis Clusters of 3 and 6 primaries, a replica
each (``3``, ``6``), and stops them. For each, one node (a Squall engine
in this process) subscribes to one channel, and one publisher sends
``--publishes`` messages to it, one at a time (each awaited, as the cluster
lab's publisher does), in these ways (``--modes``), alternated, ``--rounds`` times:

* ``plain``: redis-py's ``PUBLISH`` (one Redis) or ``SPUBLISH`` (a cluster)
  of the same message to the broker channel the node listens on: what a
  pub/sub adapter without positions (Socket.IO's) asks of Redis;
* ``lua``: the same message PUBLISHed by a Lua script that does nothing
  else (``EVALSHA``, one ``redis.call``): the floor of any script;
* ``info``: ``lua`` after an ``INFO replication`` whose reply is thrown
  away: what that call costs inside a script;
* ``replid``: ``lua`` after reading the server's replication ID from
  ``INFO replication`` with a pattern (``string.match``), as Squall's
  scripts do; ``findid``: the same read with a plain search for the
  field's name and the 40 characters after it;
* ``state``: a Lua script that keeps the least a position and the
  once-only rule need: ``HMGET`` of the channel's offset and the
  publisher's last count, nothing done when the count was applied, else
  ``HSET`` of both and the ``PUBLISH`` (no clock: no refusal of a late
  attempt; no epochs, no expiry): the floor of any script with state;
* ``stream``: ``state`` and the history's entry (``XADD`` to a stream
  trimmed to ``--history``, as ``on`` keeps it): the floor of any script
  keeping history;
* ``off``: ``squall.pubsub`` with history off (positions, each publish
  applied once through a failover);
* ``on``: the same with ``history_size=--history``;
* ``nopos``: ``squall.pubsub`` with ``positions=False`` (``?positions=0``:
  a plain ``PUBLISH``/``SPUBLISH`` carrying the publisher's token and
  count, copies dropped by the subscribing process; no offsets, no
  history).

Three measures, each counting something else:

* **CPU** (``CPU``, with ``user`` and ``kernel``): every redis-server
  thread's time on a CPU, user space and kernel (the whole read at
  nanosecond resolution from /proc/PID/task/*/schedstat, its split
  sampled at the clock tick from /proc/PID/task/*/stat), less what the
  processes spend idle (cluster bus, cron; measured for a second before
  each round), per publish: what the broker's operator pays. Besides the
  command it holds what every request costs whatever it asks: waking
  from ``epoll_wait``, reading the request, writing the reply and the
  message to the subscriber (on 127.0.0.1 the kernel delivers it to the
  receiver inside the sender's system call), and the caches refilled
  after Redis slept. That part is most of a plain publish's CPU (on a
  loaded 2-core VM, 40 to 105 of its 42 to 111 us, the ``PUBLISH``
  itself 1 to 6), and it grows with the time Redis sleeps between
  publishes (one publish per 1.5 ms against back to back: a plain
  publish's CPU 79 against 47 us, a script's own time 39 against 23 us,
  at load 5 to 8).
* **command** (``INFO commandstats``): the microseconds Redis spent in
  the command each publish sends (``publish``/``spublish`` or
  ``evalsha``, summed over the nodes; a script's own ``PUBLISH``, which
  Redis counts under ``publish`` too, is not added again). None of the
  above is in it.
* **instructions** (``--callgrind``): the user-space instructions one
  Redis runs per publish, the event loop and the request's parsing
  included, the kernel's part not, each instruction counted once however
  many cycles it took (not moved by the machine's load).

So the three agree on the *difference* between two ways of publishing
(a script's extra commands: about as many us more in ``CPU`` as in
``command``, and its instructions at the machine's rate), not on the
*ratio* to ``plain``: the part every request pays is nearly all of a
plain publish's CPU, its user-space share is all of a plain publish's
instructions (8,000), and none of it is in ``command``. A CPU ratio of
1.7x, an instruction ratio of 15x and a ``command`` ratio of 19x are the
same script (history off, Redis 7.0).

Every mode is paced alike (``--period``, one publish started every 4 ms
by default): run back to back, each mode would go at its publisher's
speed (redis-py's ``PUBLISH`` twice as many a second as Squall's
publisher here), Redis would sleep between publishes for a different
time in each, and part of the difference in CPU would be that (at load 9
to 11, the same code: history off 2.0 to 2.3x a plain publish's CPU
back to back, 1.1 to 1.2x with plain paced at 4 ms and history off not
keeping up). A mode whose ``wall`` is above the period did not keep it,
and its row says so. Medians over the rounds, and each configuration's
ratio to ``plain``. Redis runs on CPU 0, this process on CPU 1.

``--tree PATH`` imports squall from another checkout (to measure a commit
before a change: ``git archive COMMIT | tar -x -C /tmp/before``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ARGS = sys.argv[1:]
TREE = ARGS[ARGS.index("--tree") + 1] if "--tree" in ARGS else str(HERE.parent)
sys.path.insert(0, TREE)
sys.path.insert(1, str(HERE.parent))

import squall.pubsub  # noqa: E402
from tests.pubsub._redis_server import start_logged  # noqa: E402
from tests.pubsub._servers import REDIS_SERVER, RedisCluster, RedisServer  # noqa: E402

MODES = ("plain", "lua", "info", "replid", "findid", "state", "stream", "off", "on", "nopos")
# The least a Lua script can do for a publication with a position: build
# the message and PUBLISH it (no offset kept, nothing checked): what any
# script costs Redis beyond the command it runs. The offset (ARGV[5]) is
# the sender's count: a constant one would be an offset given again at
# every message, and the node would ask Redis for a new epoch each time
# (a script of its own, counted in this mode's cost).
FLOOR_LUA = (
    "return redis.call(ARGV[1], ARGV[2], '\\30' .. ARGV[5] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])"
)
# The least a script keeping positions does (the ``state`` mode). KEYS: a
# hash of its own. ARGV as FLOOR_LUA's, 5 the publisher's count, 6 its
# field. Its own epoch, so that its offsets (from the hash) are not taken
# for FLOOR_LUA's given again.
STATE_LUA = """
local m = redis.call('HMGET', KEYS[1], 'o', ARGV[6])
if m[2] == ARGV[5] then
  return 0
end
local o = (m[1] or 0) + 1
redis.call('HSET', KEYS[1], 'o', o, ARGV[6], ARGV[5])
return redis.call(ARGV[1], ARGV[2], '\\30' .. o .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
"""
# ``state`` with the history's entry (KEYS[2], a stream; ARGV[7] the
# message, ARGV[8] how many entries are kept): the ``stream`` mode.
STREAM_LUA = STATE_LUA.replace(
    "return redis.call(ARGV[1]",
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'o', o, 'd', ARGV[7])\n"
    "return redis.call(ARGV[1]",
)
# FLOOR_LUA after ``INFO replication`` (its reply thrown away): what that
# call alone costs a script (the ``info`` mode); and after reading the
# server's replication ID from it as the publish script does (``replid``:
# a pattern, tried at each place of INFO's text in turn), or with a plain
# search for the field's name and the 40 characters after it (``findid``).
INFO_LUA = "redis.call('INFO', 'replication')\n" + FLOOR_LUA
USE_RID = FLOOR_LUA.replace("ARGV[3]", "string.sub(rid, 1, 0) .. ARGV[3]")
REPLID_LUA = (
    "local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')\n" + USE_RID
)
FINDID_LUA = (
    "local info = redis.call('INFO', 'replication')\n"
    "local at = string.find(info, 'master_replid:', 1, true)\n"
    "local rid = string.sub(info, at + 14, at + 53)\n" + USE_RID
)
CHANNEL = "room:42"


def pin(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` to ``cpu``."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {cpu})


def cpu_seconds(pids: list[int]) -> tuple[float, float, float]:
    """The CPU time of every thread of ``pids``, in seconds: on a CPU in
    all, in user space, in the kernel.

    The whole is read from /proc/PID/task/TID/schedstat (the time on a
    CPU, in ns), so that a round of a few thousand publishes is counted to
    better than a percent. Its split (utime, stime from
    /proc/PID/task/TID/stat) is sampled at the clock tick: good to a few
    percent over a round of 10,000 publishes, not over a short one.
    """
    total = user = kernel = 0
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user, kernel = user + int(fields[11]), kernel + int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return total / 1e9, user / tick, kernel / tick


class Broker:
    """The Redis processes of one configuration, and a client to each node."""

    def __init__(self, shards: int, workdir: Path) -> None:
        self.shards = shards
        if shards == 1:
            self.server: Any = RedisServer(workdir=workdir)
        else:
            # A long node timeout: twelve nodes on one loaded CPU must not
            # fail each other over while they are measured.
            self.server = RedisCluster(workdir, primaries=shards, node_timeout=15000)
        self.nodes: list[Any] = []

    def start(self, callgrind: Optional[Path] = None) -> None:
        """Starts the servers; ``callgrind``: one Redis under callgrind,
        its counts written there when it exits (`shutdown`)."""
        import redis

        if callgrind is None:
            self.server.start(timeout=5.0 if self.shards == 1 else 90.0)
        else:
            assert self.shards == 1 and REDIS_SERVER is not None
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}"]
            command += [REDIS_SERVER, "--port", str(self.server.port), "--bind", "127.0.0.1"]
            # hz 1: the once-a-tick work, counted too, a tenth of the default.
            command += ["--save", "", "--appendonly", "no", "--hz", "1"]
            self.server.proc = start_logged(command, b"Ready to accept connections", 120)
        procs = [self.server.proc] if self.shards == 1 else list(self.server.procs.values())
        self.pids = [p.pid for p in procs]
        for pid in self.pids:
            pin(pid, 0)
        ports = [self.server.port] if self.shards == 1 else list(self.server.procs)
        self.nodes = [redis.Redis(port=p, socket_timeout=10) for p in ports]

    @property
    def url(self) -> str:
        return str(self.server.url)

    def reset_stats(self) -> None:
        for node in self.nodes:
            node.config_resetstat()

    def command_usec(self, mode: str) -> float:
        """The microseconds Redis spent in the command each publish of
        ``mode`` sends (the script's ``EVALSHA``, or the plain
        ``PUBLISH``/``SPUBLISH``), summed over the nodes. Only that one:
        a script's own ``PUBLISH`` is counted in ``cmdstat_publish`` too,
        and is already in its ``EVALSHA``'s time."""
        names: tuple[str, ...] = ("cmdstat_publish", "cmdstat_spublish")
        if mode not in ("plain", "nopos"):
            names = ("cmdstat_evalsha",)
        total = 0.0
        for node in self.nodes:
            stats = node.info("commandstats")
            for name in names:
                total += float(stats.get(name, {}).get("usec", 0))
        return total

    def stop(self) -> None:
        for node in self.nodes:
            node.close()
        self.server.stop()

    def shutdown(self) -> None:
        """Has the one Redis exit by itself (callgrind then writes its counts)."""
        import redis

        try:
            self.nodes[0].shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closed the connection as it exited
        self.server.proc.wait(60)


async def plain_publisher(broker: Broker, node: Any, history: int) -> Any:
    """A client, and the ``plain``, ``lua``, ``state`` and ``stream`` senders
    to the node's broker channel."""
    if broker.shards == 1:
        import redis.asyncio

        client: Any = redis.asyncio.Redis.from_url(broker.url)
        command, target, prefix = "PUBLISH", CHANNEL, ""
        plain = client.publish
    else:
        from redis.asyncio.cluster import ClusterNode
        from redis.asyncio.cluster import RedisCluster as Cluster

        client = Cluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in broker.server.procs])
        await client.initialize()
        # The node's broker channel, and a prefix that puts the scripts'
        # keys in its slot.
        command, target = "SPUBLISH", f"{{sq.{node.partition(CHANNEL)}}}"
        prefix = f"{target}:"
        plain = client.spublish

    def body(message: str) -> str:
        return f"{len(CHANNEL)} {CHANNEL}{message}"

    # The floor scripts share an epoch, so their offsets go on from one
    # another's.
    offsets = itertools.count(1)

    def floor(text: str) -> Any:
        script = client.register_script(text)
        return lambda message: script(
            keys=[target] if prefix else [],
            args=[command, target, "abcdefgh", body(message), next(offsets)],
        )

    def stateful(text: str, epoch: str, keys: list[str]) -> Any:
        # A sender with its own keys, count and epoch: its offsets are its
        # own. With a stream among its keys, the message is its entry too.
        script = client.register_script(text)
        counts = itertools.count(1)

        def send(message: str) -> Any:
            args = [command, target, epoch, body(message), next(counts), "p:1"]
            if len(keys) > 1:
                args += [message, history]
            return script(keys=keys, args=args)

        return send

    return client, {
        "plain": lambda message: plain(target, message),
        "lua": floor(FLOOR_LUA),
        "info": floor(INFO_LUA),
        "replid": floor(REPLID_LUA),
        "findid": floor(FINDID_LUA),
        "state": stateful(STATE_LUA, "stateabc", [f"{prefix}floor:state"]),
        "stream": stateful(
            STREAM_LUA, "streamab", [f"{prefix}floor:stream", f"{prefix}floor:entries"]
        ),
    }


async def measure(
    broker: Broker, args: argparse.Namespace, modes: tuple[str, ...] = MODES, idle: bool = True
) -> dict[str, list[tuple[float, ...]]]:
    """Per mode, per round, in us per publish: the CPU (all, user, kernel)
    less idle, the command's own time (commandstats), the wall-clock time."""
    node = squall.pubsub.connect(broker.url, max_pending=args.publishes + 1000)
    sub = await node.subscribe(CHANNEL)
    received = 0

    async def drain() -> None:
        nonlocal received
        async for _ in sub:
            received += 1

    reader = asyncio.ensure_future(drain())
    plain_client, plain = await plain_publisher(broker, node, args.history)
    off = squall.pubsub.connect(broker.url)
    on = squall.pubsub.connect(broker.url, history_size=args.history)
    # (Not made for a tree from before positions=False: --modes without it.)
    nopos = squall.pubsub.connect(broker.url, positions=False) if "nopos" in modes else on
    senders = {
        **plain,
        "off": lambda message: off.publish(CHANNEL, message),
        "on": lambda message: on.publish(CHANNEL, message),
        "nopos": lambda message: nopos.publish(CHANNEL, message),
    }
    pad = "x" * max(0, args.size - 30)
    period = args.period / 1e6 if idle else 0.0
    results: dict[str, list[tuple[float, ...]]] = {mode: [] for mode in modes}
    try:
        for _ in range(args.rounds):
            # Idle: what the processes spend with nothing published.
            idle0, t0 = cpu_seconds(broker.pids), time.monotonic()
            await asyncio.sleep(1.0 if idle else 0.0)
            spent = [b - a for a, b in zip(idle0, cpu_seconds(broker.pids), strict=True)]
            rates = [s / (time.monotonic() - t0) if idle else 0.0 for s in spent]
            for mode in modes:
                send = senders[mode]
                for i in range(200):  # connections made, scripts loaded
                    await send(f"warm {i} {pad}")
                await asyncio.to_thread(broker.reset_stats)
                cpu0, t0 = cpu_seconds(broker.pids), time.monotonic()
                for i in range(args.publishes):
                    # Paced: the i-th publish starts no sooner than i
                    # periods after the first, in every mode alike.
                    ahead = t0 + i * period - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                    await send(f"{i} {time.time():.6f} {pad}")
                wall = time.monotonic() - t0
                cpu = [
                    b - a - rate * wall
                    for a, b, rate in zip(cpu0, cpu_seconds(broker.pids), rates, strict=True)
                ]
                usec = await asyncio.to_thread(broker.command_usec, mode)
                n = max(1, args.publishes)
                results[mode].append((*(c / n * 1e6 for c in cpu), usec / n, wall / n * 1e6))
    finally:
        reader.cancel()
        await off.close()
        await on.close()
        await nopos.close()
        await node.close()
        await plain_client.aclose()
    return results


def instructions(mode: str, publishes: int, args: argparse.Namespace) -> int:
    """Redis' instructions (callgrind) from its start to its exit, with
    ``publishes`` publishes of ``mode`` (after the warm-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        broker = Broker(1, Path(tmp))
        broker.start(callgrind=out)
        try:
            run = argparse.Namespace(**{**vars(args), "publishes": publishes, "rounds": 1})
            asyncio.run(measure(broker, run, modes=(mode,), idle=False))
            broker.shutdown()
        finally:
            broker.stop()
        if args.keep:
            (Path(args.keep) / f"callgrind.{mode}.{publishes}").write_bytes(out.read_bytes())
        for line in out.read_text().splitlines():
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in callgrind's output for {mode}")


def count(args: argparse.Namespace) -> None:
    """One Redis under callgrind: user-space instructions per publish, each
    mode's run less the same run without the publishes (start, warm-up,
    exit). The kernel's part (the same three socket calls a publish in
    every mode) is not in it."""
    print(f"one Redis under callgrind, {args.publishes} publishes; instructions per publish")
    plain = 0.0
    for mode in args.modes:
        per = (
            instructions(mode, args.publishes, args) - instructions(mode, 0, args)
        ) / args.publishes
        plain = plain or per
        print(f"{mode:>6}: {per:9.0f} ({per / plain:.2f}x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", default="1,3,6", help="1: one Redis; N: a cluster of N")
    parser.add_argument("--publishes", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--history", type=int, default=100, help="history_size of 'on'")
    parser.add_argument("--size", type=int, default=70, help="message bytes")
    parser.add_argument("--tree", default=TREE, help="import squall from this checkout")
    parser.add_argument(
        "--keep", default="", help="with --callgrind: keep callgrind's files in this directory"
    )
    parser.add_argument(
        "--callgrind", action="store_true", help="instructions per publish, one Redis, instead"
    )
    parser.add_argument("--modes", default=",".join(MODES), help="plain first")
    parser.add_argument(
        "--period",
        type=float,
        default=4000,
        help="us from one publish's start to the next's, in every mode (0: back to back)",
    )
    parser.add_argument("--json", default="", help="also write every round's figures here")
    args = parser.parse_args()
    args.modes = tuple(args.modes.split(","))
    if args.modes[0] != "plain" or not set(args.modes) <= set(MODES):
        parser.error(f"--modes: plain first, then any of {', '.join(MODES)}")
    os.sched_setaffinity(0, {1})
    if args.callgrind:
        count(args)
        return
    load = os.getloadavg()
    print(
        f"squall from {Path(squall.pubsub.__file__).parents[1]}; load {load[0]:.1f} {load[1]:.1f}"
    )
    print(
        f"{args.publishes} publishes a round, one every {args.period:.0f} us, {args.rounds} "
        "rounds, modes alternated; medians, "
        "us per publish: Redis CPU (ratio to plain), its user and kernel parts, the command's "
        "own time (commandstats; ratio to plain), CPU less command, wall-clock"
    )
    modes = args.modes
    saved: dict[str, Any] = {"load": load, "publishes": args.publishes, "runs": {}}
    for shards in (int(s) for s in args.shards.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            broker = Broker(shards, Path(tmp))
            broker.start()
            try:
                results = asyncio.run(measure(broker, args, modes))
            finally:
                broker.stop()
        saved["runs"][shards] = results
        print(
            f"{shards} primar{'y' if shards == 1 else 'ies'}: {'mode':>6} | {'CPU':>15} | "
            f"{'user':>6} | {'kernel':>6} | {'command':>14} | {'CPU-cmd':>7} | {'wall':>7}"
        )
        med = {m: [statistics.median(r[k] for r in results[m]) for k in range(5)] for m in modes}
        for m in modes:
            cpu, user, kernel, cmd, wall = med[m]
            base = med["plain"]
            print(
                f"{'':>11}{m:>6} | {cpu:7.1f} ({cpu / base[0]:5.2f}x) | {user:6.1f} | "
                f"{kernel:6.1f} | {cmd:6.2f} ({cmd / base[3]:4.1f}x) | {cpu - cmd:7.1f} | "
                f"{wall:7.1f}",
                flush=True,
            )
            if args.period and wall > args.period * 1.05:
                print(f"{'':>11}{m:>6}: the period was not held; not comparable", flush=True)
        rounds = {m: [round(r[0], 1) for r in results[m]] for m in modes}
        print(f"{'':>11}CPU rounds: {rounds}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(saved))


if __name__ == "__main__":
    main()
