"""The learned second stage: a ranking function over ``features`` rows, trained and served.

Two kinds, one interface (``predict(rows) → scores``, higher first):

- ``lightgbm``: LambdaRank gradient-boosted trees (``lightgbm``, the ``learn``
  extra), optimising nDCG over integer grades per query;
- ``linear``: a pairwise logistic (RankNet) model on standardised features, numpy
  only: for every pair of a query's documents with different grades,
  ``-log σ(w·(x_i - x_j))``, L2-regularised, full-batch gradient descent.

``rescore`` is the serving step: the scored hits of a window get the model's score
as ``_score``; unscored hits keep their place, as with the fixed fusion.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gateway.learning import features
from gateway.learning.features import Matrix

Kind = Literal["lightgbm", "linear"]
MODEL_FILE = {"lightgbm": "model.txt", "linear": "model.json"}


@dataclass(slots=True)
class Ranker:
    kind: Kind
    feature_names: tuple[str, ...]
    booster: Any = None  # lightgbm.Booster
    weights: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)

    def predict(self, rows: Matrix) -> Matrix:
        if rows.shape[0] == 0:
            return np.zeros(0)
        if self.kind == "lightgbm":
            out: Matrix = np.asarray(self.booster.predict(rows, num_threads=1), dtype=np.float64)
            return out
        z = (rows - np.asarray(self.mean)) / np.asarray(self.scale)
        linear: Matrix = z @ np.asarray(self.weights)
        return linear

    def save(self, directory: Path) -> Path:
        path = directory / MODEL_FILE[self.kind]
        if self.kind == "lightgbm":
            self.booster.save_model(str(path))
        else:
            state = {"weights": self.weights, "mean": self.mean, "scale": self.scale}
            path.write_text(json.dumps(state), encoding="utf-8")
        return path


def load(directory: Path, kind: Kind, feature_names: Sequence[str]) -> Ranker:
    path = directory / MODEL_FILE[kind]
    if kind == "lightgbm":
        import lightgbm

        return Ranker(kind, tuple(feature_names), booster=lightgbm.Booster(model_file=str(path)))
    state = json.loads(path.read_text(encoding="utf-8"))
    return Ranker(kind, tuple(feature_names), None, state["weights"], state["mean"], state["scale"])


def train_lightgbm(
    rows: Matrix,
    labels: Sequence[int],
    groups: Sequence[int],
    feature_names: Sequence[str],
    *,
    rounds: int = 200,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Ranker:
    """LambdaRank on ``rows`` (grouped per query: ``groups`` = rows per query, in order)."""
    import lightgbm

    setup = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "ndcg_eval_at": [10],
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "lambdarank_truncation_level": 20,
        "num_threads": 1,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "verbosity": -1,
        **(params or {}),
    }
    data = lightgbm.Dataset(
        rows, label=np.asarray(labels), group=list(groups), feature_name=_safe(feature_names)
    )
    booster = lightgbm.train(setup, data, num_boost_round=rounds)
    return Ranker("lightgbm", tuple(feature_names), booster=booster)


def _safe(feature_names: Sequence[str]) -> list[str]:
    return [n.replace(":", "_") for n in feature_names]


def train_linear(
    rows: Matrix,
    labels: Sequence[float],
    groups: Sequence[int],
    feature_names: Sequence[str],
    *,
    epochs: int = 300,
    lr: float = 0.5,
    l2: float = 1e-3,
) -> Ranker:
    """RankNet-style pairwise logistic regression (numpy, full batch)."""
    mean = rows.mean(axis=0) if len(rows) else np.zeros(rows.shape[1])
    scale = rows.std(axis=0) if len(rows) else np.ones(rows.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    z = (rows - mean) / scale
    y = np.asarray(labels, dtype=np.float64)
    better: list[int] = []
    worse: list[int] = []
    start = 0
    for n in groups:
        for i in range(start, start + n):
            for j in range(start, start + n):
                if y[i] > y[j]:
                    better.append(i)
                    worse.append(j)
        start += n
    w = np.zeros(rows.shape[1])
    if better:
        diff = z[better] - z[worse]
        for _ in range(epochs):
            margin = diff @ w
            grad = -(diff * (1.0 / (1.0 + np.exp(margin)))[:, None]).mean(axis=0) + l2 * w
            w -= lr * grad
    return Ranker("linear", tuple(feature_names), None, w.tolist(), mean.tolist(), scale.tolist())


def rescore(
    ranker: Ranker,
    *,
    chunk_scores: Sequence[Sequence[float | None]],
    pooled: Sequence[float | None],
    first_stage: Sequence[float | None],
    hits: Sequence[Mapping[str, Any]],
    fields: Sequence[str],
    dropped: Sequence[bool],
) -> list[float | None]:
    """The learned ``_score`` of each hit of a window (None: unscored or dropped)."""
    kept = [p if not d else None for p, d in zip(pooled, dropped, strict=True)]
    taking, rows = features.window_rows(chunk_scores, first_stage, hits, fields, kept)
    out: list[float | None] = [None] * len(hits)
    for i, score in zip(taking, ranker.predict(rows).tolist(), strict=True):
        out[i] = float(score)
    return out
