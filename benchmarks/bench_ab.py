"""``make bench-ab REF=<git ref>``: this tree against an earlier Squall, same machine, same hour.

Both contenders are venvs built by benchmarks/gate/venv.sh as ``pip install
'.[speedups]'`` builds a user's (compiled where a C compiler is), at the
pinned versions of benchmarks/gate/constraints.txt, cached under
build/ab/ by the commit (REF) or by the tree's content (the working tree,
uncommitted changes included: its ``git write-tree`` through a scratch
index) and by Python version. Then, in rounds that alternate who goes
first, each contender's server runs the existing wall-clock benchmarks,
the server pinned to CPU 0 and the load to CPU 1 (the runners' own pinning):

* ``hello``: benchmarks/run.py's hello (varied requests, wrk), requests
  per server CPU-second, compiled build on uvloop;
* ``starlette``: benchmarks/asgi_bench.py's Starlette hello under
  ``squall run``, requests per CPU-second of the server's process tree;
* ``longpoll``: benchmarks/c10k/longpoll.py, Tornado's own ``demos/chat``
  (checked out by c10k/real_chat.py; the stand-in of its shape,
  c10k/tornado_chat, where no git copy of Tornado can be had) under
  ``python -m squall.compat`` on uvloop: server CPU per woken waiter;
* ``write_message`` and ``handshake``: benchmarks/c10k/run.py with Squall's
  server: server CPU per delivered 100-byte message of a ``write_message``
  loop over the subscribers, and per WebSocket handshake.

Prints one table: each workload's median per contender over the rounds, the
speed ratio tree / REF (rates divided, CPU costs inverted: above 1.00x the
tree is faster), the ratio of each round's pair, and how many of those
pairs the tree won, beside the machine's load average at the start and
the end. ``--counts`` instead runs the gate's instruction counts and
Python operations (benchmarks/gate.py) with each contender's interpreter,
side by side.

Usage:
  python benchmarks/bench_ab.py REF [--python python3.13] [--rounds 5]
         [--workload NAME ...] [--counts [--build compiled|pure]] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = ROOT / "build" / "ab"
sys.path.insert(0, str(HERE))


def _load(name: str, path: Path) -> ModuleType:
    from callgrind_longpoll import _load as load

    module: ModuleType = load(path, name)
    return module


# -- the contenders' venvs ----------------------------------------------------------------------


def git(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def tree_key() -> str:
    """The working tree's content as a git tree hash (uncommitted changes included)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GIT_INDEX_FILE=os.path.join(tmp, "index"))
        git("read-tree", "HEAD", env=env)
        git("add", "-A", "--", "squall", "speedups", "setup.py", "pyproject.toml", env=env)
        return git("write-tree", env=env)


def python_version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def find_python(name: str) -> str:
    """``name`` as given, else pyenv's newest X.Y.Z for ``pythonX.Y`` or ``X.Y``."""
    found = shutil.which(name)
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    m = re.fullmatch(r"(?:python)?(3\.\d+)", name)
    if m:
        root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
        pythons = sorted(
            root.glob(f"versions/{m.group(1)}.*/bin/python{m.group(1)}"),
            key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
        )
        if pythons:
            return str(pythons[-1])
    raise SystemExit(f"no interpreter {name!r} (on PATH or in pyenv)")


def venv_for(label: str, key: str, python: str, source: Callable[[Path], None]) -> Path:
    """build/ab/KEY-pyX.Y.Z: built once (benchmarks/gate/venv.sh), then reused."""
    version = python_version(python)
    venv = CACHE / f"{key[:12]}-py{version}"
    if (venv / ".installed").exists():
        print(f"== {label}: {venv} (cached)", flush=True)
        return venv
    src = CACHE / f"{key[:12]}-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    source(src)
    print(f"== {label}: building {venv} (a few minutes, one core)", flush=True)
    subprocess.run(
        [str(HERE / "gate" / "venv.sh"), python, str(src), str(venv)], check=True, cwd=ROOT
    )
    shutil.rmtree(src, ignore_errors=True)
    return venv


def ref_venv(ref: str, python: str) -> tuple[str, Path]:
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")

    def source(dst: Path) -> None:
        archive = subprocess.run(
            ["git", "archive", commit], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)

    return commit, venv_for(f"REF {ref} ({commit[:10]})", commit, python, source)


