"""gateway.cli: every variable a user reads (help, messages) is spelled as it must be set."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

import gateway.cli
from gateway.cli import COMMANDS, parser

# A settings name (SECTION__FIELD) not preceded by the prefix the environment needs.
BARE = re.compile(r"(?<![A-Z0-9_])(?!GATEWAY_)[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*__[A-Z0-9_]+")
CLI_DIR = Path(gateway.cli.__file__).parent


def test_the_pattern_tells_bare_names_from_prefixed_ones() -> None:
    assert BARE.findall("unless SERVER__START_WITHOUT_MODEL lets it") == [
        "SERVER__START_WITHOUT_MODEL"
    ]
    assert BARE.findall("(none of RERANK__FIELDS)") == ["RERANK__FIELDS"]
    assert BARE.findall("[GATEWAY_SERVER__PORT] or $GATEWAY_MODEL__PATH") == []


def _subparsers(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", [c.NAME for c in COMMANDS])
def test_help_names_every_variable_with_its_prefix(command: str) -> None:
    text = _subparsers(parser())[command].format_help()
    assert BARE.findall(text) == []


def _user_strings(source: str) -> list[str]:
    """The string constants of a module but its function and class docstrings (for
    contributors); the module docstring is the command's --help, so it stays in."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


@pytest.mark.parametrize("module", sorted(p.name for p in CLI_DIR.glob("*.py")))
def test_messages_name_every_variable_with_its_prefix(module: str) -> None:
    strings = _user_strings((CLI_DIR / module).read_text())
    assert [name for text in strings for name in BARE.findall(text)] == []
