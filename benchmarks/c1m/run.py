"""C1M: WebSockets on one machine, ramped in steps, to a million.

``python benchmarks/c1m/run.py [--steps 100000,250000,500000,1000000] [--kind squall|aiohttp|node]
[--rate 5000] [--idle 60] [--ping 0] [--steer] [--shared] [--out FILE]``

The server (server.py: squall.websocket in the chat pattern, uvloop) runs
pinned to CPU 0 and the load client (client.c, compiled here with gcc)
to CPU 1 (``--shared``: both on both), both at niceness 10, on loopback. A process holds at most its
RLIMIT_NOFILE hard limit of sockets (which only CAP_SYS_RESOURCE can
raise), so there are as many server processes as a step needs at
``--per-process`` connections each, sharing the port (SO_REUSEPORT), and
as many clients, each binding its sockets to a source address of its own
(127.1.0.1 + i) so that each has its own ports. For each step the connections are opened at ``--rate`` per
second, then the server is left idle for ``--idle`` seconds, then sent one
message to each of the 100 channels and one to all, then 10% of the
clients drop and reconnect at once. Figures per step go to stdout as a
table and, with ``--out``, to a JSON file.

The harness sets, for its run only, and puts back when it ends (also on
an error or Ctrl-C):
- ``fs.nr_open`` (the highest RLIMIT_NOFILE a process may have) and
  RLIMIT_NOFILE of the server and client (their own, set at their start);
- ``fs.file-max`` (files open on the machine: both ends of every
  connection);
- ``net.ipv4.ip_local_port_range`` (ports per source address);
- ``net.core.somaxconn`` and ``net.ipv4.tcp_max_syn_backlog`` (the
  accept queue the server asks for, 65535, and half-open connections
  during a storm);
- ``net.core.netdev_max_backlog`` (loopback hands every packet to the
  per-CPU backlog queue: a storm's SYNs past it are dropped and retried a
  second later);
- ``net.ipv4.tcp_mem`` (pages of socket buffers the kernel allows in all:
  a broadcast to all puts one frame in each of a million receive queues);
- ``net.ipv4.tcp_max_tw_buckets`` (sockets in TIME_WAIT after the
  reconnect storm);
- with ``--steer``, loopback's receive packet steering
  (``/sys/class/net/lo/queues/rx-0/rps_cpus``) to the clients' CPU
  (``--steer-cpus 3``: spread over both CPUs, each flow to one by its
  hash, so that each core carries about half of the receive work).

``--steer``: on loopback the sender's CPU also runs the receiver's TCP
input (the packet is handed over in the sender's softirq), so without
steering the servers' core does the clients' receive work too: at 100,000
subscribers 15.9 us of server CPU per delivery unsteered, 5.5 steered.
Between machines that work is the client machine's. Steering moves every
packet's receive work on loopback to CPU 1, the server's ACKs from the
clients included (a TCP flow hashes to one CPU both ways), so the servers'
CPU steered leaves out their own ACK processing; each broadcast row keeps
the clients' CPU beside the servers'. The loopback device is the
machine's: other programs' local traffic is steered too while a run lasts.
Conntrack: when ``nf_conntrack`` is loaded, its count is recorded at every
step (it stays 0 when no rule asks for tracking; if it grows,
``nf_conntrack_max`` is raised and put back too).

The machine is shared: before each chunk of connections the harness reads
``MemAvailable`` and stops the ramp, saying so, when it would fall under
``--floor-gib`` (5 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
PAGE = os.sysconf("SC_PAGE_SIZE")
# Where `npm install ws` put it (C1M_NODE_PATH to change): not committed.
NODE_PATH = "/tmp/c1m-node/node_modules"
TICK = os.sysconf("SC_CLK_TCK")
GiB = 1 << 30
# Loopback's receive packet steering, and the clients' CPU (1) as its mask.
STEER_FILE = "/sys/class/net/lo/queues/rx-0/rps_cpus"
CLIENT_CPU_MASK = "2"
# Where the servers and the clients run: each its own CPU, or (--shared)
# both on both, as the scheduler places them.
CPUS = {"server": "0", "client": "1"}


# -- the machine


def meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, rest = line.split(":", 1)
            out[name] = int(rest.split()[0]) * 1024
    return out


def slabinfo() -> dict[str, int]:
    """Bytes per slab cache (objects allocated x object size)."""
    out = {}
    with open("/proc/slabinfo") as f:
        for line in f.readlines()[2:]:
            parts = line.split()
            out[parts[0]] = int(parts[2]) * int(parts[3])
    return out


def sockstat() -> str:
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                return line.strip()
    return ""


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def conntrack_count() -> Optional[int]:
    try:
        return int(Path("/proc/sys/net/netfilter/nf_conntrack_count").read_text())
    except OSError:
        return None


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid``, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Sysctls:
    """Sets kernel settings for this run and puts every one back."""

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}

    def path(self, name: str) -> Path:
        """A sysctl's file (``net.core.somaxconn``), or a file of /sys given whole."""
        if name.startswith("/sys/"):
            return Path(name)
        return Path("/proc/sys") / name.replace(".", "/")

    def get(self, name: str) -> str:
        return self.path(name).read_text().strip()

    def set(self, name: str, value: str) -> None:
        if name not in self.saved:
            self.saved[name] = self.get(name)
        self.path(name).write_text(value)

    def at_least(self, name: str, value: int) -> None:
        if int(self.get(name).split()[0]) < value:
            self.set(name, str(value))

    def restore(self) -> None:
        for name, value in reversed(list(self.saved.items())):
            try:
                self.path(name).write_text(value)
            except OSError as exc:
                print(f"could not put back {name}={value}: {exc}", file=sys.stderr)
        self.saved.clear()


