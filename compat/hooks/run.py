"""The hooks differential: compat/hooks/program.py under Tornado and under Squall, compared.

    python compat/hooks/run.py --tornado-python PY --squall-python PY[:LABEL] ... [--only REGEX]

Runs the program once with Tornado's interpreter (its trace is kept in
build/hooks-diff/, reused while the program is unchanged) and once with
each Squall interpreter given (the pure tree's venv, the compiled build's),
then compares each case's trace with Tornado's, field by field: whether the
patch was refused, and per request the hooks that ran in order (``calls``),
the Task each saw (``tasks``), the context variable each saw
(``context``) and the response. A difference is known when a marker in
tests/COMPAT.md matches its key::

    <!-- hooks-diff: REGEX -->

(searched with ``re.search`` in ``CASE:FIELD``, CASE being
``Family.hook/way/moment/kind``), beside the text that gives its reason.
Exits 1 if any difference is not known; prints the matrix and the counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROGRAM = HERE / "program.py"
COMPAT = ROOT / "tests" / "COMPAT.md"
BUILD = ROOT / "build" / "hooks-diff"
MARKER = re.compile(r"<!--\s*hooks-diff:\s*(.+?)\s*-->")


def markers(text: str) -> list[re.Pattern[str]]:
    """The known differences' patterns, as COMPAT.md lists them."""
    return [re.compile(m.group(1)) for m in MARKER.finditer(text)]


def trace(python: str, framework: str, out: Path, only: str | None) -> dict[str, Any]:
    """The program's trace under ``python``, importing ``framework``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if os.sep in python:
        python = os.path.abspath(python)  # (it runs from out's directory)
    command = [python, str(PROGRAM), framework, str(out)]
    if only:
        command += ["--only", only]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # From a directory without squall/ in it: the interpreter's own install is the one tested.
    done = subprocess.run(command, cwd=str(out.parent), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{python} {framework}: exit {done.returncode}\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def tornado_trace(python: str, only: str | None) -> dict[str, Any]:
    """Tornado's trace, kept beside a hash of the program that made it."""
    digest = hashlib.sha256(PROGRAM.read_bytes() + (only or "").encode()).hexdigest()[:16]
    cached = BUILD / f"tornado-{digest}.json"
    if cached.exists():
        result: dict[str, Any] = json.loads(cached.read_text())
        return result
    return trace(python, "tornado", cached, only)


# The hooks one request's Task runs (Tornado: prepare() to on_finish(), the
# method's resumption, their wrappers; a WebSocket's open() and its wrapper).
REQUEST_HOOKS = {
    "app.prepare",
    "app.get",
    "app.get.resumed",
    "app.on_finish",
    "wrap.prepare",
    "wrap.on_finish",
    "app.open",
    "app.open.resumed",
}


def normalized(request: dict[str, Any]) -> dict[str, Any]:
    """One request's trace as compared: ``tasks`` says of each hook whether
    it saw a Task; ``one_task`` whether the request's own hooks saw one and
    the same Task (which Task, by number, is not compared: Tornado runs the
    hooks called while the request is read in the connection's Task)."""
    tasks = request["tasks"]
    own = {
        task for name, task in zip(request["calls"], tasks, strict=True) if name in REQUEST_HOOKS
    }
    return {
        "calls": request["calls"],
        "tasks": [task is not None for task in tasks],
        "one_task": len(own) == 1 and None not in own,
        "context": request["context"],
        "response": request["response"],
    }


