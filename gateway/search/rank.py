"""Stages 5-6 of a search: score the window under the profile, merge the client's page.

::

    page    relevance.score_window (text → chunks → reranker → pooling → fusion), then
            merge.merge: reorder the window, slice the page; the cluster's order when
            the model is not ready or nothing was scored
    after   a ``search_after`` page: the reranked order after the cursor, and past the
            window the cluster's own pages, asked again (``Again``)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway import tracing
from gateway.es import body as es_body
from gateway.rerank import relevance
from gateway.rerank.budget import PairBudget
from gateway.rerank.profiles import Profile
from gateway.rerank.reranker import Reranker
from gateway.search import cursor as cursors
from gateway.search import merge as es_merge
from gateway.search.context import Timings
from gateway.search.hooks import Page
from gateway.search.plan import Plan
from gateway.search.result import ok_object
from gateway.upstream.client import Reply, Upstream


@dataclass(frozen=True, slots=True)
class Again:
    """The upstream request a search made, for the pages the cluster serves past the window."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: dict[str, Any]


class PageRanker:
    def __init__(self, upstream: Upstream, models: Callable[[str], Reranker | None]) -> None:
        self.upstream = upstream
        self.models = models  # model name → its reranker, when loaded

    async def page(
        self,
        plan: Plan,
        response: dict[str, Any],
        *,
        profile: Profile,
        budget: PairBudget,
        timings: Timings,
    ) -> Page:
        """The plan's page out of the widened upstream ``response``, reranked if it can be."""
        reranker = self.models(profile.model)
        if reranker is None:
            page = es_merge.passthrough_page(response, plan, timings.gateway_ms())
            return Page(page, "skipped", "model_not_ready")
        hits = (response.get("hits") or {}).get("hits") or []
        t0 = time.perf_counter()
        window = es_merge.text_hits(hits[: plan.window], plan)
        with tracing.stage(
            "rerank", window=plan.window, hits=len(window), model=profile.model
        ) as span:
            scored = await relevance.score_window(
                reranker, profile, plan.query, window, explain=plan.explain, budget=budget
            )
            span.set(outcome=scored.status, reason=scored.reason)
        rerank_ms = (time.perf_counter() - t0) * 1000
        if scored.status == "skipped":
            page = es_merge.passthrough_page(response, plan, timings.gateway_ms())
            return Page(page, "skipped", scored.reason, rerank_ms)
        merged = es_merge.merge(
            response,
            plan,
            scored.scores,
            scored.has_text,
            timings.gateway_ms(),
            dropped=scored.dropped,
            explanations=scored.explanations,
        )
        if scored.status == "full" and not all(scored.has_text):
            return Page(merged, "partial", "no_doc_text", rerank_ms)
        return Page(merged, scored.status, scored.reason, rerank_ms)

    async def after(
        self,
        plan: Plan,
        response: dict[str, Any],
        again: Again,
        *,
        profile: Profile,
        budget: PairBudget,
        timings: Timings,
    ) -> Page | Reply:
        """A ``search_after`` page: the reranked order (window, then beyond) after the cursor;
        the cluster's refusal of a page past the window, if it refuses one."""
        assert plan.cursor is not None and plan.orders is not None
        full = replace(plan, from_=0, size=plan.fetch, cursor=None)
        ranked = await self.page(full, response, profile=profile, budget=budget, timings=timings)
        section = ranked.body["hits"]
        hits: list[dict[str, Any]] = section["hits"]
        start = cursors.position_after(hits, plan.cursor, plan.orders)
        sent: list[dict[str, Any]] = (response.get("hits") or {}).get("hits") or []
        exhausted = len(sent) < plan.fetch
        if ranked.status != "skipped" and (start + plan.size <= len(hits) or exhausted):
            section["hits"] = hits[start : start + plan.size]
            return ranked
        # Past the window (or not reranked): the cluster goes on from its own cursor.
        shift = cursors.shift_of(hits, sent, plan.window) if ranked.status != "skipped" else 0
        refused: list[Reply] = []

        async def fetch(after: list[Any], size: int) -> list[dict[str, Any]] | None:
            body = {**again.body, "size": size, "search_after": after}
            reply = await self.upstream.fetch(
                again.method, again.path, again.headers, es_body.dump(body)
            )
            page = ok_object(reply)
            if page is None or not es_body.readable_hits(page):
                refused.append(reply)
                return None
            return [dict(h) for h in (page.get("hits") or {}).get("hits") or []]

        beyond = await cursors.beyond_window(fetch, plan.cursor, plan.orders, shift, plan.size)
        if refused:
            return refused[0]
        for hit in beyond:
            es_merge.strip_added(hit, plan)
        section["hits"] = beyond
        return ranked
