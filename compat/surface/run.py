"""The surface differential: Tornado 6.6.1 against Squall, name by name and state by state.

    python compat/surface/run.py --tornado-python PATH     # (make surface)
    python compat/surface/run.py --snapshot-only          # compare with the checked-in snapshot
    python compat/surface/run.py --snapshot-only --prune  # and drop listed differences now gone

Runs probe.py with Tornado's interpreter (a venv with tornado==6.6.1; it
refreshes ``tornado-6.6.1.json``, the snapshot that tests/test_surface.py
reads) and with Squall, compares the two, and prints a summary per part:
keys compared, equal, differing, and how many of the differences are listed
in ``known.json`` (each with its reason; tests/COMPAT.md summarises them).
Exits non-zero when a difference is not listed or a listed one is gone.

A difference is keyed ``part:key`` ("names:web.RequestHandler.write",
"states:ws_client.close.stream", "warnings:tcpserver.start",
"raises:iostream.closed.write", "coroutines:web.RequestHandler._execute",
"qualnames:web.RequestHandler", "private:handler.get._write_buffer",
"first_step:tcpclient.connect.af_mismatch"). Names Squall has and Tornado
does not are not differences, except a member of one of Tornado's public
classes ("extras:websocket.WebSocketHandler.connect").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SNAPSHOT = HERE / "tornado-6.6.1.json"
HOMES = REPO / "squall" / "_tornado_homes.py"
IMPORTS = REPO / "squall" / "_tornado_imports.py"
KNOWN = HERE / "known.json"
PARTS = (
    "names",
    "states",
    "warnings",
    "raises",
    "coroutines",
    "qualnames",
    "private",
    "first_step",
    "messages",
    "log_sites",
    "call_shapes",
    "values",
    "imports",
)
# Parts whose values are sets (space-separated): Squall's must hold Tornado's.
_SETS = frozenset({"imports"})
# Parts where a key Tornado has and Squall lacks is not itself a difference:
# a private method Squall does not have is not one whose coroutine-ness
# differs (a public one missing is a difference of ``names``).
_BOTH_SIDES = frozenset({"coroutines"})


def probe_with(python: str, package: str, modules_from: Path | None = None) -> dict[str, Any]:
    # Absolute but not resolved: a venv's python is a symlink that must stay one.
    cmd = [os.path.abspath(python), str(HERE / "probe.py")]
    if package == "squall":
        cmd.append("--compat")
    if modules_from is not None:
        cmd.append(str(modules_from))
    env = dict(os.environ)
    if package == "squall":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(HERE), timeout=600)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"probe failed with {python} for {package}")
    return json.loads(proc.stdout)


def _params(desc: str) -> tuple[str, list[str]] | None:
    """``"method(a, b=1)"`` -> ``("method", ["a", "b=1"])``; None if not a signature."""
    head, paren, rest = desc.partition("(")
    if not paren or not rest.endswith(")"):
        return None
    inner = rest[:-1]
    return head, [p for p in inner.split(", ") if p]


def compatible(theirs: str, ours: str) -> bool:
    """Equal, or Squall's signature is Tornado's with optional parameters added.

    Added parameters with defaults (Squall's own options, e.g.
    ``max_idle_per_host``) do not break a call written for Tornado; nor does
    a signature that Tornado's C function cannot report ("?").
    """
    if theirs == ours:
        return True
    t, o = _params(theirs), _params(ours)
    if theirs.endswith("?") and ours.startswith(theirs[:-1]):
        return True
    if t is None or o is None or t[0] != o[0]:
        return False
    t_params, o_params = t[1], o[1]
    o_fixed = [p for p in o_params if p not in t_params]
    if [p for p in o_params if p in t_params] != t_params:
        return False
    return all("=" in p for p in o_fixed)


def differences(tornado: dict[str, Any], squall: dict[str, Any]) -> dict[str, str]:
    """``part:key -> "tornado: X / squall: Y"`` for each key of Tornado's that Squall does not match."""
    out: dict[str, str] = {}
    for part in PARTS:
        theirs, ours = tornado[part], squall[part]
        for key, value in theirs.items():
            if part in _BOTH_SIDES and key not in ours:
                continue
            mine = ours.get(key, "(missing)")
            if part in _SETS:
                missing = set(value.split()) - set(mine.split())
                if missing:
                    out[f"{part}:{key}"] = f"squall lacks: {' '.join(sorted(missing))}"
                continue
            if not compatible(value, mine):
                out[f"{part}:{key}"] = f"tornado: {value} / squall: {mine}"
    out.update(extras(tornado, squall))
    return out


def extras(tornado: dict[str, Any], squall: dict[str, Any]) -> dict[str, str]:
    """``extras:web.RequestHandler.x -> "squall only: method()"``: members a
    public class of Tornado's has on Squall and not on Tornado (what code
    that walks a class's methods, as Jupyter Server's audit does, meets)."""
    theirs, ours = tornado["names"], squall["names"]
    classes = {key for key, kind in theirs.items() if kind == "class"}
    out: dict[str, str] = {}
    for key, desc in ours.items():
        owner, _, member = key.rpartition(".")
        # Methods (and read-only properties) only: a "data" member Squall
        # declares on the class (a slot, a settable property) is an
        # attribute Tornado's instances have too, assignable as there.
        if owner in classes and key not in theirs and not _assignable(desc):
            out[f"extras:{key}"] = f"squall only: {desc}"
    return out


def _assignable(desc: str) -> bool:
    return desc in ("data", "property(settable)", "descriptor")


