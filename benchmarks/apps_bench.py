"""Real applications' own workloads on Tornado and on Squall, per server
CPU-second, with the share of the server's CPU that runs in the framework
(``make bench-apps``).

Workloads:
- Jupyter Server's REST API: ``GET /api/status``, ``GET /api/contents`` (a
  folder of 42 entries) and ``GET /api/contents/nb.ipynb?content=1`` (a
  notebook of 30 cells with outputs), by wrk over ``--connections``
  connections with the token header; requests per CPU-second.
- Saving a notebook: ``PUT /api/contents/saved/nb-N.ipynb`` with the model
  Jupyter's frontend sends (type notebook, format json, the content row's
  notebook with one line added to its first cell), each connection saving a file of its own over and over (by
  wrk's script `WRK_SEND`, which counts every answer outside 2xx: one
  fails the run). Jupyter validates the notebook, signs it (its SQLite
  notary) and writes it atomically with an fsync: its server waits on the
  disk much of the time, which CPU-seconds leave out.
- A Jupyter kernel's messages over its WebSocket: a kernel started by
  ``POST /api/kernels``, its ``/api/kernels/ID/channels`` socket (Jupyter's
  JSON protocol), 4 executions of ``a = 1`` in flight; each execution is 5
  messages through the server (the request; busy, execute_input,
  execute_reply, idle). Messages per CPU-second of the *server process
  alone*: the kernel (a child process, the same ipykernel on both sides) is
  not charged, and is moved to CPU 1 once started so that it does not share
  the server's core.
- Bokeh server: one visit is a browser's (``GET /slider``, which makes a
  session and its document; the session's WebSocket; ``PULL-DOC-REQ``; one
  slider change sent as ``PATCH-DOC`` and the answer the app's callback
  makes), 4 visitors at once; visits per CPU-second.
- JupyterHub's REST API: ``GET /hub/api/users`` (20 users), with a
  service's token allowed to list and read them, what the idle culler and
  the admin page ask the hub over and over; by wrk as Jupyter's rows. The
  hub runs with its own configuration (`HUB_CONFIG`) and an in-memory
  proxy: its API is the hub's own port, the proxy only routes to users'
  servers, and none is started.
The WebSocket clients are benchmarks/apps_clients.py, in the venv.

One venv under the cache directory holds the applications and Tornado at
the pinned versions (`PINS`), and Squall installed from this checkout
(``pip install '.[speedups]'``, compiled where a compiler is; reinstalled
each run, which the build's object cache makes a relink). The same server
runs as ``python -m APP`` (Tornado) and ``python -m squall.compat -m APP``
(Squall), pinned to CPU 0; the load (wrk, the WebSocket clients) runs on
CPU 1. The two alternate over ``--rounds`` rounds; the table gives medians
of units per CPU-second and Squall's ratio, with the load average (read the
ratios on a loaded machine, not the figures). Beside them, Squall's ratio
of units per wall-second, and the share of its core each server used
(``busy``): a server that waits answers fewer a second for the same CPU.
On the WebSocket rows, Tornado's server waits on its client's delayed
acknowledgements: Tornado turns TCP_NODELAY off once a response is sent,
so a WebSocket (Jupyter and Bokeh leave it as it is) sends with Nagle's
algorithm, and a second small frame written before the first is
acknowledged waits for the client's delayed ACK (40 ms on Linux); Squall's
connections (asyncio transports) have TCP_NODELAY on. ``--tornado-nodelay``
runs Tornado with it always on, as a control (not recorded).

The framework's share: after the rounds, each framework serves each
workload once more under py-spy (sampling at 250 Hz; samples of threads
blocked in a wait left out, `IDLE_FRAMES`): Tornado and Squall's pure
build (``SQUALL_NO_SPEEDUPS=1``) by their Python frames, then Squall's
compiled build with ``--native`` (its compiled functions make no Python
frames, but their C functions are named after their modules,
``__native_squall___web____delegate.c``). A sample is the framework's when
the innermost frame that is neither the standard library's nor another C
function is in ``squall/`` (``tornado/`` for Tornado's row): so the
standard library a framework calls (asyncio's loop under ``IOLoop.start``,
``logging`` under ``log_request``, ``json`` under ``write``) is the
framework's, and what the application calls is the application's.
``self`` is the narrower count (that frame is the innermost of all). The
row's ceiling, 1 / (1 - Tornado's share), is Squall's ratio were its own
work free and the application's the same on both.

    python benchmarks/apps_bench.py [--rounds 5] [--duration 5] [--connections 8]
        [--only NAME ...] [--no-profile] [--record] [--tornado-nodelay]

``--record`` writes benchmarks/results/apps.json (then ``python
benchmarks/figures.py`` puts its rows into docs/figures.md). Standard
library only; the cache directory is ``$SQUALL_APPS_CACHE/bench`` or
``~/.cache/squall-apps/bench``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cpuclock import cpu_seconds, process_tree  # noqa: E402
from h2_bench import free_port, wait_listening  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PINS = [
    "jupyter_server==2.21.1",
    "tornado==6.6.1",
    "ipykernel==7.4.0",
    "bokeh==3.9.0",
    "py-spy==0.4.3",
    "jupyterhub==6.1.1",
]
TOKEN = "squall-bench-apps"
FRAMEWORKS = ("tornado", "squall")
# Where each framework's own frames are (py-spy names files from their import root).
FRAMEWORK_DIR = {"tornado": "tornado/", "squall": "squall/"}
SAMPLE_RATE = 250
BOKEH_APP = """\
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

