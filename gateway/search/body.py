"""Pure functions over ``_search`` JSON: plan, widen, merge (hit text: ``documents``).

Nothing here does I/O. A body the gateway cannot read cleanly (invalid JSON,
duplicate keys, wrong types) is never "fixed": the planner answers with a skip
reason and the search goes to the upstream unchanged, so the client gets the
cluster's own verdict.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import ClientRequestError
from gateway.search import cursor as cursors
from gateway.search.filter_path import glob
from gateway.search.query_text import find_text

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
    shadowed: tuple[str, ...] = ()  # text fields whose ``fields`` entry is the client's own
    orders: tuple[bool, ...] | None = None  # explicit ``_score``-first sort: desc per key
    cursor: tuple[Any, ...] | None = None  # ``search_after`` read against the reranked order


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


# The keys of ``ext.rerank`` (README); any other is refused, as ES refuses unknown fields.
RERANK_OPTIONS = (
    "query",
    "query_context",
    "window",
    "profile",
    "timeout_ms",
    "explain",
    "first_stage_score",
)


def rerank_option(body: dict[str, Any]) -> dict[str, Any]:
    """The gateway's own ``ext.rerank`` section (validated), or {}.

    Checked like ES's object parsers check a section: an unknown key is an
    ``x_content_parse_exception`` naming it (with ES's "did you mean" hint), a
    value of the wrong kind an ``illegal_argument_exception``. ``timeout_ms`` and
    ``profile`` are checked where they are used.
    """
    ext = body.get("ext")
    if ext is None:
        return {}
    if not isinstance(ext, dict):
        return {}
    option = ext.get("rerank", {})
    if not isinstance(option, dict):
        raise ClientRequestError("illegal_argument_exception", "[ext.rerank] must be an object")
    _known_fields("rerank", option, RERANK_OPTIONS)
    window = option.get("window")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window <= 0
    ):
        raise _bad_option("window", "a positive integer", window)
    for flag in ("explain", "first_stage_score"):
        if flag in option and not isinstance(option[flag], bool):
            raise _bad_option(flag, "true or false", option[flag])
    if "query" in option and not isinstance(option["query"], str):
        raise _bad_option("query", "a string", option["query"])
    context = option.get("query_context")
    if context is not None:
        if not isinstance(context, dict) or not isinstance(context.get("query_text"), str):
            raise _bad_option("query_context", '{"query_text": "..."}', context)
        _known_fields("query_context", context, ("query_text",))
    return option


def _known_fields(section: str, value: dict[str, Any], known: Sequence[str]) -> None:
    for key in value:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
            hint = f" did you mean [{close[0]}]?" if close else ""
            raise ClientRequestError(
                "x_content_parse_exception", f"[{section}] unknown field [{key}]{hint}"
            )


def _bad_option(name: str, expected: str, found: object) -> ClientRequestError:
    shown = json.dumps(found)[:100]
    return ClientRequestError(
        "illegal_argument_exception", f"[ext.rerank.{name}] must be {expected}, found [{shown}]"
    )


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
    orders = cursors.sort_orders(body, params)
    after = body.get("search_after")
    if "scroll" in params or (
        after is not None and (orders is None or not isinstance(after, list) or not after or from_)
    ):
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
    # Text the client's own ``fields`` / ``stored_fields`` bring back is read there; a name its
    # ``docvalue_fields`` / ``script_fields`` / ``collapse`` fill is read from ``_source`` only
    # (not asked for: the gateway's entry would overwrite the client's); the rest is added.
    readable = _patterns(body.get("fields")) + _patterns(body.get("stored_fields"))
    others = [*_patterns(body.get("docvalue_fields")), *_named(body.get("script_fields"))]
    collapse = body.get("collapse")
    if isinstance(collapse, dict):
        others += _patterns(collapse.get("field"))
    covered = [f for f in fields if _matches(f, readable)]
    shadowed = tuple(f for f in fields if f not in covered and _matches(f, others))
    added = tuple(f for f in fields if f not in covered and f not in shadowed)
    return Plan(
        query=query,
        from_=from_,
        size=size,
        window=window,
        fetch=window + size if after is not None else max(window, from_ + size),
        added_fields=added,
        client_fields=body.get("fields") is not None,
        first_stage=bool(option.get("first_stage_score", False)),
        explain=_wants_explain(params, body, option),
        shadowed=shadowed,
        orders=orders,
        cursor=tuple(after) if after is not None else None,
    )


def _patterns(value: Any) -> list[str]:
    """Field patterns of a hit option: a string, or a list of strings / ``{"field": ...}``."""
    items = value if isinstance(value, list) else [value]
    out = [
        f if isinstance(f, str) else f.get("field") if isinstance(f, dict) else None for f in items
    ]
    return [f for f in out if isinstance(f, str) and f and f != "_none_"]


def _named(value: Any) -> list[str]:
    return [str(k) for k in value] if isinstance(value, dict) else []


def _matches(name: str, patterns: Sequence[str]) -> bool:
    """ES field patterns: ``*`` is the only wildcard."""
    return any(name == p or ("*" in p and glob(p, name)) for p in patterns)


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


def widen(body: dict[str, Any], p: Plan) -> dict[str, Any]:
    """The body sent upstream: top ``fetch`` hits from 0, with the text fields returned."""
    out = dict(strip_gateway_ext(body))  # the caller's dict stays as the client sent it
    out["from"] = 0
    out["size"] = p.fetch
    out.pop("search_after", None)  # a cursor is read against the reranked order
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
    top = max((float(h["_score"]) for h in window if is_number(h.get("_score"))), default=None)
    new_window: list[dict[str, Any]] = []
    last_scored = -1
    for i in order:
        hit = window[i]
        if i < len(dropped) and dropped[i]:
            continue
        if padded[i] is not None:
            hit["_score"] = padded[i]
            last_scored = len(new_window)
        if i < len(explanations) and explanations[i] is not None:
            hit["_explanation"] = explanations[i]
        new_window.append(hit)
    ranked = new_window + rest
    real = [s for s in padded if s is not None]
    if real and top is not None:
        # One scale per answer: what was not reranked goes below the lowest reranked
        # score, moved by a whole number so its order (and ties) stay the cluster's.
        shift = math.floor(min(real) - top) - 1
        for hit in ranked[last_scored + 1 :]:
            if is_number(hit.get("_score")):
                hit["_score"] = hit["_score"] + shift
    if p.orders is not None:
        for hit in ranked:
            values = cursors.sort_values(hit)
            if values is not None and is_number(hit.get("_score")):
                hit["sort"] = [hit["_score"], *values[1:]]
        ranked = cursors.order_hits(ranked[: len(new_window)], p.orders) + ranked[len(new_window) :]
    page = ranked[p.from_ : p.from_ + p.size]
    for hit in page:
        strip_added(hit, p)
    if real and is_number(hits_section.get("max_score")):
        hits_section["max_score"] = max(real)
    hits_section["hits"] = page
    out["hits"] = hits_section
    if isinstance(out.get("took"), int):
        out["took"] = out["took"] + gateway_ms
    return out


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def text_hits(hits: Sequence[dict[str, Any]], p: Plan) -> list[dict[str, Any]]:
    """The hits as the text is read from them: ``fields`` entries that are the client's
    own ``docvalue_fields`` / ``script_fields`` values (``p.shadowed``) left out."""
    if not p.shadowed:
        return list(hits)
    out = []
    for hit in hits:
        fields = hit.get("fields")
        if isinstance(fields, dict) and any(f in fields for f in p.shadowed):
            kept = {k: v for k, v in fields.items() if k not in p.shadowed}
            out.append({**hit, "fields": kept})
        else:
            out.append(hit)
    return out


def strip_added(hit: dict[str, Any], p: Plan) -> None:
    fields = hit.get("fields")
    if not isinstance(fields, dict) or not p.added_fields:
        return
    kept = {k: v for k, v in fields.items() if k not in p.added_fields}
    if kept or p.first_stage:
        hit["fields"] = kept
    else:
        del hit["fields"]  # the cluster leaves out an empty ``fields``


def passthrough_page(response: dict[str, Any], p: Plan, gateway_ms: int) -> dict[str, Any]:
    """The client's page in upstream order (reranking skipped after the widened fetch)."""
    return merge(response, p, [], [], gateway_ms)
