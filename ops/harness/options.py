"""Command-line options for paths: given on the command line, or by a ``GATEWAY_*`` variable.

No option falls back to a path of one machine: without the flag (and the variable, where
one is named) argparse stops with ``the following arguments are required: --flag``.
``reranker_options`` adds the learning loop's corpus and reranker options, and
``reranker_sections`` turns them into the gateway's settings sections.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ops.harness.users import FIELDS


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


def reranker_options(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--model-dir``, ``--model-file``, ``--max-length``, ``--window``: the
    corpus and the reranker of the learning loop's tools (``learn_sim``, ``learn_canary``)."""
    data_option(parser)
    model_dir_option(parser)
    parser.add_argument("--model-file", default="model_int8.onnx")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--window", type=int, default=20)


def reranker_sections(args: argparse.Namespace) -> dict[str, Any]:
    """The ``model`` and ``rerank`` settings sections of ``reranker_options``."""
    return {
        "model": {
            "path": str(args.model_dir),
            "file": args.model_file,
            "max_length": args.max_length,
        },
        "rerank": {"window": args.window, "timeout_s": 600.0, "fields": list(FIELDS)},
    }
