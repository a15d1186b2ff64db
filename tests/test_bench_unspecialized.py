"""benchmarks/unspecialized.py: the sites CPython 3.13 leaves generic (3.13 and later).

Each check runs in an interpreter of its own: a tracer or a monitoring
tool left on by another test instruments code, which then never
specializes, and every site would read as generic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 13), reason="dis shows the inline caches from 3.13"
)

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

_PROGRAM = """
import json, sys
sys.path.insert(0, sys.argv[1])
import unspecialized


class Shadowed:
    value = None  # a class default the instance shadows

    def __init__(self):
        self.value = 1


class Plain:
    def __init__(self):
        self.value = 1


class SlotsAndDict:
    __slots__ = ("slot", "__dict__")

    def __init__(self):
        self.slot = 1
        self.held = 2  # in the instance dict

    def method(self):
        return 3


def read_value(obj):
    return obj.value


def read_plain(obj):
    return obj.value


def use_slots_and_dict(obj):
    return obj.slot + obj.held + obj.method()


def never(obj):
    return obj.value


runs = int(sys.argv[2])
shadowed, plain, both = Shadowed(), Plain(), SlotsAndDict()


def run():
    for _ in range(runs):
        read_value(shadowed)
        read_plain(plain)
        use_slots_and_dict(both)


# As the tool does it (in two processes there): the sites are read after
# runs without monitoring, then the runs are counted.
run()
codes = unspecialized.code_objects([read_value, read_plain, use_slots_and_dict, never])
sites = unspecialized.generic_sites(codes)
with unspecialized.Counter() as counter:
    run()
print(json.dumps({
    "sites": [[s["key"][1], s["op"], s["arg"].split(" ")[0]] for s in sites],
    "listed": unspecialized.listed(sites, counter.hits, runs, everywhere=True),
    "squall_only": unspecialized.listed(sites, counter.hits, runs, everywhere=False),
}))
"""


def _run(runs: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(BENCHMARKS), str(runs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_reads_313_cannot_specialize_are_listed_with_their_runs_per_unit() -> None:
    rows = _run(40)["listed"]
    found = {(r["key"][1], r["op"], r["arg"].split(" ")[0]): r["per_unit"] for r in rows}
    # The shadowed instance attribute, the dict-held attribute and the
    # method of an instance with slots and a dict: once per run each.
    assert found[("read_value", "LOAD_ATTR", "value")] == 1.0
    assert found[("use_slots_and_dict", "LOAD_ATTR", "held")] == 1.0
    assert found[("use_slots_and_dict", "LOAD_ATTR", "method")] == 1.0
    # What 3.13 specializes is not: the plain instance's attribute, the slot.
    assert not [k for k in found if k[0] == "read_plain"]
    assert ("use_slots_and_dict", "LOAD_ATTR", "slot") not in found


def test_a_site_that_did_not_run_is_not_listed() -> None:
    result = _run(10)
    # `never` is generic (it never ran, so never specialized), and not listed.
    assert ["never", "LOAD_ATTR", "value"] in result["sites"]
    assert not [r for r in result["listed"] if r["key"][1] == "never"]


def test_only_squall_sites_unless_everywhere() -> None:
    result = _run(10)
    assert result["listed"]  # this program's own sites, outside squall/
    assert result["squall_only"] == []
