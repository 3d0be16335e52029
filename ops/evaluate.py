"""Offline evaluation through the gateway: ``rerank-gateway eval`` (``gateway.offline.evaluation``).

    python -m ops.evaluate --data ../shared/data/scifact --gateway http://127.0.0.1:9201 \\
        [--index-into http://127.0.0.1:9200] [--variant rerank --variant w20:window=20] \\
        [--check-offline --model-dir ../shared/models/all-minilm-l6-v2-pair]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway.cli import main as cli_main
from gateway.offline.evaluation import (
    as_run,
    bulk_index,
    evaluate,
    parse_variant,
    read_jsonl,
    read_qrels,
    table,
)

__all__ = ["as_run", "bulk_index", "evaluate", "parse_variant", "read_jsonl", "read_qrels", "table"]


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(["eval", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
