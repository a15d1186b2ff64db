"""The server of benchmarks/c1m: the chat pattern on ``squall.websocket``.

``python server.py PORT ADMIN_PORT [--ping SECONDS] [--reuse-port] [--kind squall|aiohttp]``

(``--kind aiohttp``: the same program in aiohttp.web, a ``send_str`` per
subscriber as its documentation's broadcast does; server.js is Node's
``ws``.)

Each WebSocket at ``/ws`` sends ``s CH`` once: it joins channel CH (one of
the 100 sets ``CHANNELS``) and is answered ``k``. With ``--reuse-port``
several of these processes share PORT (SO_REUSEPORT: the kernel spreads
the connections), each with an ADMIN_PORT of its own, where:

- ``POST /admin/channels?id=N&t=T``: one message to each channel (ids N to
  N+99), each sent with ``broadcast()``; answers the seconds it took;
- ``POST /admin/all?id=N&t=T``: one message to every subscriber, the channels
  one after another (a broadcast per channel set, the same frame);
- ``GET /admin/stats``: subscribers, the collector's passes and time per
  generation since the last ``POST /admin/gc-reset``, objects it tracks
  (``?objects=1``: counting them walks every one), RSS;
- ``POST /admin/freeze``: ``gc.freeze()`` (moves what is tracked now out
  of the collector's sight: an application's choice after a ramp).

A message is ``"ID T"``: T is the harness's ``time.monotonic_ns()`` when
it asked every process to publish (the client reads CLOCK_MONOTONIC too,
on the same machine), so latency counts from the publish.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import time
from typing import Any

NCHANNELS = 100


class GCWatch:
    """The collector's passes and time per generation, from ``gc.callbacks``.

    Time is this process's CPU time (``time.process_time``): on a loaded
    machine a pass's wall time counts whoever else ran meanwhile.
    """

    def __init__(self) -> None:
        self.started = 0.0
        self.reset()
        gc.callbacks.append(self.callback)

    def reset(self) -> None:
        self.passes = [0, 0, 0]
        self.secs = [0.0, 0.0, 0.0]
        self.max_secs = 0.0
        self.collected = 0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.process_time()
            return
        took = time.process_time() - self.started
        gen = info["generation"]
        self.passes[gen] += 1
        self.secs[gen] += took
        self.max_secs = max(self.max_secs, took)
        self.collected += info.get("collected", 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passes": self.passes,
            "secs": [round(s, 4) for s in self.secs],
            "max_pass_s": round(self.max_secs, 4),
            "collected": self.collected,
        }


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stats(watch: GCWatch, count_objects: bool, subs: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "subs": subs,
        "rss_kb": rss_kb(),
        "gc": watch.as_dict(),
        "gc_counts": gc.get_count(),
        "gc_frozen": gc.get_freeze_count(),
    }
    if count_objects:
        t0 = time.perf_counter()
        objects = gc.get_objects()
        out["gc_tracked"] = len(objects)
        out["gc_tracked_count_s"] = round(time.perf_counter() - t0, 3)
        if subs:
            kinds: dict[str, int] = {}
            for o in objects:
                name = type(o).__qualname__
                kinds[name] = kinds.get(name, 0) + 1
            # The kinds of which there are about one or more per connection.
            out["gc_tracked_kinds"] = {
                k: round(v / subs, 2)
                for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])
                if v >= subs // 2
            }
        del objects
    return out


def run_squall(port: int, admin_port: int, ping: float, reuse_port: bool) -> None:
    import uvloop

    from squall import web
    from squall.websocket import WebSocketHandler, broadcast

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    channels: list[set[Any]] = [set() for _ in range(NCHANNELS)]
    watch = GCWatch()

    class Sub(WebSocketHandler):
        channel: set[Any] | None = None

        def check_origin(self, origin: str) -> bool:
            return True

        def on_message(self, message: Any) -> None:
            if self.channel is None and message[:2] == "s ":
                ch = channels[int(message[2:]) % NCHANNELS]
                ch.add(self)
                self.channel = ch
                self.write_message("k")

        def on_close(self) -> None:
            if self.channel is not None:
                self.channel.discard(self)

    def subs() -> int:
        return sum(len(c) for c in channels)

    class Channels(web.RequestHandler):
        def post(self) -> None:
            first = int(self.get_argument("id"))
            stamp = int(self.get_argument("t"))
            t0 = time.perf_counter()
            sent = skipped = 0
            for i, ch in enumerate(channels):
                r = broadcast(ch, f"{first + i} {stamp}")
                sent += r.sent
                skipped += r.skipped
            self.write({"secs": time.perf_counter() - t0, "sent": sent, "skipped": skipped})

    class All(web.RequestHandler):
        def post(self) -> None:
            ident = int(self.get_argument("id"))
            t0 = time.perf_counter()
            message = f"{ident} {self.get_argument('t')}"
            sent = skipped = 0
            for ch in channels:
                r = broadcast(ch, message)
                sent += r.sent
                skipped += r.skipped
            self.write({"secs": time.perf_counter() - t0, "sent": sent, "skipped": skipped})

    class Stats(web.RequestHandler):
        def get(self) -> None:
            self.write(stats(watch, self.get_argument("objects", "") == "1", subs()))

    class GCReset(web.RequestHandler):
        def post(self) -> None:
            watch.reset()
            self.write("ok")

    class Freeze(web.RequestHandler):
        def post(self) -> None:
            gc.freeze()
            self.write({"frozen": gc.get_freeze_count()})

    settings: dict[str, Any] = {}
    if ping > 0:
        settings["websocket_ping_interval"] = ping
    app = web.Application([("/ws", Sub)], **settings)
    admin = web.Application(
        [
            ("/admin/channels", Channels),
            ("/admin/all", All),
            ("/admin/stats", Stats),
            ("/admin/gc-reset", GCReset),
            ("/admin/freeze", Freeze),
        ]
    )

    async def main() -> None:
        app.listen(port, "127.0.0.1", backlog=65535, reuse_port=reuse_port)
        admin.listen(admin_port, "127.0.0.1")
        print(json.dumps({"ready": port}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def run_aiohttp(port: int, admin_port: int, ping: float, reuse_port: bool) -> None:
    """The same program in aiohttp.web on uvloop, as its documentation writes it."""
    import uvloop
    from aiohttp import WSMsgType, web

    channels: list[set[Any]] = [set() for _ in range(NCHANNELS)]
    watch = GCWatch()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=ping or None)
        await ws.prepare(request)
        channel: set[Any] | None = None
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and channel is None and msg.data[:2] == "s ":
                    channel = channels[int(msg.data[2:]) % NCHANNELS]
                    channel.add(ws)
                    await ws.send_str("k")
        finally:
            if channel is not None:
                channel.discard(ws)
        return ws

    async def send_all(sockets: set[Any], message: str) -> tuple[int, int]:
        sent = 0
        for ws in list(sockets):
            try:
                await ws.send_str(message)
                sent += 1
            except ConnectionError:
                pass
        return sent, 0

    async def channels_handler(request: web.Request) -> web.Response:
        first = int(request.query["id"])
        stamp = request.query["t"]
        t0 = time.perf_counter()
        sent = 0
        for i, ch in enumerate(channels):
            sent += (await send_all(ch, f"{first + i} {stamp}"))[0]
        return web.json_response({"secs": time.perf_counter() - t0, "sent": sent, "skipped": 0})

    async def all_handler(request: web.Request) -> web.Response:
        message = f"{request.query['id']} {request.query['t']}"
        t0 = time.perf_counter()
        sent = 0
        for ch in channels:
            sent += (await send_all(ch, message))[0]
        return web.json_response({"secs": time.perf_counter() - t0, "sent": sent, "skipped": 0})

    async def stats_handler(request: web.Request) -> web.Response:
        subs = sum(len(c) for c in channels)
        return web.json_response(stats(watch, request.query.get("objects") == "1", subs))

    async def gc_reset(request: web.Request) -> web.Response:
        watch.reset()
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ws", ws_handler)
        admin = web.Application()
        admin.router.add_post("/admin/channels", channels_handler)
        admin.router.add_post("/admin/all", all_handler)
        admin.router.add_get("/admin/stats", stats_handler)
        admin.router.add_post("/admin/gc-reset", gc_reset)
        runners = []
        for application, p, reuse in ((app, port, reuse_port), (admin, admin_port, False)):
            runner = web.AppRunner(application, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", p, backlog=65535, reuse_port=reuse or None)
            await site.start()
            runners.append(runner)
        print(json.dumps({"ready": port}), flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("admin_port", type=int)
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--ping", type=float, default=0.0)
    parser.add_argument("--kind", default="squall")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.kind == "squall":
        run_squall(args.port, args.admin_port, args.ping, args.reuse_port)
    elif args.kind == "aiohttp":
        run_aiohttp(args.port, args.admin_port, args.ping, args.reuse_port)
    else:
        raise SystemExit(f"unknown kind {args.kind!r}")


if __name__ == "__main__":
    main()
