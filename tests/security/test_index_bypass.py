"""The index allow-list against a real cluster: no body, header or path reaches a denied index.

noida-db (Elasticsearch 8.15 API) holds ``docs`` (allowed) and ``secret`` (denied),
whose only document is the only place the word ``payload`` occurs. Each bypass is
sent to the cluster directly too: where the cluster supports it, that answer shows
the secret leaking, so the gateway's 403 is what stops it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from elasticsearch import AsyncElasticsearch, AuthorizationException

from gateway.model.fake import FakeEncoder
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.search_servers import seed_index, start_noida
from tests.doubles.upstream import Answer, call

MAPPINGS = {"properties": {"text": {"type": "text"}, "tags": {"type": "keyword"}}}
DOCS = [
    {"_id": "1", "text": "hello world", "tags": ["alpha"]},
    {"_id": "2", "text": "classified memo", "tags": ["beta"]},
]
SECRET_WORD = "payload"
SECRET = [{"_id": "s1", "text": f"classified {SECRET_WORD}", "tags": ["alpha"]}]
ALLOW_LISTS = {"include": ["docs"], "exclude": ["*", "-secret"]}

LOOKUP = {"terms": {"tags": {"index": "secret", "id": "s1", "path": "tags"}}}
NDJSON = "application/x-ndjson"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with start_noida() as url:
        seed_index(url, "docs", DOCS, MAPPINGS)
        seed_index(url, "secret", SECRET, MAPPINGS)
        yield url


@pytest.fixture(params=sorted(ALLOW_LISTS))
async def gateway_url(request: pytest.FixtureRequest, cluster: str, gateway: GatewayFactory) -> str:
    settings = make_settings(cluster, access={"indices": ALLOW_LISTS[request.param]})
    return await gateway(settings, encoder=FakeEncoder())


def hit_ids(answer: Answer) -> set[str]:
    return {h["_id"] for h in answer.json()["hits"]["hits"]}


def secret_shown(answer: Answer) -> bool:
    return SECRET_WORD.encode() in answer.body


def lookup_matched(answer: Answer) -> bool:
    """The terms lookup read s1's tags (``alpha``): doc 1 matches."""
    return "1" in hit_ids(answer)


def msearch_leaked(answer: Answer) -> bool:
    return any(
        "1" in {h["_id"] for h in r.get("hits", {}).get("hits", [])} or SECRET_WORD in str(r)
        for r in answer.json()["responses"]
    )


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: Any  # a JSON value, or bytes sent as NDJSON
    leaks: Callable[[Answer], bool] | None = None  # None: the test cluster does not support it
    media: str = NDJSON  # for a bytes body

    async def send(self, base: str) -> Answer:
        if isinstance(self.body, bytes):
            return await call(
                self.method, base + self.path, data=self.body, headers={"Content-Type": self.media}
            )
        return await call(self.method, base + self.path, self.body)


def query(q: dict[str, Any]) -> dict[str, Any]:
    return {"query": q}


def lines(*objects: Any) -> bytes:
    return b"".join((b"" if o == "" else json.dumps(o).encode()) + b"\n" for o in objects)


MATCH_SECRET = query({"match": {"text": SECRET_WORD}})
WRAPPED = base64.b64encode(json.dumps(LOOKUP).encode()).decode()

