"""``make demo-cluster``: the forum on nodes in network namespaces of their own, behind nginx.

A reply posted through node 1 reaches a WebSocket reader served by node 2,
both through nginx at the lab's address, over the Redis Cluster's sharded
pub/sub as the demo runs it (six redis-servers: the test takes seconds, not
a fraction of one); closing removes every namespace.
Skipped where ``ip netns add`` is not permitted, or redis-server or nginx
is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from squall.httpclient import HTTPRequest
from squall.websocket import websocket_connect

from .._util import load, run
from ._client import LIMIT_REQUEST, Visitor, client
from .test_forum_cluster import open_topic

many = load("forum/many.py")
AVAILABLE, WHY = many.namespaces_available()
HAVE_SERVERS = shutil.which("redis-server") is not None and (
    shutil.which("nginx") is not None or os.access("/usr/sbin/nginx", os.X_OK)
)

pytestmark = [
    pytest.mark.skipif(not AVAILABLE, reason=f"no network namespaces: {WHY}"),
    pytest.mark.skipif(
        not HAVE_SERVERS,
        reason="the demo needs redis-server and nginx (apt-get install redis-server nginx-light)",
    ),
]


def test_a_reply_through_one_node_reaches_a_reader_on_another() -> None:
    with many.ManyNodes(nodes=2, port=8888, single_redis=False) as cluster:
        namespaces = {h.netns for h in cluster.lab.hosts.values()}

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

        run(main(), limit=20)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in namespaces)
