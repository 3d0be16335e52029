"""Core behaviour through the official clients, against both real search servers.

Each test runs twice: noida-db (Elasticsearch 8.15) called by the official
``elasticsearch`` client, and osmem-server (OpenSearch) called by
``opensearch-py``; skip reasons are read with raw HTTP. The gateway runs the
real ONNX model; expected orders come from the model called directly
(``tests/integration/oracle.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from elasticsearch import ApiError, Elasticsearch
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from gateway.model.onnx import OnnxCrossEncoder
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.integration.oracle import ids, load_model, model_order, model_scores

QUERY = "how many people live in berlin"
# Matches 15 of the 20 seeded documents: enough for pages on both sides of a small window.
BROAD = "people berlin city population mountain coffee language programming"

Client = Elasticsearch | OpenSearch


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> OnnxCrossEncoder:
    return load_model(model_dir)


@pytest.fixture(scope="module", params=["noida", "osmem"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(name, URL) of a seeded search server."""
    return request.param, request.getfixturevalue(request.param)


def client(name: str, url: str) -> Client:
    """The official client for that server: elasticsearch for noida, opensearch-py for osmem."""
    if name == "noida":
        return Elasticsearch(url)
    return OpenSearch(hosts=[url])


@pytest.fixture
async def gw(
    backend: tuple[str, str], encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> Callable[..., Any]:
    """``await gw(window=N)``: a gateway in front of the backend, the shared real model."""

    async def start(window: int = 20) -> str:
        settings = make_settings(backend[1], rerank={"window": window})
        return await gateway(settings, encoder=encoder)

    return start


def search(c: Client, body: dict[str, Any], index: str = "docs") -> dict[str, Any]:
    return dict(c.search(index=index, body=body))


async def both(backend: tuple[str, str], url: str, fn: Callable[[Client, Client], Any]) -> Any:
    """Run ``fn(direct_client, gateway_client)`` in a thread (the gateway shares this loop)."""

    def run() -> Any:
        direct, via = client(backend[0], backend[1]), client(backend[0], url)
        try:
            return fn(direct, via)
        finally:
            direct.close()
            via.close()

    return await asyncio.to_thread(run)


async def raw(url: str, body: Any) -> tuple[dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return dict(r.headers), await r.json()


async def test_reranked_order_matches_model_scores(
    backend: tuple[str, str], gw: Callable[..., Any], encoder: OnnxCrossEncoder
) -> None:
    url = await gw(window=20)
    body = {"query": {"match": {"text": QUERY}}}
    direct, got = await both(
        backend, url, lambda d, v: (search(d, {**body, "size": 20}), search(v, {**body, "size": 5}))
    )
    cands = direct["hits"]["hits"]
    assert ids(got) == model_order(encoder, QUERY, cands)[:5]
    assert ids(got)[0] == "berlin-pop"
    assert got["hits"]["max_score"] == pytest.approx(
        float(model_scores(encoder, QUERY, cands).max()), rel=1e-4
    )
    assert got["hits"]["total"] == direct["hits"]["total"]


async def test_pages_are_disjoint_stable_and_follow_the_window(
    backend: tuple[str, str], gw: Callable[..., Any], encoder: OnnxCrossEncoder
) -> None:
    url = await gw(window=9)
    body = {"query": {"match": {"text": BROAD}}}

    def pages(d: Client, v: Client) -> tuple[Any, ...]:
        inside = [search(v, {**body, "from": f, "size": 3}) for f in (0, 3, 6)]
        again = search(v, {**body, "from": 3, "size": 3})
        beyond = search(v, {**body, "from": 9, "size": 3})
        return search(d, {**body, "size": 20}), inside, again, beyond

    direct, inside, again, beyond = await both(backend, url, pages)
    cands = direct["hits"]["hits"]
    assert len(cands) >= 12
    flat = [i for page in inside for i in ids(page)]
    assert flat == model_order(encoder, BROAD, cands[:9])
    assert ids(again) == ids(inside[1])
    # From the window's end on, the cluster's own order.
    assert ids(beyond) == [h["_id"] for h in cands[9:12]]


@pytest.mark.parametrize(
    "source",
    [False, {"includes": ["title"]}, {"excludes": ["text"]}, ["text"]],
    ids=["false", "includes", "excludes", "list"],
)
async def test_source_filtering_is_exactly_what_the_client_asked(
    backend: tuple[str, str], gw: Callable[..., Any], source: Any
) -> None:
    url = await gw(window=10)
    body = {"query": {"match": {"text": QUERY}}, "size": 5, "_source": source}
    direct, got = await both(
        backend, url, lambda d, v: (search(d, {**body, "size": 20}), search(v, body))
    )
    expected = {h["_id"]: h for h in direct["hits"]["hits"]}
    assert got["hits"]["hits"]
    for hit in got["hits"]["hits"]:
        assert "fields" not in hit
        if source is False:
            assert "_source" not in hit
        else:
            assert hit["_source"] == expected[hit["_id"]]["_source"]


async def test_aggregations_and_highlight_pass_through(
    backend: tuple[str, str], gw: Callable[..., Any]
) -> None:
    url = await gw(window=20)
    body = {
        "query": {"match": {"text": QUERY}},
        "size": 5,
        "aggs": {"berlin": {"filter": {"match": {"title": "berlin"}}}},
        "highlight": {"fields": {"text": {}}},
    }
    direct, got = await both(
        backend, url, lambda d, v: (search(d, {**body, "size": 20}), search(v, body))
    )
    assert got["aggregations"] == direct["aggregations"]
    highlights = {h["_id"]: h["highlight"] for h in direct["hits"]["hits"]}
    for hit in got["hits"]["hits"]:
        assert hit["highlight"] == highlights[hit["_id"]]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"query": {"match": {"text": QUERY}}, "sort": ["_doc"]}, "sorted"),
        ({"query": {"match_all": {}}}, "no_query_text"),
    ],
    ids=["sorted", "no_query_text"],
)
async def test_skipped_searches_come_back_as_the_cluster_sent_them(
    backend: tuple[str, str], gw: Callable[..., Any], body: dict[str, Any], reason: str
) -> None:
    url = await gw()
    headers, got = await raw(f"{url}/docs/_search", body)
    assert (headers["X-Rerank"], headers["X-Rerank-Reason"]) == ("skipped", reason)
    _, direct = await raw(f"{backend[1]}/docs/_search", body)
    assert ids(got) == ids(direct)
    assert got["hits"] == direct["hits"]