def tree_venv(python: str) -> tuple[str, Path]:
    key = tree_key()

    def source(dst: Path) -> None:
        for name in ("squall", "speedups", "setup.py", "pyproject.toml", "MANIFEST.in"):
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(
                    src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.so", "build")
                )
            elif src.exists():
                shutil.copy2(src, dst / name)
        for name in ("README.md", "LICENSE", "_squall_pytest_plugin.py"):
            if (ROOT / name).exists():
                shutil.copy2(ROOT / name, dst / name)

    return key, venv_for("the working tree", key, python, source)


# -- the wall-clock workloads ----------------------------------------------------------------------


class Runners:
    """The existing runners, loaded once; each launches its server with
    ``sys.executable``, which a round sets to the contender's interpreter."""

    def __init__(self) -> None:
        self.run = _load("run", HERE / "run.py")
        self.asgi = _load("asgi_bench", HERE / "asgi_bench.py")
        sys.path.insert(0, str(HERE / "c10k"))
        self.longpoll = _load("c10k_longpoll", HERE / "c10k" / "longpoll.py")
        self.c10k = _load("c10k_run", HERE / "c10k" / "run.py")
        # The long poll on Tornado's own demos/chat, checked out from a git
        # copy of Tornado (real_chat.py: $SQUALL_TORNADO_REPO, or a clone
        # made once in the cache); without one (no network), the stand-in
        # of its shape, and the table says which.
        try:
            self.chat = str(self.longpoll.real_chat.demo_dir() / "chatdemo.py")
            self.chat_args = ["--debug=false"]
            self.chat_name = "Tornado's demos/chat"
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"Tornado's demos/chat cannot be checked out ({exc}): the stand-in runs")
            self.chat = str(self.longpoll.TORNADO_CHAT)
            self.chat_args = []
            self.chat_name = "c10k/tornado_chat (the demo's shape)"

    def hello(self, args: argparse.Namespace) -> float:
        run = self.run
        contender = run.Contender("squall", "squall_web.py")
        _rps, per_cpu = run.measure(contender, run.SCENARIOS["hello"], args.duration, 50)
        return float(per_cpu)

    def starlette(self, args: argparse.Namespace) -> float:
        _rps, per_cpu, _busy = self.asgi.measure("squall", "starlette", args.duration, 50)
        return float(per_cpu)

    def longpoll_wake(self, args: argparse.Namespace) -> float:
        lp = self.longpoll
        ns = argparse.Namespace(
            polls=args.polls, wakes=1, batch=500, repoll=False, verbose=False, server_args=""
        )
        command = ["uvloop", "-m", "squall.compat", self.chat, *self.chat_args]
        got = lp.measure("compat-compiled-uvloop", command, {}, "tornado-chat", ns)
        return float(got["cpu_us"])

    def websockets(self, args: argparse.Namespace) -> dict[str, float]:
        # The handshakes alone, N at a time, then the loop's deliveries.
        ns = argparse.Namespace(**C10K_ARGS, subscribers=args.subscribers)
        got = self.c10k.measure("squall", {}, "loop", ns)
        return {
            "write_message": float(got["deliver_loop_cpu_us"]),
            "handshake": float(got["handshake_cpu_us"]),
        }


# benchmarks/c10k/run.py's options for Squall's WebSocket rows (a few long
# polls and a small storm, which its client needs, not read; no crowd).
C10K_ARGS: dict[str, Any] = {
    "polls": 100,
    "storm": 100,
    "batch": 500,
    "messages": 40,
    "crowd": 0,
    "broadcast_per": 200,
    "backlog": 2048,
    "verbose": False,
}

# name: (what, unit, higher is better)
WORKLOADS: dict[str, tuple[str, str, bool]] = {
    "hello": ("hello through RequestHandler, varied, per server CPU-second", "req/CPU-s", True),
    "starlette": ("Starlette hello under squall run, per server CPU-second", "req/CPU-s", True),
    "longpoll": ("long-poll wake, {chat} via squall.compat: CPU per waiter", "us", False),
    "write_message": ("write_message loop: server CPU per delivery", "us", False),
    "handshake": ("WebSocket handshake: server CPU per handshake", "us", False),
}


