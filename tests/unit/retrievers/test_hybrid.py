"""The hybrid tree built for a plain match query (BM25 and kNN fused, then reranked)."""

from __future__ import annotations

from typing import Any

from gateway.retrievers import hybrid
from gateway.retrievers.parse import Fusion, Knn, Rerank
from gateway.settings import HybridOptions


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
