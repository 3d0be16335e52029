"""The ``retriever`` section of a search body → a typed tree, checked as Elasticsearch does.

Errors are the cluster's own (as Elasticsearch 8.15 / noida-db answer them):

- ``retriever`` beside ``query``, ``knn``, ``sort``, ``min_score`` ... →
  ``illegal_argument_exception`` "cannot specify [retriever] and [query]";
- an unknown retriever → ``parsing_exception`` "unknown retriever [x]";
- an unknown key in one → ``x_content_parse_exception`` "[rrf] unknown field [x]";
- fewer than two sub-retrievers, or ``rank_window_size`` below ``size`` →
  ``action_request_validation_exception`` "Validation Failed: 1: ...;".

Filters of a compound retriever (``rrf``, ``linear``, ``text_similarity_reranker``) are
pushed down to every leaf under it, as Elasticsearch's pre-filters are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from gateway.errors import ClientRequestError

DEFAULT_WINDOW = 10  # RankBuilder.DEFAULT_RANK_WINDOW_SIZE
DEFAULT_RANK_CONSTANT = 60
Normalizer = Literal["none", "minmax", "l2_norm"]
_NORMALIZERS: tuple[Normalizer, ...] = ("none", "minmax", "l2_norm")
# Top-level search sections that Elasticsearch refuses beside ``retriever``, in its order.
_EXCLUSIVE = ("query", "knn", "search_after", "terminate_after", "sort", "rescore", "min_score")
_BASE = ("filter", "_name", "min_score")  # keys every retriever may have (RetrieverBuilder)


@dataclass(frozen=True, slots=True)
class Standard:
    query: dict[str, Any] | None = None
    filters: tuple[dict[str, Any], ...] = ()
    min_score: float | None = None


@dataclass(frozen=True, slots=True)
class Knn:
    field: str
    vector: tuple[float, ...] | None  # query_vector, or None: built from ``text``
    text: str | None = None  # query_vector_builder.text_embedding.model_text
    k: int | None = None
    num_candidates: int | None = None
    filters: tuple[dict[str, Any], ...] = ()
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class Child:
    node: Node
    weight: float = 1.0
    normalizer: Normalizer = "none"


@dataclass(frozen=True, slots=True)
class MultiField:
    """The simplified ``fields`` + ``query`` form, expanded against the index mapping."""

    fields: tuple[str, ...]
    query: str
    normalizer: Normalizer = "none"


@dataclass(frozen=True, slots=True)
class Fusion:
    """``rrf`` or ``linear`` over children (or a ``MultiField`` still to expand)."""

    kind: Literal["rrf", "linear"]
    children: tuple[Child, ...]
    window: int = DEFAULT_WINDOW
    rank_constant: int = DEFAULT_RANK_CONSTANT
    min_score: float | None = None
    multi: MultiField | None = None
    filters: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ChunkRescorer:
    size: int = 1
    chunk_words: int | None = None  # chunking_settings.max_chunk_size
    overlap: int | None = None


@dataclass(frozen=True, slots=True)
class Rerank:
    """``text_similarity_reranker``: the child's top ``window`` hits reranked by a model."""

    child: Node
    field: str | None  # None: the profile's own document text (the hybrid profile)
    text: str
    inference_id: str | None = None
    window: int = DEFAULT_WINDOW
    min_score: float | None = None
    chunks: ChunkRescorer | None = None


Node = Standard | Knn | Fusion | Rerank


@dataclass(frozen=True, slots=True)
class Tree:
    root: Node
    from_: int
    size: int


def _error(kind: str, reason: str) -> ClientRequestError:
    return ClientRequestError(kind, reason)


def _validation(reason: str) -> ClientRequestError:
    return _error("action_request_validation_exception", f"Validation Failed: 1: {reason};")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _error("x_content_parse_exception", f"[{where}] expected an object")
    return value


def _keys(name: str, spec: Mapping[str, Any], known: Sequence[str]) -> None:
    for key in spec:
        if key not in known and key not in _BASE:
            raise _error("x_content_parse_exception", f"[{name}] unknown field [{key}]")


def _required(name: str, spec: Mapping[str, Any], key: str) -> Any:
    if key not in spec:
        raise _error("x_content_parse_exception", f"[{name}] Required [{key}]")
    return spec[key]


