"""The same pair, the same score: every model path the README offers scores a pair alone
and among random mixed-length batch-mates alike (within 1e-3), on the real model files.

The static int8 model is generated once per session from ``model.onnx`` into a temporary
cache directory, calibrated on a few dozen SciFact *train* pairs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gateway.errors import ModelError
from gateway.model.onnx import OnnxCrossEncoder, execution_path
from gateway.model.quantize import calibration_pairs, generate, quantize_static_int8
from gateway.model.variants import inspect, resolve, static_model_path
from gateway.settings import ModelSettings, SpeedSettings

TOLERANCE = 1e-3
CALIBRATION_PAIRS = 24


@pytest.fixture(scope="session")
def cache_dir(
    model_dir: Path, scifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("model-cache")
    generate(model_dir, cache, scifact, n_pairs=CALIBRATION_PAIRS)
    yield cache


def settings(model_dir: Path, **fields: object) -> ModelSettings:
    return ModelSettings.model_validate({"path": model_dir, "intra_op_threads": 1, **fields})


def texts(scifact: Path) -> list[str]:
    """Real text to cut batch-mates from: SciFact train queries and passages."""
    pairs = calibration_pairs(scifact, 40, seed=11)
    return [p for _, p in pairs] + [q for q, _ in pairs]


def mixed_lengths(rng: random.Random, pool: list[str], n: int) -> list[tuple[str, str]]:
    """Pairs whose queries and passages are cut to random word counts (1 .. 200)."""
    out = []
    for _ in range(n):
        query = " ".join(rng.choice(pool).split()[: rng.randint(1, 12)])
        passage = " ".join(rng.choice(pool).split()[: rng.randint(1, 200)])
        out.append((query, passage))
    return out


def batch_spread(encoder: OnnxCrossEncoder, pool: list[str], seed: int = 5) -> float:
    """Largest |score in a batch - score alone| over targets in random batches."""
    rng = random.Random(seed)
    targets = mixed_lengths(rng, pool, 4)
    alone = [float(encoder.score(encoder.encode([t]))[0]) for t in targets]
    worst = 0.0
    for target, ref in zip(targets, alone, strict=True):
        for size in (3, 8):
            mates = mixed_lengths(rng, pool, size - 1)
            at = rng.randrange(size)
            batch = [*mates[:at], target, *mates[at:]]
            got = encoder.score(encoder.encode(batch))[at]
            worst = max(worst, abs(float(got) - ref))
    return worst


PATHS = {
    "fp32": {"quantization": "none"},
    "static-int8": {"quantization": "static"},
    "auto": {},  # the static model once generated (see the fingerprint test)
    "dynamic-int8-per-pair": {"quantization": "dynamic"},
}


@pytest.mark.parametrize("path", [p for p in PATHS if p != "auto"])
def test_a_pair_scores_the_same_alone_and_in_any_batch(
    model_dir: Path, cache_dir: Path, scifact: Path, path: str
) -> None:
    encoder = OnnxCrossEncoder(model_dir, settings(model_dir, cache_dir=cache_dir, **PATHS[path]))
    assert batch_spread(encoder, texts(scifact)) <= TOLERANCE


def test_the_dynamic_file_on_whole_batches_is_batch_dependent(
    model_dir: Path, scifact: Path
) -> None:
    """Why MODEL__ALLOW_BATCH_DEPENDENT is explicit: batch-mates move a pair's score."""
    per_pair = OnnxCrossEncoder(model_dir, settings(model_dir, quantization="dynamic"))
    batched = OnnxCrossEncoder(
        model_dir, settings(model_dir, quantization="dynamic", allow_batch_dependent=True)
    )
    assert per_pair.per_pair and not batched.per_pair
    assert batch_spread(batched, texts(scifact)) > TOLERANCE
    assert batched.fingerprint != per_pair.fingerprint


def test_each_execution_path_has_its_own_fingerprint(model_dir: Path, cache_dir: Path) -> None:
    encoders = {
        name: OnnxCrossEncoder(model_dir, settings(model_dir, cache_dir=cache_dir, **fields))
        for name, fields in PATHS.items()
    }
    assert [e.model_file.name for e in encoders.values()] == [
        "model.onnx",
        "model_int8_static.onnx",
        "model_int8_static.onnx",  # auto: the generated static model
        "model_int8.onnx",
    ]
    assert "quantization=static" in encoders["static-int8"].execution
    assert "runs=per-pair" in encoders["dynamic-int8-per-pair"].execution
    assert encoders["auto"].fingerprint == encoders["static-int8"].fingerprint
    distinct = {e.fingerprint for n, e in encoders.items() if n != "auto"}
    assert len(distinct) == 3
    other_graph = OnnxCrossEncoder(model_dir, settings(model_dir, quantization="none"), None)
    assert other_graph.fingerprint == encoders["fp32"].fingerprint  # stable across loads


