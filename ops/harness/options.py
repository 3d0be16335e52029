"""Command-line options for paths: given on the command line, or by a ``GATEWAY_*`` variable.

No option falls back to a path of one machine: without the flag (and the variable, where
one is named) argparse stops with ``the following arguments are required: --flag``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def path_option(
    parser: argparse.ArgumentParser, flag: str, help: str, *, env: str | None = None
) -> None:
    """``flag`` (a ``Path``): required, unless ``env`` names a variable that is set."""
    default = os.environ.get(env) if env else None
    if env:
        help = f"{help} (default: ${env})"
    parser.add_argument(flag, type=Path, default=default, required=default is None, help=help)


def model_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--model-dir``: the ONNX model directory, as the gateway reads ``GATEWAY_MODEL__PATH``."""
    path_option(
        parser,
        "--model-dir",
        "model directory (model.onnx, tokenizer.json)",
        env="GATEWAY_MODEL__PATH",
    )


def data_option(parser: argparse.ArgumentParser, flag: str = "--data") -> None:
    """``--data``: a BEIR directory (corpus.jsonl, queries.jsonl, qrels/)."""
    path_option(parser, flag, "BEIR dataset directory (corpus.jsonl, queries.jsonl, qrels/)")
