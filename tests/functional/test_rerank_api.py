"""The rerank API (``/rerank``, ``/v1/rerank``, ``/v2/rerank``) with the bodies real clients send.

The bodies are those the clients build (sources read, cited in docs/rerank-api.md):
Elasticsearch's ``hugging_face`` rerank entity (8.19/9.1: ``texts``, ``query``,
``return_text``, ``top_n``; later: ``documents``, ``return_documents``),
the ``custom`` service's template with ``${query}`` / ``${input}`` / ``${top_n}``
filled in as JSON, ``openshift_ai``'s Cohere-shaped entity, and ml-commons'
Cohere rerank connector body built by ``connector.pre_process.cohere.rerank``.
Answers are read the way those clients read them: JSONPath for ``custom``,
``$.results`` + ``index`` / ``relevance_score`` for ml-commons, and strict key
sets for Elasticsearch's parsers (an unknown result field is an error there).
Scores are checked against ``FakeEncoder`` called directly on the same pairs.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import pytest
from jsonpath_ng import parse as jsonpath

from gateway.model.base import Encoded, Scores
from gateway.model.fake import FakeEncoder
from tests.doubles.gateway import Start
from tests.doubles.upstream import ScriptedUpstream as Scripted
from tests.doubles.upstream import call

QUERY = "berlin wall"
DOCS = [
    "Paris is the capital of France.",
    "The Berlin Wall fell in 1989.",
    "A wall is a structure.",
    "Berlin is the capital of Germany.",
]
TEI_KEYS = {
    "index",
    "score",
    "relevance_score",
    "text",
    "document",
}  # HuggingFaceRerankResponseEntity
COHERE_KEYS = {"index", "relevance_score", "document"}  # CohereRankedResponseEntity


def logits(query: str, docs: Sequence[str]) -> list[float]:
    fake = FakeEncoder()
    return [float(s) for s in fake.score(fake.encode([(query, d) for d in docs]))]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def by_index(results: list[dict[str, Any]], key: str) -> list[float]:
    """Scores in request order, asserting each index came back exactly once."""
    indices = sorted(r["index"] for r in results)
    assert indices == list(range(len(results)))
    return [r[key] for r in sorted(results, key=lambda r: r["index"])]


# The request bodies of the recipes in docs/rerank-api.md, as the clients hold them.
# ml-commons' Cohere rerank connector (its blueprint, with return_documents off):
ML_COMMONS_BODY = (
    '{ "documents": ${parameters.documents}, "query": "${parameters.query}",'
    ' "model": "${parameters.model}", "top_n": ${parameters.top_n}, "return_documents": false }'
)
# Elasticsearch's custom service ("request" of service_settings):
CUSTOM_REQUEST = '{"model": "default", "query": ${query}, "documents": ${input}}'


def es_template(template: str, params: dict[str, Any]) -> str:
    """The ``custom`` service's substitution: ``${name}`` becomes the value as JSON."""
    return re.sub(r"\$\{(\w+)\}", lambda m: json.dumps(params[m.group(1)]), template)


@pytest.fixture
async def url(start: Start) -> str:
    return await start()


async def test_es_hugging_face_body_of_8_19(url: str) -> None:
    # HuggingFaceRerankRequestEntity (8.19/9.1): texts, query, return_text; top_n from the task.
    body = {"texts": DOCS, "query": QUERY, "return_text": True, "top_n": 2}
    got = await call("POST", f"{url}/rerank", body)
    assert got.status == 200
    ranks = got.json()
    assert isinstance(ranks, list) and len(ranks) == 2
    assert all(set(r) <= TEI_KEYS for r in ranks)
    want = [sigmoid(s) for s in logits(QUERY, DOCS)]
    best = sorted(range(len(DOCS)), key=lambda i: -want[i])[:2]
    assert [r["index"] for r in ranks] == best
    assert [r["score"] for r in ranks] == pytest.approx([want[i] for i in best])
    assert [r["text"] for r in ranks] == [DOCS[i] for i in best]


async def test_es_hugging_face_body_of_later_versions(url: str) -> None:
    # The later entity names the lists like Cohere does; no top_n: every text comes back.
    body = {"documents": DOCS, "query": QUERY, "return_documents": False}
    ranks = (await call("POST", f"{url}/rerank", body)).json()
    assert all(set(r) == {"index", "score"} for r in ranks)
    assert by_index(ranks, "score") == pytest.approx([sigmoid(s) for s in logits(QUERY, DOCS)])


async def test_tei_raw_scores_are_the_model_logits(url: str) -> None:
    body = {"query": QUERY, "texts": DOCS, "raw_scores": True, "truncate": True}
    ranks = (await call("POST", f"{url}/rerank", body)).json()
    scores = [r["score"] for r in ranks]
    assert scores == sorted(scores, reverse=True)  # TEI answers best first
    assert by_index(ranks, "score") == pytest.approx(logits(QUERY, DOCS))