slider = Slider(start=0, end=100, value=0, step=1, title="x", name="slider")
out = Div(text="x is 0", name="out")


def changed(attr, old, new):
    out.text = f"x is {new}"


slider.on_change("value", changed)
curdoc().add_root(column(slider, out))
"""


def notebook(cells: int) -> dict[str, object]:
    """An nbformat 4.5 notebook of ``cells`` code cells, each with a stream output."""
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": i + 1,
                "id": f"cell-{i:04d}",
                "metadata": {},
                "outputs": [
                    {
                        "name": "stdout",
                        "output_type": "stream",
                        "text": [f"{i} squared is {i * i}\n"],
                    }
                ],
                "source": [f"x = {i}\n", "print(x, 'squared is', x * x)"],
            }
            for i in range(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def save_body(cells: int = 30) -> bytes:
    """What Jupyter's frontend sends to save a notebook: its model, the
    notebook (the one the content row reads) as JSON, its first cell edited.
    (Saved unedited, the content row's notebook would be trusted: Jupyter's
    notary keeps the signatures of what it saved, and reading a trusted
    notebook writes its database, four fdatasyncs a request.)"""
    content = notebook(cells)
    first = content["cells"][0]  # type: ignore[index]
    first["source"] = [*first["source"], "\nx += 1"]
    model = {"type": "notebook", "format": "json", "content": content}
    return json.dumps(model).encode()


@dataclass(frozen=True)
class Workload:
    name: str
    app: str  # "jupyter", "bokeh" or "jupyterhub": which server
    kind: str  # "http" (wrk), "kernel" or "bokeh" (apps_clients.py)
    # The path wrk asks for (``%d``: each connection's number, a file of its
    # own), or the Bokeh app's name.
    target: str
    unit: str
    method: str = "GET"
    body: bytes = b""  # the body of each request (JSON)


WORKLOADS = [
    Workload("jupyter status", "jupyter", "http", "/api/status", "request"),
    Workload("jupyter contents", "jupyter", "http", "/api/contents", "request"),
    Workload("jupyter notebook", "jupyter", "http", "/api/contents/nb.ipynb?content=1", "request"),
    Workload(
        "jupyter save",
        "jupyter",
        "http",
        "/api/contents/saved/nb-%d.ipynb",
        "request",
        method="PUT",
        body=save_body(),
    ),
    Workload("kernel messages", "jupyter", "kernel", "", "message"),
    Workload("bokeh visit", "bokeh", "bokeh", "slider", "visit"),
    Workload("hub users", "jupyterhub", "http", "/hub/api/users", "request"),
]
APPS = ("jupyter", "bokeh", "jupyterhub")
HUB_USERS = 20
# JupyterHub in front of no proxy: its REST API is the hub's own port, and
# the proxy (configurable-http-proxy, a Node.js program) only routes the
# users' servers, which this workload starts none of. The routes the hub
# sets are kept in memory.
HUB_CONFIG = """\
from jupyterhub.proxy import Proxy


class RoutesInMemory(Proxy):
    should_start = False
    routes = {{}}

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {{"routespec": routespec, "target": target, "data": data}}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)


