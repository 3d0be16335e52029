"""Sort values of reranked hits, and ``search_after`` cursors that continue the reranked order.

A search sorted ``["_score", {"n": "desc"}, ...]`` gets each hit's ``sort``
array back with ``_score`` replaced by the score the client sees, and the hits
ordered consistently with those arrays (equal scores fall back on the
tie-breakers, in their own directions). A ``search_after`` cursor taken from such
a page is read against the same reranked order:

- cursor inside the window (or at its last hit): the gateway fetches the window
  again (cached scores make it cheap), reranks, and serves the hits after the
  cursor;
- cursor beyond the window: its ``_score`` is the cluster's score moved by the
  page's whole-number ``shift`` (see ``es_body.merge``), so the cluster's own
  cursor is ``[score - shift, *rest]`` and the cluster serves the next page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cmp_to_key
from typing import Any


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


def cluster_cursor(cursor: Sequence[Any], shift: int) -> list[Any]:
    """The cluster's own ``search_after`` for a cursor beyond the window."""
    first = cursor[0]
    if _numbers(first, 0):
        first = first - shift
    return [first, *cursor[1:]]
