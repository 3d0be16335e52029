"""Stage 0 of a search: a ``retriever`` tree (or a hybrid profile's) run by the gateway.

::

    first    a ``_search`` body with a ``retriever``: sent to the cluster (``run =
             cluster``), rewritten into the plain search a leaf root is, or run here
             (retrievers.flow); a plain search under a hybrid profile: run as its tree
    sub      one retriever sub-search of a ``_msearch``: its slot of ``responses``
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import ClientRequestError, GatewayError
from gateway.rerank.budget import PairBudget
from gateway.rerank.reranker import Reason, Status
from gateway.retrievers import hybrid
from gateway.retrievers.flow import Ran, RetrieverFlow, TreeSearch
from gateway.retrievers.parse import Tree
from gateway.search import plan as es_plan
from gateway.search.context import SearchContext
from gateway.search.decide import Planner
from gateway.search.request import JSON_TYPES, SearchRequest
from gateway.search.result import SearchResult, forward_url, json_object, json_result, verbatim
from gateway.upstream.client import Upstream

log = logging.getLogger(__name__)
MOVED = ("from", "size", "filter_path")  # read by the gateway, not forwarded when reranking


@dataclass(frozen=True, slots=True)
class TreeSub:
    """A retriever sub-search of a ``_msearch``: its index, body and why it is not reranked."""

    index: str | None
    body: dict[str, Any]
    skip: Reason | None


@dataclass(frozen=True, slots=True)
class SubAnswer:
    """A sub-search's slot of ``responses`` and its rerank outcome."""

    response: dict[str, Any]
    status: Status
    reasons: tuple[Reason, ...]


class TreeStage:
    def __init__(self, flow: RetrieverFlow, planner: Planner, upstream: Upstream) -> None:
        self.flow = flow
        self.planner = planner
        self.upstream = upstream

    async def first(self, ctx: SearchContext) -> SearchResult | SearchRequest:
        """A retriever search's answer, or the request to go on with: as sent (no
        retriever), or the plain search a leaf root is."""
        req, arm = ctx.request, ctx.arm
        has_hybrid = self.flow.hybrid and arm is None  # an arm's search stays plain
        if not (has_hybrid or b"retriever" in req.raw):
            return req
        parsed = req.json if req.media_type in (*JSON_TYPES, "") else None
        if parsed is None:
            return req
        if "retriever" not in parsed:
            found = await self._hybrid(ctx, parsed) if has_hybrid else None
            return found or req
        if self.flow.passes_through:
            out_headers = self.upstream.outgoing_headers(req.headers)
            reply = await self.upstream.fetch(
                req.method,
                forward_url(req.url),
                out_headers,
                req.for_cluster(),  # minus ext.rerank, which the cluster rejects
                decode=arm is not None,
            )
            return verbatim(reply, "retriever_on_cluster")
        tree = self.flow.read(parsed, req.params)
        plain = await self.flow.plain_body(tree, parsed)
        if plain is not None:
            return req.rewritten(plain)
        return await self._run(ctx, tree, parsed, skip=self.planner.skip(req, arm))

    async def _hybrid(self, ctx: SearchContext, parsed: dict[str, Any]) -> SearchResult | None:
        """A plain search under a profile with a hybrid first stage, run as its tree; None
        (the plain search) when it is not reranked, has no embedder, or the embedder fails."""
        req = ctx.request
        if self.flow.embedder is None or self.planner.skip(req):
            return None
        plan, profile = await self.planner.plan(
            parsed, req.option, req.params, req.index, headers=req.headers
        )
        if not isinstance(plan, es_plan.Plan) or profile.hybrid is None:
            return None
        tree = hybrid.tree_for(
            parsed,
            profile.hybrid,
            query_text=plan.query,
            profile=profile.name,
            window=plan.window,
            from_=plan.from_,
            size=plan.size,
        )
        if tree is None:
            return None
        try:
            return await self._run(ctx, tree, parsed, skip=None)
        except GatewayError as exc:
            log.warning("hybrid first stage failed (%s): the plain search", type(exc).__name__)
            return None

    async def _run(
        self, ctx: SearchContext, tree: Tree, parsed: dict[str, Any], *, skip: Reason | None
    ) -> SearchResult:
        req = ctx.request
        headers = self.upstream.outgoing_headers(req.headers)
        path = forward_url(req.url, MOVED)
        shadowed, added = await self._text_fields(
            tree, parsed, req.params, req.index, req.headers, skip=skip
        )
        ran = await self.flow.execute(
            TreeSearch(tree, parsed, path, req.index, headers, skip, ctx.budget, added, shadowed)
        )
        if ran.answer is None:
            assert ran.refused is not None
            return verbatim(ran.refused, "upstream_status")
        return json_result(
            None, ran.answer, ran.rerank, ran.reasons, req.params, timings=ran.timings_ms
        )

    async def sub(self, sub: TreeSub, headers: Mapping[str, str], budget: PairBudget) -> SubAnswer:
        """One retriever sub-search of a ``_msearch``: its slot of ``responses``."""
        path = f"/{sub.index}/_search" if sub.index else "/_search"
        try:
            tree = self.flow.read(sub.body, {})
            shadowed, added = await self._text_fields(
                tree, sub.body, {}, sub.index, headers, skip=sub.skip
            )
            ran: Ran = await self.flow.execute(
                TreeSearch(
                    tree, sub.body, path, sub.index, headers, sub.skip, budget, added, shadowed
                )
            )
        except ClientRequestError as exc:
            return SubAnswer(exc.body(), "skipped", ("invalid_option",))
        if ran.answer is None:
            assert ran.refused is not None
            refused = json_object(ran.refused) or {"status": ran.refused.status}
            return SubAnswer(refused, "skipped", ("upstream_status",))
        return SubAnswer({**ran.answer, "status": 200}, ran.rerank, ran.reasons)

    async def _text_fields(
        self,
        tree: Tree,
        body: Mapping[str, Any],
        params: Mapping[str, str],
        index: str | None,
        headers: Mapping[str, str],
        *,
        skip: Reason | None,
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(shadowed, added) for the rerankers' text fields, by the rule a plain search
        follows (``Planner.fields_to_ask``: the client's own ``fields`` may bring them, a
        whole ``_source`` holds them where the mapping says so), not left to the client's
        hit options (``?_source=false``, ``script_fields`` alone, a multi-field or alias).
        None when the rerankers will not score (``skip``)."""
        wanted = self.flow.reranked_fields(tree, index) if skip is None else ()
        if not wanted:
            return (), ()
        return await self.planner.fields_to_ask(body, params, index, wanted, headers)
