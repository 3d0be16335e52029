"""The gateway in front of the real osmem-server (OpenSearch API) with the real ONNX model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from elasticsearch import Elasticsearch
from opensearchpy import OpenSearch

from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import ModelSettings
from tests.doubles.gateway import GatewayFactory, make_settings

QUERY = "how many people live in berlin"


def model_settings(model_dir: Path) -> dict[str, Any]:
    return {"path": str(model_dir), "intra_op_threads": 2}


async def post(url: str, body: Any, **headers: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


async def test_reranked_order_matches_model_scores(
    osmem: str, model_dir: Path, gateway: GatewayFactory
) -> None:
    url = await gateway(
        make_settings(osmem, model=model_settings(model_dir), rerank={"window": 20})
    )
    body = {"query": {"match": {"text": QUERY}}, "size": 5}
    status, headers, got = await post(f"{url}/docs/_search", body)
    assert status == 200
    assert headers["X-Rerank"] == "full"
    assert headers["X-Elastic-Product"] == "Elasticsearch"

    # The same candidates straight from the search server, scored by the model directly.
    _, _, direct = await post(f"{osmem}/docs/_search", {**body, "size": 20})
    cands = direct["hits"]["hits"]
    encoder = OnnxCrossEncoder(model_dir, ModelSettings(path=model_dir))
    texts = [f"{h['_source']['title']} {h['_source']['text']}".strip() for h in cands]
    scores = encoder.score(encoder.encode([(QUERY, t) for t in texts]))
    expected = [cands[i]["_id"] for i in np.argsort(-scores, kind="stable")[:5]]
    assert [h["_id"] for h in got["hits"]["hits"]] == expected
    assert got["hits"]["hits"][0]["_id"] == "berlin-pop"
    assert got["hits"]["max_score"] == pytest.approx(float(scores.max()), rel=1e-5)
    assert got["hits"]["total"] == direct["hits"]["total"]


async def test_official_clients_see_elasticsearch(
    osmem: str, model_dir: Path, gateway: GatewayFactory
) -> None:
    url = await gateway(make_settings(osmem, model=model_settings(model_dir)))

    def calls() -> None:  # sync clients: run off the event loop that serves the gateway
        es = Elasticsearch(url)
        resp = es.search(index="docs", query={"match": {"text": QUERY}}, size=3)
        assert resp["hits"]["hits"][0]["_id"] == "berlin-pop"
        assert resp.meta.headers["X-Rerank"] == "full"
        os_client = OpenSearch(hosts=[url])
        resp2 = os_client.search(
            index="docs", body={"query": {"match": {"text": QUERY}}, "size": 3}
        )
        assert [h["_id"] for h in resp2["hits"]["hits"]] == [h["_id"] for h in resp["hits"]["hits"]]
        # Passthrough: a document GET answers exactly like the cluster.
        assert es.get(index="docs", id="berlin-wall")["_source"]["title"] == "Berlin Wall"
        es.close()
        os_client.close()

    await asyncio.to_thread(calls)
