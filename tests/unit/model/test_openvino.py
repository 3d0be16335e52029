"""The OpenVINO runtime backend: same scores as onnxruntime, batch-invariant, its int8 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.errors import ModelError
from gateway.model.base import Encoded
from gateway.model.loader import load_encoder
from gateway.model.onnx import OnnxCrossEncoder
from gateway.model.openvino import OpenVinoCrossEncoder, ov_static_path
from gateway.model.openvino_quantize import generate
from gateway.model.quantize import calibration_pairs
from gateway.model.variants import inspect
from gateway.settings import ModelSettings, OnnxModel, SpeedSettings

F32 = SpeedSettings.model_validate({"openvino_precision": "f32"})


@pytest.fixture(scope="module")
def pairs(scifact: Path) -> list[tuple[str, str]]:
    """Real (query, passage) pairs of varied lengths, from the *test* split."""
    return calibration_pairs(scifact, 24, split="test", seed=5)


@pytest.fixture(scope="module")
def cache_dir(model_dir: Path, scifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("ov-cache")
    generate(model_dir, cache, scifact, n_pairs=8, max_length=128)
    return cache


def settings(model_dir: Path, **extra: object) -> OnnxModel:
    model = ModelSettings.model_validate({"backend": "openvino", "path": model_dir, **extra})
    assert isinstance(model, OnnxModel)
    return model


def alone_and_batched(encoder: OpenVinoCrossEncoder, encoded: list[Encoded]) -> float:
    """Largest change of a pair's score between scored alone and among batch-mates."""
    alone = np.concatenate([encoder.score([e]) for e in encoded])
    spread = 0.0
    for size in (3, 8, len(encoded)):
        batched = np.concatenate(
            [encoder.score(encoded[i : i + size]) for i in range(0, len(encoded), size)]
        )
        spread = max(spread, float(np.max(np.abs(batched - alone))))
    return spread


def test_fp32_scores_match_onnxruntime_and_ignore_batch_mates(
    model_dir: Path, pairs: list[tuple[str, str]]
) -> None:
    ov = load_encoder(settings(model_dir, quantization="none"), F32)
    assert isinstance(ov, OpenVinoCrossEncoder)
    assert "precision=f32" in ov.execution and "runs=batched" in ov.execution
    ort = OnnxCrossEncoder(model_dir, OnnxModel(path=model_dir, quantization="none"))
    encoded = ov.encode(pairs)
    assert [e.ids.tolist() for e in encoded] == [e.ids.tolist() for e in ort.encode(pairs)]
    np.testing.assert_allclose(ov.score(encoded), ort.score(encoded), atol=1e-4)
    assert alone_and_batched(ov, encoded) <= 1e-4
    assert "quantization=none" in ov.execution
    assert "dynamic_quantization=off" in ov.execution


def test_int8_model_is_generated_picked_by_auto_and_batch_invariant(
    model_dir: Path, cache_dir: Path, pairs: list[tuple[str, str]]
) -> None:
    generated = ov_static_path(cache_dir, inspect(model_dir / "model.onnx"))
    assert generated.is_file() and generated.with_suffix(".bin").is_file()
    assert (generated.parent / "manifest.json").is_file()
    int8 = OpenVinoCrossEncoder(model_dir, settings(model_dir, cache_dir=cache_dir))
    fp32 = OpenVinoCrossEncoder(model_dir, settings(model_dir, quantization="none"), F32)
    assert int8.model_file == generated
    assert "quantization=static" in int8.execution
    assert int8.fingerprint != fp32.fingerprint
    assert "runs=per-pair" in int8.execution  # int8 kernels are shape-dependent
    encoded = int8.encode(pairs)
    assert alone_and_batched(int8, encoded) <= 1e-6
    # int8 keeps the order of fp32 closely (measured tau ~0.96 on SciFact); a broken
    # recipe (scales from padding, every layer int8) lands far lower.
    a, b = int8.score(encoded), fp32.score(encoded)
    assert float(np.corrcoef(a, b)[0, 1]) >= 0.9


def test_batched_int8_is_an_explicit_choice_with_its_own_fingerprint(
    model_dir: Path, cache_dir: Path
) -> None:
    per_pair = OpenVinoCrossEncoder(model_dir, settings(model_dir, cache_dir=cache_dir))
    batched = OpenVinoCrossEncoder(
        model_dir, settings(model_dir, cache_dir=cache_dir, allow_batch_dependent=True)
    )
    assert "runs=batched" in batched.execution
    assert batched.fingerprint != per_pair.fingerprint


def test_static_without_a_generated_model_says_how_to_make_one(
    model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match=r"gateway\.model\.openvino_quantize"):
        OpenVinoCrossEncoder(
            model_dir, settings(model_dir, quantization="static", cache_dir=tmp_path)
        )


def test_dynamic_quantization_is_refused(model_dir: Path) -> None:
    with pytest.raises(ModelError, match="batch-mates"):
        OpenVinoCrossEncoder(model_dir, settings(model_dir, quantization="dynamic"))


def test_openvino_backend_runs_on_the_cpu_only(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="runs on the CPU"):
        settings(model_dir, device="cuda")


def test_pairs_run_side_by_side_on_streams_with_the_scores_of_one_stream(
    model_dir: Path, cache_dir: Path, pairs: list[tuple[str, str]]
) -> None:
    one = OpenVinoCrossEncoder(
        model_dir,
        settings(model_dir, cache_dir=cache_dir),
        SpeedSettings.model_validate({"pair_lanes": 1}),
    )
    two = OpenVinoCrossEncoder(
        model_dir,
        settings(model_dir, cache_dir=cache_dir),
        SpeedSettings.model_validate({"pair_lanes": 2}),
    )
    assert (one.streams, two.streams) == (1, 2)
    encoded = one.encode(pairs)
    alone = np.concatenate([one.score([e]) for e in encoded])
    side_by_side = two.score(encoded)  # one list of per-pair feeds, two at a time
    assert side_by_side.shape == (len(encoded),)
    # in feed order, and the score a pair gets alone on one stream
    np.testing.assert_allclose(side_by_side, alone, atol=1e-6)
    assert one.fingerprint == two.fingerprint


def test_bf16_where_the_cpu_has_it_runs_one_pair_per_run(model_dir: Path) -> None:
    import openvino

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    default = OpenVinoCrossEncoder(model_dir, settings(model_dir, quantization="none"))
    has_bf16 = "BF16" in capabilities
    assert ("precision=bf16" in default.execution) == has_bf16
    assert ("runs=per-pair" in default.execution) == has_bf16
    f32 = OpenVinoCrossEncoder(model_dir, settings(model_dir, quantization="none"), F32)
    assert f32.fingerprint != default.fingerprint or not has_bf16
