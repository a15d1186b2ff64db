"""Instructions per request on the server's hot path, counted by callgrind.

A fixed stream of requests, built from a seed (``--stream varied``: each
request has its own query string, cookie and user agent, ~400 bytes, like
benchmarks/varied.lua; ``--stream repeated``: one such request over and
over), is fed in-process through a server's protocol object over a fake
transport, one request after the previous response, on an asyncio loop. The
whole thing runs under ``valgrind --tool=callgrind``, which counts executed
instructions: unlike timings, these do not move when the machine is busy, so
they can decide an optimisation.

Instructions per request = (count of a run of N+M requests - count of a run
of M requests) / N, both runs in one process after a warm-up, so imports,
start-up and first-time costs cancel. The "null" server (a protocol that
answers every head with canned bytes) gives the cost of the harness itself
(loop, fake transport), which is subtracted in the "net" column.

Stages of Squall's request (inclusive counts of probes, see _probe.py,
turned into self counts): parse (squall._h1 in and the headers object),
route (application delegate, routing, the request object), handler
(RequestHandler: construction, the method, finish, Etag), serialise (the
response head and end, squall._h1 out), write (the protocol's flush to the
transport), glue (the protocol's own request cycle). For aiohttp the stages
come from its C symbols: parse (the C parser's feed_data) and serialise
(_serialize_headers); the rest is one figure. The probes cost a little
each, so the stages are from a second run and the totals from a run without
probes.

Usage:
  python benchmarks/callgrind_hotpath.py                 # servers x stages, varied
  python benchmarks/callgrind_hotpath.py --caches        # the two caches on/off
  python benchmarks/callgrind_hotpath.py --profile       # Squall's hottest functions
  options: --server NAME (repeatable), --stream, -n, --handler hello|echo|json|page,
           --no-head-cache, --no-etag-memo, --json FILE, --squall-run OPTIONS
Installs nothing: needs valgrind (`make bench-callgrind` installs it with apt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE / "servers"))  # the benchmark servers' handlers and page data

# squall-pure: SQUALL_NO_SPEEDUPS=1 (the Python head parser); squall: as
# installed with speedups ("auto" parser); squall-httptools: the llhttp
# backend forced. The loop is asyncio's unless --loop uvloop.
SERVERS = ["squall-pure", "squall", "squall-httptools", "aiohttp", "aiohttp-lowlevel", "null"]
WARMUP = 300
FIRST = 300  # the short run; the long run has FIRST + n requests
SEED = 1311

# -- the request stream -----------------------------------------------------------------

_WORDS = ["python", "squall", "tornado", "asyncio", "benchmark", "weather", "recipes", "laptop"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:{a}.0) Gecko/20100101 Firefox/{a}.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{a}.0.{b}.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{a} Safari/605.1.{b}",
]


def make_request(n: int, rng: random.Random, path: str = "/") -> bytes:
    """One ~400-byte browser-like GET whose query, cookie and user agent depend on n."""
    agent = rng.choice(_AGENTS).format(a=rng.randrange(100, 137), b=rng.randrange(9000))
    return (
        f"GET {path}?q={rng.choice(_WORDS)}-{n}&page={n % 50 + 1}&sort={rng.choice(['asc', 'desc'])}"
        " HTTP/1.1\r\n"
        "Host: 127.0.0.1:8888\r\n"
        f"User-Agent: {agent} bench/1.{n}\r\n"
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        "Accept-Language: en-US,en;q=0.5\r\n"
        "Accept-Encoding: gzip, deflate\r\n"
        f"Cookie: session={rng.getrandbits(64):016x}; theme={rng.choice(['dark', 'light'])}; "
        f"visits={n % 1000}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()


def request_stream(kind: str, count: int, seed: int = SEED) -> list[bytes]:
    rng = random.Random(seed)
    if kind == "repeated":
        one = make_request(1, rng)
        return [one] * count
    return [make_request(n, rng) for n in range(1, count + 1)]


# -- in-process driving -----------------------------------------------------------------

_CL = re.compile(rb"\r\ncontent-length: *(\d+)", re.I)


class FakeTransport(asyncio.Transport):
    """Collects what the server writes and cuts it into responses.

    Every complete response calls ``on_response(status, body)``.
    """

    # Slots, not an instance dict, here and in every harness transport:
    # CPython 3.13 specializes no attribute or method read on an instance
    # whose class adds a dict to a base that has slots (asyncio's
    # BaseTransport has one), and the server's writes to the transport
    # would pay that generic read where uvloop's C transports do not
    # (docs/figures.md, "What 3.12 and 3.13 do not specialize").
    __slots__ = ("buf", "on_response", "closed", "extra")

    def __init__(self, on_response: Any) -> None:
        super().__init__()
        self.buf = b""
        self.on_response = on_response
        self.closed = False
        self.extra = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8888)}

    def write(self, data: Any) -> None:
        buf = self.buf + bytes(data)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            m = _CL.search(buf, 0, end + 2)
            length = int(m.group(1)) if m else 0
            if len(buf) < end + 4 + length:
                break
            self.on_response(int(buf[9:12]), buf[end + 4 : end + 4 + length])
            buf = buf[end + 4 + length :]
        self.buf = buf

    def writelines(self, parts: Any) -> None:
        self.write(b"".join(parts))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False


class Driver:
    """Feeds requests one at a time: the next one once the previous response is complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop, requests: list[bytes]) -> None:
        self.loop = loop
        self.requests = iter(requests)
        self.transport = FakeTransport(self.on_response)
        self.proto: Any = None
        self.remaining = 0
        self.done: asyncio.Future[None] | None = None
        self.statuses: dict[int, int] = defaultdict(int)
        self.bodies: set[bytes] = set()

    def run(self, count: int) -> None:
        self.remaining = count
        self.done = self.loop.create_future()
        self.loop.call_soon(self.feed)
        self.loop.run_until_complete(self.done)

    def feed(self) -> None:
        self.proto.data_received(next(self.requests))

    def on_response(self, status: int, body: bytes) -> None:
        self.statuses[status] += 1
        if len(self.bodies) < 4:
            self.bodies.add(body[:60])
        self.remaining -= 1
        if self.remaining:
            self.loop.call_soon(self.feed)
        else:
            assert self.done is not None
            self.done.set_result(None)


