"""benchmarks/unspecialized.py: the sites CPython 3.13 leaves generic (3.13 and later)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 13), reason="dis shows the inline caches from 3.13"
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import unspecialized  # noqa: E402


class _Shadowed:
    value = None  # a class default the instance shadows

    def __init__(self) -> None:
        self.value = 1


class _Plain:
    def __init__(self) -> None:
        self.value = 1


class _SlotsAndDict:
    __slots__ = ("slot", "__dict__")

    def __init__(self) -> None:
        self.slot = 1
        self.held = 2  # in the instance dict

    def method(self) -> int:
        return 3


def _read_value(obj: Any) -> Any:
    return obj.value


def _read_plain(obj: Any) -> Any:
    return obj.value


def _use_slots_and_dict(obj: Any) -> Any:
    return obj.slot + obj.held + obj.method()


def _sites_after(runs: int) -> list[dict[str, Any]]:
    # As the tool does it (in two processes there): the sites are read
    # after runs without monitoring, which keeps code from specializing;
    # then the runs are counted.
    functions = [_read_value, _read_plain, _use_slots_and_dict]
    shadowed, plain, both = _Shadowed(), _Plain(), _SlotsAndDict()

    def run() -> None:
        for _ in range(runs):
            _read_value(shadowed)
            _read_plain(plain)
            _use_slots_and_dict(both)

    run()
    sites = unspecialized.generic_sites(unspecialized.code_objects(functions))
    with unspecialized.Counter() as counter:
        run()
    return unspecialized.listed(sites, counter.hits, runs, everywhere=True)


def test_reads_313_cannot_specialize_are_listed_with_their_runs_per_unit() -> None:
    rows = _sites_after(40)
    found = {(r["key"][1], r["op"], r["arg"].split(" ")[0]): r["per_unit"] for r in rows}
    # The shadowed instance attribute, the dict-held attribute and the
    # method of an instance with slots and a dict: once per run each.
    assert found[("_read_value", "LOAD_ATTR", "value")] == 1.0
    assert found[("_use_slots_and_dict", "LOAD_ATTR", "held")] == 1.0
    assert found[("_use_slots_and_dict", "LOAD_ATTR", "method")] == 1.0
    # What 3.13 specializes is not: the plain instance's attribute, the slot.
    assert not [k for k in found if k[0] == "_read_plain"]
    assert ("_use_slots_and_dict", "LOAD_ATTR", "slot") not in found


def test_a_site_that_did_not_run_is_not_listed() -> None:
    def never(obj: Any) -> Any:
        return obj.value

    sites = unspecialized.generic_sites(unspecialized.code_objects([never]))
    assert [s["op"] for s in sites] == ["LOAD_ATTR"]  # generic, never run
    assert unspecialized.listed(sites, {}, 1, everywhere=True) == []


def test_only_squall_sites_unless_everywhere() -> None:
    rows = _sites_after(10)
    assert rows  # the test's own sites, outside squall/
    kept = unspecialized.listed(
        [{"key": r["key"], "op": r["op"], "arg": r["arg"], "line": r["line"]} for r in rows],
        {tuple(r["key"]): 10 for r in rows},
        10,
        everywhere=False,
    )
    assert kept == []
