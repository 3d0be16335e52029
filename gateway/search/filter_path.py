"""``?filter_path`` applied by the gateway, with Elasticsearch's semantics.

A reranked search needs the whole answer (hits, text, scores), so the gateway
takes ``filter_path`` off the request it forwards and trims its own merged
answer instead. The rules follow Elasticsearch's XContent filtering
(``libs/x-content/.../support/filtering/FilterPath.java`` and
``FilterPathBasedFilter.java``):

- the value is a comma list of paths, each trimmed, empty ones ignored; a path
  starting with ``-`` excludes, the others include;
- a path is split on ``.`` (``\\.`` is a literal dot); a segment is an exact
  key, or a glob where ``*`` matches any characters; ``**`` matches one or
  more levels; arrays are transparent (their elements carry on the path);
- includes keep what a whole path matched (with everything under it) and the
  objects on the way; an object or array left with nothing is dropped, as is a
  scalar that only a path prefix reached; nothing matched at all gives ``{}``;
- excludes then remove what a whole path matches; what is left around it
  stays, empty objects and arrays included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_DOUBLE = "**"


@dataclass(slots=True)
class _Node:
    """One segment of the compiled path tree (``FilterPath`` in Elasticsearch)."""

    pattern: str = ""
    final: bool = False
    children: dict[str, _Node] = field(default_factory=dict)

    def step(self, name: str, out: list[_Node]) -> bool:
        """Whether ``name`` completes a path here; the nodes to go on with go to ``out``."""
        for pattern, child in self.children.items():
            if pattern == name or ("*" in pattern and glob(pattern, name)):
                if child.final:
                    return True
                out.append(child)
        if self.pattern == _DOUBLE:
            out.append(self)
        return False


def glob(pattern: str, name: str) -> bool:
    """Elasticsearch's ``Glob.globMatch``: ``*`` matches any characters, nothing else is special."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, re.DOTALL) is not None


def _segments(path: str) -> list[str]:
    parts = re.split(r"(?<!\\)\.", path)
    return [p.replace("\\.", ".") for p in parts]


def _compile(paths: list[str]) -> _Node | None:
    if not paths:
        return None
    root = _Node()
    for path in paths:
        node = root
        parts = _segments(path)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            child = node.children.get(part)
            if last:
                node.children[part] = _Node(part, final=True)
                break
            if child is None:
                child = node.children[part] = _Node(part)
            if child.final:
                break  # a shorter path already takes everything below
            node = child
    return root


@dataclass(frozen=True, slots=True)
class FilterPath:
    """A parsed ``filter_path`` value: ``apply`` trims an answer as the cluster would."""

    includes: _Node | None
    excludes: _Node | None

    @classmethod
    def parse(cls, value: str) -> FilterPath | None:
        """The filter, or None when the value filters nothing (empty, only commas)."""
        paths = [p.strip() for p in value.split(",")]
        paths = [p for p in paths if p]
        if not paths:
            return None
        inc = [p for p in paths if not p.startswith("-")]
        exc = [p[1:] for p in paths if p.startswith("-") and p[1:]]
        return cls(_compile(inc), _compile(exc))

    def apply(self, value: dict[str, Any]) -> dict[str, Any]:
        out = value
        if self.includes is not None:
            kept = _include(out, [self.includes])
            out = kept if isinstance(kept, dict) else {}
        if self.excludes is not None:
            out = _exclude(out, [self.excludes])
        return out


_DROP = object()


def _include(value: Any, nodes: list[_Node]) -> Any:
    """``value`` reached by partial paths ``nodes``: what stays of it, or ``_DROP``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            following: list[_Node] = []
            if any(node.step(key, following) for node in nodes):
                out[key] = child
            elif following:
                kept = _include(child, following)
                if kept is not _DROP:
                    out[key] = kept
        return out or _DROP
    if isinstance(value, list):
        items = [kept for item in value if (kept := _include(item, nodes)) is not _DROP]
        return items or _DROP
    return _DROP  # a scalar only a path prefix reached


def _exclude(value: Any, nodes: list[_Node]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            following: list[_Node] = []
            if any(node.step(key, following) for node in nodes):
                continue
            out[key] = _exclude(child, following) if following else child
        return out
    if isinstance(value, list):
        return [_exclude(item, nodes) for item in value]
    return value


def from_params(params: Any) -> FilterPath | None:
    """The request's ``filter_path`` (the first one, as the cluster reads it), or None."""
    value = params.get("filter_path")
    return FilterPath.parse(value) if isinstance(value, str) else None
