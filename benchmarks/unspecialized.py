"""The bytecode sites a gate workload leaves generic: where CPython 3.13
tried to specialize an instruction and could not, in the code the
workload ran, with how often each ran per unit.

An attribute read that 3.13 specializes costs a few instructions; one it
cannot (a class attribute shadowing an instance attribute, an instance
whose class has slots and a dict, a field of a compiled class read from
interpreted code, a method read off a name bound by an import) goes
through the type's lookup each time, 150-300 instructions. The gate's
counts show that a workload costs more on 3.13 than on 3.11; this says
where, site by site (docs/figures.md, "What 3.12 and 3.13 do not
specialize").

Each workload runs twice, in processes of its own, as the gate runs it
(``benchmarks/gate.py``'s workloads, streams and harnesses, without
valgrind): once to read every code object's adaptive bytecode afterwards
(``dis``, which shows each instruction as 3.13 left it), once under
``sys.monitoring`` to count how often each instruction ran in the
workload's two measured runs; a unit's runs are their difference (the
second run has the units more), as the gate takes its counts. A site is
listed when it ran per unit and is still its generic form.

Usage (3.13 or later; the gate's venv has the build):
  build/gate/venv-3.13/bin/python benchmarks/unspecialized.py [--workload hello ...]
      [--build compiled|pure] [--all] [--top N]
``--all`` lists sites outside squall/ too (the harness, asyncio, Starlette).
"""

from __future__ import annotations

import argparse
import dis
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent

# The instructions 3.13 specializes, by their generic names: an
# instruction still named so after it ran more than once was tried and
# refused (or was refused again after a miss).
GENERIC = frozenset(
    {
        "LOAD_ATTR",
        "STORE_ATTR",
        "LOAD_GLOBAL",
        "LOAD_SUPER_ATTR",
        "BINARY_SUBSCR",
        "STORE_SUBSCR",
        "BINARY_OP",
        "COMPARE_OP",
        "CONTAINS_OP",
        "TO_BOOL",
        "UNPACK_SEQUENCE",
        "FOR_ITER",
        "CALL",
        "CALL_KW",
        "SEND",
    }
)

Key = tuple[str, str, int, int]  # file, qualified name, first line, offset


def code_objects(functions: Iterable[types.FunctionType]) -> list[types.CodeType]:
    """The code of ``functions`` and every code object nested in it, once each."""
    seen: dict[int, types.CodeType] = {}
    todo = [f.__code__ for f in functions]
    while todo:
        code = todo.pop()
        if id(code) in seen:
            continue
        seen[id(code)] = code
        todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return list(seen.values())


def key_of(code: types.CodeType, offset: int) -> Key:
    return (code.co_filename, code.co_qualname, code.co_firstlineno, offset)


def generic_sites(codes: Iterable[types.CodeType]) -> list[dict[str, Any]]:
    """Every specializable instruction of ``codes`` that is in its generic
    form now (run or not: the caller keeps those that ran)."""
    sites = []
    for code in codes:
        for ins in dis.get_instructions(code, adaptive=True):
            if ins.opname in GENERIC and ins.cache_info:
                sites.append(
                    {
                        "key": key_of(code, ins.offset),
                        "op": ins.opname,
                        "arg": ins.argrepr,
                        "line": ins.positions.lineno if ins.positions else None,
                    }
                )
    return sites


class Counter:
    """Counts, per instruction, how often it runs while ``counting``."""

    def __init__(self) -> None:
        self.hits: dict[Key, int] = {}
        self.monitoring: Any = sys.monitoring
        self.tool = self.monitoring.PROFILER_ID

    def __enter__(self) -> Counter:
        mon = self.monitoring
        hits = self.hits
        mon.use_tool_id(self.tool, "unspecialized")

        def instruction(code: types.CodeType, offset: int) -> None:
            key = key_of(code, offset)
            hits[key] = hits.get(key, 0) + 1

        mon.register_callback(self.tool, mon.events.INSTRUCTION, instruction)
        mon.set_events(self.tool, mon.events.INSTRUCTION)
        return self

    def __exit__(self, *exc: object) -> None:
        self.monitoring.set_events(self.tool, 0)
        self.monitoring.free_tool_id(self.tool)


def listed(
    sites: list[dict[str, Any]], hits: dict[Key, int], units: int, everywhere: bool
) -> list[dict[str, Any]]:
    """The generic ``sites`` that ran, with their runs per unit, most first."""
    rows = []
    for site in sites:
        ran = hits.get(tuple(site["key"]), 0)  # type: ignore[arg-type]
        if ran <= 0:
            continue
        path = site["key"][0]
        if path.endswith("unspecialized.py"):
            continue  # the probes' stand-ins, above
        if not everywhere and f"{os.sep}squall{os.sep}" not in path:
            continue
        rows.append(dict(site, per_unit=ran / units))
    rows.sort(key=lambda r: (-r["per_unit"], r["key"][0], r["line"] or 0))
    return rows