class _NullProtocol(asyncio.Protocol):
    """The harness's own cost: a canned answer to every head."""

    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello, world"
    )

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if data.endswith(b"\r\n\r\n"):
            self.transport.write(self.RESPONSE)


def _squall_protocol(
    loop: asyncio.AbstractEventLoop, handler: str, squall_run: str | None = None
) -> Any:
    # The handlers of the wrk benchmark's server (benchmarks/servers), so
    # that both measure the same code; Echo is the harness's own.
    import squall_web
    from _page import TEMPLATES

    import squall.web
    from squall.httpserver import HTTPServer

    class Echo(squall.web.RequestHandler):
        def get(self) -> None:
            self.write("Hello, " + self.get_argument("q", ""))

    handlers: dict[str, type[squall.web.RequestHandler]] = {
        "hello": squall_web.Hello,
        "echo": Echo,
        "json": squall_web.Json,
        "page": squall_web.Page,
    }
    app = squall.web.Application([("/", handlers[handler])], template_path=TEMPLATES)
    if squall_run is None:
        return capture_protocol(loop, HTTPServer(app))
    # The server as `squall run` builds it in a worker with these options.
    import shlex

    from squall.cli._options import parse_config
    from squall.cli._target import serve_target
    from squall.cli._worker import build_server

    config = parse_config(["cg:app", *shlex.split(squall_run)], environ={})
    metrics = None
    if config.metrics_bind:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp())
        from squall.cli._metrics import WorkerMetrics

        metrics = WorkerMetrics()
    server, _ = build_server(config, serve_target(app, "cg:app"), None, metrics)
    if metrics is not None:
        metrics.attach(app, server)
    return capture_protocol(loop, server)


