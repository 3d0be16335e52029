"""Relevance controls through the whole gateway, in front of osmem-server.

FakeEncoder where the point is the pipeline (fusion, cut-off, explain, profile
choice); two real ONNX model files loaded at once where the point is models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.model.fake import FakeEncoder
from tests.doubles.gateway import GatewayFactory, make_settings

QUERY = "berlin population people"
BODY = {"query": {"match": {"text": "berlin population people"}}, "size": 5}


async def post(url: str, body: Any) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


def fake_score(hit: dict[str, Any]) -> float:
    """What FakeEncoder gives a hit of the default text (title + text)."""
    enc = FakeEncoder()
    src = hit["_source"]
    text = f"{src['title']} {src['text']}"
    return float(enc.score(enc.encode([(QUERY, text)]))[0])


async def test_explain_min_score_and_linear_fusion(osmem: str, gateway: GatewayFactory) -> None:
    relevance = {
        "score_use": "linear",
        "weight": 0.5,
        "min_score": 2.0,
        "profiles": {"rrf": {"score_use": "rrf", "rrf_k": 10, "min_score": None}},
    }
    url = await gateway(
        make_settings(osmem, rerank={"window": 10}, relevance=relevance), encoder=FakeEncoder()
    )
    _, _, direct = await post(f"{osmem}/docs/_search", {**BODY, "size": 10})
    first = direct["hits"]["hits"]
    model = {h["_id"]: fake_score(h) for h in first}
    kept = [h for h in first if model[h["_id"]] >= 2.0]
    assert 0 < len(kept) < len(first)  # the cut-off bites in this window

    body = {**BODY, "ext": {"rerank": {"explain": True}}}
    status, headers, got = await post(f"{url}/docs/_search", body)
    assert status == 200 and headers["X-Rerank"] == "full"
    hits = got["hits"]["hits"]
    assert {h["_id"] for h in hits} <= {h["_id"] for h in kept}
    assert len(hits) == min(5, len(kept))
    assert got["hits"]["total"] == direct["hits"]["total"]  # the upstream's count
    # linear: 0.5 * minmax(model) + 0.5 * minmax(first stage), over the kept hits
    m = [model[h["_id"]] for h in kept]
    f = [h["_score"] for h in kept]

    def mm(v: float, vs: list[float]) -> float:
        return (v - min(vs)) / (max(vs) - min(vs)) if max(vs) > min(vs) else 0.0

    expected = {h["_id"]: 0.5 * mm(model[h["_id"]], m) + 0.5 * mm(h["_score"], f) for h in kept}
    for hit in hits:
        assert hit["_score"] == pytest.approx(expected[hit["_id"]])
        explanation = hit["_explanation"]
        assert explanation["value"] == pytest.approx(hit["_score"])
        assert "linear fusion" in explanation["description"]
        model_part = explanation["details"][0]["details"][0]
        assert model_part["value"] == pytest.approx(model[hit["_id"]])
        first_part = explanation["details"][1]["details"][0]
        assert "first-stage score, rank" in first_part["description"]
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True)

    # A profile picked by the request: RRF, no cut-off, no explanation asked.
    body = {**BODY, "ext": {"rerank": {"profile": "rrf"}}}
    status, headers, got = await post(f"{url}/docs/_search", body)
    assert status == 200 and headers["X-Rerank"] == "full"
    assert len(got["hits"]["hits"]) == 5
    assert all("_explanation" not in h for h in got["hits"]["hits"])
    top = got["hits"]["hits"][0]["_score"]
    assert 2 / (10 + 5) <= top <= 2 / (10 + 1)

    status, _, got = await post(
        f"{url}/docs/_search", {**BODY, "ext": {"rerank": {"profile": "x"}}}
    )
    assert status == 400
    assert got["error"]["type"] == "illegal_argument_exception"


async def test_template_and_chunking_reach_the_model(osmem: str, gateway: GatewayFactory) -> None:
    encoder = FakeEncoder()
    relevance = {"template": "{title}", "long_docs": "chunk", "chunk_tokens": 8, "chunk_overlap": 0}
    url = await gateway(make_settings(osmem, rerank={"window": 3}, relevance=relevance), encoder)
    before = encoder.pairs_scored
    status, headers, got = await post(f"{url}/docs/_search", {**BODY, "explain": True})
    assert status == 200 and headers["X-Rerank"] == "full"
    assert encoder.pairs_scored - before == 3  # titles are short: one chunk each
    for hit in got["hits"]["hits"][:3]:
        assert "one passage" in hit["_explanation"]["details"][0]["description"]


async def test_two_models_loaded_at_once(
    osmem: str, model_dir: Path, gateway: GatewayFactory
) -> None:
    # MODEL__FILE named: the fp32 file itself (auto would pick the int8 file on the CPU)
    model = {"path": str(model_dir), "intra_op_threads": 1, "file": "model.onnx"}
    relevance = {
        "models": {"int8": {**model, "file": "model_int8.onnx"}},
        "profiles": {"q8": {"model": "int8"}},
    }
    url = await gateway(
        make_settings(osmem, model=model, rerank={"window": 5}, relevance=relevance)
    )
    _, h32, fp32 = await post(f"{url}/docs/_search", {**BODY, "explain": True})
    body = {**BODY, "explain": True, "ext": {"rerank": {"profile": "q8"}}}
    _, h8, int8 = await post(f"{url}/docs/_search", body)
    assert h32["X-Rerank"] == h8["X-Rerank"] == "full"
    assert "model default" in fp32["hits"]["hits"][0]["_explanation"]["details"][0]["description"]
    assert "model int8" in int8["hits"]["hits"][0]["_explanation"]["details"][0]["description"]
    s32 = {h["_id"]: h["_score"] for h in fp32["hits"]["hits"]}
    s8 = {h["_id"]: h["_score"] for h in int8["hits"]["hits"]}
    assert s32 != s8  # different weights, different scores; the same top hit
    assert fp32["hits"]["hits"][0]["_id"] == int8["hits"]["hits"][0]["_id"] == "berlin-pop"
    # One batcher series per loaded model (the dashboard's per-model panels).
    async with aiohttp.ClientSession() as s, s.get(f"{url}/_gateway/metrics") as r:
        metrics = await r.text()
    pairs = {
        (sample.labels["model"], sample.labels["backend"]): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "gateway_batch_pairs_sum"
    }
    assert set(pairs) == {("default", "onnx"), ("int8", "onnx")}
    assert all(value >= 1 + 5 for value in pairs.values())  # the warm-up pair and the window
