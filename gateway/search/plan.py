"""How one search is reranked: ``plan`` reads the body (page, sort, text, ``ext.rerank``)
into a ``Plan`` or the reason it is not; ``widen`` is the body then sent upstream.

Pure functions; the body's JSON is ``body``'s, the client's page ``merge``'s.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import ClientRequestError
from gateway.es.body import strip_gateway_ext
from gateway.es.query_text import find_text
from gateway.rerank.reranker import Reason
from gateway.search import cursor as cursors
from gateway.search.filter_path import glob


class _Unreadable(ValueError):
    pass


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
    option: Mapping[str, Any] | None = None,
) -> Plan | Reason:
    """A rerank plan, or the reason why this search is not reranked; ``option``: the
    body's ``ext.rerank`` when already validated (``rerank_option``), else read here."""
    option = rerank_option(body) if option is None else option
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
    if params.get("stored_fields", body.get("stored_fields")) == "_none_":
        return "no_source"
    query = find_text(body, params.get("q"))
    if not query:
        return "no_query_text"
    shadowed, added = field_split(body, params, fields)
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


def field_split(
    body: Mapping[str, Any],
    params: Mapping[str, str],
    fields: Sequence[str],
    unstored: Collection[str] = (),
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(shadowed, added): how the text ``fields`` come back.

    Text the client's own ``fields`` / ``stored_fields`` bring back is read there (not
    ``stored_fields`` for a field the mapping says is ``unstored``: the cluster returns
    nothing for it); a name its ``docvalue_fields`` / ``script_fields`` / ``collapse`` fill
    is read from ``_source`` only (shadowed: not asked for, the gateway's entry would
    overwrite the client's); the rest is added to the search's ``fields``. As in
    Elasticsearch, a ``stored_fields`` URL parameter (comma-separated) replaces the body's,
    and a ``docvalue_fields`` one adds to it.
    """
    asked = _patterns(body.get("fields"))
    stored = _patterns(_url_list(params, "stored_fields") or body.get("stored_fields"))
    others = [
        *_patterns(body.get("docvalue_fields")),
        *_patterns(_url_list(params, "docvalue_fields")),
        *_named(body.get("script_fields")),
    ]
    collapse = body.get("collapse")
    if isinstance(collapse, dict):
        others += _patterns(collapse.get("field"))
    covered = [
        f for f in fields if _matches(f, asked) or (f not in unstored and _matches(f, stored))
    ]
    shadowed = tuple(f for f in fields if f not in covered and _matches(f, others))
    added = tuple(f for f in fields if f not in covered and f not in shadowed)
    return shadowed, added


def _url_list(params: Mapping[str, str], name: str) -> list[str] | None:
    return params[name].split(",") if name in params else None


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


def _wants_explain(
    params: Mapping[str, str], body: dict[str, Any], option: Mapping[str, Any]
) -> bool:
    """ES's ``explain`` (query parameter or body) or the gateway's ``ext.rerank.explain``."""
    if "explain" in params:
        return params["explain"].lower() in ("", "true")
    return body.get("explain") is True or option.get("explain") is True


def source_whole(body: Mapping[str, Any], params: Mapping[str, str]) -> bool:
    """Whether the client's hits carry their whole ``_source`` (nothing filters it)."""
    if any(k in params for k in ("_source", "_source_includes", "_source_excludes")):
        return False
    if "stored_fields" in body or "stored_fields" in params:
        return False
    if "runtime_mappings" in body or "expand_wildcards" in params:
        return False  # fields the mapping lacks, or indices (hidden, closed) it did not list
    if "script_fields" in body:  # Elasticsearch then leaves _source out unless asked
        return body.get("_source") is True
    return body.get("_source", True) is True


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
