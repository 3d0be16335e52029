"""A fine-tuned cross-encoder in the registry: a model directory with its own revision, stamped
with the fingerprint the ONNX backend adds to the score cache's (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateway.learning.ranker import train_linear
from gateway.learning.registry import CROSS_ENCODER, Registry, RegistryError, fingerprint
from gateway.model.local import REGISTRY_FILE, registered_as
from gateway.offline.fine_tune import ModelDirectory


def exported(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    out.mkdir()
    (out / "model.onnx").write_bytes(b"onnx of " + name.encode())
    (out / "tokenizer.json").write_text("{}")
    return out


def test_each_registration_is_a_new_revision_with_its_stamp(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    one = registry.register(
        "ce", ModelDirectory(exported(tmp_path, "a")), data_window={}, metrics={"p_value": 0.5}
    )
    two = registry.register(
        "ce",
        ModelDirectory(exported(tmp_path, "b")),
        data_window={"from": 1.0, "to": 2.0},
        metrics={},
    )
    assert (one.revision, two.revision) == ("r1", "r2")
    assert (one.kind, one.fingerprint, two.fingerprint) == (CROSS_ENCODER, "ce:ce@r1", "ce:ce@r2")
    assert registry.entry("ce", "r2").data_window == {"from": 1.0, "to": 2.0}
    served = registry.model_dir("ce@r2")
    assert (served / "model.onnx").read_bytes() == b"onnx of b"
    stamp = json.loads((served / REGISTRY_FILE).read_text())
    assert stamp == {"name": "ce", "revision": "r2", "fingerprint": "ce:ce@r2"}
    assert registered_as(served) == "ce:ce@r2" and registered_as(tmp_path / "a") is None
    assert [j["action"] for j in registry.journal("ce")] == ["register", "register"]


def test_rankers_and_model_directories_are_not_confused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.register("ce", ModelDirectory(exported(tmp_path, "a")), data_window={}, metrics={})
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    model = train_linear(rows, [1, 0, 1, 0], [2, 2], ["a", "b"])
    registry.register("ltr", model, data_window={}, metrics={})
    with pytest.raises(RegistryError, match=r"GATEWAY_MODEL__PATH=.*ce/r1/model"):
        registry.load("ce@r1")
    with pytest.raises(RegistryError, match="not a model directory"):
        registry.model_dir("ltr@r1")
    assert registry.load("ltr@r1")[0].fingerprint == "ltr:ltr@r1" == fingerprint("ltr", "r1")


def test_an_unreadable_stamp_is_a_model_error(tmp_path: Path) -> None:
    from gateway.errors import ModelError

    (tmp_path / REGISTRY_FILE).write_text("{not json")
    with pytest.raises(ModelError, match=REGISTRY_FILE):
        registered_as(tmp_path)
