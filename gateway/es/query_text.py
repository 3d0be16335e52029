"""Find the text a search is about, in its query DSL, for the cross-encoder to read.

Relevance-bearing clauses are walked (``must``/``should`` but not ``filter`` or
``must_not``); full-text leaves give their query string. An explicit text in
``ext.rerank`` wins over anything found in the DSL.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

# Leaves whose value is {field: text | {"query": text}}.
_FIELD_LEAVES = frozenset({"match", "match_phrase", "match_phrase_prefix", "match_bool_prefix"})
# Leaves whose body has a "query" text.
_QUERY_LEAVES = frozenset(
    {"multi_match", "query_string", "simple_query_string", "combined_fields", "semantic"}
)
# Compound queries: key → where the relevance-bearing sub-queries are.
_WRAPPERS: dict[str, tuple[str, ...]] = {
    "bool": ("must", "should"),
    "dis_max": ("queries",),
    "function_score": ("query",),
    "script_score": ("query",),
    "boosting": ("positive",),
    "nested": ("query",),
    "has_child": ("query",),
    "has_parent": ("query",),
    "hybrid": ("queries",),  # OpenSearch neural-search
    "constant_score": (),  # a filter: no relevance
}
_QS_FIELD = re.compile(r"(?<![\w\\])[\w.*]+:(?=\S)")
_QS_SYNTAX = re.compile(r"\b(AND|OR|NOT)\b|[+\-!(){}\[\]^\"~*?\\/|&]")
_SPACES = re.compile(r"\s+")
_MAX_DEPTH = 64
# The query text is read up to this many characters: past them no model reads it
# (MODEL__MAX_QUERY_TOKENS cuts it far sooner), and cleaning a 1 MB text on the
# event loop would cost ~0.2 s.
MAX_CHARS = 16_384


def explicit_text(body: dict[str, Any]) -> str | None:
    """``ext.rerank.query_context.query_text`` (OpenSearch's shape) or ``ext.rerank.query``."""
    ext = body.get("ext")
    if not isinstance(ext, dict):
        return None
    rerank = ext.get("rerank")
    if not isinstance(rerank, dict):
        return None
    context = rerank.get("query_context")
    if isinstance(context, dict) and isinstance(context.get("query_text"), str):
        return _clean(context["query_text"][:MAX_CHARS]) or None
    if isinstance(rerank.get("query"), str):
        return _clean(rerank["query"][:MAX_CHARS]) or None
    return None


def find_text(body: dict[str, Any], uri_q: str | None = None) -> str | None:
    """The query text of a ``_search`` body (and ``?q=``), or None when there is none."""
    explicit = explicit_text(body)
    if explicit:
        return explicit
    parts = itertools.chain(
        [_strip_query_syntax(uri_q[:MAX_CHARS])] if uri_q else [],
        _walk(body.get("query"), 0),
        _knn_texts(body.get("knn")),
        _retriever_texts(body.get("retriever"), 0),
    )
    seen: list[str] = []
    room = MAX_CHARS
    for part in parts:  # lazily: the walk stops once MAX_CHARS are collected
        cleaned = _clean(part[:room])
        if cleaned and cleaned not in seen:
            seen.append(cleaned)
            room -= len(cleaned) + 1
            if room <= 0:
                break
    return " ".join(seen) or None


def _walk(node: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH or not isinstance(node, dict):
        return
    for kind, spec in node.items():
        if kind in _FIELD_LEAVES and isinstance(spec, dict):
            for value in spec.values():
                text = value.get("query", value.get("value")) if isinstance(value, dict) else value
                if isinstance(text, str):
                    yield text
        elif kind in _QUERY_LEAVES and isinstance(spec, dict):
            text = spec.get("query")
            if isinstance(text, str):
                text = text[:MAX_CHARS]
                yield _strip_query_syntax(text) if kind.endswith("query_string") else text
        elif kind in _WRAPPERS and isinstance(spec, dict):
            for slot in _WRAPPERS[kind]:
                child = spec.get(slot)
                for sub in child if isinstance(child, list) else [child]:
                    yield from _walk(sub, depth + 1)
        elif kind == "knn" and isinstance(spec, dict):  # the knn *query* (ES 8.12+)
            yield from _knn_texts(spec)


def _knn_texts(knn: Any) -> Iterator[str]:
    for entry in knn if isinstance(knn, list) else [knn]:
        if not isinstance(entry, dict):
            continue
        builder = entry.get("query_vector_builder")
        if isinstance(builder, dict):
            emb = builder.get("text_embedding")
            if isinstance(emb, dict) and isinstance(emb.get("model_text"), str):
                yield emb["model_text"]


def _retriever_texts(retriever: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH or not isinstance(retriever, dict):
        return
    for kind, spec in retriever.items():
        if not isinstance(spec, dict):
            continue
        if kind == "standard":
            yield from _walk(spec.get("query"), depth + 1)
        elif kind == "knn":
            yield from _knn_texts(spec)
        else:  # rrf, text_similarity_reranker, linear ...: nested retrievers
            subs = spec.get("retrievers", [])
            if isinstance(spec.get("retriever"), dict):
                subs = [spec["retriever"]]
            for sub in subs if isinstance(subs, list) else []:
                inner = sub.get("retriever", sub) if isinstance(sub, dict) else None
                yield from _retriever_texts(inner, depth + 1)


def _strip_query_syntax(text: str) -> str:
    """Lucene query-string syntax → the words a person typed."""
    return _QS_SYNTAX.sub(" ", _QS_FIELD.sub(" ", text))


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()
