"""``rerank-gateway seed``: load a BEIR ``corpus.jsonl`` into an index, with a progress bar.

::

    rerank-gateway seed data/scifact                      # index "scifact" on localhost:9200
    rerank-gateway seed data/scifact/corpus.jsonl --index papers --url https://es:9200 \\
        --api-key "$ES_API_KEY" --ca-bundle ca.crt --limit 1000

Credentials come from flags or from ``SEED_API_KEY`` / ``SEED_USERNAME`` / ``SEED_PASSWORD``.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import urllib.error
from pathlib import Path
from typing import TextIO

from gateway.offline.seeding import Cluster, SeedError, corpus_file, count_lines, seed

BAR_WIDTH = 30
STEPS = 10  # lines written when the output is not a terminal


class ProgressBar:
    """``[#####     ] 1500/5183 documents (29%)``: redrawn in place on a terminal,
    one line per tenth elsewhere (logs)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.live = stream.isatty()
        self._step = -1

    def __call__(self, done: int) -> None:
        share = min(done / self.total, 1.0) if self.total else 1.0
        step = int(share * STEPS)
        if not self.live and step == self._step:
            return
        self._step = step
        bar = "#" * int(share * BAR_WIDTH)
        line = f"seed: [{bar:<{BAR_WIDTH}}] {done}/{self.total} documents ({share:.0%})"
        self.stream.write(f"\r{line}" if self.live else f"{line}\n")
        if self.live and done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


NAME = "seed"
HELP = "load a BEIR corpus.jsonl into an index"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", type=Path, help="BEIR dataset directory or corpus.jsonl")
    parser.add_argument("--url", default="http://localhost:9200", help="search cluster URL")
    parser.add_argument("--index", help="index name (default: the dataset directory's name)")
    parser.add_argument("--limit", type=int, help="load only the first N documents")
    parser.add_argument("--chunk", type=int, default=500, help="documents per _bulk request")
    parser.add_argument("--recreate", action="store_true", help="delete the index first")
    parser.add_argument("--api-key")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--ca-bundle")
    parser.add_argument("--insecure", action="store_true", help="skip TLS verification")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _auth(args: argparse.Namespace) -> str | None:
    api_key = args.api_key or os.environ.get("SEED_API_KEY")
    if api_key:
        return f"ApiKey {api_key}"
    user = args.username or os.environ.get("SEED_USERNAME")
    if user:
        password = args.password or os.environ.get("SEED_PASSWORD", "")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return None


def run(args: argparse.Namespace) -> int:
    try:
        corpus = corpus_file(args.corpus)
        index = args.index or (args.corpus if args.corpus.is_dir() else corpus.parent).name.lower()
        cluster = Cluster(args.url, _auth(args), args.ca_bundle, args.insecure)
        total = count_lines(corpus)
        if args.limit is not None:
            total = min(total, args.limit)
        progress = (lambda done: None) if args.quiet else ProgressBar(total, sys.stderr)
        count = seed(
            cluster,
            corpus,
            index,
            chunk=args.chunk,
            limit=args.limit,
            recreate=args.recreate,
            progress=progress,
        )
    except SeedError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    except urllib.error.HTTPError as exc:
        print(f"seed: {args.url} answered {exc.code} {exc.reason}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"seed: {args.url} failed: {exc.reason}", file=sys.stderr)
        return 1
    print(f"seed: {count} documents in index {index!r} at {args.url}")
    return 0
