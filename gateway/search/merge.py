"""The client's page out of the widened upstream answer: the window reordered by its scores,
``_score`` / ``max_score`` on one scale, the page sliced, fields the gateway added removed.

Pure functions over ``_search`` JSON, from a ``plan.Plan``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gateway.rerank.fusion import reorder
from gateway.search import cursor as cursors
from gateway.search.plan import Plan

FIRST_STAGE_FIELD = "_first_stage_score"
FIRST_STAGE_RANK_FIELD = "_first_stage_rank"


def merge(
    response: dict[str, Any],
    p: Plan,
    scores: Sequence[float | None],
    has_text: Sequence[bool],
    gateway_ms: int,
    *,
    dropped: Sequence[bool] = (),
    explanations: Sequence[dict[str, Any] | None] = (),
) -> dict[str, Any]:
    """The client's page: reranked window, then upstream order beyond it.

    ``dropped`` hits of the window (below ``min_score``) leave it; ``explanations``
    replace the hits' ``_explanation``.
    """
    out = dict(response)
    hits_section = dict(out.get("hits") or {})
    hits: list[dict[str, Any]] = [dict(h) for h in hits_section.get("hits") or []]
    window, rest = hits[: p.window], hits[p.window :]
    if p.first_stage:
        for rank, hit in enumerate(hits):
            extra = dict(hit.get("fields") or {})
            extra[FIRST_STAGE_FIELD] = [hit.get("_score")]
            extra[FIRST_STAGE_RANK_FIELD] = [rank + 1]
            hit["fields"] = extra
    padded = list(scores) + [None] * (len(window) - len(scores))
    text_mask = list(has_text) + [False] * (len(window) - len(has_text))
    order = reorder(padded[: len(window)], text_mask[: len(window)])
    top = max((float(h["_score"]) for h in window if is_number(h.get("_score"))), default=None)
    new_window: list[dict[str, Any]] = []
    last_scored = -1
    for i in order:
        hit = window[i]
        if i < len(dropped) and dropped[i]:
            continue
        if padded[i] is not None:
            hit["_score"] = padded[i]
            last_scored = len(new_window)
        if i < len(explanations) and explanations[i] is not None:
            hit["_explanation"] = explanations[i]
        new_window.append(hit)
    ranked = new_window + rest
    real = [s for s in padded if s is not None]
    if real and top is not None:
        # One scale per answer: what was not reranked goes below the lowest reranked
        # score, moved by a whole number so its order (and ties) stay the cluster's.
        shift = math.floor(min(real) - top) - 1
        for hit in ranked[last_scored + 1 :]:
            if is_number(hit.get("_score")):
                hit["_score"] = hit["_score"] + shift
    if p.orders is not None:
        for hit in ranked:
            values = cursors.sort_values(hit)
            if values is not None and is_number(hit.get("_score")):
                hit["sort"] = [hit["_score"], *values[1:]]
        ranked = cursors.order_hits(ranked[: len(new_window)], p.orders) + ranked[len(new_window) :]
    page = ranked[p.from_ : p.from_ + p.size]
    for hit in page:
        strip_added(hit, p)
    if real and is_number(hits_section.get("max_score")):
        hits_section["max_score"] = max(real)
    hits_section["hits"] = page
    out["hits"] = hits_section
    if isinstance(out.get("took"), int):
        out["took"] = out["took"] + gateway_ms
    return out


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def text_hits(hits: Sequence[dict[str, Any]], p: Plan) -> list[dict[str, Any]]:
    """The hits as the text is read from them: ``fields`` entries that are the client's
    own ``docvalue_fields`` / ``script_fields`` values (``p.shadowed``) left out."""
    if not p.shadowed:
        return list(hits)
    out = []
    for hit in hits:
        fields = hit.get("fields")
        if isinstance(fields, dict) and any(f in fields for f in p.shadowed):
            kept = {k: v for k, v in fields.items() if k not in p.shadowed}
            out.append({**hit, "fields": kept})
        else:
            out.append(hit)
    return out


def strip_added(hit: dict[str, Any], p: Plan) -> None:
    fields = hit.get("fields")
    if not isinstance(fields, dict) or not p.added_fields:
        return
    kept = {k: v for k, v in fields.items() if k not in p.added_fields}
    if kept or p.first_stage:
        hit["fields"] = kept
    else:
        del hit["fields"]  # the cluster leaves out an empty ``fields``


def passthrough_page(response: dict[str, Any], p: Plan, gateway_ms: int) -> dict[str, Any]:
    """The client's page in upstream order (reranking skipped after the widened fetch)."""
    return merge(response, p, [], [], gateway_ms)
