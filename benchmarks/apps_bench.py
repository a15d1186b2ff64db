"""Real applications' own request paths on Tornado and on Squall, per server
CPU-second (``make bench-apps``).

So far Jupyter Server's REST API: ``GET /api/status``, ``GET /api/contents``
(a folder of 42 entries) and ``GET /api/contents/nb.ipynb?content=1`` (a
notebook of 30 cells with outputs). One venv under the cache directory
holds jupyter_server and Tornado at the pinned versions, and Squall
installed from this checkout (``pip install '.[speedups]'``, compiled where
a compiler is; reinstalled each run, which the build's object cache makes
a relink). The same server runs as ``python -m jupyter_server`` (Tornado)
and ``python -m squall.compat -m jupyter_server`` (Squall), pinned to CPU 0;
wrk on CPU 1 sends the token header over ``--connections`` connections.
The two alternate over ``--rounds`` rounds; the table gives medians of
requests per CPU-second of the server's process tree and Squall's ratio,
with the load average (read the ratios on a loaded machine, not the
figures).

    python benchmarks/apps_bench.py [--rounds 3] [--duration 5] [--connections 8]

Not yet: a kernel's messages over its WebSocket, Bokeh, and the share of
the server's CPU that runs in ``squall/`` (a profile per workload).

Standard library only; the cache directory is ``$SQUALL_APPS_CACHE/bench``
or ``~/.cache/squall-apps/bench``.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cpuclock import tree_cpu_seconds  # noqa: E402
from h2_bench import free_port, wait_listening  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PINS = ["jupyter_server==2.21.1", "tornado==6.6.1"]
TOKEN = "squall-bench-apps"
# (name, path): the requests each framework is measured on.
ENDPOINTS = [
    ("jupyter status", "/api/status"),
    ("jupyter contents", "/api/contents"),
    ("jupyter notebook", "/api/contents/nb.ipynb?content=1"),
]
FRAMEWORKS = {
    "tornado": ["-m", "jupyter_server"],
    "squall": ["-m", "squall.compat", "-m", "jupyter_server"],
}


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
    if not (venv / ".installed").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
        (venv / ".installed").write_text("\n".join(PINS) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(ROOT)],
        check=True,
    )
    subprocess.run([str(python), "-m", "squall.extras", "--install", "speedups"], check=True)
    return str(python)


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


def make_root(path: Path, entries: int = 42, cells: int = 30) -> None:
    """The server's root: ``nb.ipynb`` and files up to ``entries`` entries."""
    (path / "nb.ipynb").write_text(json.dumps(notebook(cells), indent=1))
    for i in range(entries - 1):
        (path / f"notes-{i:02d}.txt").write_text(f"file {i}\n" * 20)


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


class Server:
    """One Jupyter Server on CPU 0, its configuration and runtime files kept
    in ``work`` (nothing of the user's Jupyter is read or written)."""

    def __init__(self, python: str, framework: str, root: Path, work: Path) -> None:
        self.port = free_port()
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(work / "config"),
            JUPYTER_DATA_DIR=str(work / "data"),
            JUPYTER_RUNTIME_DIR=str(work / "runtime"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        argv = [
            *pin(0), python, *FRAMEWORKS[framework],
            f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1",
            "--ServerApp.open_browser=False", f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
            "--ServerApp.allow_root=True",
        ]  # fmt: skip
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log)
        try:
            wait_listening(self.port, self.proc, deadline=60.0)
        except RuntimeError as exc:
            self.log.seek(0)
            said = self.log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(
                f"{framework}'s Jupyter Server did not start: {exc}\n{said}"
            ) from None

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"token {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body: bytes = response.read()
            return body

    def stop(self) -> None:
        stop_process(self.proc, grace=10.0)
        self.log.close()


def run_wrk(port: int, path: str, duration: float, connections: int) -> int:
    """Requests wrk completed (all 2xx, no socket errors, else RuntimeError)."""
    cmd = [
        *pin(1), "wrk", "-t1", f"-c{connections}", f"-d{round(duration)}s",
        "-H", f"Authorization: token {TOKEN}", f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if not total or "Non-2xx" in out or (errors and any(int(g) for g in errors.groups())):
        raise RuntimeError(f"wrk output not usable:\n{out}")
    return int(total.group(1))


def measure(server: Server, path: str, duration: float, connections: int) -> float:
    """Requests per CPU-second of the server's process tree over one wrk run."""
    run_wrk(server.port, path, 1, connections)  # warm-up
    before = tree_cpu_seconds(server.proc.pid)
    requests = run_wrk(server.port, path, duration, connections)
    used = tree_cpu_seconds(server.proc.pid) - before
    return requests / used if used else 0.0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench-apps installs it)", file=sys.stderr)
        return 2
    python = venv_python(cache_dir())
    build = subprocess.run(
        [python, "-m", "squall.speedups"], capture_output=True, text=True, cwd=tempfile.gettempdir()
    ).stdout.splitlines()
    print(f"Squall: {build[0] if build else 'unknown build'}")
    results: dict[tuple[str, str], list[float]] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="squall-bench-apps-") as tmp:
        root, work = Path(tmp, "root"), Path(tmp, "work")
        root.mkdir()
        make_root(root)
        for round_no in range(args.rounds):
            for framework in FRAMEWORKS:
                server = Server(python, framework, root, work)
                try:
                    # Each endpoint answers what the application means before it is timed.
                    assert json.loads(server.get("/api/status"))["started"]
                    assert len(json.loads(server.get("/api/contents"))["content"]) == 42
                    assert len(json.loads(server.get(ENDPOINTS[2][1]))["content"]["cells"]) == 30
                    for name, path in ENDPOINTS:
                        per_cpu = measure(server, path, args.duration, args.connections)
                        results.setdefault((name, framework), []).append(per_cpu)
                        print(
                            f"round {round_no + 1} {framework:<8} {name}: {per_cpu:,.0f} req/CPU-s"
                        )
                finally:
                    server.stop()
            loads.append(os.getloadavg()[0])
    print(f"\nload average (1 min) over the run: {min(loads):.2f} to {max(loads):.2f}")
    print(f"{'workload':<18} {'Tornado':>10} {'Squall':>10} {'Squall / Tornado':>17}")
    for name, _ in ENDPOINTS:
        tornado = statistics.median(results[(name, "tornado")])
        squall = statistics.median(results[(name, "squall")])
        ratio = squall / tornado if tornado else float("nan")
        print(f"{name:<18} {tornado:>10,.0f} {squall:>10,.0f} {ratio:>16.2f}x")
    print("(requests per server CPU-second, medians; Squall's own share: not measured yet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
