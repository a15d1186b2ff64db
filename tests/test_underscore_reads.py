"""Every underscore read on another object in ``squall/`` is listed, with its reason.

The rule is the one of ``../shared/tools/reachins``: an attribute whose
name starts with one underscore (not a dunder), read or set on anything
but the bare name ``self`` or ``cls`` or ``super()``, counted over the
non-blank, non-comment lines of ``squall/``. Fields are changed by their
owner (docs/guide/seam.md); the reads left are in
``tests/underscore_reads.txt``, one line per file and attribute name: how
many, and why each is still there (keyed by file and name, so a moved line
keeps its reason).

The test fails on a read the list does not have (or more of one than it
says), on a listed read that is gone (the list only shrinks), and on an
entry without a reason (``?``, or a "not yet reviewed" placeholder). After cutting reads, or merging branches that did::

    python tests/test_underscore_reads.py --update    # rewrite the counts, keep the reasons
    python tests/test_underscore_reads.py             # the figure and the top files

``--update`` writes ``?`` as the reason of a new entry: replace it.
"""

from __future__ import annotations

import ast
import collections
import functools
import importlib.machinery
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any, Optional

import pytest


def _package() -> Path:
    # This checkout's squall/ (what the list describes); the installed
    # package where the tests run from a copy without it (make test-compiled).
    here = Path(__file__).resolve().parent.parent / "squall"
    if (here / "__init__.py").is_file():
        return here
    import squall

    return Path(squall.__file__).resolve().parent


ROOT = _package()
LIST = Path(__file__).resolve().parent / "underscore_reads.txt"
# The shared tool that counts the same reads, where this checkout has it.
TOOL = Path(__file__).resolve().parent.parent.parent / "shared" / "tools" / "reachins"
MISSING = "?"
# A placeholder some entries once had instead of a reason: no reason either.
PENDING = "not yet reviewed:"

Key = tuple[str, str]  # (file under squall/, attribute name)

HEADER = """\
# Underscore attributes read (or set) on objects other than self/cls/super()
# in squall/, per file and name, with the reason each is left.
# Checked by tests/test_underscore_reads.py; regenerate the counts with
#   python tests/test_underscore_reads.py --update
# (reasons are kept by file and name; a new entry gets "?" to be replaced).
# file  attribute  count  reason
"""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


# Every attribute with a leading underscore is written ``.`` then the name,
# perhaps with white space or a line continuation between; one written right
# after a bare ``self.``/``cls.`` is the object's own. A file with no other
# is not walked (most of the time goes to the walk).
_DOT_UNDERSCORE = re.compile(r"\.[\s\\]*_(?!_)")
_OWN = re.compile(r"(?<![\w.])(?:self|cls)\._(?!_)")


# Counts by source text, for the sources parsed once for both this counter
# and the tool (see _tool): parsing is most of the time.
_counted: dict[str, collections.Counter[str]] = {}


def reads_in(source: str) -> collections.Counter[str]:
    """The underscore attributes ``source`` reads on other objects, by name."""
    known = _counted.get(source)
    if known is not None:
        return known
    if len(_DOT_UNDERSCORE.findall(source)) == len(_OWN.findall(source)):
        return collections.Counter()
    return reads_in_tree(ast.parse(source))


def reads_in_tree(tree: ast.AST) -> collections.Counter[str]:
    """`reads_in` of a parsed module."""
    found: collections.Counter[str] = collections.Counter()
    for node in ast.walk(tree):
        if type(node) is not ast.Attribute or not _private(node.attr):
            continue
        value = node.value
        if type(value) is ast.Name and value.id in ("self", "cls"):
            continue
        if type(value) is ast.Call and type(value.func) is ast.Name and value.func.id == "super":
            continue
        found[node.attr] += 1
    return found


def code_lines(source: str) -> int:
    """Non-blank lines that are not comments (the tool's denominator)."""
    count = 0
    for line in source.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            count += 1
    return count