def test_static_model_is_keyed_by_the_source_and_ranks_like_fp32(
    model_dir: Path, cache_dir: Path, scifact: Path
) -> None:
    source = inspect(model_dir / "model.onnx")
    generated = inspect(static_model_path(cache_dir, source))
    assert (source.kind, generated.kind) == ("none", "static")
    assert inspect(model_dir / "model_int8.onnx").kind == "dynamic"
    # generating again finds the file instead of recalibrating
    before = generated.path.stat().st_mtime_ns
    assert generate(model_dir, cache_dir, scifact) == generated.path
    assert generated.path.stat().st_mtime_ns == before
    fp32 = OnnxCrossEncoder(model_dir, settings(model_dir, quantization="none"))
    static = OnnxCrossEncoder(model_dir, settings(model_dir, cache_dir=cache_dir))
    query = "what causes lung cancer"
    passages = [
        "Smoking is the leading cause of lung cancer worldwide.",
        "Radon exposure and air pollution also raise lung cancer risk.",
        "The Berlin Wall fell in 1989.",
        "Bananas are rich in potassium.",
    ]
    encoded = fp32.encode([(query, p) for p in passages])
    ref, got = fp32.score(encoded), static.score(encoded)
    assert np.argsort(-got).tolist() == np.argsort(-ref).tolist()


def test_static_needs_a_generated_model(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="needs GATEWAY_MODEL__CACHE_DIR"):
        resolve(model_dir, settings(model_dir, quantization="static"))
    with pytest.raises(ModelError, match=r"generate it with `python -m gateway\.model\.quantize"):
        resolve(model_dir, settings(model_dir, quantization="static", cache_dir=tmp_path))


def test_auto_picks_the_fastest_batch_invariant_cpu_path(model_dir: Path, tmp_path: Path) -> None:
    """No static model generated: the dynamic int8 file, run per pair; an explicit
    MODEL__FILE or another device keeps the file as it is."""
    for cache in (None, tmp_path):
        auto = resolve(model_dir, settings(model_dir, cache_dir=cache))
        assert (auto.path.name, auto.kind, auto.per_pair) == ("model_int8.onnx", "dynamic", True)
    assert resolve(model_dir, settings(model_dir, file="model.onnx")).kind == "none"
    encoder = OnnxCrossEncoder(model_dir, settings(model_dir))
    assert encoder.per_pair and "runs=per-pair" in encoder.execution
    assert isinstance(encoder.feed(encoder.encode([("a", "b"), ("c d", "e f g")])), list)


def test_a_quantized_source_is_refused(model_dir: Path, scifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="already quantized"):
        generate(model_dir, tmp_path, scifact, model_file="model_int8.onnx")


def test_the_execution_path_names_device_precision_and_quantization(model_dir: Path) -> None:
    fp32 = inspect(model_dir / "model.onnx")

    def path(**fields: object) -> str:
        speed = SpeedSettings.model_validate({"openvino_precision": fields.pop("hint", "bf16")})
        return execution_path(fp32, settings(model_dir, **fields), speed)

    assert path() == "device=cpu;precision=model;quantization=none;runs=batched;graph=all"
    bf16, f32 = path(device="openvino"), path(device="openvino", hint="f32")
    assert "precision=bf16" in bf16 and "precision=f32" in f32
    assert len({path(), path(device="cuda"), bf16, f32}) == 4


def test_a_failed_quantization_is_one_error_and_writes_nothing(
    model_dir: Path, tmp_path: Path
) -> None:
    """Feeds the model does not take: NNCF's own exception becomes one ModelError line."""
    out = tmp_path / "static" / "model_int8_static.onnx"
    wrong = [{"not_an_input": np.ones((1, 4), dtype=np.int64)}]
    with pytest.raises(ModelError, match="static quantization failed"):
        quantize_static_int8(model_dir / "model.onnx", out, wrong)
    assert not out.exists()
