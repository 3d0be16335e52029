"""The JSON of a search body, read and written: strict parse, compact and ``?pretty`` output,
``_msearch`` lines, the gateway's ``ext.rerank`` taken out (plan: ``plan``; page: ``merge``).

Nothing here does I/O. A body the gateway cannot read cleanly (invalid JSON,
duplicate keys, wrong types) is never "fixed": the planner answers with a skip
reason and the search goes to the upstream unchanged, so the client gets the
cluster's own verdict.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _Unreadable(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Unreadable(f"duplicate field [{key}]")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise _Unreadable(f"non-standard number {name}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # ``1e400``: would go out again as ``Infinity``
        raise _Unreadable(f"number out of range {text}")
    return value


def load_object(raw: bytes) -> dict[str, Any] | None:
    """Strict JSON object parse; None when the gateway should not touch the body.

    Strict means: UTF-8 only (no BOM, no UTF-16/32, no encoded surrogates), no
    ``NaN`` / ``Infinity``, no number beyond a double, no duplicate keys. Whatever
    passes comes out of ``dump`` as the same JSON value.
    """
    if not raw.strip():
        return {}
    try:
        # json.loads(bytes) would guess UTF-16/32, skip a BOM and let surrogates pass.
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite,
        )
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if _SURROGATE_ESCAPE.search(raw):
        try:
            dump(value)
        except (UnicodeEncodeError, RecursionError):
            return None  # an unpaired surrogate (``"\ud800"``) is no text to pass on
    return value if isinstance(value, dict) else None


def dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def wants_pretty(params: Mapping[str, str]) -> bool:
    """``?pretty`` as Elasticsearch reads it: present and not ``false``."""
    return "pretty" in params and params["pretty"].lower() != "false"


def dump_pretty(value: Any) -> bytes:
    """``?pretty`` output as Elasticsearch writes it (Jackson's printer, 2-space indent,
    ``"key" : value``, ``{ }`` and ``[ ]`` when empty, a line feed at the end)."""
    out: list[str] = []
    _pretty(value, "", out)
    out.append("\n")
    return "".join(out).encode()


def _pretty(node: Any, indent: str, out: list[str]) -> None:
    if not isinstance(node, dict | list):
        out.append(json.dumps(node, ensure_ascii=False))
        return
    opening, closing = ("{", "}") if isinstance(node, dict) else ("[", "]")
    if not node:
        out.append(f"{opening} {closing}")
        return
    inner = indent + "  "
    items = node.items() if isinstance(node, dict) else ((None, v) for v in node)
    out.append(opening)
    for i, (key, child) in enumerate(items):
        out.append(("," if i else "") + "\n" + inner)
        if key is not None:
            out.append(json.dumps(key, ensure_ascii=False) + " : ")
        _pretty(child, inner, out)
    out.append("\n" + indent + closing)


def strip_gateway_ext(body: dict[str, Any]) -> dict[str, Any]:
    """The body without the gateway's ``ext.rerank`` (the cluster would reject it)."""
    ext = body.get("ext")
    if not isinstance(ext, dict) or "rerank" not in ext:
        return body
    out = dict(body)
    rest = {k: v for k, v in ext.items() if k != "rerank"}
    if rest:
        out["ext"] = rest
    else:
        del out["ext"]
    return out


def ndjson_objects(body: bytes) -> list[dict[str, Any]] | None:
    """The objects of an ``_msearch`` body (header, search pairs); None if unreadable.

    Only the plain form is read: a body ending in a newline, no blank lines. Anything
    else is the cluster's to judge, so it goes there as sent.
    """
    if not body.endswith(b"\n"):
        return None
    lines = body[:-1].split(b"\n")
    if not lines or len(lines) % 2 or not all(line.strip() for line in lines):
        return None
    out: list[dict[str, Any]] = []
    for line in lines:
        obj = load_object(line)
        if obj is None:
            return None
        out.append(obj)
    return out


def has_gateway_ext(value: dict[str, Any]) -> bool:
    """Whether a search body carries the gateway's ``ext.rerank``."""
    ext = value.get("ext")
    return isinstance(ext, dict) and "rerank" in ext


def may_name_rerank(body: bytes) -> bool:
    """Whether a JSON body can hold a ``rerank`` key: spelled out or behind a ``\\u`` escape."""
    return b"rerank" in body or b"\\u" in body


def msearch_without_gateway_ext(body: bytes) -> bytes:
    """A skipped ``_msearch`` minus each sub-search's ``ext.rerank``; unreadable ones as sent."""
    if not may_name_rerank(body):
        return body
    lines = ndjson_objects(body)
    if lines is None or not any(has_gateway_ext(sub) for sub in lines[1::2]):
        return body
    out = [dump(strip_gateway_ext(line)) for line in lines]
    return b"\n".join(out) + b"\n"


def readable_hits(response: Mapping[str, Any]) -> bool:
    """Whether an upstream answer has the ``hits.hits`` shape the merge relies on."""
    section = response.get("hits")
    if section is None:
        return True
    if not isinstance(section, dict):
        return False
    hits = section.get("hits")
    return hits is None or (isinstance(hits, list) and all(isinstance(h, dict) for h in hits))
