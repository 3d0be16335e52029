"""``rerank-gateway``: the commands, one module each, each a thin layer over the package.

argparse (the standard library) rather than click or typer: the image and a bare
``pip install`` get the commands with no extra dependency, the subcommands reuse
the argument parsers their ``python -m`` modules had, and nothing here
needs more than flags and positional arguments. Without a command, ``serve`` runs
(so ``rerank-gateway`` and ``python -m gateway`` keep starting the gateway).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import (
    backfill,
    canary,
    check,
    evaluate,
    export_model,
    fine_tune,
    report,
    seed,
    serve,
    train,
)
from gateway.cli.config import ConfigError

COMMANDS = (
    serve,
    check,
    seed,
    evaluate,
    report,
    export_model,
    train,
    fine_tune,
    canary,
    backfill,
)
PROG = "rerank-gateway"


def _plain(doc: str) -> str:
    """A docstring as terminal text: reST's double backquotes and ``::`` markers dropped."""
    return doc.replace("``", "`").replace("\n::\n", "\n").replace("::\n", ":\n")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "A transparent Elasticsearch/OpenSearch proxy that reranks _search with an ONNX"
            " cross-encoder. Settings come from GATEWAY_* variables (see the README);"
            " flags override them."
        ),
        epilog="Without a command, `serve` runs. `rerank-gateway COMMAND --help` for details.",
    )
    top.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        # Each command module: NAME, HELP, configure(parser), run(args); its docstring
        # is the command's --help.
        sub = commands.add_parser(
            command.NAME,
            help=command.HELP,
            description=_plain(command.__doc__ or ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    top = parser()
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help", "--version")):
        args = ["serve", *args]
    namespace = top.parse_args(args)
    try:
        code: int = namespace.run(namespace)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"{PROG}: {line}", file=sys.stderr)
        return exc.exit_status
    return code
