"""``make demo-cluster``: the forum on nodes in network namespaces of their own, behind nginx.

A reply posted through node 1 reaches a WebSocket reader served by node 2,
both through nginx at the lab's address, over the Redis Cluster's sharded
pub/sub as the demo runs it (six redis-servers: the test takes seconds, not
a fraction of one); closing removes every namespace. The same again on the
loopback fallback (127.77.x.y, taken where namespaces cannot be made; forced
here by ``SQUALL_NETLAB_LOOPBACK=1``), where the Redis Cluster forms only if
each redis-server announces and sends from its own address.
Skipped where redis-server or nginx is missing, and the namespace run where
``ip netns add`` is not permitted.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from squall.httpclient import HTTPRequest
from squall.websocket import websocket_connect

from ..._wait import HANG_GUARD
from .._util import load, run
from ._client import LIMIT_REQUEST, Visitor, client
from .test_forum_cluster import open_topic

many = load("forum/many.py")
AVAILABLE, WHY = many.namespaces_available()
HAVE_SERVERS = shutil.which("redis-server") is not None and (
    shutil.which("nginx") is not None or os.access("/usr/sbin/nginx", os.X_OK)
)

pytestmark = pytest.mark.skipif(
    not HAVE_SERVERS,
    reason="the demo needs redis-server and nginx (apt-get install redis-server nginx-light)",
)


@pytest.fixture(params=["namespaces", "loopback"])
def lab_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "loopback":
        monkeypatch.setenv(many.LOOPBACK_ENV, "1")
    elif not AVAILABLE:
        pytest.skip(f"no network namespaces: {WHY}")
    return str(request.param)


def test_a_reply_through_one_node_reaches_a_reader_on_another(lab_kind: str) -> None:
    with many.ManyNodes(nodes=2, port=8888, single_redis=False) as cluster:
        assert cluster.lab.isolated == (lab_kind == "namespaces")
        # A Redis Cluster, not the one-Redis fallback: its nodes met.
        assert cluster.broker.startswith("a Redis Cluster"), cluster.broker
        namespaces = {h.netns for h in cluster.lab.hosts.values()} - {None}

        async def main() -> None:
            async with client() as http:
                ann, bob = Visitor(cluster.url, http), Visitor(cluster.url, http)
                ann.cookies["node"] = "1"
                bob.cookies["node"] = "2"
                upstreams = [(await v.fetch("/")).headers["X-Upstream"] for v in (ann, bob)]
                assert upstreams == [f"{a}:8000" for a in cluster.addresses]
                topic, ws = await open_topic(ann, "ann-many", "across nodes")
                conn = await websocket_connect(
                    HTTPRequest(ws, headers={"Cookie": bob.cookie_header()}),
                    connect_timeout=LIMIT_REQUEST,
                )
                json.loads(await conn.read_message())  # the backlog
                reply, _ = await ann.reply(topic, "through the lab")
                pushed = json.loads(await conn.read_message())
                assert [p["id"] for p in pushed["posts"]] == [reply]
                conn.close()

        run(main(), limit=HANG_GUARD)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in namespaces)


def test_the_demo_says_each_step_and_the_address_last(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Quiet by default: one line per step, no process's log; on the
    # loopback path so that it runs wherever redis-server and nginx do.
    monkeypatch.setenv(many.LOOPBACK_ENV, "1")
    assert many.main(["--nodes", "2", "--check"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert all(line.startswith("== ") for line in lines), out
    assert [line.split(":")[0].split(" (")[0] for line in lines if "starting" in line] == [
        "== starting a Redis Cluster",
        "== starting 2 forum nodes",
        "== starting nginx in front of the nodes",
    ]
    assert [line.split(":")[0] for line in lines[-2:]] == ["== node 1", "== node 2"]
    assert "Ready to accept connections" not in out + err
    assert "[redis-" not in err and "[squall-" not in err


def test_a_cluster_that_cannot_form_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A redis-cli that never answers (as when the nodes never meet): the
    # demo stops with a line saying which step failed, not a traceback.
    monkeypatch.setenv(many.LOOPBACK_ENV, "1")
    services = importlib.import_module("services")  # benchmarks/cluster, as many.py loads it
    real = services.Lab.run

    def stuck(self: object, host: object, argv: list[str], timeout: float = 30) -> str:
        if "--cluster" in argv:
            return real(self, host, ["sleep", "30"], timeout=0.5)  # type: ignore[arg-type]
        return real(self, host, argv, timeout)  # type: ignore[arg-type]

    monkeypatch.setattr(services.Lab, "run", stuck)
    assert many.main(["--nodes", "1", "--check"]) == 1
    err = capsys.readouterr().err
    assert "== the forum could not start: sleep 30 in redis1 did not finish in 0.5s" in err
    assert "Traceback" not in err


CAPSH = shutil.which("capsh") or (
    "/usr/sbin/capsh" if os.access("/usr/sbin/capsh", os.X_OK) else None
)


@pytest.mark.skipif(
    CAPSH is None or os.geteuid() != 0 or not AVAILABLE,
    reason="needs root with namespace rights to take them away (capsh, from libcap2-bin)",
)
def test_without_namespace_rights_the_demo_falls_back_to_loopback() -> None:
    # The demo as a user without CAP_NET_ADMIN and CAP_SYS_ADMIN runs it:
    # `ip netns add` refused, the lab on 127.77.x.y, the cluster formed.
    script = many.__file__
    argv = [sys.executable, script, "--nodes", "2", "--check"]
    done = subprocess.run(
        [str(CAPSH), "--drop=cap_net_admin,cap_sys_admin", "--", "-c", shlex.join(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != many.LOOPBACK_ENV},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "`ip netns add` is not permitted" in lines[0], lines[0]
    assert "falling back to loopback addresses" in lines[0]
    assert any(line.startswith("== starting a Redis Cluster") for line in lines), lines
    assert [line.split(":")[0] for line in lines[-2:]] == ["== node 1", "== node 2"], lines
    assert all(" from 127.77." in line for line in lines[-2:]), lines
