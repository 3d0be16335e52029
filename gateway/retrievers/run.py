"""Run a retriever tree: each leaf is its own search on the cluster, fusion and reranking here.

::

    leaf      standard → ``query`` (+ filters as ``bool.filter``, ``min_score``);
              knn → ES ``knn`` section, or OpenSearch's ``knn`` query; a
              ``query_vector_builder`` asks the ``QueryEmbedder``
    fusion    the children of an ``rrf`` / ``linear`` run concurrently, each asked for
              ``rank_window_size`` hits, then ``fuse.rrf`` / ``fuse.linear``
    rerank    the child's top ``rank_window_size`` hits → the ``Scorer`` (the profile's
              relevance path: cache, batcher, deadline); on failure the child's order
    union     one ``size: 0`` search over every leaf (``bool.should`` + ``knn``), run
              alongside: ``hits.total`` and ``aggregations`` of the union of the leaves,
              as Elasticsearch defines them for compound retrievers

A leaf the cluster refuses fails the search with the cluster's own answer.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import math
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.errors import ClientRequestError
from gateway.es import body as es_body
from gateway.rerank.fusion import reorder
from gateway.rerank.reranker import Reason, Status
from gateway.retrievers import fuse, parse
from gateway.retrievers.embed import QueryEmbedder
from gateway.retrievers.parse import Child, Fusion, Knn, Node, Rerank, Standard
from gateway.upstream.client import Reply, Upstream

# What a reranker node gets back: per hit score (None: unscored), text, dropped; status.
Scored = tuple[list[float | None], list[bool], list[bool], Status, Reason | None]
Scorer = Callable[[Rerank, list[dict[str, Any]]], Awaitable[Scored]]
_VECTOR_TYPES = ("dense_vector", "knn_vector")
# Hit options of the client's body that every leaf search carries.
HIT_OPTIONS = (
    "_source",
    "fields",
    "stored_fields",
    "docvalue_fields",
    "script_fields",
    "highlight",
    "explain",
    "version",
    "seq_no_primary_term",
    "track_scores",
    "timeout",
)


class LeafRefused(Exception):
    """The cluster answered a leaf (or the union / mapping request) with an error."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


@dataclass
class Context:
    upstream: Upstream
    flavor: str  # elasticsearch | opensearch
    path: str  # /{index}/_search (query string kept)
    index: str | None
    headers: Mapping[str, str]
    hit_options: dict[str, Any]
    embedder: QueryEmbedder | None
    scorer: Scorer
    statuses: list[tuple[Status, Reason | None]] = field(default_factory=list)  # each reranker's
    shards: dict[str, Any] | None = None
    timed_out: bool = False


def _key(hit: Mapping[str, Any]) -> Hashable:
    return (hit.get("_index"), hit.get("_id"))


