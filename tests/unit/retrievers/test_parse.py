"""Parsing a retriever tree, and its Elasticsearch-shaped errors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import ClientRequestError
from gateway.retrievers.parse import Fusion, Knn, Rerank, Standard, parse

STD = {"standard": {"query": {"match": {"text": "a"}}}}
KNN = {"knn": {"field": "v", "query_vector": [1.0, 0.0], "k": 3, "num_candidates": 5}}


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ClientRequestError) as caught:
        parse(body, {})
    return caught.value.error_type, caught.value.reason


def test_defaults_follow_elasticsearch() -> None:
    tree = parse({"retriever": {"rrf": {"retrievers": [STD, KNN]}}}, {})
    assert isinstance(tree.root, Fusion)
    assert (tree.root.window, tree.root.rank_constant) == (10, 60)
    assert (tree.from_, tree.size) == (0, 10)
    tsr = {"retriever": STD, "field": "text", "inference_text": "q"}
    root = parse({"retriever": {"text_similarity_reranker": tsr}}, {}).root
    assert isinstance(root, Rerank)
    assert (root.window, root.min_score, root.inference_id) == (10, None, None)


def test_filters_are_pushed_to_every_leaf_and_knn_gets_the_window_as_k() -> None:
    f1, f2 = {"term": {"a": 1}}, {"term": {"b": 2}}
    knn = {"knn": {"field": "v", "query_vector": [1.0]}}
    inner = {"rrf": {"retrievers": [STD, knn], "filter": f2, "rank_window_size": 7}}
    tsr = {"retriever": inner, "field": "t", "inference_text": "q", "filter": f1}
    root = parse({"retriever": {"text_similarity_reranker": tsr}}, {}).root
    assert isinstance(root, Rerank) and isinstance(root.child, Fusion)
    leaves = [c.node for c in root.child.children]
    assert isinstance(leaves[0], Standard) and isinstance(leaves[1], Knn)
    assert leaves[0].filters == (f2, f1) and leaves[1].filters == (f2, f1)
    assert leaves[1].k == 7


def test_linear_children_weights_and_normalizers() -> None:
    children = [{"retriever": STD, "weight": 2, "normalizer": "l2_norm"}, {"retriever": KNN}]
    root = parse({"retriever": {"linear": {"retrievers": children}}}, {}).root
    assert isinstance(root, Fusion)
    assert [(c.weight, c.normalizer) for c in root.children] == [(2.0, "l2_norm"), (1.0, "none")]


def test_chunk_rescorer_is_read() -> None:
    spec = {"size": 2, "chunking_settings": {"max_chunk_size": 50, "overlap": 10}}
    tsr = {"retriever": STD, "field": "t", "inference_text": "q", "chunk_rescorer": spec}
    root = parse({"retriever": {"text_similarity_reranker": tsr}}, {}).root
    assert isinstance(root, Rerank) and root.chunks is not None
    assert (root.chunks.size, root.chunks.chunk_words, root.chunks.overlap) == (2, 50, 10)


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [
        (
            {"retriever": STD, "query": {}, "sort": []},
            "illegal_argument_exception",
            "cannot specify [retriever] and [query, sort]",
        ),
        ({"retriever": {"x": {}}}, "parsing_exception", "unknown retriever [x]"),
        (
            {"retriever": {"rrf": {"retrievers": [STD, KNN], "k": 1}}},
            "x_content_parse_exception",
            "[rrf] unknown field [k]",
        ),
        (
            {"retriever": {"knn": {"field": "v", "k": 2}}},
            "illegal_argument_exception",
            "[knn] exactly one of [query_vector, query_vector_builder] must be provided",
        ),
        (
            {"retriever": {"linear": {"query": "q"}}},
            "action_request_validation_exception",
            "Validation Failed: 1: [linear] [normalizer] must be provided when [query] is"
            " specified;",
        ),
        (
            {"retriever": {"text_similarity_reranker": {"retriever": STD, "field": "t"}}},
            "x_content_parse_exception",
            "[text_similarity_reranker] Required [inference_text]",
        ),
        (
            {"retriever": {"linear": {"retrievers": [{"retriever": STD, "normalizer": "z"}, KNN]}}},
            "illegal_argument_exception",
            "[linear] unknown normalizer [z]",
        ),
    ],
)
def test_bad_bodies_get_elasticsearch_errors(body: dict[str, Any], kind: str, reason: str) -> None:
    assert error_of(body) == (kind, reason)


def test_simplified_form_is_kept_for_expansion() -> None:
    body = {
        "retriever": {
            "linear": {"fields": ["title^2", "vec"], "query": "q", "normalizer": "minmax"}
        }
    }
    root = parse(body, {}).root
    assert isinstance(root, Fusion) and root.multi is not None
    assert (root.multi.fields, root.multi.query, root.multi.normalizer) == (
        ("title^2", "vec"),
        "q",
        "minmax",
    )
