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

import sys
import tempfile
from pathlib import Path

from gateway.errors import ModelError
from gateway.model.openvino import OV_RECIPE, ov_static_path
from gateway.model.quantize import KEEP_FP32, Feeds, Generator, command, nncf_int8


def _nncf_int8(source: Path, out: Path, feeds: Feeds) -> dict[str, str]:
    """NNCF's static int8 of ``source`` saved as OpenVINO IR at ``out`` (atomically)."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise ModelError(
            "generating the OpenVINO int8 model needs openvino and nncf: "
            "pip install 'rerank-gateway[openvino]'"
        ) from exc
    model = ov.Core().read_model(str(source))
    names = {port.get_any_name() for port in model.inputs}
    dataset = [{k: v for k, v in feed.items() if k in names} for feed in feeds]
    quantized = nncf_int8(model, dataset, nncf.IgnoredScope(patterns=_ignored(), validate=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        ov.save_model(quantized, str(staged), compress_to_fp16=False)
        staged.with_suffix(".bin").replace(out.with_suffix(".bin"))
        staged.replace(out)
    return {"openvino": ov.get_version()}


# The OpenVINO int8 model of ``model_dir/model_file`` in ``cache_dir`` (built if missing).
generate = Generator(OV_RECIPE, ov_static_path, _nncf_int8)


def _ignored() -> list[str]:
    """KEEP_FP32 as NNCF name patterns, copies included (the pair graph runs the encoder
    twice: ``dense/MatMul`` and ``dense_1/MatMul`` share one weight)."""
    return [".*" + k.replace("dense/", r"dense(_\d+)?/") + ".*" for k in KEEP_FP32]


def main(argv: list[str] | None = None) -> int:
    return command(__doc__ or "", generate, argv)


if __name__ == "__main__":
    sys.exit(main())