def capture_protocol(
    loop: asyncio.AbstractEventLoop, server: Any, factories: Optional[list[Any]] = None
) -> Any:
    """A protocol from the factory exactly as ``server.add_sockets`` makes it:
    what it hands to loop.create_server is captured instead of serving a socket
    (and appended to ``factories`` when given, for more protocols)."""
    import socket

    captured: list[Any] = [] if factories is None else factories

    class _Server:
        async def start_serving(self) -> None:
            pass

        def close(self) -> None:
            pass

    async def create_server(factory: Any, **kwargs: Any) -> _Server:
        captured.append(factory)
        return _Server()

    loop.create_server = create_server  # type: ignore[method-assign,assignment]
    try:
        server.add_sockets([socket.socket()])
    finally:
        del loop.create_server  # type: ignore[attr-defined]
    return captured[0]()


def _aiohttp_protocol(loop: asyncio.AbstractEventLoop, handler: str, lowlevel: bool) -> Any:
    # The wrk benchmark server's handlers too (benchmarks/servers/aiohttp_web.py).
    import aiohttp_jinja2
    import aiohttp_web
    import jinja2
    from _page import TEMPLATES
    from aiohttp import web

    async def echo(request: web.BaseRequest) -> web.Response:
        return web.Response(text="Hello, " + request.query.get("q", ""))

    handlers: dict[str, Any] = {
        "hello": aiohttp_web.hello,
        "echo": echo,
        "json": aiohttp_web.json_,
        "page": aiohttp_web.page,
    }
    func = handlers[handler]
    if lowlevel:
        if handler == "page":
            raise SystemExit("the page handler needs aiohttp's Application (not aiohttp-lowlevel)")
        server = web.Server(func, loop=loop, access_log=None)
    else:
        app = web.Application()
        if handler == "page":
            aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
        app.router.add_get("/", func)
        server = app._make_handler(loop=loop, access_log=None)
    return server()


class _FixedClock(ModuleType):
    """``time`` for squall.web._status (the Date header) with a clock that stands still, so the
    once-a-second Date header is formatted once, not once per second of a
    run's (load-dependent) wall time: the counts stay deterministic."""

    def __init__(self) -> None:
        super().__init__("time")
        import itertools

        self.time = itertools.repeat(1_800_000_000.0).__next__

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)


def _patch_caches(no_head_cache: bool, no_etag_memo: bool) -> list[str]:
    """Turns Squall's caches off by their size limits (not in squall/: here)."""
    done = []
    if no_head_cache:
        import squall._h1._connection as conn

        if hasattr(conn, "_HEAD_CACHE_MAX"):
            conn._HEAD_CACHE_MAX = -1  # type: ignore[misc]
            done.append("head cache off")
        else:
            done.append("no head cache (removed from squall._h1)")
    if no_etag_memo:
        import squall.web._etag as etag

        assert hasattr(etag, "_ETAG_MEMO_MAX"), "squall.web._etag has no _ETAG_MEMO_MAX any more"
        etag._ETAG_MEMO_MAX = -1
        done.append("etag memo off")
    return done


# -- probes -------------------------------------------------------------------------------

SQUALL_STAGES = [
    ("request", "squall.httpserver._protocol", "_HTTPProtocol.data_received"),
    ("parse", "squall._h1._connection", "H1Connection.receive_data"),
    ("parse", "squall._h1._connection", "H1Connection.next_event"),
    ("parse", "squall.httputil", "HTTPHeaders._from_pairs"),
    ("route", "squall.web.application", "Application.start_request"),
    (
        "route",
        "squall.web.application",
        "_HandlerDelegate.headers_received|_ApplicationDelegate.headers_received",
    ),
    ("handler", "squall.web.application", "_HandlerDelegate.finish|_ApplicationDelegate.finish"),
    ("serialise", "squall.httpserver._h1exchange", "_RequestConnection.write_headers"),
    ("serialise", "squall.httpserver._h1exchange", "_RequestConnection.finish"),
    ("write", "squall.httpserver._h1output", "_H1Output.flush"),
]
AIOHTTP_STAGES = [
    ("request-in", "aiohttp.web_protocol", "RequestHandler.data_received"),
]
# Never wrapped: called by the type machinery in ways a probe would change.
_SKIP = {
    "__new__",
    "__init_subclass__",
    "__class_getitem__",
    "__set_name__",
    "__subclasshook__",
    "__instancecheck__",
    "__subclasscheck__",
    "__getattribute__",
    "__setattr__",
    "__delattr__",
    "__del__",
    "__get__",
    "__set__",
    "__repr__",
}


