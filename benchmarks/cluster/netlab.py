"""Network namespaces for the many-machine harness: a bridge, hosts on it, processes in them.

A `Lab` makes one Linux bridge in the current namespace with the address
198.18.X.1/24 (X: a /24 of the benchmarking range 198.18.0.0/15 that no
route or address of this machine uses yet), then one network namespace per
`Host`, joined to the bridge by a veth pair and given one or more addresses
from the same /24. Nothing else is configured: no default route in any
namespace, no forwarding, no NAT, so a process in the lab reaches the lab's
addresses and nothing else. `Lab.spawn` runs a program inside a namespace of
this lab only (a host from another lab, or a name, is refused), records it,
and `Lab.close` (also run at exit, on SIGINT/SIGTERM and on errors through
``with``) kills every process it started, whatever is left in its
namespaces, then deletes the namespaces and the bridge.

Where ``ip netns add`` is not permitted (not root, or a sandbox without
CAP_NET_ADMIN), ``Lab(fallback=True)`` gives each host addresses from
127.77.X.0/24 on the loopback instead and runs processes without a
namespace; `Lab.isolated` says which, and `Lab.note` why. A program on a
loopback host is given its own address (``host.address``) to bind and to
send from: the kernel would otherwise send from 127.0.0.1, and a peer that
learns addresses from connections (a Redis Cluster's bus) would record
127.0.0.1 for every host. ``SQUALL_NETLAB_LOOPBACK=1`` in the environment
takes the loopback path even where namespaces can be made (to test it).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

BENCH_RANGE = ipaddress.ip_network("198.18.0.0/15")
LOOPBACK_RANGE = ipaddress.ip_network("127.77.0.0/16")
IP = shutil.which("ip") or "/usr/sbin/ip"
# Chromium drops a page load when a link or an address of its network
# namespace changes (net::ERR_NETWORK_CHANGED), and a lab's bridge and veth
# ends are links of the root namespace: the test suite runs Chromium holding
# this file shared (tests/chromium_shared_net), and a lab changes the root
# namespace holding it alone, so that neither lands in the middle of the
# other (the suites run in parallel stages).
ROOT_NETNS_LOCK = os.path.join(tempfile.gettempdir(), "squall-root-netns.lock")
# How long a lab waits for the browsers holding the lock before it goes on
# without it.
ROOT_NETNS_WAIT = 120.0

# Inside each namespace: room for many connections (each namespace has its
# own copy of these; the host's are untouched).
NAMESPACE_SYSCTLS = {
    "net.ipv4.ip_local_port_range": "1024 65000",
    "net.core.somaxconn": "65535",
    "net.ipv4.tcp_max_syn_backlog": "65535",
    "net.ipv4.tcp_tw_reuse": "1",
}


class LabError(RuntimeError):
    """The lab cannot be made, or was asked to act outside what it made."""


@contextlib.contextmanager
def changing_root_namespace() -> Iterator[None]:
    """Held while the lab adds or removes links of the root namespace (see
    ROOT_NETNS_LOCK)."""
    fd = os.open(ROOT_NETNS_LOCK, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        deadline = time.monotonic() + ROOT_NETNS_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break  # (a browser has run for two minutes: go on)
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _run(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


LOOPBACK_ENV = "SQUALL_NETLAB_LOOPBACK"


def namespaces_available() -> tuple[bool, str]:
    """Whether ``ip netns add`` works here (and is not declined by ``SQUALL_NETLAB_LOOPBACK=1``), and if not, why."""
    if os.environ.get(LOOPBACK_ENV, "") not in ("", "0"):
        return False, f"{LOOPBACK_ENV}={os.environ[LOOPBACK_ENV]} asks for loopback addresses"
    if not os.path.exists(IP):
        return False, "the ip command (iproute2) is not installed"
    name = f"sqprobe{os.getpid()}"
    done = _run([IP, "netns", "add", name], check=False)
    if done.returncode != 0:
        return False, f"`ip netns add` is not permitted here: {done.stderr.strip()}"
    _run([IP, "netns", "del", name], check=False)
    return True, "network namespaces available"


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this namespace has a route or an address in."""
    found = []
    for args in ([IP, "-4", "-o", "addr", "show"], [IP, "-4", "route", "show", "table", "all"]):
        for line in _run(args, check=False).stdout.splitlines():
            for word in line.split():
                if word[:1].isdigit() and word.count(".") == 3:
                    try:
                        found.append(ipaddress.ip_network(word, strict=False))
                    except ValueError:
                        pass
    return found  # type: ignore[return-value]


class Host:
    """One machine of the lab: a namespace (or loopback addresses) and its addresses."""

    __slots__ = ("lab", "name", "netns", "addresses", "link")

    def __init__(self, lab: Lab, name: str, netns: Optional[str], addresses: list[str]) -> None:
        self.lab = lab
        self.name = name
        self.netns = netns
        self.addresses = addresses
        self.link: Optional[str] = None  # its veth's end on the bridge

    @property
    def address(self) -> str:
        """The host's first address."""
        return self.addresses[0]

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.addresses})"


