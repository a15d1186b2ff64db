"""The forum as two ``squall run`` workers behind nginx, with Redis between them.

A reply posted through worker 1 must reach a WebSocket and a long poll held by
worker 2 (and two browser tabs, one on each worker). Skipped when
redis-server or nginx is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.httpclient import HTTPRequest
from squall.websocket import websocket_connect
from tests._wait import HANG_GUARD

from .._util import DEMOS, load, run
from ..test_chat_browser import CHROMIUM
from ._client import LIMIT_REQUEST, Visitor, client
from .test_forum_browser import BROWSER_LIMIT, live_topic_in_two_tabs

cluster_module = load("forum/cluster.py")

pytestmark = pytest.mark.skipif(
    cluster_module.REDIS_SERVER is None or cluster_module.NGINX is None,
    reason="the cluster needs redis-server and nginx (apt-get install redis-server nginx-light)",
)


@contextlib.contextmanager
def new_cluster(**options: Any) -> Iterator[Any]:
    """A two-worker Cluster in a directory of its own, not started yet."""
    with tempfile.TemporaryDirectory(prefix="squall-forum-cluster-") as workdir:
        yield cluster_module.Cluster(Path(workdir), port=0, workers=2, **options)


async def open_topic(visitor: Visitor, name: str, title: str) -> tuple[int, str]:
    """Signs ``visitor`` up as ``name`` and starts a topic: (the topic, its
    live WebSocket URL from the first post on)."""
    assert (await visitor.signup(name)).code == 302
    topic = await visitor.new_topic("performance", title, "first")
    return topic, visitor.base.replace("http", "ws") + f"/t/{topic}/live?after=0"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One cluster for the module's tests (starting it costs about a second)."""
    with new_cluster() as new, new as running:
        yield running


def test_a_reply_through_one_worker_reaches_readers_on_the_other(cluster: Any) -> None:
    async def main() -> None:
        async with client() as http:
            ann, bob = Visitor(cluster.url, http), Visitor(cluster.url, http)
            ann.cookies["forum_worker"] = "1"
            bob.cookies["forum_worker"] = "2"
            upstreams = [(await v.fetch("/")).headers["X-Forum-Upstream"] for v in (ann, bob)]
            assert upstreams[0].endswith("worker-1.sock")
            assert upstreams[1].endswith("worker-2.sock")
            # One cookie secret and one database: an account made through
            # worker 1 is logged in on worker 2 too.
            topic, ws = await open_topic(ann, "ann-cluster", "across workers")
            conn = await websocket_connect(
                HTTPRequest(ws, headers={"Cookie": bob.cookie_header()}),
                connect_timeout=LIMIT_REQUEST,
            )
            backlog = json.loads(await conn.read_message())
            after = backlog["posts"][-1]["id"]
            poll = asyncio.ensure_future(bob.fetch(f"/t/{topic}/poll?after={after}"))
            reply, _ = await ann.reply(topic, "<u>through Redis</u>")
            pushed = json.loads(await conn.read_message())
            assert [p["id"] for p in pushed["posts"]] == [reply]
            assert "&lt;u&gt;through Redis&lt;/u&gt;" in pushed["posts"][0]["html"]
            polled = await poll
            assert polled.headers["X-Forum-Upstream"].endswith("worker-2.sock")
            assert [p["id"] for p in json.loads(polled.body)["posts"]] == [reply]
            conn.close()

    run(main())


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_live_reply_between_tabs_on_different_workers(cluster: Any) -> None:
    run(live_topic_in_two_tabs(cluster.url, pinned=True), limit=BROWSER_LIMIT + 4)


def test_stopping_the_cluster_stops_redis_after_the_workers_have_drained() -> None:
    """Workers holding live readers drain (their relays unsubscribe) while
    Redis is still up: no pub/sub loss, no unretrieved task exception."""
    with new_cluster() as cluster:
        cluster.start()
        readers = list(cluster.readers)
        redis, others = (
            cluster.redis_proc,
            [p for p in cluster.procs if p is not cluster.redis_proc],
        )
        running_when_redis_stopped: list[int] = []
        signal_redis = redis.send_signal

        def stopping_redis(sig: int) -> None:
            running_when_redis_stopped.extend(p.pid for p in others if p.poll() is None)
            signal_redis(sig)

        redis.send_signal = stopping_redis
        try:

            async def main() -> None:
                async with client() as http:
                    ann = Visitor(cluster.url, http)
                    _, ws = await open_topic(ann, "ann-stop", "stop order")
                    for worker in ("1", "2"):
                        ann.cookies["forum_worker"] = worker
                        conn = await websocket_connect(
                            HTTPRequest(ws, headers={"Cookie": ann.cookie_header()}),
                            connect_timeout=LIMIT_REQUEST,
                        )
                        assert json.loads(await conn.read_message())["posts"]
                        # Left open: the worker closes it while draining.

            run(main())
        finally:
            cluster.stop()
    assert redis.returncode is not None
    assert running_when_redis_stopped == []
    # The processes have exited, so their readers hold every line they wrote.
    lines = []
    for reader in readers:
        while (line := reader.lines.get_nowait()) is not None:
            lines.append(f"[{reader.name}] {line}")
    workers = [line for line in lines if line.startswith("[worker-")]
    assert sum("draining" in line for line in workers) == 2, lines
    for bad in ("never retrieved", "lost the connection to Redis", "Traceback"):
        assert not any(bad in line for line in workers), "\n".join(lines)


def test_two_workers_sharing_the_port_without_nginx() -> None:
    """Cluster(nginx=False), as `make bench-forum` runs it: one `squall run
    --workers 2` on the port, Redis between the workers."""
    with new_cluster(nginx=False) as new, new as cluster:
        pids = cluster.server_pids()
        assert len(pids) == 4  # Redis, the supervisor and its two workers

        async def main() -> None:
            async with client() as http:
                ann = Visitor(cluster.url, http)
                topic, ws = await open_topic(ann, "ann-shared", "shared port")
                readers = [
                    await websocket_connect(ws, connect_timeout=LIMIT_REQUEST) for _ in range(6)
                ]
                for conn in readers:
                    assert json.loads(await conn.read_message())["posts"]
                reply, _ = await ann.reply(topic, "to every reader")
                for conn in readers:
                    pushed = json.loads(await conn.read_message())
                    assert [p["id"] for p in pushed["posts"]] == [reply]
                    conn.close()

        run(main())


def test_make_demo_cluster_local_says_each_step_and_the_address_last() -> None:
    # Quiet by default: no process's log, a line per step, the address alone.
    async def main() -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DEMOS / "forum" / "cluster.py"),
            "--port",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stdout is not None
        said: list[str] = []
        try:
            for _ in range(10):  # the address comes within its first lines
                line = (await process.stdout.readline()).decode()
                if not line:
                    break
                said.append(line.rstrip("\n"))
                if line.startswith("    http"):
                    break
            url = said[-1].strip()
            async with client() as http:
                page = await http.fetch(url, request_timeout=LIMIT_REQUEST)
                assert b"Squall forum" in page.body
        finally:
            # It stops its workers (draining), then Redis and nginx.
            process.terminate()
            try:
                await asyncio.wait_for(process.communicate(), HANG_GUARD)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.communicate()
        assert process.returncode == 0
        assert said[0].startswith("== starting redis-server and 2 forum workers"), said
        assert said[1].startswith("== Redis at redis://127.0.0.1:"), said
        assert said[2:] == ["", f"    {url}"], said  # the address last, alone

    run(main(), limit=40)
