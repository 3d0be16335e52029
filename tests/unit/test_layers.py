"""The import graph of ``gateway``: no cycle, and no import running from a lower layer up.

Every import counts, as written in the source (read with ``ast``, nothing is
imported): module level, inside functions, and under ``if TYPE_CHECKING:``
alike, since each one ties the two modules together for a reader. The layers are
those of issue 14, high to low; a module may import its own package's modules,
the modules of the other packages of its layer, and anything in a lower layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gateway"

# High to low. A name is a top-level module or package of gateway/.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "__main__"),
    # offline/: the jobs the commands run (seed, evaluate, train from the event log).
    ("offline",),
    ("app",),
    ("web", "rerank_api"),
    ("experiments",),
    ("search",),
    ("retrievers", "vectors"),
    ("rerank", "learning"),
    ("model",),
    ("upstream", "redis", "es"),
    ("settings", "errors", "indices", "metrics", "tracing", "progress"),
    ("",),  # gateway/__init__.py: the version, nothing else
)


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name below ``gateway`` (``""``: the package)."""
    names: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def _name(dotted: str) -> str | None:
    """``gateway.a.b`` → ``a.b``, ``gateway`` → ``""``; None outside the package."""
    if dotted == "gateway" or dotted.startswith("gateway."):
        return dotted.removeprefix("gateway").removeprefix(".")
    return None


def _module(dotted: str) -> str | None:
    """The gateway module an import of ``dotted`` loads last: its longest prefix that is one."""
    name = _name(dotted)
    if name is None:
        return None
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(name: str) -> set[str]:
    """The gateway modules ``name`` imports, anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            # ``from gateway.x import y``: the module y if there is one, else gateway.x.
            targets = [
                f"{base}.{a.name}" if _name(f"{base}.{a.name}") in MODULES else base
                for a in node.names
            ]
        else:
            continue
        found.update(t for t in map(_module, targets) if t is not None and t != name)
    return found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = ["gateway", *package.split(".")] if package else ["gateway"]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


GRAPH = {name: imports_of(name) for name in MODULES}


def top(name: str) -> str:
    """The top-level module or package of gateway/ a module belongs to."""
    return name.partition(".")[0]


def layer_of(name: str) -> int:
    for rank, names in enumerate(LAYERS):
        if top(name) in names:
            return rank
    raise AssertionError(f"gateway/{top(name)} is in no layer: add it to LAYERS")


def violations() -> Iterator[tuple[str, str]]:
    for name, targets in GRAPH.items():
        for target in targets:
            if top(name) != top(target) and layer_of(target) < layer_of(name):
                yield name, target


def cycle() -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), if there is any."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(name: str) -> list[str] | None:
        path.append(name)
        on_path.add(name)
        for target in sorted(GRAPH[name]):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done and (found := visit(target)) is not None:
                return found
        path.pop()
        on_path.discard(name)
        done.add(name)
        return None

    for name in sorted(GRAPH):
        if name not in done and (found := visit(name)) is not None:
            return found
    return None


def test_the_reader_sees_every_kind_of_import() -> None:
    """The parser itself: function-level, TYPE_CHECKING and ``from gateway import x``."""
    assert "tracing" in GRAPH["web.handlers"]  # from gateway import tracing
    assert "web.access_log" in GRAPH["cli.check"]  # inside a function
    assert "model.onnx" in GRAPH["model.loader"]
    assert all(target in MODULES for targets in GRAPH.values() for target in targets)
    assert len(GRAPH) > 100


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        layer_of(name)


def test_no_import_cycle() -> None:
    assert cycle() is None, " → ".join(cycle() or [])


def test_no_import_runs_up_the_layers() -> None:
    new = sorted(set(violations()))
    assert new == [], "\n".join(f"gateway.{a} imports gateway.{b}" for a, b in new)


@pytest.mark.parametrize(
    ("low", "high"),
    [("tracing", "web"), ("metrics", "rerank"), ("upstream", "web"), ("experiments", "web")],
)
def test_low_modules_do_not_import_the_web_or_rerank_wings(low: str, high: str) -> None:
    """The boundaries this layering was first drawn for (issue 14)."""
    for name, targets in GRAPH.items():
        if top(name) == low:
            assert not [t for t in targets if top(t) == high], name


DOC = PACKAGE.parent / "docs" / "architecture.md"


def test_the_architecture_page_draws_these_layers() -> None:
    """docs/architecture.md's layer list is this test's, line for line."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    drawn = [tuple(n.strip() for n in line.split(",")) for line in block.strip().splitlines()]
    assert drawn == [layer for layer in LAYERS if layer != ("",)]


def test_the_architecture_page_names_every_package_and_module() -> None:
    text = DOC.read_text(encoding="utf-8")
    tops = {top(name) for name in module_names()} - {"", "__main__"}
    missing = sorted(t for t in tops if f"gateway/{t}" not in text)
    assert missing == [], f"docs/architecture.md does not name gateway/{missing}"
