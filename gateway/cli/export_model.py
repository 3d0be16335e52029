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
from pathlib import Path

NAME = "export-model"
HELP = "export a Hugging Face cross-encoder to ONNX (source checkout, bench extra)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="ops/export_model.py's")


def run(args: argparse.Namespace) -> int:
    return export(args.arguments)


def export(argv: list[str]) -> int:
    """``ops.export_model.main(argv)`` (``rerank-gateway`` hands it every argument, --help too)."""
    checkout = Path.cwd()
    if (checkout / "ops" / "export_model.py").is_file() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))  # the console script's path does not hold the cwd
    try:
        from ops.export_model import main
    except ImportError as exc:
        print(
            f"export-model: {exc.name} is missing; run it at the root of a source checkout"
            " of rerank-gateway, after `pip install -e '.[bench]'`",
            file=sys.stderr,
        )
        return 1
    return main(argv)
