"""Simulated users of a search page: the body they search with, the hits they click (a
position-based model: rank r examined with 1 / r**eta). The learning loop's traffic."""

from __future__ import annotations

import random
from typing import Any

FIELDS = ("title", "text")


def search_body(text: str, size: int) -> dict[str, Any]:
    return {"size": size, "query": {"multi_match": {"query": text, "fields": list(FIELDS)}}}


def clicks_on(
    hits: list[dict[str, Any]],
    judged: dict[str, int],
    search_id: str,
    rng: random.Random,
    *,
    eta: float = 1.0,
    p_rel: float = 0.9,
    p_nonrel: float = 0.1,
) -> list[dict[str, Any]]:
    """A simulated user's clicks on a page: rank r examined with 1 / r**eta, then a click
    with ``p_rel`` on a relevant hit (``judged`` > 0), ``p_nonrel`` on another."""
    out = []
    for rank, hit in enumerate(hits, start=1):
        relevant = judged.get(hit["_id"], 0) > 0
        examined = rng.random() < 1.0 / rank**eta
        if examined and rng.random() < (p_rel if relevant else p_nonrel):
            out.append({"search_id": search_id, "position": rank})
    return out
