"""Reranked searches through the whole app: what goes upstream, what comes back, and why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from gateway.es.body import dump_pretty
from gateway.model.fake import FakeEncoder
from tests.doubles.corpora import WALL_DOCS as DOCS
from tests.doubles.corpora import WALL_SEARCH as SEARCH
from tests.doubles.encoders import FailingEncoder, GatedEncoder
from tests.doubles.gateway import GatewayFactory, Start
from tests.doubles.upstream import Canned, call
from tests.doubles.upstream import ScriptedUpstream as Scripted

# FakeEncoder's order of the upstream's first five (the window): word overlap with QUERY.
RERANKED = ["d3", "d2", "d1", "d4", "d0"]


async def test_reranked_page_and_what_went_upstream(upstream: Scripted, start: Start) -> None:
    url = await start()
    body = {
        **SEARCH,
        "size": 3,
        "_source": ["title"],
        "ext": {"rerank": {"first_stage_score": False}},
    }
    got = await call("POST", f"{url}/docs/_search?rerank=true&request_cache=false", body=body)
    assert got.status == 200
    assert got.ids() == RERANKED[:3]
    assert (got.headers["X-Rerank"], got.headers.get("X-Rerank-Reason")) == ("full", None)
    assert got.headers["X-Elastic-Product"] == "Elasticsearch"
    hits = got.json()["hits"]
    assert hits["max_score"] == hits["hits"][0]["_score"]
    assert hits["total"] == {"value": len(DOCS), "relation": "eq"}
    assert all("fields" not in h for h in hits["hits"])
    seen = upstream.last("/docs/_search")
    assert seen.path_qs == "/docs/_search?request_cache=false"
    assert seen.json() == {
        **SEARCH,
        "from": 0,
        "size": 5,
        "_source": ["title"],
        "fields": ["title", "text"],
    }


async def test_get_with_uri_parameters(upstream: Scripted, start: Start) -> None:
    url = await start()
    got = await call("GET", f"{url}/docs/_search?q=berlin%20wall&size=2&from=1&rerank=true")
    assert got.ids() == RERANKED[1:3]
    seen = upstream.last("/docs/_search")
    assert seen.path_qs == "/docs/_search?q=berlin%20wall"
    assert seen.json() == {"from": 0, "size": 5, "fields": ["title", "text"]}
    assert seen.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ({"from": 0, "size": 2}, RERANKED[:2]),
        ({"from": 2, "size": 2}, RERANKED[2:4]),
        ({"from": 3, "size": 4}, [*RERANKED[3:], "d5", "d6"]),  # straddles the window edge
        ({"from": 5, "size": 2}, ["d5", "d6"]),  # beyond the window: upstream order
    ],
)
async def test_pages(start: Start, page: dict[str, int], expected: list[str]) -> None:
    url = await start()
    got = await call("POST", f"{url}/docs/_search", body={**SEARCH, **page})
    assert got.ids() == expected
    beyond = page["from"] >= 5
    assert got.headers["X-Rerank"] == ("skipped" if beyond else "full")


@pytest.mark.parametrize(
    "ask",
    [
        {"headers": {"X-Rerank": "off"}},
        {"params": "?rerank=false"},
    ],
)
async def test_opt_out_still_strips_the_gateways_own_parts(
    upstream: Scripted, start: Start, ask: dict[str, Any]
) -> None:
    url = await start()
    body = {**SEARCH, "ext": {"rerank": {"window": 3}}}
    got = await call(
        "POST", f"{url}/docs/_search{ask.get('params', '')}", body=body, headers=ask.get("headers")
    )
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == ("skipped", "opted_out")
    assert got.ids() == [d["_id"] for d in DOCS]
    seen = upstream.last("/docs/_search")
    assert seen.path_qs == "/docs/_search"
    assert seen.json() == SEARCH


async def test_bodies_without_the_gateways_ext_go_byte_for_byte(
    upstream: Scripted, start: Start
) -> None:
    url = await start()
    raw = b'{"query" : {"match_all" : {}},   "ext": {"other": 1}}'
    await call(
        "POST", f"{url}/docs/_search", data=raw, headers={"Content-Type": "application/json"}
    )
    assert upstream.last("/docs/_search").body == raw


async def test_header_and_parameter_take_the_same_values(start: Start) -> None:
    url = await start(rerank={"opt_in": True})
    asked = {"true": "full", "On": "full", "1": "full", "FALSE": "skipped", "off": "skipped"}
    for value, outcome in {**asked, "0": "skipped"}.items():
        by_header = await call("POST", f"{url}/docs/_search", SEARCH, headers={"X-Rerank": value})
        by_param = await call("POST", f"{url}/docs/_search?rerank={value}", SEARCH)
        for got in (by_header, by_param):
            assert (got.status, got.headers["X-Rerank"]) == (200, outcome), value
    bare = await call("POST", f"{url}/docs/_search?rerank", SEARCH)  # a flag, as in ES
    assert bare.headers["X-Rerank"] == "full"


@pytest.mark.parametrize("value", ["maybe", "yes", "enabled", "", "full"])
async def test_other_rerank_values_are_a_400(upstream: Scripted, start: Start, value: str) -> None:
    url = await start()
    by_header = await call("POST", f"{url}/docs/_search", SEARCH, headers={"X-Rerank": value})
    answers = [by_header]
    if value:  # a bare ?rerank is the flag, true
        answers.append(await call("POST", f"{url}/docs/_search?rerank={value}", SEARCH))
    for got, where in zip(answers, ("header [X-Rerank]", "parameter [rerank]"), strict=False):
        assert got.status == 400
        assert got.es_error() == "illegal_argument_exception"
        reason = got.json()["error"]["reason"]
        assert reason.startswith(f"Failed to parse value [{value}] of {where} as only [true]")
    assert not [s for s in upstream.seen if s.path.endswith("_search")]


@pytest.mark.parametrize(
    ("rerank", "error_type", "reason"),
    [
        ({"windows": 3}, "x_content_parse_exception", "[rerank] unknown field [windows]"),
        ({"window": 0}, "illegal_argument_exception", "[ext.rerank.window] must be a positive"),
        ({"window": -1}, "illegal_argument_exception", "[ext.rerank.window] must be a positive"),
    ],
)
async def test_bad_rerank_options_are_a_400(
    upstream: Scripted, start: Start, rerank: dict[str, Any], error_type: str, reason: str
) -> None:
    url = await start()
    got = await call("POST", f"{url}/docs/_search", {**SEARCH, "ext": {"rerank": rerank}})
    assert got.status == 400
    assert got.es_error() == error_type
    assert got.json()["error"]["reason"].startswith(reason)
    assert not [s for s in upstream.seen if s.path.endswith("_search")]


async def test_msearch_with_mixed_sub_searches(upstream: Scripted, start: Start) -> None:
    url = await start(rerank={"indices": ["docs"]})
    subs = [
        ({"index": "docs"}, {**SEARCH, "size": 2, "ext": {"rerank": {}}}),
        ({"index": "docs"}, {**SEARCH, "size": 2, "sort": [{"year": "desc"}]}),
        ({"index": "logs"}, {**SEARCH, "size": 2}),
        ({}, {**SEARCH, "size": 2}),
    ]
    data = b"".join(json.dumps(x).encode() + b"\n" for pair in subs for x in pair)
    got = await call(
        "POST", f"{url}/docs/_msearch", data=data, headers={"Content-Type": "application/x-ndjson"}
    )
    assert got.status == 200
    answers = got.json()["responses"]
    ids = [[h["_id"] for h in a["hits"]["hits"]] for a in answers]
    assert ids == [RERANKED[:2], ["d0", "d1"], ["d0", "d1"], RERANKED[:2]]
    assert got.headers["X-Rerank"] == "partial"
    assert got.headers["X-Rerank-Reason"] == "index_not_configured,sorted"
    assert got.headers["X-Rerank-Each"] == "full,skipped,skipped,full"
    assert got.headers["X-Rerank-Each-Reason"] == "-,sorted,index_not_configured,-"
    sent = [json.loads(line) for line in upstream.last("/docs/_msearch").body.splitlines()]
    assert [s.get("size") for s in sent[1::2]] == [5, 2, 2, 5]
    assert all("ext" not in s for s in sent[1::2])


async def test_msearch_bad_option_fails_only_its_sub_search(
    upstream: Scripted, start: Start
) -> None:
    """Like the cluster with a sub-search it cannot parse: an error in that slot, 200."""
    url = await start()
    subs = [
        ({}, {**SEARCH, "size": 2}),
        ({}, {**SEARCH, "size": 2, "ext": {"rerank": {"window": "wide"}}}),
        ({}, {**SEARCH, "size": 1}),
    ]
    data = b"".join(json.dumps(x).encode() + b"\n" for pair in subs for x in pair)
    headers = {"Content-Type": "application/x-ndjson"}
    got = await call("POST", f"{url}/docs/_msearch", data=data, headers=headers)
    assert got.status == 200
    first, refused, last = got.json()["responses"]
    assert [h["_id"] for h in first["hits"]["hits"]] == RERANKED[:2]
    assert refused["status"] == 400
    assert refused["error"]["type"] == "illegal_argument_exception"
    assert "ext.rerank.window" in refused["error"]["reason"]
    assert [h["_id"] for h in last["hits"]["hits"]] == RERANKED[:1]
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == (
        "partial",
        "invalid_option",
    )
    sent = [json.loads(line) for line in upstream.last("/docs/_msearch").body.splitlines()]
    assert [s.get("size") for s in sent[1::2]] == [5, 5]  # the refused one was not sent


async def test_msearch_with_every_sub_search_refused(upstream: Scripted, start: Start) -> None:
    url = await start()
    data = b'{}\n{"query":{"match_all":{}},"ext":{"rerank":[]}}\n'
    headers = {"Content-Type": "application/x-ndjson"}
    got = await call("POST", f"{url}/docs/_msearch", data=data, headers=headers)
    assert got.status == 200
    (refused,) = got.json()["responses"]
    assert refused["error"]["reason"] == "[ext.rerank] must be an object"
    assert not [s for s in upstream.seen if "_msearch" in s.path_qs]


async def test_opted_out_msearch_strips_ext(upstream: Scripted, start: Start) -> None:
    url = await start()
    data = b'{}\n{"query":{"match_all":{}},"ext":{"rerank":{"window":3}}}\n'
    got = await call(
        "POST",
        f"{url}/_msearch?rerank=false",
        data=data,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert got.headers["X-Rerank-Reason"] == "opted_out"
    assert upstream.last("/_msearch").body == b'{}\n{"query":{"match_all":{}}}\n'


@pytest.mark.parametrize(
    ("data", "sent"),
    [
        # No ext.rerank: the bytes go upstream exactly as the client wrote them.
        (b'{ "query" : {"match_all":{}} }', b'{ "query" : {"match_all":{}} }'),
        # ext.rerank spelled with a JSON escape is still the gateway's and still removed.
        (b'{"query":{"match_all":{}},"ext":{"r\\u0065rank":{"window":3}}}', None),
    ],
)
async def test_opted_out_search_forwards_the_body(
    upstream: Scripted, start: Start, data: bytes, sent: bytes | None
) -> None:
    url = await start()
    headers = {"Content-Type": "application/json", "X-Rerank": "off"}
    got = await call("POST", f"{url}/docs/_search", data=data, headers=headers)
    assert got.headers["X-Rerank-Reason"] == "opted_out"
    seen = upstream.last("/docs/_search")
    if sent is not None:
        assert seen.body == sent
    else:
        assert seen.json() == {"query": {"match_all": {}}}


SKIPS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (reason, request, gateway settings)
    ("opted_out", {"headers": {"X-Rerank": "off"}}, {}),
    ("disabled", {}, {"rerank": {"enabled": False}}),
    ("not_opted_in", {}, {"rerank": {"opt_in": True}}),
    ("index_not_configured", {}, {"rerank": {"indices": ["other*"]}}),
    ("index_not_configured", {}, {"rerank": {"indices": ["*", "-docs"]}}),
    ("unreadable_body", {"data": b"{not json", "ctype": "application/json"}, {}),
    ("unreadable_body", {"data": b'{"size": 1, "size": 2}', "ctype": "application/json"}, {}),
    ("unreadable_body", {"data": json.dumps(SEARCH).encode(), "ctype": "text/plain"}, {}),
    ("unreadable_body", {"params": "?source=x"}, {}),
    ("unreadable_body", {"body": {**SEARCH, "size": "many"}}, {}),
    ("size_zero", {"body": {**SEARCH, "size": 0}}, {}),
    ("paginated_by_cursor", {"params": "?scroll=1m"}, {}),
    ("paginated_by_cursor", {"body": {**SEARCH, "search_after": [3.0]}}, {}),
    ("sorted", {"body": {**SEARCH, "sort": ["title"]}}, {}),
    ("sorted", {"params": "?sort=title:asc"}, {}),
    ("beyond_window", {"body": {**SEARCH, "from": 7}}, {}),
    ("no_source", {"body": {**SEARCH, "stored_fields": "_none_"}}, {}),
    ("no_query_text", {"body": {"query": {"match_all": {}}}}, {}),
]


@pytest.mark.parametrize(("reason", "request_", "settings"), SKIPS)
async def test_skip_reasons(
    upstream: Scripted,
    start: Start,
    reason: str,
    request_: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    url = await start(**settings)
    headers = dict(request_.get("headers", {}))
    data = request_.get("data")
    if data is not None:
        headers["Content-Type"] = request_["ctype"]
    body = request_.get("body", SEARCH) if data is None else None
    got = await call(
        "POST",
        f"{url}/docs/_search{request_.get('params', '')}",
        body=body,
        data=data,
        headers=headers,
    )
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == ("skipped", reason)
    sent = upstream.last("/docs/_search").body
    assert sent == (data if data is not None else json.dumps(body).encode())


async def test_hits_without_text_skip(upstream: Scripted, start: Start) -> None:
    url = await start()
    answer = {
        "hits": {
            "total": {"value": 2},
            "hits": [{"_id": "a", "_score": 2.0}, {"_id": "b", "_score": 1.0}],
        }
    }
    upstream.script("/docs/_search", Canned(body=json.dumps(answer).encode()))
    got = await call("POST", f"{url}/docs/_search", body=SEARCH)
    assert got.ids() == ["a", "b"]
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == ("skipped", "no_doc_text")


async def test_some_hits_without_text_is_partial(upstream: Scripted, start: Start) -> None:
    url = await start()
    hits = [
        {"_id": "a", "_score": 3.0},
        {"_id": "b", "_score": 2.0, "_source": {"text": "paris"}},
        {"_id": "c", "_score": 1.0, "_source": {"text": "the berlin wall"}},
    ]
    upstream.script("/docs/_search", Canned(body=json.dumps({"hits": {"hits": hits}}).encode()))
    got = await call("POST", f"{url}/docs/_search", body=SEARCH)
    assert got.ids() == ["c", "b", "a"]
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == ("partial", "no_doc_text")


async def test_non_json_upstream_answer_is_relayed(upstream: Scripted, start: Start) -> None:
    url = await start()
    upstream.script(
        "/docs/_search",
        Canned(body=b"---\nhits: []\n", headers={"Content-Type": "application/yaml"}),
    )
    got = await call("POST", f"{url}/docs/_search", body=SEARCH)
    assert got.body == b"---\nhits: []\n"
    assert got.headers["X-Rerank-Reason"] == "upstream_body"


async def _degraded(
    upstream: Scripted, gateway: GatewayFactory, encoder: FakeEncoder, **sections: Any
) -> Any:
    from gateway.settings import Settings

    values = {
        "upstream": {"urls": [upstream.url], "flavor": "elasticsearch"},
        "rerank": {"window": 5, **sections.pop("rerank", {})},
        **sections,
    }
    url = await gateway(Settings.model_validate(values), encoder=encoder)
    return await call("POST", f"{url}/docs/_search", body={**SEARCH, "size": 5})


async def test_model_error_keeps_upstream_order(
    upstream: Scripted, gateway: GatewayFactory
) -> None:
    got = await _degraded(upstream, gateway, FailingEncoder())
    assert got.status == 200
    assert got.ids() == [d["_id"] for d in DOCS[:5]]
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == ("skipped", "model_error")


async def test_overload_keeps_upstream_order(upstream: Scripted, gateway: GatewayFactory) -> None:
    got = await _degraded(upstream, gateway, FakeEncoder(), batcher={"max_queue_pairs": 3})
    assert got.status == 200
    assert got.ids() == [d["_id"] for d in DOCS[:5]]
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == ("skipped", "overloaded")


class Gated(GatedEncoder):
    """Stuck on the document mentioning Germany, d2 (a model run that never ends in time)."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_id = FakeEncoder().encode([("", "germany")])[0].ids[2]