BYPASSES = [
    # _msearch headers: the cluster takes `index` and `indices` (MultiSearchRequest).
    Case(
        "msearch-indices-key", "POST", "/docs/_msearch", lines({"indices": "secret"}, MATCH_SECRET)
    ),
    Case(
        "msearch-index-list",
        "POST",
        "/docs/_msearch",
        lines({"index": ["docs", "secret"]}, MATCH_SECRET),
    ),
    Case(
        "msearch-all",
        "POST",
        "/docs/_msearch",
        lines({"index": "_all"}, MATCH_SECRET),
        msearch_leaked,
    ),
    # A blank line is an empty header to the cluster: the pairing shifts by one.
    Case(
        "msearch-blank-line",
        "POST",
        "/docs/_msearch",
        lines({}, "", {"index": "secret"}, MATCH_SECRET),
    ),
    Case(
        "msearch-leading-blank-line",
        "POST",
        "/docs/_msearch",
        lines("", {"index": "secret"}, MATCH_SECRET),
        msearch_leaked,
    ),
    Case(
        "msearch-terms-lookup", "POST", "/docs/_msearch", lines({}, query(LOOKUP)), msearch_leaked
    ),
    Case(
        "mtermvectors-docs-index",
        "POST",
        "/docs/_mtermvectors",
        {"docs": [{"_index": "secret", "_id": "s1", "fields": ["text"]}]},
        secret_shown,
    ),
    Case(
        "mget-docs-index",
        "POST",
        "/docs/_mget",
        {"docs": [{"_index": "secret", "_id": "s1"}]},
        secret_shown,
    ),
    Case("search-terms-lookup", "POST", "/docs/_search", query(LOOKUP), lookup_matched),
    Case(
        "count-terms-lookup",
        "POST",
        "/docs/_count",
        query(LOOKUP),
        lambda a: a.json()["count"] == 1,
    ),
    Case("validate-terms-lookup", "POST", "/docs/_validate/query?explain=true", query(LOOKUP)),
    Case(
        "explain-terms-lookup",
        "POST",
        "/docs/_explain/1",
        query(LOOKUP),
        lambda a: a.json()["matched"] is True,
    ),
    Case("delete-by-query-terms-lookup", "POST", "/docs/_delete_by_query", query(LOOKUP)),
    Case("update-by-query-terms-lookup", "POST", "/docs/_update_by_query", query(LOOKUP)),
    Case("async-search-terms-lookup", "POST", "/docs/_async_search", query(LOOKUP)),
    Case(
        "more-like-this-like-index",
        "POST",
        "/docs/_search",
        query(
            {
                "more_like_this": {
                    "fields": ["text"],
                    "like": [{"_index": "secret", "_id": "s1"}],
                    "min_term_freq": 1,
                    "min_doc_freq": 1,
                }
            }
        ),
        lambda a: "2" in hit_ids(a),  # shares the word "classified" with s1
    ),
    Case(
        "more-like-this-unlike-index",
        "POST",
        "/docs/_search",
        query(
            {
                "more_like_this": {
                    "fields": ["text"],
                    "like": "memo",
                    "unlike": [{"_index": "secret", "_id": "s1"}],
                }
            }
        ),
    ),
    Case(
        "geo-shape-indexed-shape",
        "POST",
        "/docs/_search",
        query(
            {
                "geo_shape": {
                    "loc": {"indexed_shape": {"index": "secret", "id": "s1", "path": "loc"}}
                }
            }
        ),
    ),
    Case(
        "shape-indexed-shape",
        "POST",
        "/docs/_search",
        query(
            {"shape": {"loc": {"indexed_shape": {"index": "secret", "id": "s1", "path": "loc"}}}}
        ),
    ),
    Case(
        "percolate-index",
        "POST",
        "/docs/_search",
        query({"percolate": {"field": "q", "index": "secret", "id": "s1"}}),
    ),
    Case(
        "pinned-docs-index",
        "POST",
        "/docs/_search",
        query(
            {"pinned": {"docs": [{"_index": "secret", "_id": "s1"}], "organic": {"match_all": {}}}}
        ),
    ),
    Case(
        "lookup-runtime-field",
        "POST",
        "/docs/_search",
        {
            "runtime_mappings": {
                "leak": {
                    "type": "lookup",
                    "target_index": "secret",
                    "input_field": "tags",
                    "target_field": "tags",
                    "fetch_fields": ["text"],
                }
            },
            "fields": ["leak"],
        },
    ),
    Case(
        "lookup-in-bool",
        "POST",
        "/docs/_search",
        query({"bool": {"filter": [{"bool": {"should": [LOOKUP]}}]}}),
    ),
    Case("lookup-in-post-filter", "POST", "/docs/_search", {"post_filter": LOOKUP}),
    Case("wrapper-query", "POST", "/docs/_search", query({"wrapper": {"query": WRAPPED}})),
    Case("wrapper-not-base64", "POST", "/docs/_search", query({"wrapper": {"query": "%%%"}})),
    Case(
        "rule-query-stored",
        "POST",
        "/docs/_search",
        query({"rule": {"ruleset_ids": ["r"], "match_criteria": {}, "organic": {"match_all": {}}}}),
    ),
    Case(
        "source-parameter",
        "GET",
        "/docs/_search?source_content_type=application/json&source="
        + quote(json.dumps(query(LOOKUP))),
        None,
    ),
    Case(
        "escaped-key",
        "POST",
        "/docs/_search",
        b'{"query": {"terms": {"tags": {"\\u0069ndex": "secret", "id": "s1", "path": "tags"}}}}',
    ),
    Case(
        "duplicate-key",
        "POST",
        "/docs/_mget",
        b'{"docs": [{"_index": "docs", "_index": "secret", "_id": "s1"}]}',
    ),
    Case(
        "json-comment",
        "POST",
        "/docs/_search",
        b'{"query": /* x */ {"terms": {"tags": {"index": "secret", "id": "s1", "path": "tags"}}}}',
    ),
    Case("remote-cluster-name", "POST", "/docs/_msearch", lines({"index": "docs:secret"}, {})),
    Case("date-math-name", "GET", "/%3Csecret-%7Bnow%2Fd%7D%3E/_search", None),
    Case(
        "source-parameter-twice",
        "GET",
        "/docs/_count?source_content_type=application/json"
        f"&source={quote(json.dumps(query({'match_all': {}})))}"
        f"&source={quote(json.dumps(query(LOOKUP)))}",
        None,
    ),
    # JSON to the guard, YAML (a superset, other rules) to the cluster: not read, refused.
    Case(
        "yaml-body",
        "POST",
        "/docs/_search",
        b'{"query": {"match_all": {}}}',
        media="application/yaml",
    ),
    Case("cbor-body", "POST", "/docs/_count", b"{}", media="application/vnd.elasticsearch+cbor"),
    Case("index-parameter", "GET", "/docs/_search?index=secret", None),
    # Endpoints whose bodies the guard does not read are refused (deny by default).
    Case("search-template", "POST", "/docs/_search/template", {"source": query(LOOKUP)}),
    Case(
        "msearch-template", "POST", "/docs/_msearch/template", lines({}, {"source": query(LOOKUP)})
    ),
    Case("rank-eval", "POST", "/docs/_rank_eval", {"requests": []}),
    Case(
        "mapping-with-lookup",
        "PUT",
        "/docs/_mapping",
        {"runtime": {"x": {"type": "lookup", "target_index": "secret"}}},
    ),
    Case("create-with-alias-filter", "PUT", "/docs-new", {"aliases": {"a": {"filter": LOOKUP}}}),
]


