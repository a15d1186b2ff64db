"""Nodes for the node-kill tests: ``python -m tests.resume._node``.

Imports Squall and redis-py once, then, for each ``REDIS_URL`` line read on
stdin, forks a node: a process that serves the three resuming transports
over ``squall.pubsub.connect(REDIS_URL)`` (with history; ``redis://`` or
``redis+cluster://``) on a free 127.0.0.1 port and writes ``"<port> <pid>"``
on stdout once it serves (for one Redis, once its subscriber connection is
up), then runs until killed. Forking from here makes a node in
milliseconds, where a new interpreter takes seconds on a loaded machine.
Children are reaped by the kernel (SIGCHLD ignored); the parent exits at
the end of its stdin.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

from squall.httpserver import HTTPServer
from squall.pubsub import RedisPubSub, connect
from squall.resume import ChannelEventSource, ChannelPollHandler, ChannelWebSocket
from squall.web import Application


class Live(ChannelWebSocket):
    def may_subscribe(self, channel: str) -> bool:
        return channel.startswith("room:")


class Events(ChannelEventSource):
    ping_interval = None

    def channel(self, name: str) -> str:
        return f"room:{name}"


class Poll(ChannelPollHandler):
    poll_timeout = 2.0
    limit = 1000

    def channel(self, name: str) -> str:
        return f"room:{name}"


async def main(url: str) -> None:
    pubsub = connect(url, history_size=1000)
    if isinstance(pubsub, RedisPubSub):
        await pubsub.wait_connected(5)
    app = Application(
        [("/live", Live), (r"/rooms/(\w+)/events", Events), (r"/rooms/(\w+)/poll", Poll)],
        pubsub=pubsub,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    HTTPServer(app).add_sockets([sock])
    # One write: the line is not interleaved with another node's.
    os.write(1, f"{sock.getsockname()[1]} {os.getpid()}\n".encode())
    await asyncio.Event().wait()


def zygote() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        url = line.strip()
        if url and os.fork() == 0:
            sys.stdin.close()
            try:
                asyncio.run(main(url))
            finally:
                os._exit(1)


if __name__ == "__main__":
    zygote()
