"""The retriever tree's pure parts: parsing and its errors, fusion arithmetic, the hybrid tree."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import ClientRequestError
from gateway.retrievers import fuse, hybrid
from gateway.retrievers.parse import Fusion, Knn, Rerank, Standard, parse
from gateway.settings import HybridOptions

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


def test_minmax_and_l2_follow_elasticsearch_edge_cases() -> None:
    assert fuse.normalize([2.0, 4.0, 3.0], "minmax") == [0.0, 1.0, 0.5]
    assert fuse.normalize([3.0, 3.0], "minmax") == [3.0, 3.0]  # max == min: every score is min
    assert fuse.normalize([3.0, 4.0], "l2_norm") == pytest.approx([0.6, 0.8])
    assert fuse.normalize([0.0, 0.0], "l2_norm") == [0.0, 0.0]  # norm < 1e-6: unchanged
    assert fuse.normalize([5.0], "none") == [5.0]


def test_rrf_sums_reciprocal_ranks_within_the_window() -> None:
    a = [("x", 9.0), ("y", 8.0), ("z", 7.0)]
    b = [("z", 0.9), ("x", 0.8)]
    got = fuse.rrf([a, b], rank_constant=1, window=2)
    # window 2: z counts only from b (rank 1), y from a (rank 2); x from both.
    assert [(r.key, r.score, r.rank) for r in got] == [("x", 1 / 2 + 1 / 3, 1), ("z", 1 / 2, 2)]


def test_linear_adds_zero_for_a_missing_list_and_cuts_at_min_score() -> None:
    a = [("x", 10.0), ("y", 0.0)]
    b = [("y", 2.0)]
    got = fuse.linear([a, b], [1.0, 3.0], ["minmax", "none"], window=5)
    assert [(r.key, r.score) for r in got] == [("y", 6.0), ("x", 1.0)]
    cut = fuse.linear([a, b], [1.0, 3.0], ["minmax", "none"], window=5, min_score=2.0)
    assert [r.key for r in cut] == ["y"]


def test_hybrid_tree_only_for_a_plain_match() -> None:
    options = HybridOptions(vector_field="vec", fusion="linear", knn_weight=2.0)
    args: dict[str, Any] = {"query_text": "q", "profile": "p", "window": 20, "from_": 0, "size": 5}
    tree = hybrid.tree_for({"query": {"match": {"t": "q"}}}, options, **args)
    assert tree is not None and isinstance(tree.root, Rerank)
    fused = tree.root.child
    assert isinstance(fused, Fusion) and fused.kind == "linear"
    assert [c.weight for c in fused.children] == [1.0, 2.0]
    knn = fused.children[1].node
    assert isinstance(knn, Knn) and (knn.field, knn.text, knn.k) == ("vec", "q", 20)
    assert hybrid.tree_for({"query": {"bool": {}}}, options, **args) is None
    assert hybrid.tree_for({"query": {"match": {}}, "sort": ["x"]}, options, **args) is None
    assert hybrid.tree_for({"query": {"match": {}}}, options, **{**args, "from_": 18}) is None
