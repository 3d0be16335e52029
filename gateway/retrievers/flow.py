"""A retriever search end to end: parse, run (or pass through), shape; what ``search.trees`` calls.

- ``run = cluster`` (RETRIEVERS__RUN) and an Elasticsearch upstream: the body goes as
  sent (the cluster runs its own tree: for a cluster with the licence for it).
- A root ``standard`` / ``knn`` retriever is a plain search: it is rewritten into one
  (``query`` + ``min_score`` / a ``knn`` section or OpenSearch ``knn`` query) and the
  search goes on like any other, reranked or not as usual.
- ``rrf`` / ``linear`` / ``text_similarity_reranker`` roots run here (``run``);
  each ``text_similarity_reranker`` scores through its profile's relevance path, and
  falls back to its child's order when the reranker is late, overloaded, broken or not
  allowed for this search (Elasticsearch fails the search instead).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.errors import ClientRequestError
from gateway.rerank import relevance
from gateway.rerank.budget import PairBudget
from gateway.rerank.fusion import FusionSpec
from gateway.rerank.profiles import DEFAULT, Profile, Profiles
from gateway.rerank.reranker import Reason, Reranker, Status
from gateway.retrievers import parse, run, shape
from gateway.retrievers.embed import QueryEmbedder
from gateway.retrievers.parse import Knn, Rerank, Standard, Tree
from gateway.settings import RetrieverSettings
from gateway.upstream.client import Reply, Upstream

ES_DEFAULT_INFERENCE = ".rerank-v1-elasticsearch"  # ES's default inference_id: the profile's


class InferenceNotFound(ClientRequestError):
    status = 404

    def __init__(self, inference_id: str) -> None:
        super().__init__(
            "resource_not_found_exception", f"Inference endpoint not found [{inference_id}]"
        )


@dataclass(frozen=True, slots=True)
class TreeSearch:
    """A compound tree to run: the body, where it goes, and the request's limits.

    ``skip``: why its rerankers may not score (their fallback: the child's order);
    ``added``: the rerankers' text fields the hits would not bring back as the client
    asked them (the search stage decides: ``Planner.fields_to_ask``), asked for in
    ``fields`` and taken out of the page's hits again; ``shadowed``: those whose ``fields``
    entry is the client's own (``docvalue_fields``, ``script_fields``): their text is read
    from ``_source`` only."""

    tree: Tree
    body: Mapping[str, Any]
    path: str
    index: str | None
    headers: Mapping[str, str]
    skip: Reason | None
    budget: PairBudget
    added: tuple[str, ...] = ()
    shadowed: tuple[str, ...] = ()


@dataclass(slots=True)
class Ran:
    """A retriever search's outcome: the answer (or the cluster's refusal) and rerank status."""

    answer: dict[str, Any] | None
    refused: Reply | None
    rerank: Status
    reasons: tuple[Reason, ...]  # its rerankers' (the header lists each once)
    timings_ms: dict[str, float]


def _overall(statuses: list[tuple[Status, Reason | None]]) -> tuple[Status, tuple[Reason, ...]]:
    if not statuses:
        return "skipped", ("no_reranker_in_tree",)
    kinds = {s for s, _ in statuses}
    reasons = tuple(sorted({r for _, r in statuses if r}))
    status: Status = (
        "full" if kinds == {"full"} else "skipped" if kinds == {"skipped"} else "partial"
    )
    return status, reasons


class RetrieverFlow:
    def __init__(
        self,
        upstream: Upstream,
        profiles: Profiles,
        models: Callable[[str], Reranker | None],
        settings: RetrieverSettings,
        embedder: QueryEmbedder | None = None,
    ) -> None:
        self.upstream = upstream
        self.profiles = profiles
        self.models = models  # model name → its reranker, when loaded
        self.settings = settings
        self.embedder = embedder

    @property
    def hybrid(self) -> bool:
        """Whether some profile has a hybrid first stage (plain searches may become trees)."""
        return any(p.hybrid is not None for p in self.profiles.named.values())

    @property
    def passes_through(self) -> bool:
        return self.settings.run == "cluster" and self.upstream.flavor == "elasticsearch"

    def read(self, body: Mapping[str, Any], params: Mapping[str, str]) -> Tree:
        tree = parse.parse(body, params)
        found = len(parse.leaves(tree.root))
        if found > self.settings.max_leaves:
            raise ClientRequestError(
                "illegal_argument_exception",
                f"[retriever] has {found} leaf retrievers, more than the gateway's"
                f" limit of {self.settings.max_leaves} (RETRIEVERS__MAX_LEAVES)",
            )
        return tree

    async def plain_body(self, tree: Tree, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """A root ``standard`` / ``knn`` as the plain search it is; None for other roots."""
        root = tree.root
        if not isinstance(root, Standard | Knn):
            return None
        out = {k: v for k, v in body.items() if k != "retriever"}
        if isinstance(root, Standard):
            out["query"] = run.standard_query(root)
            if root.min_score is not None:
                out["min_score"] = root.min_score
            return out
        ctx = self._context("", None, {}, body, _no_scorer)
        leaf = await run.with_vectors(ctx, root)
        assert isinstance(leaf, Knn)
        clause = run.knn_clause(ctx, leaf, tree.size)
        if self.upstream.flavor == "opensearch":
            out["query"] = {"knn": clause}
        else:
            out["knn"] = clause
        return out

    def _context(
        self,
        path: str,
        index: str | None,
        headers: Mapping[str, str],
        body: Mapping[str, Any],
        scorer: run.Scorer,
    ) -> run.Context:
        options = {k: body[k] for k in run.HIT_OPTIONS if k in body}
        flavor = "opensearch" if self.upstream.flavor == "opensearch" else "elasticsearch"
        return run.Context(
            self.upstream, flavor, path, index, headers, options, self.embedder, scorer
        )

    async def execute(self, search: TreeSearch) -> Ran:
        """Run a compound tree."""
        started = time.perf_counter()
        tree, body, index, skip, budget = (
            search.tree,
            search.body,
            search.index,
            search.skip,
            search.budget,
        )

        async def scorer(node: Rerank, hits: list[dict[str, Any]]) -> run.Scored:
            if skip is not None:
                return _unscored(hits, skip)
            if search.shadowed:  # the text as the rerankers read it; the page keeps all
                hits = [_without(hit, search.shadowed) for hit in hits]
            return await self._score(node, hits, index, budget)

        ctx = self._context(search.path, index, search.headers, body, scorer)
        added = search.added
        if added:  # the rerankers' text, where the client's _source may leave it out
            asked = body.get("fields")
            ctx.hit_options["fields"] = [*(asked if isinstance(asked, list) else []), *added]
        try:
            root = await run.with_vectors(ctx, await run.expand(ctx, tree.root))
            wants_union = body.get("track_total_hits") is not False or "aggs" in body
            union = run.union_body(ctx, root, body)
            # A root leaf (``_msearch``: not rewritten) is asked for the page's hits.
            want = (
                root.window if isinstance(root, parse.Fusion | Rerank) else tree.from_ + tree.size
            )
            results = await asyncio.gather(
                run.run_node(ctx, root, want),
                *([run.search(ctx, union)] if wants_union else []),
            )
        except run.LeafRefused as refused:
            return Ran(None, refused.reply, "skipped", ("upstream_status",), {})
        ranked = results[0]
        assert isinstance(ranked, list)
        ranked = [_without(hit, added) for hit in ranked] if added else ranked
        union_answer = results[1] if len(results) > 1 else None
        took = round((time.perf_counter() - started) * 1000)
        answer = shape.answer(
            root,
            ranked,
            from_=tree.from_,
            size=tree.size,
            union=union_answer if isinstance(union_answer, dict) else None,
            took_ms=took,
            shards=ctx.shards,
            timed_out=ctx.timed_out,
        )
        status, reasons = _overall(ctx.statuses)
        return Ran(answer, None, status, reasons, {"retriever": float(took)})

    def reranked_fields(self, tree: Tree, index: str | None) -> tuple[str, ...]:
        """The text fields the tree's rerankers read (each its ``field``, else its
        profile's). An unknown ``inference_id`` adds none: its reranker answers for it
        when it comes to score (a 404, as before any text is fetched)."""
        wanted: list[str] = []
        for rerank in _rerankers(tree.root):
            if rerank.field is not None:
                wanted.append(rerank.field)
                continue
            try:
                wanted += self._profile(rerank.inference_id, index).document.read_fields
            except InferenceNotFound:
                continue
        return tuple(dict.fromkeys(wanted))

    def _profile(self, inference_id: str | None, index: str | None) -> Profile:
        if inference_id in (None, DEFAULT, ES_DEFAULT_INFERENCE):
            return self.profiles.select(index)
        assert inference_id is not None
        if inference_id in self.profiles.named:
            return self.profiles.select(index, inference_id)
        if self.models(inference_id) is not None:
            return replace(self.profiles.select(index), model=inference_id)
        raise InferenceNotFound(inference_id)

    async def _score(
        self, node: Rerank, hits: list[dict[str, Any]], index: str | None, budget: PairBudget
    ) -> run.Scored:
        profile = self._profile(node.inference_id, index)
        reranker = self.models(profile.model)
        if reranker is None:
            return _unscored(hits, "model_not_ready")
        if node.field is not None:  # text_similarity_reranker: that field, its min_score
            document = replace(profile.document, fields=(node.field,), template=None)
            fusion = FusionSpec(use="replace", min_score=node.min_score)
            profile = replace(profile, document=document, fusion=fusion)
        if node.chunks is not None:
            tokens = node.chunks.chunk_words or profile.chunking.tokens
            overlap = min(node.chunks.overlap or 0, tokens - 1)
            chunking = replace(
                profile.chunking, strategy="chunk", pooling="max", tokens=tokens, overlap=overlap
            )
            profile = replace(profile, chunking=chunking)
        scored = await relevance.score_window(reranker, profile, node.text, hits, budget=budget)
        return scored.scores, scored.has_text, scored.dropped, scored.status, scored.reason


async def _no_scorer(node: Rerank, hits: list[dict[str, Any]]) -> run.Scored:
    return _unscored(hits, "no_reranker_in_tree")


def _rerankers(node: parse.Node) -> list[Rerank]:
    if isinstance(node, Rerank):
        return [node, *_rerankers(node.child)]
    if isinstance(node, parse.Fusion):
        return [r for c in node.children for r in _rerankers(c.node)]
    return []


def _without(hit: dict[str, Any], added: tuple[str, ...]) -> dict[str, Any]:
    fields = hit.get("fields")
    if not isinstance(fields, dict):
        return hit
    kept = {k: v for k, v in fields.items() if k not in added}
    out = {k: v for k, v in hit.items() if k != "fields"}
    return {**out, "fields": kept} if kept else out


def _unscored(hits: list[dict[str, Any]], reason: Reason) -> run.Scored:
    n = len(hits)
    return [None] * n, [True] * n, [False] * n, "skipped", reason
