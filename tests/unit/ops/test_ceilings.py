"""The ceilings the speed tools compare model paths with (ops/harness/ceilings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.harness.ceilings import Ceilings, pair_gflop, precision_of


def test_a_256_token_pair_of_the_stand_in_costs_about_six_gflop(model_dir: Path) -> None:
    # issue 16's arithmetic: ~6.0 GFLOP per 256-token pair (6 layers, 384 wide, FFN 1536)
    assert pair_gflop(model_dir, 256) == pytest.approx(6.0, rel=0.05)
    assert pair_gflop(model_dir, 128) < pair_gflop(model_dir, 256) / 1.9


@pytest.mark.parametrize(
    ("flags", "bf16", "int8"),
    [
        ({"avx2"}, 100.0, 200.0),  # no bf16 instructions: bf16 runs as fp32
        ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, 200.0, 400.0),
        ({"avx2", "avx_vnni"}, 100.0, 400.0),
    ],
)
def test_bf16_and_int8_scale_the_measured_fp32_rate_by_the_cpu_s_instructions(
    flags: set[str], bf16: float, int8: float
) -> None:
    limits = Ceilings(fp32_gflops=600.0, gflop_per_pair=6.0, flags=frozenset(flags))
    assert limits.pairs_per_s("fp32") == pytest.approx(100.0)
    assert limits.pairs_per_s("bf16") == pytest.approx(bf16)
    assert limits.pairs_per_s("int8") == pytest.approx(int8)
    assert "fp32 100" in limits.line()


def test_a_path_s_ceiling_follows_what_it_computes_in() -> None:
    assert precision_of("device=cpu;precision=model;quantization=none;runs=batched") == "fp32"
    assert precision_of("backend=openvino;precision=bf16;quantization=none") == "bf16"
    assert precision_of("backend=openvino;precision=bf16;quantization=static") == "int8"
    assert precision_of("device=cpu;precision=model;quantization=dynamic") == "int8"
