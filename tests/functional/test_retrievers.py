"""Retriever trees through the whole app, in front of the scripted upstream that records requests.

What the real clusters cannot show: that the leaves of a node run concurrently, what
each flavor is sent for a knn leaf, and the fallback when the reranker fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from gateway.errors import ModelError
from gateway.model.fake import FakeEncoder
from tests.doubles.corpora import WALL_DOCS as DOCS
from tests.doubles.corpora import WALL_QUERY as QUERY
from tests.doubles.corpora import WALL_SEARCH as SEARCH
from tests.doubles.encoders import FailingEncoder
from tests.doubles.gateway import GatewayFactory, Start
from tests.doubles.upstream import ScriptedUpstream as Scripted
from tests.doubles.upstream import call

STD = {"standard": {"query": {"match": {"text": QUERY}}}}
VEC = [1.0, 0.0, 0.5]
KNN = {"knn": {"field": "vec", "query_vector": VEC, "k": 3, "num_candidates": 5}}


def searches(upstream: Scripted) -> list[dict[str, Any]]:
    return [s.json() for s in upstream.seen if s.path.endswith("/_search")]


async def test_the_leaves_of_a_node_run_concurrently(upstream: Scripted, start: Start) -> None:
    in_flight, most = 0, 0
    all_in = asyncio.Event()

    async def count(request: web.Request) -> None:
        nonlocal in_flight, most
        if not request.path.endswith("/_search"):
            return  # the gateway's own reads (product, mappings) are not leaves
        in_flight += 1
        most = max(most, in_flight)
        if most == 4:
            all_in.set()
        # Each search is held until all four are in (or 2 s: then they came in turn).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 2)
        in_flight -= 1

    upstream.behaviour = count
    url = await start()
    leaves = [STD, {"standard": {"query": {"match": {"text": "wall"}}}}, KNN]
    got = await call("POST", f"{url}/docs/_search", {"retriever": {"rrf": {"retrievers": leaves}}})
    assert got.status == 200, got.body
    # Three leaves and the union search (totals, aggregations), all at once.
    assert len(searches(upstream)) == 4
    assert most == 4


async def test_opensearch_gets_its_own_knn_query(upstream: Scripted, start: Start) -> None:
    url = await start(upstream={"flavor": "opensearch"})
    knn = {"knn": {**KNN["knn"], "filter": {"term": {"lang": "en"}}}}
    body = {"retriever": {"rrf": {"retrievers": [STD, knn]}}}
    got = await call("POST", f"{url}/docs/_search", body)
    assert got.status == 200, got.body
    sent = searches(upstream)
    expected = {
        "vec": {"vector": VEC, "k": 3, "filter": {"bool": {"filter": [{"term": {"lang": "en"}}]}}}
    }
    assert {"knn": expected} in [s.get("query") for s in sent]
    union = next(s for s in sent if s.get("size") == 0)
    assert union["query"]["bool"]["should"][1] == {"knn": expected}
    assert "knn" not in union  # OpenSearch has no knn section


async def test_elasticsearch_gets_a_knn_section(upstream: Scripted, start: Start) -> None:
    url = await start()
    body = {"retriever": {"rrf": {"retrievers": [STD, KNN], "filter": {"term": {"a": 1}}}}}
    got = await call("POST", f"{url}/docs/_search", body)
    assert got.status == 200, got.body
    sent = [s for s in searches(upstream) if "knn" in s]
    leaf = next(s for s in sent if s["size"] != 0)
    assert leaf["knn"] == {**KNN["knn"], "filter": [{"term": {"a": 1}}]}
    assert leaf["size"] == 10  # the rrf's rank_window_size


async def test_a_failing_reranker_keeps_the_first_stage_order(
    upstream: Scripted, gateway: GatewayFactory
) -> None:
    from gateway.settings import Settings

    settings = Settings.model_validate(
        {"upstream": {"urls": [upstream.url], "flavor": "elasticsearch"}}
    )
    url = await gateway(settings, encoder=FailingEncoder())
    tsr = {"retriever": STD, "field": "text", "inference_text": QUERY, "rank_window_size": 5}
    got = await call(
        "POST", f"{url}/docs/_search", {"retriever": {"text_similarity_reranker": tsr}, "size": 5}
    )
    assert got.status == 200, got.body  # Elasticsearch would fail the whole search
    assert got.headers["X-Rerank"] == "skipped"
    assert got.ids() == [d["_id"] for d in DOCS[:5]]


async def test_query_vector_builder_without_an_embedder_is_a_400(
    upstream: Scripted, start: Start
) -> None:
    url = await start()
    builder = {"text_embedding": {"model_id": "m", "model_text": QUERY}}
    knn = {"knn": {"field": "vec", "query_vector_builder": builder, "k": 3}}
    got = await call(
        "POST", f"{url}/docs/_search", {"retriever": {"rrf": {"retrievers": [STD, knn]}}}
    )
    assert got.status == 400
    assert got.es_error() == "illegal_argument_exception"
    assert not searches(upstream)  # refused before any leaf ran


async def test_too_many_leaves_is_a_400(upstream: Scripted, start: Start) -> None:
    url = await start(retrievers={"max_leaves": 2})
    body = {"retriever": {"rrf": {"retrievers": [STD, STD, KNN]}}}
    got = await call("POST", f"{url}/docs/_search", body)
    assert got.status == 400
    assert "RETRIEVERS__MAX_LEAVES" in got.json()["error"]["reason"]


async def test_chunk_rescorer_scores_the_end_of_a_long_document(gateway: GatewayFactory) -> None:
    """Without it the long document is cut at the model's length and loses its match."""
    from gateway.settings import Settings

    long_text = " ".join(["filler"] * 300) + " berlin wall"
    docs = [
        {"_id": "short", "title": "", "text": "a wall"},
        {"_id": "long", "title": "", "text": long_text},
    ]
    async with Scripted(docs) as upstream:
        settings = Settings.model_validate(
            {"upstream": {"urls": [upstream.url], "flavor": "elasticsearch"}}
        )
        url = await gateway(settings, encoder=FakeEncoder())
        tsr: dict[str, Any] = {"retriever": STD, "field": "text", "inference_text": QUERY}
        plain = await call(
            "POST", f"{url}/docs/_search", {"retriever": {"text_similarity_reranker": tsr}}
        )
        assert plain.ids() == ["short", "long"]
        chunked = {**tsr, "chunk_rescorer": {"chunking_settings": {"max_chunk_size": 50}}}
        got = await call(
            "POST", f"{url}/docs/_search", {"retriever": {"text_similarity_reranker": chunked}}
        )
        assert got.ids() == ["long", "short"]
        assert got.headers["X-Rerank"] == "full"