@pytest.mark.parametrize("case", BYPASSES, ids=[c.name for c in BYPASSES])
async def test_bypass_is_refused(cluster: str, gateway_url: str, case: Case) -> None:
    got = await case.send(gateway_url)
    assert got.status == 403, got.body[:300]
    assert got.es_error() == "security_exception"
    assert not secret_shown(got)
    if case.leaks is not None:
        direct = await case.send(cluster)
        assert direct.status == 200, direct.body[:300]
        assert case.leaks(direct), "the cluster no longer leaks this way: the test shows nothing"


ALLOWED = [
    Case("search", "POST", "/docs/_search", query({"match": {"text": "classified"}})),
    Case(
        "count",
        "POST",
        "/docs/_count",
        query({"terms": {"tags": {"index": "docs", "id": "1", "path": "tags"}}}),
    ),
    Case(
        "lookup-in-allowed",
        "POST",
        "/docs/_search",
        query({"terms": {"tags": {"index": "docs", "id": "1", "path": "tags"}}}),
    ),
    Case(
        "msearch",
        "POST",
        "/docs/_msearch",
        lines({}, query({"match_all": {}}), {"index": "docs"}, {"size": 1}),
    ),
    Case("mget", "POST", "/docs/_mget", {"docs": [{"_id": "1"}, {"_index": "docs", "_id": "2"}]}),
    Case(
        "mtermvectors",
        "POST",
        "/docs/_mtermvectors",
        {"docs": [{"_index": "docs", "_id": "1", "fields": ["text"]}]},
    ),
    Case("explain", "POST", "/docs/_explain/1", query({"match": {"text": "hello"}})),
    Case("get", "GET", "/docs/_doc/1", None),
    Case("mapping", "GET", "/docs/_mapping", None),
    Case(
        "source-parameter",
        "GET",
        "/docs/_count?source_content_type=application/json&source="
        + quote(json.dumps(query({"match_all": {}}))),
        None,
    ),
]


def comparable(case: Case, answer: Answer) -> Any:
    """What must agree between the gateway's answer and the cluster's (the gateway
    reranks and re-times searches)."""
    body = answer.json()
    if "hits" in body:
        return sorted(h["_id"] for h in body["hits"]["hits"])
    if "responses" in body:
        return [sorted(h["_id"] for h in r["hits"]["hits"]) for r in body["responses"]]
    body.pop("took", None)
    return body


@pytest.mark.parametrize("case", ALLOWED, ids=[c.name for c in ALLOWED])
async def test_allowed_requests_answer_like_the_cluster(
    cluster: str, gateway_url: str, case: Case
) -> None:
    got, direct = await case.send(gateway_url), await case.send(cluster)
    assert (got.status, direct.status) == (200, 200), got.body[:300]
    assert comparable(case, got) == comparable(case, direct)


async def test_official_client_through_the_guard(cluster: str, gateway_url: str) -> None:
    """The official client's framing (vendor media types, NDJSON) passes the guard; a
    lookup into the denied index comes back to it as a 403."""
    async with AsyncElasticsearch(gateway_url) as es:
        found = await es.search(index="docs", query={"match": {"text": "classified"}})
        assert [h["_id"] for h in found["hits"]["hits"]] == ["2"]
        assert (await es.count(index="docs", query={"match_all": {}}))["count"] == 2
        many = await es.msearch(index="docs", searches=[{}, {"query": {"match_all": {}}}])
        assert many["responses"][0]["hits"]["total"]["value"] == 2
        assert (await es.mget(index="docs", ids=["1"]))["docs"][0]["found"] is True
        assert (await es.get(index="docs", id="1"))["_source"]["tags"] == ["alpha"]
        with pytest.raises(AuthorizationException):
            await es.search(index="docs", query=LOOKUP)
        with pytest.raises(AuthorizationException):
            await es.msearch(index="docs", searches=[{"indices": "secret"}, {}])
