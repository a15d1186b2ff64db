"""The servers of the many-machine harness, each started in a host of a `netlab.Lab`.

One Redis; a Redis Cluster of 3 primaries and 3 replicas (Debian's
redis-server, joined by ``redis-cli --cluster create``; 1 or 2 shards by hand); Squall nodes
(``squall run`` of an application, one per host); Socket.IO nodes (Node);
nginx proxying WebSockets to the nodes. Every process goes through
`netlab.Lab.spawn`, so the lab kills it on exit; readiness is awaited on
the process's own log line, with a deadline.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Optional

from netlab import Host, Lab, LabError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NODE = shutil.which("node") or "/usr/bin/node"


class Output:
    """A process's output lines, read on a thread so that they can be awaited with a deadline."""

    def __init__(self, name: str, stream: IO[bytes], echo: bool = False) -> None:
        self.name = name
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.seen: list[str] = []
        self.echo = echo
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self.echo:
                print(f"[{self.name}] {line}", file=sys.stderr, flush=True)
            self.lines.put(line)
        stream.close()  # the process is gone: its pipe is ours to close
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float) -> str:
        """The first new line matching ``pattern``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                line = ""
            if line is None or remaining <= 0:
                tail = "\n".join(self.seen[-15:])
                raise LabError(f"{self.name} did not say {pattern!r} in {timeout}s:\n{tail}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line


class Service:
    """A process of the lab with its output."""

    def __init__(self, name: str, host: Host, proc: subprocess.Popen[bytes], out: Output) -> None:
        self.name = name
        self.host = host
        self.proc = proc
        self.out = out

    @property
    def pid(self) -> int:
        return self.proc.pid


def spawn(
    lab: Lab, host: Host, name: str, argv: list[str], cpus: Optional[str], echo: bool, **kw: Any
) -> Service:
    proc = lab.spawn(host, argv, cpus=cpus, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    assert proc.stdout is not None
    return Service(name, host, proc, Output(name, proc.stdout, echo))


def start_redis(
    lab: Lab,
    host: Host,
    workdir: Path,
    port: int = 6379,
    cluster: bool = False,
    cpus: Optional[str] = None,
    echo: bool = False,
) -> Service:
    """A redis-server on ``host`` (no persistence), ready to accept connections."""
    data = workdir / f"redis-{host.name}"
    data.mkdir(parents=True, exist_ok=True)
    args = [REDIS_SERVER, "--port", str(port), "--bind", host.address, "--save", ""]
    args += ["--appendonly", "no", "--dir", str(data), "--logfile", "", "--protected-mode", "no"]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        if host.netns is None:
            # Loopback hosts (netlab's fallback): the cluster bus would
            # connect from 127.0.0.1 and every node would record its peers
            # there; each node says and sends from its own address.
            args += ["--cluster-announce-ip", host.address, "--bind-source-addr", host.address]
        # A primary gone for 2 s is failed over (Redis's default is 15 s).
        args += ["--cluster-node-timeout", "2000"]
    svc = spawn(lab, host, f"redis-{host.name}", args, cpus, echo)
    svc.out.expect("Ready to accept connections", 20)
    return svc


class RedisCluster:
    """Redis-servers joined as primaries with one replica each (3 of each unless said)."""

    def __init__(self, servers: list[Service], port: int) -> None:
        self.servers = servers
        self.port = port

    @property
    def nodes(self) -> list[str]:
        return [f"{s.host.address}:{self.port}" for s in self.servers]

    def url(self, sharded: bool, partitions: int = 128) -> str:
        return f"redis+cluster://{','.join(self.nodes[:3])}?partitions={partitions}&sharded={int(sharded)}"

    def info(self, lab: Lab, server: Service, section: str = "cluster info") -> str:
        return lab.run(
            server.host,
            [REDIS_CLI, "-h", server.host.address, "-p", str(self.port), *section.split()],
        )

    def primaries(self, lab: Lab) -> list[Service]:
        """The servers that are primaries now (from CLUSTER NODES)."""
        alive = [s for s in self.servers if s.proc.poll() is None]
        text = self.info(lab, alive[0], "cluster nodes")
        found = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) > 2 and "master" in fields[2] and "fail" not in fields[2]:
                address = fields[1].split("@")[0]
                found += [s for s in self.servers if f"{s.host.address}:{self.port}" == address]
        return found

    def wait_ok(self, lab: Lab, timeout: float = 30.0) -> None:
        """Waits until every live server says cluster_state:ok."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for s in self.servers:
                if s.proc.poll() is None:
                    try:
                        states.append("cluster_state:ok" in self.info(lab, s))
                    except LabError:
                        states.append(False)
            if all(states):
                return
            if time.monotonic() > deadline:
                raise LabError(f"the Redis Cluster is not ok after {timeout}s")
            time.sleep(0.1)


def start_redis_cluster(
    lab: Lab,
    hosts: list[Host],
    workdir: Path,
    port: int = 6379,
    cpus: Optional[str] = None,
    echo: bool = False,
) -> RedisCluster:
    """Primaries with one replica each on ``hosts`` (the first half primaries), slots assigned, state ok.

    Six hosts (3 shards) are joined by ``redis-cli --cluster create``, as on
    real machines; it refuses fewer than 3 primaries, so 1 or 2 shards are
    joined by hand: slots split evenly, ``CLUSTER MEET``, ``CLUSTER REPLICATE``.
    """
    if len(hosts) % 2 or not hosts:
        raise LabError(
            f"a Redis Cluster here is a primary and a replica per shard, not {len(hosts)}"
        )
    servers = [
        start_redis(lab, h, workdir, port, cluster=True, cpus=cpus, echo=echo) for h in hosts
    ]
    cluster = RedisCluster(servers, port)
    shards = len(hosts) // 2
    if shards >= 3:
        lab.run(
            hosts[0],
            [REDIS_CLI, "--cluster", "create", *cluster.nodes]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            timeout=60,
        )
    else:
        join_by_hand(lab, cluster, shards)
    cluster.wait_ok(lab)
    return cluster


