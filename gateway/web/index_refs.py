"""Which indices a request body names, read the way the cluster reads it (guard.py asks).

A body the guard cannot read with certainty raises :class:`Unreadable` (the guard
refuses it); otherwise the functions yield every index name the cluster could act on.

- **JSON** is read strictly: one object, no duplicate keys (the cluster's parser
  refuses them too), nothing after it. Comments, which the cluster's parser allows,
  make a body unreadable here.
- **Index references inside a body** are found by walking every object for the keys
  the query DSL uses to name an index: ``index`` (``terms`` lookup, ``geo_shape`` /
  ``shape`` ``indexed_shape``, ``percolate``, ``_msearch`` headers), ``indices``
  (``_msearch`` headers), ``_index`` (``more_like_this`` ``like`` / ``unlike`` items,
  ``pinned`` ``docs``, ``_mget`` / ``_mtermvectors`` ``docs``) and ``target_index``
  (``lookup`` runtime fields). The walk does not care where the key sits, so a query
  type the guard was not told about, or a field that happens to be called ``index``,
  is checked too (the price: such a field's value must be an allowed index name).
  A ``wrapper`` query's base64 source is decoded and walked; stored query rules
  (``ruleset_ids``) cannot be read and are refused.
- **``_msearch``** bodies are split exactly where the cluster splits them: at every
  ``\\n``, a blank line being an (empty) line of its own (an empty header means the
  path's indices). Every line is walked, header or search alike, so no shift of the
  header/body pairing can hide a name.
- **``_bulk``** action lines are read for ``_index``; document lines are not (they
  are documents). A blank line makes the pairing uncertain and is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

INDEX_KEYS = frozenset({"index", "indices", "_index", "target_index"})
_STORED = frozenset({"ruleset_ids", "ruleset_id"})  # queries defined elsewhere, unreadable
_BULK_ACTIONS = frozenset({"index", "create", "update", "delete"})


class Unreadable(ValueError):
    """The body cannot be read with certainty; ``str()`` says why (safe to show)."""


def load_object(raw: bytes | str) -> dict[str, Any]:
    """One JSON object, read strictly (duplicate keys and non-finite numbers refused)."""
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except Unreadable:
        raise
    except (ValueError, RecursionError):
        raise Unreadable("request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise Unreadable("request body is not a JSON object")
    return value


def body_names(value: Any) -> Iterator[str]:
    """Every index name a parsed JSON body refers to (see the module docstring)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if key in _STORED:
                    raise Unreadable(f"[{key}] refers to stored queries the gateway cannot read")
                if key in INDEX_KEYS:
                    yield from _names(child)
                if key == "wrapper" and isinstance(child, dict):
                    stack.append(_unwrapped(child.get("query")))
                stack.append(child)


def msearch_names(body: bytes) -> Iterator[str]:
    """Every index an ``_msearch`` body names, header lines and search lines alike."""
    for line in body.split(b"\n"):
        if line.strip():
            yield from body_names(load_object(line))


def bulk_names(body: bytes) -> Iterator[str]:
    """The ``_index`` of every ``_bulk`` action line."""
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the terminating newline
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            raise Unreadable("blank line in a bulk body")
        action_line = load_object(lines[i])
        if len(action_line) != 1 or next(iter(action_line)) not in _BULK_ACTIONS:
            raise Unreadable("malformed bulk action line")
        action, meta = next(iter(action_line.items()))
        if isinstance(meta, dict):
            yield from _names(meta.get("_index"))
        i += 1 if action == "delete" else 2


def _names(value: Any) -> Iterator[str]:
    """Names as the cluster reads a value that names indices: ``"a,b"``, ``["a", "b"]``,
    numbers and booleans by their text. An object is no name (the walk goes into it)."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, bool):
            yield "true" if v else "false"
        elif isinstance(v, str | int):
            yield from str(v).split(",")
        elif isinstance(v, float | list):
            raise Unreadable("an index is named by a value the gateway cannot read")


def _unwrapped(source: Any) -> dict[str, Any]:
    if not isinstance(source, str):
        raise Unreadable("a [wrapper] query the gateway cannot read")
    try:
        return load_object(base64.b64decode(source, validate=True))
    except (binascii.Error, Unreadable):
        raise Unreadable("a [wrapper] query the gateway cannot read") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise Unreadable("duplicate key in request body")
    return out


def _no_constant(name: str) -> Any:
    raise Unreadable(f"[{name}] is not valid JSON")
