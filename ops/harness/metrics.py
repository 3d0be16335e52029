"""Measures: rankings against judgments through ``ir-measures`` (trec_eval semantics), score
agreement between two models (Kendall tau per query, top-1), and percentiles."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Qrels = Mapping[str, Mapping[str, int]]
Run = dict[str, dict[str, float]]  # query id → doc id → score


def as_run(ranking: Mapping[str, Sequence[str]]) -> Run:
    """Doc ids best first → scores that keep that order."""
    return {q: {d: float(len(ids) - i) for i, d in enumerate(ids)} for q, ids in ranking.items()}


def aggregate(measures: Sequence[Any], qrels: Qrels, run: Run) -> dict[Any, float]:
    import ir_measures  # the eval extra; the speed tools need none of it

    got = ir_measures.calc_aggregate(list(measures), qrels, run)
    return {m: float(got[m]) for m in measures}


def ndcg10(qrels: Qrels, run: Run) -> float:
    from ir_measures import nDCG

    return aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by rank, 0 for no values."""
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall tau-b between two score vectors (O(n^2), n = candidates per query)."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(len(a), k=1)
    da, db = da[iu], db[iu]
    denom = math.sqrt(float(np.count_nonzero(da)) * float(np.count_nonzero(db)))
    return float((da * db).sum() / denom) if denom else 1.0


@dataclass
class Agreement:
    mean_tau: float
    min_tau: float
    top1: float
    max_abs: float


def agreement(ref: np.ndarray, got: np.ndarray, qids: list[str]) -> Agreement:
    """How far ``got`` orders each query's candidates as ``ref`` does."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(qids):
        groups[q].append(i)
    taus: list[float] = []
    top1 = 0
    for idx in groups.values():
        r, g = ref[idx], got[idx]
        taus.append(kendall_tau(r, g))
        top1 += int(np.argmax(r) == np.argmax(g))
    return Agreement(
        float(np.mean(taus)),
        float(np.min(taus)),
        top1 / len(groups),
        float(np.max(np.abs(ref - got))),
    )