def _compared_with_stock() -> set[int]:
    """Functions squall compares with what a class has now, to choose a path:
    the module-level ``_stock_*`` names (HTTPServer.start_request,
    Application.find_handler, ...) and the hooks of every traits class (see
    squall._traits). A probe in place of one reads as a patch or an override
    (an instrumentation's, a subclass's): HTTPServer.start_request probed sends
    every request through squall.httpserver._intask's TaskedDelegate, a
    probed hook makes the handler call it. Never wrapped: a profile of the
    path users run."""
    ids: set[int] = set()
    for name, module in list(sys.modules.items()):
        if name.startswith("squall") and module is not None:
            for key, value in list(vars(module).items()):
                if key.startswith("_stock_"):
                    ids.add(id(value))
    # prepare() is one of the two functions squall.web._delegate's plans
    # read (a plain function or not): probed, every request would take the
    # Task path a waiting handler takes on 3.11.
    try:
        from squall.web import RequestHandler

        ids.add(id(vars(RequestHandler)["prepare"]))
    except (ImportError, KeyError):
        pass
    try:
        from squall._traits import Traits
    except ImportError:  # a tree from before the traits (406f920)
        return ids
    kinds: list[type] = [Traits]
    while kinds:
        kind = kinds.pop()
        kinds.extend(kind.__subclasses__())
        ids.update(id(func) for func in vars(kind).get("stock", {}).values())
    return ids


_PROFILED = (
    "squall._h1",
    "squall.httpserver",
    "squall.httputil",
    "squall.http1connection",
    "squall.web",
    "squall.routing",
    "squall.escape",
    "squall.locale",
    "squall.template",
    "squall.util",
    "squall.concurrent",
)