class Lab:
    """A bridge and hosts in network namespaces; everything removed by `close`.

    Args:
        fallback: where namespaces cannot be made, use loopback addresses
            instead of raising `LabError`.
        tag: a short name for the lab's interfaces and namespaces (default:
            from the process id).
    """

    def __init__(self, fallback: bool = True, tag: Optional[str] = None) -> None:
        self.tag = tag or f"sq{os.getpid() % 100000}"
        if len(self.tag) > 8:
            raise LabError(f"lab tag {self.tag!r} is longer than 8 characters")
        self.hosts: dict[str, Host] = {}
        self.procs: list[subprocess.Popen[Any]] = []
        self.bridge = f"{self.tag}br"
        self._closed = False
        self._made_bridge = False
        self._links: list[str] = []
        self._claim: Optional[int] = None
        self._next = 10
        self.isolated, self.note = namespaces_available()
        if not self.isolated and not fallback:
            raise LabError(self.note)
        if self.isolated:
            self.network = self._free_network()
        else:
            self.network = self._free_loopback()
            self.note += "; falling back to loopback addresses in 127.77.0.0/16 (no isolation)"
        atexit.register(self.close)
        self._previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: atexit and `with` remain
                pass
        if self.isolated:
            try:
                self._make_bridge()
            except BaseException:
                self.close()
                raise

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._closed:
            return  # a second Ctrl-C while tearing down: the teardown goes on
        self.close()
        raise SystemExit(128 + signum)

    def _free_network(self) -> ipaddress.IPv4Network:
        # Two labs made at once (two test runs, a test beside a benchmark)
        # would both see the same /24 free: each first takes that /24's
        # lock file, held until close(), then checks that nothing uses it.
        for third in range(100, 256):
            net = ipaddress.ip_network(f"198.18.{third}.0/24")
            if not self._take(net):
                continue
            if not any(net.overlaps(u) for u in _used_networks() if u.prefixlen > 0):
                return net  # type: ignore[return-value]
            self._release()
        raise LabError("no free /24 left in 198.18.0.0/15 on this machine")

    def _free_loopback(self) -> ipaddress.IPv4Network:
        # Loopback labs need no route: two at once (a test beside a demo)
        # only must not share a /24, which the same lock files settle.
        start = os.getpid() % 250
        for i in range(250):
            net = ipaddress.ip_network(f"127.77.{(start + i) % 250 + 1}.0/24")
            if self._take(net):
                return net  # type: ignore[return-value]
        raise LabError("no free /24 left in 127.77.0.0/16 on this machine")

    def _take(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        path = os.path.join(tempfile.gettempdir(), f"squall-netlab-{net.network_address}.lock")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._claim = fd
        return True

    def _release(self) -> None:
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None

    def _make_bridge(self) -> None:
        gateway = f"{self.network[1]}/{self.network.prefixlen}"
        with changing_root_namespace():
            _run([IP, "link", "add", self.bridge, "type", "bridge"])
            self._made_bridge = True
            _run([IP, "addr", "add", gateway, "dev", self.bridge])
            _run([IP, "link", "set", self.bridge, "up"])

    @property
    def gateway(self) -> str:
        """The bridge's address, where the namespace holding the driver reaches the lab."""
        return str(self.network[1]) if self.isolated else "127.0.0.1"

    def _address(self) -> str:
        if self._next >= self.network.num_addresses - 1:
            raise LabError(f"{self.network} is full")
        address = str(self.network[self._next])
        self._next += 1
        return address

    def add_host(self, name: str, addresses: int = 1) -> Host:
        """A new host named ``name`` with ``addresses`` addresses of the lab's /24."""
        if self._closed:
            raise LabError("the lab is closed")
        if name in self.hosts or not name.replace("-", "").isalnum() or len(name) > 12:
            raise LabError(f"bad or duplicate host name {name!r}")
        addrs = [self._address() for _ in range(addresses)]
        if not self.isolated:
            host = Host(self, name, None, addrs)
            self.hosts[name] = host
            return host
        netns = f"{self.tag}-{name}"
        if netns in _run([IP, "netns", "list"]).stdout.split():
            raise LabError(f"namespace {netns} exists already and is not this lab's")
        _run([IP, "netns", "add", netns])
        host = Host(self, name, netns, addrs)
        self.hosts[name] = host  # from here on, close() removes it
        outside = host.link = f"{self.tag}v{len(self.hosts)}"
        with changing_root_namespace():
            _run(
                [IP, "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns]
            )
            self._links.append(outside)
            _run([IP, "link", "set", outside, "master", self.bridge, "up"])
        inside = [IP, "netns", "exec", netns]
        _run(inside + [IP, "link", "set", "lo", "up"])
        for address in addrs:
            _run(inside + [IP, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0"])
        _run(inside + [IP, "link", "set", "eth0", "up"])
        for key, value in NAMESPACE_SYSCTLS.items():
            _run(inside + ["sysctl", "-q", "-w", f"{key}={value}"], check=False)
        return host

    def steer(self, host: Host, cpus: str) -> bool:
        """Has what ``host`` sends processed on ``cpus`` (a list: "1", "2-3"), not on the sender's CPU.

        A veth hands each packet to the other end in the sender's own
        softirq: the bridge, its netfilter hooks and the receiver's TCP
        input would run on the sending CPU, charged to the sending
        process. Receive packet steering on the host's bridge end moves
        that work to ``cpus``, as a network card moves it to another
        machine. False where it cannot be set (no namespace, no RPS).
        """
        self.check(host)
        if host.link is None:
            return False
        mask = 0
        for part in cpus.split(","):
            first, _, last = part.partition("-")
            for cpu in range(int(first), int(last or first) + 1):
                mask |= 1 << cpu
        try:
            Path(f"/sys/class/net/{host.link}/queues/rx-0/rps_cpus").write_text(f"{mask:x}\n")
        except OSError:
            return False
        return True

    def check(self, host: Host) -> None:
        """Raises `LabError` unless ``host`` is one of this lab's, still open."""
        if self._closed:
            raise LabError("the lab is closed")
        if not isinstance(host, Host) or self.hosts.get(host.name) is not host:
            raise LabError(f"{host!r} is not a host of this lab: refusing to run outside it")
        for address in host.addresses:
            if ipaddress.ip_address(address) not in self.network:
                raise LabError(f"{address} is outside the lab's {self.network}")

    def command(self, host: Host, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside ``host``'s namespace."""
        self.check(host)
        if host.netns is None:
            return list(argv)
        return [IP, "netns", "exec", host.netns, *argv]

    def spawn(
        self, host: Host, argv: Sequence[str], cpus: Optional[str] = None, **popen: Any
    ) -> subprocess.Popen[Any]:
        """Starts ``argv`` in ``host`` (pinned to ``cpus`` with taskset); `close` kills it.

        ``ip netns exec`` and taskset exec the program, so the returned
        process's pid is the program's (its CPU is read from /proc by pid).
        """
        args = self.command(host, argv)
        if cpus is not None and shutil.which("taskset"):
            args = ["taskset", "-c", cpus, *args]
        popen.setdefault("stdin", subprocess.DEVNULL)
        # Its own process group: Ctrl-C reaches the lab, which stops it in order.
        proc = subprocess.Popen(args, start_new_session=True, **popen)
        self.procs.append(proc)
        return proc

    def run(self, host: Host, argv: Sequence[str], timeout: float = 30) -> str:
        """Runs ``argv`` in ``host`` to completion; its stdout (raises on failure)."""
        try:
            done = subprocess.run(
                self.command(host, argv), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            said = exc.stdout or ""
            if isinstance(said, bytes):
                said = said.decode("utf-8", "replace")
            tail = "\n".join(said.strip().splitlines()[-10:])
            raise LabError(
                f"{' '.join(argv)} in {host.name} did not finish in {timeout:g}s"
                + (f"; its last lines:\n{tail}" if tail else "")
            ) from None
        if done.returncode != 0:
            raise LabError(
                f"{' '.join(argv)} in {host.name}: {done.stderr.strip() or done.stdout.strip()}"
            )
        return done.stdout

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
        """SIGTERM to ``proc``'s process group, SIGKILL after ``timeout``."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        """Kills every process started here, then removes the namespaces and the bridge."""
        if self._closed:
            return
        self._closed = True
        # A signal now (a second Ctrl-C) must not cut the teardown short.
        masked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        try:
            previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, masked)
        except (ValueError, OSError):
            previous_mask = None
        try:
            self._teardown()
        finally:
            if previous_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)

    def _teardown(self) -> None:
        for proc in self.procs:  # SIGCONT first: a process stopped by a fault test
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:  # a pipe whose reader died with unread data
                    pass
        for host in self.hosts.values():
            if host.netns is None:
                continue
            # Anything else still inside (a daemon that double-forked).
            pids = _run([IP, "netns", "pids", host.netns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _run([IP, "netns", "del", host.netns], check=False)
        # Deleting a namespace frees its devices later, in the kernel's own
        # time: the veth ends and the bridge are deleted now, so that they
        # are gone when close() returns.
        with changing_root_namespace():
            for link in self._links:
                _run([IP, "link", "del", link], check=False)
            if self._made_bridge:
                _run([IP, "link", "del", self.bridge], check=False)
        self._release()
        for sig, handler in self._previous.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):
                pass
        atexit.unregister(self.close)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_port(lab: Lab, host: Host, port: int, timeout: float = 20.0, address: str = "") -> None:
    """Waits until ``address`` (default the host's first):``port`` accepts, seen from inside ``host``."""
    target = address or host.address
    probe = (
        "import socket,sys,time\n"
        f"end=time.monotonic()+{timeout}\n"
        "while True:\n"
        "    try:\n"
        f"        socket.create_connection(({target!r},{port}),1).close(); break\n"
        "    except OSError as e:\n"
        "        if time.monotonic()>end: sys.exit(f'not listening: {e}')\n"
        "        time.sleep(0.05)\n"
    )
    lab.run(host, [sys.executable, "-c", probe], timeout=timeout + 5)
