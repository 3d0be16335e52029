"""The answer of a retriever search, in the shape Elasticsearch gives it.

- ``hits.hits``: the root's ranked list sliced ``from`` : ``from + size``; past the
  root's ``rank_window_size`` the page is empty (ES pages inside the window only).
- ``_rank`` on each hit (1-based, over the whole fused list) when the root is ``rrf``,
  and then ``max_score`` is null, as Elasticsearch 8.x answers an RRF search;
  otherwise ``max_score`` is the best score of the list.
- ``hits.total`` and ``aggregations``: from the union search (every leaf's matches).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.retrievers.parse import Fusion, Node


def answer(
    root: Node,
    ranked: list[dict[str, Any]],
    *,
    from_: int,
    size: int,
    union: Mapping[str, Any] | None,
    took_ms: int,
    shards: Mapping[str, Any] | None,
    timed_out: bool,
) -> dict[str, Any]:
    rrf = isinstance(root, Fusion) and root.kind == "rrf"
    page = []
    for position, hit in enumerate(ranked[from_ : from_ + size], start=from_ + 1):
        out = dict(hit)
        out.pop("_rank", None)
        if rrf:
            out["_rank"] = position
        page.append(out)
    scores = [h["_score"] for h in ranked if isinstance(h.get("_score"), int | float)]
    section: dict[str, Any] = {}
    union_hits = (union or {}).get("hits") or {}
    if "total" in union_hits:
        section["total"] = union_hits["total"]
    section["max_score"] = None if rrf or not scores else max(scores)
    section["hits"] = page
    result: dict[str, Any] = {"took": took_ms, "timed_out": timed_out}
    if shards is not None:
        result["_shards"] = dict(shards)
    result["hits"] = section
    if union is not None and "aggregations" in union:
        result["aggregations"] = union["aggregations"]
    return result
