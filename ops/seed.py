"""Seed a search index from a BEIR-layout corpus: ``rerank-gateway seed`` (``gateway.cli.seed``).

::

    python ops/seed.py data/scifact --url http://localhost:9200     # same as:
    rerank-gateway seed data/scifact --url http://localhost:9200
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway.cli import main as cli_main
from gateway.offline.seeding import Cluster, read_corpus, seed

__all__ = ["Cluster", "main", "read_corpus", "seed"]


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(["seed", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