def _int(name: str, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _error(
            "illegal_argument_exception", f"[{name}] [{key}] must be an integer >= {minimum}"
        )
    return value


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error("x_content_parse_exception", f"[{name}] [{key}] must be a number")
    return float(value)


def _text(name: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _error("x_content_parse_exception", f"[{name}] [{key}] must be a string")
    return value


def _filters(value: Any) -> tuple[dict[str, Any], ...]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        _object(item, "filter")
    return tuple(items)


def _min_score(name: str, spec: Mapping[str, Any]) -> float | None:
    return None if spec.get("min_score") is None else _number(name, "min_score", spec["min_score"])


def parse_node(value: Any) -> Node:
    spec = _object(value, "retriever")
    if len(spec) != 1:
        raise _error("parsing_exception", "retriever must name exactly one retriever type")
    ((name, inner),) = spec.items()
    parser = _PARSERS.get(name)
    if parser is None:
        raise _error("parsing_exception", f"unknown retriever [{name}]")
    return parser(_object(inner, name))


def _standard(spec: dict[str, Any]) -> Standard:
    _keys("standard", spec, ("query",))
    query = spec.get("query")
    return Standard(
        query=None if query is None else _object(query, "query"),
        filters=_filters(spec["filter"]) if "filter" in spec else (),
        min_score=_min_score("standard", spec),
    )


def _knn(spec: dict[str, Any]) -> Knn:
    _keys(
        "knn",
        spec,
        ("field", "query_vector", "query_vector_builder", "k", "num_candidates", "similarity"),
    )
    name = _text("knn", "field", _required("knn", spec, "field"))
    vector, text = None, None
    if ("query_vector" in spec) == ("query_vector_builder" in spec):
        raise _error(
            "illegal_argument_exception",
            "[knn] exactly one of [query_vector, query_vector_builder] must be provided",
        )
    if "query_vector" in spec:
        raw = spec["query_vector"]
        if not isinstance(raw, list) or not raw:
            raise _error("x_content_parse_exception", "[knn] [query_vector] must be an array")
        vector = tuple(_number("knn", "query_vector", v) for v in raw)
    else:
        builder = _object(spec["query_vector_builder"], "query_vector_builder")
        embedding = _object(
            _required("query_vector_builder", builder, "text_embedding"), "text_embedding"
        )
        text = _text(
            "text_embedding", "model_text", _required("text_embedding", embedding, "model_text")
        )
    k = _int("knn", "k", spec["k"], 1) if "k" in spec else None
    candidates = (
        _int("knn", "num_candidates", spec["num_candidates"], 1)
        if "num_candidates" in spec
        else None
    )
    if k is not None and candidates is not None and candidates < k:
        raise _error("illegal_argument_exception", "[num_candidates] cannot be less than [k]")
    similarity = spec.get("similarity")
    return Knn(
        field=name,
        vector=vector,
        text=text,
        k=k,
        num_candidates=candidates,
        filters=_filters(spec["filter"]) if "filter" in spec else (),
        similarity=None if similarity is None else _number("knn", "similarity", similarity),
    )


def _normalizer(name: str, value: Any) -> Normalizer:
    for known in _NORMALIZERS:
        if value == known:
            return known
    raise _error("illegal_argument_exception", f"[{name}] unknown normalizer [{value}]")


def _fusion(kind: Literal["rrf", "linear"], spec: dict[str, Any]) -> Fusion:
    known = ["retrievers", "rank_window_size", "fields", "query"]
    known.append("rank_constant" if kind == "rrf" else "normalizer")
    _keys(kind, spec, known)
    window = (
        _int(kind, "rank_window_size", spec["rank_window_size"], 1)
        if "rank_window_size" in spec
        else DEFAULT_WINDOW
    )
    constant = (
        _int(kind, "rank_constant", spec["rank_constant"], 1)
        if "rank_constant" in spec
        else DEFAULT_RANK_CONSTANT
    )
    top_norm = _normalizer(kind, spec["normalizer"]) if "normalizer" in spec else None
    filters = _filters(spec["filter"]) if "filter" in spec else ()
    min_score = _min_score(kind, spec)
    if "query" in spec:
        if "retrievers" in spec:
            raise _validation(f"[{kind}] cannot combine [retrievers] and [query]")
        if kind == "linear" and top_norm is None:
            raise _validation("[linear] [normalizer] must be provided when [query] is specified")
        raw_fields = spec.get("fields", ["*"])
        if not isinstance(raw_fields, list) or not raw_fields:
            raise _error("x_content_parse_exception", f"[{kind}] [fields] must be an array")
        multi = MultiField(
            tuple(_text(kind, "fields", f) for f in raw_fields),
            _text(kind, "query", spec["query"]),
            top_norm or "none",
        )
        return Fusion(kind, (), window, constant, min_score, multi, filters)
    if "fields" in spec:
        raise _validation(f"[{kind}] [fields] requires [query]")
    if kind == "linear" and top_norm is not None and "retrievers" in spec:
        raise _validation("[linear] [normalizer] cannot be provided when [retrievers] is specified")
    raw = spec.get("retrievers")
    if not isinstance(raw, list):
        raise _error("x_content_parse_exception", f"[{kind}] Required [retrievers]")
    children = tuple(_child(kind, item) for item in raw)
    if len(children) < 2:
        raise _validation(
            "[rank] requires a minimum of [2] result sets using a combination of sub searches"
            " and/or knn searches"
        )
    return Fusion(kind, children, window, constant, min_score, None, filters)


def _child(kind: str, item: Any) -> Child:
    entry = _object(item, kind)
    if kind == "rrf" or "retriever" not in entry:
        return Child(parse_node(entry))
    for key in entry:
        if key not in ("retriever", "weight", "normalizer"):
            raise _error("x_content_parse_exception", f"[{kind}] unknown field [{key}]")
    weight = _number(kind, "weight", entry.get("weight", 1.0))
    if weight < 0:
        raise _error("illegal_argument_exception", f"[{kind}] [weight] must be >= 0")
    normalizer = _normalizer(kind, entry["normalizer"]) if "normalizer" in entry else "none"
    return Child(parse_node(entry["retriever"]), weight, normalizer)


def _rerank(spec: dict[str, Any]) -> Rerank:
    name = "text_similarity_reranker"
    _keys(
        name,
        spec,
        (
            "retriever",
            "field",
            "inference_id",
            "inference_text",
            "rank_window_size",
            "chunk_rescorer",
        ),
    )
    child = parse_node(_required(name, spec, "retriever"))
    if "filter" in spec:
        child = with_filters(child, _filters(spec["filter"]))
    chunks = None
    if "chunk_rescorer" in spec:
        raw = _object(spec["chunk_rescorer"], "chunk_rescorer")
        _keys("chunk_rescorer", raw, ("size", "chunking_settings"))
        settings = _object(raw.get("chunking_settings", {}), "chunking_settings")
        words = settings.get("max_chunk_size")
        overlap = settings.get("overlap")
        chunks = ChunkRescorer(
            size=_int("chunk_rescorer", "size", raw.get("size", 1), 1),
            chunk_words=None
            if words is None
            else _int("chunking_settings", "max_chunk_size", words, 1),
            overlap=None if overlap is None else _int("chunking_settings", "overlap", overlap, 0),
        )
    inference_id = spec.get("inference_id")
    return Rerank(
        child=child,
        field=_text(name, "field", _required(name, spec, "field")),
        text=_text(name, "inference_text", _required(name, spec, "inference_text")),
        inference_id=None if inference_id is None else _text(name, "inference_id", inference_id),
        window=_int(name, "rank_window_size", spec.get("rank_window_size", DEFAULT_WINDOW), 1),
        min_score=_min_score(name, spec),
        chunks=chunks,
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], Node]] = {
    "standard": _standard,
    "knn": _knn,
    "rrf": lambda spec: _fusion("rrf", spec),
    "linear": lambda spec: _fusion("linear", spec),
    "text_similarity_reranker": _rerank,
}


