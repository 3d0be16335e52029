"""``query_vector_builder`` through the gateway to noida-db (ES 8.15, no ML nodes), with
vectors the backfill command wrote and the real embedder and reranker."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from elasticsearch import Elasticsearch

from gateway.model.embedder import OnnxEmbedder
from gateway.model.embedder_export import load_embedder
from gateway.model.fake import FakeEncoder
from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import EmbedderSettings, UpstreamSettings
from gateway.upstream.client import Upstream
from gateway.vectors.backfill import Options, backfill
from tests.doubles.corpora import load_docs
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.net import http
from tests.doubles.search_servers import call, seed_index
from tests.integration.oracle import ids, load_model, model_order

pytestmark = pytest.mark.integration

INDEX = "embedded"
QUERY = "how many people live in berlin"


@pytest.fixture(scope="module")
def embedder(model_dir: Path, embedder_cache: str) -> OnnxEmbedder:
    return load_embedder(EmbedderSettings(path=model_dir, cache_dir=embedder_cache))


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> OnnxCrossEncoder:
    return load_model(model_dir)


@pytest.fixture
async def embedded(
    noida: str, embedder: OnnxEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """noida-db with ``embedded``: the seeded docs, their vectors filled by the backfill."""
    index = f"{INDEX}-{tmp_path_factory.mktemp('e').name}"
    seed_index(noida, index, load_docs())
    upstream = Upstream(UpstreamSettings(urls=[noida]))
    await upstream.start()
    state = tmp_path_factory.mktemp("state") / "s.json"
    options = Options(index, "embedding", ("title", "text"), state)
    report = await backfill(upstream, embedder, options, None)
    await upstream.close()
    assert report.complete
    return index


def knn_text(text: str, k: int = 5) -> dict[str, Any]:
    builder = {"text_embedding": {"model_id": "minilm", "model_text": text}}
    return {"field": "embedding", "k": k, "num_candidates": 30, "query_vector_builder": builder}


async def test_the_gateway_answers_a_text_knn_as_the_cluster_answers_its_vector(
    noida: str, embedded: str, embedder: OnnxEmbedder, gateway: GatewayFactory
) -> None:
    settings = make_settings(noida, rerank={"enabled": False})
    url = await gateway(settings, encoder=FakeEncoder(), embedder=embedder)
    got = await call(url, lambda es: es.search(index=embedded, knn=knn_text(QUERY), size=5))
    (vector,) = await embedder.embed([QUERY])
    plain = {"field": "embedding", "k": 5, "num_candidates": 30, "query_vector": vector}
    want = await call(noida, lambda es: es.search(index=embedded, knn=plain, size=5))
    assert got["hits"] == want["hits"]
    assert ids(got)[0] == "berlin-pop"  # the embedding is a real one
    assert got.meta.headers["X-Rerank"] == "skipped"


async def test_without_an_embedder_the_cluster_gets_the_builder(
    noida: str, embedded: str, gateway: GatewayFactory
) -> None:
    url = await gateway(make_settings(noida, rerank={"enabled": False}), encoder=FakeEncoder())
    body = {"knn": knn_text(QUERY), "size": 5}
    got = await call(
        url, lambda es: es.options(ignore_status=[400, 404]).search(index=embedded, **body)
    )
    want = await call(
        noida, lambda es: es.options(ignore_status=[400, 404]).search(index=embedded, **body)
    )
    assert got.meta.status == want.meta.status
    assert dict(got) == dict(want)


async def test_a_text_knn_is_reranked_with_its_text(
    noida: str,
    embedded: str,
    embedder: OnnxEmbedder,
    encoder: OnnxCrossEncoder,
    gateway: GatewayFactory,
) -> None:
    url = await gateway(
        make_settings(noida, rerank={"window": 10}), encoder=encoder, embedder=embedder
    )
    got = await call(url, lambda es: es.search(index=embedded, knn=knn_text(QUERY, k=8), size=5))
    (vector,) = await embedder.embed([QUERY])
    plain = {"field": "embedding", "k": 8, "num_candidates": 30, "query_vector": vector}
    cands = await call(noida, lambda es: es.search(index=embedded, knn=plain, size=10))
    assert got.meta.headers["X-Rerank"] == "full"
    assert ids(got) == model_order(encoder, QUERY, cands["hits"]["hits"])[:5]


async def test_documents_written_through_the_gateway_get_their_vectors(
    noida: str, embedder: OnnxEmbedder, gateway: GatewayFactory
) -> None:
    """``_doc`` and ``_bulk`` writes through the gateway store the embedder's vectors, and
    the cluster finds them by kNN; an index not configured is written as sent."""
    index = f"written-{uuid.uuid4().hex[:8]}"
    mapping = {"type": "dense_vector", "dims": 384, "index": True, "similarity": "cosine"}
    props = {"title": {"type": "text"}, "text": {"type": "text"}, "embedding": mapping}
    seed_index(noida, index, [], {"properties": props})
    settings = make_settings(
        noida, rerank={"enabled": False}, embedder={"write_indices": ["written-*"]}
    )
    url = await gateway(settings, encoder=FakeEncoder(), embedder=embedder)
    docs = {d["_id"]: {"title": d["title"], "text": d["text"]} for d in load_docs()[:6]}
    first, *rest = docs

    def write(es: Elasticsearch) -> None:
        es.index(index=index, id=first, document=docs[first])
        operations: list[dict[str, Any]] = []
        for doc_id in rest:
            operations += [{"index": {"_index": index, "_id": doc_id}}, docs[doc_id]]
        operations += [{"index": {"_index": "plain-copy", "_id": "x"}}, docs[first]]
        assert not es.bulk(operations=operations, refresh=True)["errors"]

    await call(url, write)
    texts = [f"{d['title']} {d['text']}" for d in docs.values()]
    expected = dict(zip(docs, embedder.embed_sync(texts), strict=True))
    for doc_id in docs:
        stored = http("GET", f"{noida}/{index}/_doc/{doc_id}")["_source"]
        np.testing.assert_allclose(stored["embedding"], expected[doc_id], atol=1e-6)
    assert "embedding" not in http("GET", f"{noida}/plain-copy/_doc/x")["_source"]
    (vector,) = await embedder.embed([QUERY])
    plain = {"field": "embedding", "k": 1, "num_candidates": 10, "query_vector": vector}
    top = await call(noida, lambda es: es.search(index=index, knn=plain))
    assert ids(top) == ["berlin-pop"]
