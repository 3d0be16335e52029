"""The text the reranker reads for each hit: fields, a template, per-field caps, highlights.

Pure functions over hits. Without a template the text is the configured fields'
values joined by spaces (the gateway's original behaviour); with one, e.g.
``"{title}. {text}"``, placeholders are dotted paths into ``fields`` (what the
search's ``fields`` option returned) or ``_source``; arrays, and arrays of
objects on the way (``authors.name``), give all their values joined by spaces.
``{{`` and ``}}`` are literal braces. A placeholder with no value renders as
nothing and the separators left dangling at either end are trimmed; a hit
whose placeholders are all empty has no text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]+)\}")
_TAG = re.compile(r"</?em>")
_DANGLING = " \t\n,;:-|/"  # trimmed at either end; a leading "." too


@dataclass(frozen=True, slots=True)
class DocumentSpec:
    """How one profile turns a hit into text."""

    fields: tuple[str, ...] = ("title", "text")
    template: str | None = None
    field_max_chars: Mapping[str, int] = field(default_factory=dict)
    max_chars: int = 4000
    highlight: bool = False

    @property
    def read_fields(self) -> tuple[str, ...]:
        """The fields the text is made of (asked of the upstream)."""
        if self.template is None:
            return self.fields
        return tuple(dict.fromkeys(template_fields(self.template)))


def template_fields(template: str) -> list[str]:
    """The dotted paths named in a template, in order."""
    return [m.group(1).strip() for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def field_values(hit: Mapping[str, Any], path: str) -> list[str]:
    """Non-empty text values of ``path`` in the hit's ``fields``, else its ``_source``."""
    fields = hit.get("fields")
    if isinstance(fields, dict) and path in fields:
        return _texts(fields[path])
    nodes: list[Any] = [hit.get("_source")]
    for part in path.split("."):
        nodes = [
            child
            for node in _flatten(nodes)
            if isinstance(node, dict) and (child := node.get(part)) is not None
        ]
    return _texts(nodes)


def _flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.extend(_flatten(value))
        else:
            out.append(value)
    return out


def _texts(value: Any) -> list[str]:
    if type(value) is list and all(type(item) is str for item in value):
        return [text for item in value if (text := item.strip())]  # ``fields``' usual shape
    out = []
    for item in _flatten(value if isinstance(value, list) else [value]):
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            text = str(item).strip()
            if text:
                out.append(text)
    return out


def _field_text(hit: Mapping[str, Any], path: str, spec: DocumentSpec) -> str:
    text = " ".join(field_values(hit, path))
    cap = spec.field_max_chars.get(path)
    return text[:cap] if cap is not None else text


def render(hit: Mapping[str, Any], spec: DocumentSpec) -> str:
    """The hit's text under ``spec`` (cut to ``max_chars``); "" when it has none."""
    if spec.template is None:
        parts = [_field_text(hit, f, spec) for f in spec.fields]
        return " ".join(p for p in parts if p)[: spec.max_chars]
    filled = False

    def fill(match: re.Match[str]) -> str:
        nonlocal filled
        if match.group(1) is None:
            return match.group(0)[0]
        value = _field_text(hit, match.group(1).strip(), spec)
        filled = filled or bool(value)
        return value

    text = _PLACEHOLDER.sub(fill, spec.template)
    if not filled:
        return ""
    return text.lstrip(_DANGLING + ".").rstrip(_DANGLING)[: spec.max_chars]


def highlight_fragments(hit: Mapping[str, Any], spec: DocumentSpec) -> list[str]:
    """The hit's ``highlight`` fragments of the profile's fields (tags removed), in order."""
    highlight = hit.get("highlight")
    if not isinstance(highlight, dict):
        return []
    names = [f for f in spec.read_fields if f in highlight] or sorted(highlight)
    out = []
    for name in names:
        for fragment in _texts(highlight.get(name)):
            text = _TAG.sub("", fragment).strip()[: spec.max_chars]
            if text:
                out.append(text)
    return out


def segments(hits: Sequence[Mapping[str, Any]], spec: DocumentSpec) -> list[list[str]]:
    """Per hit, the texts to score: highlight fragments when asked and present, else the
    rendered text (one segment), else nothing."""
    out = []
    for hit in hits:
        fragments = highlight_fragments(hit, spec) if spec.highlight else []
        if fragments:
            out.append(fragments)
            continue
        text = render(hit, spec)
        out.append([text] if text else [])
    return out
