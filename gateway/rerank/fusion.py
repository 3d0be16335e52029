"""How the reranker's scores become ``_score``: replace, linear fusion, RRF; the cut-off.

Pure arithmetic over one window, hits in first-stage (upstream) order.

- ``min_score``: a hit whose reranker score is below it is dropped from the
  window (unscored hits are never dropped: they keep their place).
- ``replace``: ``_score`` is the reranker score.
- ``linear``: ``weight * norm(model) + (1 - weight) * norm(first_stage)``, both
  normalized over the hits that take part (``minmax`` to [0, 1], or ``zscore``);
  a hit without a first-stage score counts as the window's lowest.
- ``rrf``: ``1 / (k + model_rank) + 1 / (k + first_stage_rank)``, ranks from 1
  among the hits that take part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ScoreUse = Literal["replace", "linear", "rrf"]
Normalize = Literal["minmax", "zscore"]


@dataclass(frozen=True, slots=True)
class FusionSpec:
    use: ScoreUse = "replace"
    normalize: Normalize = "minmax"
    weight: float = 0.7
    rrf_k: int = 60
    min_score: float | None = None


@dataclass(frozen=True, slots=True)
class Fused:
    """One hit's final score and what it was made of (the explanation's inputs)."""

    score: float | None  # None: not scored, keeps its place
    dropped: bool = False
    model: float | None = None
    first_stage: float | None = None
    model_norm: float | None = None
    first_stage_norm: float | None = None
    model_rank: int | None = None
    first_stage_rank: int | None = None


def normalized(values: Sequence[float], how: Normalize) -> list[float]:
    """Min-max to [0, 1] (all 0 when constant) or z-scores (all 0 when constant)."""
    if not values:
        return []
    if how == "minmax":
        lo, hi = min(values), max(values)
        span = hi - lo
        return [(v - lo) / span if span > 0 else 0.0 for v in values]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / std if std > 0 else 0.0 for v in values]


def ranks(values: Sequence[float]) -> list[int]:
    """1-based rank of each value, highest first; ties keep input order."""
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    out = [0] * len(values)
    for rank, i in enumerate(order, start=1):
        out[i] = rank
    return out


def fuse(
    model: Sequence[float | None], first_stage: Sequence[float | None], spec: FusionSpec
) -> list[Fused]:
    """Final scores for a window; ``model`` and ``first_stage`` are aligned per hit."""
    out = [Fused(None, model=m, first_stage=f) for m, f in zip(model, first_stage, strict=True)]
    cut = spec.min_score
    for i, m in enumerate(model):
        if m is not None and cut is not None and m < cut:
            out[i] = Fused(None, dropped=True, model=m, first_stage=first_stage[i])
    taking: list[int] = []
    m_vals: list[float] = []
    for i, m in enumerate(model):
        if m is not None and not out[i].dropped:
            taking.append(i)
            m_vals.append(m)
    present = [f for i in taking if (f := first_stage[i]) is not None]
    floor = min(present) if present else 0.0
    f_vals = [f if (f := first_stage[i]) is not None else floor for i in taking]
    if spec.use == "replace":
        for i, m_val in zip(taking, m_vals, strict=True):
            out[i] = Fused(m_val, model=m_val, first_stage=first_stage[i])
    elif spec.use == "linear":
        w = spec.weight
        m_norm, f_norm = normalized(m_vals, spec.normalize), normalized(f_vals, spec.normalize)
        for j, i in enumerate(taking):
            score = w * m_norm[j] + (1 - w) * f_norm[j]
            out[i] = Fused(score, False, m_vals[j], first_stage[i], m_norm[j], f_norm[j])
    else:
        m_rank = ranks(m_vals)
        for j, i in enumerate(taking):
            f_rank = j + 1  # the window is in first-stage order
            score = 1 / (spec.rrf_k + m_rank[j]) + 1 / (spec.rrf_k + f_rank)
            out[i] = Fused(
                score,
                False,
                m_vals[j],
                first_stage[i],
                model_rank=m_rank[j],
                first_stage_rank=f_rank,
            )
    return out


def reorder(scores: Sequence[float | None], has_text: Sequence[bool]) -> list[int]:
    """Window order after reranking, as indices into the upstream order.

    - scored hits sort by score, ties keeping upstream order;
    - hits with no text go after every hit that has text, in upstream order;
    - hits with text but no score (deadline, model trouble) keep their positions,
      and the scored hits fill the remaining positions in score order.
    """
    n = len(scores)
    with_text = [i for i in range(n) if has_text[i]]
    without = [i for i in range(n) if not has_text[i]]
    slots = list(range(len(with_text)))  # positions of hits that have text
    order: list[int | None] = [None] * len(with_text)
    scored = [i for i in with_text if scores[i] is not None]
    for pos, i in enumerate(with_text):
        if scores[i] is None:
            order[pos] = i
    ranked = sorted(scored, key=lambda i: (-(scores[i] or 0.0), i))
    free = [s for s in slots if order[s] is None]
    for pos, i in zip(free, ranked, strict=True):
        order[pos] = i
    return [i for i in order if i is not None] + without