class Probes:
    def __init__(self, mod: ModuleType) -> None:
        self.mod = mod
        self.labels: list[tuple[str, str]] = []  # slot -> (stage label, function name)

    def wrap(self, owner: Any, attr: str, label: str, name: str) -> bool:
        raw = vars(owner).get(attr)
        if isinstance(raw, (staticmethod, classmethod)):
            func = raw.__func__
        else:
            func = raw
        if not isinstance(func, FunctionType):
            return False
        # Generators and coroutines: a probe would count their creation only.
        if func.__code__.co_flags & 0x2A0:
            return False
        if len(self.labels) >= self.mod.SLOTS:
            return False
        probe = self.mod.probe(func, len(self.labels))
        self.labels.append((label, name))
        if isinstance(raw, staticmethod):
            setattr(owner, attr, staticmethod(probe))
        elif isinstance(raw, classmethod):
            setattr(owner, attr, classmethod(probe))
        else:
            setattr(owner, attr, probe)
        if isinstance(owner, ModuleType):
            # `from x import f` elsewhere: those names point at the probe too.
            for other in list(sys.modules.values()):
                space = getattr(other, "__dict__", None)
                if space is None or other is owner:
                    continue
                for key, value in list(space.items()):
                    if value is func:
                        space[key] = probe
        return True

    def wrap_path(self, label: str, module: str, qualname: str) -> bool:
        """Probes ``module.qualname``; ``qualname`` may list alternatives, ``"A.f|B.f"``:
        each that exists is probed (same stage: nested calls are not counted twice),
        so that older and newer trees can both be measured."""
        __import__(module)
        done = False
        for name in qualname.split("|"):
            owner: Any = sys.modules[module]
            *outer, attr = name.split(".")
            for part in outer:
                owner = getattr(owner, part, None)
                if owner is None:
                    break
            else:
                done = self.wrap(owner, attr, label, f"{module}.{name}") or done
        return done

    def wrap_all(self, prefixes: tuple[str, ...]) -> None:
        """Every plain function and method of squall/ reachable from the modules under
        ``prefixes`` (classes are often re-exported with a public ``__module__``, so
        where a function was defined is read from its code object)."""
        import squall

        root = os.path.dirname(os.path.abspath(squall.__file__))
        seen: set[int] = _compared_with_stock()

        def ours(func: Any) -> bool:
            return isinstance(func, FunctionType) and func.__code__.co_filename.startswith(root)

        for name, module in sorted(sys.modules.items()):
            if not name.startswith(prefixes) or module is None:
                continue
            for key, value in list(vars(module).items()):
                if ours(value) and id(value) not in seen:
                    seen.add(id(value))
                    self.wrap(module, key, "fn", f"{value.__module__}.{value.__qualname__}")
                elif isinstance(value, type) and id(value) not in seen:
                    seen.add(id(value))
                    for attr in list(vars(value)):
                        item = vars(value)[attr]
                        func = getattr(item, "__func__", item)
                        if attr not in _SKIP and ours(func) and id(func) not in seen:
                            seen.add(id(func))
                            self.wrap(value, attr, "fn", f"{func.__module__}.{func.__qualname__}")


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: builds the server, warms up, measures, writes cfg['out']."""
    server = cfg["server"]
    if server == "squall-pure":
        os.environ["SQUALL_NO_SPEEDUPS"] = "1"
    import _probe

    mod = _probe.load()
    patched = _patch_caches(cfg["no_head_cache"], cfg["no_etag_memo"])
    if server.startswith("squall"):
        import squall.web.handler

        # The Date header's module (squall.web._status; squall.web.handler before).
        dated = sys.modules.get("squall.web._status", squall.web.handler)
        if getattr(dated, "time", None) is not None:
            dated.time = _FixedClock()  # type: ignore[attr-defined]
            patched.append("fixed clock")
    if server == "squall-httptools":
        import squall._h1._connection as conn

        conn.AUTO_PARSER = "httptools"  # type: ignore[misc]
    if cfg["loop"] == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    total = WARMUP + FIRST + FIRST + cfg["n"]
    driver = Driver(loop, request_stream(cfg["stream"], total))
    probes = Probes(mod)
    if cfg["probes"] in ("stages", "all"):
        # The harness's own write, kept out of the server's _flush.
        probes.wrap(FakeTransport, "write", "transport", "(harness) FakeTransport.write")
    if server.startswith("squall"):
        import squall.web  # noqa: F401  (the modules the probes go into)

        if cfg["probes"] == "stages":
            for label, module, qualname in SQUALL_STAGES:
                if not probes.wrap_path(label, module, qualname):
                    print(f"no probe for {module}.{qualname}", file=sys.stderr)
        elif cfg["probes"] == "all":
            import squall.httpserver  # noqa: F401

            probes.wrap_all(_PROFILED)
        driver.proto = _squall_protocol(loop, cfg["handler"], cfg.get("squall_run"))
    elif server.startswith("aiohttp"):
        if cfg["probes"] == "stages":
            for label, module, qualname in AIOHTTP_STAGES:
                probes.wrap_path(label, module, qualname)
        driver.proto = _aiohttp_protocol(loop, cfg["handler"], server == "aiohttp-lowlevel")
    else:
        driver.proto = _NullProtocol()
    driver.proto.connection_made(driver.transport)
    driver.run(WARMUP)
    mod.reset()
    # Two runs, FIRST and FIRST + n requests: their difference is n requests
    # with every fixed cost cancelled.
    mod.measure_a(lambda: driver.run(FIRST))
    mod.measure_b(lambda: driver.run(FIRST + cfg["n"]))
    if server.startswith("squall"):
        parser = driver.proto.h1.parser if hasattr(driver.proto, "h1") else "?"
    else:
        parser = "-"
    result = {
        "statuses": dict(driver.statuses),
        "bodies": sorted(b.decode(errors="replace") for b in driver.bodies),
        "labels": probes.labels,
        "edges": mod.edges(),
        "patched": patched,
        "parser": parser,
        "loop": type(loop).__name__,
        "squall": sys.modules["squall"].__file__ if "squall" in sys.modules else "-",
    }
    Path(cfg["out"]).write_text(json.dumps(result))


# -- the outer process: valgrind and callgrind_annotate ----------------------------------------

_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(?:\S*?):(\S+)")


def annotate(path: str, inclusive: bool) -> dict[str, int]:
    """{function name: instructions} from callgrind_annotate.

    One function can be listed twice, under its source file's absolute and
    relative path (when the working directory is above that file): the
    largest figure is kept, not the sum.
    """
    out = subprocess.run(
        [
            "callgrind_annotate",
            f"--inclusive={'yes' if inclusive else 'no'}",
            "--threshold=100",
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    costs: dict[str, int] = {}
    for line in out.splitlines():
        m = _LINE.match(line)
        if m:
            name = m.group(2)
            costs[name] = max(costs.get(name, 0), int(m.group(1).replace(",", "")))
    return costs


def run_inner(
    script: str, cfg: dict[str, Any], keep: str | None = None, *, build_from_env: bool = False
) -> tuple[dict[str, Any], dict[str, int], dict[str, int]]:
    """Runs ``script --inner CFG`` under callgrind (collecting inside ``sq_measure_*``).

    Returns the inner run's JSON result and the inclusive and self costs per
    function; ``keep`` names a file to keep the callgrind output in. The
    sibling scripts (callgrind_handshake.py, ...) share it. The inner run
    picks its build from ``cfg`` (SQUALL_NO_SPEEDUPS is taken out of its
    environment), or with ``build_from_env`` from the caller's environment
    (callgrind_h2.py, callgrind_h3.py: ``SQUALL_NO_SPEEDUPS=1`` for pure).
    """
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dict(cfg, out=os.path.join(tmp, "result.json"))
        cg = keep or os.path.join(tmp, "callgrind.out")
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=sq_measure_*",
            f"--callgrind-out-file={cg}",
            sys.executable,
            *(["-S"] if sys.flags.no_site else []),
            script,
            "--inner",
            json.dumps(cfg),
        ]
        env = dict(os.environ, PYTHONHASHSEED="0")
        if not build_from_env:
            env.pop("SQUALL_NO_SPEEDUPS", None)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"valgrind run failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(Path(cfg["out"]).read_text())
        return result, annotate(cg, True), annotate(cg, False)


def add_probe_costs(result: dict[str, Any], incl: dict[str, int], measured: int) -> None:
    """Puts the probes' inclusive and self costs, per measured unit, into ``result``."""
    slots = {
        int(m.group(1)): cost
        for name, cost in incl.items()
        if (m := re.fullmatch(r"sq_probe_(\d+)", name))
    }
    result["probe_incl"] = {str(k): v / measured for k, v in slots.items()}
    result["probe_self"] = self_costs(result["labels"], result["edges"], slots, measured)


