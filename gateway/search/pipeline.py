"""The search pipeline: decide, widen, ask upstream, score, merge. Returns data, not web objects.

::

    decide   which searches are reranked (settings, index patterns, opt in/out)
    plan     es_body.plan: query text, page, window; or a skip reason
    widen    es_body.widen: top `fetch` hits from 0, text fields requested
    upstream its non-2xx answers go back verbatim
    profile  profiles.select: window, text, model, score use for this index / request
    score    relevance.score_window: text → chunks → reranker (cache → batcher → model)
             → pooling → fusion / cut-off, within the profile's deadline
    merge    es_body.merge: reorder the window, slice the page, keep the rest
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

from multidict import CIMultiDict
from yarl import URL

from gateway import tracing
from gateway.errors import ClientRequestError, GatewayError
from gateway.experiments.arms import Arm
from gateway.indices import path_allowed
from gateway.rerank import relevance
from gateway.rerank.profiles import DEFAULT, Profile, Profiles
from gateway.rerank.reranker import Reranker
from gateway.retrievers import hybrid
from gateway.retrievers.embed import QueryEmbedder
from gateway.retrievers.flow import RetrieverFlow
from gateway.retrievers.parse import Tree
from gateway.search import body as es_body
from gateway.search import cursor as cursors
from gateway.search.budget import TOO_MANY_PAIRS, PairBudget
from gateway.search.filter_path import FilterPath, from_params
from gateway.search.mappings import IndexFields
from gateway.settings import RelevanceSettings, RerankSettings, RetrieverSettings, SpeedSettings
from gateway.upstream.client import Reply, Upstream

log = logging.getLogger(__name__)
RERANK_HEADER = "X-Rerank"  # full | partial | skipped, on every _search / _msearch answer
REASON_HEADER = "X-Rerank-Reason"
OPT_HEADER = "X-Rerank"  # the same name on a request: on | off
OPT_PARAM = "rerank"  # ?rerank=true|false, removed before forwarding
TIMEOUT_HEADER = "X-Rerank-Timeout-Ms"  # a search's own rerank deadline (ext.rerank.timeout_ms)
EACH_HEADER = "X-Rerank-Each"  # _msearch: full | partial | skipped per sub-search, in order
EACH_REASON_HEADER = "X-Rerank-Each-Reason"  # _msearch: each one's reason, "-" when none
_MOVED = ("from", "size", "filter_path")  # read by the gateway, not forwarded when reranking
# Why a search is not reranked, for which its retriever tree still runs in the gateway.
_TREE_SKIPS = ("opted_out", "disabled", "not_opted_in", "index_not_configured", "model_not_ready")
_JSON_TYPES = ("application/json", "application/vnd.elasticsearch+json")
_NDJSON_TYPES = (
    "application/x-ndjson",
    "application/vnd.elasticsearch+x-ndjson",
    "application/json",
    "application/vnd.elasticsearch+json",
)
# The values of ?rerank= and of the X-Rerank request header (README "What gets reranked").
_CHOICES = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}


@dataclass(slots=True)
class SearchResult:
    """What the handler sends: status, headers, body, and the rerank outcome."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    rerank: str = "skipped"
    reason: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    verbatim: bool = False  # the cluster's own bytes: relayed without recompressing


@dataclass
class _SubSearches:
    """A ``_msearch`` planned: per sub-search plan and profile, lines to send, refusals."""

    plans: list[es_body.Plan | str] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    refused: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Retriever sub-searches, run by the gateway: position → (index, body, skip reason).
    trees: dict[int, tuple[str | None, dict[str, Any], str | None]] = field(default_factory=dict)


def _opt(headers: Mapping[str, str], params: Mapping[str, str]) -> bool | None:
    """The request's explicit choice: True (rerank), False (don't) or None.

    ``?rerank=`` and the ``X-Rerank`` header take the same values (``_CHOICES``,
    any case); a bare ``?rerank`` means true, like ES's flags. Anything else is a
    400. The parameter wins over the header.
    """
    if OPT_PARAM in params:
        return _choice(params[OPT_PARAM] or "true", f"parameter [{OPT_PARAM}]")
    if OPT_HEADER in headers:
        return _choice(headers[OPT_HEADER], f"header [{OPT_HEADER}]")
    return None


