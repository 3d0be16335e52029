"""Score one window under a profile: text → pieces → reranker → pooling → fusion → explain.

::

    documents.segments   the text of each hit (template, caps) or its highlight fragments
    chunking.pieces      truncate (one piece) or overlapping token windows, ``doc_id#k``
    reranker.score       cache → batcher → model, within the profile's deadline
    chunking.pool        chunk scores → hit score (max / mean / first)
    fusion.fuse          replace / linear / rrf, and the ``min_score`` cut-off
    explanation          the ES ``_explanation`` of each reranked hit, when asked
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.learning import ranker
from gateway.rerank import chunking, documents, fusion
from gateway.rerank.budget import PairBudget
from gateway.rerank.profiles import Profile
from gateway.rerank.reranker import Passage, Reason, Reranker, Status


@dataclass(slots=True)
class WindowScores:
    """Per hit of the window (upstream order): final score, text, cut-off, explanation."""

    scores: list[float | None]
    has_text: list[bool]
    dropped: list[bool]
    explanations: list[dict[str, Any] | None]
    status: Status
    reason: Reason | None
    pooled: list[chunking.Pooled] | None = None  # per hit (features of a learned ranker)


def _unscored(has_text: list[bool], reason: Reason) -> WindowScores:
    n = len(has_text)
    return WindowScores([None] * n, has_text, [False] * n, [None] * n, "skipped", reason)


def _passage(hit: Mapping[str, Any], piece: chunking.Piece) -> Passage:
    doc_id = str(hit.get("_id", ""))
    return Passage(
        str(hit.get("_index", "")),
        doc_id if piece.chunk == 0 else f"{doc_id}#{piece.chunk}",
        piece.text,
    )


def _first_stage(hit: Mapping[str, Any]) -> float | None:
    value = hit.get("_score")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def score_window(
    reranker: Reranker,
    profile: Profile,
    query: str,
    hits: Sequence[Mapping[str, Any]],
    *,
    explain: bool = False,
    budget: PairBudget | None = None,
) -> WindowScores:
    """The window's scores; its pieces drawn from the request's ``budget`` (if given)."""
    segs = documents.segments(hits, profile.document)
    has_text = [bool(s) for s in segs]
    n = len(hits)
    if not any(has_text):
        return _unscored(has_text, "no_doc_text")
    found = await chunking.pieces(segs, profile.chunking, reranker.batcher.encoder)
    if budget is not None and not budget.take(len(found)):
        return _unscored(has_text, "too_many_pairs")
    outcome = await reranker.score(
        query, [_passage(hits[p.hit], p) for p in found], profile.timeout_s
    )
    per_hit: list[list[float | None]] = [[] for _ in hits]
    for piece, score in zip(found, outcome.scores, strict=True):
        per_hit[piece.hit].append(score)
    pooled = [chunking.pool(s, profile.chunking.pooling) for s in per_hit]
    first_stage = [_first_stage(h) for h in hits]
    fused = fusion.fuse([p.score for p in pooled], first_stage, profile.fusion)
    if profile.learned is not None:  # a trained second stage in place of the fixed fusion
        learned = ranker.rescore(
            profile.learned,
            chunk_scores=[p.chunk_scores for p in pooled],
            pooled=[p.score for p in pooled],
            first_stage=first_stage,
            hits=hits,
            fields=profile.document.fields,
            dropped=[f.dropped for f in fused],
        )
        fused = [replace(f, score=s) for f, s in zip(fused, learned, strict=True)]
    explanations: list[dict[str, Any] | None] = [None] * n
    if explain:
        for i, hit in enumerate(hits):
            if fused[i].score is not None:
                explanations[i] = explanation(
                    profile, reranker, hit, position=i, pooled=pooled[i], fused=fused[i]
                )
    return WindowScores(
        [f.score for f in fused],
        has_text,
        [f.dropped for f in fused],
        explanations,
        outcome.status,
        outcome.reason,
        pooled,
    )


def _node(
    value: float | None, description: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "value": 0.0 if value is None else value,
        "description": description,
        "details": details or [],
    }


def explanation(
    profile: Profile,
    reranker: Reranker,
    hit: Mapping[str, Any],
    *,
    position: int,
    pooled: chunking.Pooled,
    fused: fusion.Fused,
) -> dict[str, Any]:
    """An ES-shaped ``_explanation`` (value, description, details) of a reranked hit."""
    spec, chunks = profile.fusion, profile.chunking
    n_chunks = len(pooled.chunk_scores)
    how = f"{chunks.pooling} of {n_chunks} chunks" if n_chunks > 1 else "one passage"
    used = f", chunk {pooled.chunk} used" if pooled.chunk is not None and n_chunks > 1 else ""
    model = _node(
        fused.model,
        f"cross-encoder score ({reranker.score_mode}, model {profile.model},"
        f" {how}{used}, {chunks.strategy})",
        [_node(s, f"chunk {k}") for k, s in enumerate(pooled.chunk_scores) if n_chunks > 1],
    )
    upstream = hit.get("_explanation")
    first = _node(
        fused.first_stage,
        f"first-stage score, rank {position + 1}"
        + ("" if fused.first_stage is not None else " (no score)"),
        [upstream] if isinstance(upstream, dict) else [],
    )
    if profile.learned is not None:
        details = [model, first]
        description = f"learned second stage {profile.learned_fingerprint} over:"
    elif spec.use == "linear":
        w = spec.weight
        details = [
            _node(
                (fused.model_norm or 0.0) * w, f"weight {w} x {spec.normalize}(reranker)", [model]
            ),
            _node(
                (fused.first_stage_norm or 0.0) * (1 - w),
                f"weight {1 - w:g} x {spec.normalize}(first stage)",
                [first],
            ),
        ]
        description = "linear fusion of reranker and first-stage scores, sum of:"
    elif spec.use == "rrf":
        k = spec.rrf_k
        details = [
            _node(
                1 / (k + (fused.model_rank or 0)),
                f"1/({k} + reranker rank {fused.model_rank})",
                [model],
            ),
            _node(
                1 / (k + (fused.first_stage_rank or 0)),
                f"1/({k} + first-stage rank {fused.first_stage_rank})",
                [first],
            ),
        ]
        description = "reciprocal rank fusion, sum of:"
    else:
        details = [model, first]
        description = "reranker score replaces the first-stage score"
    return _node(fused.score, f"rerank gateway, profile {profile.name}: {description}", details)
