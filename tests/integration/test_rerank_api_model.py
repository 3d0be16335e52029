"""The rerank API with the real ONNX model, real Redis and noida-db (Elasticsearch 8.15).

Scores are compared with ``OnnxCrossEncoder`` called directly on the same pairs
(no batcher, cache or API in between), and the paths with what Elasticsearch
itself serves there.
"""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from tests.doubles.corpora import load_docs
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.upstream import call
from tests.integration.oracle import hit_text, load_model

pytestmark = pytest.mark.integration

QUERY = "how many people live in berlin"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    docs = [hit_text({"_source": d}) for d in load_docs()]
    return [t for t in docs if t][:12]


@pytest.fixture
async def url(noida: str, model_dir: Path, redis_url: str, gateway: GatewayFactory) -> str:
    settings = make_settings(
        noida, model={"path": str(model_dir)}, cache={"redis_url": redis_url, "timeout_s": 2.0}
    )
    return await gateway(settings)


def cache_hits(metrics: str) -> float:
    found = re.search(r'gateway_cache_operations_total\{result="hits"\} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


async def test_scores_are_the_models_own_and_cached_in_redis(
    url: str, model_dir: Path, texts: list[str]
) -> None:
    encoder = load_model(model_dir)
    want = [float(s) for s in encoder.score(encoder.encode([(QUERY, t) for t in texts]))]
    tei = await call("POST", f"{url}/rerank", {"query": QUERY, "texts": texts, "raw_scores": True})
    got = {r["index"]: r["score"] for r in tei.json()}
    assert [got[i] for i in range(len(texts))] == pytest.approx(want, abs=1e-4)

    before = cache_hits((await call("GET", f"{url}/_gateway/metrics")).body.decode())
    body: dict[str, Any] = {"model": "default", "query": QUERY, "documents": texts}
    results = (await call("POST", f"{url}/v2/rerank", body)).json()["results"]
    after = cache_hits((await call("GET", f"{url}/_gateway/metrics")).body.decode())
    assert after - before == len(texts)  # every pair from Redis the second time
    sigmoid = [1 / (1 + math.exp(-s)) for s in want]
    assert [r["relevance_score"] for r in results] == pytest.approx(
        sorted(sigmoid, reverse=True), abs=1e-5
    )
    assert [r["index"] for r in results][:3] == sorted(range(len(texts)), key=lambda i: -want[i])[
        :3
    ]


async def test_the_paths_shadow_nothing_elasticsearch_serves(noida: str, url: str) -> None:
    # Straight to the cluster, POST on these paths is no endpoint of Elasticsearch's ...
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        direct = await call("POST", noida + path, {"query": "q", "texts": ["t"]})
        assert direct.status in (400, 405), (path, direct.status)  # ES: 405 / "no handler"
    # ... while the index named "rerank" stays reachable through the gateway, unchanged.

    def index_calls() -> tuple[bool, int]:
        with Elasticsearch(url) as es:
            es.options(ignore_status=404).indices.delete(index="rerank")
            es.indices.create(index="rerank")
            es.index(index="rerank", id="1", document={"text": "kept"}, refresh=True)
            exists = bool(es.indices.exists(index="rerank"))
            count = int(es.count(index="rerank")["count"])
            es.indices.delete(index="rerank")
            return exists, count

    assert await asyncio.to_thread(index_calls) == (True, 1)
