"""Generate the OpenVINO int8 model: NNCF static quantization of ``model.onnx``, saved as
OpenVINO IR into the model cache directory (``GATEWAY_MODEL__CACHE_DIR``)::

    python -m gateway.model.openvino_quantize --model-dir DIR --cache-dir CACHE \\
        --calibration /path/to/beir/scifact          # queries/corpus + qrels/train.tsv

``MODEL__BACKEND=openvino`` with ``MODEL__QUANTIZATION=auto`` (or ``static``) then runs it.
Recipe: NNCF's transformer model type and mixed preset (weights int8 symmetric per
channel, activations with fixed scales from calibration), calibration pairs from the
*train* split one pair at a time (so padding never widens a range), and the
feed-forward MatMuls kept in f32 like the onnxruntime static recipe
(``gateway.model.quantize.KEEP_FP32``): the layers that quantize worst. Needs the
``openvino`` extra (openvino + nncf).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from gateway.errors import ModelError
from gateway.model.openvino import OV_RECIPE, ov_static_path
from gateway.model.quantize import KEEP_FP32, calibration_pairs, command, pair_feeds
from gateway.model.variants import inspect


def generate(
    model_dir: Path,
    cache_dir: Path,
    calibration: Path,
    *,
    model_file: str = "model.onnx",
    n_pairs: int = 128,
    max_length: int = 256,
    force: bool = False,
) -> Path:
    """The OpenVINO int8 model of ``model_dir/model_file`` in ``cache_dir`` (built if missing)."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise ModelError(
            "generating the OpenVINO int8 model needs openvino and nncf: "
            "pip install 'rerank-gateway[openvino]'"
        ) from exc
    path = model_dir / model_file
    if not path.is_file():
        raise ModelError(f"no {path}")
    source = inspect(path)
    if source.kind != "none":
        raise ModelError(f"{path} is already quantized ({source.kind}); start from fp32")
    out = ov_static_path(cache_dir, source)
    if out.is_file() and not force:
        return out
    pairs = calibration_pairs(calibration, n_pairs)
    feeds = pair_feeds(model_dir / "tokenizer.json", pairs, max_length)
    model = ov.Core().read_model(str(path))
    names = {port.get_any_name() for port in model.inputs}
    feeds = [{k: v for k, v in feed.items() if k in names} for feed in feeds]
    quantized = nncf.quantize(
        model,
        nncf.Dataset(feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(feeds),
        ignored_scope=nncf.IgnoredScope(patterns=_ignored(), validate=False),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        ov.save_model(quantized, str(staged), compress_to_fp16=False)
        staged.with_suffix(".bin").replace(out.with_suffix(".bin"))
        staged.replace(out)
    manifest = {
        "source": str(path),
        "source_sha256": source.sha256,
        "recipe": OV_RECIPE,
        "keep_fp32": list(KEEP_FP32),
        "calibration": {"dir": str(calibration), "split": "train", "pairs": len(pairs)},
        "openvino": ov.get_version(),
    }
    (out.parent / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def _ignored() -> list[str]:
    """KEEP_FP32 as NNCF name patterns, copies included (the pair graph runs the encoder
    twice: ``dense/MatMul`` and ``dense_1/MatMul`` share one weight)."""
    return [".*" + k.replace("dense/", r"dense(_\d+)?/") + ".*" for k in KEEP_FP32]


def main(argv: list[str] | None = None) -> int:
    return command(__doc__ or "", generate, argv)


if __name__ == "__main__":
    sys.exit(main())
