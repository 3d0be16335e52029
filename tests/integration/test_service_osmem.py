"""Operating the gateway in front of OpenSearch (the real osmem-server) with the real model:
readiness names the product, request ids, metrics, the cluster's own errors."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from elasticsearch import Elasticsearch
from prometheus_client.parser import text_string_to_metric_families

from tests.doubles.gateway import GatewayFactory, make_settings

QUERY = "how many people live in berlin"


def settings(osmem: str, model_dir: Path) -> Any:
    return make_settings(
        osmem, model={"path": str(model_dir), "intra_op_threads": 2}, rerank={"window": 10}
    )


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


async def test_ready_search_with_request_id_and_metrics(
    osmem: str, model_dir: Path, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.web.access_log")
    url = await gateway(settings(osmem, model_dir))
    status, body = await get(f"{url}/_gateway/health/ready")
    assert status == 200
    assert '"upstream": "opensearch"' in body

    def client_search() -> Any:  # the ES client sends its vendor media type; OpenSearch
        es = Elasticsearch(url)  # gets application/json from the gateway
        try:
            return es.options(opaque_id="trace-42").search(
                index="docs", query={"match": {"text": QUERY}}, size=3
            )
        finally:
            es.close()

    resp = await asyncio.to_thread(client_search)
    assert resp["hits"]["hits"][0]["_id"] == "berlin-pop"
    assert resp.meta.headers["X-Rerank"] == "full"
    assert resp.meta.headers["X-Request-Id"] == "trace-42"

    line = next(r for r in caplog.records if r.name == "gateway.web.access_log")
    fields = line.__dict__["fields"]
    assert fields["request_id"] == "trace-42"
    assert fields["rerank"] == "full"
    assert fields["model_ms"] > 0
    assert fields["upstream_ms"] > 0

    _, text = await get(f"{url}/_gateway/metrics")
    assert metric(text, "gateway_requests_total", route="search", outcome="2xx") == 1
    assert metric(text, "gateway_rerank_total", status="full", reason="") == 1
    assert metric(text, "gateway_batch_pairs_sum", model="default", backend="onnx") >= 10


async def test_opensearch_knn_error_comes_back_verbatim(
    osmem: str, model_dir: Path, gateway: GatewayFactory
) -> None:
    """OpenSearch's k-NN syntax (``knn: {field: {vector, k}}``) goes upstream as sent;
    a cluster without the k-NN plugin answers 400, and that answer reaches the client."""
    url = await gateway(settings(osmem, model_dir))
    body = {
        "query": {"knn": {"emb": {"vector": [1.0, 0.0], "k": 5}}},
        "ext": {"rerank": {"query": QUERY}},
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/docs/_search", json=body) as r:
            assert r.status == 400
            assert r.headers["X-Rerank"] == "skipped"
            assert r.headers["X-Rerank-Reason"] == "upstream_status"
            error = await r.json()
            direct = await s.post(f"{osmem}/docs/_search", json={"query": body["query"]})
            assert error == await direct.json()
        _, text = await get(f"{url}/_gateway/metrics")
    assert metric(text, "gateway_requests_total", route="search", outcome="4xx") == 1
    assert metric(text, "gateway_rerank_total", status="skipped", reason="upstream_status") == 1
