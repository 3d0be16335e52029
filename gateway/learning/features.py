"""What the gateway knows about each hit of a window at serving time, as numbers.

Per hit (the window in first-stage order), with ``fields`` the profile's text fields:

=============  =============================================================
``ce``         the cross-encoder score as pooled by the profile
``ce_max``     max over the hit's chunk scores (= ``ce`` for one passage)
``ce_mean``    mean over the hit's chunk scores
``ce_norm``    min-max of ``ce`` over the scored hits of the window
``ce_rank``    1-based rank of ``ce`` in the window
``fs``         first-stage ``_score`` (the window's lowest where missing)
``fs_norm``    min-max of ``fs`` over the scored hits
``fs_rank``    1-based first-stage rank (the window's order)
``len:<f>``    log(1 + characters) of field ``f``
=============  =============================================================

Per-field BM25 would need an ``explain`` from the cluster per search; it is not
among the features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.rerank.documents import field_values
from gateway.rerank.fusion import normalized, ranks

BASE = ("ce", "ce_max", "ce_mean", "ce_norm", "ce_rank", "fs", "fs_norm", "fs_rank")
Matrix = npt.NDArray[np.float64]


def names(fields: Sequence[str]) -> tuple[str, ...]:
    return BASE + tuple(f"len:{f}" for f in fields)


def field_length(hit: Mapping[str, Any], path: str) -> float:
    return math.log1p(sum(len(v) for v in field_values(hit, path)))


def window_rows(
    chunk_scores: Sequence[Sequence[float | None]],
    first_stage: Sequence[float | None],
    hits: Sequence[Mapping[str, Any]],
    fields: Sequence[str],
    pooled: Sequence[float | None] | None = None,
) -> tuple[list[int], Matrix]:
    """The hits that have a model score (their indexes) and one feature row each.

    ``pooled`` is the profile's pooled score per hit (default: max of the chunks)."""
    ce: list[float] = []
    taking: list[int] = []
    for i, chunks in enumerate(chunk_scores):
        got = [s for s in chunks if s is not None]
        score = pooled[i] if pooled is not None else (max(got) if got else None)
        if got and score is not None:
            taking.append(i)
            ce.append(score)
    rows = np.zeros((len(taking), len(BASE) + len(fields)), dtype=np.float64)
    if not taking:
        return taking, rows
    present = [f for i in taking if (f := first_stage[i]) is not None]
    floor = min(present) if present else 0.0
    fs = [f if (f := first_stage[i]) is not None else floor for i in taking]
    ce_norm, fs_norm, ce_rank = normalized(ce, "minmax"), normalized(fs, "minmax"), ranks(ce)
    for j, i in enumerate(taking):
        got = [s for s in chunk_scores[i] if s is not None]
        rows[j, : len(BASE)] = (
            ce[j],
            max(got),
            sum(got) / len(got),
            ce_norm[j],
            ce_rank[j],
            fs[j],
            fs_norm[j],
            i + 1,
        )
        for k, path in enumerate(fields):
            rows[j, len(BASE) + k] = field_length(hits[i], path)
    return taking, rows
