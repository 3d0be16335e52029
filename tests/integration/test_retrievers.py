"""Retriever trees through the real gateway, against noida-db (ES 8.15) and osmem-server.

Each expected page is computed by hand here from the leaves' own answers (each
leaf's search sent straight to the cluster): RRF ``Σ 1/(60 + rank)``, linear
``Σ w · norm(score)``, the reranker's order from the ONNX model called directly.
Where noida-db runs the retriever itself (``standard``, ``knn``, ``rrf``), the
gateway's page is also compared with the cluster's own.

Vectors come from ``FakeEmbedder`` (hashed bag of words): deterministic, and the
same function embeds the documents and the gateway's ``query_vector_builder`` text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.model.fake import FakeEncoder
from gateway.model.onnx import OnnxCrossEncoder
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.search_servers import seed_index
from tests.integration.oracle import load_model

INDEX = "retr"
DIMS = 8
TEXTS = {
    "r1": "red apple orchard harvest",
    "r2": "green apple pie recipe with cinnamon",
    "r3": "apple tree pruning guide for the orchard",
    "r4": "red sports car on the racing track",
    "r5": "fresh fruit market with apples and pears",
    "r6": "the history of the apple computer company",
    "r7": "cherry orchard in spring bloom",
    "r8": "how to bake bread at home",
    "r9": "red wine and cheese pairing",
    "r10": "pear and apple cider brewing",
}
QUERY = "apple orchard"


class FakeEmbedder:
    """Words hashed onto ``DIMS`` axes, L2-normalized: a deterministic stand-in bi-encoder."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> list[float]:
        out = [0.0] * DIMS
        for word in re.findall(r"[a-z]+", text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            out[digest[0] % DIMS] += 1.0 + digest[1] / 255
        norm = math.sqrt(sum(v * v for v in out)) or 1.0
        return [v / norm for v in out]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self.vector(t) for t in texts]


EMBED = FakeEmbedder()


def _docs() -> list[dict[str, Any]]:
    return [{"_id": i, "text": t, "vec": EMBED.vector(t)} for i, t in TEXTS.items()]


@pytest.fixture(scope="module")
def es_index(noida: str) -> str:
    mappings = {
        "properties": {
            "text": {"type": "text"},
            "vec": {"type": "dense_vector", "dims": DIMS, "index": True, "similarity": "cosine"},
        }
    }
    seed_index(noida, INDEX, _docs(), mappings)
    return noida


@pytest.fixture(scope="module")
def os_index(osmem: str) -> str:
    mappings = {
        "properties": {
            "text": {"type": "text"},
            "vec": {"type": "knn_vector", "dimension": DIMS, "space_type": "cosinesimil"},
        }
    }
    seed_index(osmem, INDEX, _docs(), mappings)
    return osmem


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> OnnxCrossEncoder:
    return load_model(model_dir)


def post(base: str, body: dict[str, Any], path: str = f"/{INDEX}/_search") -> tuple[int, Any]:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def apost(base: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/{INDEX}/_search", json=body) as resp,
    ):
        return resp.status, await resp.json(), dict(resp.headers)


def std(text: str = QUERY) -> dict[str, Any]:
    return {"standard": {"query": {"match": {"text": text}}}}


def knn(k: int = 10, text: str = QUERY) -> dict[str, Any]:
    return {
        "knn": {"field": "vec", "query_vector": EMBED.vector(text), "k": k, "num_candidates": 20}
    }


