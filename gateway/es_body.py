"""Pure functions over ``_search`` JSON: plan, widen, merge (hit text: ``documents``).

Nothing here does I/O. A body the gateway cannot read cleanly (invalid JSON,
duplicate keys, wrong types) is never "fixed": the planner answers with a skip
reason and the search goes to the upstream unchanged, so the client gets the
cluster's own verdict.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import ClientRequestError
from gateway.query_text import find_text

FIRST_STAGE_FIELD = "_first_stage_score"
FIRST_STAGE_RANK_FIELD = "_first_stage_rank"


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


def load_object(raw: bytes) -> dict[str, Any] | None:
    """Strict JSON object parse; None when the gateway should not touch the body."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError, UnicodeDecodeError):
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


@dataclass(frozen=True, slots=True)
class Plan:
    """How one search is reranked."""

    query: str
    from_: int
    size: int
    window: int  # hits reranked: the upstream's top ``window``
    fetch: int  # hits asked of the upstream, from offset 0
    added_fields: tuple[str, ...]  # entries the gateway added to ``fields``
    client_fields: bool  # the client sent ``fields`` itself
    first_stage: bool  # show the first-stage score and rank in ``fields``
    explain: bool = False  # each reranked hit's ``_explanation`` says how its score was made


def _int_param(params: Mapping[str, str], body: dict[str, Any], name: str, default: int) -> int:
    if name in params:
        try:
            return int(params[name])
        except ValueError:
            raise _Unreadable(name) from None
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Unreadable(name)
    return value


def _sorted_by_score(body: dict[str, Any], params: Mapping[str, str]) -> bool:
    if "sort" in params:
        first = params["sort"].split(",")[0].strip()
        return first in ("_score", "_score:desc")
    sort = body.get("sort")
    if sort is None:
        return True
    first = sort[0] if isinstance(sort, list) and sort else sort
    if first == "_score":
        return True
    if isinstance(first, dict) and list(first) == ["_score"]:
        spec = first["_score"]
        order = spec.get("order", "desc") if isinstance(spec, dict) else spec
        return bool(order == "desc")
    return False