@functools.cache
def tree_reads(root: Path = ROOT) -> tuple[dict[Key, int], int]:
    """Every read in the package at ``root`` by (file, name), and its code lines."""
    counts: dict[Key, int] = {}
    lines = 0
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8", errors="replace")
        lines += code_lines(source)
        rel = path.relative_to(root).as_posix()
        for name, n in reads_in(source).items():
            counts[(rel, name)] = n
    return counts, lines


def load(path: Path = LIST) -> dict[Key, tuple[int, str]]:
    """The listed reads: (file, name) -> (count, reason)."""
    listed: dict[Key, tuple[int, str]] = {}
    if not path.exists():
        return listed
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 3)
        if len(parts) < 3 or not parts[2].isdigit():
            raise ValueError(
                f"{path.name} line {number}: want 'file attribute count reason': {line!r}"
            )
        reason = parts[3].strip() if len(parts) == 4 else MISSING
        listed[(parts[0], parts[1])] = (int(parts[2]), reason)
    return listed


def render(counts: dict[Key, int], reasons: dict[Key, str]) -> str:
    """The list file's text for ``counts``, with ``reasons`` (``?`` where none)."""
    rows = sorted(counts)
    width_file = max((len(f) for f, _ in rows), default=0)
    width_name = max((len(a) for _, a in rows), default=0)
    out = [HEADER]
    for key in rows:
        reason = reasons.get(key) or MISSING
        out.append(f"{key[0]:<{width_file}}  {key[1]:<{width_name}}  {counts[key]:>3}  {reason}\n")
    return "".join(out)


def differences(
    counts: dict[Key, int], listed: dict[Key, tuple[int, str]]
) -> tuple[list[str], list[str]]:
    """(reads not listed or more than listed, listed reads that are fewer or gone)."""
    over = [
        f"{f}: {a} read {n} time(s), listed {listed.get((f, a), (0, ''))[0]}"
        for (f, a), n in sorted(counts.items())
        if n > listed.get((f, a), (0, ""))[0]
    ]
    stale = [
        f"{f}: {a} listed {n}, read {counts.get((f, a), 0)} time(s)"
        for (f, a), (n, _) in sorted(listed.items())
        if counts.get((f, a), 0) < n
    ]
    return over, stale


