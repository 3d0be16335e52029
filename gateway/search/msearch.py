"""``_msearch``: each sub-search through the stages of a ``_search``, scored together.

::

    read     the NDJSON lines (in a thread), or why none is reranked; the pair budget
             counted on the lines before anything is parsed
    plan     each sub-search's plan and profile (decide); a bad ``ext.rerank`` is an
             error in its own slot; retriever sub-searches run here (trees)
    upstream one ``_msearch`` of the sub-searches left, widened
    rank     the reranked ones concurrently: their pairs share model batches, and each
             one's deadline runs alongside the others'
    answer   ``X-Rerank`` sums them up; ``X-Rerank-Each`` / ``-Each-Reason`` per sub-search
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from gateway.errors import ClientRequestError
from gateway.es import body as es_body
from gateway.rerank.budget import PairBudget
from gateway.rerank.profiles import Profile
from gateway.rerank.reranker import Reason, Status
from gateway.search import plan as es_plan
from gateway.search.context import Timings
from gateway.search.decide import Planner
from gateway.search.hooks import Page
from gateway.search.rank import PageRanker
from gateway.search.reasons import joined
from gateway.search.request import SearchRequest
from gateway.search.result import (
    EACH_HEADER,
    EACH_REASON_HEADER,
    SearchResult,
    forward_url,
    json_result,
    ok_object,
    overall,
    unread,
    verbatim,
)
from gateway.search.trees import SubAnswer, TreeStage, TreeSub
from gateway.settings import RerankSettings
from gateway.upstream.client import Reply, Upstream

# Why a search is not reranked, for which its retriever tree still runs in the gateway.
_TREE_SKIPS = ("opted_out", "disabled", "not_opted_in", "index_not_configured", "model_not_ready")


@dataclass
class _SubSearches:
    """A ``_msearch`` planned: per sub-search plan and profile, lines to send, refusals."""

    plans: list[es_plan.Plan | Reason] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    refused: dict[int, dict[str, Any]] = field(default_factory=dict)
    trees: dict[int, TreeSub] = field(default_factory=dict)  # run by the gateway


@dataclass(slots=True)
class MultiSearch:
    """The stages a sub-search goes through, shared with ``_search``."""

    upstream: Upstream
    planner: Planner
    ranker: PageRanker
    trees: TreeStage
    settings: RerankSettings

    async def run(self, req: SearchRequest, budget: PairBudget) -> SearchResult:
        timings = Timings()
        out_headers = self.upstream.outgoing_headers(req.headers)
        reason = self.planner.skip(req)
        if reason is None and not req.ndjson_typed:
            reason = "unreadable_body"
        # Not reranked, but with retriever sub-searches: those still run in the gateway.
        with_trees = (
            req.ndjson_typed and b"retriever" in req.raw and not self.trees.flow.passes_through
        )
        skip = reason if with_trees and reason in _TREE_SKIPS else None
        subs = (
            await self._read(req, budget, skip=skip)
            if reason is None or skip is not None
            else reason
        )
        if isinstance(subs, str):
            body = await asyncio.to_thread(es_body.msearch_without_gateway_ext, req.raw)
            reply = await self.upstream.fetch(
                req.method, forward_url(req.url), out_headers, body, decode=False
            )
            return verbatim(reply, subs)
        with timings.upstream():
            if subs.lines:
                reply = await self.upstream.fetch(
                    req.method,
                    forward_url(req.url, ("filter_path",)),
                    out_headers,
                    b"\n".join(subs.lines) + b"\n",
                )
            else:  # every sub-search refused: nothing to ask the cluster
                kind = CIMultiDict({"Content-Type": "application/json"})
                reply = Reply(200, kind, b'{"took":0}')
        response = ok_object(reply)
        sent = response.get("responses", []) if response is not None else None
        if response is None or not isinstance(sent, list) or len(sent) * 2 != len(subs.lines):
            return unread(reply, response, req.params)
        answers = iter(sent)
        trees = await self._trees(subs, out_headers, budget)
        n = len(subs.plans)
        responses = [
            subs.refused.get(i) or (trees[i].response if i in trees else next(answers))
            for i in range(n)
        ]
        response["responses"] = responses
        statuses: list[Status] = [trees[i].status if i in trees else "skipped" for i in range(n)]
        reasons: list[tuple[Reason, ...]] = [
            trees[i].reasons if i in trees else () for i in range(n)
        ]
        # The sub-searches are scored together: their pairs share model batches, and
        # each one's deadline runs alongside the others' rather than after them.
        jobs: dict[int, Awaitable[Page]] = {}
        for i, p in enumerate(subs.plans):
            sub_resp = responses[i]
            if i in trees:
                continue
            if not isinstance(p, es_plan.Plan):
                reasons[i] = (p,)
            elif (
                not isinstance(sub_resp, dict)
                or "error" in sub_resp
                or not es_body.readable_hits(sub_resp)
            ):
                reasons[i] = ("upstream_status",)
            else:
                jobs[i] = self.ranker.page(
                    p, sub_resp, profile=subs.profiles[i], budget=budget, timings=timings
                )
        for i, page in zip(jobs, await asyncio.gather(*jobs.values()), strict=True):
            responses[i] = page.body
            statuses[i] = page.status
            reasons[i] = (page.reason,) if page.reason is not None else ()
        result = json_result(
            reply,
            response,
            overall(statuses),
            tuple(r for rs in reasons for r in rs),
            req.params,
            timings={"upstream": timings.upstream_ms},
        )
        result.headers[EACH_HEADER] = ",".join(statuses)
        result.headers[EACH_REASON_HEADER] = ",".join(joined(rs) or "-" for rs in reasons)
        return result

    async def _read(
        self, req: SearchRequest, budget: PairBudget, *, skip: Reason | None
    ) -> _SubSearches | Reason:
        """The body read (in a thread: Python work in proportion to the body, so the event
        loop keeps answering) and planned, or why it is not reranked: unreadable, or more
        sub-searches (or their windows together) than the request's pair budget.
        ``skip``: why none is reranked (its retriever sub-searches still run here)."""
        lines = await asyncio.to_thread(_read_lines, req.raw, budget)
        if isinstance(lines, str):
            return lines
        subs = await self._plan(lines, req, skip)
        windows = sum(p.window for p in subs.plans if isinstance(p, es_plan.Plan))
        return subs if budget.fits(windows) else "too_many_pairs"

    async def _plan(
        self, lines: list[dict[str, Any]], req: SearchRequest, skip: Reason | None
    ) -> _SubSearches:
        """Plan each sub-search; the body lines to send upstream.

        A sub-search with a bad ``ext.rerank`` gets its error in its own slot (as the
        cluster answers a sub-search it cannot parse) and is not sent; the others run.
        """
        out = _SubSearches()
        opted_in = req.choice is True
        for i, (head, sub) in enumerate(zip(lines[0::2], lines[1::2], strict=True)):
            sub_index = head.get("index", req.index)
            if isinstance(sub_index, list):
                sub_index = ",".join(str(x) for x in sub_index)
            # An index that is no name (a number, an object): sent as is, the cluster's verdict.
            named = sub_index is None or isinstance(sub_index, str)
            not_here: Reason = skip or ("index_not_configured" if named else "unreadable_body")
            p: es_plan.Plan | Reason = not_here
            profile = self.planner.profiles.default
            allowed = named and skip is None and self.planner.allowed(sub_index, opted_in)
            if named and "retriever" in sub and not self.trees.flow.passes_through:
                out.trees[i] = TreeSub(sub_index, sub, None if allowed else not_here)
            elif allowed:
                try:
                    option = es_plan.rerank_option(sub)
                    p, profile = await self.planner.plan(
                        sub, option, {}, sub_index, headers=req.headers
                    )
                    if isinstance(p, es_plan.Plan) and p.cursor is not None:
                        p = "paginated_by_cursor"  # sent as is: the cluster's own page
                except ClientRequestError as exc:
                    out.refused[i] = exc.body()
                    p = "invalid_option"
            out.plans.append(p)
            out.profiles.append(profile)
            if i in out.refused or i in out.trees:
                continue
            wide = es_plan.widen(sub, p) if isinstance(p, es_plan.Plan) else sub
            out.lines += [es_body.dump(head), es_body.dump(es_body.strip_gateway_ext(wide))]
        return out

    async def _trees(
        self, subs: _SubSearches, headers: Mapping[str, str], budget: PairBudget
    ) -> dict[int, SubAnswer]:
        """The retriever sub-searches, run concurrently."""
        jobs = [self.trees.sub(sub, headers, budget) for sub in subs.trees.values()]
        return dict(zip(subs.trees, await asyncio.gather(*jobs), strict=True))


def _read_lines(body: bytes, budget: PairBudget) -> list[dict[str, Any]] | Reason:
    """The body's lines, or why it is not reranked: unreadable, or more sub-searches than
    the request's pair budget (counted before anything is parsed)."""
    if not budget.fits((body.count(b"\n") + 1) // 2):  # each reranked one takes a pair
        return "too_many_pairs"
    lines = es_body.ndjson_objects(body)
    return "unreadable_body" if lines is None else lines