def join_by_hand(lab: Lab, cluster: RedisCluster, shards: int) -> None:
    """Slots to the first ``shards`` servers, the others their replicas, in order."""
    servers = cluster.servers
    for i, s in enumerate(servers[:shards]):
        first, last = i * 16384 // shards, (i + 1) * 16384 // shards - 1
        cluster.info(lab, s, f"cluster addslotsrange {first} {last}")
    for s in servers[1:]:
        cluster.info(lab, servers[0], f"cluster meet {s.host.address} {cluster.port}")
    ids = [cluster.info(lab, s, "cluster myid").strip() for s in servers]
    deadline = time.monotonic() + 30
    for replica, primary in zip(servers[shards:], ids[:shards], strict=True):
        # A replica must have heard of its primary (gossip) before it follows it.
        while primary not in cluster.info(lab, replica, "cluster nodes"):
            if time.monotonic() > deadline:
                raise LabError("the Redis Cluster's nodes did not meet in 30s")
            time.sleep(0.1)
        answer = cluster.info(lab, replica, f"cluster replicate {primary}")
        if "OK" not in answer:
            raise LabError(f"CLUSTER REPLICATE {primary}: {answer.strip()}")


def start_squall_node(
    lab: Lab,
    host: Host,
    pubsub_url: str,
    app: str = "node_app:make_app",
    app_dir: Path = HERE,
    port: int = 8000,
    cpus: Optional[str] = None,
    echo: bool = False,
    env: Optional[dict[str, str]] = None,
    wait: bool = True,
) -> Service:
    """``squall run APP --factory`` bound to ``host``'s address (``wait``: until it serves)."""
    args = [sys.executable, "-m", "squall", "run", app, "--factory", "--app-dir", str(app_dir)]
    args += ["--bind", f"{host.address}:{port}", "--no-access-log", "--backlog", "8192"]
    args += ["--timeout-graceful-shutdown", "1"]
    environ = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_PUBSUB=pubsub_url)
    environ.update(env or {})
    svc = spawn(lab, host, f"squall-{host.name}", args, cpus, echo, env=environ, cwd=str(app_dir))
    if wait:
        svc.out.expect(SQUALL_READY, 30)
    return svc


SQUALL_READY = r"Worker \d+ serving"


def start_sio_node(
    lab: Lab,
    host: Host,
    redis: str,
    port: int = 8000,
    cpus: Optional[str] = None,
    echo: bool = False,
) -> Service:
    """A Socket.IO node (benchmarks/cluster/sio/server.js) on ``host``'s address."""
    args = [NODE, str(HERE / "sio" / "server.js"), "serve", host.address, str(port), redis]
    svc = spawn(lab, host, f"sio-{host.name}", args, cpus, echo, cwd=str(HERE / "sio"))
    svc.out.expect("^ready", 30)
    return svc


NGINX_CONF = """\
daemon off;
worker_processes 1;
worker_rlimit_nofile 20000;
{user}
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 19000; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{
        default '';
        ~*^websocket$ upgrade;
    }}
    # A "node=N" cookie pins a browser to node N (to watch a reply posted
    # through one node arrive on a page served by another).
    map $cookie_node $pinned {{
        default nodes;
{pins}
    }}
{pinned}
    upstream nodes {{
        least_conn;
{servers}
        keepalive 16;
        keepalive_timeout 4s;
    }}
    server {{
        listen {listen} backlog=8192;
        location / {{
            proxy_pass http://$pinned;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            proxy_buffering off;
            # A node that died: the next one takes the (re)connection.
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def start_nginx(
    lab: Lab,
    host: Host,
    upstreams: list[str],
    workdir: Path,
    port: int = 80,
    cpus: Optional[str] = None,
    echo: bool = False,
) -> Service:
    """nginx on ``host`` proxying HTTP and WebSockets to ``upstreams`` (host:port)."""
    d = workdir / f"nginx-{host.name}"
    d.mkdir(parents=True, exist_ok=True)
    conf = NGINX_CONF.format(
        user="user root;" if os.geteuid() == 0 else "",
        dir=d,
        servers="\n".join(f"        server {u} max_fails=1 fail_timeout=5s;" for u in upstreams),
        listen=f"{host.address}:{port}",
        pins="\n".join(f"        {n} node_{n};" for n in range(1, len(upstreams) + 1)),
        pinned="\n".join(
            f"    upstream node_{n} {{ server {u}; keepalive 4; keepalive_timeout 4s; }}"
            for n, u in enumerate(upstreams, 1)
        ),
    )
    (d / "nginx.conf").write_text(conf)
    svc = spawn(
        lab,
        host,
        f"nginx-{host.name}",
        [NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", "stderr"],
        cpus,
        echo,
    )
    svc.out.expect("start worker process", 20)
    return svc


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each pid and its descendants (from /proc), summed."""
    return sum(cpu_split(pids))


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) of each pid and its descendants (from /proc), summed, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in descendants(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError):
            continue
    return user / tick, system / tick


def descendants(pids: list[int]) -> list[int]:
    """``pids`` and every process below them (from /proc)."""
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                todo += [int(c) for c in children]
        except OSError:
            continue
    return found


def run_seconds(pids: list[int]) -> float:
    """Time on a CPU of each pid's threads (``/proc/PID/task/*/schedstat``, nanoseconds), summed.

    Finer than `cpu_seconds`' clock ticks: Redis's idle work over a couple
    of seconds is a few ticks a process.
    """
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9
