"""benchmarks/bench_ab.py's table: medians, their ratio, and each round's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bench_ab import function_moves, summary  # noqa: E402


def test_rates_are_divided_tree_over_ref() -> None:
    row = summary([100.0, 90.0, 110.0], [120.0, 99.0, 99.0], higher=True)
    assert row["ref"] == 100.0 and row["tree"] == 99.0
    assert row["speed"] == pytest.approx(0.99)
    assert row["paired"] == pytest.approx([1.2, 1.1, 0.9])


def test_costs_are_inverted_so_that_faster_is_above_one() -> None:
    # CPU per handshake: the tree's 45 us against 50 is 1.11x faster.
    row = summary([50.0, 48.0, 60.0], [45.0, 48.0, 30.0], higher=False)
    assert row["speed"] == pytest.approx(50.0 / 45.0)
    assert row["paired"] == pytest.approx([50 / 45, 1.0, 2.0])


def test_the_rounds_pair_in_the_order_they_ran() -> None:
    # The same medians, paired otherwise: what the rounds column is for.
    one = summary([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], higher=True)
    other = summary([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], higher=True)
    assert one["speed"] == other["speed"] == 1.0
    assert one["paired"] == [1.0, 1.0, 1.0]
    assert other["paired"] == pytest.approx([3.0, 1.0, 1 / 3])


def test_a_side_with_a_round_missing_is_an_error() -> None:
    with pytest.raises(ValueError):
        summary([1.0, 2.0], [1.0], higher=True)


def test_the_functions_that_moved_come_largest_first() -> None:
    before = {"a.py:f": 23.0, "a.py:g": 10.0, "a.py:same": 5.0, "a.py:gone": 2.0}
    after = {"a.py:f": 20.0, "a.py:g": 10.25, "a.py:same": 5.0, "a.py:new": 11.0}
    moved = function_moves(before, after)
    # A function only one side ran counts 0 on the other; a move under
    # half an operation is left out.
    assert moved == [("a.py:new", 0.0, 11.0), ("a.py:f", 23.0, 20.0), ("a.py:gone", 2.0, 0.0)]
    assert function_moves(before, after, top=1) == [("a.py:new", 0.0, 11.0)]


def test_a_function_that_moved_is_one_row() -> None:
    before = {
        "squall/web/handler.py:RequestHandler.compute_etag": 33.0,
        "squall/web/handler.py:_new_headers": 36.0,
        "squall/a.py:X.close": 4.0,
        "squall/b.py:Y.close": 5.0,
    }
    after = {
        "squall/web/_etag.py:EtagMixin.compute_etag": 33.0,
        "squall/web/_status.py:_new_headers": 27.0,
        "squall/c.py:Z.close": 9.0,
    }
    moved = function_moves(before, after)
    renamed = "squall/web/handler.py:_new_headers -> squall/web/_status.py:_new_headers"
    assert (renamed, 36.0, 27.0) in moved
    # The same count under its new key is no move at all; two functions of
    # one name that went are not paired with the one that came.
    names = [row[0] for row in moved]
    assert not any("compute_etag" in n for n in names)
    assert ("squall/c.py:Z.close", 0.0, 9.0) in moved
    assert ("squall/b.py:Y.close", 5.0, 0.0) in moved
