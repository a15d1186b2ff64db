"""``make bench-cluster``: broadcasts across nodes over one Redis and a Redis Cluster, measured.

Everything runs in network namespaces that `netlab.Lab` makes and removes
(addresses in 198.18.0.0/15; loopback addresses when namespaces cannot be
made, said so): Squall nodes (``squall run`` of node_app.py), Socket.IO 4.8
nodes with ``@socket.io/redis-adapter``'s sharded adapter (sio/server.js),
one redis-server and a Redis Cluster of 3 primaries and 3 replicas, client
processes (subscribers.py) each with several source addresses, and one
publisher process per framework (its own pub/sub API, no clients).

For each configuration, K subscribers spread over the nodes (C channels,
subscriber i on channel i mod C and node i mod N) receive P publishes a
second for D seconds; printed and kept in benchmarks/results/cluster.json:
connections held, deliveries/s, latency p50/p99/max, server CPU per delivery
(every node process, /proc), Redis CPU per publish (every redis-server),
missing and duplicated deliveries. Squall and Socket.IO alternate.
``--shards 1,3`` (``SHARDS``) runs the cluster rows on clusters of 1 and of 3
primaries (a replica each): Redis CPU per publish as shards are added, also
net of Redis's idle work (measured over the settle window before publishing).
Servers and Redis are pinned to CPU 0, clients and publisher to CPU 1.
Beside the server CPU per delivery, ``own us/d`` is the nodes' own: their
CPU less the NET_RX softirqs that ran as them (traced with ftrace,
ktrace.py; as root, ``--no-trace`` to leave it out). Without steering
(``STEER=0``) that is the clients' receive path, which a node does not
pay between machines; with it, the kicks steering costs the sender stay
in both columns.

``--faults`` runs the fault table instead: clients through nginx (they
reconnect), and during publishing a Redis primary SIGKILLed, a primary
SIGSTOPped for 10 s, or a Squall node SIGKILLed; for each, the longest
pause a subscriber saw and the deliveries lost against those published.
Recovery is on there (``--no-resume`` turns it off): history is kept, each
message carries its position and a client reconnects with its last one,
so what a dead node's clients missed meanwhile is sent to them.

The churn rows (after the table, or alone with ``--churn-only``; ``CHURN``
sets the fraction, 0 leaves them out): Squall on 2 nodes with recovery on,
up to 4,000 subscribers (``--churn-subscribers``) connected straight to the
nodes; during publishing, every
second a fraction of them (0.1: 10%, chosen at random among those that have
a position) close and reconnect after 50-550 ms with their last position.
Counted against what was published: deliveries missing and duplicated.
Each round runs the same configuration without churn, then with it
(``--churn-rounds``, 3); CPU per recovery is the churn run's extra over the
one before it (node CPU from /proc, Redis CPU net of its idle work),
divided by the reconnections made; the medians over the rounds are given.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ktrace import NetRxTrace  # noqa: E402
from netlab import Lab, LabError  # noqa: E402
from services import (  # noqa: E402
    HERE,
    REPO,
    SQUALL_READY,
    RedisCluster,
    Service,
    cpu_seconds,
    cpu_split,
    descendants,
    run_seconds,
    spawn,
    start_nginx,
    start_redis,
    start_redis_cluster,
    start_sio_node,
    start_squall_node,
)

RESULTS = REPO / "benchmarks" / "results" / "cluster.json"
SERVER_CPUS = "0"
CLIENT_CPUS = "1"
PER_CLIENT = 9000  # a client process's sockets (the descriptor limit is 20,000)
PER_NODE = 19000  # a node's sockets, for the same reason
PORT = 8000


def engine_supports(url: str) -> Optional[str]:
    """None if ``squall.pubsub.connect`` takes ``url`` here, else why not.

    The squall asked is the one this Python imports (the nodes inherit its
    environment): the bench venv's compiled build under ``make bench-cluster``,
    or a tree on ``PYTHONPATH``.
    """
    import squall.pubsub

    try:
        pubsub = squall.pubsub.connect(url)
    except (ValueError, ImportError) as exc:
        return str(exc)
    del pubsub
    return None


class Bench:
    def __init__(self, args: argparse.Namespace, lab: Lab, workdir: Path) -> None:
        self.args = args
        self.lab = lab
        self.workdir = workdir
        self.echo = args.verbose
        self.nodes = [lab.add_host(f"node{i}") for i in range(1, max(args.nodes) + 1)]
        # What a node sends is received on the clients' CPU (see Lab.steer):
        # the node's CPU is then its own work, as across machines.
        self.steered = args.steer and all(lab.steer(h, CLIENT_CPUS) for h in self.nodes)
        clients = max(2, math.ceil(args.subscribers / PER_CLIENT))
        self.clients = [lab.add_host(f"client{i}", args.sources) for i in range(1, clients + 1)]
        self.pub = lab.add_host("pub")
        self.front = lab.add_host("nginx")
        self.redis_host = lab.add_host("redis")
        shards = max(args.shards)
        self.cluster_hosts = [lab.add_host(f"redis{i}") for i in range(1, 2 * shards + 1)]
        self.shards = 3  # the cluster's, while one runs
        self.single: Optional[Service] = None
        self.cluster: Optional[RedisCluster] = None
        self.killed_cpu: dict[int, float] = {}
        # The nodes' own work, as between machines: their CPU less the
        # NET_RX softirqs that ran as them (the clients' receive path when
        # not steered; ktrace.py). None where ftrace cannot be used.
        self.netrx = NetRxTrace.open() if args.trace else None
        if self.netrx is not None:
            atexit.register(self.netrx.close)

    # Brokers.

    def start_single(self) -> Service:
        if self.single is None:
            self.single = start_redis(
                self.lab, self.redis_host, self.workdir, cpus=SERVER_CPUS, echo=self.echo
            )
        return self.single

    def start_cluster(self, shards: int = 3) -> RedisCluster:
        """A cluster of ``shards`` primaries and as many replicas (a new one if the count differs)."""
        if self.cluster is not None and shards != self.shards:
            self.stop_cluster()
        if self.cluster is None:
            self.shards = shards
            self.cluster = start_redis_cluster(
                self.lab,
                self.cluster_hosts[: 2 * shards],
                self.workdir / f"c{time.monotonic_ns()}",
                cpus=SERVER_CPUS,
                echo=self.echo,
            )
        return self.cluster

    def stop_cluster(self) -> None:
        if self.cluster is not None:
            for s in self.cluster.servers:
                self.lab.stop(s.proc, 2)
            self.cluster = None

    def redis_pids(self) -> list[int]:
        pids = []
        if self.single is not None:
            pids.append(self.single.pid)
        if self.cluster is not None:
            pids += [s.pid for s in self.cluster.servers]
        return pids

    def broker(self, kind: str, framework: str, shards: int = 3) -> tuple[str, list[int]]:
        """The URL each framework's nodes take for ``kind``, and the redis pids to measure."""
        if kind == "redis":
            s = self.start_single()
            return f"redis://{s.host.address}:6379/0", [s.pid]
        c = self.start_cluster(shards)
        pids = [s.pid for s in c.servers]
        if framework == "socketio":
            return "cluster://" + ",".join(c.nodes[:3]), pids
        return c.url(sharded=kind == "cluster-sharded", partitions=self.args.partitions), pids

    # One configuration.

    def start_nodes(
        self, framework: str, url: str, count: int, resume: bool = False
    ) -> list[Service]:
        nodes = []
        env = {"BENCH_RESUME": "1"} if resume else {}
        for host in self.nodes[:count]:
            if framework == "squall":
                nodes.append(
                    start_squall_node(
                        self.lab,
                        host,
                        url,
                        port=PORT,
                        cpus=SERVER_CPUS,
                        echo=self.echo,
                        env=env,
                        wait=False,
                    )
                )
            else:
                nodes.append(
                    start_sio_node(self.lab, host, url, port=PORT, cpus=SERVER_CPUS, echo=self.echo)
                )
        for node in nodes:
            if framework == "squall":
                node.out.expect(SQUALL_READY, 60)
        return nodes

    def start_clients(
        self,
        framework: str,
        targets: list[tuple[str, int]],
        subscribers: int,
        reconnect: bool = False,
        resume: bool = False,
        churn: float = 0.0,
    ) -> list[Service]:
        procs = []
        share = math.ceil(subscribers / len(self.clients))
        first = 0
        for host in self.clients:
            count = min(share, subscribers - first)
            if count <= 0:
                break
            spec = {
                "targets": targets,
                "sources": host.addresses,
                "count": count,
                "first": first,
                "channels": self.args.channels,
                "protocol": "sio" if framework == "socketio" else "ws",
                "reconnect": reconnect,
                "resume": resume,
                "churn": churn,
                "batch": 250,
                "connect_timeout": 90,
            }
            argv = [sys.executable, str(HERE / "subscribers.py"), json.dumps(spec)]
            procs.append(
                spawn(
                    self.lab,
                    host,
                    f"clients-{host.name}",
                    argv,
                    CLIENT_CPUS,
                    False,
                    stdin=subprocess.PIPE,
                )
            )
            first += count
        return procs

    def publisher(self, framework: str, url: str, seconds: float) -> Service:
        a = self.args
        if framework == "squall":
            argv = [
                sys.executable,
                str(HERE / "publisher.py"),
                url,
                str(a.channels),
                str(a.rate),
                str(seconds),
            ]
            return spawn(self.lab, self.pub, "publisher", argv, CLIENT_CPUS, self.echo)
        argv = [
            "node",
            str(HERE / "sio" / "server.js"),
            "publish",
            url,
            str(a.channels),
            str(a.rate),
            str(seconds),
        ]
        return spawn(
            self.lab, self.pub, "publisher", argv, CLIENT_CPUS, self.echo, cwd=str(HERE / "sio")
        )

    def run(
        self,
        framework: str,
        kind: str,
        nodes: int,
        fault: Optional[str] = None,
        shards: int = 3,
        churn: Optional[float] = None,
    ) -> dict[str, Any]:
        a = self.args
        subscribers = min(a.subscribers, PER_NODE * nodes)
        if fault:
            subscribers = min(a.subscribers, 8000)  # through one nginx worker: two descriptors each
        churning = churn is not None
        if churning:
            subscribers = min(a.subscribers, a.churn_subscribers)
        url, redis_pids = self.broker(kind, framework, shards)
        # Faults and churn with recovery: history kept beside the offsets,
        # positions sent with each message and given back on reconnecting.
        resume = (bool(fault) or churning) and framework == "squall" and not a.no_resume
        if resume:
            url += f"{'&' if '?' in url else '?'}history_size={a.history}"
        row: dict[str, Any] = {
            "framework": framework,
            "broker": kind,
            "nodes": nodes,
            "shards": shards if kind != "redis" else 1,
            "subscribers": subscribers,
            "channels": a.channels,
            "rate": a.rate,
            "seconds": a.seconds,
            "steered": self.steered,
        }
        if fault:
            row["fault"] = fault
            row["recovery"] = resume
        if churning:
            row["churn"] = churn
            row["recovery"] = resume
        servers = self.start_nodes(framework, url, nodes, resume)
        front = None
        try:
            if fault:
                front = start_nginx(
                    self.lab,
                    self.front,
                    [f"{s.host.address}:{PORT}" for s in servers],
                    self.workdir,
                    port=PORT,
                    cpus=SERVER_CPUS,
                    echo=self.echo,
                )
                targets = [(self.front.address, PORT)]
            else:
                targets = [(s.host.address, PORT) for s in servers]
            clients = self.start_clients(
                framework,
                targets,
                subscribers,
                reconnect=bool(fault) or churning,
                resume=resume,
                churn=churn or 0.0,
            )
            held = 0
            for c in clients:
                line = json.loads(c.out.expect(r'^\{"held"', 150))
                held += line["held"]
                row["failed_connections"] = row.get("failed_connections", 0) + line["failed"]
                if line["refusals"]:
                    row.setdefault("refusals", []).extend(line["refusals"])
            row["held"] = held
            # The nodes subscribe to Redis as their first socket of a channel
            # opens; give the last subscriptions time to be in place.
            node_tree = descendants([s.pid for s in servers])
            idle0 = (time.monotonic(), run_seconds(redis_pids), run_seconds(node_tree))
            time.sleep(a.settle)
            # Redis's own work with nothing published (cluster gossip, cron),
            # subtracted for the net figure: it grows with the servers.
            idle = (run_seconds(redis_pids) - idle0[1]) / (time.monotonic() - idle0[0])
            # The nodes' with every connection held and nothing published
            # (timers, pings, health checks): a part of each delivery's CPU.
            node_idle = (run_seconds(node_tree) - idle0[2]) / (time.monotonic() - idle0[0])
            row["node_idle_ms_per_s"] = round(node_idle * 1e3, 2)
            for c in clients:
                c.proc.stdin.write(b"mark\n")
                c.proc.stdin.flush()
            node_pids = [s.pid for s in servers]
            node_cpu0 = {pid: cpu_seconds([pid]) for pid in node_pids}
            cpu0 = sum(node_cpu0.values()), run_seconds(redis_pids)
            split0 = cpu_split(node_pids)
            if self.netrx is not None and not fault:
                self.netrx.start()
            load0 = os.getloadavg()[0]
            started = time.monotonic()
            pub = self.publisher(framework, url, a.seconds)
            if fault:
                self.inject(fault, servers, started)
            published = json.loads(pub.out.expect(r'^\{"published"', a.seconds + 60))
            if churning:
                for c in clients:  # the churn stops with the publishing
                    c.proc.stdin.write(b"calm\n")
                    c.proc.stdin.flush()
            # Overloaded, the nodes and clients are still working through a
            # backlog: wait until they are idle (a delivery still in flight is
            # not a missing one), within a bound.
            busy = [s.pid for s in servers if s.proc.poll() is None] + [c.pid for c in clients]
            row["drain_s"] = wait_idle(busy, a.drain, 60.0)
            # A node killed counts with its CPU read just before the kill.
            cpu1 = (
                sum(self.killed_cpu.pop(pid, None) or cpu_seconds([pid]) for pid in node_pids),
                run_seconds(redis_pids),
            )
            row["redis_idle_ms_per_s"] = round(idle * 1e3, 2)
            # The machine's load (1-minute average) before and after: it is shared.
            row["load"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
            if not fault:
                split1 = cpu_split(node_pids)
                row["server_user_s"] = round(split1[0] - split0[0], 2)
                row["server_system_s"] = round(split1[1] - split0[1], 2)
                if self.netrx is not None:
                    traced = self.netrx.stop()
                    row["server_netrx_s"] = round(
                        sum(traced.get(tid, 0.0) for tid in threads(node_pids)), 3
                    )
            redis_net = cpu1[1] - cpu0[1] - idle * (time.monotonic() - started)
            reports = []
            for c in clients:
                c.proc.stdin.write(b"report\n")
                c.proc.stdin.flush()
                reports.append(json.loads(c.out.expect(r'^\{"report"', 60))["report"])
                if self.echo:
                    r = reports[-1]
                    print(
                        f"[{c.name}] held={r['held']} received={r['received']} closed={r['closed']} refusals={r['refusals']}",
                        file=sys.stderr,
                    )
            self.summarize(row, reports, published, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
            if "server_netrx_s" in row and row["received"]:
                own = cpu1[0] - cpu0[0] - row["server_netrx_s"]
                row["server_own_us_per_delivery"] = round(own / row["received"] * 1e6, 2)
            if row["published"]:
                row["redis_net_us_per_publish"] = round(redis_net / row["published"] * 1e6, 1)
            if churning:
                row["server_cpu_s"] = round(cpu1[0] - cpu0[0], 3)
                row["redis_net_cpu_s"] = round(redis_net, 3)
                row["churned"] = sum(r["churned"] for r in reports)
                row["churn_short"] = sum(r["churn_short"] for r in reports)
        finally:
            for svc in servers + ([front] if front else []):
                self.lab.stop(svc.proc, 2)
            for c in locals().get("clients", []):
                self.lab.stop(c.proc, 2)
        return row

    def inject(self, fault: str, servers: list[Service], started: float) -> None:
        time.sleep(max(0.0, started + self.args.fault_at - time.monotonic()))
        if fault == "kill-node":
            self.killed_cpu[servers[0].pid] = cpu_seconds([servers[0].pid])
            servers[0].proc.send_signal(signal.SIGKILL)
            return
        if self.cluster is not None:
            primary = self.cluster.primaries(self.lab)[0]
        else:
            assert self.single is not None
            primary = self.single
        if fault == "kill-primary":
            primary.proc.send_signal(signal.SIGKILL)
        elif fault == "stop-primary":
            primary.proc.send_signal(signal.SIGSTOP)
            time.sleep(10)
            primary.proc.send_signal(signal.SIGCONT)

    def summarize(
        self,
        row: dict[str, Any],
        reports: list[dict[str, Any]],
        published: dict[str, Any],
        node_cpu: float,
        redis_cpu: float,
    ) -> None:
        counts = published["published"]
        expected = received = dups = 0
        hist: dict[int, int] = {}
        resume: list[float] = []
        for r in reports:
            received += r["received"]
            dups += r["dups"]
            for ch, seen in r["seen"].items():
                expected += counts[int(ch)] * len(seen)
            for k, v in r["latency"].items():
                hist[int(k)] = hist.get(int(k), 0) + v
            resume += r["resume"]
        total = sum(hist.values())

        def pct(p: float) -> float:
            need = p * total
            run = 0
            for k in sorted(hist):
                run += hist[k]
                if run >= need:
                    return k / 10.0
            return float("nan")

        row.update(
            published=sum(counts),
            publish_failed=published.get("failed", 0),
            expected=expected,
            received=received,
            missing=expected - received,
            duplicated=dups,
            deliveries_per_s=round(received / self.args.seconds),
            p50_ms=pct(0.5),
            p99_ms=pct(0.99),
            max_ms=max(hist) / 10.0 if hist else float("nan"),
            server_us_per_delivery=round(node_cpu / received * 1e6, 2) if received else None,
            redis_us_per_publish=round(redis_cpu / sum(counts) * 1e6, 1) if sum(counts) else None,
            max_pause_s=round(max(r["max_gap"] for r in reports), 3),
            client_cpu_s=round(sum(r["cpu"] for r in reports), 2),
        )
        if resume or any(r["closed"] for r in reports):
            row.update(
                reconnects=sum(r["reconnects"] for r in reports),
                resume_max_s=round(max(resume), 3) if resume else None,
                never_resumed=sum(r["unresumed"] for r in reports),
                resets=sum(r.get("resets", 0) for r in reports),
            )


COLUMNS = [
    ("framework", 9),
    ("broker", 15),
    ("nodes", 5),
    ("shards", 6),
    ("held", 6),
    ("deliveries_per_s", 9),
    ("p50_ms", 7),
    ("p99_ms", 7),
    ("max_ms", 7),
    ("server_us_per_delivery", 9),
    ("server_own_us_per_delivery", 9),
    ("redis_us_per_publish", 9),
    ("redis_net_us_per_publish", 9),
    ("missing", 8),
    ("duplicated", 5),
    ("server_user_s", 6),
    ("server_system_s", 6),
    ("node_idle_ms_per_s", 7),
    ("load", 12),
]
HEADS = {
    "deliveries_per_s": "deliv/s",
    "server_us_per_delivery": "srv us/d",
    "server_own_us_per_delivery": "own us/d",
    "redis_us_per_publish": "redis us/p",
    "redis_net_us_per_publish": "net us/p",
    "duplicated": "dups",
    "server_user_s": "usr s",
    "server_system_s": "sys s",
    "node_idle_ms_per_s": "idle ms/s",
}


def threads(pids: list[int]) -> set[int]:
    """Every thread id of ``pids`` and the processes below them (ftrace names threads)."""
    found: set[int] = set()
    for pid in descendants(pids):
        try:
            found.update(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return found


def wait_idle(pids: list[int], least: float, most: float) -> float:
    """Waits ``least`` seconds, then until ``pids`` use under 5% of a CPU over 0.5 s (``most`` at most)."""
    start = time.monotonic()
    time.sleep(least)
    before = cpu_seconds(pids)
    while time.monotonic() - start < most:
        time.sleep(0.5)
        now = cpu_seconds(pids)
        if now - before < 0.025:
            break
        before = now
    return round(time.monotonic() - start, 1)


def show(row: dict[str, Any], header: bool = False) -> None:
    if header:
        print(" ".join(HEADS.get(k, k).rjust(w) for k, w in COLUMNS), flush=True)
    line = " ".join(str(row.get(k, "-")).rjust(w) for k, w in COLUMNS)
    if "fault" in row:
        line += (
            f"  fault={row['fault']} recovery={row['recovery']} pause={row['max_pause_s']}s"
            f" reconnect-to-message max={row.get('resume_max_s')}s"
            f" never-resumed={row.get('never_resumed', 0)} resets={row.get('resets', 0)}"
            f" publishes-failed={row.get('publish_failed', 0)}"
        )
    if "churn" in row:
        line += (
            f"  churn={row['churn']:.0%}/s recovery={row['recovery']}"
            f" reconnects={row.get('reconnects', 0)} churned={row.get('churned', 0)}"
            f" resets={row.get('resets', 0)}"
        )
        if row.get("resume_max_s") is not None:
            line += f" reconnect-to-message max={row['resume_max_s']}s"
        if "server_us_per_recovery" in row:
            line += (
                f" per recovery: server {row['server_us_per_recovery']} us,"
                f" Redis {row['redis_us_per_recovery']} us (net)"
            )
    print(line, flush=True)


def per_recovery(base: dict[str, Any], churned: dict[str, Any]) -> None:
    """Sets ``churned``'s CPU per recovery: its CPU over ``base``'s (the same run without churn)."""
    n = churned.get("reconnects") or 0
    if not n:
        return
    churned["server_us_per_recovery"] = round(
        (churned["server_cpu_s"] - base["server_cpu_s"]) / n * 1e6, 1
    )
    churned["redis_us_per_recovery"] = round(
        (churned["redis_net_cpu_s"] - base["redis_net_cpu_s"]) / n * 1e6, 1
    )


def medians(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration and framework: the medians of the table's rounds.

    Server CPU per delivery and p99 are medians over the rounds; missing and
    duplicated are summed over them; held is the fewest of any round.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in table:
        key = (r["framework"], r["broker"], r["nodes"], r.get("shards", 1))
        groups.setdefault(key, []).append(r)
    out = []
    for (framework, broker, nodes, shards), rows in groups.items():
        cpu = [r["server_us_per_delivery"] for r in rows if r.get("server_us_per_delivery")]
        own = [r["server_own_us_per_delivery"] for r in rows if r.get("server_own_us_per_delivery")]
        out.append(
            {
                "framework": framework,
                "broker": broker,
                "nodes": nodes,
                "shards": shards,
                "rounds": len(rows),
                "held": min(r["held"] for r in rows),
                "server_us_per_delivery": round(statistics.median(cpu), 2) if cpu else None,
                "server_us_per_delivery_rounds": cpu,
                # Less the NET_RX softirqs traced as the nodes (None: not traced).
                "server_own_us_per_delivery": round(statistics.median(own), 2) if own else None,
                "server_own_us_per_delivery_rounds": own,
                "steered": all(r.get("steered") for r in rows),
                # The machine's 1-minute load over the rounds (it is shared).
                "load": [
                    min(min(r["load"]) for r in rows if r.get("load")),
                    max(max(r["load"]) for r in rows if r.get("load")),
                ]
                if any(r.get("load") for r in rows)
                else None,
                "p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 1),
                "redis_us_per_publish": round(
                    statistics.median(r["redis_us_per_publish"] or 0 for r in rows), 1
                ),
                "missing": sum(r["missing"] for r in rows),
                "duplicated": sum(r["duplicated"] for r in rows),
            }
        )
    return out


def save(measured: dict[str, list[dict[str, Any]]], isolation: str) -> Path:
    """Records each key's rows (``table``, ``faults``, ``churn``) in benchmarks/results/cluster.json.

    benchmarks/figures.py's format: the README's figures get one row per
    configuration measured with both frameworks: the nodes' own CPU per
    delivery, Squall's and Socket.IO's, the total in the label (`pair`). The other keys' rows are kept when they were
    measured by this same source. Each key keeps the stamp (date, commit,
    squall build, command) of the run that measured it, under ``parts``:
    recording the fault table does not relabel the table; each row also
    says when it was measured (``measured``), since a key's rows may come
    from several runs of some configurations each.
    """
    sys.path.insert(0, str(REPO / "benchmarks"))
    import figures

    me = Path(__file__).resolve()
    names = ("table", "faults", "churn")
    kept: dict[str, Any] = {}
    parts: dict[str, dict[str, str]] = {}
    if RESULTS.exists():
        old = json.loads(RESULTS.read_text())
        for name, part in figures.part_stamps(old, names).items():
            if part.get("source_sha256") == figures.source_hash(me):
                kept[name] = old[name]
                parts[name] = part
    # The squall the nodes ran: this environment's (PYTHONPATH included).
    now = figures.stamp(me, figures.squall_build(dict(os.environ)))
    for rows in measured.values():
        for r in rows:
            r["measured"] = f"{now['date']} {now['commit']}"
    for key in measured:
        parts[key] = now

    # A run of some configurations replaces those and keeps the others.
    def ident(r: dict[str, Any]) -> tuple[Any, ...]:
        return (
            r["framework"],
            r["broker"],
            r["nodes"],
            r.get("shards", 3) if r["broker"] != "redis" else 1,
            r.get("fault"),
            r.get("recovery"),
            r.get("churn"),
            r.get("round"),
        )

    for key, rows in measured.items():
        fresh = {ident(r) for r in rows}
        kept[key] = [r for r in kept.get(key, []) if ident(r) not in fresh] + rows
    kept["isolation"] = isolation
    table = kept["medians"] = medians(kept.get("table", []))
    pairs = [pair(row, other) for row, other in paired(table)]
    return figures.record(
        "cluster", me, now["squall_build"], {"rows": pairs, **kept}, parts, "table"
    )


def paired(table: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The medians measured with both frameworks: (Squall's, Socket.IO's) per configuration."""
    out = []
    for row in table:
        if row["framework"] != "squall" or not row.get("server_us_per_delivery"):
            continue
        for other in table:
            if (
                other["framework"] == "socketio"
                and other["nodes"] == row["nodes"]
                and other.get("server_us_per_delivery")
                and (other["broker"], row["broker"])
                in {("redis", "redis"), ("cluster-sharded", "cluster-sharded")}
            ):
                out.append((row, other))
    return out


def pair(row: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """The README's figure for one configuration (benchmarks/figures.py's measured kind).

    Headline: the nodes' own CPU per delivery, their CPU less the NET_RX
    softirqs traced as them (what a node pays between machines, counted the
    same way for both frameworks); the total beside it in the label, with
    the steering and the machine's load. The total alone where not traced.
    """
    where = (
        f"{row['nodes']} node(s), "
        f"{'one Redis' if row['broker'] == 'redis' else 'Redis Cluster, sharded'}, "
        f"{row['held']:,} subscribers, vs Socket.IO 4.8 + redis-adapter (sharded)"
        f", median of {min(row['rounds'], other['rounds'])} rounds"
    )
    loads = [m["load"] for m in (row, other) if m.get("load")]
    if loads:
        where += f", load {min(x[0] for x in loads):.1f} to {max(x[1] for x in loads):.1f}"
    own = "server_own_us_per_delivery"
    if not (row.get(own) and other.get(own)):
        return {
            "label": f"Server CPU per WebSocket delivery (total), {where}",
            "squall": row["server_us_per_delivery"],
            "other": other["server_us_per_delivery"],
            "unit": "us",
        }
    steering = "steered" if row.get("steered") and other.get("steered") else "not steered"
    total = (
        f"total {steering} {row['server_us_per_delivery']:g} against "
        f"{other['server_us_per_delivery']:g} us"
        f" ({row['server_us_per_delivery'] / other['server_us_per_delivery']:.2f}x)"
    )
    return {
        "label": (
            f"Nodes' own CPU per WebSocket delivery (less the NET_RX softirqs traced as them;"
            f" {total}), {where}"
        ),
        "squall": row[own],
        "other": other[own],
        "unit": "us",
    }


def run_churn(bench: Bench, args: argparse.Namespace, header: bool) -> list[dict[str, Any]]:
    """The churn rows: the configuration without churn, then with ``args.churn``."""
    sharded = engine_supports("redis+cluster://x:1?sharded=1") is None
    kind = "cluster-sharded" if sharded else "redis"
    if not sharded:
        print("== churn on one Redis: no Redis Cluster engine", flush=True)
    rows: list[dict[str, Any]] = []
    churned: list[dict[str, Any]] = []
    for n in range(1, args.churn_rounds + 1):
        pair = []
        for churn in (0.0, args.churn):
            try:
                row = bench.run("squall", kind, 2, churn=churn)
            except LabError as exc:
                print(f"== churn {churn:g} round {n}: failed: {exc}", flush=True)
                return rows
            row["round"] = n
            if pair:
                per_recovery(pair[0], row)
                churned.append(row)
            pair.append(row)
            rows.append(row)
            show(row, header)
            header = False
    done = [r for r in churned if "server_us_per_recovery" in r]
    if done:
        last = churned[-1]
        last["rounds"] = len(done)
        for key in ("server_us_per_recovery", "redis_us_per_recovery"):
            last["median_" + key] = statistics.median(r[key] for r in done)
        print(
            f"== churn {args.churn:.0%}/s, median of {len(done)} round(s) per recovery:"
            f" server {last['median_server_us_per_recovery']} us,"
            f" Redis {last['median_redis_us_per_recovery']} us (net of idle);"
            f" missing {sum(r['missing'] for r in churned)},"
            f" duplicated {sum(r['duplicated'] for r in churned)},"
            f" reconnects {sum(r.get('reconnects', 0) for r in churned)}",
            flush=True,
        )
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    small = os.environ.get("SMALL") == "1"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--subscribers",
        type=int,
        default=int(os.environ.get("SUBSCRIBERS", 2000 if small else 20000)),
    )
    parser.add_argument("--channels", type=int, default=int(os.environ.get("CHANNELS", 100)))
    parser.add_argument(
        "--rate", type=float, default=float(os.environ.get("RATE", 100)), help="publishes/s in all"
    )
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("SECONDS", 5 if small else 15))
    )
    parser.add_argument(
        "--nodes", default=os.environ.get("NODES", "1,2,4"), help="node counts, e.g. 1,2,4"
    )
    parser.add_argument(
        "--brokers", default=os.environ.get("BROKERS", "redis,cluster-classic,cluster-sharded")
    )
    parser.add_argument("--frameworks", default=os.environ.get("FRAMEWORKS", "squall,socketio"))
    parser.add_argument(
        "--shards",
        default=os.environ.get("SHARDS", "3"),
        help="the Redis Cluster's primaries (each with a replica), e.g. 1,3",
    )
    parser.add_argument("--partitions", type=int, default=128)
    parser.add_argument("--sources", type=int, default=4, help="source addresses per client host")
    parser.add_argument(
        "--rounds",
        type=int,
        default=int(os.environ.get("ROUNDS", 5)),
        help="rounds of the table (frameworks alternated); medians per configuration",
    )
    parser.add_argument(
        "--no-steer",
        dest="steer",
        action="store_false",
        default=os.environ.get("STEER", "1") != "0",
        help="leave the clients' receive work of what the nodes send on the nodes' CPU",
    )
    parser.add_argument(
        "--no-trace",
        dest="trace",
        action="store_false",
        help="do not trace the NET_RX softirqs billed to the nodes (ftrace, root)",
    )
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=1.5)
    parser.add_argument("--faults", action="store_true", help="the fault table instead")
    parser.add_argument("--fault-at", type=float, default=4.0)
    parser.add_argument(
        "--fault-plan",
        default=os.environ.get("FAULTS", ""),
        help="faults to run, e.g. kill-node (default: all)",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="faults without recovery: reconnecting clients do not send their position",
    )
    parser.add_argument(
        "--fault-broker",
        choices=["cluster-sharded", "redis"],
        default=os.environ.get("FAULT_BROKER", "cluster-sharded"),
        help="the faults' broker (one Redis: stopped, not killed)",
    )
    parser.add_argument("--history", type=int, default=1000, help="history kept per channel")
    parser.add_argument(
        "--churn",
        type=float,
        default=float(os.environ.get("CHURN", 0.1)),
        help="the churn rows' fraction of subscribers reconnecting each second (0: none)",
    )
    parser.add_argument("--churn-only", action="store_true", help="the churn rows alone")
    parser.add_argument(
        "--churn-subscribers",
        type=int,
        default=int(os.environ.get("CHURN_SUBSCRIBERS", 4000)),
        help="the churn rows' subscribers at most",
    )
    parser.add_argument(
        "--churn-rounds",
        type=int,
        default=int(os.environ.get("CHURN_ROUNDS", 3)),
        help="rounds of the churn pair (without, with churn); medians per recovery",
    )
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    args.nodes = [int(n) for n in str(args.nodes).split(",")]
    args.shards = [int(n) for n in str(args.shards).split(",")]
    if not all(1 <= n <= 8 for n in args.shards):
        parser.error("--shards takes 1 to 8 primaries")
    if args.faults:
        # A message on each channel every 0.2 s: a pause is seen to that grain.
        args.channels = int(os.environ.get("CHANNELS", 20))
        args.seconds = max(args.seconds, 20.0)
        args.subscribers = min(args.subscribers, 4000)
    brokers = args.brokers.split(",")
    frameworks = args.frameworks.split(",")

    rows: list[dict[str, Any]] = []
    churn_rows: list[dict[str, Any]] = []
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="squall-bench-cluster-") as tmp:
        print(f"== lab: {lab.note}; network {lab.network}", flush=True)
        bench = Bench(args, lab, Path(tmp))
        first = True
        if args.faults:
            why = engine_supports("redis+cluster://198.18.0.1:6379?sharded=1")
            if args.fault_broker == "redis":
                why = "--fault-broker redis"
            if why is None:
                kind = "cluster-sharded"
                plan = ["kill-primary", "stop-primary", "kill-node"]
            else:
                # One Redis has no replica to take over: it is stopped, not killed.
                print(f"== no Redis Cluster engine ({why}): faults on one Redis", flush=True)
                kind = "redis"
                plan = ["stop-primary", "kill-node"]
            if args.fault_plan:
                plan = [f for f in plan if f in args.fault_plan.split(",")]
            for fault in plan:
                bench.stop_cluster()  # a fresh cluster for each fault
                row = bench.run("squall", kind, 2, fault)
                rows.append(row)
                show(row, first)
                first = False
        elif not args.churn_only:
            configs = [
                (nodes, kind, shards)
                for nodes in args.nodes
                for kind in brokers
                for shards in (args.shards if kind != "redis" else [1])
            ]
            # Round after round over every configuration, the frameworks'
            # order swapped each round: a load that comes and goes on this
            # shared machine falls on both.
            for rnd in range(1, args.rounds + 1):
                order = frameworks if rnd % 2 else frameworks[::-1]
                for nodes, kind, shards in configs:
                    for framework in order:
                        if framework == "socketio" and kind == "cluster-classic":
                            continue  # the contender runs its sharded adapter only
                        if framework == "squall" and kind != "redis":
                            why = engine_supports(
                                f"redis+cluster://x:1?sharded={int(kind == 'cluster-sharded')}"
                            )
                            if why:
                                print(f"== squall {kind}: skipped ({why})", flush=True)
                                continue
                        try:
                            row = bench.run(framework, kind, nodes, shards=shards)
                        except LabError as exc:
                            print(
                                f"== {framework} {kind} {nodes} nodes {shards} shards failed: {exc}",
                                flush=True,
                            )
                            continue
                        row["round"] = rnd
                        rows.append(row)
                        show(row, first)
                        first = False
            for m in medians(rows):
                print(
                    f"== median of {m['rounds']} round(s): {m['framework']} {m['broker']}"
                    f" {m['nodes']} node(s) {m['held']} held: {m['server_us_per_delivery']} us"
                    f" per delivery ({m['server_own_us_per_delivery']} its own, less NET_RX),"
                    f" p99 {m['p99_ms']} ms, missing {m['missing']} (all rounds)",
                    flush=True,
                )
        if not args.faults and args.churn > 0:
            churn_rows = run_churn(bench, args, first)
        isolation = lab.note
    measured = {"faults" if args.faults else "table": rows} if rows else {}
    if churn_rows:
        measured["churn"] = churn_rows
    if measured and not args.no_record:
        path = save(measured, isolation)
        print(f"== recorded in {path.relative_to(REPO)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