c.JupyterHub.proxy_class = RoutesInMemory
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/jupyterhub_cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [
    {{"name": "bench", "scopes": ["list:users", "read:users"], "services": ["bench"]}}
]
"""
# ``--tornado-nodelay``: the application's module run with Tornado's
# streams' TCP_NODELAY always on (Tornado turns it off after each response,
# so a WebSocket, which Jupyter and Bokeh leave as it is, keeps Nagle's
# algorithm; Squall's connections, asyncio transports, never have it).
NODELAY_PRELUDE = (
    "import runpy, sys, tornado.iostream as io; "
    "setter = io.IOStream.set_nodelay; "
    "io.IOStream.set_nodelay = lambda stream, value: setter(stream, True); "
    "del sys.argv[0]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)
# wrk's script for a request with a body (``wrk URL -- BODY_FILE METHOD
# PATH``): each thread, one connection, sends to PATH with its number for
# ``%d``, and counts the answers outside 2xx (wrk's own count starts at 400).
WRK_SEND = """\
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = args[2]
  wrk.path = string.format(args[3], id)
  wrk.headers["Content-Type"] = "application/json"
  outside = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    outside = outside + 1
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, thread in ipairs(threads) do
    n = n + thread:get("outside")
  end
  io.write(string.format("answers outside 2xx: %d\\n", n))
end
"""


def stop_process(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once it exited.
    (Not h2_bench's: its source is hashed by its records.)"""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def cache_dir() -> Path:
    base = os.environ.get("SQUALL_APPS_CACHE") or os.path.expanduser("~/.cache/squall-apps")
    return Path(base, "bench")


def venv_python(cache: Path) -> str:
    """The venv's interpreter, made (with the pins) when missing; Squall is
    installed from this checkout every time, then its speedups extra."""
    venv = cache / "venv-jupyter"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.is_file() or stamp.read_text() != "\n".join(PINS) + "\n":
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
        stamp.write_text("\n".join(PINS) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(ROOT)],
        check=True,
    )
    subprocess.run([str(python), "-m", "squall.extras", "--install", "speedups"], check=True)
    return str(python)


def make_root(path: Path, entries: int = 42, cells: int = 30) -> None:
    """The server's root: ``nb.ipynb``, the folder the save row writes to
    (``saved/``), and files up to ``entries`` entries."""
    (path / "nb.ipynb").write_text(json.dumps(notebook(cells), indent=1))
    (path / "saved").mkdir()
    for i in range(entries - 2):
        (path / f"notes-{i:02d}.txt").write_text(f"file {i}\n" * 20)


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


