"""Sort values of reranked hits, and ``search_after`` cursors that continue the reranked order.

A search sorted ``["_score", {"n": "desc"}, ...]`` gets each hit's ``sort``
array back with ``_score`` replaced by the score the client sees, and the hits
ordered consistently with those arrays (equal scores fall back on the
tie-breakers, in their own directions). A ``search_after`` cursor taken from such
a page is read against the same reranked order:

- cursor inside the window (or at its last hit): the gateway fetches the window
  again (cached scores make it cheap), reranks, and serves the hits after the
  cursor;
- cursor beyond the window: its ``_score`` is the cluster's score moved by a
  whole number (``es_body.merge``), so the cluster can be asked from
  ``score - shift`` (see ``beyond_window``) and serves the next page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cmp_to_key
from typing import Any

_MAX_ASKS = 6  # asks for one page past the window (each for twice as many hits)


def sort_orders(body: Mapping[str, Any], params: Mapping[str, str]) -> tuple[bool, ...] | None:
    """Descending flags of an explicit sort that starts with ``_score`` desc, else None.

    Values past the listed keys (the implicit ``_shard_doc`` of a point in time) sort ascending.
    """
    if "sort" in params:
        keys: list[Any] = [k.strip() for k in params["sort"].split(",") if k.strip()]
        flags = [_param_desc(k) for k in keys]
    else:
        sort = body.get("sort")
        if sort is None:
            return None
        keys = sort if isinstance(sort, list) else [sort]
        flags = [_body_desc(k) for k in keys]
    if not flags or flags[0] is not True or not _is_score(keys[0]):
        return None
    if any(f is None for f in flags):
        return None
    return tuple(bool(f) for f in flags)


def _is_score(key: Any) -> bool:
    if isinstance(key, str):
        return key.split(":")[0] == "_score"
    return isinstance(key, dict) and list(key) == ["_score"]


def _param_desc(key: str) -> bool | None:
    name, _, order = key.partition(":")
    if not order:
        return name == "_score"
    return {"desc": True, "asc": False}.get(order.lower())


def _body_desc(key: Any) -> bool | None:
    if isinstance(key, str):
        return key == "_score"
    if not isinstance(key, dict) or len(key) != 1:
        return None
    name, spec = next(iter(key.items()))
    order = spec.get("order") if isinstance(spec, dict) else spec
    if order is None:
        return bool(name == "_score")
    if not isinstance(order, str):
        return None
    return {"desc": True, "asc": False}.get(order.lower())


def _cmp_value(a: Any, b: Any, desc: bool) -> int:
    if a == b or (type(a) is not type(b) and not _numbers(a, b)):
        return 0
    try:
        less = a < b
    except TypeError:
        return 0
    out = -1 if less else 1
    return -out if desc else out


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))


def compare(a: Sequence[Any], b: Sequence[Any], orders: Sequence[bool]) -> int:
    """-1 when sort values ``a`` come first, 1 when ``b`` does, 0 when tied."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        c = _cmp_value(x, y, orders[i] if i < len(orders) else False)
        if c:
            return c
    return 0


def sort_values(hit: Mapping[str, Any]) -> list[Any] | None:
    values = hit.get("sort")
    return values if isinstance(values, list) and values else None


def order_hits(hits: list[dict[str, Any]], orders: Sequence[bool]) -> list[dict[str, Any]]:
    """``hits`` stably ordered by their sort arrays (those without one keep their place)."""
    if not all(sort_values(h) for h in hits):
        return hits

    def by_sort(a: dict[str, Any], b: dict[str, Any]) -> int:
        return compare(a["sort"], b["sort"], orders)

    return sorted(hits, key=cmp_to_key(by_sort))


def position_after(
    hits: Sequence[Mapping[str, Any]], cursor: Sequence[Any], orders: Sequence[bool]
) -> int:
    """Index of the first hit that sorts strictly after ``cursor`` (len(hits) if none)."""
    for i, hit in enumerate(hits):
        values = sort_values(hit)
        if values is not None and compare(values, cursor, orders) > 0:
            return i
    return len(hits)


def shift_of(
    ranked: Sequence[Mapping[str, Any]], sent: Sequence[Mapping[str, Any]], window: int
) -> int:
    """The whole number ``es_body.merge`` moved the hits beyond the window by (0: none)."""
    new = {(h.get("_index"), h.get("_id")): h.get("_score") for h in ranked}
    for hit in sent[window:]:
        now, was = new.get((hit.get("_index"), hit.get("_id"))), hit.get("_score")
        if isinstance(now, int | float) and isinstance(was, int | float):
            return round(now - was)
    return 0


def _moved(hit: dict[str, Any], shift: int) -> dict[str, Any]:
    """A cluster hit beyond the window as the client sees it: ``_score`` and sort moved."""
    score = hit.get("_score")
    if shift and isinstance(score, int | float) and not isinstance(score, bool):
        hit["_score"] = score + shift
        values = sort_values(hit)
        if values is not None:
            hit["sort"] = [hit["_score"], *values[1:]]
    return hit


async def beyond_window(
    fetch: Callable[[list[Any], int], Awaitable[list[dict[str, Any]] | None]],
    cursor: Sequence[Any],
    orders: Sequence[bool],
    shift: int,
    size: int,
) -> list[dict[str, Any]]:
    """The ``size`` hits after a cursor beyond the window, asked of the cluster.

    ``fetch(search_after, size)`` returns the cluster's hits (None when it refused).
    ``score - shift`` need not give back the cluster's score to the last bit (and a
    cluster may keep scores in 32 bits), so the cluster is asked from a little above
    it, no hit's score equal to that cursor, and what is not after the client's
    cursor (compared as the client sees the values) is left out. When that leaves
    the page short, the same cursor is asked for twice as many hits.
    """
    first = cursor[0]
    if shift and _numbers(first, 0):
        back = first - shift
        first = back + (abs(back) + 1) * 1e-6
    after, want = [first, *cursor[1:]], size + 1
    out: list[dict[str, Any]] = []
    for _ in range(_MAX_ASKS):
        hits = await fetch(after, want)
        if hits is None:
            break
        out = [h for h in (_moved(h, shift) for h in hits) if _after(h, cursor, orders)]
        if len(out) >= size or len(hits) < want:
            break
        want *= 2
    return out[:size]


def _after(hit: Mapping[str, Any], cursor: Sequence[Any], orders: Sequence[bool]) -> bool:
    values = sort_values(hit)
    return values is not None and compare(values, cursor, orders) > 0
