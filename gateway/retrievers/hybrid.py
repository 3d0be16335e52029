"""The hybrid profile: a plain ``match`` / ``multi_match`` search as a two-stage retriever tree.

::

    text_similarity_reranker(window, profile's own text and model)
      └ rrf | linear (window)
          ├ standard: the client's query, unchanged (BM25)
          └ knn: the profile's vector field, the query text embedded, k = window

Only a search whose top-level ``query`` is a ``match`` or ``multi_match`` (no ``knn``,
``sort``, ``search_after``, ``rescore``, ``min_score``) is turned into the tree; any
other goes on as a plain search.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.retrievers.parse import Child, Fusion, Knn, Rerank, Standard, Tree
from gateway.settings import HybridOptions

_PLAIN = ("match", "multi_match")
_NOT_WITH = ("knn", "sort", "search_after", "rescore", "min_score", "retriever", "post_filter")


def tree_for(
    body: Mapping[str, Any],
    options: HybridOptions,
    *,
    query_text: str,
    profile: str,
    window: int,
    from_: int,
    size: int,
) -> Tree | None:
    """The tree a hybrid profile runs for ``body``, or None when it stays a plain search."""
    query = body.get("query")
    if not isinstance(query, dict) or len(query) != 1 or next(iter(query)) not in _PLAIN:
        return None
    if any(key in body for key in _NOT_WITH) or from_ + size > window:
        return None
    bm25 = Standard(query)
    knn = Knn(
        options.vector_field,
        None,
        text=query_text,
        k=window,
        num_candidates=options.num_candidates,
    )
    if options.fusion == "rrf":
        children = (Child(bm25), Child(knn))
    else:
        children = (
            Child(bm25, options.bm25_weight, options.normalizer),
            Child(knn, options.knn_weight, options.normalizer),
        )
    fused = Fusion(options.fusion, children, window, options.rank_constant)
    root = Rerank(fused, None, query_text, inference_id=profile, window=window)
    return Tree(root, from_, size)
