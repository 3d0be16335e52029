"""The ONNX cross-encoder's speed paths on the real model: feed/run split (pipelining),
IO binding, session options, model file variants, and provider selection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from gateway.errors import ModelError
from gateway.model.base import FeedRunner
from gateway.model.loader import load_encoder
from gateway.model.onnx import (
    OnnxCrossEncoder,
    provider_options_for,
    providers_for,
    session_options,
)
from gateway.settings import ModelSettings, SpeedSettings

PAIRS = [
    ("what causes lung cancer", "Smoking is the leading cause of lung cancer worldwide."),
    ("what causes lung cancer", "The Berlin Wall fell in 1989."),
    ("what causes lung cancer", "Radon exposure and air pollution also raise lung cancer risk."),
    ("what causes lung cancer", "Bananas are rich in potassium."),
]


def model(model_dir: Path, **fields: object) -> ModelSettings:
    """fp32 ``model.onnx`` as it is, unless ``fields`` say otherwise."""
    return ModelSettings.model_validate(
        {"path": model_dir, "intra_op_threads": 1, "quantization": "none", **fields}
    )


def speed(**fields: object) -> SpeedSettings:
    return SpeedSettings.model_validate(fields)


@pytest.fixture(scope="module")
def fp32(model_dir: Path) -> Iterator[OnnxCrossEncoder]:
    yield OnnxCrossEncoder(model_dir, model(model_dir))


def test_score_is_run_of_feed(fp32: OnnxCrossEncoder) -> None:
    assert isinstance(fp32, FeedRunner)
    encoded = fp32.encode(PAIRS)
    feed = fp32.feed(encoded)
    assert isinstance(feed, dict)
    assert feed["input_ids"].shape == (4, max(len(e) for e in encoded))
    assert fp32.run(feed).tolist() == fp32.score(encoded).tolist()
    scores = fp32.score(encoded)
    assert scores.argmax() == 0 and scores[1] < scores[2]  # a real model, not noise


def test_io_binding_gives_the_same_scores(model_dir: Path, fp32: OnnxCrossEncoder) -> None:
    bound = OnnxCrossEncoder(model_dir, model(model_dir), speed(io_binding="on"))
    assert bound.io_binding and not fp32.io_binding  # auto: only on cuda
    encoded = bound.encode(PAIRS)
    feed = bound.feed(encoded)
    assert not isinstance(feed, dict)  # inputs already bound
    np.testing.assert_allclose(bound.run(feed), fp32.score(encoded), rtol=1e-5, atol=1e-5)


def test_graph_optimization_level_is_a_setting(model_dir: Path, fp32: OnnxCrossEncoder) -> None:
    options = session_options(
        model(model_dir, inter_op_threads=2), speed(graph_optimization="basic")
    )
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    plain = OnnxCrossEncoder(model_dir, model(model_dir), speed(graph_optimization="disabled"))
    encoded = fp32.encode(PAIRS)
    np.testing.assert_allclose(plain.score(encoded), fp32.score(encoded), atol=1e-3)


def test_int8_file_ranks_like_fp32(model_dir: Path, fp32: OnnxCrossEncoder) -> None:
    int8 = load_encoder(model(model_dir, file="model_int8.onnx"), speed())
    assert isinstance(int8, OnnxCrossEncoder) and int8.model_file.name == "model_int8.onnx"
    assert int8.fingerprint != fp32.fingerprint  # cached scores of one never serve the other
    encoded = fp32.encode(PAIRS)
    ref, got = fp32.score(encoded), int8.score(encoded)
    assert np.argsort(-got).tolist() == np.argsort(-ref).tolist()


@pytest.mark.parametrize(
    ("device", "package"),
    [("cuda", "onnxruntime-gpu"), ("openvino", "onnxruntime-openvino")],
)
def test_a_missing_provider_fails_clearly(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, device: str, package: str
) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ModelError, match=f"install {package} in place of onnxruntime"):
        OnnxCrossEncoder(model_dir, model(model_dir, device=device))


def test_provider_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    assert providers_for("cuda") == available  # CPU stays as the fallback for unsupported ops


def test_a_provider_that_falls_back_to_the_cpu_stops_start_up(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime only warns when the asked provider cannot start; the gateway refuses."""
    listed = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    with (
        pytest.warns(UserWarning, match="CUDAExecutionProvider"),
        pytest.raises(ModelError, match="CUDAExecutionProvider failed to start"),
    ):
        OnnxCrossEncoder(model_dir, model(model_dir, device="cuda"))


def test_openvino_provider_options() -> None:
    speed = SpeedSettings.model_validate({})
    got = provider_options_for("openvino", speed)
    assert got["device_type"] == "CPU"
    assert json.loads(got["load_config"]) == {
        "CPU": {"INFERENCE_PRECISION_HINT": "bf16", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}
    }
    speed = SpeedSettings.model_validate(
        {"openvino_precision": "f32", "provider_options": {"num_of_threads": "2"}}
    )
    got = provider_options_for("openvino", speed)
    assert json.loads(got["load_config"])["CPU"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert got["num_of_threads"] == "2"
    assert provider_options_for("cpu", speed) == {"num_of_threads": "2"}


def test_per_pair_runs_side_by_side_with_the_scores_of_one_lane(model_dir: Path) -> None:
    """The dynamic int8 file runs one pair per run; on the CPU its pairs run on lanes of
    one thread each, and a pair gets the score it gets alone on one lane, in feed order."""
    settings = model(model_dir, quantization="dynamic", intra_op_threads=2)
    one = OnnxCrossEncoder(model_dir, settings, speed(pair_lanes=1))
    two = OnnxCrossEncoder(model_dir, settings, speed())  # one lane per model thread
    batched = OnnxCrossEncoder(model_dir, model(model_dir, intra_op_threads=2), speed())
    assert (one.lanes, two.lanes, batched.lanes) == (1, 2, 1)
    assert one.per_pair and two.per_pair
    encoded = one.encode(PAIRS * 3)
    alone = np.concatenate([one.score([e]) for e in encoded])
    side_by_side = two.score(encoded)
    assert side_by_side.shape == (len(encoded),)
    np.testing.assert_allclose(side_by_side, alone, atol=1e-6)
    assert len(set(np.round(side_by_side, 4).tolist())) == 4  # four distinct pairs, in order
    np.testing.assert_allclose(side_by_side[:4], side_by_side[4:8], atol=1e-6)
    assert one.fingerprint == two.fingerprint
