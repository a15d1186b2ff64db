"""The servers under test for benchmarks/c10k: many WebSockets, long polls, a storm.

``python server.py KIND PORT`` with KIND one of:

- ``squall`` / ``tornado``: the same Tornado-API program (the one Squall
  promises to run unchanged), importing from ``squall`` or ``tornado``;
- ``aiohttp``: the same endpoints in aiohttp.web;
- ``floor``: a bare uvloop Protocol that does only what the client needs
  (a request head found by ``bytes.find``, the WebSocket accept key, one
  pre-built frame written to every transport): what any Python server on
  this loop costs at least.

Endpoints, as a new user writes them:

- ``GET /hello``: ``ok`` (the storm);
- ``GET /ws``: a WebSocket subscriber, kept in a set until it closes;
- ``GET /poll``: a long poll, answered with the next message (a Future per
  waiter, as the chat demo's ``MessageUpdatesHandler``);
- ``GET /publish?n=K&style=loop|helper``: sends K messages of 100 bytes to
  every subscriber, by looping over them (``write_message`` / ``send_str``)
  or, for Squall, with ``squall.websocket.broadcast``;
- ``GET /wake``: answers every waiting long poll with one 100-byte message;
- ``GET /stats``: ``{"subs": N, "polls": N}``;
- ``GET /ticker?per=K``: from now on the server itself sends one message to
  every subscriber each time K more subscribers have opened (``per=0``
  stops it), so a crowd of C brings C // K broadcasts whatever the time it
  takes; answers the broadcasts made so far and the messages they sent,
  ``"ticks sent"`` (not in ``floor``).

Every server listens with its defaults (backlog 128), on 127.0.0.1. The file
descriptor limit is raised to the hard limit.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import resource
import sys
from typing import Any

MESSAGE = "m" * 100
# The listen() backlog, as each server's user would pass it (0: the server's default).
BACKLOG = int(os.environ.get("C10K_BACKLOG", "0"))


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def tornado_api(kind: str, port: int) -> None:
    if kind == "squall":
        from squall import web, websocket
        from squall.ioloop import IOLoop

        broadcast: Any = websocket.broadcast
        if not os.environ.get("SQUALL_NO_SPEEDUPS"):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        from tornado import web, websocket  # type: ignore[no-redef]
        from tornado.ioloop import IOLoop  # type: ignore[no-redef]

        broadcast = None

    subs: set[Any] = set()
    waiters: list[asyncio.Future[str]] = []

    class Hello(web.RequestHandler):
        def get(self) -> None:
            self.write("ok")

    class Sub(websocket.WebSocketHandler):
        def check_origin(self, origin: str) -> bool:
            return True

        def open(self) -> None:
            subs.add(self)
            if ticking["per"]:
                ticking["opened"] += 1
                if ticking["opened"] % ticking["per"] == 0:
                    tick()

        def on_message(self, message: Any) -> None:
            pass

        def on_close(self) -> None:
            subs.discard(self)

    class Poll(web.RequestHandler):
        future: asyncio.Future[str] | None = None

        async def get(self) -> None:
            self.future = asyncio.get_running_loop().create_future()
            waiters.append(self.future)
            message = await self.future
            self.write(message)

        def on_connection_close(self) -> None:
            if self.future is not None and not self.future.done():
                self.future.cancel()

    class Publish(web.RequestHandler):
        def get(self) -> None:
            n = int(self.get_argument("n", "1"))
            helper = self.get_argument("style", "loop") == "helper"
            if helper and broadcast is None:
                raise web.HTTPError(400, "no broadcast helper")
            for _ in range(n):
                if helper:
                    broadcast(subs, MESSAGE)
                else:
                    for sub in subs:
                        sub.write_message(MESSAGE)
            self.write(str(n))

    class Wake(web.RequestHandler):
        def get(self) -> None:
            woken = 0
            for future in waiters:
                if not future.done():
                    future.set_result(MESSAGE)
                    woken += 1
            waiters.clear()
            self.write(str(woken))

    class Stats(web.RequestHandler):
        def get(self) -> None:
            polls = sum(1 for f in waiters if not f.done())
            self.write({"subs": len(subs), "polls": polls})

    ticking = {"per": 0, "opened": 0, "ticks": 0, "sent": 0}

    def tick() -> None:
        for sub in subs:
            sub.write_message(MESSAGE)
        ticking["ticks"] += 1
        ticking["sent"] += len(subs)

    class Ticker(web.RequestHandler):
        def get(self) -> None:
            ticking["per"] = int(self.get_argument("per", "0"))
            ticking["opened"] = 0
            self.write(f"{ticking['ticks']} {ticking['sent']}")

    app = web.Application(
        [
            ("/hello", Hello),
            ("/ws", Sub),
            ("/poll", Poll),
            ("/publish", Publish),
            ("/wake", Wake),
            ("/stats", Stats),
            ("/ticker", Ticker),
        ]
    )
    if BACKLOG:
        app.listen(port, "127.0.0.1", backlog=BACKLOG)
    else:
        app.listen(port, "127.0.0.1")
    IOLoop.current().start()


def aiohttp_server(port: int) -> None:
    import uvloop
    from aiohttp import web as aweb

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    subs: set[Any] = set()
    waiters: list[asyncio.Future[str]] = []

    async def hello(request: Any) -> Any:
        return aweb.Response(text="ok")

    async def ws(request: Any) -> Any:
        sock = aweb.WebSocketResponse()
        await sock.prepare(request)
        subs.add(sock)
        if ticking["per"]:
            ticking["opened"] += 1
            if ticking["opened"] % ticking["per"] == 0:
                tickers.add(asyncio.get_running_loop().create_task(broadcasting()))
        try:
            async for _ in sock:
                pass
        finally:
            subs.discard(sock)
        return sock

    async def poll(request: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        waiters.append(future)
        return aweb.Response(text=await future)

    async def publish(request: Any) -> Any:
        n = int(request.query.get("n", "1"))
        if request.query.get("style", "loop") != "loop":
            raise aweb.HTTPBadRequest(text="no broadcast helper")
        for _ in range(n):
            for sub in list(subs):
                await sub.send_str(MESSAGE)
        return aweb.Response(text=str(n))

    async def wake(request: Any) -> Any:
        woken = 0
        for future in waiters:
            if not future.done():
                future.set_result(MESSAGE)
                woken += 1
        waiters.clear()
        return aweb.Response(text=str(woken))

    async def stats(request: Any) -> Any:
        polls = sum(1 for f in waiters if not f.done())
        return aweb.json_response({"subs": len(subs), "polls": polls})

    ticking = {"per": 0, "opened": 0, "ticks": 0, "sent": 0}
    tickers: set[asyncio.Task[None]] = set()

    async def broadcasting() -> None:
        # A task of its own, as aiohttp's sends are awaited: the handshake
        # that brought it on goes on meanwhile.
        try:
            ticking["ticks"] += 1
            for sub in list(subs):
                await sub.send_str(MESSAGE)
                ticking["sent"] += 1
        finally:
            tickers.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def ticker(request: Any) -> Any:
        ticking["per"] = int(request.query.get("per", "0"))
        ticking["opened"] = 0
        if not ticking["per"] and tickers:
            await asyncio.wait(list(tickers), timeout=30)
        return aweb.Response(text=f"{ticking['ticks']} {ticking['sent']}")

    app = aweb.Application()
    for path, handler in (
        ("/ticker", ticker),
        ("/hello", hello),
        ("/ws", ws),
        ("/poll", poll),
        ("/publish", publish),
        ("/wake", wake),
        ("/stats", stats),
    ):
        app.router.add_get(path, handler)
    extra = {"backlog": BACKLOG} if BACKLOG else {}
    aweb.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, **extra)


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_FRAME = b"\x81" + bytes([len(MESSAGE)]) + MESSAGE.encode()
_POLL_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + MESSAGE.encode()
_HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def floor_server(port: int) -> None:
    import uvloop

    subs: set[asyncio.Transport] = set()
    waiters: set[asyncio.Transport] = set()

    def reply(transport: asyncio.Transport, body: bytes) -> None:
        transport.write(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        transport.close()

    class Floor(asyncio.Protocol):
        __slots__ = ("transport", "buf", "upgraded")

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buf = b""
            self.upgraded = False

        def data_received(self, data: bytes) -> None:
            if self.upgraded:
                return
            buf = self.buf + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.buf = b""
            head = buf[:end]
            target = head[4 : head.find(b" ", 4)]
            path, _, query = target.partition(b"?")
            t = self.transport
            if path == b"/hello":
                t.write(_HELLO)
                if b"connection: close" in head.lower():
                    t.close()
            elif path == b"/ws":
                i = head.lower().find(b"sec-websocket-key:")
                key = head[i + 18 : head.find(b"\r\n", i)].strip()
                accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
                t.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                self.upgraded = True
                subs.add(t)
            elif path == b"/poll":
                waiters.add(t)
            elif path == b"/publish":
                n = int(dict(p.split(b"=") for p in query.split(b"&")).get(b"n", b"1"))
                for _ in range(n):
                    for sub in subs:
                        sub.write(_FRAME)
                reply(t, b"%d" % n)
            elif path == b"/wake":
                woken = len(waiters)
                for waiter in waiters:
                    waiter.write(_POLL_RESPONSE)
                waiters.clear()
                reply(t, b"%d" % woken)
            elif path == b"/stats":
                reply(t, json.dumps({"subs": len(subs), "polls": len(waiters)}).encode())
            else:
                reply(t, b"?")

        def connection_lost(self, exc: Exception | None) -> None:
            subs.discard(self.transport)
            waiters.discard(self.transport)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Floor, "127.0.0.1", port, backlog=BACKLOG or 128)
        await server.serve_forever()

    uvloop.run(main())


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    raise_nofile()
    if kind in ("squall", "tornado"):
        tornado_api(kind, port)
    elif kind == "aiohttp":
        aiohttp_server(port)
    elif kind == "floor":
        floor_server(port)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main()
