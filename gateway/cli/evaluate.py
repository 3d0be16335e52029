"""``rerank-gateway eval``: nDCG@10, Recall@100, MRR@10 through the gateway, per variant.

Every judged query of a BEIR-layout dataset (corpus, queries, qrels) goes through
the gateway as ``baseline`` (``X-Rerank: off``) and as each rerank variant; see
``gateway.offline.evaluation``. Needs ``ir-measures``: ``pip install 'rerank-gateway[eval]'``.

::

    rerank-gateway eval --data data/scifact --gateway http://127.0.0.1:9201 \\
        --index-into http://127.0.0.1:9200 --check-offline --model-dir models/minilm
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

NAME = "eval"
HELP = "offline evaluation on judged queries (BEIR layout)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="BEIR dataset directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--gateway", required=True, help="gateway base URL")
    parser.add_argument("--index", default="scifact")
    parser.add_argument(
        "--index-into", help="search server URL: (re)create the index and bulk-load"
    )
    parser.add_argument("--variant", action="append", help="rerank variant: NAME[:window=N]")
    parser.add_argument("--depth", type=int, default=100, help="hits per query")
    parser.add_argument("--baseline-only", action="store_true", help="no rerank variant")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--limit", type=int, default=0, help="first N queries only")
    parser.add_argument(
        "--check-offline", action="store_true", help="also score the candidates with the model"
    )
    parser.add_argument(
        "--model-dir",
        default=os.environ.get("GATEWAY_MODEL__PATH"),
        help="model directory for --check-offline (default: $GATEWAY_MODEL__PATH)",
    )
    parser.add_argument(
        "--model-file",
        default=None,
        help="ONNX file for --check-offline (default: the file the gateway picks by default)",
    )


def run(args: argparse.Namespace) -> int:
    if args.check_offline and not args.model_dir:
        print("eval: --check-offline needs --model-dir (or GATEWAY_MODEL__PATH)", file=sys.stderr)
        return 2
    if args.check_offline and args.model_file:
        # Before the queries run, not after: the whole evaluation would be lost.
        from gateway.errors import ModelError
        from gateway.model.hub import locate_onnx

        try:
            locate_onnx(Path(args.model_dir), args.model_file, f"--model-file {args.model_file}")
        except ModelError as exc:
            print(f"eval: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
    try:
        from gateway.offline.evaluation import main_async
    except ImportError as exc:
        print(f"eval: {exc.name} is missing: pip install 'rerank-gateway[eval]'", file=sys.stderr)
        return 1
    return asyncio.run(main_async(args))