def one_round(runners: Runners, wanted: list[str], args: argparse.Namespace) -> dict[str, float]:
    got: dict[str, float] = {}
    if "hello" in wanted:
        got["hello"] = runners.hello(args)
    if "starlette" in wanted:
        got["starlette"] = runners.starlette(args)
    if "longpoll" in wanted:
        got["longpoll"] = runners.longpoll_wake(args)
    if "write_message" in wanted or "handshake" in wanted:
        got.update({k: v for k, v in runners.websockets(args).items() if k in wanted})
    return got


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wall_clock(contenders: list[tuple[str, Path]], args: argparse.Namespace) -> dict[str, Any]:
    runners = Runners()
    wanted = args.workload or list(WORKLOADS)
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label, _ in contenders}
    load_start = loadavg()
    own = sys.executable
    try:
        for r in range(args.rounds):
            order = contenders[r % 2 :] + contenders[: r % 2]
            for label, venv in order:
                sys.executable = str(venv / "bin" / "python")
                got = one_round(runners, wanted, args)
                rounds[label].append(got)
                shown = ", ".join(f"{k} {v:,.1f}" for k, v in got.items())
                print(f"round {r + 1} {label}: {shown}  (load {loadavg()})", flush=True)
    finally:
        sys.executable = own
    (ref_label, _), (tree_label, _) = contenders
    print(
        f"\n== bench-ab: {tree_label} against {ref_label}, Python {args.python_version}, "
        f"medians of {args.rounds} alternated rounds; servers on CPU 0, load on CPU 1; "
        f"load average {load_start} at the start, {loadavg()} at the end"
    )
    print(
        f"| workload | {ref_label} | {tree_label} | speed tree / REF | "
        "each round's speed | rounds faster |"
    )
    print("|---|---:|---:|---:|---|---:|")
    table = {}
    for name in wanted:
        what, unit, higher = WORKLOADS[name]
        what = what.format(chat=runners.chat_name)
        row = summary(
            [g[name] for g in rounds[ref_label]], [g[name] for g in rounds[tree_label]], higher
        )
        table[name] = dict(row, unit=unit)
        each = " ".join(f"{speed:.2f}" for speed in row["paired"])
        faster = sum(speed > 1.0 for speed in row["paired"])
        print(
            f"| {what} | {row['ref']:,.1f} {unit} | {row['tree']:,.1f} {unit} | "
            f"{row['speed']:.2f}x | {each} | {faster} of {len(row['paired'])} |"
        )
    return {"rounds": rounds, "table": table, "load": [load_start, loadavg()]}


def summary(ref: list[float], tree: list[float], higher: bool) -> dict[str, Any]:
    """One workload's rounds: each side's median, the speed ratio of the
    medians (tree / REF, above 1 the tree is faster: rates divided, costs
    inverted), and the same ratio round by round (the contenders of a
    round ran back to back), which says whether the medians' ratio is the
    rounds' or a few rounds' (a median of 0.94x from rounds spread from
    0.80 to 1.05 is not one from rounds all near 0.94)."""

    def speed(r: float, t: float) -> float:
        return t / r if higher else r / t

    ref_median, tree_median = statistics.median(ref), statistics.median(tree)
    return {
        "ref": ref_median,
        "tree": tree_median,
        "speed": speed(ref_median, tree_median),
        "paired": [speed(r, t) for r, t in zip(ref, tree, strict=True)],
    }


