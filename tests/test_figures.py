"""The README's figures are generated from recorded runs and go stale loudly.

benchmarks/figures.py writes the table between the README's ``figures``
markers from benchmarks/results/*.json; each record carries the SHA-256 of
the benchmark that produced it. The compiled-module list in the docs is checked against the
build's own list.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import platform
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


figures = _load("_bench_figures", ROOT / "benchmarks" / "figures.py")


def test_the_tables_are_the_generated_ones() -> None:
    # Every recorded row in docs/figures.md, the headline in the README.
    assert [path.name for path, *_ in figures.TARGETS] == ["figures.md", "README.md"]
    assert not figures.stale(), "run: python benchmarks/figures.py"


def test_a_hand_edit_of_either_table_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = []
    for path, start, end, block in figures.TARGETS:
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace("| 1.64x |", "| 9.99x |", 1))
        targets.append((copy, start, end, block))
    monkeypatch.setattr(figures, "TARGETS", tuple(targets))
    assert [path.name for path in figures.stale()] == ["figures.md", "README.md"]
    figures.main_update()
    assert not figures.stale()


def test_there_are_recorded_figures() -> None:
    assert figures.records(), "benchmarks/results/ has no record"
    assert "| ASGI: Starlette hello world" in figures.table()


def test_the_headline_answers_each_question_on_3_13_beside_3_11() -> None:
    head, rule, *rows = figures.headline().splitlines()
    assert head == "| the question | CPython 3.13 | CPython 3.11 |"
    assert len(rows) <= 10
    for row in rows:
        assert row.count("|") == rule.count("|") == 4, row
    questions = [row.split(" | ")[0] for row in rows]
    for asked in ("Tornado", "aiohttp", "uvicorn", "Granian", "HTTP/2", "HTTP/3"):
        assert any(asked in question for question in questions), asked
    for asked in ("fan-out", "idle", "million", "Socket.IO"):
        assert any(asked in question for question in questions), asked
    # The throughput rows have both Pythons: none is a dash.
    assert all(" - " not in row for row in rows[:5])


def test_a_headline_row_no_record_has_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = (("a question", "wrk", "a workload no run measured", figures._ratio),)
    monkeypatch.setattr(figures, "HEADLINE", spec)
    with pytest.raises(ValueError, match="a workload no run measured"):
        figures.headline()


def test_a_headline_row_takes_each_python_from_its_own_record(script: Path) -> None:
    rows = {"3.13": 3.0, "3.11": 2.0}
    for version, ratio in rows.items():
        record = {"python": f"{version}.0", "rows": [{"label": "w", "ratio_cpu": ratio}]}
        path = figures.RESULTS / f"x-py{version}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(record))
    (figures.RESULTS / "y.json").write_text(
        json.dumps({"python": "3.11.7", "rows": [{"label": "q", "ratio_cpu": 4.0}]})
    )
    spec = (("x", "x", "w", figures._ratio), ("y", "y", "*", figures._ratio))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "HEADLINE", spec)
        _head, _rule, x, y = figures.headline().splitlines()
    assert x == "| x | 3.00x | 2.00x |"
    assert y == "| y | - | 4.00x |"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "benchmarks" / "results").glob("*.json")), ids=lambda p: p.name
)
def test_each_record_matches_the_benchmark_source(path: Path) -> None:
    record = json.loads(path.read_text())
    script = ROOT / record["benchmark"]
    assert script.is_file(), f"{path.name}: {record['benchmark']} is gone"
    assert figures.source_hash(script) == record["source_sha256"], (
        f"{record['benchmark']} changed since {path.name} was recorded "
        f"({record['date']}): run it again with --record"
    )
    for key in ("date", "commit", "machine", "squall_build", "rows"):
        assert record[key], key
    for name, part in record.get("parts", {}).items():
        assert part["source_sha256"] == record["source_sha256"], (
            f"{path.name}: its {name} was measured by another {record['benchmark']}"
        )
        assert part["date"] and part["commit"] and part["squall_build"], name


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A benchmark's source, whose records (and the root they name) are
    kept under ``tmp_path``."""
    path = tmp_path / "bench.py"
    path.write_text("print('v1')\n")
    monkeypatch.setattr(figures, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    return path


def test_a_stale_record_or_a_hand_edit_is_caught(tmp_path: Path, script: Path) -> None:
    figures.record("x", script, "pure", {"rows": [{"label": "w", "ratio_cpu": 2, "ratio_rps": 1}]})
    saved = json.loads((tmp_path / "results" / "x.json").read_text())
    assert saved["source_sha256"] == figures.source_hash(script)
    script.write_text("print('v2')\n")
    assert saved["source_sha256"] != figures.source_hash(script)
    page = f"a\n{figures.START}\n{figures.table()}\n{figures.END}\nb"
    assert figures.render(page) == page
    assert "| 2.00x | 1.00x |" in page
    assert figures.render(page.replace("2.00x", "3.00x")) == page


def test_quantities_get_their_own_table(script: Path) -> None:
    figures.record("r", script, "pure", {"rows": [{"label": "w", "ratio_cpu": 2, "ratio_rps": 1}]})
    figures.record(
        "q",
        script,
        "pure",
        {"rows": [{"label": "insns", "squall": 96_400, "other": 192_800, "unit": "instructions"}]},
    )
    ratios, quantities, _sources = figures.table().split("\n\n")
    assert "| w | 2.00x | 1.00x |" in ratios and "insns" not in ratios
    assert "| insns | 96.4k | 192.8k | 0.50x |" in quantities


def test_a_record_per_python_keeps_the_other_pythons_and_comes_first_when_newest(
    monkeypatch: pytest.MonkeyPatch, script: Path
) -> None:
    for version, ratio in (((3, 11), 2), ((3, 13), 3), ((3, 9), 1)):
        monkeypatch.setattr(sys, "version_info", (*version, 0, "final", 0))
        monkeypatch.setattr(platform, "python_version", lambda v=version: f"{v[0]}.{v[1]}.0")
        path = figures.record(
            "w",
            script,
            "pure",
            {"rows": [{"label": "hello", "ratio_cpu": ratio, "ratio_rps": 1}]},
            per_python=True,
        )
        assert path.name == f"w-py{version[0]}.{version[1]}.json"
    figures.record(
        "a", script, "pure", {"rows": [{"label": "first", "ratio_cpu": 4, "ratio_rps": 1}]}
    )
    figures.record(
        "x", script, "pure", {"rows": [{"label": "last", "ratio_cpu": 5, "ratio_rps": 1}]}
    )
    rows = [
        line for line in figures.table().splitlines() if line.startswith("| ") and "x |" in line
    ]
    assert [row.split(" | ")[1] for row in rows] == ["4.00x", "3.00x", "2.00x", "1.00x", "5.00x"]
    assert "CPython 3.13.0" in rows[1] and "CPython 3.11.0" in rows[2]


def test_each_table_says_which_way_is_better_and_where(
    monkeypatch: pytest.MonkeyPatch, script: Path
) -> None:
    # A throughput ratio is better high, a cost ratio low: the headers say
    # so, and a cost in CPU time names its machine as a throughput does.
    monkeypatch.setattr(figures, "_machine", lambda: "x86_64, 2 CPUs, Test CPU")
    figures.record("r", script, "pure", {"rows": [{"label": "w", "ratio_cpu": 2, "ratio_rps": 1}]})
    figures.record(
        "q",
        script,
        "pure",
        {"rows": [{"label": "handshake", "squall": 60, "other": 120, "unit": "us"}]},
    )
    ratios, quantities, _sources = figures.table().split("\n\n")
    assert ratios.splitlines()[0].startswith("| workload (Squall / other: higher is better) |")
    head, rule, row = quantities.splitlines()
    assert head.startswith("| cost measured (Squall / other: lower is better) |")
    assert head.count("|") == rule.count("|") == row.count("|")
    assert "| handshake | 60.0 us | 120.0 us | 0.50x |" in row
    assert f"| x86_64, 2 CPUs, Test CPU | CPython {platform.python_version()} | pure |" in row


def test_parts_keep_the_stamp_of_the_run_that_measured_them(tmp_path: Path, script: Path) -> None:
    # A record from before parts had stamps: each part gets the file's.
    legacy = {"date": "2026-01-01 10:00 UTC", "commit": "aaa", "squall_build": "pure", "table": []}
    legacy |= {"faults": [], "source_sha256": "x", "command": "bench.py"}
    parts = figures.part_stamps(legacy, ("table", "faults", "churn"))
    assert sorted(parts) == ["faults", "table"]
    assert parts["faults"]["commit"] == "aaa" and parts["table"]["date"] == legacy["date"]
    # The faults measured again, by another build: the table keeps its stamp,
    # and the record's own (what its rows are from) is the table's.
    parts["faults"] = figures.stamp(script, "compiled")
    figures.record("c", script, "compiled", {"rows": [], "table": [], "faults": []}, parts, "table")
    saved = json.loads((tmp_path / "results" / "c.json").read_text())
    assert saved["parts"]["table"]["commit"] == "aaa"
    assert saved["parts"]["faults"]["squall_build"] == "compiled"
    assert (saved["date"], saved["commit"], saved["squall_build"]) == (
        legacy["date"],
        "aaa",
        "pure",
    )
    assert figures.part_stamps(saved, ("table", "faults")) == saved["parts"]
    # The versions beside each run: the faults' run has them; the table's
    # run kept none, and neither does the record whose rows are its.
    assert isinstance(saved["parts"]["faults"]["packages"], dict)
    assert "packages" not in saved and "packages" not in saved["parts"]["table"]


def test_a_record_keeps_the_versions_of_the_peers_beside_it(
    tmp_path: Path, script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figures, "PACKAGES", ("pytest", "no-such-package-of-squall"))
    figures.record("p", script, "pure", {"rows": []})
    saved = json.loads((tmp_path / "results" / "p.json").read_text())
    assert saved["packages"] == {"pytest": pytest.__version__}


def _bench(name: str, path: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # A c10k script imports its neighbours (its folder is on sys.path when it
    # runs) and benchmarks/run.py's helpers (it puts benchmarks/ first); what
    # it imports from benchmarks/ is taken out again.
    monkeypatch.setattr(sys, "path", [*sys.path, str((ROOT / path).parent)])
    before = set(sys.modules)
    try:
        return _load(name, ROOT / path)
    finally:
        for added in set(sys.modules) - before:
            if str(ROOT / "benchmarks") in str(getattr(sys.modules[added], "__file__", "")):
                del sys.modules[added]


def test_the_c10k_rows_pair_each_squall_build_with_each_other_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c10k = _bench("_bench_c10k", "benchmarks/c10k/run.py", monkeypatch)
    args = argparse.Namespace(subscribers=5000, batch=500, crowd=5000, broadcast_per=200, rounds=3)
    medians = {
        "squall": {"handshake_cpu_us": 60.0, "handshake_crowd_cpu_us": 90.0},
        "aiohttp-uvloop": {"handshake_cpu_us": 120.0, "handshake_crowd_cpu_us": 150.0},
        # No crowd rows from the floor: it has no crowd figure here.
        "floor": {"handshake_cpu_us": 40.0},
    }
    rows = {r["label"]: (r["squall"], r["other"]) for r in c10k.record_rows(medians, args)}
    alone = "server CPU per WebSocket handshake, 5,000 subscribers opened 500 at a time"
    crowd = "server CPU per WebSocket handshake, 5,000 connecting at once beside 5,000 open"
    ours = "Squall (compiled, uvloop)"
    assert rows == {
        f"{alone}, {ours} / aiohttp on uvloop, median of 3 round(s)": (60.0, 120.0),
        f"{alone}, {ours} / the floor (a bare uvloop Protocol, no framework), "
        "median of 3 round(s)": (60.0, 40.0),
        f"{crowd}, {ours} / aiohttp on uvloop, median of 3 round(s)": (90.0, 150.0),
    }


def test_the_c10k_fan_out_rows_put_squall_against_the_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The headline's fan-out row is Squall's loop against the floor's; the
    # broadcast() row sets Squall's helper against the floor's one loop.
    c10k = _bench("_bench_c10k", "benchmarks/c10k/run.py", monkeypatch)
    args = argparse.Namespace(subscribers=5000, batch=500, crowd=5000, broadcast_per=200, rounds=5)
    medians = {
        "squall": {"deliver_loop_cpu_us": 7.0, "deliver_helper_cpu_us": 6.0},
        "floor": {"deliver_loop_cpu_us": 6.5},
        "aiohttp-uvloop": {"deliver_loop_cpu_us": 8.0},
    }
    rows = {r["label"]: (r["squall"], r["other"]) for r in c10k.record_rows(medians, args)}
    label, fmt = next((q[2], q[3]) for q in figures.HEADLINE if "fan-out" in q[0])
    (headline,) = [name for name in rows if fnmatch.fnmatchcase(name, label)]
    assert rows[headline] == (7.0, 6.5)
    assert fmt({"squall": 7.0, "other": 6.5, "unit": "us"}) == "7.0 us against 6.5 us (1.08x)"
    helper = [name for name in rows if "`squall.websocket.broadcast`" in name]
    assert sorted(rows[name] for name in helper) == [(6.0, 6.5), (6.0, 8.0)]
    assert len(rows) == 4


def test_the_h3_rows_put_each_quic_stack_against_hypercorn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h3 = _bench("_bench_h3", "benchmarks/h3_bench.py", monkeypatch)
    medians = {"squall h3": (1000.0, 4000.0), "squall h3 qh3": (2000.0, 9000.0)}
    medians |= {"hypercorn h3": (400.0, 1000.0), "squall h2": (9000.0, 30000.0)}
    # A browser's fields: Squall's run is put against Hypercorn's of the same requests.
    medians |= {"squall h3 browser": (600.0, 3000.0), "hypercorn h3 browser": (300.0, 500.0)}
    rows = {r["label"]: (r["ratio_cpu"], r["ratio_rps"]) for r in h3.record_rows(medians)}
    label = next(q[2] for q in figures.HEADLINE if q[0].startswith("HTTP/3"))
    (headline,) = [name for name in rows if fnmatch.fnmatchcase(name, label)]
    assert "aioquic" in headline and rows[headline] == (4.0, 2.5)
    (browser,) = [name for name in rows if "browser" in name]
    assert "aioquic" in browser and rows[browser] == (6.0, 2.0)
    assert sorted(rows.values()) == [(4.0, 2.5), (6.0, 2.0), (9.0, 5.0)]
    # A row whose Hypercorn run is missing is left out.
    del medians["hypercorn h3 browser"]
    assert len(h3.record_rows(medians)) == 2
    # Without Hypercorn's runs there is nothing to record.
    del medians["hypercorn h3"]
    assert h3.record_rows(medians) == []


def test_the_longpoll_rows_compare_each_program_with_its_own_tornado_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    longpoll = _bench("_bench_longpoll", "benchmarks/c10k/longpoll.py", monkeypatch)
    args = argparse.Namespace(polls=5000, rounds=3, wakes=3, repoll=False)
    cpu = {"tornado-demo": 200.0, "tornado": 150.0, "demo-compiled-uvloop": 90.0}
    cpu |= {"compat-pure-asyncio": 75.0, "chat-compiled-asyncio": 30.0}
    rows = {r["label"]: (r["squall"], r["other"]) for r in longpoll.record_rows(cpu, args)}
    assert sorted(rows.values()) == [(30.0, 150.0), (75.0, 150.0), (90.0, 200.0)]
    demo = next(label for label, got in rows.items() if got == (90.0, 200.0))
    assert "demos/chat run unchanged, under `python -m squall.compat` (compiled, uvloop)" in demo
    stand_in = next(label for label, got in rows.items() if got == (75.0, 150.0))
    assert "stand-in" in stand_in and "(pure Python, asyncio's loop)" in stand_in
    # Without its Tornado run, a Squall server gives no row.
    del cpu["tornado"]
    assert [r["other"] for r in longpoll.record_rows(cpu, args)] == [200.0]


def _compiled_modules() -> list[str]:
    build = _load("_squall_build", ROOT / "speedups" / "squall_build.py")
    names = [f"squall.{p}" for p in build.COMPILED_PACKAGES]
    return names + list(build.COMPILED_MODULES) + list(build.C_MODULES)


@pytest.mark.parametrize("page", ["docs/guide/compiled.md"])
def test_the_compiled_module_lists_are_complete(page: str) -> None:
    text = (ROOT / page).read_text()
    missing = [name for name in _compiled_modules() if f"`{name}`" not in text]
    assert not missing, f"{page} does not name {missing}"


def test_the_front_page_chart_is_drawn_from_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = figures.chart()
    label, name, row_label = figures.CHART_RATIOS[0]
    row = figures._row(figures._by_python(name)["3.13"], row_label)
    assert row is not None and f"{row['ratio_cpu']:.2f}x (3.13)" in drawn
    assert drawn.count("<rect ") == 1 + 2 * len(figures.CHART_RATIOS) + 2 * len(figures.CHART_COSTS)
    assert "figures/speed.svg" in (ROOT / "docs" / "index.md").read_text()
    # Missing or hand-edited, it is stale; the generator draws it again.
    monkeypatch.setattr(figures, "CHART", tmp_path / "speed.svg")
    assert figures.CHART in figures.stale()
    figures.main_update()
    assert figures.CHART not in figures.stale()
    figures.CHART.write_text(drawn.replace(f"{row['ratio_cpu']:.2f}x", "99.00x"))
    assert figures.CHART in figures.stale()


def test_the_readmes_real_application_figures_are_the_recorded_ones() -> None:
    # Quoted in the README's prose below the headline (which has no room): each
    # must be the ratio bench-apps recorded for that row.
    readme = (figures.ROOT / "README.md").read_text()
    record = json.loads((figures.RESULTS / "apps.json").read_text())
    for quoted, workload in (
        ("Jupyter Server's `/api/status` is", "jupyter status"),
        ("a notebook's content", "jupyter notebook"),
        ("kernel's messages", "kernel messages"),
    ):
        row = next(r for r in record["rows"] if r["workload"] == workload)
        said = readme.split(quoted, 1)[1].split()[0].strip(",.")
        assert said == f"{row['ratio_cpu']:.2f}x", (workload, said)
    assert f"on CPython {record['python'].rsplit('.', 1)[0]} ([Real" in readme
