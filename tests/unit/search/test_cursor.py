"""cursor: sort orders, sort-value comparison, and the page past the window."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.search import cursor


@pytest.mark.parametrize(
    ("body", "params", "orders"),
    [
        ({"sort": ["_score", {"n": "desc"}]}, {}, (True, True)),
        ({"sort": [{"_score": "desc"}, "n", {"t": {"order": "asc"}}]}, {}, (True, False, False)),
        ({"sort": "_score"}, {}, (True,)),
        ({}, {"sort": "_score,n:desc"}, (True, True)),
        ({}, {}, None),
        ({"sort": [{"n": "desc"}, "_score"]}, {}, None),
        ({"sort": [{"_score": "asc"}]}, {}, None),
        ({"sort": ["_score", {"n": {"order": 3}}]}, {}, None),
    ],
)
def test_sort_orders(body: dict[str, Any], params: dict[str, str], orders: Any) -> None:
    assert cursor.sort_orders(body, params) == orders


def test_compare_follows_each_key_direction_and_extra_values_ascend() -> None:
    orders = (True, True)
    assert cursor.compare([2.0, 1], [1.0, 5], orders) == -1
    assert cursor.compare([1.0, 5], [1.0, 3], orders) == -1
    assert cursor.compare([1.0, 3, 7], [1.0, 3, 9], orders) == -1  # _shard_doc ascends
    assert cursor.compare([1.0, "a"], [1.0, 2], orders) == 0  # values that do not compare


def test_order_hits_breaks_score_ties_by_the_tie_breakers() -> None:
    hits = [{"_id": i, "sort": s} for i, s in enumerate([[1.0, 1], [1.0, 4], [2.0, 0]])]
    assert [h["_id"] for h in cursor.order_hits(hits, (True, True))] == [2, 1, 0]


def cluster(n: int) -> list[dict[str, Any]]:
    """``n`` cluster hits sorted by [_score desc, k desc], scores tied in pairs."""
    return [
        {"_id": f"h{i}", "_score": 10.0 - i // 2, "sort": [10.0 - i // 2, n - i]} for i in range(n)
    ]


async def test_beyond_window_continues_after_the_cursor_through_ties() -> None:
    hits, asks = cluster(12), []

    async def fetch(after: list[Any], size: int) -> list[dict[str, Any]]:
        asks.append((after, size))
        rest = [h for h in hits if cursor.compare(h["sort"], after, (True, True)) > 0]
        return [dict(h, sort=list(h["sort"])) for h in rest[:size]]

    shift = -20
    seen = {**hits[4], "_score": hits[4]["_score"] + shift}
    cursor_values = [seen["_score"], hits[4]["sort"][1]]
    page = await cursor.beyond_window(fetch, cursor_values, (True, True), shift, 3)
    assert [h["_id"] for h in page] == ["h5", "h6", "h7"]
    assert [h["_score"] for h in page] == [8.0 + shift, 7.0 + shift, 7.0 + shift]
    assert [h["sort"][0] for h in page] == [h["_score"] for h in page]
    assert asks[0][0][0] > hits[4]["_score"]  # asked from a little above the cursor's score


async def test_beyond_window_asks_for_more_when_the_first_answer_is_short() -> None:
    hits = [{"_id": f"h{i}", "_score": 1.0, "sort": [1.0, 100 - i]} for i in range(30)]

    async def fetch(after: list[Any], size: int) -> list[dict[str, Any]]:
        rest = [h for h in hits if cursor.compare(h["sort"], after, (True, True)) > 0]
        return [dict(h, sort=list(h["sort"])) for h in rest[:size]]

    page = await cursor.beyond_window(fetch, [1.0 - 5, 90], (True, True), -5, 4)
    assert [h["_id"] for h in page] == ["h11", "h12", "h13", "h14"]


async def test_beyond_window_stops_when_the_cluster_refuses() -> None:
    async def fetch(after: list[Any], size: int) -> None:
        return None

    assert await cursor.beyond_window(fetch, [1.0, 2], (True, True), -3, 5) == []


def test_shift_of_reads_the_move_beyond_the_window() -> None:
    sent = [{"_id": "a", "_score": 3.0}, {"_id": "b", "_score": 2.5}]
    ranked = [{"_id": "a", "_score": 0.9}, {"_id": "b", "_score": 2.5 - 7}]
    assert cursor.shift_of(ranked, sent, 1) == -7
    assert cursor.shift_of(ranked, sent, 2) == 0