class BrokenEmbedder:
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise ModelError("embedder down")


async def test_hybrid_profile_degrades_to_the_plain_search(
    upstream: Scripted, gateway: GatewayFactory
) -> None:
    from gateway.settings import Settings

    settings = Settings.model_validate(
        {
            "upstream": {"urls": [upstream.url], "flavor": "elasticsearch"},
            "rerank": {"window": 5},
            "relevance": {"hybrid": {"vector_field": "vec"}},
        }
    )
    plain_url = await gateway(
        Settings.model_validate({**settings.model_dump(), "relevance": {}}), encoder=FakeEncoder()
    )
    plain = await call("POST", f"{plain_url}/docs/_search", SEARCH)
    for embedder in (None, BrokenEmbedder()):
        upstream.seen.clear()
        url = await gateway(settings, encoder=FakeEncoder(), embedder=embedder)
        got = await call("POST", f"{url}/docs/_search", SEARCH)
        assert got.status == 200, got.body
        assert got.headers["X-Rerank"] == "full"
        assert got.ids() == plain.ids()
        assert [s.get("query") for s in searches(upstream)] == [SEARCH["query"]]


async def test_in_an_experiment_the_control_arms_reranker_falls_back(
    upstream: Scripted, start: Start
) -> None:
    url = await start(experiment={"mode": "ab", "name": "retr"})
    tsr = {"retriever": STD, "field": "text", "inference_text": QUERY, "rank_window_size": 5}
    body = {"retriever": {"text_similarity_reranker": tsr}, "size": 5}
    arms = {}
    for variant in ("baseline", "rerank"):
        got = await call(
            "POST", f"{url}/docs/_search", body, headers={"X-Experiment-Override": variant}
        )
        assert got.status == 200, got.body
        assert got.headers["X-Experiment-Variant"] == variant
        arms[variant] = (got.headers["X-Rerank"], got.headers.get("X-Rerank-Reason"), got.ids())
    assert arms["baseline"] == ("skipped", "experiment_control", [d["_id"] for d in DOCS[:5]])
    assert arms["rerank"][0] == "full"
    assert arms["rerank"][2] != arms["baseline"][2]


async def test_an_msearch_retriever_sub_asks_for_its_rerankers_text(
    upstream: Scripted, start: Start
) -> None:
    """A sub-search with ``_source: false``: its leaf asks for the reranker's field in
    ``fields`` (the mapping is unreadable here, so nothing says ``_source`` would do), and
    the sub's hits come back without it."""
    url = await start()
    tsr = {"retriever": STD, "field": "text", "inference_text": QUERY, "rank_window_size": 5}
    sub = {"retriever": {"text_similarity_reranker": tsr}, "_source": False, "size": 3}
    data = b"{}\n" + json.dumps(sub).encode() + b"\n"
    got = await call(
        "POST", f"{url}/docs/_msearch", data=data, headers={"Content-Type": "application/x-ndjson"}
    )
    assert got.status == 200, got.body
    leaf, union = searches(upstream)  # the leaf's window and the totals
    assert leaf["fields"] == ["text"] and leaf["_source"] is False
    assert union["size"] == 0 and "fields" not in union
    (response,) = got.json()["responses"]
    assert response["status"] == 200
    assert all("fields" not in hit for hit in response["hits"]["hits"])


async def test_a_skipped_tree_needs_no_text_and_names_no_unknown_model(
    upstream: Scripted, start: Start
) -> None:
    """Opted out (``X-Rerank: off``), a tree's rerankers do not score: no ``fields`` is
    asked for them, and an ``inference_id`` no model answers to is no error."""
    url = await start()
    tsr = {"retriever": STD, "field": "text", "inference_id": "nope", "inference_text": QUERY}
    body = {"retriever": {"text_similarity_reranker": tsr}, "_source": False}
    got = await call("POST", f"{url}/docs/_search", body, headers={"X-Rerank": "off"})
    assert got.status == 200, got.body
    assert got.headers["X-Rerank"] == "skipped"
    assert all("fields" not in s for s in searches(upstream))
    refused = await call("POST", f"{url}/docs/_search", body)  # scored: the model is unknown
    assert refused.status == 404
    assert refused.json()["error"]["type"] == "resource_not_found_exception"
