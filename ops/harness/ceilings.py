"""What this CPU could do at most for one pair: the physical ceilings a model path's
pairs/s is compared with (issue 16's arithmetic, measured here instead of assumed).

fp32: a large numpy GEMM (the BLAS numpy ships, on every core) sets the fp32 rate this
machine reaches; bf16 and int8 scale it by their instructions' throughput on the same
vector units: 2x (AVX512_BF16) and 4x (VNNI) of fp32 FMA, 2x int8 on AVX2 without VNNI
(``vpmaddubsw``). A pair costs ``pair_gflop`` of the model's matrix products.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Ceilings:
    fp32_gflops: float  # measured
    gflop_per_pair: float
    flags: frozenset[str]

    def pairs_per_s(self, precision: str) -> float:
        scale = {"fp32": 1.0, "bf16": 2.0 if "avx512_bf16" in self.flags else 1.0}
        vnni = "avx512_vnni" in self.flags or "avx_vnni" in self.flags
        scale["int8"] = 4.0 if vnni else 2.0
        return self.fp32_gflops * scale[precision] / self.gflop_per_pair

    def at(self, model_dir: Path, tokens: float) -> Ceilings:
        """The same measured CPU for pairs of ``tokens`` tokens."""
        return Ceilings(self.fp32_gflops, pair_gflop(model_dir, tokens), self.flags)

    def line(self) -> str:
        rates = ", ".join(f"{p} {self.pairs_per_s(p):.0f}" for p in ("fp32", "bf16", "int8"))
        return (
            f"ceilings: fp32 GEMM {self.fp32_gflops:.0f} GFLOP/s measured,"
            f" {self.gflop_per_pair:.2f} GFLOP/pair -> {rates} pairs/s"
        )


def precision_of(execution: str) -> str:
    """``fp32``, ``bf16`` or ``int8``: what bounds a model path's ceiling, read from its
    execution string (``quantization=...;precision=...``)."""
    if "quantization=none" not in execution:
        return "int8"
    return "bf16" if "precision=bf16" in execution else "fp32"


def cpu_flags() -> frozenset[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def gemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of an ``n`` x ``n`` matrix product."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return float(2 * n**3 / best / 1e9)


def pair_gflop(model_dir: Path, tokens: float) -> float:
    """The matrix products of one pair of ``tokens`` tokens in a BERT-style encoder
    (``config.json``: hidden size, intermediate size, layers): projections and
    feed-forward per token, plus attention scores and mixing."""
    config = json.loads((model_dir / "config.json").read_text())
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_token = 2 * (4 * h * h + 2 * h * i)
    attention = 2 * 2 * tokens * tokens * h
    return float(layers * (tokens * per_token + attention) / 1e9)


def measure(model_dir: Path, tokens: float) -> Ceilings:
    return Ceilings(gemm_gflops(), pair_gflop(model_dir, tokens), cpu_flags())