# -- the processes


# Server and client processes run at this niceness (whatever the harness's own).
NICE = 10


def nofile_for_child(limit: int) -> Any:
    def set_limit() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
        os.nice(NICE - os.nice(0))

    return set_limit


def nofile_hard() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def send_line(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def read_json(proc: subprocess.Popen[str], timeout: float, what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no answer to {what!r} in {timeout} s")
    answer = proc.stdout.readline()
    if not answer:
        raise RuntimeError(f"process exited ({proc.poll()}) on {what!r}")
    return json.loads(answer)  # type: ignore[no-any-return]


class Clients:
    """The compiled load clients, each driven by lines on its stdin.

    A process holds at most RLIMIT_NOFILE sockets, so there are as many
    as it takes; each has one source address of its own (127.1.0.1 + i).
    """

    def __init__(self, binary: Path, port: int, count: int, nofile: int) -> None:
        self.procs = [
            subprocess.Popen(
                ["taskset", "-c", CPUS["client"], str(binary)]
                + ["127.0.0.1", str(port), str(1 + i), "1", "100"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=nofile_for_child(nofile),
            )
            for i in range(count)
        ]

    def ask(self, lines: list[str], timeout: float = 900.0) -> list[dict[str, Any]]:
        """Sends each client its line (all at once), then reads every answer."""
        for proc, line in zip(self.procs, lines, strict=True):
            send_line(proc, line)
        return [read_json(p, timeout, line) for p, line in zip(self.procs, lines, strict=True)]

    def ask_all(self, line: str, timeout: float = 900.0) -> list[dict[str, Any]]:
        return self.ask([line] * len(self.procs), timeout)

    def split(self, n: int) -> list[int]:
        """``n`` spread over the clients."""
        c = len(self.procs)
        return [n // c + (1 if i < n % c else 0) for i in range(c)]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu(self) -> float:
        # taskset execs: each Popen's pid is the client's.
        return sum(proc_cpu(p) for p in self.pids())

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    send_line(proc, "quit")
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def merge_errors(answers: list[dict[str, Any]]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for a in answers:
        for k, v in a["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return errors


def minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


class Servers:
    """Server processes sharing the port (SO_REUSEPORT), each with an admin port."""

    def __init__(
        self, python: str, port: int, count: int, ping: float, kind: str, nofile: int
    ) -> None:
        self.port = port
        self.procs = []
        self.admin_ports = []
        if kind == "node":
            self.start_node(port, count, ping, nofile)
            return
        for i in range(count):
            admin = port + 1 + i
            cmd = ["taskset", "-c", CPUS["server"], python, str(HERE / "server.py")]
            cmd += [str(port), str(admin), "--ping", str(ping), "--kind", kind]
            if count > 1:
                cmd.append("--reuse-port")
            self.procs.append(
                subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, text=True, preexec_fn=nofile_for_child(nofile)
                )
            )
            self.admin_ports.append(admin)
        try:
            for proc in self.procs:
                if "ready" not in read_json(proc, 120, "start"):
                    raise RuntimeError("a server did not start")
        except BaseException:
            self.stop()  # the ones that did start, or they outlive the harness
            raise
        # taskset execs: each Popen's pid is the Python process's.
        self.pids = [p.pid for p in self.procs]

    def start_node(self, port: int, count: int, ping: float, nofile: int) -> None:
        """Node's ``ws``: one primary forking ``count`` workers that share the port."""
        cmd = ["taskset", "-c", CPUS["server"], "node", str(HERE / "server.js")]
        cmd += [str(port), str(port + 1), str(count), str(ping)]
        env = dict(os.environ, NODE_PATH=os.environ.get("C1M_NODE_PATH", NODE_PATH))
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, env=env, preexec_fn=nofile_for_child(nofile)
        )
        self.procs.append(proc)
        try:
            ready = read_json(proc, 120, "start")
        except BaseException:
            self.stop()
            raise
        self.admin_ports = [port + 1 + i for i in range(count)]
        self.pids = [proc.pid] + list(ready["pids"])

    def call_one(self, admin: int, method: str, path: str, timeout: float = 900.0) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{admin}{path}",
            method=method,
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        try:
            return json.loads(body)
        except ValueError:
            return body.decode()

    def call(self, method: str, path: str) -> list[Any]:
        """The same admin request to every server at once (a thread each)."""
        with ThreadPoolExecutor(len(self.admin_ports)) as pool:
            return list(pool.map(lambda a: self.call_one(a, method, path), self.admin_ports))

    def cpu(self) -> float:
        return sum(proc_cpu(p) for p in self.pids)

    def rss(self) -> int:
        return sum(proc_rss(p) for p in self.pids)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def merge_gc(answers: list[dict[str, Any]]) -> dict[str, Any]:
    gcs = [a["gc"] for a in answers]
    return {
        "passes": [sum(g["passes"][i] for g in gcs) for i in range(3)],
        "secs": [round(sum(g["secs"][i] for g in gcs), 3) for i in range(3)],
        "max_pass_s": max(g["max_pass_s"] for g in gcs),
    }


def merge_hist(reports: list[dict[str, Any]]) -> dict[str, Any]:
    hist: dict[int, int] = {}
    for r in reports:
        for ms, count in r["hist"]:
            hist[ms] = hist.get(ms, 0) + count
    total = sum(hist.values())
    out: dict[str, Any] = {
        "delivered": total,
        "max_ms": max((r["max_ms"] for r in reports), default=0),
    }
    for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
        target = min(int(q * total), total - 1)
        seen = 0
        for ms in sorted(hist):
            seen += hist[ms]
            if seen > target:
                out[name] = ms + 0.5
                break
    return out


# -- a step


class Ramp:
    def __init__(self, args: argparse.Namespace, servers: Servers, clients: Clients) -> None:
        self.args = args
        self.servers = servers
        self.clients = clients
        self.open = 0
        self.base_mem = meminfo()
        self.base_slab = slabinfo()
        self.base_rss = servers.rss()
        self.stopped: Optional[str] = None

    def floor(self) -> int:
        return int(self.args.floor_gib * GiB)

    def per_conn_machine(self) -> float:
        """Bytes of the machine's memory each connection has taken so far (both ends)."""
        if self.open < 10000:
            return 40_000.0  # a guess until measured: generous
        used = self.base_mem["MemAvailable"] - meminfo()["MemAvailable"]
        return max(used / self.open, 10_000.0)

    def open_to(self, target: int) -> dict[str, Any]:
        """Opens connections up to ``target`` in chunks, watching the machine's memory."""
        t0 = time.monotonic()
        failed = 0
        # (The clients count errors since they started: this call's are the difference.)
        errors_before = merge_errors(self.clients.ask_all("stat"))
        errors: dict[str, int] = {}
        chunk = max(1000, int(self.args.rate * 4))
        nclients = len(self.clients.procs)
        while self.open < target:
            avail = meminfo()["MemAvailable"]
            n = min(chunk, target - self.open)
            need = n * self.per_conn_machine() * 1.5
            if avail - need < self.floor():
                self.stopped = (
                    f"MemAvailable {avail / GiB:.2f} GiB at {self.open} connections: "
                    f"{n} more (~{self.per_conn_machine():.0f} B each on this machine) "
                    f"would take it under {self.args.floor_gib} GiB"
                )
                break
            rate = self.args.rate / nclients
            got = self.clients.ask([f"open {k} {rate}" for k in self.clients.split(n)])
            nfailed = sum(a["failed"] for a in got)
            failed += nfailed
            errors = minus(merge_errors(got), errors_before)
            self.open = sum(a["open"] for a in got)
            if nfailed > n // 100 + 10:
                self.stopped = (
                    f"{nfailed} of {n} connects failed at {self.open}: {merge_errors(got)}"
                )
                break
        return {"open_s": round(time.monotonic() - t0, 1), "failed": failed, "errors": errors}

    def wait_deliveries(self, expected: int) -> dict[str, Any]:
        """Polls the clients until ``expected`` deliveries arrived or none came for a while."""
        last = -1
        last_change = time.monotonic()
        deadline = time.monotonic() + 600
        merged: dict[str, Any] = {}
        while time.monotonic() < deadline:
            merged = merge_hist(self.clients.ask_all("report"))
            if merged["delivered"] >= expected:
                break
            if merged["delivered"] != last:
                last = merged["delivered"]
                last_change = time.monotonic()
            elif time.monotonic() - last_change > 20:
                break
            time.sleep(0.5)
        merged["expected"] = expected
        merged["lost"] = expected - merged.get("delivered", 0)
        return merged

    def broadcast(self, kind: str, ident: int, subs: int) -> dict[str, Any]:
        self.clients.ask_all("reset")
        self.servers.call("POST", "/admin/gc-reset")
        cpu0 = self.servers.cpu()
        clients_cpu0 = self.clients.cpu()
        t0 = time.monotonic()
        answers = self.servers.call("POST", f"/admin/{kind}?id={ident}&t={time.monotonic_ns()}")
        calls_s = time.monotonic() - t0
        got = self.wait_deliveries(subs)
        got["server_calls_s"] = round(calls_s, 3)
        # The longest of the servers' loops over their subscribers (each
        # frame handed to the kernel by then), beside the whole call.
        got["server_loop_s"] = round(max(a["secs"] for a in answers), 3)
        got["skipped"] = sum(a["skipped"] for a in answers)
        got["server_cpu_s"] = round(self.servers.cpu() - cpu0, 2)
        got["clients_cpu_s"] = round(self.clients.cpu() - clients_cpu0, 2)
        got["gc"] = merge_gc(self.servers.call("GET", "/admin/stats"))
        return got

    def step(self, target: int, ident: int) -> dict[str, Any]:
        row: dict[str, Any] = {"target": target, "load_before": loadavg()}
        self.servers.call("POST", "/admin/gc-reset")
        cpu0 = self.servers.cpu()
        opened_before = self.open
        row.update(self.open_to(target))
        row["server_cpu_open_s"] = round(self.servers.cpu() - cpu0, 1)
        row["server_cpu_per_open_us"] = round(
            1e6 * row["server_cpu_open_s"] / max(1, self.open - opened_before)
        )
        row["open_gc"] = merge_gc(self.servers.call("GET", "/admin/stats"))
        n = self.open
        row["held"] = n
        if n == 0:
            return row
        mem = meminfo()
        slab = slabinfo()
        rss = self.servers.rss()
        row["server_rss_mb"] = round(rss / 2**20)
        row["server_rss_per_conn"] = round((rss - self.base_rss) / n)
        row["slab_per_conn_both_ends"] = round((mem["Slab"] - self.base_mem["Slab"]) / n)
        deltas = {k: v - self.base_slab.get(k, 0) for k, v in slab.items()}
        top = sorted(deltas.items(), key=lambda kv: -kv[1])[:8]
        row["slab_top_per_conn"] = {k: round(v / n) for k, v in top}
        row["mem_available_gib"] = round(mem["MemAvailable"] / GiB, 2)
        row["machine_used_per_conn"] = round(
            (self.base_mem["MemAvailable"] - mem["MemAvailable"]) / n
        )
        row["sockstat"] = sockstat()
        row["conntrack"] = conntrack_count()
        stats = self.clients.ask_all("stat")
        row["client_rss_mb"] = round(sum(s["rss_kb"] for s in stats) / 1024)
        row["client_cpu_s"] = round(sum(s["cpu_s"] for s in stats), 2)
        # Idle.
        self.servers.call("POST", "/admin/gc-reset")
        cpu0 = self.servers.cpu()
        t0 = time.monotonic()
        time.sleep(self.args.idle)
        row["idle_s"] = round(time.monotonic() - t0, 1)
        row["idle_cpu_pct"] = round(100 * (self.servers.cpu() - cpu0) / row["idle_s"], 2)
        idle_stats = self.servers.call("GET", "/admin/stats?objects=1")
        row["idle_gc"] = merge_gc(idle_stats)
        row["gc_tracked"] = sum(s.get("gc_tracked", 0) for s in idle_stats)
        row["load_idle"] = loadavg()
        # Broadcasts: one message to each channel, then one to all.
        subs = sum(s["subs"] for s in idle_stats)
        row["subs"] = subs
        row["subs_per_server"] = [
            min(s["subs"] for s in idle_stats),
            max(s["subs"] for s in idle_stats),
        ]
        row["channels"] = self.broadcast("channels", ident, subs)
        row["all"] = self.broadcast("all", ident + 100, subs)
        row["load_broadcast"] = loadavg()
        # The reconnect storm: 10% drop and reconnect at once.
        cpu0 = self.servers.cpu()
        errors_before = merge_errors(self.clients.ask_all("stat"))
        storm = self.clients.ask([f"drop {k}" for k in self.clients.split(n // 10)])
        row["storm"] = {
            "n": sum(a["n"] for a in storm),
            "secs": max(a["secs"] for a in storm),
            "failed": sum(a["failed"] for a in storm),
            "pending": sum(a["pending"] for a in storm),
            "errors": minus(merge_errors(storm), errors_before),
            "server_cpu_s": round(self.servers.cpu() - cpu0, 1),
        }
        self.open = sum(a["open"] for a in storm)
        row["mem_available_after_gib"] = round(meminfo()["MemAvailable"] / GiB, 2)
        return row


def build_client(out: Path) -> Path:
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(HERE / "client.c")], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="100000,250000,500000,1000000")
    parser.add_argument("--rate", type=float, default=5000.0, help="connections opened per second")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds idle per step")
    parser.add_argument("--ping", type=float, default=0.0, help="server ping interval (0: off)")
    parser.add_argument("--kind", default="squall")
    parser.add_argument(
        "--per-process",
        type=int,
        default=0,
        help="connections a server or client process holds at most "
        "(default: its RLIMIT_NOFILE hard limit less a fifth)",
    )
    parser.add_argument(
        "--servers", type=int, default=0, help="server processes (default: as --per-process needs)"
    )
    parser.add_argument("--port", type=int, default=18750)
    parser.add_argument("--floor-gib", type=float, default=5.0)
    parser.add_argument(
        "--steer",
        action="store_true",
        help="loopback's receive work on the clients' CPU (see the module's text)",
    )
    parser.add_argument(
        "--steer-cpus",
        default="",
        metavar="MASK",
        help="loopback's receive work spread over these CPUs (a hex mask: 3 for both; "
        "implies --steer)",
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--shared",
        action="store_true",
        help="servers and clients on both CPUs, not one each: the machine's best "
        "broadcast time when the clients are on it too (not a figure per server core)",
    )
    args = parser.parse_args()
    if args.shared:
        CPUS.update(server="0,1", client="0,1")
    steps = [int(s) for s in args.steps.split(",")]
    top = max(steps)
    hard = nofile_hard()
    per_process = args.per_process or hard - hard // 5
    nservers = args.servers or -(-top // per_process)
    nclients = -(-top // per_process)
    # What a server process may need: its share, the storm's overlap, the hash's spread.
    nofile = min(hard, max(1024, top // nservers + top // nservers // 4 + 1000))

    def stop_on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_term)
    signal.signal(signal.SIGHUP, stop_on_term)
    sysctls = Sysctls()
    servers: Optional[Servers] = None
    clients: Optional[Clients] = None
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "kind": args.kind,
        "ping": args.ping,
        "rate": args.rate,
        "idle_s": args.idle,
        "servers": nservers,
        "clients": nclients,
        "nofile_hard": hard,
        "per_process": per_process,
    }
    try:
        sysctls.at_least("fs.nr_open", nofile)
        sysctls.at_least("fs.file-max", int(sysctls.get("fs.file-max")) + 3 * top)
        sysctls.set("net.ipv4.ip_local_port_range", "10000\t65000")
        sysctls.at_least("net.core.somaxconn", 65535)
        sysctls.at_least("net.ipv4.tcp_max_syn_backlog", 65535)
        sysctls.at_least("net.core.netdev_max_backlog", 65535)
        sysctls.at_least("net.ipv4.tcp_max_tw_buckets", 2 * top)
        low, pressure, high = (int(x) for x in sysctls.get("net.ipv4.tcp_mem").split())
        pages = 3 * top  # room for one queued frame's page per connection, at both ends
        if high < pages:
            sysctls.set(
                "net.ipv4.tcp_mem", f"{max(low, pages // 2)} {max(pressure, pages)} {pages * 2}"
            )
        steer_mask = args.steer_cpus or (CLIENT_CPU_MASK if args.steer else "")
        if steer_mask:
            int(steer_mask, 16)  # a bad mask is refused here, before anything is set
            sysctls.set(STEER_FILE, steer_mask)
        result["steered"] = bool(steer_mask)
        result["steer_mask"] = steer_mask
        result["cpus"] = dict(CPUS)
        result["sysctl_set"] = {k: sysctls.get(k) for k in sysctls.saved}
        result["sysctl_before"] = dict(sysctls.saved)
        result["conntrack_loaded"] = conntrack_count() is not None
        binary = build_client(Path("/tmp") / f"c1m-client-{os.getpid()}")
        servers = Servers(args.python, args.port, nservers, args.ping, args.kind, nofile)
        clients = Clients(binary, args.port, nclients, nofile)
        ramp = Ramp(args, servers, clients)
        result["base_server_rss_mb"] = round(ramp.base_rss / 2**20, 1)
        result["load_start"] = loadavg()
        print(json.dumps(result), flush=True)
        for i, target in enumerate(steps):
            row = ramp.step(target, 1 + 200 * i)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if ramp.stopped:
                result["stopped"] = ramp.stopped
                print(f"stopped: {ramp.stopped}", flush=True)
                break
    finally:
        if clients is not None:
            clients.stop()
        if servers is not None:
            servers.stop()
        sysctls.restore()
        result["steps"] = rows
        if args.out:
            args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        "held",
        "open_s",
        "rss/conn",
        "slab/conn",
        "idle%",
        "bc-all p50",
        "p99",
        "max",
        "lost",
        "storm_s",
        "load",
    )
    print(" | ".join(head))
    for r in rows:
        if "all" not in r:
            print(f"{r['held']} | {r['open_s']} | (stopped before measuring)")
            continue
        a = r["all"]
        print(
            " | ".join(
                str(x)
                for x in (
                    r["held"],
                    r["open_s"],
                    r["server_rss_per_conn"],
                    r["slab_per_conn_both_ends"],
                    r["idle_cpu_pct"],
                    a["p50_ms"],
                    a["p99_ms"],
                    a["max_ms"],
                    a["lost"],
                    r["storm"]["secs"],
                    r["load_idle"],
                )
            )
        )


if __name__ == "__main__":
    main()
