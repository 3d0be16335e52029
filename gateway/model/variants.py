"""Which ONNX file runs, what kind of quantization it carries, and how it must be run.

``MODEL__QUANTIZATION`` picks the file:

* ``none``: ``MODEL__FILE`` from the model directory (fp32 ``model.onnx`` by default).
* ``static``: the static int8 (QDQ) model generated from ``MODEL__FILE`` into
  ``MODEL__CACHE_DIR`` by ``python -m gateway.model.quantize``.
* ``dynamic``: the dynamic int8 ``model_int8.onnx`` of the model directory.
* ``auto`` (default): ``static`` when it has been generated; else, on the CPU with
  ``MODEL__FILE`` left at its default, ``dynamic`` when the directory has
  ``model_int8.onnx`` (run per pair: the fastest batch-invariant CPU path measured,
  see ``ops/invariance_speed.py``); else ``none``.

A dynamically quantized graph computes its activation scales over the whole
input, so a pair's score would depend on its batch-mates: such a file is run one
pair per run (batch-invariant by construction) unless
``MODEL__ALLOW_BATCH_DEPENDENT=true``. The kind is read from the file itself, so a
dynamic file named by ``MODEL__FILE`` is treated the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.errors import ModelError
from gateway.model.hub import locate_onnx
from gateway.settings import OnnxModel

DYNAMIC_FILE = "model_int8.onnx"
STATIC_FILE = "model_int8_static.onnx"
# Bumped when the static recipe changes, so an old generated file is never picked up.
STATIC_RECIPE = "qdq-nncf-transformer-mixed-ffnfp32-v3"
Kind = Literal["none", "static", "dynamic"]
# ONNX op types that quantize activations at run time (over the whole input tensor).
_DYNAMIC_OPS = (b"DynamicQuantizeLinear", b"DynamicQuantizeMatMul")
_STATIC_OPS = (b"QuantizeLinear",)


@dataclass(frozen=True, slots=True)
class ModelFile:
    path: Path
    sha256: str
    kind: Kind

    @property
    def per_pair(self) -> bool:
        """Whether only one pair per run keeps scores independent of batch-mates."""
        return self.kind == "dynamic"


def inspect(path: Path) -> ModelFile:
    """Content hash and quantization kind, read in one pass over the file."""
    digest = hashlib.sha256()
    found: set[bytes] = set()
    tail = b""
    width = max(len(op) for op in (*_DYNAMIC_OPS, *_STATIC_OPS))
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            window = tail + chunk
            found.update(op for op in (*_DYNAMIC_OPS, *_STATIC_OPS) if op in window)
            tail = window[-width:]
    kind: Kind = "none"
    if found & set(_DYNAMIC_OPS):
        kind = "dynamic"
    elif found & set(_STATIC_OPS):
        kind = "static"
    return ModelFile(path, digest.hexdigest(), kind)


def static_model_path(cache_dir: Path, source: ModelFile) -> Path:
    """Where the static model generated from ``source`` lives: keyed by its content."""
    return cache_dir / f"{source.sha256[:16]}-{STATIC_RECIPE}" / STATIC_FILE


def resolve(directory: Path, settings: OnnxModel) -> ModelFile:
    """The file ``settings`` asks for, inspected; fails clearly when it is missing."""
    if settings.quantization == "dynamic":
        return inspect(locate_onnx(directory, DYNAMIC_FILE))
    source = inspect(locate_onnx(directory, settings.file))
    if settings.quantization == "none" or source.kind != "none":
        return source
    if settings.cache_dir is None:
        if settings.quantization == "static":
            raise ModelError("GATEWAY_MODEL__QUANTIZATION=static needs GATEWAY_MODEL__CACHE_DIR")
        return _auto_dynamic(directory, settings, source)
    generated = static_model_path(settings.cache_dir, source)
    if generated.is_file():
        return inspect(generated)
    if settings.quantization == "static":
        raise ModelError(
            f"no static int8 model in {settings.cache_dir} for {source.path}: generate it with "
            f"`python -m gateway.model.quantize --model-dir {directory} "
            f"--cache-dir {settings.cache_dir} --calibration BEIR_DIR`"
        )
    return _auto_dynamic(directory, settings, source)


def _auto_dynamic(directory: Path, settings: OnnxModel, source: ModelFile) -> ModelFile:
    """``auto`` without a static model: the dynamic int8 file (per pair) on the CPU."""
    dynamic = directory / DYNAMIC_FILE
    if settings.device != "cpu" or "file" in settings.model_fields_set or not dynamic.is_file():
        return source
    return inspect(dynamic)


def file_digest(*paths: Path) -> str:
    """sha256 over the files' contents, in order (model + tokenizer fingerprints)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\x00")
    return digest.hexdigest()
