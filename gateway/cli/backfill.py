"""``rerank-gateway backfill``: fill a vector field of an index with the embedder (EMBEDDER__*).

Reads every document that lacks the field, embeds its text and writes the vector
back with ``_bulk`` partial updates; resumable through a state file. See
``gateway.vectors.backfill``.

::

    GATEWAY_EMBEDDER__PATH=models/minilm GATEWAY_UPSTREAM__URLS=http://localhost:9200 \\
        rerank-gateway backfill papers --field embedding --batch-size 200

Exit status: 0 complete; 1 complete but some documents could not be updated; 2 bad
settings or arguments; 3 the cluster failed (state kept: run again); 4 stopped by
``--max-batches``; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.cli.config import EXIT_CONFIG, load_settings
from gateway.cli.logs import setup_logging

NAME = "backfill"
HELP = "fill a vector field of an index with the embedder"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="index, alias or pattern to fill")
    parser.add_argument("--field", help="vector field (default GATEWAY_EMBEDDER__FIELD)")
    parser.add_argument(
        "--text-fields", help="comma-separated source fields (GATEWAY_EMBEDDER__TEXT_FIELDS)"
    )
    parser.add_argument("--batch-size", type=int, default=200, help="documents per page and _bulk")
    parser.add_argument("--state", type=Path, help="state file (default INDEX.FIELD.backfill.json)")
    parser.add_argument("--max-batches", type=int, help="stop after this many batches (resumable)")
    parser.add_argument("--keep-alive", default="10m", help="point-in-time keep-alive")
    parser.add_argument("--restart", action="store_true", help="ignore the state file")
    parser.add_argument(
        "--no-point-in-time", action="store_true", help="search_after on _id, no point in time"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    # The embedder and the cluster client load with the command, not with every command.
    from gateway.vectors.backfill import EXIT_INTERRUPTED, options_from
    from gateway.vectors.backfill import run as fill

    settings = load_settings()  # a ConfigError reaches cli.main: one line per problem
    setup_logging(settings.log)
    if settings.embedder.path is None:
        print("backfill: set GATEWAY_EMBEDDER__PATH to the embedding model", file=sys.stderr)
        return EXIT_CONFIG
    options = options_from(args, settings.embedder)
    try:
        return asyncio.run(fill(settings, options, None if args.no_progress else sys.stderr))
    except KeyboardInterrupt:
        print("backfill: interrupted; run again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