@pytest.fixture
def gated() -> Any:
    encoder = Gated()
    yield encoder
    encoder.gate.set()


@pytest.mark.parametrize(("pairs", "status"), [(64, "skipped"), (1, "partial")])
async def test_deadline(
    upstream: Scripted, gateway: GatewayFactory, gated: Gated, pairs: int, status: str
) -> None:
    got = await _degraded(
        upstream, gateway, gated, rerank={"timeout_s": 1.0}, batcher={"max_batch_pairs": pairs}
    )
    assert got.status == 200
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == (status, "deadline")
    if status == "skipped":
        assert got.ids() == [d["_id"] for d in DOCS[:5]]
    else:  # d0, d1 scored (one pair a run); d2 stuck, d3 and d4 never run: they keep places
        assert got.ids() == ["d1", "d0", "d2", "d3", "d4"]


async def test_pretty_reranked_answers(start: Start) -> None:
    url = await start()
    plain = await call("POST", f"{url}/docs/_search", body={**SEARCH, "size": 2})
    got = await call("POST", f"{url}/docs/_search?pretty", body={**SEARCH, "size": 2})
    assert got.ids() == plain.ids()
    expected = dump_pretty({**plain.json(), "took": got.json()["took"]})
    assert got.body == expected
    assert got.body.startswith(b'{\n  "took" : ') and got.body.endswith(b"\n}\n")
    compact = await call("POST", f"{url}/docs/_search?pretty=false", body={**SEARCH, "size": 2})
    assert b"\n" not in compact.body