def differences(tornado: dict[str, Any], squall: dict[str, Any]) -> dict[str, str]:
    """Every difference, by ``CASE:FIELD``, with both sides. FIELD: ``refused``
    (the patch raised), ``requests`` (how many), or for a request R
    (``first``, before an ``after-served`` patch; ``patched``; ``removed``)
    ``R.calls``, ``R.one_task``, ``R.response``, and, where the calls agree,
    ``R.tasks@HOOK`` and ``R.context@HOOK`` (the first hook of each name
    that differs)."""
    diffs: dict[str, str] = {}
    for case in sorted(set(tornado) | set(squall)):
        a, b = tornado.get(case), squall.get(case)
        if a is None or b is None:
            diffs[f"{case}:present"] = f"tornado {a is not None} / squall {b is not None}"
            continue
        if a.get("refused") != b.get("refused"):
            diffs[f"{case}:refused"] = f"tornado {a.get('refused')} / squall {b.get('refused')}"
        ra, rb = a.get("requests", []), b.get("requests", [])
        if len(ra) != len(rb):
            diffs[f"{case}:requests"] = f"tornado {len(ra)} / squall {len(rb)}"
            continue
        moment = case.split("/")[2]
        labels = (
            ["first", "patched", "removed"] if moment == "after-served" else ["patched", "removed"]
        )
        for n, x, y in zip(labels, map(normalized, ra), map(normalized, rb), strict=True):
            for field in ("calls", "one_task", "response"):
                if x[field] != y[field]:
                    diffs[f"{case}:{n}.{field}"] = (
                        f"tornado {json.dumps(x[field])} / squall {json.dumps(y[field])}"
                    )
            if x["calls"] != y["calls"]:
                continue  # (the calls' difference says it)
            for field in ("tasks", "context"):
                for name, p, q in zip(x["calls"], x[field], y[field], strict=True):
                    key = f"{case}:{n}.{field}@{name}"
                    if p != q and key not in diffs:
                        diffs[key] = f"tornado {json.dumps(p)} / squall {json.dumps(q)}"
    return diffs


def matrix(traces: dict[str, Any]) -> str:
    """hooks x ways x moments x kinds, as counts per family."""
    families: dict[str, dict[str, set[str]]] = {}
    for case in traces:
        hook, way, moment, kind = case.split("/")
        family, _, name = hook.partition(".")
        entry = families.setdefault(
            family, {"hooks": set(), "ways": set(), "moments": set(), "kinds": set()}
        )
        entry["hooks"].add(name)
        entry["ways"].add(way)
        entry["moments"].add(moment)
        entry["kinds"].add(kind)
    lines = []
    for family, entry in families.items():
        n = sum(1 for case in traces if case.startswith(family + "."))
        lines.append(
            f"  {family:<17} {len(entry['hooks']):>2} hooks x {len(entry['ways'])} ways x "
            f"{len(entry['moments'])} moments x {len(entry['kinds'])} kinds: {n} cases"
        )
    return "\n".join(lines)


def compare(
    tornado: dict[str, Any], squall: dict[str, Any], known: list[re.Pattern[str]]
) -> tuple[dict[str, str], dict[str, str]]:
    """(known, unknown) differences."""
    found = differences(tornado, squall)
    listed = {k: v for k, v in found.items() if any(p.search(k) for p in known)}
    return listed, {k: v for k, v in found.items() if k not in listed}


# What each kind of difference is, for the summary line (FIELD without its
# request and hook: see `differences`).
KINDS = {
    "tasks": "the Task a hook ran in",
    "one_task": "whether a request's hooks shared one Task",
    "context": "the context variable a hook saw",
    "calls": "which hooks ran",
    "response": "the response",
    "refused": "whether the patch was refused",
    "requests": "how many requests were served",
    "present": "a case run on one side only",
}


def kinds(keys: Iterable[str]) -> str:
    """How many of the differences ``keys`` are of each kind, most first."""
    counts = Counter(re.sub(r"@.*$", "", key.rpartition(":")[2]).rpartition(".")[2] for key in keys)
    return ", ".join(f"{n:,} {KINDS.get(kind, kind)}" for kind, n in counts.most_common())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tornado-python", required=True)
    parser.add_argument("--squall-python", action="append", required=True, help="PY[:LABEL]")
    parser.add_argument("--only", help="the cases whose key this regex finds")
    parser.add_argument("--all", action="store_true", help="print the known differences too")
    args = parser.parse_args(argv)
    tornado = tornado_trace(args.tornado_python, args.only)
    known = markers(COMPAT.read_text())
    print(f"== {len(tornado)} cases:\n{matrix(tornado)}")
    status = 0
    for spec in args.squall_python:
        python, _, label = spec.partition(":")
        label = label or python
        name = re.sub(r"\W+", "-", label).strip("-")
        squall = trace(python, "squall", BUILD / f"squall-{name}.json", args.only)
        listed, unknown = compare(tornado, squall, known)
        print(
            f"== squall ({label}): {len(listed):,} differences listed in tests/COMPAT.md, "
            f"{len(unknown)} not"
        )
        if listed:
            print(f"   listed: {kinds(listed)}")
        for key, diff in sorted(unknown.items()):
            print(f"  NOT LISTED {key}: {diff}")
        if args.all:
            for key, diff in sorted(listed.items()):
                print(f"  listed {key}: {diff}")
        if unknown:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