def counts(contenders: list[tuple[str, Path]], args: argparse.Namespace) -> dict[str, Any]:
    """The gate's counts (benchmarks/gate.py count) with each contender's interpreter."""
    results: dict[str, Any] = {}
    builds = args.build or ["compiled"]
    with tempfile.TemporaryDirectory() as tmp:
        # One after the other: both count from the same paths (gate.py).
        for label, venv in contenders:
            out = os.path.join(tmp, "counts.json")
            cmd = [str(venv / "bin" / "python"), str(HERE / "gate.py"), "count", "--json", out]
            for build in builds:
                cmd += ["--build", build]
            for name in args.workload or []:
                cmd += ["--workload", name]
            if args.by_function:
                cmd.append("--by-function")
            if subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
                raise SystemExit(f"{label}: gate.py count failed")
            results[label] = json.loads(Path(out).read_text())
    (ref_label, _), (tree_label, _) = contenders
    for build in builds:
        ref, tree = results[ref_label][build], results[tree_label][build]
        print(
            f"\n== instructions per unit (callgrind, benchmarks/gate.py), {build} build, "
            f"Python {tree['env']['python']}; {ref['env']['compiled_modules']} and "
            f"{tree['env']['compiled_modules']} compiled modules"
        )
        print(
            f"| workload | {ref_label} | {tree_label} | tree / REF | Python operations, "
            f"{ref_label} | tree | tree - REF |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, got in tree["workloads"].items():
            before = ref["workloads"].get(name, {})
            if "count" in got and "count" in before:
                ratio = got["count"] / before["count"]
                # (The Python operations of each side's interpreted code:
                # what the tree runs in Python that REF did not, or in C.)
                ops = (
                    f"{before['ops']:,.2f} | {got['ops']:,.2f} | {got['ops'] - before['ops']:+,.2f}"
                    if "ops" in got and "ops" in before
                    else "- | - | -"
                )
                print(
                    f"| {name} (per {got['unit']}) | {before['count']:,.0f} | "
                    f"{got['count']:,.0f} | {ratio:.3f} | {ops} |"
                )
            else:
                why = before.get("error") or got.get("error") or "-"
                print(f"| {name} | - | - | failed: {why[:80]} | - | - | - |")
        if args.by_function:
            print_function_moves(ref["workloads"], tree["workloads"], ref_label, tree_label)
    return results


def function_moves(
    before: dict[str, float], after: dict[str, float], top: int = 20
) -> list[tuple[str, float, float]]:
    """The functions whose Python operations per unit differ most between
    ``before`` and ``after`` ({function_key: operations}): (function,
    before, after), largest difference first, at most ``top``, none under
    half an operation. A function that one side runs under another key (a
    method moved to a mixin, a function to another module: the one key of
    its name on each side that the other side lacks) is one row, named
    ``old -> new``."""

    def by_name(keys: list[str]) -> dict[str, list[str]]:
        named: dict[str, list[str]] = {}
        for key in keys:
            named.setdefault(key.rpartition(":")[2].rpartition(".")[2], []).append(key)
        return named

    gone = by_name([k for k in before if k not in after])
    new = by_name([k for k in after if k not in before])
    renamed = {
        olds[0]: new[name][0]
        for name, olds in gone.items()
        if len(olds) == 1 and len(new.get(name, ())) == 1
    }
    rows = [(k, before[k], after.get(k, 0.0)) for k in before if k not in renamed]
    rows += [(f"{old} -> {moved}", before[old], after[moved]) for old, moved in renamed.items()]
    taken = set(renamed.values())
    rows += [(k, 0.0, after[k]) for k in after if k not in before and k not in taken]
    moved_rows = [row for row in rows if abs(row[2] - row[1]) >= 0.5]
    moved_rows.sort(key=lambda row: (-abs(row[2] - row[1]), row[0]))
    return moved_rows[:top]


def print_function_moves(
    ref: dict[str, Any], tree: dict[str, Any], ref_label: str, tree_label: str
) -> None:
    """Per workload, where the Python operations went (gate.py count --by-function)."""
    for name, got in tree.items():
        before = ref.get(name, {}).get("ops_by_function")
        after = got.get("ops_by_function")
        if before is None or after is None:
            continue
        rows = function_moves(before, after)
        print(f"\n== {name}: Python operations per {got['unit']} by function, where they moved")
        if not rows:
            print("(no function moved by half an operation or more)")
            continue
        print(f"| function | {ref_label} | {tree_label} | tree - REF |")
        print("|---|---:|---:|---:|")
        for key, a, b in rows:
            print(f"| `{key}` | {a:,.2f} | {b:,.2f} | {b - a:+,.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref", help="the git ref to compare the working tree with (e.g. 406f920)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter both are built for")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5, help="seconds of load per wrk run")
    ap.add_argument("--polls", type=int, default=5000, help="long polls woken by one POST")
    ap.add_argument("--subscribers", type=int, default=5000)
    ap.add_argument("--workload", action="append", help="of " + ", ".join(WORKLOADS))
    ap.add_argument("--counts", action="store_true", help="the gate's instruction counts")
    ap.add_argument("--build", action="append", choices=["compiled", "pure"])
    ap.add_argument(
        "--by-function",
        action="store_true",
        help="with --counts: which functions' Python operations moved",
    )
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    python = find_python(args.python)
    args.python_version = python_version(python)
    commit, ref_venv_dir = ref_venv(args.ref, python)
    key, tree_venv_dir = tree_venv(python)
    contenders = [(f"{args.ref} ({commit[:7]})", ref_venv_dir), ("tree", tree_venv_dir)]
    if args.counts:
        report = counts(contenders, args)
    else:
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed (apt-get install wrk)")
        report = wall_clock(contenders, args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