class Server:
    """One application server on CPU 0 (Jupyter Server, or Bokeh serving
    `BOKEH_APP` from ``work``), its configuration and runtime files kept in
    ``work`` (nothing of the user's Jupyter is read or written). ``pure``:
    Squall's pure build; ``nodelay``: Tornado's streams with TCP_NODELAY
    always (`NODELAY_PRELUDE`)."""

    def __init__(
        self,
        python: str,
        app: str,
        framework: str,
        root: Path,
        work: Path,
        pure: bool = False,
        nodelay: bool = False,
    ) -> None:
        self.python, self.app, self.framework, self.work = python, app, framework, work
        self.port = free_port()
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(work / "config"),
            JUPYTER_DATA_DIR=str(work / "data"),
            JUPYTER_RUNTIME_DIR=str(work / "runtime"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        if pure:
            env["SQUALL_NO_SPEEDUPS"] = "1"
        compat = ["-m", "squall.compat"] if framework == "squall" else []
        run = ["-c", NODELAY_PRELUDE] if nodelay and framework == "tornado" else ["-m"]
        if app == "jupyter":
            argv = [
                "jupyter_server",
                f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1",
                "--ServerApp.open_browser=False", f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
                "--ServerApp.allow_root=True",
            ]  # fmt: skip
        elif app == "bokeh":
            (work / "slider.py").write_text(BOKEH_APP)
            argv = [
                "bokeh", "serve", str(work / "slider.py"), "--port", str(self.port),
                "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{self.port}",
            ]  # fmt: skip
        else:
            config = work / "jupyterhub_config.py"
            config.write_text(
                HUB_CONFIG.format(
                    port=self.port,
                    public_port=free_port(),
                    work=work,
                    token=TOKEN,
                    users={f"user-{i:02d}" for i in range(HUB_USERS)},
                )
            )
            argv = ["jupyterhub", "-f", str(config)]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*pin(0), python, *compat, *run, *argv],
            env=env,
            stdout=self.log,
            stderr=self.log,
            cwd=work,
        )
        self.kernel = ""
        self.status = 0  # of the last answer to request()
        try:
            wait_listening(self.port, self.proc, deadline=60.0)
        except RuntimeError as exc:
            raise RuntimeError(
                f"{framework}'s {app} server did not start: {exc}\n{self.said()}"
            ) from None

    def said(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def request(self, path: str, body: Optional[bytes] = None, method: str = "") -> Any:
        """The answer's body, as JSON when the answer says so."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
            method=method or None,
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data: bytes = response.read()
            self.status = response.status
            if response.headers.get_content_type() == "application/json":
                return json.loads(data)
            return data

    def check(self) -> None:
        """Each workload answers what the application means before it is timed."""
        if self.app == "jupyter":
            assert self.request("/api/status")["started"]
            assert len(self.request("/api/contents")["content"]) == 42
            assert len(self.request(WORKLOADS[2].target)["content"]["cells"]) == 30
            save = WORKLOADS[3]
            path = save.target % 0
            for statuses in ((200, 201), (200,)):  # made (or saved over), then saved over
                saved = self.request(path, save.body, save.method)
                assert self.status in statuses and saved["type"] == "notebook", saved
            assert len(self.request(f"{path}?content=1")["content"]["cells"]) == 30
        elif self.app == "bokeh":
            assert b'"token"' in self.request("/slider")
        else:
            users = self.request("/hub/api/users")
            assert sorted(u["name"] for u in users) == [f"user-{i:02d}" for i in range(HUB_USERS)]

    def start_kernel(self) -> str:
        """A kernel of this server's (one per server), moved to CPU 1 with its threads."""
        if not self.kernel:
            reply = self.request("/api/kernels", json.dumps({"name": "python3"}).encode())
            self.kernel = reply["id"]
            for pid in process_tree(self.proc.pid)[1:]:
                subprocess.run(
                    ["taskset", "-a", "-p", "-c", "1", str(pid)], capture_output=True, check=False
                )
        return self.kernel

    def cpu(self) -> float:
        """CPU seconds of the server process itself (not its kernels)."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc, grace=10.0)
        self.log.close()


def run_wrk(
    port: int, w: Workload, duration: float, connections: int, work: Path, profiled: bool = False
) -> int:
    """Requests wrk completed (all 2xx, no socket errors, else RuntimeError).
    A workload with a body is sent by `WRK_SEND` (its files written in
    ``work``), one thread a connection. ``profiled``: the server is under
    py-spy, whose native unwinding of every thread (Jupyter's worker threads
    included) can slow a request past wrk's 2 s timeout; such timeouts are
    allowed there, since only the profile's samples are read from that run."""
    if w.body:
        (work / "send.lua").write_text(WRK_SEND)
        (work / "body.json").write_bytes(w.body)
        url = f"http://127.0.0.1:{port}/"
        send = [
            "-s",
            str(work / "send.lua"),
            url,
            "--",
            str(work / "body.json"),
            w.method,
            w.target,
        ]
        threads = connections
    else:
        send, threads = [f"http://127.0.0.1:{port}{w.target}"], 1
    cmd = [
        *pin(1), "wrk", f"-t{threads}", f"-c{connections}", f"-d{round(duration)}s",
        "-H", f"Authorization: token {TOKEN}", *send,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    outside = re.search(r"answers outside 2xx: (\d+)", out)
    if (
        not total
        or "Non-2xx" in out
        or (errors and any(int(g) for g in errors.groups()[: 3 if profiled else 4]))
        or (w.body and (not outside or int(outside.group(1))))
    ):
        raise RuntimeError(f"wrk output not usable:\n{out}")
    return int(total.group(1))


class Sampler:
    """py-spy recording the server for ``seconds`` (on CPU 1), from start()."""

    def __init__(
        self, python: str, pid: int, seconds: float, out: Path, native: bool = False
    ) -> None:
        spy = Path(python).parent / "py-spy"
        self.out = out
        self.argv = [
            *pin(1), str(spy), "record", "-p", str(pid), "-r", str(SAMPLE_RATE),
            "-f", "raw", "-o", str(out), "-d", str(max(1, round(seconds))),
            *(["--native"] if native else []),
        ]  # fmt: skip
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stacks(self) -> str:
        assert self.proc is not None
        _, err = self.proc.communicate(timeout=120)
        if self.proc.returncode:
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
        return self.out.read_text()


@dataclass
class Run:
    units: int
    messages: int
    seconds: float  # wall time of the load
    cpu: float  # the server process's CPU seconds meanwhile


def run_load(
    server: Server, w: Workload, duration: float, connections: int, sampler: Optional[Sampler]
) -> Run:
    """One timed run of ``w`` against ``server`` (after a warm-up)."""
    if w.kind == "http":
        run_wrk(server.port, w, 1, connections, server.work)  # warm-up
        before = server.cpu()
        if sampler:
            sampler.start()
        requests = run_wrk(
            server.port, w, duration, connections, server.work, profiled=sampler is not None
        )
        used = server.cpu() - before
        return Run(requests, requests, round(duration), used)
    if w.kind == "kernel":
        what = ["kernel", "--token", TOKEN, "--kernel", server.start_kernel()]
    else:
        what = ["bokeh", "--app", w.target]
    client = subprocess.Popen(
        [*pin(1), server.python, str(HERE / "apps_clients.py"), *what,
         "--port", str(server.port), "--duration", str(duration)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert client.stdin is not None and client.stdout is not None
    try:
        if client.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{w.name}'s client did not warm up:\n{server.said()}")
        before = server.cpu()
        if sampler:
            sampler.start()
        client.stdin.write("go\n")
        client.stdin.flush()
        line = client.stdout.readline()
        used = server.cpu() - before
        if not line:
            raise RuntimeError(f"{w.name}'s client failed:\n{server.said()}")
        result = json.loads(line)
    finally:
        stop_process(client)
    return Run(result["units"], result["messages"], result["seconds"], used)


def per_cpu(w: Workload, run: Run) -> float:
    """The workload's units per server CPU-second (messages for the kernel)."""
    count = run.messages if w.unit == "message" else run.units
    return count / run.cpu if run.cpu else 0.0


def is_stdlib(file: str) -> bool:
    """Whether py-spy's file name (relative to its import root) is the standard library's."""
    if file.startswith("<frozen "):
        return True
    top = file.split("/", 1)[0]
    return top.removesuffix(".py") in sys.stdlib_module_names


# py-spy, pausing the process to sample it, also samples threads that are
# blocked (an idle Jupyter Server: 42 samples in 3 s at 250 Hz in
# epoll_wait; Jupyter's file handlers: two thirds of a notebook run's
# samples in anyio's idle worker threads, waiting on their queue): a sample
# whose innermost Python frame is one of these waits is taken as idle and
# left out. (A wait's own CPU is little: the syscall returns what is ready.)
IDLE_FRAMES = {
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
}


def is_idle(name: str, file: str) -> bool:
    """Whether a sample whose innermost Python frame is ``name`` in ``file`` is a wait."""
    return (file, name.rpartition(".")[2]) in IDLE_FRAMES


FRAME_RE = re.compile(r"^(.*) \((.*):\d+\)$")


@dataclass
class Profile:
    samples: int
    framework: int  # the innermost frame outside the standard library is the framework's
    self_: int  # the innermost frame itself is the framework's
    top: list[tuple[str, float]]  # the framework's functions by their share (as ``framework``)

    @property
    def share(self) -> float:
        return self.framework / self.samples if self.samples else float("nan")

    @property
    def self_share(self) -> float:
        return self.self_ / self.samples if self.samples else float("nan")


def frame_owner(file: str, own: str) -> str:
    """Whose a frame is: "framework", "app", "stdlib", or "native" (a C frame
    of the interpreter, a C library or an extension that is not the
    framework's: charged to the frame that called it)."""
    if file.startswith(own):
        return "framework"
    if file.endswith(".py") or file.startswith("<frozen "):
        return "stdlib" if is_stdlib(file) else "app"
    # py-spy --native: a compiled module's C file, "__native_squall___web____delegate.c".
    return "framework" if own.rstrip("/") in file else "native"


def read_profile(stacks: str, framework: str) -> Profile:
    """A py-spy raw profile (one ``frame;frame;... count`` line per stack, root first)."""
    own = FRAMEWORK_DIR[framework]
    samples = mine = leaf_mine = 0
    by_function: collections.Counter[str] = collections.Counter()
    for line in stacks.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = []  # innermost first: (name, file, owner)
        for frame in reversed(stack.split(";")):
            match = FRAME_RE.match(frame)
            name, file = (match.group(1), match.group(2)) if match else (frame, "")
            frames.append((name, file, frame_owner(file, own)))
        python = [f for f in frames if f[1].endswith(".py")]
        if python and is_idle(python[0][0], python[0][1]):
            continue
        samples += count
        placed = [f for f in frames if f[2] != "native"]
        if placed and placed[0][2] == "framework":
            leaf_mine += count
        for name, file, owner in placed:
            if owner == "stdlib":
                continue
            if owner == "framework":
                mine += count
                by_function[f"{name} ({file.split(':')[0]})"] += count
            break
    top = [(name, n / samples) for name, n in by_function.most_common(12)]
    return Profile(samples, mine, leaf_mine, top)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--only", action="append", default=[], help="a workload's name (repeatable)"
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-duration", type=float, default=8.0)
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/apps.json")
    parser.add_argument("--keep-profiles", type=Path, help="a directory for py-spy's raw stacks")
    parser.add_argument(
        "--tornado-nodelay",
        action="store_true",
        help="Tornado's streams with TCP_NODELAY always on (a control, not recorded)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only) - {w.name for w in WORKLOADS}
    if unknown:
        names = ", ".join(repr(w.name) for w in WORKLOADS)
        parser.error(
            f"no workload named {', '.join(map(repr, sorted(unknown)))} (there are {names})"
        )
    if args.tornado_nodelay and args.record:
        parser.error("--tornado-nodelay changes Tornado's sockets: its figures are not recorded")
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench-apps installs it)", file=sys.stderr)
        return 2
    workloads = [w for w in WORKLOADS if not args.only or w.name in args.only]
    python = venv_python(cache_dir())
    build = subprocess.run(
        [python, "-m", "squall.speedups"], capture_output=True, text=True, cwd=tempfile.gettempdir()
    ).stdout.splitlines()
    build_line = build[0] if build else "unknown build"
    print(f"Squall: {build_line}")
    results: dict[tuple[str, str], list[Run]] = {}
    profiles: dict[tuple[str, str, str], Profile] = {}
    loads = [os.getloadavg()[0]]
    apps = [app for app in APPS if any(w.app == app for w in workloads)]
    with tempfile.TemporaryDirectory(prefix="squall-bench-apps-") as tmp:
        root, work = Path(tmp, "root"), Path(tmp, "work")
        root.mkdir()
        work.mkdir()
        make_root(root)
        # (label, frameworks, profile: None, "pure" or "compiled")
        passes: list[tuple[str, tuple[str, ...], Optional[str]]] = [
            (f"round {n + 1}", FRAMEWORKS, None) for n in range(args.rounds)
        ]
        if not args.no_profile:
            passes += [("profile", FRAMEWORKS, "pure"), ("profile", ("squall",), "compiled")]
        for label, frameworks, profiling in passes:
            for framework in frameworks:
                for app in apps:
                    pure = profiling == "pure"
                    server = Server(
                        python, app, framework, root, work, pure=pure, nodelay=args.tornado_nodelay
                    )
                    try:
                        server.check()
                        for w in workloads:
                            if w.app != app:
                                continue
                            sampler = None
                            if profiling:
                                name = f"{framework}-{profiling}-{w.name.replace(' ', '-')}.txt"
                                sampler = Sampler(
                                    python,
                                    server.proc.pid,
                                    args.profile_duration,
                                    Path(tmp, name),
                                    native=profiling == "compiled",
                                )
                            duration = args.profile_duration if profiling else args.duration
                            run = run_load(server, w, duration, args.connections, sampler)
                            if sampler:
                                stacks = sampler.stacks()
                                if args.keep_profiles:
                                    args.keep_profiles.mkdir(parents=True, exist_ok=True)
                                    shutil.copy(sampler.out, args.keep_profiles)
                                profile = read_profile(stacks, framework)
                                profiles[(w.name, framework, profiling)] = profile
                                print(
                                    f"profile {framework:<8} {profiling:<8} {w.name}: "
                                    f"{profile.share:.1%} in {FRAMEWORK_DIR[framework]} "
                                    f"({profile.self_share:.1%} self), {profile.samples} samples"
                                )
                                continue
                            results.setdefault((w.name, framework), []).append(run)
                            print(
                                f"{label} {framework:<8} {w.name}: "
                                f"{per_cpu(w, run):,.0f} {w.unit}s/CPU-s"
                            )
                    finally:
                        server.stop()
            loads.append(os.getloadavg()[0])
    print(f"\nload average (1 min) over the run: {min(loads):.2f} to {max(loads):.2f}")
    rows = summarize(workloads, results, profiles)
    print_table(rows)
    if args.record:
        sys.path.insert(0, str(HERE))
        import figures

        path = figures.record(
            "apps",
            Path(__file__),
            build_line,
            {
                "rows": rows,
                "rounds": args.rounds,
                "duration_s": args.duration,
                "load_average": [min(loads), max(loads)],
                "pins": PINS,
            },
        )
        print(f"recorded {path.relative_to(ROOT)}")
    return 0


def summarize(
    workloads: list[Workload],
    results: dict[tuple[str, str], list[Run]],
    profiles: dict[tuple[str, str, str], Profile],
) -> list[dict[str, Any]]:
    """One row per workload: medians, ratios and the framework's shares."""
    rows = []
    for w in workloads:
        runs = {f: results.get((w.name, f), []) for f in FRAMEWORKS}
        if not all(runs.values()):
            continue
        cpu = {f: statistics.median(per_cpu(w, r) for r in runs[f]) for f in FRAMEWORKS}
        rate = {
            f: statistics.median(
                (r.messages if w.unit == "message" else r.units) / r.seconds for r in runs[f]
            )
            for f in FRAMEWORKS
        }
        busy = {f: statistics.median(r.cpu / r.seconds for r in runs[f]) for f in FRAMEWORKS}
        row: dict[str, Any] = {
            "label": f"bench-apps {w.name}: {w.unit}s, Squall / Tornado 6.6.1",
            "workload": w.name,
            "unit": w.unit,
            "tornado_per_cpu_s": cpu["tornado"],
            "squall_per_cpu_s": cpu["squall"],
            "ratio_cpu": cpu["squall"] / cpu["tornado"],
            # Per wall-second, and the share of its core each server used
            # meanwhile: a server that waits (on the disk, on its clients'
            # acknowledgements) answers fewer a second for the same cost.
            "tornado_per_s": rate["tornado"],
            "squall_per_s": rate["squall"],
            "ratio_rps": rate["squall"] / rate["tornado"],
            "tornado_busy": busy["tornado"],
            "squall_busy": busy["squall"],
            "per_cpu_s_rounds": {f: [round(per_cpu(w, r), 1) for r in runs[f]] for f in FRAMEWORKS},
        }
        for (name, f, build), profile in profiles.items():
            if name == w.name:
                key = f"{f}_{build}" if f == "squall" else f
                row[f"{key}_share"] = profile.share
                row[f"{key}_self_share"] = profile.self_share
                row[f"{key}_top"] = [[fn, round(share, 4)] for fn, share in profile.top]
        if "tornado_share" in row:
            # What the application's own code allows: Squall's ratio were
            # the framework's work free and the application's the same on both.
            row["ceiling"] = 1 / (1 - row["tornado_share"])
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    nan = float("nan")
    print(
        f"{'workload':<18} {'unit':<8} {'Tornado':>9} {'Squall':>9} {'ratio':>7} "
        f"{'Squall share':>13} {'(pure)':>7} {'Tornado share':>14} {'ceiling':>8} "
        f"{'per s':>7} {'busy T/S':>9}"
    )
    for row in rows:
        print(
            f"{row['workload']:<18} {row['unit']:<8} {row['tornado_per_cpu_s']:>9,.0f} "
            f"{row['squall_per_cpu_s']:>9,.0f} {row['ratio_cpu']:>6.2f}x "
            f"{row.get('squall_compiled_share', nan):>13.1%} "
            f"{row.get('squall_pure_share', nan):>7.1%} {row.get('tornado_share', nan):>14.1%} "
            f"{row.get('ceiling', nan):>7.2f}x {row['ratio_rps']:>6.2f}x "
            f"{row['tornado_busy']:>4.0%}/{row['squall_busy']:<4.0%}"
        )
    print(
        "(units per CPU-second of the server process, medians of the rounds; shares of the\n"
        " server's sampled CPU in squall/ (compiled build, native frames; pure build) and in\n"
        " tornado/: the standard library a framework calls counts as the framework's;\n"
        " ceiling: 1 / (1 - Tornado's share), Squall's ratio were its own work free;\n"
        " per s: Squall's ratio of units per wall-second; busy: the share of its core\n"
        " each server used, Tornado/Squall)"
    )


if __name__ == "__main__":
    sys.exit(main())
