"""Instructions per woken long poll on the server, counted by callgrind.

K connections (the server's own protocol objects, from the factory
``HTTPServer`` hands to the loop, over fake transports) each send a
browser's long poll and park; then one new message, posted on a further
connection, wakes them all. What is counted is the wake-up only: the
message's POST, every waiter's Future resolved by the condition, its Task
resumed, the handler's write and finish, the response leaving through the
transport and the connection going back to reading. Parking is done
outside the count.

Instructions per woken waiter = (count of a wake of K2 waiters - count of a
wake of K1) / (K2 - K1), in one process after a warm-up wake, so the POST
and the fixed costs cancel. The count is the same from run to run (no
timer comes due in it; the garbage collector's share included).

Apps:

* ``tornado-chat``: benchmarks/c10k/tornado_chat/app.py (the shape of
  Tornado's ``demos/chat``: a ``Condition``, ``notify_all``, xsrf cookies),
  imported as ``tornado`` through ``squall.compat``;
* ``tornado-demo``: Tornado's own ``demos/chat/chatdemo.py``, unchanged
  (checked out by benchmarks/c10k/real_chat.py), its ``main()`` run with
  ``--debug=false`` through ``squall.compat`` up to its ``app.listen``,
  which hands the Application over instead of binding a socket;
* ``squall-chat``: demos/chat/app.py (a logged-in visitor's poll, with its
  xsrf token and its signed name cookie).

Builds: ``--build pure`` (SQUALL_NO_SPEEDUPS=1) or ``compiled`` (the
installed squall's compiled modules: run from the benchmark venv). Loops:
``--loop asyncio|uvloop``.

Modes: the default counts instructions under valgrind; ``--time`` runs the
same in-process wake without valgrind and prints CPU microseconds per
waiter (quick, noisy); ``--profile`` lists the hottest squall functions
(self instructions per waiter, through _probe.py).

Usage: python benchmarks/callgrind_longpoll.py [--app NAME ...] [--build B ...]
       [--loop L ...] [-k K] [--profile] [--time]
Needs valgrind (except ``--time``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from callgrind_hotpath import (  # noqa: E402
    FakeTransport,
    add_probe_costs,
    capture_protocol,
    run_inner,
)

APPS = ["tornado-chat", "tornado-demo", "squall-chat"]
BUILDS = ["compiled", "pure"]
LOOPS = ["uvloop", "asyncio"]
K1 = 200  # waiters woken in the short run; the long run wakes K1 + k
XSRF = "0123456789abcdef0123456789abcdef"
SECRET = "callgrind-longpoll"


class Transport(FakeTransport):
    """Takes what the server writes and counts complete responses (each a 200)."""

    __slots__ = ("harness", "last")  # see callgrind_hotpath.FakeTransport

    def __init__(self, harness: Harness) -> None:
        super().__init__(self._answered)
        self.harness = harness
        self.last = b""

    def _answered(self, status: int, body: bytes) -> None:
        if status != 200:
            raise RuntimeError(f"unexpected status {status}: {body[:300]!r}")
        self.last = body
        self.harness.answered()


def _form_request(path: str, body: str, cookie: str) -> bytes:
    data = body.encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8888\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0\r\n"
        "Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\n"
        "Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n"
        f"Cookie: {cookie}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


class Harness:
    """Parks long polls on ``factory``'s protocols and wakes them with one post."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app: str, factory: Any) -> None:
        self.loop = loop
        self.app = app
        self.factory = factory
        self.conns: list[tuple[Any, Transport]] = []
        # Made at the first wake: a new connection owes its first head
        # within the server's header_timeout (10 s), which a slow run
        # under valgrind would exceed while the first polls park.
        self.poster: Optional[tuple[Any, Transport]] = None
        self.pending = 0
        self.all_in: Optional[asyncio.Future[None]] = None
        self.cookie = f"_xsrf={XSRF}"
        if app == "squall-chat":
            from squall.web import create_signed_value

            name = create_signed_value(SECRET, "chatuser", "bench").decode()
            self.cookie += f"; chatuser={name}"
        self.cursor = ""
        self.posted = 0

    def connect(self) -> tuple[Any, Transport]:
        proto = self.factory()
        transport = Transport(self)
        proto.connection_made(transport)
        return proto, transport

    def answered(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.all_in is not None and not self.all_in.done():
            self.all_in.set_result(None)

    def parked(self) -> int:
        """How many polls wait in the app's condition."""
        if self.app == "tornado-chat":
            return len(self.module.room.changed._waiters)
        if self.app == "tornado-demo":
            return len(self.module.global_message_buffer.cond._waiters)
        buffer = self.module_app.settings["message_buffer"]
        return int(buffer.pollers)

    def park(self, count: int) -> None:
        while len(self.conns) < count:
            self.conns.append(self.connect())
        body = f"_xsrf={XSRF}"
        if self.cursor:
            body += f"&cursor={self.cursor}"
        request = _form_request("/a/message/updates", body, self.cookie)

        async def settle() -> None:
            for proto, _ in self.conns[:count]:
                proto.data_received(request)
            for _ in range(100):
                await asyncio.sleep(0)
                if self.parked() == count:
                    return
            raise RuntimeError(f"{self.parked()} of {count} polls parked")

        self.loop.run_until_complete(settle())

    def wake(self, count: int) -> int:
        """Posts one message; runs until the ``count`` parked polls and the
        post have their answers. Returns the waiters answered."""
        self.posted += 1
        self.pending = count + 1
        self.all_in = self.loop.create_future()
        request = _form_request(
            "/a/message/new", f"_xsrf={XSRF}&body=message+{self.posted}", self.cookie
        )
        if self.poster is None:
            self.poster = self.connect()
        self.poster[0].data_received(request)
        self.loop.run_until_complete(self.all_in)
        answer = json.loads(self.poster[1].last)
        if self.app.startswith("tornado"):
            self.cursor = answer["id"]
        else:
            self.cursor = str(answer["messages"][-1]["seq"])
        return count

    def round(self, count: int, measure: Any = None, repoll: bool = False) -> int:
        """Parks ``count`` polls and wakes them; ``measure`` counts the wake, or with
        ``repoll`` the parking too (a browser polls again as soon as it is answered)."""
        if measure is None:
            self.park(count)
            return self.wake(count)
        got: list[int] = []
        if repoll:
            measure(lambda: (self.park(count), got.append(self.wake(count))))
        else:
            self.park(count)
            measure(lambda: got.append(self.wake(count)))
        return got[0]


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _demo_app(loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
    """Runs the real demo's ``main()`` until it listens; returns its module and app.

    Its ``app.listen`` is answered with nothing bound: the harness makes the
    server. ``--logging=none`` leaves logging as ``setup`` made it (``--log``).
    """
    import squall.compat

    squall.compat.install()
    import tornado.web

    sys.path.insert(0, str(HERE / "c10k"))
    import real_chat

    path = real_chat.demo_dir() / "chatdemo.py"
    listened: list[Any] = []
    cls = tornado.web.Application
    original = cls.__dict__["listen"]
    cls.listen = lambda self, *args, **kwargs: listened.append(self)  # type: ignore[method-assign,assignment]
    try:
        module = _load(path, "chatdemo")
        sys.argv = [str(path), "--debug=false", "--logging=none"]
        main = loop.create_task(module.main())
        for _ in range(100):
            if listened or main.done():
                break
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        cls.listen = original  # type: ignore[method-assign]
    if not listened:
        raise RuntimeError(f"the demo's main() did not listen: {main!r}")
    module.main_task = main  # held: it waits for ever, as the demo does
    return module, listened[0]


def build(loop: asyncio.AbstractEventLoop, app: str) -> Harness:
    from squall.httpserver import HTTPServer

    made: list[Any] = []
    if app == "tornado-chat":
        import squall.compat

        squall.compat.install()
        module = _load(HERE / "c10k" / "tornado_chat" / "app.py", "tornado_chat_app")
        application = module.make_app(False)
    elif app == "tornado-demo":
        module, application = _demo_app(loop)
    else:
        module = _load(HERE.parent / "demos" / "chat" / "app.py", "squall_chat_app")
        application = module.make_app(cookie_secret=SECRET, poll_timeout=3600.0)
    # Timeouts past the run: under valgrind a wake takes seconds, and an
    # answered connection's timer (the next head owed within header_timeout)
    # coming due inside a counted wake made the count vary from run to run
    # (by up to a tenth), and with it when the garbage collector ran.
    server = HTTPServer(application, header_timeout=3600, idle_connection_timeout=3600)
    capture_protocol(loop, server, made)
    harness = Harness(loop, app, made[0])
    harness.module = module  # type: ignore[attr-defined]
    harness.module_app = application  # type: ignore[attr-defined]
    return harness


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


_PROFILED = (
    "squall.locks",
    "squall.web",
    "squall.httputil",
    "squall.httpserver",
    "squall._h1",
    "squall.concurrent",
    "squall.ioloop",
    "squall.escape",
    "squall.routing",
    "squall.gen",
    "squall._request_task",
    "squall.platform",
    "squall.template",
)


def setup(cfg: dict[str, Any]) -> tuple[asyncio.AbstractEventLoop, Harness]:
    if cfg["build"] == "pure":
        os.environ["SQUALL_NO_SPEEDUPS"] = "1"
    if cfg.get("log"):
        # As the chat programs' command line sets it up: INFO lines through
        # squall.log's formatter (to /dev/null here), an access line each.
        import logging

        from squall.log import LogFormatter

        handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
        handler.setFormatter(LogFormatter(color=False))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
    loop = new_loop(cfg["loop"])
    asyncio.set_event_loop(loop)
    harness = build(loop, cfg["app"])
    # Warm-up: every path once, at both sizes.
    harness.round(K1)
    harness.round(K1 + cfg["k"])
    return loop, harness


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: counts a wake of K1 and a wake of K1 + k waiters."""
    import _probe

    mod = _probe.load()
    _loop, harness = setup(cfg)
    labels: list[Any] = []
    if cfg["profile"]:
        from callgrind_hotpath import Probes

        probes = Probes(mod)
        probes.wrap_all(_PROFILED)
        labels = probes.labels
    mod.reset()
    repoll = bool(cfg.get("repoll"))
    counts = [
        harness.round(K1, mod.measure_a, repoll),
        harness.round(K1 + cfg["k"], mod.measure_b, repoll),
    ]
    result = {
        "counts": counts,
        "loop": type(_loop).__name__,
        "squall": sys.modules["squall"].__file__,
        "compiled": _compiled(),
        "labels": labels,
        "edges": mod.edges() if labels else [],
    }
    Path(cfg["out"]).write_text(json.dumps(result))


def _compiled() -> bool:
    import squall.httpserver._protocol as protocol

    return not str(protocol.__file__).endswith(".py")


def timed(cfg: dict[str, Any], rounds: int) -> list[float]:
    """CPU microseconds per waiter of ``rounds`` wakes of K1 + k, without valgrind."""
    _loop, harness = setup(cfg)
    out = []
    count = K1 + cfg["k"]
    for _ in range(rounds):
        harness.park(count)
        t0 = time.process_time()
        harness.wake(count)
        out.append((time.process_time() - t0) / count * 1e6)
    return out


def run_one(cfg: dict[str, Any], keep: Optional[str] = None) -> dict[str, Any]:
    result, incl, _ = run_inner(__file__, cfg, keep)
    a, b = result["counts"]
    result["per_waiter"] = (incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)) / (b - a)
    if result["labels"]:
        add_probe_costs(result, incl, a + b)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--app", action="append", choices=APPS)
    ap.add_argument("--build", action="append", choices=BUILDS)
    ap.add_argument("--loop", action="append", choices=LOOPS)
    ap.add_argument("-k", type=int, default=1000, help="waiters in the difference")
    ap.add_argument("--profile", action="store_true", help="hottest squall functions")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--time", action="store_true", help="CPU time per waiter, no valgrind")
    ap.add_argument("--log", action="store_true", help="access log on (INFO, to /dev/null)")
    ap.add_argument(
        "--repoll", action="store_true", help="count the polls' parking as well as their wake"
    )
    ap.add_argument("--rounds", type=int, default=7, help="wakes timed by --time")
    ap.add_argument("--keep", help="keep the callgrind output in KEEP.APP.BUILD.LOOP")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--time-inner", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.time_inner:
        print(json.dumps(timed(json.loads(args.time_inner[0]), int(args.time_inner[1]))))
        return 0
    if args.inner:
        inner(json.loads(args.inner))
        os._exit(0)
    if not args.time and shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    what = "CPU us" if args.time else "instructions"
    print(f"== {what} per woken long poll (a wake of {K1}+{args.k} less one of {K1})")
    for app in args.app or APPS:
        for build_ in args.build or BUILDS:
            for loop in args.loop or LOOPS:
                cfg = {"app": app, "build": build_, "loop": loop, "k": args.k, "log": args.log}
                cfg["repoll"] = args.repoll
                cfg["profile"] = args.profile
                name = f"{app} {build_} {loop}"
                if args.time:
                    # In a child, so that each build imports its own modules.
                    proc = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--time-inner",
                            json.dumps(cfg),
                            str(args.rounds),
                        ],
                        capture_output=True,
                        text=True,
                    )
                    if proc.returncode:
                        raise RuntimeError(proc.stderr[-3000:])
                    times = sorted(json.loads(proc.stdout.splitlines()[-1]))
                    median = times[len(times) // 2]
                    print(f"  {name:<28} {median:>8.1f} us  (min {times[0]:.1f})", flush=True)
                    report[name] = times
                    continue
                keep = f"{args.keep}.{app}.{build_}.{loop}" if args.keep else None
                res = run_one(cfg, keep)
                flag = "" if res["compiled"] == (build_ == "compiled") else "  (build mismatch!)"
                print(f"  {name:<28} {res['per_waiter']:>10,.0f}{flag}", flush=True)
                report[name] = res["per_waiter"]
                if args.profile:
                    rows = sorted(res["probe_self"].items(), key=lambda kv: -kv[1])
                    print("  hottest functions, self / inclusive instructions per waiter:")
                    for slot, cost in rows[: args.top]:
                        label = res["labels"][int(slot)][1]
                        print(f"    {cost:>8,.0f} {res['probe_incl'][slot]:>8,.0f}  {label}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