def run_one(cfg: dict[str, Any], keep: str | None = None) -> dict[str, Any]:
    """One valgrind run; returns the inner result plus the counts."""
    result, incl, self_c = run_inner(__file__, cfg, keep)
    result["self_c"] = sorted(self_c.items(), key=lambda kv: -kv[1])[:25]
    n = cfg["n"]
    a, b = incl.get("sq_measure_a", 0), incl.get("sq_measure_b", 0)
    result["per_request"] = (b - a) / n
    measured = FIRST + FIRST + n  # requests under either measure_* function
    add_probe_costs(result, incl, measured)
    result["c_symbols"] = {
        k: v / measured for k, v in incl.items() if "feed_data" in k or "serialize_headers" in k
    }
    expected_ok = WARMUP + FIRST + FIRST + n
    if result["statuses"].get("200") != expected_ok:
        raise RuntimeError(
            f"{cfg['server']}: responses {result['statuses']}, expected {expected_ok} x 200"
        )
    return result


def self_costs(
    labels: list[Any], edges: list[list[int]], incl: dict[int, int], measured: int
) -> dict[str, float]:
    """Self instructions per request of each probe: its inclusive count less its
    children's, each child's share in proportion to the calls it got from this
    parent (exact when a function's cost does not depend on its caller)."""
    calls_to: dict[int, int] = defaultdict(int)
    for _parent, child, count in edges:
        calls_to[child] += count
    own = {slot: float(cost) for slot, cost in incl.items()}
    for parent, child, count in edges:
        if parent in own and calls_to[child]:
            own[parent] -= incl.get(child, 0) * count / calls_to[child]
    return {str(slot): own[slot] / measured for slot in own}


def calls_per_request(result: dict[str, Any], measured: int) -> dict[str, float]:
    calls: dict[str, float] = defaultdict(float)
    for _parent, child, count in result["edges"]:
        calls[str(child)] += count / measured
    return calls


