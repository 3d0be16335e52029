"""Fetch an ONNX cross-encoder from the Hugging Face Hub (needs the ``hub`` extra and network)."""

from __future__ import annotations

from pathlib import Path

from gateway.errors import ModelError

# Where cross-encoder repositories on the Hub keep their ONNX export.
_ONNX_CANDIDATES = ("model.onnx", "onnx/model.onnx")


def download(hub_id: str, file: str = "model.onnx") -> Path:
    """Download ``hub_id`` (tokenizer + ONNX weights) and return the local directory.

    The returned directory holds ``tokenizer.json`` and the ONNX file (found at the
    repository root or under ``onnx/``); pass it as the model path.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ModelError(
            "GATEWAY_MODEL__PATH is unset and huggingface-hub is not installed: "
            "pip install 'rerank-gateway[hub]' or point GATEWAY_MODEL__PATH at a model directory"
        ) from exc
    patterns = ["tokenizer.json", "config.json", file, f"onnx/{file}"]
    try:
        local = Path(snapshot_download(hub_id, allow_patterns=patterns))
    except Exception as exc:  # the hub client raises many types; one boundary translates them
        raise ModelError(f"could not download model {hub_id!r} from the Hugging Face Hub") from exc
    return local


def locate_onnx(directory: Path, file: str) -> Path:
    """The ONNX file inside a model directory (root or ``onnx/``)."""
    for candidate in (file, f"onnx/{file}", *_ONNX_CANDIDATES):
        path = directory / candidate
        if path.is_file():
            return path
    raise ModelError(f"no ONNX model file {file!r} in {directory}")