def with_filters(node: Node, filters: tuple[dict[str, Any], ...]) -> Node:
    """``node`` with ``filters`` added: to a leaf's own, or to a compound's (``pushed``
    takes a compound's filters down to its leaves)."""
    if not filters:
        return node
    if isinstance(node, Rerank):
        return replace(node, child=with_filters(node.child, filters))
    return replace(node, filters=(*node.filters, *filters))


def pushed(node: Node, window: int = DEFAULT_WINDOW) -> Node:
    """Each compound's own filters pushed down to its leaves (once, at the top); a knn
    leaf without ``k`` gets its parent's ``rank_window_size``."""
    if isinstance(node, Fusion):
        children = tuple(
            replace(c, node=pushed(with_filters(c.node, node.filters), node.window))
            for c in node.children
        )
        return replace(node, children=children)
    if isinstance(node, Rerank):
        return replace(node, child=pushed(node.child, node.window))
    if isinstance(node, Knn) and node.k is None:
        return replace(node, k=window)
    return node


def leaves(node: Node) -> list[Standard | Knn]:
    if isinstance(node, Standard | Knn):
        return [node]
    if isinstance(node, Rerank):
        return leaves(node.child)
    return [leaf for c in node.children for leaf in leaves(c.node)]


def _page_value(body: Mapping[str, Any], params: Mapping[str, str], key: str, default: int) -> int:
    raw: Any = params.get(key, body.get(key, default))
    try:
        value = int(raw) if isinstance(raw, str) else raw
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _error("illegal_argument_exception", f"[{key}] must be a non-negative integer")
    return value


def parse(body: Mapping[str, Any], params: Mapping[str, str]) -> Tree:
    """The search's retriever tree and page; raises ``ClientRequestError`` like ES."""
    clash = [key for key in _EXCLUSIVE if key in body]
    if clash:
        raise _error(
            "illegal_argument_exception", f"cannot specify [retriever] and [{', '.join(clash)}]"
        )
    root = pushed(parse_node(body["retriever"]))
    from_ = _page_value(body, params, "from", 0)
    size = _page_value(body, params, "size", 10)
    window = root.window if isinstance(root, Fusion | Rerank) else None
    if window is not None and window < size:
        raise _validation(
            f"[rank] requires [rank_window_size: {window}] be greater than or equal to"
            f" [size: {size}]"
        )
    return Tree(root, from_, size)