def rerank_option(body: dict[str, Any]) -> dict[str, Any]:
    """The gateway's own ``ext.rerank`` section (validated), or {}."""
    ext = body.get("ext")
    if ext is None:
        return {}
    if not isinstance(ext, dict):
        return {}
    option = ext.get("rerank", {})
    if not isinstance(option, dict):
        raise ClientRequestError("illegal_argument_exception", "[ext.rerank] must be an object")
    window = option.get("window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)):
        raise ClientRequestError(
            "illegal_argument_exception", "[ext.rerank.window] must be a positive integer"
        )
    return option


def plan(
    body: dict[str, Any],
    params: Mapping[str, str],
    *,
    window: int,
    fields: Sequence[str],
) -> Plan | str:
    """A rerank plan, or the reason (a short token) why this search is not reranked."""
    option = rerank_option(body)
    if isinstance(option.get("window"), int) and option["window"] > 0:
        window = min(option["window"], window * 10)
    try:
        from_ = _int_param(params, body, "from", 0)
        size = _int_param(params, body, "size", 10)
    except _Unreadable:
        return "unreadable_body"
    if from_ < 0 or size < 0:
        return "unreadable_body"
    if size == 0:
        return "size_zero"
    if "scroll" in params or "search_after" in body or ("pit" in body and "search_after" in body):
        return "paginated_by_cursor"
    if not _sorted_by_score(body, params):
        return "sorted"
    if from_ >= window:
        return "beyond_window"
    if body.get("stored_fields") == "_none_":
        return "no_source"
    query = find_text(body, params.get("q"))
    if not query:
        return "no_query_text"
    client = body.get("fields")
    client_fields = client is not None
    patterns = [
        f if isinstance(f, str) else f.get("field", "") if isinstance(f, dict) else ""
        for f in (client if isinstance(client, list) else [])
    ]
    added = tuple(f for f in fields if not any(fnmatch.fnmatchcase(f, p) for p in patterns if p))
    return Plan(
        query=query,
        from_=from_,
        size=size,
        window=window,
        fetch=max(window, from_ + size),
        added_fields=added,
        client_fields=client_fields,
        first_stage=bool(option.get("first_stage_score", False)),
        explain=_wants_explain(params, body, option),
    )


def _wants_explain(params: Mapping[str, str], body: dict[str, Any], option: dict[str, Any]) -> bool:
    """ES's ``explain`` (query parameter or body) or the gateway's ``ext.rerank.explain``."""
    if "explain" in params:
        return params["explain"].lower() in ("", "true")
    return body.get("explain") is True or option.get("explain") is True


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
    """The objects of an ``_msearch`` body (header, search pairs); None if unreadable."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    if not lines or len(lines) % 2:
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


def widen(body: dict[str, Any], p: Plan) -> dict[str, Any]:
    """The body sent upstream: top ``fetch`` hits from 0, with the text fields returned."""
    out = dict(strip_gateway_ext(body))  # the caller's dict stays as the client sent it
    out["from"] = 0
    out["size"] = p.fetch
    if p.added_fields:
        current = out.get("fields")
        out["fields"] = [*(current if isinstance(current, list) else []), *p.added_fields]
    return out


def readable_hits(response: Mapping[str, Any]) -> bool:
    """Whether an upstream answer has the ``hits.hits`` shape the merge relies on."""
    section = response.get("hits")
    if section is None:
        return True
    if not isinstance(section, dict):
        return False
    hits = section.get("hits")
    return hits is None or (isinstance(hits, list) and all(isinstance(h, dict) for h in hits))


def reorder(scores: Sequence[float | None], has_text: Sequence[bool]) -> list[int]:
    """Window order after reranking, as indices into the upstream order.

    - scored hits sort by score, ties keeping upstream order;
    - hits with no text go after every hit that has text, in upstream order;
    - hits with text but no score (deadline, model trouble) keep their positions,
      and the scored hits fill the remaining positions in score order.
    """
    n = len(scores)
    with_text = [i for i in range(n) if has_text[i]]
    without = [i for i in range(n) if not has_text[i]]
    slots = list(range(len(with_text)))  # positions of hits that have text
    order: list[int | None] = [None] * len(with_text)
    scored = [i for i in with_text if scores[i] is not None]
    for pos, i in enumerate(with_text):
        if scores[i] is None:
            order[pos] = i
    ranked = sorted(scored, key=lambda i: (-(scores[i] or 0.0), i))
    free = [s for s in slots if order[s] is None]
    for pos, i in zip(free, ranked, strict=True):
        order[pos] = i
    return [i for i in order if i is not None] + without


def merge(
    response: dict[str, Any],
    p: Plan,
    scores: Sequence[float | None],
    has_text: Sequence[bool],
    gateway_ms: int,
    *,
    dropped: Sequence[bool] = (),
    explanations: Sequence[dict[str, Any] | None] = (),
) -> dict[str, Any]:
    """The client's page: reranked window, then upstream order beyond it.

    ``dropped`` hits of the window (below ``min_score``) leave it; ``explanations``
    replace the hits' ``_explanation``.
    """
    out = dict(response)
    hits_section = dict(out.get("hits") or {})
    hits: list[dict[str, Any]] = [dict(h) for h in hits_section.get("hits") or []]
    window, rest = hits[: p.window], hits[p.window :]
    if p.first_stage:
        for rank, hit in enumerate(hits):
            extra = dict(hit.get("fields") or {})
            extra[FIRST_STAGE_FIELD] = [hit.get("_score")]
            extra[FIRST_STAGE_RANK_FIELD] = [rank + 1]
            hit["fields"] = extra
    padded = list(scores) + [None] * (len(window) - len(scores))
    text_mask = list(has_text) + [False] * (len(window) - len(has_text))
    order = reorder(padded[: len(window)], text_mask[: len(window)])
    new_window = []
    for i in order:
        hit = window[i]
        if i < len(dropped) and dropped[i]:
            continue
        if padded[i] is not None:
            hit["_score"] = padded[i]
        if i < len(explanations) and explanations[i] is not None:
            hit["_explanation"] = explanations[i]
        new_window.append(hit)
    ranked = new_window + rest
    page = ranked[p.from_ : p.from_ + p.size]
    for hit in page:
        _strip_added(hit, p)
    real = [s for s in padded if s is not None]
    if real:
        hits_section["max_score"] = max(real)
    hits_section["hits"] = page
    out["hits"] = hits_section
    if isinstance(out.get("took"), int):
        out["took"] = out["took"] + gateway_ms
    return out


def _strip_added(hit: dict[str, Any], p: Plan) -> None:
    fields = hit.get("fields")
    if not isinstance(fields, dict) or not p.added_fields:
        return
    kept = {k: v for k, v in fields.items() if k not in p.added_fields}
    if kept or p.client_fields or p.first_stage:
        hit["fields"] = kept
    else:
        del hit["fields"]


def passthrough_page(response: dict[str, Any], p: Plan, gateway_ms: int) -> dict[str, Any]:
    """The client's page in upstream order (reranking skipped after the widened fetch)."""
    return merge(response, p, [], [], gateway_ms)
