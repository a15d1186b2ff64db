"""The README's figures are generated from recorded runs and go stale loudly.

benchmarks/figures.py writes the table between the README's ``figures``
markers from benchmarks/results/*.json; each record carries the SHA-256 of
the benchmark that produced it. The compiled-module list in the docs is checked against the
build's own list.
"""

from __future__ import annotations

import importlib.util
import json
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


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert figures.render(readme) == readme, "run: python benchmarks/figures.py"


def test_there_are_recorded_figures() -> None:
    assert figures.records(), "benchmarks/results/ has no record"
    assert "| ASGI: Starlette hello world" in figures.table()


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


def test_a_stale_record_or_a_hand_edit_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "bench.py"
    script.write_text("print('v1')\n")
    monkeypatch.setattr(figures, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    figures.record("x", script, "pure", {"rows": [{"label": "w", "ratio_cpu": 2, "ratio_rps": 1}]})
    saved = json.loads((tmp_path / "results" / "x.json").read_text())
    assert saved["source_sha256"] == figures.source_hash(script)
    script.write_text("print('v2')\n")
    assert saved["source_sha256"] != figures.source_hash(script)
    page = f"a\n{figures.START}\n{figures.table()}\n{figures.END}\nb"
    assert figures.render(page) == page
    assert "| 2.00x | 1.00x |" in page
    assert figures.render(page.replace("2.00x", "3.00x")) == page


def test_quantities_get_their_own_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "bench.py"
    script.write_text("print('v1')\n")
    monkeypatch.setattr(figures, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(figures, "ROOT", tmp_path)
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


def test_parts_keep_the_stamp_of_the_run_that_measured_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "bench.py"
    script.write_text("print('v1')\n")
    monkeypatch.setattr(figures, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(figures, "ROOT", tmp_path)
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


def _compiled_modules() -> list[str]:
    build = _load("_squall_build", ROOT / "speedups" / "squall_build.py")
    names = [f"squall.{p}" for p in build.COMPILED_PACKAGES]
    return names + list(build.COMPILED_MODULES) + list(build.C_MODULES)


@pytest.mark.parametrize("page", ["docs/guide/compiled.md"])
def test_the_compiled_module_lists_are_complete(page: str) -> None:
    text = (ROOT / page).read_text()
    missing = [name for name in _compiled_modules() if f"`{name}`" not in text]
    assert not missing, f"{page} does not name {missing}"
