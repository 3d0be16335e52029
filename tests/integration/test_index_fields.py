"""Indices whose text is not in ``title`` / ``text``, against both real search servers.

With nothing configured but the upstream URL, an index with ``headline`` /
``body`` is reranked on those fields (order = the model's own on that text); an
index with no text fields is skipped with ``no_doc_text`` and one log line naming
its fields; a query without text is ``no_query_text``; the start-up log says what
each index pattern will score.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import RerankSettings
from tests.doubles.corpora import load_docs
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.search_servers import seed_index
from tests.doubles.waits import wait_for
from tests.integration.oracle import ids, load_model, model_order

QUERY = "how many people live in berlin"
NEWS, PRICES = "w15-news", "w15-prices"
NEWS_MAPPING = {
    "properties": {
        "body": {"type": "text"},
        "headline": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "section": {"type": "keyword"},
        "words": {"type": "integer"},
    }
}
WINDOW = RerankSettings.model_fields["window"].default  # the default: nothing configured
PRICES_MAPPING = {"properties": {"sku": {"type": "keyword"}, "price": {"type": "float"}}}


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> OnnxCrossEncoder:
    return load_model(model_dir)


@pytest.fixture(scope="module", params=["noida", "osmem"])
def backend(request: pytest.FixtureRequest) -> str:
    """A seeded search server with ``w15-news`` (headline/body) and ``w15-prices`` (no text)."""
    url: str = request.getfixturevalue(request.param)
    news = [
        {
            "_id": d["_id"],
            "headline": d["title"],
            "body": d["text"],
            "section": "x",
            "words": len(d["text"].split()),
        }
        for d in load_docs()
        if d["text"]
    ]
    seed_index(url, NEWS, news, NEWS_MAPPING)
    prices = [{"_id": f"p{i}", "sku": f"berlin-{i}", "price": i * 1.5} for i in range(5)]
    seed_index(url, PRICES, prices, PRICES_MAPPING)
    return url


@pytest.fixture
async def gw(backend: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory) -> str:
    """A gateway configured with the upstream URL only (and the shared model)."""
    return await gateway(make_settings(backend), encoder=encoder)


async def raw(url: str, body: Any) -> tuple[dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        assert r.status == 200, await r.text()
        return dict(r.headers), await r.json()


def warnings_about(index: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the gateway told about ``index``, from start-up (fixture set-up) on."""
    records = caplog.get_records("setup") + caplog.get_records("call")
    return [
        r.getMessage()
        for r in records
        if r.name == "gateway.search.mappings" and f"[{index}]" in r.getMessage()
    ]


def as_title_text(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hits with headline/body renamed, so the oracle reads the same text."""
    return [
        {**h, "_source": {"title": h["_source"]["headline"], "text": h["_source"]["body"]}}
        for h in hits
    ]


async def test_index_with_other_text_fields_is_reranked_on_them(
    backend: str, gw: str, encoder: OnnxCrossEncoder, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"query": {"match": {"body": QUERY}}}
    _, direct = await raw(f"{backend}/{NEWS}/_search", {**body, "size": 100})
    headers, got = await raw(f"{gw}/{NEWS}/_search", {**body, "size": 5})
    assert headers["X-Rerank"] == "full"
    expected = model_order(encoder, QUERY, as_title_text(direct["hits"]["hits"][:WINDOW]))
    assert ids(got) == expected[:5]
    # _source as stored, and no `fields` the client did not ask for.
    assert all("fields" not in h and "headline" in h["_source"] for h in got["hits"]["hits"])
    # The user is told, once, which fields are scored.
    await raw(f"{gw}/{NEWS}/_search", {**body, "size": 5})
    told = warnings_about(NEWS, caplog)
    assert len(told) == 1, told
    assert "headline, body" in told[0]  # title-like first; not the keyword multi-field


async def test_index_without_text_fields_is_skipped_and_its_fields_named(
    backend: str, gw: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"query": {"query_string": {"query": "berlin*"}}}
    _, direct = await raw(f"{backend}/{PRICES}/_search", body)
    for _ in range(2):
        headers, got = await raw(f"{gw}/{PRICES}/_search", body)
        assert (headers["X-Rerank"], headers["X-Rerank-Reason"]) == ("skipped", "no_doc_text")
        assert got["hits"]["hits"] == direct["hits"]["hits"]
    told = warnings_about(PRICES, caplog)
    assert len(told) == 1, told
    assert "no text fields" in told[0]
    assert "price" in told[0] and "sku" in told[0]


async def test_query_without_text_is_no_query_text(gw: str) -> None:
    headers, _ = await raw(f"{gw}/{NEWS}/_search", {"query": {"match_all": {}}})
    assert (headers["X-Rerank"], headers["X-Rerank-Reason"]) == ("skipped", "no_query_text")


async def test_index_list_reads_each_index_its_own_fields(
    backend: str, gw: str, encoder: OnnxCrossEncoder
) -> None:
    """``docs`` has title/text, ``w15-news`` headline/body: hits of both are scored.

    Both hold the same texts, so each id comes twice with equal scores: the ids are
    compared, not which index's copy of a tie comes first."""
    body = {"query": {"multi_match": {"query": QUERY, "fields": ["text", "body"]}}}
    indices = f"docs,{NEWS}"
    _, direct = await raw(f"{backend}/{indices}/_search", {**body, "size": 100})
    headers, got = await raw(f"{gw}/{indices}/_search", {**body, "size": 6})
    assert headers["X-Rerank"] == "full"
    window = direct["hits"]["hits"][:WINDOW]
    cands = [as_title_text([h])[0] if h["_index"] == NEWS else h for h in window]
    assert {h["_index"] for h in got["hits"]["hits"]} == {"docs", NEWS}
    assert ids(got) == [h["_id"] for h in _by_model(encoder, cands)[:6]]


def _by_model(encoder: OnnxCrossEncoder, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = model_order(encoder, QUERY, [{**h, "_id": str(i)} for i, h in enumerate(hits)])
    return [hits[int(i)] for i in order]


async def test_start_up_log_says_what_each_pattern_scores(
    backend: str,
    encoder: OnnxCrossEncoder,
    gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    settings = make_settings(backend, rerank={"indices": ["w15-*", "docs"]})
    await gateway(settings, encoder=encoder)

    def logged() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if "index pattern" in r.getMessage()]
        return lines if len(lines) >= 2 else []

    news, docs = await wait_for(logged, what="a start-up line per index pattern")
    assert news.startswith("profile default: index pattern [w15-*] scores ")
    assert f"headline, body (from its mapping) in [{NEWS}]" in news
    assert f"nothing in [{PRICES}] (no text fields; it has: price, sku)" in news
    assert docs == "profile default: index pattern [docs] scores title, text in [docs]"


async def test_configured_fields_win_where_they_exist(
    backend: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    """RERANK__FIELDS=body: ``w15-news`` is scored on ``body`` alone, as configured."""
    url = await gateway(make_settings(backend, rerank={"fields": ["body"]}), encoder=encoder)
    body = {"query": {"match": {"body": QUERY}}}
    _, direct = await raw(f"{backend}/{NEWS}/_search", {**body, "size": 100})
    _, got = await raw(f"{url}/{NEWS}/_search", {**body, "size": 5})
    only_body = [{**h, "_source": {"text": h["_source"]["body"]}} for h in direct["hits"]["hits"]]
    expected = model_order(encoder, QUERY, only_body[:WINDOW])
    assert ids(got) == expected[:5]
