"""nDCG@k per query and the paired randomization test between two rankings of the same queries.

``ndcg`` follows trec_eval's ``ndcg_cut`` (what ``ir-measures``' ``nDCG@k`` computes):
gain = the judged grade (linear), discount ``1 / log2(rank + 1)``, the ideal from
all of the query's judged documents; unjudged documents gain 0.

``paired_test`` is the two-sided paired randomization (sign-flip) test on the mean
per-query difference (Smucker, Allan & Carterette, CIKM 2007): under the null each
query's difference is as likely negated; ``p`` is the share of ``rounds`` random
sign assignments whose |mean| reaches the observed one (seeded: reproducible).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def ndcg(ranked: Sequence[str], judged: Mapping[str, float], k: int = 10) -> float:
    gains = [max(judged.get(d, 0.0), 0.0) for d in ranked[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((max(v, 0.0) for v in judged.values()), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def per_query_ndcg(
    runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]], k: int = 10
) -> dict[str, float]:
    """nDCG@k of each judged query (a judged query missing from ``runs`` scores 0)."""
    return {q: ndcg(runs.get(q, []), judged, k) for q, judged in qrels.items()}


@dataclass(frozen=True, slots=True)
class Paired:
    mean_a: float
    mean_b: float
    delta: float  # mean(b - a)
    p: float
    wins: int  # queries where b > a
    losses: int
    ties: int


def paired_test(
    a: Mapping[str, float], b: Mapping[str, float], *, rounds: int = 10_000, seed: int = 0
) -> Paired:
    """Two-sided paired randomization test of ``b`` against ``a`` over their common queries."""
    queries = sorted(set(a) & set(b))
    if not queries:
        return Paired(0.0, 0.0, 0.0, 1.0, 0, 0, 0)
    diff = np.array([b[q] - a[q] for q in queries])
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(rounds, len(diff)))
    extreme = int((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12).sum())
    return Paired(
        float(np.mean([a[q] for q in queries])),
        float(np.mean([b[q] for q in queries])),
        float(diff.mean()),
        (extreme + 1) / (rounds + 1),
        int((diff > 1e-12).sum()),
        int((diff < -1e-12).sum()),
        int((np.abs(diff) <= 1e-12).sum()),
    )
