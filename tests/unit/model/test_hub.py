"""gateway.model.hub: which files of a Hub repository make the model; MODEL__FILE is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ModelError
from gateway.model.hub import HubFiles, choose_files, locate_onnx

# A cross-encoder repository with an ONNX export (like cross-encoder/ms-marco-MiniLM-L-6-v2):
# PyTorch weights, the tokenizer at the root, an onnx/ folder of variants.
CROSS_ENCODER = [
    ".gitattributes",
    "README.md",
    "config.json",
    "model.safetensors",
    "onnx/model.onnx",
    "onnx/model_O1.onnx",
    "onnx/model_qint8_arm64.onnx",
    "onnx/model_qint8_avx512.onnx",
    "onnx/model_quint8_avx2.onnx",
    "pytorch_model.bin",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
]


def test_the_onnx_export_and_the_tokenizer() -> None:
    assert choose_files("ce", CROSS_ENCODER, "model.onnx") == HubFiles(
        "onnx/model.onnx", "tokenizer.json"
    )


def test_a_quantized_variant_by_name() -> None:
    chosen = choose_files("ce", CROSS_ENCODER, "model_qint8_avx512.onnx")
    assert chosen.all == ["tokenizer.json", "onnx/model_qint8_avx512.onnx"]


def test_the_root_wins_and_external_weights_come_along() -> None:
    files = ["model.onnx", "model.onnx_data", "onnx/model.onnx", "tokenizer.json"]
    assert choose_files("big", files, "model.onnx") == HubFiles(
        "model.onnx", "tokenizer.json", ("model.onnx_data",)
    )


def test_a_tokenizer_beside_the_graph() -> None:
    files = ["onnx/model.onnx", "onnx/tokenizer.json"]
    assert choose_files("x", files, "model.onnx").tokenizer == "onnx/tokenizer.json"


@pytest.mark.parametrize(
    ("files", "file", "message"),
    [
        (
            ["pytorch_model.bin", "tokenizer.json"],
            "model.onnx",
            "org/m has no ONNX export (no .onnx file in the repository)",
        ),
        (
            CROSS_ENCODER,
            "model_int8.onnx",
            "GATEWAY_MODEL__FILE=model_int8.onnx is not in org/m; its ONNX files: onnx/model.onnx,"
            " onnx/model_O1.onnx, onnx/model_qint8_arm64.onnx",
        ),
        (["onnx/model.onnx", "vocab.txt"], "model.onnx", "org/m has no tokenizer.json"),
    ],
    ids=["no-onnx", "no-such-file", "no-tokenizer"],
)
def test_what_is_missing_is_said(files: list[str], file: str, message: str) -> None:
    with pytest.raises(ModelError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        choose_files("org/m", files, file)


def test_locate_onnx_takes_no_stand_in(tmp_path: Path) -> None:
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model_O2.onnx").write_bytes(b"")
    (tmp_path / "model.onnx").write_bytes(b"")
    assert locate_onnx(tmp_path, "model_O2.onnx") == tmp_path / "onnx" / "model_O2.onnx"
    with pytest.raises(ModelError) as caught:
        locate_onnx(tmp_path, "model_int8.onnx")
    assert str(caught.value) == (
        f"GATEWAY_MODEL__FILE=model_int8.onnx is not in {tmp_path};"
        " it has model.onnx, onnx/model_O2.onnx"
    )
