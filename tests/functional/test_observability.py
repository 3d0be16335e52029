"""Request ids, the access log, metrics and readiness, against a scripted cluster."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families

from gateway.__main__ import _JsonFormatter
from gateway.metrics import Metrics
from gateway.model.fake import FakeEncoder
from gateway.web.access_log import redact_url
from tests.doubles.corpora import CAPITALS as DOCS
from tests.doubles.gateway import GatewayFactory, make_settings, settings_with
from tests.doubles.upstream import ScriptedUpstream

SEARCH = {"query": {"match": {"text": "capital of Italy"}}, "size": 2}
DEFAULT_MODEL = (("backend", "onnx"), ("model", "default"))


@pytest.fixture
async def cluster() -> AsyncIterator[ScriptedUpstream]:
    async with ScriptedUpstream(DOCS) as upstream:
        yield upstream


async def call(
    method: str, url: str, body: Any = None, **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, json=body, headers=headers) as r,
    ):
        return r.status, CIMultiDict(r.headers), await r.read()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_request_id_forwarded_upstream_and_returned(
    cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    url = await gateway(make_settings(cluster.url), encoder=FakeEncoder())

    status, headers, _ = await call("POST", f"{url}/docs/_search", SEARCH)
    assert status == 200
    generated = headers["X-Request-Id"]
    assert len(generated) == 32
    assert cluster.last("/docs/_search").headers["X-Opaque-Id"] == generated

    # A client's own X-Opaque-Id is kept, on searches and passthrough alike.
    for method, path in (("POST", "/docs/_search"), ("PUT", "/docs/_doc/1")):
        status, headers, _ = await call(method, url + path, {"a": 1}, **{"X-Opaque-Id": "mine-7"})
        assert status in (200, 201)
        assert headers["X-Request-Id"] == "mine-7"
        assert cluster.last().headers.getall("X-Opaque-Id") == ["mine-7"]


async def test_access_line_has_timings_and_never_credentials(
    cluster: ScriptedUpstream,
    gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_pw, secret_token = "pw-Sup3rSecret", "tok-Sup3rSecret"
    settings = settings_with([cluster.url], upstream={"username": "elastic", "password": secret_pw})
    caplog.set_level(logging.DEBUG)
    url = await gateway(settings, encoder=FakeEncoder())
    auth = {"Authorization": f"Bearer {secret_token}", "X-Api-Secret": secret_token}
    await call("POST", f"{url}/docs/_search?q=x", SEARCH, **auth)
    await call("GET", f"{url}/docs/_doc/d1", **auth)

    lines = [r for r in caplog.records if r.name == "gateway.web.access_log"]
    assert len(lines) == 2
    search, passthrough = (r.__dict__["fields"] for r in lines)
    assert search["route"] == "search"
    assert search["rerank"] == "full"
    assert search["status"] == 200
    assert {"upstream_ms", "model_ms", "total_ms", "request_id"} <= set(search)
    assert passthrough["route"] == "passthrough"
    assert "upstream_ms" in passthrough
    assert "rerank" not in passthrough

    as_json = json.loads(_JsonFormatter().format(lines[0]))
    assert as_json["request_id"] == search["request_id"]
    assert as_json["logger"] == "gateway.web.access_log"

    everything = caplog.text + "".join(_JsonFormatter().format(r) for r in caplog.records)
    for secret in (secret_pw, secret_token, "Authorization", "ZWxhc3RpYz"):  # base64 "elastic"
        assert secret not in everything
    assert redact_url("https://elastic:pw@es:9200") == "https://es:9200"


async def test_metrics_count_by_route_outcome_and_stay_per_app(
    cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    url = await gateway(make_settings(cluster.url), encoder=FakeEncoder())
    other = await gateway(make_settings(cluster.url), encoder=FakeEncoder())
    await call("POST", f"{url}/docs/_search", SEARCH)
    await call("POST", f"{url}/docs/_search", SEARCH, **{"X-Rerank": "off"})
    await call("GET", f"{url}/docs/_doc/d1")

    status, headers, body = await call("GET", f"{url}/_gateway/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    got = samples(body.decode())
    assert got[("gateway_requests_total", (("outcome", "2xx"), ("route", "search")))] == 2
    assert got[("gateway_requests_total", (("outcome", "2xx"), ("route", "passthrough")))] == 1
    assert got[("gateway_rerank_total", (("reason", ""), ("status", "full")))] == 1
    assert got[("gateway_rerank_total", (("reason", "opted_out"), ("status", "skipped")))] == 1
    assert got[("gateway_request_seconds_count", (("route", "search"),))] == 2
    assert got[("gateway_upstream_seconds_count", (("route", "passthrough"),))] == 1
    assert got[("gateway_rerank_seconds_count", ())] == 1
    # Read from the batcher's and the cache's own stats (warm-up included), per model.
    assert got[("gateway_batch_pairs_count", DEFAULT_MODEL)] >= 2
    assert got[("gateway_batch_pairs_sum", DEFAULT_MODEL)] >= 4
    assert got[("gateway_batch_padded_tokens_sum", DEFAULT_MODEL)] > 0
    assert got[("gateway_batcher_queue_pairs", DEFAULT_MODEL)] == 0
    assert got[("gateway_cache_operations_total", (("result", "misses"),))] >= 3
    assert ("gateway_model_run_seconds_sum", DEFAULT_MODEL) in got

    _, _, body = await call("GET", f"{other}/_gateway/metrics")
    assert ("gateway_requests_total", (("outcome", "2xx"), ("route", "search"))) not in samples(
        body.decode()
    )


def test_variant_hook_counts_arms() -> None:
    metrics = Metrics()
    metrics.variant("treatment", experiment="minilm-vs-bm25")
    metrics.variant("treatment", experiment="minilm-vs-bm25")
    got = samples(metrics.render().decode())
    key = ("experiment", "minilm-vs-bm25"), ("variant", "treatment")
    assert got[("gateway_experiment_variant_total", key)] == 2


async def test_readiness_asks_the_upstream_again(gateway: GatewayFactory) -> None:
    cluster = ScriptedUpstream(DOCS, flavor="opensearch")  # not listening yet
    url = await gateway(make_settings(cluster.url), encoder=FakeEncoder())
    status, _, body = await call("GET", f"{url}/_gateway/health/ready")
    assert status == 503
    assert json.loads(body) == {"ready": False, "model": "ready", "upstream": "unreachable"}
    status, _, _ = await call("GET", f"{url}/_gateway/health/live")
    assert status == 200

    await cluster.start()
    try:
        status, _, body = await call("GET", f"{url}/_gateway/health/ready")
        assert status == 200
        assert json.loads(body)["upstream"] == "opensearch"
        await cluster.close()
        # A failed request marks the cluster unknown again; readiness re-asks and says so.
        status, _, _ = await call("GET", f"{url}/docs/_doc/1")
        assert status == 502
        status, _, _ = await call("GET", f"{url}/_gateway/health/ready")
        assert status == 503
    finally:
        await cluster.close()


async def test_reranked_answers_say_where_the_time_went(
    cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    url = await gateway(make_settings(cluster.url), encoder=FakeEncoder())
    _, headers, _ = await call("POST", f"{url}/docs/_search", SEARCH)
    # W3C Server Timing: comma-separated metrics, each `name;dur=<milliseconds>`.
    metrics = [m.split(";dur=") for m in headers["Server-Timing"].split(", ")]
    assert [name for name, _ in metrics] == ["cache", "queue", "tokenize", "model", "upstream"]
    took = {name: float(dur) for name, dur in metrics}
    assert all(v >= 0 for v in took.values())
    assert took["model"] > 0 and took["upstream"] > 0

    _, again, _ = await call("POST", f"{url}/docs/_search", SEARCH)  # all from the cache now
    assert "model;dur=0.0" in again["Server-Timing"]
    _, skipped, _ = await call("POST", f"{url}/docs/_search", SEARCH, **{"X-Rerank": "off"})
    assert "Server-Timing" not in skipped

    _, _, body = await call("GET", f"{url}/_gateway/metrics")
    got = samples(body.decode())
    for stage in ("cache", "queue", "tokenize", "model"):
        assert got[("gateway_rerank_stage_seconds_count", (("stage", stage),))] == 2
    assert got[("gateway_rerank_stage_seconds_sum", (("stage", "model"),))] > 0
