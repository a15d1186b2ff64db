"""The many-machine harness's namespace lab (benchmarks/cluster/netlab.py).

It makes a bridge and network namespaces with addresses in 198.18.0.0/15,
runs processes only inside them, and removes everything on close, on
SIGTERM and at exit. Skipped where ``ip netns add`` is not permitted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

import pytest

from tests._wait import HANG_GUARD

ROOT = Path(__file__).resolve().parent.parent
LAB_DIR = ROOT / "benchmarks" / "cluster"


def _tag(suffix: str) -> str:
    """A lab tag of this process's own: make test runs this file in two
    stages at once, and a fixed tag made both add the same bridge."""
    return f"q{os.getpid() % 100000}{suffix}"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_netlab", LAB_DIR / "netlab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


netlab = _load()
AVAILABLE, WHY = netlab.namespaces_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"no network namespaces: {WHY}")


def _netns() -> set[str]:
    out = subprocess.run([netlab.IP, "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _links() -> set[str]:
    out = subprocess.run([netlab.IP, "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no line within {timeout}s"
    return proc.stdout.readline()


LISTENER = (
    "import socket,sys\n"
    "s=socket.socket(); s.bind((sys.argv[1],7000)); s.listen()\n"
    "print('listening',flush=True)\n"
    "c,_=s.accept(); c.sendall(b'hello from the lab'); c.close()\n"
    "import time; time.sleep(60)\n"
)
DIAL = (
    "import socket,sys\nprint(socket.create_connection((sys.argv[1],7000),2).recv(100).decode())\n"
)


def test_hosts_reach_each_other_and_close_removes_everything() -> None:
    with netlab.Lab(fallback=False) as lab:
        server = lab.add_host("a")
        client = lab.add_host("b", addresses=3)
        assert all(netlab.ipaddress.ip_address(x) in netlab.BENCH_RANGE for x in client.addresses)
        proc = lab.spawn(
            server, [sys.executable, "-c", LISTENER, server.address], stdout=subprocess.PIPE
        )
        assert _line(proc, 5) == b"listening\n"
        assert (
            lab.run(client, [sys.executable, "-c", DIAL, server.address]).strip()
            == "hello from the lab"
        )
        names = {h.netns for h in lab.hosts.values()}
        assert names <= _netns()
        assert lab.bridge in _links()
        routes = lab.run(client, [netlab.IP, "route", "show"])
        assert "default" not in routes, "a lab namespace must not route anywhere else"
    assert not names & _netns()
    assert lab.bridge not in _links()
    assert not any(link.startswith(f"{lab.tag}v") for link in _links())
    assert not _alive(proc.pid)
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_network_is_held_by_its_lab_until_close() -> None:
    # Two labs made at once (two test runs side by side) must not both
    # take the /24 that looked free to each: a lab holds its /24's lock
    # from before it checks the /24 until it closes.
    rival = netlab.Lab.__new__(netlab.Lab)
    rival._claim = None
    with netlab.Lab(fallback=False, tag=_tag("h1")) as first:
        assert not rival._take(first.network)
        with netlab.Lab(fallback=False, tag=_tag("h2")) as second:
            assert second.network != first.network
            assert not rival._take(second.network)
    assert first._claim is None and second._claim is None


def test_steer_sets_receive_steering_on_the_hosts_bridge_end() -> None:
    with netlab.Lab(fallback=False) as lab:
        host = lab.add_host("a")
        assert host.link is not None and host.link.startswith(f"{lab.tag}v")
        rps = Path(f"/sys/class/net/{host.link}/queues/rx-0/rps_cpus")
        if not rps.exists():
            pytest.skip("no receive packet steering in this kernel")
        assert lab.steer(host, "0")
        assert int(rps.read_text().replace(",", ""), 16) == 0b1
        if (os.cpu_count() or 1) > 1:
            assert lab.steer(host, "0-1")
            assert int(rps.read_text().replace(",", ""), 16) == 0b11
        other = netlab.Host(lab, "b", None, ["198.18.0.9"])
        with pytest.raises(netlab.LabError):
            lab.steer(other, "0")


def test_nothing_outside_the_lab_is_reachable() -> None:
    with netlab.Lab(fallback=False) as lab:
        host = lab.add_host("a")
        # TEST-NET-1 (RFC 5737): no route in the namespace, so refused at once.
        probe = (
            "import socket,errno\n"
            "try:\n socket.create_connection(('192.0.2.1',80),2); print('connected')\n"
            "except OSError as e: print(errno.errorcode.get(e.errno, e))\n"
        )
        assert lab.run(host, [sys.executable, "-c", probe]).strip() == "ENETUNREACH"


def test_refuses_hosts_that_are_not_its_own() -> None:
    with (
        netlab.Lab(fallback=False, tag=_tag("t1")) as one,
        netlab.Lab(fallback=False, tag=_tag("t2")) as two,
    ):
        mine = one.add_host("a")
        theirs = two.add_host("a")
        with pytest.raises(netlab.LabError, match="not a host of this lab"):
            one.spawn(theirs, ["true"])
        stranger = netlab.Host(one, "a", "some-namespace", ["198.18.200.5"])
        with pytest.raises(netlab.LabError, match="not a host of this lab"):
            one.command(stranger, ["true"])
        mine.addresses.append("10.0.0.1")  # tampered with: outside the lab's /24
        with pytest.raises(netlab.LabError, match="outside the lab"):
            one.spawn(mine, ["true"])
        with pytest.raises(netlab.LabError, match="bad or duplicate"):
            one.add_host("a")
        assert one.network != two.network
    with pytest.raises(netlab.LabError, match="closed"):
        one.spawn(mine, ["true"])


def test_refuses_a_namespace_that_exists_already() -> None:
    tag = _tag("t3")
    subprocess.run([netlab.IP, "netns", "add", f"{tag}-a"], check=True)
    try:
        with netlab.Lab(fallback=False, tag=tag) as lab:
            with pytest.raises(netlab.LabError, match="exists already"):
                lab.add_host("a")
        assert f"{tag}-a" in _netns(), "the lab removed a namespace it did not make"
    finally:
        subprocess.run([netlab.IP, "netns", "del", f"{tag}-a"], check=False)


DRIVER = """
import json, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import netlab
lab = netlab.Lab(fallback=False)
host = lab.add_host("a")
child = lab.spawn(host, ["sleep", "60"])
print(json.dumps({"netns": host.netns, "bridge": lab.bridge, "child": child.pid}), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("second", [None, signal.SIGINT], ids=["once", "then-ctrl-c"])
def test_sigterm_tears_everything_down(second: Optional[int]) -> None:
    """Also when a Ctrl-C follows at once (it must not cut the teardown short)."""
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(LAB_DIR)], stdout=subprocess.PIPE)
    try:
        made = json.loads(_line(driver, 10))
        assert made["netns"] in _netns()
        # Readable once the lab's child has ended (it is not ours to wait on).
        child_ended = os.pidfd_open(made["child"])
        driver.send_signal(signal.SIGTERM)
        if second is not None:
            driver.send_signal(second)
        code = driver.wait(10)
        # The second signal, held back during the teardown, may end the
        # process once it is done (Python re-raises a SIGINT it got as
        # KeyboardInterrupt: -2): what matters is what is left behind.
        assert code == 128 + signal.SIGTERM or (second and code in (128 + second, 1, -second)), code
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        assert driver.stdout is not None
        driver.stdout.close()
    assert made["netns"] not in _netns()
    assert made["bridge"] not in _links()
    try:
        select.select([child_ended], [], [], HANG_GUARD)  # a hang guard
    finally:
        os.close(child_ended)
    assert not _alive(made["child"])
