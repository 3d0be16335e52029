"""``python -m gateway``: the ``rerank-gateway`` command (``gateway.cli``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway.cli import main as cli_main
from gateway.cli.config import EXIT_CONFIG, describe_config_error
from gateway.cli.logs import JsonFormatter as _JsonFormatter
from gateway.cli.logs import setup_logging

__all__ = ["EXIT_CONFIG", "_JsonFormatter", "describe_config_error", "main", "setup_logging"]


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
