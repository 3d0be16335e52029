"""``rerank-gateway export-model``: export a Hugging Face cross-encoder to the gateway's
ONNX layout (``model.onnx``, ``tokenizer.json``, int8 / fp16 variants).

Runs ``ops/export_model.py`` with the arguments given (``--help`` lists them); it
needs a source checkout (the export shares its measuring code with ``ops/``) and
the ``bench`` extra (torch, transformers, onnx). The gateway itself needs neither:
a Hub repository with an ONNX export is used as it is (``--model HUB_ID``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "export-model",
        help="export a Hugging Face cross-encoder to ONNX (source checkout, bench extra)",
        description=__doc__,
        add_help=False,  # --help is the exporter's own
    )
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="ops/export_model.py's")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ops.export_model import main
    except ImportError as exc:
        print(
            f"export-model: {exc.name} is missing; run it from a source checkout of"
            " rerank-gateway with `pip install -e '.[bench]'`",
            file=sys.stderr,
        )
        return 1
    return main(args.arguments)