async def test_es_custom_service_template_and_json_paths(url: str) -> None:
    data = es_template(CUSTOM_REQUEST, {"query": QUERY, "input": DOCS}).encode()
    got = await call(
        "POST", f"{url}/v2/rerank", data=data, headers={"Content-Type": "application/json"}
    )
    answer = got.json()
    index = [m.value for m in jsonpath("$.results[*].index").find(answer)]
    score = [m.value for m in jsonpath("$.results[*].relevance_score").find(answer)]
    assert sorted(index) == list(range(len(DOCS))) and len(score) == len(index)
    want = [sigmoid(s) for s in logits(QUERY, DOCS)]
    assert score == pytest.approx([want[i] for i in index])
    assert score == sorted(score, reverse=True)


async def test_es_openshift_ai_entity(url: str) -> None:
    # OpenShiftAIRerankRequestEntity: model (optional), query, documents, top_n, return_documents.
    body = {
        "model": "default",
        "query": QUERY,
        "documents": DOCS,
        "top_n": 3,
        "return_documents": True,
    }
    answer = (await call("POST", f"{url}/v2/rerank", body)).json()
    results = answer["results"]
    assert len(results) == 3 and all(set(r) <= COHERE_KEYS for r in results)
    assert [r["document"]["text"] for r in results] == [DOCS[r["index"]] for r in results]
    assert results[0]["index"] == 1  # "The Berlin Wall fell in 1989."


async def test_opensearch_ml_commons_cohere_connector(url: str) -> None:
    # connector.pre_process.cohere.rerank: parameters query, documents, top_n = len(documents);
    # the blueprint's request_body puts query inside quotes and the rest as JSON.
    params = {"query": QUERY, "documents": json.dumps(DOCS), "top_n": str(len(DOCS))}
    params["model"] = "default"  # the connector's own "parameters"
    data = ML_COMMONS_BODY
    for name, value in params.items():  # ml-commons puts each parameter's string in as it is
        data = data.replace("${parameters." + name + "}", value)
    got = await call(
        "POST", f"{url}/v1/rerank", data=data.encode(), headers={"Content-Type": "application/json"}
    )
    # connector.post_process.cohere.rerank: $.results, then scores[index] = relevance_score.
    results = jsonpath("$.results").find(got.json())[0].value
    assert all(set(r) == {"index", "relevance_score"} for r in results)
    scores: list[float | None] = [None] * len(results)
    for item in results:
        scores[item["index"]] = item["relevance_score"]
    assert scores == pytest.approx([sigmoid(s) for s in logits(QUERY, DOCS)])


async def test_jina_documents_as_objects_and_returned_by_default(url: str) -> None:
    body = {"model": "default", "query": QUERY, "documents": [{"text": d} for d in DOCS]}
    results = (await call("POST", f"{url}/v1/rerank", body)).json()["results"]
    assert [r["document"]["text"] for r in results] == [DOCS[r["index"]] for r in results]
    cohere = (await call("POST", f"{url}/v2/rerank", {"query": QUERY, "documents": DOCS})).json()
    assert all("document" not in r for r in cohere["results"])
    assert [r["index"] for r in cohere["results"]] == [r["index"] for r in results]


async def test_langchain_cohere_rerank_against_the_gateway(url: str) -> None:
    import cohere
    import httpx
    from langchain_cohere import CohereRerank

    with httpx.Client() as http:  # closed here, so no socket outlives the test
        client = cohere.ClientV2(api_key="unused", base_url=url, httpx_client=http)
        reranker = CohereRerank(client=client, model="default", top_n=4)
        got = await asyncio.to_thread(reranker.rerank, DOCS, QUERY)
    want = [sigmoid(s) for s in logits(QUERY, DOCS)]
    assert [g["relevance_score"] for g in got] == pytest.approx(sorted(want, reverse=True))
    assert [want[g["index"]] for g in got] == pytest.approx(sorted(want, reverse=True))


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        ("/rerank", b"{not json", 422, "Validation"),
        ("/rerank", {"texts": DOCS}, 422, "Validation"),
        ("/rerank", {"query": QUERY, "texts": []}, 400, "Empty"),
        ("/rerank", {"query": QUERY, "texts": [1, 2]}, 422, "Validation"),
        (
            "/rerank",
            {"query": QUERY, "texts": DOCS, "truncation_direction": "left"},
            422,
            "Validation",
        ),
        ("/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": "yes"}, 422, "Validation"),
        ("/v2/rerank", {"query": QUERY}, 400, None),
        ("/v2/rerank", {"query": QUERY, "documents": DOCS, "top_n": 0}, 400, None),
        ("/v2/rerank", {"query": QUERY, "documents": [{"title": "no text"}]}, 400, None),
        ("/v2/rerank", {"query": QUERY, "documents": DOCS, "model": "rerank-v3.5"}, 404, None),
        ("/v1/rerank", [QUERY], 400, None),
        ("/v1/rerank", {"query": QUERY, "documents": ["x"] * 1001}, 413, None),
    ],
)
async def test_bad_bodies_get_the_apis_own_error_shape(
    url: str, path: str, body: Any, status: int, kind: str | None
) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    got = await call("POST", url + path, data=data, headers={"Content-Type": "application/json"})
    assert got.status == status
    error = got.json()
    if kind is not None:  # TEI: {"error", "error_type"}
        assert set(error) == {"error", "error_type"} and error["error_type"] == kind
    else:  # Cohere reads "message", Jina "detail"
        assert set(error) == {"message", "detail"} and error["message"]


