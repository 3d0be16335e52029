"""RRF and linear fusion of ranked result lists, as Elasticsearch's retrievers compute them.

Pure arithmetic; each list is a child retriever's top hits, best first, as
``(key, score)`` pairs (``key`` = ``(_index, _id)``).

- ``rrf``: ``score(d) = Σ 1 / (rank_constant + rank_i(d))`` over the lists that hold
  ``d``, ranks from 1 (RRFRetrieverBuilder).
- ``linear``: ``score(d) = Σ weight_i * norm_i(score_i(d))``; a list without ``d``
  adds 0 (LinearRetrieverBuilder). Normalizers (MinMaxScoreNormalizer,
  L2ScoreNormalizer): ``minmax`` ``(s - min) / (max - min)``, every score ``min``
  when ``max - min < 1e-6``; ``l2_norm`` ``s / sqrt(Σ s²)``, unchanged when that
  norm is below 1e-6; ``none`` as is.

Both keep the top ``window``; ties go to the hit met first (lists in order,
each best first), where Elasticsearch breaks them by internal doc id.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from gateway.retrievers.parse import Normalizer

_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Ranked:
    key: Hashable
    score: float
    rank: int  # 1-based position in the fused list


def normalize(scores: Sequence[float], how: Normalizer) -> list[float]:
    if not scores or how == "none":
        return list(scores)
    if how == "minmax":
        lo, hi = min(scores), max(scores)
        if abs(hi - lo) < _EPSILON:
            return [lo] * len(scores)
        return [(s - lo) / (hi - lo) for s in scores]
    norm = math.sqrt(sum(s * s for s in scores))
    return list(scores) if norm < _EPSILON else [s / norm for s in scores]


def _top(totals: dict[Hashable, float], window: int) -> list[Ranked]:
    order = list(totals)  # insertion order: first met first
    seen = {key: i for i, key in enumerate(order)}
    best = sorted(order, key=lambda key: (-totals[key], seen[key]))[:window]
    return [Ranked(key, totals[key], rank) for rank, key in enumerate(best, start=1)]


def rrf(
    lists: Sequence[Sequence[tuple[Hashable, float | None]]], rank_constant: int, window: int
) -> list[Ranked]:
    totals: dict[Hashable, float] = {}
    for ranked in lists:
        for rank, (key, _) in enumerate(ranked[:window], start=1):
            totals[key] = totals.get(key, 0.0) + 1.0 / (rank_constant + rank)
    return _top(totals, window)


def linear(
    lists: Sequence[Sequence[tuple[Hashable, float | None]]],
    weights: Sequence[float],
    normalizers: Sequence[Normalizer],
    window: int,
    min_score: float | None = None,
) -> list[Ranked]:
    totals: dict[Hashable, float] = {}
    for ranked, weight, how in zip(lists, weights, normalizers, strict=True):
        top = ranked[:window]
        raw = [s if s is not None and not math.isnan(s) else 0.0 for _, s in top]
        for (key, _), score in zip(top, normalize(raw, how), strict=True):
            totals[key] = totals.get(key, 0.0) + weight * score
    out = _top(totals, window)
    return out if min_score is None else [r for r in out if r.score >= min_score]