async def test_pretty_msearch(start: Start) -> None:
    url = await start()
    data = b"{}\n" + json.dumps({**SEARCH, "size": 1}).encode() + b"\n"
    got = await call(
        "POST",
        f"{url}/_msearch?pretty=true",
        data=data,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert got.body.startswith(b'{\n  "took" : ')
    assert got.json()["responses"][0]["hits"]["hits"][0]["_id"] == RERANKED[0]


async def test_pretty_gateway_errors(start: Start) -> None:
    url = await start()
    got = await call("POST", f"{url}/docs/_search?pretty&rerank=maybe", body=SEARCH)
    assert got.status == 400
    assert got.body == dump_pretty(got.json())
    assert got.body.startswith(b'{\n  "error" : {\n    "root_cause" : [\n      {\n')


async def test_search_after_page_the_cluster_refuses_comes_back_as_its_error(
    upstream: Scripted, start: Start
) -> None:
    """Past the window the cluster serves the cursor page; its refusal is the answer."""
    refusal = {"error": {"type": "illegal_argument_exception", "reason": "no"}, "status": 400}

    async def refuse_cursors(request: web.Request) -> web.StreamResponse | None:
        body = json.loads(await request.read() or b"{}")
        if "search_after" not in body:
            return None
        return await Canned(400, json.dumps(refusal).encode())(request)

    upstream.behaviour = refuse_cursors
    url = await start()
    body = {**SEARCH, "size": 2, "sort": ["_score"], "search_after": [-100.0]}
    got = await call("POST", f"{url}/docs/_search?filter_path=hits", body)
    assert got.status == 400 and got.json() == refusal  # not trimmed, as ES does with errors
    assert got.headers["X-Rerank-Reason"] == "upstream_status"
    first, second = upstream.seen[-2:]
    assert "search_after" not in first.json() and first.json()["size"] == 7
    assert "filter_path" not in first.path_qs and "filter_path" not in second.path_qs