async def test_access_key_as_gateway_header_or_bearer(start: Start, upstream: Scripted) -> None:
    url = await start(access={"api_key": "s3cret", "indices": ["docs"]})
    body = {"query": QUERY, "documents": DOCS}
    missing = await call("POST", f"{url}/v2/rerank", body)
    assert missing.status == 401 and missing.json()["message"] == "missing API key"
    wrong = await call(
        "POST",
        f"{url}/rerank",
        {"query": QUERY, "texts": DOCS},
        headers={"Authorization": "Bearer nope"},
    )
    assert wrong.status == 401 and wrong.json()["error_type"] == "Unauthorized"
    for headers in ({"X-Gateway-Api-Key": "s3cret"}, {"Authorization": "Bearer s3cret"}):
        assert (await call("POST", f"{url}/v2/rerank", body, headers=headers)).status == 200
    # The bearer opens the rerank API only: Elasticsearch paths still need the gateway header.
    search = await call(
        "POST", f"{url}/docs/_search", {}, headers={"Authorization": "Bearer s3cret"}
    )
    assert search.status == 401
    # Nothing reached the cluster but the gateway's own start-up reads (product, mappings).
    assert not [s for s in upstream.seen if s.path != "/" and not s.path.endswith("_mapping")]


async def test_other_methods_on_the_paths_stay_elasticsearch_s(
    url: str, upstream: Scripted
) -> None:
    # An index may be called "rerank": creating, reading, deleting it passes through.
    for method in ("PUT", "GET", "DELETE"):
        got = await call(method, f"{url}/rerank")
        assert got.status == 200 and got.json()["path"] == "/rerank"
        assert upstream.last("/rerank").method == method
    assert (await call("GET", f"{url}/v1/rerank")).json()["path"] == "/v1/rerank"


async def test_profiles_pick_the_model_and_the_allow_list_applies(start: Start) -> None:
    url = await start(
        relevance={
            "profiles": {
                "chunked": {"long_docs": "chunk", "chunk_tokens": 8, "chunk_overlap": 0},
                "hidden": {},
            },
            "request_profiles": ["chunked", "default"],
        }
    )
    long_doc = "the wall of berlin is long and old and it fell down in the year 1989 berlin wall"
    body = {"query": QUERY, "documents": [long_doc], "model": "chunked"}
    chunked = (await call("POST", f"{url}/v2/rerank", body)).json()
    windows = FakeEncoder().split([long_doc], 8, 0)[0]
    assert chunked["model"] == "chunked"
    assert chunked["results"][0]["relevance_score"] == pytest.approx(
        sigmoid(max(logits(QUERY, windows)))  # RELEVANCE__POOLING=max over the windows
    )
    whole = (await call("POST", f"{url}/v2/rerank", {**body, "model": "default"})).json()
    assert whole["results"][0]["relevance_score"] == pytest.approx(
        sigmoid(logits(QUERY, [long_doc])[0])
    )
    hidden = await call("POST", f"{url}/v2/rerank", {**body, "model": "hidden"})
    assert hidden.status == 400 and "not allowed" in hidden.json()["message"]


class SlowEncoder(FakeEncoder):
    def score(self, batch: Sequence[Encoded]) -> Scores:
        import time

        if any(len(e) > 8 for e in batch):  # not the warm-up pair
            time.sleep(0.3)
        return super().score(batch)


async def test_past_the_deadline_is_an_error_never_fewer_scores(
    upstream: Scripted, gateway: Any
) -> None:
    from gateway.settings import Settings

    settings = Settings.model_validate({"upstream": {"urls": [upstream.url]}})
    url = await gateway(settings, encoder=SlowEncoder())
    docs = [f"{d} and some more words to make it long" for d in DOCS]
    headers = {"X-Rerank-Timeout-Ms": "50"}
    tei = await call("POST", f"{url}/rerank", {"query": QUERY, "texts": docs}, headers=headers)
    assert tei.status == 503 and tei.json()["error_type"] == "Overloaded"
    cohere = await call(
        "POST", f"{url}/v2/rerank", {"query": QUERY, "documents": docs}, headers=headers
    )
    assert cohere.status == 503 and "not every document" in cohere.json()["message"]


async def test_metrics_and_cache_serve_the_api_like_searches(url: str) -> None:
    body = {"query": QUERY, "documents": DOCS}
    first = (await call("POST", f"{url}/v2/rerank", body)).json()
    second = (await call("POST", f"{url}/v2/rerank", body)).json()
    assert second["results"] == first["results"]
    text = (await call("GET", f"{url}/_gateway/metrics")).body.decode()
    assert f'gateway_rerank_api_documents_total{{api="v2"}} {2 * len(DOCS)}.0' in text
    assert 'gateway_requests_total{outcome="2xx",route="rerank"} 2.0' in text
    hits = re.search(r'gateway_cache_operations_total\{result="hits"\} (\S+)', text)
    assert hits is not None and float(hits.group(1)) >= len(DOCS)
