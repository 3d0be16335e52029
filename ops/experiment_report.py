"""Print a running gateway's experiment report: ``rerank-gateway report`` (``gateway.cli.report``).

python -m ops.experiment_report --url http://127.0.0.1:9201 [--json]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway.cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(["report", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