def _choice(value: str, where: str) -> bool:
    choice = _CHOICES.get(value.strip().lower())
    if choice is None:
        allowed = ", ".join(f"[{v}]" for v in _CHOICES)
        raise ClientRequestError(
            "illegal_argument_exception",
            f"Failed to parse value [{value}] of {where} as only {allowed} are allowed.",
        )
    return choice


def _timeout_ms(option: Mapping[str, Any], headers: Mapping[str, str]) -> float | None:
    """A search's own rerank deadline in ms: ``ext.rerank.timeout_ms``, else the header."""
    value: object = option.get("timeout_ms")
    where = "[ext.rerank.timeout_ms]"
    if value is None and TIMEOUT_HEADER in headers:
        where = f"header [{TIMEOUT_HEADER}]"
        try:
            value = float(headers[TIMEOUT_HEADER])
        except ValueError:
            value = "unreadable"
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ClientRequestError(
            "illegal_argument_exception", f"{where} must be a positive number of milliseconds"
        )
    return float(value)


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip().lower()


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
        # Which fields an index's text is in, when none of the configured ones is mapped.
        self.index_fields = index_fields
        # A search may ask for its own deadline, up to this (SPEED__MAX_TIMEOUT_S).
        self.max_timeout_s = (speed or SpeedSettings.model_validate({})).max_timeout_s
        self.reranker = reranker  # the default model's
        self.settings = settings
        self.profiles = profiles or Profiles(settings, RelevanceSettings.model_validate({}))
        self.rerankers: dict[str, Reranker] = {}  # the other models', by name
        # ``retriever`` trees and the hybrid profile (gateway.retrievers).
        self.retrievers = RetrieverFlow(
            upstream,
            self.profiles,
            self._model,
            retrievers or RetrieverSettings.model_validate({}),
            embedder,
        )

    def _model(self, name: str) -> Reranker | None:
        return self.reranker if name == DEFAULT else self.rerankers.get(name)

    async def _plan(
        self,
        body: dict[str, Any],
        params: Mapping[str, str],
        index: str | None,
        arm: Arm | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[es_body.Plan | str, Profile]:
        option = es_body.rerank_option(body)
        profile = self.profiles.select(index, option.get("profile"))
        if arm is not None:  # an experiment variant may name its profile and window
            profile = self.profiles.named.get(arm.profile or "", profile)
            profile = replace(profile, window=arm.window or profile.window)
        asked_ms = _timeout_ms(option, headers or {})
        if asked_ms is not None:
            profile = replace(profile, timeout_s=min(asked_ms / 1000, self.max_timeout_s))
        p = es_body.plan(body, params, window=profile.window, fields=profile.document.read_fields)
        if isinstance(p, es_body.Plan) and self.index_fields and profile.document.template is None:
            fields = await self.index_fields.choose(index, profile.document.fields, headers or {})
            if fields != profile.document.fields:
                profile = replace(profile, document=replace(profile.document, fields=fields))
                p = es_body.plan(body, params, window=profile.window, fields=fields)
        return p, profile

    def _skip_reason(
        self, index: str | None, headers: Mapping[str, str], params: Mapping[str, str]
    ) -> str | None:
        choice = _opt(headers, params)
        if choice is False:
            return "opted_out"
        if not self.settings.enabled:
            return "disabled"
        if self.settings.opt_in and choice is not True:
            return "not_opted_in"
        if choice is not True and not path_allowed(index, self.settings.indices):
            return "index_not_configured"
        if self.reranker is None:
            return "model_not_ready"
        if "source" in params:
            return "unreadable_body"
        return None

    async def search(
        self,
        method: str,
        url: URL,
        index: str | None,
        headers: Mapping[str, str],
        body: bytes,
        *,
        arm: Arm | None = None,
    ) -> SearchResult:
        started = time.perf_counter()
        params = url.query
        done, body = await self._retriever(method, url, index, headers, body, arm=arm)
        if done is not None:
            return done
        reason = self._skip_reason(index, headers, params)
        if reason is None and arm is not None and not arm.rerank:
            reason = "experiment_control"
        parsed: dict[str, Any] | None = None
        if reason is None:
            if body.strip() and _media_type(headers) not in _JSON_TYPES:
                reason = "unreadable_body"
            else:
                parsed = es_body.load_object(body)
                reason = "unreadable_body" if parsed is None else None
        plan: es_body.Plan | str = reason or "unreadable_body"
        profile = self.profiles.default
        if reason is None and parsed is not None:
            plan, profile = await self._plan(parsed, params, index, arm, headers)
            if arm is not None and isinstance(plan, es_body.Plan) and plan.cursor is not None:
                plan = "paginated_by_cursor"  # an arm's page has no cursor order to continue
        budget = PairBudget(self.settings.max_request_pairs)
        if isinstance(plan, es_body.Plan) and not budget.fits(plan.window):
            plan = TOO_MANY_PAIRS
        out_headers = self.upstream.outgoing_headers(headers)
        if isinstance(plan, str):
            # Forward as sent (minus the gateway's own parameter and ext section).
            body = _without_gateway_ext(body, parsed, headers)
            # Unread by the gateway, the answer goes back as the cluster encoded it;
            # an experiment arm reads it (impressions), so that one is decoded.
            reply = await self.upstream.fetch(
                method, _forward_url(url, ()), out_headers, body or None, decode=arm is not None
            )
            return _verbatim(reply, plan)
        assert parsed is not None
        wide = es_body.widen(parsed, plan)
        if not body.strip():
            out_headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        method = "POST" if method == "GET" and not body else method
        forward = _forward_url(url, _MOVED)
        reply = await self.upstream.fetch(method, forward, out_headers, es_body.dump(wide))
        upstream_ms = (time.perf_counter() - t0) * 1000
        response = _json_object(reply) if 200 <= reply.status < 300 else None
        if response is None or not es_body.readable_hits(response):
            return _unread(reply, response, params)
        rerank = partial(self._rerank_one, profile=profile, budget=budget)
        if plan.cursor is not None:
            again = {"method": method, "path": forward, "headers": out_headers, "body": wide}
            serve = self._rerank_after(
                plan, response, started, upstream_ms, profile=profile, again=again, budget=budget
            )
        else:
            served = arm.serve(rerank, plan, response, started, upstream_ms) if arm else None
            serve = served or rerank(plan, response, started, upstream_ms)
        merged, status, why, rerank_ms = await serve
        if isinstance(merged, Reply):  # the cluster refused the page beyond the window
            return _verbatim(merged, "upstream_status")
        merged = _filtered(merged, from_params(params))
        result = _json_result(reply, merged, status, why, pretty=es_body.wants_pretty(params))
        result.timings_ms = {"upstream": upstream_ms, "rerank": rerank_ms}
        return result

    async def _retriever(
        self,
        method: str,
        url: URL,
        index: str | None,
        headers: Mapping[str, str],
        body: bytes,
        *,
        arm: Arm | None,
    ) -> tuple[SearchResult | None, bytes]:
        """A ``retriever`` search run by the gateway (README "Retrievers"), or None and the
        body to go on with: as sent (no retriever), or the plain search a leaf root is."""
        has_hybrid = self.retrievers.hybrid and arm is None  # an arm's search stays plain
        if not (has_hybrid or b"retriever" in body):
            return None, body
        parsed = es_body.load_object(body) if _media_type(headers) in (*_JSON_TYPES, "") else None
        if parsed is None:
            return None, body
        flow, params = self.retrievers, url.query
        if "retriever" not in parsed:
            found = await self._hybrid(url, index, headers, parsed) if has_hybrid else None
            return found, body
        if flow.passes_through:
            out_headers = self.upstream.outgoing_headers(headers)
            reply = await self.upstream.fetch(
                method, _forward_url(url, ()), out_headers, body, decode=arm is not None
            )
            return _verbatim(reply, "retriever_on_cluster"), body
        tree = flow.read(parsed, params)
        plain = await flow.plain_body(tree, parsed)
        if plain is not None:
            return None, es_body.dump(plain)
        skip = self._skip_reason(index, headers, params)
        if skip is None and arm is not None and not arm.rerank:
            skip = "experiment_control"
        return await self._run_tree(tree, parsed, url, index, headers, skip=skip), body

    async def _hybrid(
        self, url: URL, index: str | None, headers: Mapping[str, str], parsed: dict[str, Any]
    ) -> SearchResult | None:
        """A plain search under a profile with a hybrid first stage, run as its tree; None
        (the plain search) when it is not reranked, has no embedder, or the embedder fails."""
        if self.retrievers.embedder is None or self._skip_reason(index, headers, url.query):
            return None
        plan, profile = await self._plan(parsed, url.query, index, headers=headers)
        if not isinstance(plan, es_body.Plan) or profile.hybrid is None:
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
            return await self._run_tree(tree, parsed, url, index, headers, skip=None)
        except GatewayError as exc:
            log.warning("hybrid first stage failed (%s): the plain search", type(exc).__name__)
            return None

    async def _run_tree(
        self,
        tree: Tree,
        parsed: dict[str, Any],
        url: URL,
        index: str | None,
        headers: Mapping[str, str],
        *,
        skip: str | None,
    ) -> SearchResult:
        ran = await self.retrievers.execute(
            tree,
            parsed,
            path=_forward_url(url, _MOVED),
            index=index,
            headers=self.upstream.outgoing_headers(headers),
            skip=skip,
            budget=PairBudget(self.settings.max_request_pairs),
        )
        if ran.answer is None:
            assert ran.refused is not None
            return _verbatim(ran.refused, "upstream_status")
        answer = _filtered(ran.answer, from_params(url.query))
        pretty = es_body.wants_pretty(url.query)
        out = es_body.dump_pretty(answer) if pretty else es_body.dump(answer)
        kind = CIMultiDict({"Content-Type": "application/json"})
        return SearchResult(200, kind, out, ran.rerank, ran.reason, timings_ms=ran.timings_ms)

    async def _rerank_after(
        self,
        plan: es_body.Plan,
        response: dict[str, Any],
        started: float,
        upstream_ms: float,
        *,
        profile: Profile,
        again: dict[str, Any],
        budget: PairBudget,
    ) -> tuple[dict[str, Any] | Reply, str, str | None, float]:
        """A ``search_after`` page: the reranked order (window, then beyond) after the cursor.

        ``again`` is the upstream request made (method, path, headers, body), for the page
        the cluster serves past the window."""
        assert plan.cursor is not None and plan.orders is not None
        full = replace(plan, from_=0, size=plan.fetch, cursor=None)
        merged, status, why, rerank_ms = await self._rerank_one(
            full, response, started, upstream_ms, profile, budget=budget
        )
        section = merged["hits"]
        ranked: list[dict[str, Any]] = section["hits"]
        start = cursors.position_after(ranked, plan.cursor, plan.orders)
        sent: list[dict[str, Any]] = (response.get("hits") or {}).get("hits") or []
        exhausted = len(sent) < plan.fetch
        if status != "skipped" and (start + plan.size <= len(ranked) or exhausted):
            section["hits"] = ranked[start : start + plan.size]
            return merged, status, why, rerank_ms
        # Past the window (or not reranked): the cluster goes on from its own cursor.
        shift = cursors.shift_of(ranked, sent, plan.window) if status != "skipped" else 0
        refused: list[Reply] = []

        async def fetch(after: list[Any], size: int) -> list[dict[str, Any]] | None:
            body = {**again["body"], "size": size, "search_after": after}
            reply = await self.upstream.fetch(
                again["method"], again["path"], again["headers"], es_body.dump(body)
            )
            page = _json_object(reply) if 200 <= reply.status < 300 else None
            if page is None or not es_body.readable_hits(page):
                refused.append(reply)
                return None
            return [dict(h) for h in (page.get("hits") or {}).get("hits") or []]

        hits = await cursors.beyond_window(fetch, plan.cursor, plan.orders, shift, plan.size)
        if refused:
            return refused[0], status, why, rerank_ms
        for hit in hits:
            es_body.strip_added(hit, plan)
        section["hits"] = hits
        return merged, status, why, rerank_ms

    async def _rerank_one(
        self,
        plan: es_body.Plan,
        response: dict[str, Any],
        started: float,
        upstream_ms: float,
        profile: Profile | None = None,
        *,
        budget: PairBudget | None = None,
    ) -> tuple[dict[str, Any], str, str | None, float]:
        profile = profile or self.profiles.default
        reranker = self.reranker if profile.model == DEFAULT else self.rerankers.get(profile.model)
        if reranker is None:
            gateway_ms = _gateway_ms(started, upstream_ms)
            page = es_body.passthrough_page(response, plan, gateway_ms)
            return page, "skipped", "model_not_ready", 0.0
        hits = (response.get("hits") or {}).get("hits") or []
        t0 = time.perf_counter()
        window = es_body.text_hits(hits[: plan.window], plan)
        with tracing.stage(
            "rerank", window=plan.window, hits=len(window), model=profile.model
        ) as span:
            scored = await relevance.score_window(
                reranker, profile, plan.query, window, explain=plan.explain, budget=budget
            )
            span.set(outcome=scored.status, reason=scored.reason)
        rerank_ms = (time.perf_counter() - t0) * 1000
        gateway_ms = _gateway_ms(started, upstream_ms)
        if scored.status == "skipped":
            merged = es_body.passthrough_page(response, plan, gateway_ms)
            return merged, "skipped", scored.reason, rerank_ms
        merged = es_body.merge(
            response,
            plan,
            scored.scores,
            scored.has_text,
            gateway_ms,
            dropped=scored.dropped,
            explanations=scored.explanations,
        )
        if scored.status == "full" and not all(scored.has_text):
            return merged, "partial", "no_doc_text", rerank_ms
        return merged, scored.status, scored.reason, rerank_ms

    @staticmethod
    def _read_lines(body: bytes, budget: PairBudget) -> list[dict[str, Any]] | str:
        """A ``_msearch`` body's lines, or why it is not reranked: unreadable, or more
        sub-searches than the request's pair budget (counted before anything is parsed)."""
        if not budget.fits((body.count(b"\n") + 1) // 2):  # each reranked one takes a pair
            return TOO_MANY_PAIRS
        lines = es_body.ndjson_objects(body)
        return "unreadable_body" if lines is None else lines

    async def _read_subs(
        self,
        body: bytes,
        index: str | None,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        budget: PairBudget,
        *,
        skip: str | None = None,
    ) -> _SubSearches | str:
        """A ``_msearch`` body read (in a thread: Python work in proportion to the body, so
        the event loop keeps answering) and planned, or why it is not reranked: unreadable,
        or more sub-searches (or their windows together) than the request's pair budget.
        ``skip``: why none is reranked (its retriever sub-searches still run here)."""
        lines = await asyncio.to_thread(self._read_lines, body, budget)
        if isinstance(lines, str):
            return lines
        subs = await self._plan_subs(lines, index, headers, params, skip)
        windows = sum(p.window for p in subs.plans if isinstance(p, es_body.Plan))
        return subs if budget.fits(windows) else TOO_MANY_PAIRS

    async def _plan_subs(
        self,
        lines: list[dict[str, Any]],
        index: str | None,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        skip: str | None = None,
    ) -> _SubSearches:
        """Plan each sub-search of a ``_msearch``; the body lines to send upstream.

        A sub-search with a bad ``ext.rerank`` gets its error in its own slot (as the
        cluster answers a sub-search it cannot parse) and is not sent; the others run.
        """
        out = _SubSearches()
        opted_in = _opt(headers, params) is True
        for i, (head, sub) in enumerate(zip(lines[0::2], lines[1::2], strict=True)):
            sub_index = head.get("index", index)
            if isinstance(sub_index, list):
                sub_index = ",".join(str(x) for x in sub_index)
            p: es_body.Plan | str = skip or "index_not_configured"
            profile = self.profiles.default
            allowed = skip is None and (opted_in or path_allowed(sub_index, self.settings.indices))
            if "retriever" in sub and not self.retrievers.passes_through:
                out.trees[i] = (sub_index, sub, None if allowed else str(p))
                p = "retriever"
            elif allowed:
                try:
                    p, profile = await self._plan(sub, {}, sub_index, headers=headers)
                    if isinstance(p, es_body.Plan) and p.cursor is not None:
                        p = "paginated_by_cursor"  # sent as is: the cluster's own page
                except ClientRequestError as exc:
                    out.refused[i] = exc.body()
                    p = "invalid_option"
            out.plans.append(p)
            out.profiles.append(profile)
            if i in out.refused or i in out.trees:
                continue
            wide = es_body.widen(sub, p) if isinstance(p, es_body.Plan) else sub
            out.lines += [es_body.dump(head), es_body.dump(es_body.strip_gateway_ext(wide))]
        return out

    async def _trees(
        self, subs: _SubSearches, headers: Mapping[str, str], budget: PairBudget
    ) -> dict[int, tuple[dict[str, Any], str, str | None]]:
        """The retriever sub-searches of a ``_msearch``, run concurrently."""
        jobs = [_tree_answer(self.retrievers, sub, headers, budget) for sub in subs.trees.values()]
        return dict(zip(subs.trees, await asyncio.gather(*jobs), strict=True))

    async def msearch(
        self,
        method: str,
        url: URL,
        index: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> SearchResult:
        """Each sub-search of a ``_msearch`` is treated like a ``_search``."""
        started = time.perf_counter()
        params = url.query
        out_headers = self.upstream.outgoing_headers(headers)
        budget = PairBudget(self.settings.max_request_pairs)
        reason = self._skip_reason(index, headers, params)
        readable = _media_type(headers) in _NDJSON_TYPES
        if reason is None and not readable:
            reason = "unreadable_body"
        # Not reranked, but with retriever sub-searches: those still run in the gateway.
        with_trees = readable and b"retriever" in body and not self.retrievers.passes_through
        skip = reason if with_trees and reason in _TREE_SKIPS else None
        subs = (
            await self._read_subs(body, index, headers, params, budget, skip=skip)
            if reason is None or skip is not None
            else reason
        )
        if isinstance(subs, str):
            body = await asyncio.to_thread(es_body.msearch_without_gateway_ext, body)
            reply = await self.upstream.fetch(
                method, _forward_url(url, ()), out_headers, body, decode=False
            )
            return _verbatim(reply, subs)
        t0 = time.perf_counter()
        if subs.lines:
            reply = await self.upstream.fetch(
                method,
                _forward_url(url, ("filter_path",)),
                out_headers,
                b"\n".join(subs.lines) + b"\n",
            )
        else:  # every sub-search refused: nothing to ask the cluster
            reply = Reply(200, CIMultiDict({"Content-Type": "application/json"}), b'{"took":0}')
        upstream_ms = (time.perf_counter() - t0) * 1000
        response = _json_object(reply) if 200 <= reply.status < 300 else None
        sent = response.get("responses", []) if response is not None else None
        if response is None or not isinstance(sent, list) or len(sent) * 2 != len(subs.lines):
            return _unread(reply, response, params)
        answers = iter(sent)
        trees = await self._trees(subs, out_headers, budget)
        responses = [
            subs.refused.get(i) or (trees[i][0] if i in trees else next(answers))
            for i in range(len(subs.plans))
        ]
        response["responses"] = responses
        statuses = [trees[i][1] if i in trees else "skipped" for i in range(len(subs.plans))]
        reasons = [trees[i][2] if i in trees else None for i in range(len(subs.plans))]
        # The sub-searches are scored together: their pairs share model batches, and
        # each one's deadline runs alongside the others' rather than after them.
        jobs: dict[int, Awaitable[tuple[dict[str, Any], str, str | None, float]]] = {}
        for i, p in enumerate(subs.plans):
            sub_resp = responses[i]
            if i in trees:
                continue
            if not isinstance(p, es_body.Plan):
                reasons[i] = p
            elif (
                not isinstance(sub_resp, dict)
                or "error" in sub_resp
                or not es_body.readable_hits(sub_resp)
            ):
                reasons[i] = "upstream_status"
            else:
                jobs[i] = self._rerank_one(
                    p, sub_resp, started, upstream_ms, subs.profiles[i], budget=budget
                )
        for i, (merged, status, why, _) in zip(
            jobs, await asyncio.gather(*jobs.values()), strict=True
        ):
            responses[i] = merged
            statuses[i], reasons[i] = status, why
        overall = _overall(statuses)
        why = ",".join(sorted({r for r in reasons if r})) or None
        timings = {"upstream": upstream_ms}
        response = _filtered(response, from_params(params))
        result = _json_result(
            reply, response, overall, why, pretty=es_body.wants_pretty(params), timings=timings
        )
        result.headers[EACH_HEADER] = ",".join(statuses)
        result.headers[EACH_REASON_HEADER] = ",".join(r or "-" for r in reasons)
        return result


async def _tree_answer(
    flow: RetrieverFlow,
    sub: tuple[str | None, dict[str, Any], str | None],
    headers: Mapping[str, str],
    budget: PairBudget,
) -> tuple[dict[str, Any], str, str | None]:
    """One retriever sub-search of a ``_msearch``: its slot of ``responses``, rerank status."""
    index, body, skip = sub
    try:
        tree = flow.read(body, {})
        ran = await flow.execute(
            tree,
            body,
            path=f"/{index}/_search" if index else "/_search",
            index=index,
            headers=headers,
            skip=skip,
            budget=budget,
        )
    except ClientRequestError as exc:
        return exc.body(), "skipped", "invalid_option"
    if ran.answer is None:
        assert ran.refused is not None
        refused = _json_object(ran.refused) or {"status": ran.refused.status}
        return refused, "skipped", "upstream_status"
    return {**ran.answer, "status": 200}, ran.rerank, ran.reason


def _unread(
    reply: Reply, response: dict[str, Any] | None, params: Mapping[str, str]
) -> SearchResult:
    """A cluster answer the gateway does not rerank: as it came (errors are never trimmed,
    as in Elasticsearch), or a 2xx JSON object trimmed by the client's ``filter_path``."""
    keep = from_params(params)
    if response is None or keep is None:
        return _verbatim(reply, "upstream_status" if reply.status >= 300 else "upstream_body")
    pretty = es_body.wants_pretty(params)
    return _json_result(reply, keep.apply(response), "skipped", "upstream_body", pretty=pretty)


def _filtered(value: dict[str, Any], keep: FilterPath | None) -> dict[str, Any]:
    """The answer trimmed by the client's ``filter_path`` (the cluster was asked without it)."""
    return value if keep is None else keep.apply(value)


def _overall(statuses: list[str]) -> str:
    if statuses and all(s == "full" for s in statuses):
        return "full"
    if any(s in ("full", "partial") for s in statuses):
        return "partial"
    return "skipped"


def _gateway_ms(started: float, upstream_ms: float) -> int:
    return max(round((time.perf_counter() - started) * 1000 - upstream_ms), 0)


def _forward_url(url: URL, moved: tuple[str, ...]) -> str:
    """Path and query for upstream: the gateway's own parameter (and ``moved`` ones) removed."""
    drop = {OPT_PARAM, *moved}
    if not any(key in url.query for key in drop):
        return url.raw_path_qs
    # The other parameters keep their bytes exactly (no re-encoding of %20 as +).
    kept = [
        part
        for part in url.raw_query_string.split("&")
        if part and unquote_plus(part.split("=", 1)[0]) not in drop
    ]
    return f"{url.raw_path}?{'&'.join(kept)}" if kept else url.raw_path


def _json_object(reply: Reply) -> dict[str, Any] | None:
    try:
        value = json.loads(reply.body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _verbatim(reply: Reply, reason: str) -> SearchResult:
    return SearchResult(reply.status, reply.headers, reply.body, "skipped", reason, verbatim=True)


def _json_result(
    reply: Reply,
    value: dict[str, Any],
    status: str,
    reason: str | None,
    *,
    pretty: bool = False,
    timings: dict[str, float] | None = None,
) -> SearchResult:
    body = es_body.dump_pretty(value) if pretty else es_body.dump(value)
    return SearchResult(reply.status, reply.headers, body, status, reason, timings_ms=timings or {})


def _without_gateway_ext(
    body: bytes, parsed: dict[str, Any] | None, headers: Mapping[str, str]
) -> bytes:
    """A skipped search's body minus ``ext.rerank`` (the cluster rejects it); else as sent."""
    if parsed is None and not es_body.may_name_rerank(body):
        return body
    if parsed is None and _media_type(headers) in (*_JSON_TYPES, ""):
        parsed = es_body.load_object(body)
    if parsed is None or not es_body.has_gateway_ext(parsed):
        return body
    return es_body.dump(es_body.strip_gateway_ext(parsed))
