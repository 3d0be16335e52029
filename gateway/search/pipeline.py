"""The search pipeline: one ``SearchContext`` through named stages. Returns data, not web objects.

::

    trees    a ``retriever`` body run here, or sent on (search.trees)
    decide   which searches are reranked; the plan and profile (search.decide)
    forward  not reranked: sent as is, minus ``ext.rerank``; the cluster's bytes back
    widen    plan.widen: top ``fetch`` hits from 0, text fields requested
    upstream its non-2xx answers go back verbatim
    rank     score the window and merge the page (search.rank); an experiment arm
             builds its own page from the same results (search.hooks)
    answer   ``filter_path``, ``?pretty``, the outcome headers' values (search.result)

``_msearch`` runs each sub-search through the same stages (search.msearch).
"""

from __future__ import annotations

from gateway.es import body as es_body
from gateway.rerank.budget import PairBudget
from gateway.rerank.profiles import DEFAULT, Profiles
from gateway.rerank.reranker import Reranker
from gateway.retrievers.embed import QueryEmbedder
from gateway.retrievers.flow import RetrieverFlow
from gateway.search import plan as es_plan
from gateway.search.context import SearchContext
from gateway.search.decide import Planner
from gateway.search.hooks import Arm, Experiment, Page, Ranked
from gateway.search.mappings import IndexFields
from gateway.search.msearch import MultiSearch
from gateway.search.rank import Again, PageRanker
from gateway.search.request import SearchRequest
from gateway.search.result import (
    SearchResult,
    forward_url,
    json_result,
    ok_object,
    reasons_of,
    unread,
    verbatim,
)
from gateway.search.trees import MOVED, TreeStage
from gateway.settings import RelevanceSettings, RerankSettings, RetrieverSettings, SpeedSettings
from gateway.upstream.client import Reply, Upstream


class SearchFlow:
    def __init__(
        self,
        upstream: Upstream,
        reranker: Reranker | None,
        settings: RerankSettings,
        profiles: Profiles | None = None,
        speed: SpeedSettings | None = None,
        *,
        index_fields: IndexFields | None = None,
        retrievers: RetrieverSettings | None = None,
        embedder: QueryEmbedder | None = None,
    ) -> None:
        self.upstream = upstream
        # A search may ask for its own deadline, up to this (SPEED__MAX_TIMEOUT_S).
        self.max_timeout_s = (speed or SpeedSettings.model_validate({})).max_timeout_s
        self.reranker = reranker  # the default model's
        self.settings = settings
        self.profiles = profiles or Profiles(settings, RelevanceSettings.model_validate({}))
        self.rerankers: dict[str, Reranker] = {}  # the other models', by name
        # The experiment whose arms serve ``_search``es, attached from outside (app.py).
        self.experiment: Experiment | None = None
        # ``retriever`` trees and the hybrid profile (gateway.retrievers).
        self.retrievers = RetrieverFlow(
            upstream,
            self.profiles,
            self.model,
            retrievers or RetrieverSettings.model_validate({}),
            embedder,
        )
        self.planner = Planner(
            settings, self.profiles, self.model, self.max_timeout_s, index_fields
        )
        self.ranker = PageRanker(upstream, self.model)
        self.trees = TreeStage(self.retrievers, self.planner, upstream)
        self.multi = MultiSearch(upstream, self.planner, self.ranker, self.trees, settings)

    def model(self, name: str) -> Reranker | None:
        """The reranker of the model ``name`` (DEFAULT: the default one), when loaded."""
        return self.reranker if name == DEFAULT else self.rerankers.get(name)

    def _budget(self) -> PairBudget:
        return PairBudget(self.settings.max_request_pairs)

    async def msearch(self, request: SearchRequest) -> SearchResult:
        """Each sub-search of a ``_msearch`` is treated like a ``_search``."""
        return await self.multi.run(request, self._budget())

    async def search(self, request: SearchRequest, *, arm: Arm | None = None) -> SearchResult:
        ctx = SearchContext(request, self._budget(), self.profiles.default, arm)
        first = await self.trees.first(ctx)
        if isinstance(first, SearchResult):
            return first
        ctx.request = first
        await self._decide(ctx)
        if isinstance(ctx.plan, str):
            return await self._forward(ctx)
        return await self._rank(ctx, ctx.plan)

    async def _decide(self, ctx: SearchContext) -> None:
        """The context's plan (or why not) and profile."""
        req = ctx.request
        skip = self.planner.skip(req, ctx.arm)
        if skip is not None:
            ctx.plan = skip
            return
        parsed = req.json if req.json_typed or not req.raw.strip() else None
        if parsed is None:
            ctx.plan = "unreadable_body"
            return
        plan, ctx.profile = await self.planner.plan(
            parsed, req.option, req.params, req.index, headers=req.headers, arm=ctx.arm
        )
        if ctx.arm is not None and isinstance(plan, es_plan.Plan) and plan.cursor is not None:
            plan = "paginated_by_cursor"  # an arm's page has no cursor order to continue
        if isinstance(plan, es_plan.Plan) and not ctx.budget.fits(plan.window):
            plan = "too_many_pairs"
        ctx.plan = plan

    async def _forward(self, ctx: SearchContext) -> SearchResult:
        """Not reranked: forwarded as sent (minus the gateway's parameter and ext section).

        Unread by the gateway, the answer goes back as the cluster encoded it; an
        experiment arm reads it (impressions), so that one is decoded."""
        req = ctx.request
        assert isinstance(ctx.plan, str)
        reply = await self.upstream.fetch(
            req.method,
            forward_url(req.url),
            self.upstream.outgoing_headers(req.headers),
            req.for_cluster() or None,
            decode=ctx.arm is not None,
        )
        return verbatim(reply, ctx.plan)

    async def _rank(self, ctx: SearchContext, plan: es_plan.Plan) -> SearchResult:
        """Widen, ask upstream, rank the window, answer the page."""
        req = ctx.request
        assert req.json is not None
        wide = es_plan.widen(req.json, plan)
        out_headers = self.upstream.outgoing_headers(req.headers)
        if not req.raw.strip():
            out_headers["Content-Type"] = "application/json"
        method = "POST" if req.method == "GET" and not req.raw else req.method
        again = Again(method, forward_url(req.url, MOVED), out_headers, wide)
        with ctx.timings.upstream():
            reply = await self.upstream.fetch(method, again.path, out_headers, es_body.dump(wide))
        response = ok_object(reply)
        if response is None or not es_body.readable_hits(response):
            return unread(reply, response, req.params)

        async def rank(p: es_plan.Plan) -> Page:
            return await self.ranker.page(
                p, response, profile=ctx.profile, budget=ctx.budget, timings=ctx.timings
            )

        if plan.cursor is not None:
            page: Page | Reply = await self.ranker.after(
                plan, response, again, profile=ctx.profile, budget=ctx.budget, timings=ctx.timings
            )
        else:
            ranked = Ranked(plan, response, rank, ctx.timings.gateway_ms)
            page = await ctx.arm.serve(ranked) if ctx.arm is not None else await ranked.page()
        if isinstance(page, Reply):  # the cluster refused the page beyond the window
            return verbatim(page, "upstream_status")
        timings = {"upstream": ctx.timings.upstream_ms, "rerank": page.rerank_ms}
        return json_result(
            reply, page.body, page.status, reasons_of(page.reason), req.params, timings=timings
        )