def _tool() -> Optional[object]:
    if not TOOL.is_file():
        return None
    loader = importlib.machinery.SourceFileLoader("reachins_tool", str(TOOL))
    spec = importlib.util.spec_from_loader("reachins_tool", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    # The tool's own rules over the trees ast.parse makes, each source
    # parsed once for both counters: its ``ast`` is the real one but for a
    # parse that also counts the tree by this file's rule.
    shim = types.ModuleType("ast")
    shim.__dict__.update(vars(ast))

    def parse(source: str, *args: Any, **kwargs: Any) -> ast.AST:
        tree = ast.parse(source, *args, **kwargs)
        _counted[source] = reads_in_tree(tree)
        return tree

    shim.parse = parse  # type: ignore[attr-defined]
    module.ast = shim  # type: ignore[attr-defined]
    return module


# -- the tests (the tool's first: it parses the tree for both) ---------------------------


def test_the_count_is_the_tools() -> None:
    tool = _tool()
    if tool is None:
        pytest.skip(f"no {TOOL} in this checkout")
    attrs, _, lines, per_file = tool.count(ROOT)  # type: ignore[attr-defined]
    counts, our_lines = tree_reads()
    ours: collections.Counter[str] = collections.Counter()
    for (f, _), n in counts.items():
        ours[f] += n
    assert (sum(counts.values()), our_lines) == (attrs, lines)
    assert ours == collections.Counter({f: n for f, n in per_file.items()})


def test_every_read_is_listed() -> None:
    counts, _ = tree_reads()
    over, stale = differences(counts, load())
    assert not over, (
        "underscore reads on other objects that tests/underscore_reads.txt does not list "
        "(ask the owner with a method or a public name instead; if one must stay, run "
        "`python tests/test_underscore_reads.py --update` and give its reason):\n  "
        + "\n  ".join(over)
    )
    assert not stale, (
        "reads listed in tests/underscore_reads.txt that are gone: run "
        "`python tests/test_underscore_reads.py --update`:\n  " + "\n  ".join(stale)
    )


def unreasoned(listed: dict[Key, tuple[int, str]]) -> list[str]:
    """The entries of ``listed`` without a reason: ``?``, or one still "not yet reviewed"."""
    return [
        f"{f}: {a}"
        for (f, a), (_, reason) in sorted(listed.items())
        if reason == MISSING or reason.startswith(PENDING)
    ]


def test_every_listed_read_has_a_reason() -> None:
    missing = unreasoned(load())
    assert not missing, (
        "entries of tests/underscore_reads.txt without a reason (replace the "
        f"'{MISSING}' or '{PENDING} ...' with why the read stays):\n  " + "\n  ".join(missing)
    )


def test_a_pending_reason_is_no_reason() -> None:
    listed = {
        ("a.py", "_x"): (1, "the owner's method, same module"),
        ("b.py", "_y"): (2, MISSING),
        ("c.py", "_z"): (1, f"{PENDING} someone else's files"),
    }
    assert unreasoned(listed) == ["b.py: _y", "c.py: _z"]


SAMPLE = """\
import logging
# a comment: obj._not_code
class A:
    def f(self, other):
        self._own = cls._own = super()._own   # the object's own: not counted
        other._field = 1                      # set on another object
        x = other._field + other.__dunder__ + other.public
        return logging._srcfile, self.peer._field, A._cls_field, other()._call

"""


def test_the_rule_on_a_sample(tmp_path: Path) -> None:
    assert reads_in(SAMPLE) == {"_field": 3, "_srcfile": 1, "_cls_field": 1, "_call": 1}
    assert code_lines(SAMPLE) == 7
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "m.py").write_text(SAMPLE)
    counts, lines = tree_reads(package)
    assert counts[("sub/m.py", "_field")] == 3 and lines == 7
    tool = _tool()
    if tool is not None:
        attrs, _, tool_lines, _ = tool.count(package)  # type: ignore[attr-defined]
        assert (attrs, tool_lines) == (sum(counts.values()), lines)


def test_the_list_finds_what_is_unlisted_and_what_is_gone() -> None:
    counts = {("a.py", "_x"): 2, ("b.py", "_y"): 1}
    listed = {("a.py", "_x"): (1, "why"), ("c.py", "_z"): (1, "why")}
    over, stale = differences(counts, listed)
    assert over == ["a.py: _x read 2 time(s), listed 1", "b.py: _y read 1 time(s), listed 0"]
    assert stale == ["c.py: _z listed 1, read 0 time(s)"]


def test_update_keeps_reasons_by_file_and_name(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text(render({("a.py", "_x"): 1}, {("a.py", "_x"): "the reason, kept"}))
    reasons = {key: reason for key, (_, reason) in load(path).items()}
    path.write_text(render({("a.py", "_x"): 3, ("b.py", "_y"): 1}, reasons))
    assert load(path) == {("a.py", "_x"): (3, "the reason, kept"), ("b.py", "_y"): (1, MISSING)}


# -- the script ---------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    counts, lines = tree_reads()
    total = sum(counts.values())
    if "--update" in argv:
        reasons = {key: reason for key, (_, reason) in load().items() if reason != MISSING}
        LIST.write_text(render(counts, reasons), encoding="utf-8")
        new = sorted(key for key in counts if key not in reasons)
        print(f"wrote {LIST}: {len(counts)} entries, {len(new)} without a reason")
        for f, a in new:
            print(f"  ? {f} {a}")
    pending = sorted(key for key, (_, reason) in load().items() if reason.startswith(PENDING))
    if pending:
        print(f"{len(pending)} entries say '{PENDING}': give their reasons (or cut the reads)")
    per_file: collections.Counter[str] = collections.Counter()
    for (f, _), n in counts.items():
        per_file[f] += n
    for f, n in per_file.most_common(10):
        print(f"{n:5d} {f}")
    print(
        f"{total} underscore reads on other objects in {lines} code lines: "
        f"{1000 * total / max(lines, 1):.1f} per 1,000"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
