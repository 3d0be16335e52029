"""gateway.settings by concept: MODEL__* as a union of backends, CommaList, one profile class."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.cli.config import ConfigError, load_settings
from gateway.settings import (
    ModelSettings,
    OnnxModel,
    PoolModel,
    ProfileSettings,
    RelevanceSettings,
    RerankSettings,
    Settings,
    TeiModel,
)


def model_from_env(monkeypatch: pytest.MonkeyPatch, **variables: str) -> ModelSettings:
    """``Settings().model`` read from ``GATEWAY_MODEL__<NAME>`` = each of ``variables``."""
    for name, value in variables.items():
        monkeypatch.setenv(f"GATEWAY_MODEL__{name}", value)
    return Settings().model


@pytest.mark.parametrize(
    ("variables", "kind", "expected"),
    [
        pytest.param(
            {"DEVICE": "openvino", "MAX_LENGTH": "128"},
            OnnxModel,
            {"backend": "onnx", "device": "openvino", "max_length": 128},
            id="unset-is-onnx",
        ),
        pytest.param(
            {"BACKEND": "onnx", "HUB_ID": "org/ce", "FILE": "onnx/model_int8.onnx"},
            OnnxModel,
            {"path": None, "hub_id": "org/ce", "file": "onnx/model_int8.onnx"},
            id="onnx",
        ),
        pytest.param(
            {
                "BACKEND": "tei",
                "TEI_URL": "http://tei:80/",
                "TEI_MAX_BATCH": "8",
                "SCORE_MODE": "sigmoid",
            },
            TeiModel,
            {"tei_url": "http://tei:80", "tei_max_batch": 8, "score_mode": "sigmoid"},
            id="tei",
        ),
    ],
)
def test_model_backend_from_env(
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    kind: type,
    expected: dict[str, object],
) -> None:
    model = model_from_env(monkeypatch, **variables)
    assert isinstance(model, kind)
    assert {name: getattr(model, name) for name in expected} == expected


def test_model_file_from_env_counts_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_from_env(
        monkeypatch, BACKEND="onnx", HUB_ID="org/ce", FILE="onnx/model_int8.onnx"
    )
    assert "file" in model.model_fields_set  # MODEL__QUANTIZATION=auto reads it


def test_model_backend_pool_from_env_comma_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_from_env(
        monkeypatch,
        BACKEND="pool",
        POOL_URLS="http://a:1/v1/rerank, http://b:2/v1/rerank",
        POOL_PROTOCOL="tei",
    )
    assert isinstance(model, PoolModel)
    assert model.pool_urls == ["http://a:1/v1/rerank", "http://b:2/v1/rerank"]
    assert model.pool_protocol == "tei"
    again = model_from_env(monkeypatch, POOL_URLS='["http://c:3/v1/rerank"]')
    assert isinstance(again, PoolModel)
    assert again.pool_urls == ["http://c:3/v1/rerank"]


def test_another_backends_fields_are_dropped_unknown_ones_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An image sets MODEL__DEVICE=cuda; the operator picks TEI: that still starts."""
    model = model_from_env(monkeypatch, BACKEND="tei", TEI_URL="http://tei:80", DEVICE="cuda")
    assert isinstance(model, TeiModel)
    assert not hasattr(model, "device")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ModelSettings.model_validate({"backend": "tei", "tei_url": "http://t", "devise": "cpu"})


def test_model_settings_builds_the_backend_it_names() -> None:
    assert type(ModelSettings()) is OnnxModel
    assert type(ModelSettings(backend="pool", pool_urls="http://p:1")) is PoolModel
    assert type(ModelSettings.model_validate({"backend": "tei", "tei_url": "http://t"})) is TeiModel
    assert type(OnnxModel.model_validate({"max_length": 64})) is OnnxModel