# -- inside a workload's process ---------------------------------------------------------------


def inner(mode: str, name: str, build: str, out: str) -> None:
    """Runs gate workload ``name`` as the gate does, then writes the generic
    sites (``mode`` "scan") or how many more times each instruction ran in
    its second measured run than in its first, and how many units more
    ("count"), to ``out``."""
    sys.path.insert(0, str(HERE))
    import gate

    # The first measured run's counts and the second's: a unit's are their
    # difference, as the gate takes its counts.
    counters = (Counter(), Counter()) if mode == "count" else None

    class Measured:
        """Stands in for the gate's probes: runs each function, counting
        inside the workload's second measured run when asked."""

        depth = 0
        counts: dict[int, int] = {}  # what the gate reports of its own counter

        def reset(self) -> None:
            pass

        def edges(self) -> list[Any]:
            return []

        def probe(self, fn: Any, slot: int) -> Any:
            def run(*args: Any, **kwargs: Any) -> Any:
                if counters is None or Measured.depth or slot >= gate.WRAPPED:
                    return fn(*args, **kwargs)
                Measured.depth += 1
                try:
                    with counters[slot % 2]:
                        return fn(*args, **kwargs)
                finally:
                    Measured.depth -= 1

            return run

    Measured.SLOTS = gate._OpCounter.SLOTS  # type: ignore[attr-defined]
    gate._OpCounter = Measured  # type: ignore[assignment,misc]
    workload = gate.BY_NAME[name]
    cfg = gate.workload_cfg(workload, build)
    spec = {
        "workloads": [(name, cfg)],
        "tmp": os.getcwd(),
        "out": os.path.join(os.getcwd(), "report.json"),
        "metric": "ops",
    }
    gate.inner(spec)
    report = json.loads(Path(spec["out"]).read_text())[name]
    if "error" in report:
        raise SystemExit(f"{name}: {report['error']}\n{report.get('trace', '')}")
    if counters is not None:
        a_units, b_units = workload.units(report, cfg)
        first, second = (c.hits for c in counters)
        hits = [[*k, n - first.get(k, 0)] for k, n in second.items()]
        Path(out).write_text(json.dumps({"units": b_units - a_units, "hits": hits}))
        return
    functions = [o for o in gc.get_objects() if isinstance(o, types.FunctionType)]
    Path(out).write_text(json.dumps(generic_sites(code_objects(functions))))


# -- outside -------------------------------------------------------------------------------------


def run_workload(name: str, build: str, everywhere: bool) -> list[dict[str, Any]]:
    sys.path.insert(0, str(HERE))
    import gate

    tmp = tempfile.mkdtemp(prefix="squall-unspecialized-")
    try:
        gate.stage(tmp)
        env = dict(os.environ, PYTHONHASHSEED="0", SQUALL_QUIC="qh3")
        env.pop("SQUALL_NO_SPEEDUPS", None)
        if build == "pure":
            env["SQUALL_NO_SPEEDUPS"] = "1"
        script = os.path.join(tmp, "benchmarks", "unspecialized.py")
        found: dict[str, Any] = {}
        for mode in ("scan", "count"):
            out = os.path.join(tmp, f"{mode}.json")
            proc = subprocess.run(
                [sys.executable, script, "--inner", mode, name, build, out],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{name} ({mode}) failed:\n{proc.stderr[-3000:]}")
            found[mode] = json.loads(Path(out).read_text())
        hits = {tuple(h[:4]): h[4] for h in found["count"]["hits"]}
        return listed(found["scan"], hits, max(1, found["count"]["units"]), everywhere)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--inner"]:
        inner(*args[1:5])
        return 0
    if sys.version_info < (3, 13):
        print("needs Python 3.13 or later (dis shows the inline caches from 3.13)")
        return 2
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", action="append", help="a gate workload (default hello)")
    ap.add_argument("--build", choices=["compiled", "pure"], default="compiled")
    ap.add_argument("--all", action="store_true", help="sites outside squall/ too")
    ap.add_argument("--top", type=int, default=40)
    opts = ap.parse_args(args)
    for name in opts.workload or ["hello"]:
        rows = run_workload(name, opts.build, opts.all)
        total = sum(r["per_unit"] for r in rows)
        print(f"== {name}, {opts.build}: {len(rows)} generic sites, {total:.1f} runs per unit")
        for r in rows[: opts.top]:
            path, qualname = r["key"][0], r["key"][1]
            where = path.split(f"{os.sep}site-packages{os.sep}")[-1]
            print(f"  {r['per_unit']:7.2f}  {where}:{r['line']}  {qualname}  {r['op']} {r['arg']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