def base_cfg(args: argparse.Namespace, server: str, **over: Any) -> dict[str, Any]:
    cfg = {
        "server": server,
        "stream": args.stream,
        "n": args.n,
        "handler": args.handler,
        "no_head_cache": args.no_head_cache,
        "no_etag_memo": args.no_etag_memo,
        "probes": "none",
        "loop": args.loop,
        "squall_run": args.squall_run,
    }
    cfg.update(over)
    return cfg


def stage_table(args: argparse.Namespace, report: dict[str, Any]) -> None:
    # "squall" runs the same code as squall-pure on asyncio's loop while
    # "auto" picks the Python parser: not repeated by default.
    servers = args.server or [s for s in SERVERS if s != "squall"]
    null = run_one(base_cfg(args, "null"))["per_request"] if "null" in servers else 0.0
    print(
        f"== instructions per request, {args.stream} stream, {args.handler} handler, "
        f"n={args.n} ({args.loop} loop; null harness = {null:,.0f})"
    )
    for server in servers:
        if server == "null":
            continue
        total = run_one(base_cfg(args, server))
        per = total["per_request"]
        line = f"  {server:<17} total {per:>9,.0f}  net of harness {per - null:>9,.0f}"
        entry: dict[str, Any] = {"total": per, "net": per - null, "parser": total["parser"]}
        if args.totals:
            print(line + f"  (parser {total['parser']})")
            report.setdefault("stages", {}).setdefault(args.stream, {})[server] = entry
            continue
        staged = run_one(base_cfg(args, server, probes="stages"))
        stages: dict[str, float] = defaultdict(float)
        for slot, cost in staged["probe_self"].items():
            stages[staged["labels"][int(slot)][0]] += cost
        transport = stages.pop("transport", 0.0)
        if server.startswith("squall"):
            # Inside data_received, less the fake transport's own write.
            stages["glue"] = stages.pop("request", 0.0)
            inside = sum(stages.values())
            stages["= server work inside data_received"] = inside
            stages["loop + harness (staged total - inside)"] = staged["per_request"] - inside
        else:
            c = staged["c_symbols"]
            parse = max((v for k, v in c.items() if "feed_data" in k), default=0.0)
            ser = max((v for k, v in c.items() if "serialize_headers" in k), default=0.0)
            request_in = stages.pop("request-in", 0.0)
            stages = defaultdict(float)
            stages["parse (C feed_data)"] = parse
            stages["data_received less parse"] = request_in - parse
            stages["serialise (C _serialize_headers)"] = ser
            stages["rest: route, handler, response, write, tasks"] = (
                staged["per_request"] - transport - null - request_in - ser
            )
        stages["harness: transport.write (staged)"] = transport
        entry["stages"] = dict(stages)
        entry["probe_overhead"] = staged["per_request"] - per
        print(
            line
            + f"  (parser {total['parser']}; stage run with probes {staged['per_request']:,.0f})"
        )
        print(
            f"      squall from {total['squall']}; {', '.join(total['patched']) or 'nothing patched'}"
        )
        for name, cost in stages.items():
            print(f"      {name:<44} {cost:>9,.0f}")
        report.setdefault("stages", {}).setdefault(args.stream, {})[server] = entry


def cache_table(args: argparse.Namespace, report: dict[str, Any]) -> None:
    print("== caches: instructions per request (asyncio loop; hello and echo handlers)")
    print(
        f"  {'server':<12} {'stream':<9} {'handler':<7} {'both on':>9} {'no head':>9} {'no etag':>9} {'both off':>9}"
    )
    out = report.setdefault("caches", [])
    for server in args.server or ("squall-pure", "squall-httptools"):
        for stream, handler in (("varied", "hello"), ("repeated", "hello"), ("varied", "echo")):
            row = []
            for head, etag in ((False, False), (True, False), (False, True), (True, True)):
                cfg = base_cfg(
                    args,
                    server,
                    stream=stream,
                    handler=handler,
                    no_head_cache=head,
                    no_etag_memo=etag,
                )
                row.append(run_one(cfg)["per_request"])
            out.append({"server": server, "stream": stream, "handler": handler, "counts": row})
            print(
                f"  {server:<12} {stream:<9} {handler:<7} " + " ".join(f"{x:>9,.0f}" for x in row)
            )
            sys.stdout.flush()


