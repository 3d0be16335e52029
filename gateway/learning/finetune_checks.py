"""A fine-tuned cross-encoder into the gateway's ONNX layout, and the checks before it may serve.

::

    export     the project's own export path (``gateway.model.export``: ``model.onnx``,
               ``tokenizer.json``, ``model_int8.onnx``, ``export.json``), the same one
               ``rerank-gateway export-model --model DIR`` runs
    agreement  PyTorch (the trained weights) against ``model.onnx`` as the gateway
               runs it (``OnnxCrossEncoder``, fp32) on real pairs: largest |logit
               difference|, mean Kendall τ per query, top-1 agreement
    invariance each path the directory offers (fp32 batched; int8 one pair per run)
               scores a pair alone and among mixed-length batch-mates alike

Thresholds (``Checks.passed``): |Δ logit| ≤ 1e-3 for agreement (fp32 export,
measured ~1e-6), batch spread ≤ 1e-3 (the project's batch-invariance tolerance).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import OnnxModel

TOLERANCE = 1e-3
Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Checks:
    max_abs_logit_diff: float  # PyTorch vs model.onnx
    mean_kendall_tau: float
    top1_agreement: float
    batch_spread: dict[str, float]  # ONNX path → largest |score in a batch − score alone|

    @property
    def passed(self) -> bool:
        spread_ok = all(v <= TOLERANCE for v in self.batch_spread.values())
        return self.max_abs_logit_diff <= TOLERANCE and spread_ok

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def export_onnx(hf_dir: Path, out_dir: Path, max_length: int) -> dict[str, Any]:
    """``gateway.model.export`` of the trained weights (no fp16 variant: a GPU's, built on
    demand with ``rerank-gateway export-model --from-onnx``); its manifest."""
    from gateway.model import export

    info, files = export.export(out_dir, model=str(hf_dir), max_length=max_length, fp16=False)
    export.finish(out_dir, info, files)
    return {"info": info, "files": sorted(files)}


def encoder(
    model_dir: Path, quantization: str = "none", *, max_length: int = 256, threads: int = 1
) -> OnnxCrossEncoder:
    """The gateway's ONNX backend on ``model_dir`` (``quantization``: none | dynamic)."""
    settings = OnnxModel.model_validate(
        {
            "path": model_dir,
            "quantization": quantization,
            "max_length": max_length,
            "intra_op_threads": threads,
        }
    )
    return OnnxCrossEncoder(model_dir, settings)


def score(model: OnnxCrossEncoder, pairs: Sequence[Pair], batch: int = 16) -> np.ndarray:
    out = [model.score(model.encode(pairs[i : i + batch])) for i in range(0, len(pairs), batch)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def torch_scores(hf_dir: Path, pairs: Sequence[Pair], max_length: int) -> np.ndarray:
    """Raw logits of the trained weights (PyTorch, no activation)."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    model = CrossEncoder(str(hf_dir), max_length=max_length, device="cpu", local_files_only=True)
    got = model.predict(
        list(pairs), activation_fn=torch.nn.Identity(), batch_size=16, show_progress_bar=False
    )
    return np.asarray(got, dtype=np.float32).reshape(-1)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """τ-a of two score lists (1.0 for fewer than two items)."""
    n = len(a)
    if n < 2:
        return 1.0
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    return float((da * db).sum() / (n * (n - 1)))


def agreement(
    ref: np.ndarray, got: np.ndarray, groups: Sequence[str]
) -> tuple[float, float, float]:
    """(max |Δ|, mean τ per group, top-1 agreement per group) of two scorings of pairs."""
    taus: list[float] = []
    tops: list[float] = []
    keys = np.asarray(groups)
    for g in dict.fromkeys(groups):
        idx = np.flatnonzero(keys == g)
        taus.append(kendall_tau(ref[idx], got[idx]))
        tops.append(float(np.argmax(ref[idx]) == np.argmax(got[idx])))
    diff = float(np.max(np.abs(ref - got))) if len(ref) else 0.0
    return diff, float(np.mean(taus)) if taus else 1.0, float(np.mean(tops)) if tops else 1.0


def batch_spread(model: OnnxCrossEncoder, texts: Sequence[str], seed: int = 5) -> float:
    """Largest |score in a random mixed-length batch − score alone| over a few targets."""
    rng = random.Random(seed)

    def pair() -> Pair:
        query = " ".join(rng.choice(texts).split()[: rng.randint(1, 12)])
        return query, " ".join(rng.choice(texts).split()[: rng.randint(1, 200)])

    worst = 0.0
    for _ in range(4):
        target = pair()
        alone = float(model.score(model.encode([target]))[0])
        for size in (3, 8):
            batch = [pair() for _ in range(size - 1)]
            at = rng.randrange(size)
            batch.insert(at, target)
            worst = max(worst, abs(float(model.score(model.encode(batch))[at]) - alone))
    return worst


def check(
    hf_dir: Path, onnx_dir: Path, pairs: Sequence[Pair], groups: Sequence[str], max_length: int
) -> Checks:
    """Agreement of ``model.onnx`` with the trained weights on ``pairs`` (grouped by
    query), and the batch spread of every path the exported directory offers."""
    fp32 = encoder(onnx_dir, "none", max_length=max_length)
    diff, tau, top1 = agreement(torch_scores(hf_dir, pairs, max_length), score(fp32, pairs), groups)
    texts = [t for p in pairs for t in p]
    spread = {"fp32": batch_spread(fp32, texts)}
    if (onnx_dir / "model_int8.onnx").is_file():
        spread["dynamic-int8-per-pair"] = batch_spread(
            encoder(onnx_dir, "dynamic", max_length=max_length), texts
        )
    return Checks(diff, tau, top1, spread)