def write_homes(homes: dict[str, str], imports: dict[str, str]) -> None:
    """The names Tornado's modules have because they import them, and where each lives.

    Two tables, two modules: ``HOMES`` (answered lazily, name by name) in
    _tornado_homes.py and ``IMPORTS`` (read when a module is imported as
    ``tornado.X``) in _tornado_imports.py, which _tornado_homes re-exports.
    """
    by_module: dict[str, dict[str, str]] = {}
    for key, home in sorted(homes.items()):
        if home == "?":
            continue  # no importable home (a Tornado-made object, listed in known.json)
        module, _, name = key.rpartition(".")
        by_module.setdefault(module, {})[name] = home
    lines = [
        '"""Names that the modules of Tornado 6.6.1 have because they import them, and their homes.',
        "",
        "Generated by compat/surface/run.py --write-homes from the surface snapshot; do",
        "not edit. `squall.compat` offers these names on Squall's modules (lazily,",
        "through a module ``__getattr__``) so that ``from tornado.web import app_log``",
        "works as on Tornado. A home is a name in Squall (``log.app_log``), or, for",
        "another library's object, ``module:attribute`` (``urllib.parse:urlencode``;",
        "``datetime:`` for a module). What importing each module brings is",
        "``squall._tornado_imports.IMPORTS``, re-exported here.",
        '"""',
        "",
        "from squall._tornado_imports import IMPORTS as IMPORTS",
        "",
        "HOMES: dict[str, dict[str, str]] = {",
    ]
    for module, names in by_module.items():
        lines.append(f"    {module!r}: {{")
        lines += [f"        {name!r}: {home!r}," for name, home in names.items()]
        lines.append("    },")
    lines.append("}")
    HOMES.write_text("\n".join(lines).replace("'", '"') + "\n")
    lines = [
        '"""What `import tornado.X` brings into sys.modules under tornado names on Tornado 6.6.1.',
        "",
        "Generated by compat/surface/run.py --write-homes from the imports part of the",
        "surface snapshot; do not edit. squall.compat imports these under those names",
        "with tornado.X, so that import hooks fire as there. Each value is the",
        "module names of the snapshot, separated by spaces.",
        '"""',
        "",
        "IMPORTS: dict[str, str] = {",
    ]
    for module, brought in sorted(imports.items()):
        names = " ".join(name for name in brought.split() if name != module)
        lines.append(f"    {module!r}: {names!r},")
    lines.append("}")
    IMPORTS.write_text("\n".join(lines).replace("'", '"') + "\n")


def load_known() -> dict[str, str]:
    """Listed differences: ``part:key -> reason``."""
    data = json.loads(KNOWN.read_text())
    return {key: reason for key, reason in data.items() if not key.startswith("//")}


def summary(
    tornado: dict[str, Any],
    diffs: dict[str, str],
    known: dict[str, str],
    squall: dict[str, Any] | None = None,
) -> list[str]:
    lines = [f"{'part':<12}{'compared':>10}{'equal':>8}{'differ':>8}{'listed':>8}{'new':>6}"]
    for part in (*PARTS, "extras"):
        keys = [k for k in diffs if k.startswith(part + ":")]
        listed = sum(1 for k in keys if k in known)
        if part == "extras":
            # Members of Tornado's classes, counted on Squall's side.
            classes = {k for k, kind in tornado["names"].items() if kind == "class"}
            ours = squall["names"] if squall is not None else {}
            total = sum(
                1 for k, d in ours.items() if k.rpartition(".")[0] in classes and not _assignable(d)
            )
        elif part in _BOTH_SIDES and squall is not None:
            total = sum(1 for k in tornado[part] if k in squall[part])
        else:
            total = len(tornado[part])
        lines.append(
            f"{part:<12}{total:>10}{total - len(keys):>8}{len(keys):>8}{listed:>8}{len(keys) - listed:>6}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tornado-python", help="an interpreter with tornado==6.6.1 installed")
    parser.add_argument("--squall-python", default=sys.executable)
    parser.add_argument("--snapshot-only", action="store_true", help="use the checked-in snapshot")
    parser.add_argument("--show", action="store_true", help="print every difference")
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove from known.json the listed differences that are gone (after a fix lands)",
    )
    parser.add_argument(
        "--write-homes",
        action="store_true",
        help=f"regenerate {HOMES.relative_to(REPO)} from the snapshot (squall.compat reads it)",
    )
    args = parser.parse_args(argv)
    if args.snapshot_only or not args.tornado_python:
        tornado = json.loads(SNAPSHOT.read_text())
    else:
        tornado = probe_with(args.tornado_python, "tornado")
        SNAPSHOT.write_text(json.dumps(tornado, indent=0, sort_keys=True) + "\n")
    if args.write_homes:
        write_homes(tornado["homes"], tornado["imports"])
    squall = probe_with(args.squall_python, "squall", SNAPSHOT)
    diffs = differences(tornado, squall)
    known = load_known()
    new = {k: v for k, v in diffs.items() if k not in known}
    gone = sorted(k for k in known if k not in diffs)
    for line in summary(tornado, diffs, known, squall):
        print(line)
    if args.show:
        for key in sorted(diffs):
            print(f"  {'   ' if key in known else 'NEW'} {key}: {diffs[key]}")
    for key in sorted(new):
        print(f"not listed in known.json: {key}: {new[key]}")
    if args.prune and gone:
        data = json.loads(KNOWN.read_text())
        for key in gone:
            del data[key]
        KNOWN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"removed {len(gone)} entries that no longer differ from {KNOWN.name}")
        gone = []
    for key in gone:
        print(f"listed in known.json but no longer differs (remove it): {key}")
    return 1 if new or gone else 0


if __name__ == "__main__":
    sys.exit(main())