def profile_table(args: argparse.Namespace, report: dict[str, Any], top: int = 25) -> None:
    server = (args.server or ["squall-pure"])[0]
    keep = args.keep
    res = run_one(base_cfg(args, server, probes="all"), keep=keep)
    plain = run_one(base_cfg(args, server))["per_request"]
    measured = FIRST + FIRST + args.n
    calls = calls_per_request(res, measured)
    rows = sorted(res["probe_self"].items(), key=lambda kv: -kv[1])
    print(
        f"== {server}: hottest functions by self instructions per request ({args.stream} stream, "
        f"{args.handler}); {len(res['labels'])} functions probed; total {plain:,.0f} "
        f"without probes, {res['per_request']:,.0f} with"
    )
    listing = []
    for slot, cost in rows[:top]:
        name = res["labels"][int(slot)][1]
        incl = res["probe_incl"][slot]
        print(f"  {cost:>8,.0f} self {incl:>8,.0f} incl {calls[slot]:>5.2f} calls  {name}")
        listing.append({"function": name, "self": cost, "incl": incl, "calls": calls[slot]})
    print("  top C functions by self instructions (whole measured run, per request):")
    for name, cost in res["self_c"][:12]:
        print(f"  {cost / measured:>8,.0f}  {name}")
    report["profile"] = {
        "server": server,
        "total": plain,
        "functions": listing,
        "c": res["self_c"][:12],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", choices=SERVERS)
    ap.add_argument("--stream", choices=["varied", "repeated"], default="varied")
    ap.add_argument("--handler", choices=["hello", "echo", "json", "page"], default="hello")
    ap.add_argument("-n", type=int, default=2000, help="requests in the difference")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--no-head-cache", action="store_true")
    ap.add_argument("--no-etag-memo", action="store_true")
    ap.add_argument("--caches", action="store_true", help="the cache on/off table")
    ap.add_argument("--profile", action="store_true", help="hottest Squall functions")
    ap.add_argument("--both-streams", action="store_true", help="stage table for both streams")
    ap.add_argument("--totals", action="store_true", help="totals only (no stage run)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--keep", help="keep the profile run's callgrind output here")
    ap.add_argument(
        "--record",
        action="store_true",
        help="write benchmarks/results/callgrind-LOOP.json (each squall server's total "
        "against aiohttp's) and regenerate the README's tables",
    )
    ap.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    ap.add_argument(
        "--squall-run",
        metavar="OPTIONS",
        help="build Squall's server as `squall run OPTIONS` does in a worker (e.g. "
        "'--no-access-log --metrics-bind :9100')",
    )
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    if args.caches:
        cache_table(args, report)
    elif args.profile:
        profile_table(args, report, args.top)
    else:
        for stream in ("varied", "repeated") if args.both_streams else (args.stream,):
            args.stream = stream
            stage_table(args, report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.record:
        record(args, report)
    return 0


RECORD_NAMES = {"squall": "Squall (compiled)", "squall-pure": "pure Squall"}


def record(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Writes the totals of a stage run as benchmarks/results/callgrind-LOOP.json."""
    import figures

    totals = report.get("stages", {}).get(args.stream, {})
    if "aiohttp" not in totals:
        raise SystemExit("--record: needs --server aiohttp (the figures are against it)")
    rows = [
        {
            "label": f"instructions per {args.handler} request, {name} / aiohttp "
            f"({args.loop} loop, {args.stream} stream, callgrind)",
            "squall": round(totals[server]["total"]),
            "other": round(totals["aiohttp"]["total"]),
            "unit": "instructions",
        }
        for server, name in RECORD_NAMES.items()
        if server in totals
    ]
    if not rows:
        raise SystemExit("--record: needs --server squall or --server squall-pure")
    path = figures.record(
        f"callgrind-{args.loop}",
        Path(__file__).resolve(),
        figures.squall_build(),
        {"rows": rows, "n": args.n, "totals": totals},
    )
    figures.main_update()
    print(f"recorded in {path}")


if __name__ == "__main__":
    sys.exit(main())