def test_relevance_models_are_backends_too() -> None:
    relevance = RelevanceSettings.model_validate(
        {"models": {"remote": {"backend": "tei", "tei_url": "http://t"}, "int8": {}}}
    )
    assert isinstance(relevance.models["remote"], TeiModel)
    assert isinstance(relevance.models["int8"], OnnxModel)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"GATEWAY_MODEL__BACKEND": "triton"},
            "GATEWAY_MODEL__BACKEND: Input should be 'onnx', 'openvino', 'tei' or 'pool'",
        ),
        (
            {"GATEWAY_MODEL__BACKEND": "tei"},
            "GATEWAY_MODEL: MODEL__BACKEND=tei needs MODEL__TEI_URL",
        ),
        (
            {"GATEWAY_MODEL__BACKEND": "tei", "GATEWAY_MODEL__TEI_URL": "tei:80"},
            "GATEWAY_MODEL__TEI_URL: 'tei:80' is not an http(s) URL",
        ),
        (
            {"GATEWAY_MODEL__BACKEND": "pool"},
            "GATEWAY_MODEL: MODEL__BACKEND=pool needs MODEL__POOL_URLS",
        ),
        (
            {"GATEWAY_MODEL__BACKEND": "pool", "GATEWAY_MODEL__POOL_URLS": "http://a,ftp://b"},
            "GATEWAY_MODEL__POOL_URLS: 'ftp://b' is not an http(s) URL",
        ),
        (
            {"GATEWAY_MODEL__DEVICE": "tpu"},
            "GATEWAY_MODEL__DEVICE: Input should be 'cpu', 'cuda' or 'openvino'",
        ),
    ],
)
def test_model_errors_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], line: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.lines == [line]


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("GATEWAY_UPSTREAM__URLS", ("upstream", "urls")),
        ("GATEWAY_RERANK__FIELDS", ("rerank", "fields")),
        ("GATEWAY_RERANK__INDICES", ("rerank", "indices")),
        ("GATEWAY_ACCESS__INDICES", ("access", "indices")),
        ("GATEWAY_EMBEDDER__TEXT_FIELDS", ("embedder", "text_fields")),
        ("GATEWAY_EMBEDDER__WRITE_INDICES", ("embedder", "write_indices")),
        ("GATEWAY_RELEVANCE__REQUEST_PROFILES", ("relevance", "request_profiles")),
    ],
)
def test_every_list_takes_commas_or_json(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: tuple[str, str]
) -> None:
    section, name = field
    values = ["http://a:1", "http://b:2"] if section == "upstream" else ["x-*", "y.z"]
    monkeypatch.setenv(variable, f" {values[0]} ,{values[1]},")
    assert getattr(getattr(Settings(), section), name) == values
    monkeypatch.setenv(variable, f'["{values[0]}", "{values[1]}"]')
    assert getattr(getattr(Settings(), section), name) == values


def test_the_default_profile_and_a_named_one_are_one_class() -> None:
    rerank = RerankSettings(window=30, fields=["title"], timeout_s=2.0)
    relevance = RelevanceSettings.model_validate(
        {
            "score_use": "linear",
            "weight": 0.5,
            "profiles": {"papers": {"indices": "papers-*", "window": 50, "chunk_tokens": 64}},
        }
    )
    default = relevance.default_profile(rerank)
    assert isinstance(default, ProfileSettings)
    assert (default.window, default.fields, default.timeout_s) == (30, ["title"], 2.0)
    assert (default.score_use, default.weight, default.indices) == ("linear", 0.5, [])
    papers = relevance.profiles["papers"].over(default)
    assert (papers.window, papers.fields, papers.indices) == (50, ["title"], ["papers-*"])
    assert (papers.score_use, papers.weight, papers.chunk_tokens) == ("linear", 0.5, 64)


def test_a_profile_over_its_base_is_validated_together() -> None:
    named = ProfileSettings.model_validate({"chunk_tokens": 16})
    with pytest.raises(ValidationError, match="chunk_overlap must be smaller"):
        named.over(ProfileSettings())  # the base's overlap (32) no longer fits


def test_the_whole_model_section_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MODEL", '{"backend": "tei", "tei_url": "http://tei:80"}')
    model = load_settings().model
    assert isinstance(model, TeiModel)
    assert model.tei_url == "http://tei:80"
