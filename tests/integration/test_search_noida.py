"""The gateway in front of noida-db (Elasticsearch 8.15): kNN and hybrid candidates, wire details.

Called by the official ``elasticsearch`` client, unmodified, in a thread. The
core checks shared with osmem (order, pages, ``_source``, aggregations,
skips, ``_msearch``, error passthrough) are in ``test_search_backends.py``.
"""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import ApiError, Elasticsearch
from multidict import CIMultiDict

from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import UpstreamSettings
from gateway.upstream.client import Upstream
from tests.doubles.corpora import load_docs
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.net import free_port
from tests.doubles.search_servers import call, seed_index
from tests.integration.oracle import ids, load_model, model_order

QUERY = "how many people live in berlin"
INDEX = "vectors"
# Made-up 4-dim embeddings: one axis per topic, so kNN candidates are predictable.
TOPICS = (
    ("berlin", "paris", "population", "nested"),
    ("coffee", "tea", "diabetes"),
    ("python", "rust", "java"),
    ("everest", "k2", "mountain"),
)


def vector(doc_id: str) -> list[float]:
    jitter = (zlib.crc32(doc_id.encode()) % 100) / 1000  # stable, small, per document
    for axis, words in enumerate(TOPICS):
        if any(doc_id.startswith(w) for w in words):
            return [1.0 if i == axis else jitter for i in range(4)]
    return [0.25 + jitter, 0.25, 0.25, 0.25]


@pytest.fixture(scope="module")
def vectors(noida: str) -> str:
    """noida-db with ``vectors``: the seeded docs that have text, plus a 4-dim ``dense_vector``."""
    mappings = {
        "properties": {
            "title": {"type": "text"},
            "text": {"type": "text"},
            "vec": {"type": "dense_vector", "dims": 4, "index": True, "similarity": "cosine"},
        }
    }
    docs = [{**d, "vec": vector(d["_id"])} for d in load_docs() if d["text"]]
    seed_index(noida, INDEX, docs, mappings)
    return noida


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> OnnxCrossEncoder:
    return load_model(model_dir)


def knn(k: int = 8) -> dict[str, Any]:
    return {"field": "vec", "query_vector": [1.0, 0.05, 0.0, 0.0], "k": k, "num_candidates": 20}


async def test_knn_only_body_reranked_with_ext_text(
    vectors: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    url = await gateway(make_settings(vectors, rerank={"window": 20}), encoder=encoder)
    ext = {"rerank": {"query": QUERY}}
    got = await call(url, lambda es: es.search(index=INDEX, knn=knn(), size=5, ext=ext))
    cands = await call(vectors, lambda es: es.search(index=INDEX, knn=knn(), size=20))
    assert got.meta.headers["X-Rerank"] == "full"
    # The same kNN candidates (k=8, all inside the window), in the model's order.
    assert len(cands["hits"]["hits"]) == 8
    assert ids(got) == model_order(encoder, QUERY, cands["hits"]["hits"])[:5]
    assert got["hits"]["total"] == cands["hits"]["total"]


async def test_hybrid_query_and_knn_reranked_with_the_query_text(
    vectors: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    url = await gateway(make_settings(vectors, rerank={"window": 20}), encoder=encoder)
    body: dict[str, Any] = {"query": {"match": {"text": "people"}}, "knn": knn(k=4), "size": 20}
    got = await call(url, lambda es: es.search(index=INDEX, **body))
    cands = await call(vectors, lambda es: es.search(index=INDEX, **body))
    hits = cands["hits"]["hits"]
    assert {"berlin-pop", "mountain-climbing"} <= {h["_id"] for h in hits}  # kNN and BM25
    assert got.meta.headers["X-Rerank"] == "full"
    assert ids(got) == model_order(encoder, "people", hits)


async def test_unreachable_upstream_is_an_es_shaped_502(
    encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    url = await gateway(make_settings(f"http://127.0.0.1:{free_port()}"), encoder=encoder)

    def run() -> ApiError:
        es = Elasticsearch(url, max_retries=0, retry_on_status=())
        try:
            es.search(index="docs", query={"match": {"text": QUERY}})
        except ApiError as exc:
            return exc
        finally:
            es.close()
        raise AssertionError("search through a gateway without upstream succeeded")

    exc = await asyncio.to_thread(run)
    assert exc.meta.status == 502
    assert exc.body["status"] == 502
    assert exc.body["error"]["root_cause"][0]["type"] == exc.body["error"]["type"]
    assert exc.body["error"]["reason"]


async def test_es9_client_compatibility_header_is_forwarded_as_sent(
    vectors: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    """The ES client's ``compatible-with=N`` is the cluster's to judge, not the gateway's.

    noida-db accepts 7, 8 and 9; a real Elasticsearch 8 answers 400 to 9, and the
    gateway passes that answer back like any other cluster error (see README).
    """
    vendor = "application/vnd.elasticsearch+json; compatible-with=9"
    upstream = Upstream(
        UpstreamSettings.model_validate({"urls": [vectors], "flavor": "elasticsearch"})
    )
    sent = upstream.outgoing_headers(CIMultiDict({"Content-Type": vendor, "Accept": vendor}))
    assert sent["Content-Type"] == vendor
    assert sent["Accept"] == vendor
    url = await gateway(make_settings(vectors), encoder=encoder)
    got = await call(url, lambda es: es.info())
    assert got["version"]["number"].startswith("8.")
