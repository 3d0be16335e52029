"""query_vector_builder → query_vector, with a deterministic fake embedder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.es.query_text import find_text
from gateway.settings import EmbedderSettings
from gateway.vectors.query import QueryVectors, builders
from tests.doubles.encoders import FakeEmbedder
from tests.doubles.net import JSON


def builder(text: str, model_id: str = "m") -> dict[str, Any]:
    return {"text_embedding": {"model_id": model_id, "model_text": text}}


def knn(text: str, model_id: str = "m") -> dict[str, Any]:
    return {
        "field": "v",
        "k": 3,
        "num_candidates": 10,
        "query_vector_builder": builder(text, model_id),
    }


async def fill(
    body: Any,
    model_id: str | None = None,
    fake: FakeEmbedder | None = None,
    headers: dict[str, str] = JSON,
) -> Any:
    vectors = QueryVectors(EmbedderSettings(model_id=model_id), fake or FakeEmbedder())
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    out = await vectors.fill(raw, headers)
    return out if out is raw else json.loads(out)


async def test_top_level_knn_gets_the_texts_vector_and_keeps_the_text_for_the_reranker() -> None:
    out = await fill({"knn": knn("berlin people"), "size": 3})
    assert out["knn"] == {"field": "v", "k": 3, "num_candidates": 10, "query_vector": [13.0, 1.0]}
    assert out["ext"] == {"rerank": {"query": "berlin people"}}
    assert out["size"] == 3


async def test_every_builder_is_filled_in_one_model_call() -> None:
    fake = FakeEmbedder()
    body = {
        "knn": [knn("a b"), knn("c")],
        "query": {"bool": {"should": [{"match": {"t": "word"}}, {"knn": knn("deep one")}]}},
        "retriever": {"rrf": {"retrievers": [{"knn": knn("from retriever")}]}},
    }
    out = await fill(body, fake=fake)
    assert fake.calls == [["a b", "c", "deep one", "from retriever"]]
    assert [k["query_vector"] for k in out["knn"]] == [[3.0, 1.0], [1.0, 0.0]]
    assert out["query"]["bool"]["should"][1]["knn"]["query_vector"] == [8.0, 1.0]
    assert out["retriever"]["rrf"]["retrievers"][0]["knn"]["query_vector"] == [14.0, 1.0]
    assert "query_vector_builder" not in json.dumps(out)
    # the reranker's text is what it read before: the match text and every builder's
    assert out["ext"]["rerank"]["query"] == find_text(body) == "word deep one a b c from retriever"


async def test_an_explicit_rerank_query_is_kept() -> None:
    out = await fill({"knn": knn("x y"), "ext": {"rerank": {"query": "mine", "window": 5}}})
    assert out["ext"] == {"rerank": {"query": "mine", "window": 5}}


async def test_only_the_configured_model_id_is_filled() -> None:
    out = await fill({"knn": [knn("ours", "mini"), knn("theirs", "elser")]}, model_id="mini")
    assert "query_vector" in out["knn"][0]
    assert out["knn"][1] == knn("theirs", "elser")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"knn": {"query_vector_builder": {"text_embedding": {"model_text": "a"}}},'
        b' "x": 1, "x": 2}',
        b"not json query_vector_builder",
        b'{"knn": {"query_vector_builder": {"text_embedding": {"model_text": 5}}}}',
        b'{"knn": {"query_vector": [1], "query_vector_builder": '
        b'{"text_embedding": {"model_text": "a"}}}}',
        b'{"query": {"match_all": {}}}',
    ],
)
async def test_bodies_it_cannot_or_need_not_fill_go_unchanged(raw: bytes) -> None:
    fake = FakeEmbedder()
    assert await fill(raw, fake=fake) is raw
    assert fake.calls == []


async def test_a_body_that_is_not_json_by_its_type_goes_unchanged() -> None:
    raw = json.dumps({"knn": knn("a")}).encode()
    assert await fill(raw, headers={"Content-Type": "text/plain"}) is raw
    assert await fill(raw, headers={}) is raw


async def test_a_failing_embedder_leaves_the_builder_to_the_cluster() -> None:
    raw = json.dumps({"knn": knn("a")}).encode()
    assert await fill(raw, fake=FakeEmbedder(fail=True)) is raw


async def test_no_embedder_no_change() -> None:
    raw = json.dumps({"knn": knn("a")}).encode()
    assert await QueryVectors(EmbedderSettings()).fill(raw, JSON) is raw


def test_builders_stop_at_a_depth_limit() -> None:
    node: dict[str, Any] = knn("deep")
    for _ in range(100):
        node = {"bool": {"must": [node]}}
    assert list(builders(node, None)) == []
    assert len(list(builders(knn("shallow"), None))) == 1