async def search(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    headers = {**ctx.headers, "Content-Type": "application/json"}
    reply = await ctx.upstream.fetch("POST", ctx.path, headers, es_body.dump(body))
    try:
        value = json.loads(reply.body) if 200 <= reply.status < 300 else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or not es_body.readable_hits(value):
        raise LeafRefused(reply)
    if value.get("timed_out") is True:
        ctx.timed_out = True
    if ctx.shards is None and isinstance(value.get("_shards"), dict):
        ctx.shards = value["_shards"]
    return value


def standard_query(leaf: Standard) -> dict[str, Any]:
    base = leaf.query or {"match_all": {}}
    if not leaf.filters:
        return base
    return {"bool": {"must": [base], "filter": list(leaf.filters)}}


async def with_vectors(ctx: Context, node: Node) -> Node:
    """Every ``query_vector_builder`` of the tree answered, in one call to the embedder."""
    texts = sorted(
        {leaf.text for leaf in parse.leaves(node) if isinstance(leaf, Knn) and leaf.text}
    )
    if not texts:
        return node
    if ctx.embedder is None:
        raise ClientRequestError(
            "illegal_argument_exception",
            "[knn] [query_vector_builder] needs the gateway's query embedder, none is configured",
        )
    found = await ctx.embedder.embed(texts)
    vectors = {t: tuple(float(x) for x in v) for t, v in zip(texts, found, strict=True)}
    return _set_vectors(node, vectors)


def _set_vectors(node: Node, vectors: Mapping[str, tuple[float, ...]]) -> Node:
    if isinstance(node, Knn):
        return node if node.text is None else replace(node, vector=vectors[node.text])
    if isinstance(node, Rerank):
        return replace(node, child=_set_vectors(node.child, vectors))
    if isinstance(node, Fusion):
        kids = tuple(replace(c, node=_set_vectors(c.node, vectors)) for c in node.children)
        return replace(node, children=kids)
    return node


def knn_clause(ctx: Context, leaf: Knn, want: int) -> dict[str, Any]:
    """The leaf in the cluster's own words: an ES ``knn`` section or an OpenSearch query."""
    assert leaf.vector is not None, "with_vectors first"
    vector = list(leaf.vector)
    k = leaf.k or want
    if ctx.flavor == "opensearch":
        if leaf.similarity is not None:
            raise ClientRequestError(
                "illegal_argument_exception",
                "[knn] [similarity] has no OpenSearch equivalent the gateway can send",
            )
        spec: dict[str, Any] = {"vector": vector, "k": k}
        if leaf.filters:
            spec["filter"] = {"bool": {"filter": list(leaf.filters)}}
        return {leaf.field: spec}
    section: dict[str, Any] = {
        "field": leaf.field,
        "query_vector": vector,
        "k": k,
        "num_candidates": leaf.num_candidates or min(max(k, math.ceil(1.5 * k)), 10_000),
    }
    if leaf.filters:
        section["filter"] = list(leaf.filters)
    if leaf.similarity is not None:
        section["similarity"] = leaf.similarity
    return section


async def _leaf_body(ctx: Context, leaf: Standard | Knn, want: int) -> dict[str, Any]:
    body: dict[str, Any] = {**ctx.hit_options, "size": want, "track_total_hits": False}
    if isinstance(leaf, Standard):
        body["query"] = standard_query(leaf)
        if leaf.min_score is not None:
            body["min_score"] = leaf.min_score
        return body
    clause = knn_clause(ctx, leaf, want)
    if ctx.flavor == "opensearch":
        body["query"] = {"knn": clause}
    else:
        body["knn"] = clause
    return body


async def run_node(ctx: Context, node: Node, want: int) -> list[dict[str, Any]]:
    """The node's ranked hits (best first, ``_score`` set), at most ``want``."""
    if isinstance(node, Standard | Knn):
        answer = await search(ctx, await _leaf_body(ctx, node, want))
        hits = (answer.get("hits") or {}).get("hits") or []
        return [dict(h) for h in hits][:want]
    if isinstance(node, Rerank):
        return (await _rerank(ctx, node))[:want]
    return (await _fusion(ctx, node))[:want]


async def _fusion(ctx: Context, node: Fusion) -> list[dict[str, Any]]:
    assert node.multi is None, "expanded before running"
    lists = await asyncio.gather(*(run_node(ctx, c.node, node.window) for c in node.children))
    by_key: dict[Hashable, dict[str, Any]] = {}
    pairs = []
    for hits in lists:
        for hit in hits:
            by_key.setdefault(_key(hit), hit)
        pairs.append([(_key(h), _score(h)) for h in hits])
    if node.kind == "rrf":
        ranked = fuse.rrf(pairs, node.rank_constant, node.window)
        if node.min_score is not None:
            ranked = [r for r in ranked if r.score >= node.min_score]
    else:
        weights = [c.weight for c in node.children]
        normalizers = [c.normalizer for c in node.children]
        ranked = fuse.linear(pairs, weights, normalizers, node.window, node.min_score)
    return [{**by_key[r.key], "_score": r.score} for r in ranked]


def _score(hit: Mapping[str, Any]) -> float | None:
    value = hit.get("_score")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def _rerank(ctx: Context, node: Rerank) -> list[dict[str, Any]]:
    hits = await run_node(ctx, node.child, node.window)
    scores, has_text, dropped, status, reason = await ctx.scorer(node, hits)
    ctx.statuses.append((status, reason))
    if status == "skipped":
        return hits  # the fallback: the first stage's order (ES would fail the search)
    out = []
    for i in reorder(scores, has_text):
        if dropped[i]:
            continue
        score = scores[i]
        out.append({**hits[i], "_score": score} if score is not None else hits[i])
    return out


def union_body(ctx: Context, root: Node, body: Mapping[str, Any]) -> dict[str, Any]:
    """One ``size: 0`` search matching what any leaf matches: totals and aggregations."""
    should: list[dict[str, Any]] = []
    knn: list[dict[str, Any]] = []
    for leaf in parse.leaves(root):
        if isinstance(leaf, Standard):
            should.append(standard_query(leaf))
        elif ctx.flavor == "opensearch":
            should.append({"knn": knn_clause(ctx, leaf, leaf.k or parse.DEFAULT_WINDOW)})
        else:
            knn.append(knn_clause(ctx, leaf, leaf.k or parse.DEFAULT_WINDOW))
    out: dict[str, Any] = {"size": 0}
    for key in ("aggs", "aggregations", "track_total_hits", "runtime_mappings", "timeout"):
        if key in body:
            out[key] = body[key]
    if should:
        out["query"] = {"bool": {"should": should}}
    if knn:
        out["knn"] = knn
    return out


async def expand(ctx: Context, node: Node) -> Node:
    """``node`` with every simplified ``fields`` + ``query`` form turned into leaves."""
    if isinstance(node, Rerank):
        return replace(node, child=await expand(ctx, node.child))
    if not isinstance(node, Fusion):
        return node
    if node.multi is None:
        expanded = [replace(c, node=await expand(ctx, c.node)) for c in node.children]
        return replace(node, children=tuple(expanded))
    types = await _field_types(ctx)
    lexical: list[str] = []
    vectors: list[tuple[str, float]] = []
    for spec in node.multi.fields:
        pattern, _, boost = spec.partition("^")
        try:
            weight = float(boost) if boost else 1.0
        except ValueError:
            raise ClientRequestError(
                "illegal_argument_exception", f"[fields] bad boost in [{spec}]"
            ) from None
        for name in sorted(n for n in types if fnmatch.fnmatchcase(n, pattern)):
            if types[name] in _VECTOR_TYPES:
                vectors.append((name, weight))
            elif types[name] in ("text", "match_only_text", "keyword", "wildcard"):
                lexical.append(f"{name}^{boost}" if boost else name)
    norm = node.multi.normalizer
    children: list[Child] = []
    if lexical:
        query = {"multi_match": {"query": node.multi.query, "fields": lexical}}
        children.append(Child(Standard(query, node.filters), 1.0, norm))
    for name, weight in vectors:
        leaf = Knn(name, None, node.multi.query, node.window, None, node.filters)
        children.append(Child(leaf, weight, norm))
    if not children:
        raise ClientRequestError(
            "illegal_argument_exception",
            f"[{node.kind}] no fields of the index match {list(node.multi.fields)}",
        )
    return replace(node, children=tuple(children), multi=None)


async def _field_types(ctx: Context) -> dict[str, str]:
    """Field name → mapping type, for every index the search names."""
    path = f"/{ctx.index}/_mapping" if ctx.index else "/_mapping"
    reply = await ctx.upstream.fetch("GET", path, ctx.headers)
    try:
        value = json.loads(reply.body) if reply.status == 200 else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise LeafRefused(reply)
    out: dict[str, str] = {}
    for index in value.values():
        mappings = index.get("mappings", {}) if isinstance(index, dict) else {}
        _walk(mappings.get("properties", {}), "", out)
    return out


def _walk(props: Any, prefix: str, out: dict[str, str]) -> None:
    if not isinstance(props, dict):
        return
    for name, spec in props.items():
        if not isinstance(spec, dict):
            continue
        full = f"{prefix}{name}"
        if isinstance(spec.get("type"), str):
            out[full] = spec["type"]
        _walk(spec.get("properties"), f"{full}.", out)
        _walk(spec.get("fields"), f"{full}.", out)