async def test_msearch_reranks_each_sub_search(
    backend: tuple[str, str], gw: Callable[..., Any], encoder: OnnxCrossEncoder
) -> None:
    url = await gw(window=20)
    queries = [QUERY, "programming language for memory safety"]

    def run(d: Client, v: Client) -> tuple[Any, Any]:
        lines: list[dict[str, Any]] = []
        for q in queries:
            lines += [{"index": "docs"}, {"query": {"match": {"text": q}}, "size": 3}]
        cands = [search(d, {"query": {"match": {"text": q}}, "size": 20}) for q in queries]
        return cands, v.msearch(body=lines)

    cands, got = await both(backend, url, run)
    for q, direct, sub in zip(queries, cands, got["responses"], strict=True):
        assert ids(sub) == model_order(encoder, q, direct["hits"]["hits"])[:3]


async def test_upstream_errors_reach_the_client_unchanged(
    backend: tuple[str, str], gw: Callable[..., Any]
) -> None:
    url = await gw()

    def fail(c: Client) -> tuple[int, Any]:
        try:
            search(c, {"query": {"match": {"text": QUERY}}}, index="missing")
        except ApiError as exc:
            return exc.meta.status, exc.body
        except TransportError as exc:
            return int(exc.status_code), exc.info
        raise AssertionError("search on a missing index succeeded")

    direct, got = await both(backend, url, lambda d, v: (fail(d), fail(v)))
    assert got == direct
    assert got[0] == 404
    assert got[1]["error"]["type"] == "index_not_found_exception"


@pytest.fixture
def osmem_only(osmem: str) -> Iterator[str]:
    yield osmem


async def test_es_client_media_type_reaches_osmem_as_json(
    osmem_only: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    """osmem answers 406 to the ES client's vendor media type; through the gateway it works."""
    url = await gateway(make_settings(osmem_only), encoder=encoder)

    def run() -> tuple[int, Any, Any]:
        direct, via = Elasticsearch(osmem_only), Elasticsearch(url)
        try:
            try:
                direct.search(index="docs", query={"match_all": {}})
                status = 200
            except ApiError as exc:
                status = exc.meta.status
            via.index(index="vendor-media", id="1", document={"title": "a", "text": "berlin"})
            via.indices.refresh(index="vendor-media")
            found = via.search(index="vendor-media", query={"match": {"text": "berlin"}})
            via.indices.delete(index="vendor-media")
            return status, via.count(index="docs")["count"], ids(found)
        finally:
            direct.close()
            via.close()

    status, count, found = await asyncio.to_thread(run)
    assert status == 406
    assert count == 20
    assert found == ["1"]