def leaf_hits(base: str, retriever: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """A leaf's own answer, asked of the cluster directly."""
    ((kind, spec),) = retriever.items()
    if kind == "standard":
        body: dict[str, Any] = {"query": spec["query"], "size": size}
    else:
        body = {"knn": {**spec, "k": spec["k"]}, "size": size}
    status, answer = post(base, body)
    assert status == 200, answer
    return list(answer["hits"]["hits"])


def rrf_by_hand(
    lists: list[list[dict[str, Any]]], window: int, k: int = 60
) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for hits in lists:
        for rank, hit in enumerate(hits[:window], start=1):
            totals[hit["_id"]] = totals.get(hit["_id"], 0.0) + 1 / (k + rank)
    seen = list(totals)
    order = sorted(seen, key=lambda d: (-totals[d], seen.index(d)))[:window]
    return [(d, totals[d]) for d in order]


def minmax(scores: list[float]) -> list[float]:
    lo, hi = min(scores), max(scores)
    return [lo] * len(scores) if hi - lo < 1e-6 else [(s - lo) / (hi - lo) for s in scores]


def l2(scores: list[float]) -> list[float]:
    norm = math.sqrt(sum(s * s for s in scores))
    return [s / norm for s in scores]


def linear_by_hand(
    lists: list[list[dict[str, Any]]], weights: list[float], norms: list[Any], window: int
) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for hits, weight, norm in zip(lists, weights, norms, strict=True):
        top = hits[:window]
        scores = norm([h["_score"] for h in top])
        for hit, score in zip(top, scores, strict=True):
            totals[hit["_id"]] = totals.get(hit["_id"], 0.0) + weight * score
    seen = list(totals)
    order = sorted(seen, key=lambda d: (-totals[d], seen.index(d)))[:window]
    return [(d, totals[d]) for d in order]


def page(answer: dict[str, Any]) -> list[tuple[str, float]]:
    return [(h["_id"], h["_score"]) for h in answer["hits"]["hits"]]


def assert_page(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [d for d, _ in got] == [d for d, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert a == pytest.approx(b, rel=1e-5)


async def start(gateway: GatewayFactory, base: str, encoder: Any = None, **sections: Any) -> str:
    """The gateway; without the ONNX ``encoder`` a fake one (the test does not rerank)."""
    sections.setdefault("rerank", {"window": 20, "fields": ["text"]})
    return await gateway(make_settings(base, **sections), encoder=encoder or FakeEncoder())


# ---- noida-db (Elasticsearch 8.15) ------------------------------------------------------


async def test_standard_and_knn_roots_are_the_plain_searches(
    es_index: str, gateway: GatewayFactory
) -> None:
    url = await start(gateway, es_index, rerank={"enabled": False})
    for retriever in (std(), knn(k=5)):
        body = {"retriever": retriever, "size": 4}
        status, got, _ = await apost(url, body)
        assert status == 200, got
        _, own = post(es_index, body)  # noida runs these two retrievers itself
        assert page(got) == page(own)
        assert got["hits"]["total"] == own["hits"]["total"]


async def test_rrf_of_standard_and_knn_is_the_hand_computed_fusion(
    es_index: str, gateway: GatewayFactory
) -> None:
    url = await start(gateway, es_index)
    body = {"retriever": {"rrf": {"retrievers": [std(), knn()], "rank_window_size": 8}}, "size": 5}
    status, got, headers = await apost(url, body)
    assert status == 200, got
    want = rrf_by_hand([leaf_hits(es_index, std(), 8), leaf_hits(es_index, knn(), 8)], 8)
    assert_page(page(got), want[:5])
    assert [h["_rank"] for h in got["hits"]["hits"]] == [1, 2, 3, 4, 5]
    assert got["hits"]["max_score"] is None
    assert headers["X-Rerank"] == "skipped"
    # noida-db runs rrf itself: the same page, ranks and total.
    _, own = post(es_index, body)
    assert_page(page(got), page(own))
    assert [h["_rank"] for h in got["hits"]["hits"]] == [h["_rank"] for h in own["hits"]["hits"]]
    assert got["hits"]["total"] == own["hits"]["total"]


async def test_rrf_pages_inside_the_window_and_keeps_union_aggregations(
    es_index: str, gateway: GatewayFactory
) -> None:
    url = await start(gateway, es_index)
    aggs = {"n": {"value_count": {"field": "_id"}}}
    rrf = {"rrf": {"retrievers": [std(), knn(k=3)], "rank_window_size": 6, "rank_constant": 10}}
    body = {"retriever": rrf, "from": 4, "size": 4, "aggs": aggs}
    status, got, _ = await apost(url, body)
    assert status == 200, got
    want = rrf_by_hand([leaf_hits(es_index, std(), 6), leaf_hits(es_index, knn(k=3), 6)], 6, k=10)
    assert_page(page(got), want[4:8])  # two hits: the window ends at 6
    assert [h["_rank"] for h in got["hits"]["hits"]] == [5, 6]
    _, own = post(es_index, body)
    assert got["hits"]["total"] == own["hits"]["total"]
    assert got["aggregations"] == own["aggregations"]


@pytest.mark.parametrize(
    ("normalizer", "fn"), [("minmax", minmax), ("l2_norm", l2), ("none", lambda s: s)]
)
async def test_linear_is_the_hand_computed_weighted_sum(
    es_index: str, gateway: GatewayFactory, normalizer: str, fn: Any
) -> None:
    url = await start(gateway, es_index)
    children = [
        {"retriever": std(), "weight": 2.0, "normalizer": normalizer},
        {"retriever": knn(), "weight": 0.5, "normalizer": normalizer},
    ]
    body = {"retriever": {"linear": {"retrievers": children, "rank_window_size": 7}}, "size": 7}
    status, got, _ = await apost(url, body)
    assert status == 200, got
    lists = [leaf_hits(es_index, std(), 7), leaf_hits(es_index, knn(), 7)]
    assert_page(page(got), linear_by_hand(lists, [2.0, 0.5], [fn, fn], 7))
    assert got["hits"]["max_score"] == pytest.approx(page(got)[0][1])
    assert "_rank" not in got["hits"]["hits"][0]


async def test_simplified_fields_query_form_expands_to_bm25_and_knn(
    es_index: str, gateway: GatewayFactory
) -> None:
    embedder = FakeEmbedder()
    settings = make_settings(es_index, rerank={"window": 20, "fields": ["text"]})
    url = await gateway(settings, encoder=FakeEncoder(), embedder=embedder)
    body = {"retriever": {"rrf": {"fields": ["text", "vec"], "query": QUERY}}, "size": 5}
    status, got, _ = await apost(url, body)
    assert status == 200, got
    bm25 = {"standard": {"query": {"multi_match": {"query": QUERY, "fields": ["text"]}}}}
    lists = [leaf_hits(es_index, bm25, 10), leaf_hits(es_index, knn(), 10)]
    assert_page(page(got), rrf_by_hand(lists, 10)[:5])
    assert embedder.calls == [[QUERY]]  # the query embedded once, for the kNN leaf


async def test_reranker_over_rrf_over_standard_and_knn(
    es_index: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    url = await start(gateway, es_index, encoder)
    rrf = {"rrf": {"retrievers": [std(), knn()], "rank_window_size": 8}}
    tsr = {
        "retriever": rrf,
        "field": "text",
        "inference_text": "growing apples",
        "rank_window_size": 6,
    }
    body = {"retriever": {"text_similarity_reranker": tsr}, "size": 4}
    status, got, headers = await apost(url, body)
    assert status == 200, got
    assert headers["X-Rerank"] == "full"
    fused = rrf_by_hand([leaf_hits(es_index, std(), 8), leaf_hits(es_index, knn(), 8)], 8)[:6]
    pairs = [("growing apples", TEXTS[d]) for d, _ in fused]
    scores = encoder.score(encoder.encode(pairs))
    want = sorted(zip([d for d, _ in fused], scores, strict=True), key=lambda p: -p[1])
    assert [d for d, _ in page(got)] == [d for d, _ in want[:4]]
    for (_, a), (_, b) in zip(page(got), want[:4], strict=True):
        assert a == pytest.approx(float(b), abs=1e-4)


async def test_reranker_min_score_drops_and_unknown_inference_id_is_404(
    es_index: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    url = await start(gateway, es_index, encoder)
    tsr: dict[str, Any] = {"retriever": std(), "field": "text", "inference_text": QUERY}
    status, full, _ = await apost(url, {"retriever": {"text_similarity_reranker": tsr}})
    assert status == 200, full
    cut = full["hits"]["hits"][1]["_score"]
    tsr_cut = {**tsr, "min_score": cut}
    _, got, _ = await apost(url, {"retriever": {"text_similarity_reranker": tsr_cut}})
    assert page(got) == [p for p in page(full) if p[1] >= cut]
    status, err, _ = await apost(
        url, {"retriever": {"text_similarity_reranker": {**tsr, "inference_id": "nope"}}}
    )
    assert status == 404
    assert err["error"]["type"] == "resource_not_found_exception"


async def test_reranker_falls_back_to_the_first_stage_when_not_allowed(
    es_index: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    """Elasticsearch fails a search whose reranker fails; the gateway keeps the child's order."""
    url = await start(
        gateway, es_index, encoder, rerank={"window": 20, "fields": ["text"], "enabled": False}
    )
    rrf = {"rrf": {"retrievers": [std(), knn()], "rank_window_size": 8}}
    tsr = {"retriever": rrf, "field": "text", "inference_text": QUERY, "rank_window_size": 8}
    status, got, headers = await apost(
        url, {"retriever": {"text_similarity_reranker": tsr}, "size": 5}
    )
    assert status == 200, got
    assert (headers["X-Rerank"], headers["X-Rerank-Reason"]) == ("skipped", "disabled")
    want = rrf_by_hand([leaf_hits(es_index, std(), 8), leaf_hits(es_index, knn(), 8)], 8)
    assert_page(page(got), want[:5])


async def test_pass_through_setting_lets_the_cluster_run_the_tree(
    es_index: str, gateway: GatewayFactory
) -> None:
    url = await start(gateway, es_index, retrievers={"run": "cluster"})
    body = {"retriever": {"rrf": {"retrievers": [std(), knn()]}}, "size": 3}
    status, got, headers = await apost(url, body)
    _, own = post(es_index, body)
    assert status == 200
    assert got == {**own, "took": got["took"]}
    assert headers["X-Rerank-Reason"] == "retriever_on_cluster"


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [
        (
            {"query": {"match_all": {}}, "retriever": std()},
            "illegal_argument_exception",
            "cannot specify [retriever] and [query]",
        ),
        ({"retriever": {"nope": {}}}, "parsing_exception", "unknown retriever [nope]"),
        (
            {"retriever": {"standard": {"bogus": 1}}},
            "x_content_parse_exception",
            "[standard] unknown field [bogus]",
        ),
        (
            {"retriever": {"rrf": {"retrievers": [std()]}}},
            "action_request_validation_exception",
            "Validation Failed: 1: [rank] requires a minimum of [2] result sets using a"
            " combination of sub searches and/or knn searches;",
        ),
        (
            {
                "retriever": {"rrf": {"retrievers": [std(), knn()], "rank_window_size": 1}},
                "size": 3,
            },
            "action_request_validation_exception",
            "Validation Failed: 1: [rank] requires [rank_window_size: 1] be greater than or"
            " equal to [size: 3];",
        ),
    ],
)
async def test_bad_retriever_bodies_get_the_clusters_own_400(
    es_index: str, gateway: GatewayFactory, body: dict[str, Any], kind: str, reason: str
) -> None:
    url = await start(gateway, es_index)
    status, got, _ = await apost(url, body)
    own_status, own = post(es_index, body)  # noida-db's verdict on the same body
    assert (status, own_status) == (400, 400)
    assert (got["error"]["type"], got["error"]["reason"]) == (kind, reason)
    assert (own["error"]["type"], own["error"]["reason"]) == (kind, reason)
    assert got["error"]["root_cause"][0]["type"] == kind


async def test_hybrid_profile_turns_a_plain_match_into_bm25_knn_rerank(
    es_index: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    relevance = {"hybrid": {"vector_field": "vec", "fusion": "rrf"}}
    rerank = {"window": 6, "fields": ["text"]}
    embedder = FakeEmbedder()
    settings = make_settings(es_index, rerank=rerank, relevance=relevance)
    url = await gateway(settings, encoder=encoder, embedder=embedder)
    status, got, headers = await apost(url, {"query": {"match": {"text": QUERY}}, "size": 3})
    assert status == 200, got
    assert headers["X-Rerank"] == "full"
    assert embedder.calls == [[QUERY]]
    bm25 = {"standard": {"query": {"match": {"text": QUERY}}}}
    vec = {
        "knn": {"field": "vec", "query_vector": EMBED.vector(QUERY), "k": 6, "num_candidates": 9}
    }
    fused = [
        d for d, _ in rrf_by_hand([leaf_hits(es_index, bm25, 6), leaf_hits(es_index, vec, 6)], 6)
    ]
    assert [d for d, _ in page(got)] == model_order(encoder, QUERY, fused)[:3]


def model_order(encoder: OnnxCrossEncoder, query: str, ids: list[str]) -> list[str]:
    """``ids`` by the ONNX model's score of (query, text), called directly."""
    scores = encoder.score(encoder.encode([(query, TEXTS[d]) for d in ids]))
    return [d for d, _ in sorted(zip(ids, scores, strict=True), key=lambda p: -float(p[1]))]


# ---- osmem-server (OpenSearch) ----------------------------------------------------------


async def test_opensearch_runs_rrf_linear_and_reranker_trees(
    os_index: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    """OpenSearch has no ``retriever`` at all: the gateway runs every node itself."""
    url = await start(gateway, os_index, encoder)
    a, b = std("apple orchard"), std("red fruit")
    lists = [leaf_hits(os_index, a, 6), leaf_hits(os_index, b, 6)]
    body = {"retriever": {"rrf": {"retrievers": [a, b], "rank_window_size": 6}}, "size": 6}
    status, got, _ = await apost(url, body)
    assert status == 200, got
    assert_page(page(got), rrf_by_hand(lists, 6))
    children = [{"retriever": a, "normalizer": "minmax"}, {"retriever": b, "weight": 3}]
    body = {"retriever": {"linear": {"retrievers": children, "rank_window_size": 6}}, "size": 6}
    status, got, _ = await apost(url, body)
    assert status == 200, got
    assert_page(page(got), linear_by_hand(lists, [1.0, 3.0], [minmax, lambda s: s], 6))
    rrf = {"rrf": {"retrievers": [a, b], "rank_window_size": 6}}
    tsr = {"retriever": rrf, "field": "text", "inference_text": QUERY, "rank_window_size": 5}
    status, got, headers = await apost(
        url, {"retriever": {"text_similarity_reranker": tsr}, "size": 5}
    )
    assert status == 200, got
    assert headers["X-Rerank"] == "full"
    fused = [d for d, _ in rrf_by_hand(lists, 6)[:5]]
    scores = encoder.score(encoder.encode([(QUERY, TEXTS[d]) for d in fused]))
    assert [d for d, _ in page(got)] == [
        d for d, _ in sorted(zip(fused, scores, strict=True), key=lambda p: -p[1])
    ]


async def test_opensearch_knn_leaf_is_sent_as_its_knn_query(
    os_index: str, gateway: GatewayFactory
) -> None:
    """osmem-server 0.1.6 has no kNN search: its refusal of OpenSearch's own ``knn`` query
    (what the gateway sends for a knn leaf) comes back as the cluster gave it."""
    url = await start(gateway, os_index)
    body = {"retriever": {"rrf": {"retrievers": [std(), knn()]}}}
    status, got, _ = await apost(url, body)
    vec = EMBED.vector(QUERY)
    own_status, own = post(os_index, {"query": {"knn": {"vec": {"vector": vec, "k": 10}}}})
    assert (status, got) == (own_status, own)
    assert own_status == 400


async def test_nested_linear_over_rrf_and_a_filtered_tree(
    es_index: str, gateway: GatewayFactory
) -> None:
    """linear(rrf(standard, knn), standard) by hand; a compound's filter reaches every leaf."""
    url = await start(gateway, es_index)
    inner = {"rrf": {"retrievers": [std(), knn()], "rank_window_size": 6}}
    other = std("red")
    children = [{"retriever": inner, "weight": 10.0}, {"retriever": other, "normalizer": "minmax"}]
    body = {"retriever": {"linear": {"retrievers": children, "rank_window_size": 6}}, "size": 6}
    status, got, _ = await apost(url, body)
    assert status == 200, got
    fused = rrf_by_hand([leaf_hits(es_index, std(), 6), leaf_hits(es_index, knn(), 6)], 6)
    rrf_hits = [{"_id": d, "_score": s} for d, s in fused]
    lists = [rrf_hits, leaf_hits(es_index, other, 6)]
    assert_page(page(got), linear_by_hand(lists, [10.0, 1.0], [lambda s: s, minmax], 6))
    only = {"match": {"text": "apple"}}
    filtered = {"rrf": {"retrievers": [std(), knn()], "filter": only}}
    status, got, _ = await apost(url, {"retriever": filtered})
    assert status == 200, got
    assert got["hits"]["hits"]
    assert all("apple" in TEXTS[h["_id"]].split() for h in got["hits"]["hits"])
    _, own = post(es_index, {"retriever": filtered})  # noida-db's own filtered rrf
    assert_page(page(got), page(own))


async def test_msearch_runs_retriever_sub_searches_in_their_slots(
    es_index: str, gateway: GatewayFactory
) -> None:
    import aiohttp

    url = await start(gateway, es_index, rerank={"window": 20, "fields": ["text"], "enabled": True})
    rrf = {"retriever": {"rrf": {"retrievers": [std(), knn()], "rank_window_size": 8}}, "size": 4}
    plain = {"query": {"match": {"text": "red"}}, "size": 2}
    bad = {"retriever": {"nope": {}}}
    lines = [{"index": INDEX}, rrf, {"index": INDEX}, plain, {"index": INDEX}, bad]
    payload = "".join(json.dumps(x) + "\n" for x in lines)
    want = rrf_by_hand([leaf_hits(es_index, std(), 8), leaf_hits(es_index, knn(), 8)], 8)
    for query, reranked in (("", "full"), ("?rerank=false", "skipped")):
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/_msearch{query}",
                data=payload,
                headers={"Content-Type": "application/x-ndjson"},
            ) as resp,
        ):
            assert resp.status == 200
            got = await resp.json()
            each = resp.headers["X-Rerank-Each"].split(",")
        first, second, third = got["responses"]
        # The retriever slot runs in the gateway whether or not the _msearch is reranked.
        assert_page(page(first), want[:4])
        assert first["status"] == 200
        assert [h["_rank"] for h in first["hits"]["hits"]] == [1, 2, 3, 4]
        assert len(second["hits"]["hits"]) == 2
        assert each[1] == reranked
        assert third["status"] == 400
        assert third["error"]["type"] == "parsing_exception"


async def test_reranker_reads_its_field_when_the_client_turns_source_off(
    es_index: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    url = await start(gateway, es_index, encoder)
    tsr = {"retriever": std(), "field": "text", "inference_text": "growing apples"}
    _, full, _ = await apost(url, {"retriever": {"text_similarity_reranker": tsr}})
    body = {"retriever": {"text_similarity_reranker": tsr}, "_source": False}
    status, got, headers = await apost(url, body)
    assert status == 200, got
    assert headers["X-Rerank"] == "full"
    assert page(got) == page(full)
    assert all(set(h) == {"_index", "_id", "_score"} for h in got["hits"]["hits"])


# ---- the reranker's text, whatever the client's hit options leave out ---------------------

SRC_INDEX = "retr_src"


@pytest.fixture(scope="module")
def src_index(noida: str) -> str:
    """``text`` with a keyword multi-field, and ``body``: an alias of it (neither is in
    ``_source``; ``fields`` returns both)."""
    mappings = {
        "properties": {
            "text": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "body": {"type": "alias", "path": "text"},
        }
    }
    docs = [{"_id": i, "text": t} for i, t in TEXTS.items()]
    seed_index(noida, SRC_INDEX, docs, mappings)
    return noida


async def search_at(base: str, path_qs: str, body: dict[str, Any]) -> tuple[int, Any, str]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/{SRC_INDEX}/_search{path_qs}", json=body) as resp,
    ):
        return resp.status, await resp.json(), resp.headers.get("X-Rerank", "")


HIDDEN = {  # (query string, hit options, the reranker's field): text not in the hits as asked
    "source off by parameter": ("?_source=false", {}, "text"),
    "script_fields alone (no _source)": ("", {"script_fields": {"one": {"script": "1"}}}, "text"),
    "an alias": ("", {}, "body"),
    "a multi-field": ("", {}, "text.raw"),
    "stored_fields naming it, not stored": ("", {"stored_fields": ["text"]}, "text"),
    # The client's own script field of that name: the text is still the document's.
    "a script field of its name": (
        "",
        {"_source": True, "script_fields": {"text": {"script": "1"}}},
        "text",
    ),
}


@pytest.mark.parametrize("case", list(HIDDEN), ids=list(HIDDEN))
async def test_reranker_reads_its_field_whatever_the_hit_options_leave_out(
    src_index: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory, case: str
) -> None:
    """The page is the one the reranker gives on ``text`` in full, and each hit is shaped as
    the cluster shapes it for the client's own options (the gateway's ``fields`` taken out)."""
    path_qs, options, field = HIDDEN[case]
    url = await start(gateway, src_index, encoder)
    reference = {"retriever": std(), "field": "text", "inference_text": "growing apples"}
    status, full, rerank = await search_at(
        url, "", {"retriever": {"text_similarity_reranker": reference}}
    )
    assert (status, rerank) == (200, "full"), full
    tsr = {**reference, "field": field}
    body = {"retriever": {"text_similarity_reranker": tsr}, **options}
    status, got, rerank = await search_at(url, path_qs, body)
    assert (status, rerank) == (200, "full"), got
    assert page(got) == page(full)
    # The cluster's own hits for the same options (the leaf search, sent to it directly).
    direct = post(
        src_index,
        {"query": std()["standard"]["query"], **options},
        f"/{SRC_INDEX}/_search{path_qs}",
    )[1]
    own = {h["_id"]: {k: v for k, v in h.items() if k != "_score"} for h in direct["hits"]["hits"]}
    assert [{k: v for k, v in h.items() if k != "_score"} for h in got["hits"]["hits"]] == [
        own[h["_id"]] for h in got["hits"]["hits"]
    ]


@pytest.mark.parametrize("field", ["body", "text.raw"], ids=["an alias", "a multi-field"])
async def test_a_plain_search_scores_a_configured_alias_or_multi_field(
    src_index: str,
    encoder: OnnxCrossEncoder,
    gateway: GatewayFactory,
    field: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RERANK__FIELDS naming a field ``_source`` lacks: the gateway asks for it in ``fields``
    (and does not fall back to the index's own text fields), so the page is the one on
    ``text``, with the hits as the cluster gives them."""
    caplog.set_level(logging.WARNING, logger="gateway.search.mappings")
    match = {"query": {"match": {"text": QUERY}}}
    on_text = await start(gateway, src_index, encoder, rerank={"window": 20, "fields": ["text"]})
    status, want, rerank = await search_at(on_text, "", match)
    assert (status, rerank) == (200, "full"), want
    url = await start(gateway, src_index, encoder, rerank={"window": 20, "fields": [field]})
    status, got, rerank = await search_at(url, "", match)
    assert (status, rerank) == (200, "full"), got
    assert page(got) == page(want)
    assert all(set(h) == {"_index", "_id", "_score", "_source"} for h in got["hits"]["hits"])
    fell_back = [r.getMessage() for r in caplog.records if f"[{SRC_INDEX}]" in r.getMessage()]
    assert fell_back == []  # the configured field is the index's: no other chosen


async def test_a_plain_search_reads_text_that_stored_fields_does_not_bring(
    src_index: str, encoder: OnnxCrossEncoder, gateway: GatewayFactory
) -> None:
    """``stored_fields: ["text"]`` where ``text`` is not stored: the cluster returns neither
    it nor ``_source``, so the gateway asks for it in ``fields`` (and takes it out again)."""
    url = await start(gateway, src_index, encoder)
    match = {"query": {"match": {"text": QUERY}}}
    status, want, rerank = await search_at(url, "", match)
    assert (status, rerank) == (200, "full"), want
    status, got, rerank = await search_at(url, "", {**match, "stored_fields": ["text"]})
    assert (status, rerank) == (200, "full"), got
    assert page(got) == page(want)
    assert all(set(h) == {"_index", "_id", "_score"} for h in got["hits"]["hits"])
