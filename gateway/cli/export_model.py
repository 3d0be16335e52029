"""``rerank-gateway export-model``: export a Hugging Face cross-encoder to the gateway's
ONNX layout (``model.onnx``, ``tokenizer.json``, int8 / fp16 variants).

    rerank-gateway export-model --model cross-encoder/ms-marco-MiniLM-L-6-v2 --out DIR
    rerank-gateway export-model --from-onnx EXISTING_DIR --out DIR    # variants only

``--model`` needs the ``export`` extra (torch, transformers, onnx); ``--from-onnx`` only
``onnx``. The gateway itself needs neither: a Hub repository with an ONNX export is used
as it is (``serve --model HUB_ID``). The batch-invariant static int8 file comes from
``python -m gateway.model.quantize``; ``python -m ops.invariance_speed`` (a checkout)
measures each CPU variant's speed and agreement with fp32.
"""

from __future__ import annotations

import argparse
import sys

NAME = "export-model"
HELP = "export a Hugging Face cross-encoder to the gateway's ONNX layout"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="HF hub id or local HF model dir (cross-encoder)")
    src.add_argument("--from-onnx", help="dir with model.onnx + tokenizer.json (+ config.json)")
    ap.add_argument("--out", required=True, help="output dir (models are never committed)")
    ap.add_argument("--max-length", type=int, default=512, help="tokenizer truncation (--model)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--num-heads", type=int, default=0, help="override config.json")
    ap.add_argument("--hidden-size", type=int, default=0, help="override config.json")
    ap.add_argument("--no-fp16", action="store_true")


configure = add_arguments


def run(args: argparse.Namespace) -> int:
    try:
        from gateway.model import export
    except ImportError as exc:  # pragma: no cover - numpy is a dependency
        print(f"export-model: {exc.name} is missing", file=sys.stderr)
        return 1
    try:
        return export.run(args)
    except ImportError as exc:
        print(
            f"export-model: {exc.name} is missing: pip install 'rerank-gateway[export]'"
            " (torch, transformers and onnx for --model; onnx for --from-onnx)",
            file=sys.stderr,
        )
        return 1
