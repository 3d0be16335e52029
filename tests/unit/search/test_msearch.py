"""``_msearch`` through the pipeline: each sub-search in its slot, the outcome headers."""

from __future__ import annotations

import json

from yarl import URL

from gateway.search.pipeline import SearchFlow
from gateway.search.request import SearchRequest

ITALY = {"query": {"match": {"text": "capital of Italy"}}, "size": 2}


async def test_msearch_answers_each_sub_search_in_its_slot(flow: SearchFlow) -> None:
    head = json.dumps({"index": "docs"})
    bad = {**ITALY, "ext": {"rerank": {"windw": 3}}}
    lines = [head, json.dumps(ITALY), head, json.dumps(bad), head, json.dumps({**ITALY, "size": 0})]
    raw = ("\n".join(lines) + "\n").encode()
    headers = {"Content-Type": "application/x-ndjson"}
    request = SearchRequest("POST", URL("/_msearch"), None, headers, raw)
    result = await flow.msearch(request)
    assert result.status == 200
    assert result.headers["X-Rerank-Each"] == "full,skipped,skipped"
    assert result.headers["X-Rerank-Each-Reason"] == "-,invalid_option,size_zero"
    assert (result.rerank, result.reason) == ("partial", "invalid_option,size_zero")
    responses = json.loads(result.body)["responses"]
    assert [h["_id"] for h in responses[0]["hits"]["hits"]] == ["d3", "d1"]
    assert responses[1]["error"]["type"] == "x_content_parse_exception"


async def test_a_sub_search_whose_index_is_no_name_goes_to_the_cluster_as_is(
    flow: SearchFlow,
) -> None:
    lines = [json.dumps({"index": 5}), json.dumps(ITALY), json.dumps({"index": "docs"})]
    raw = ("\n".join([*lines, json.dumps(ITALY)]) + "\n").encode()
    headers = {"Content-Type": "application/x-ndjson"}
    result = await flow.msearch(SearchRequest("POST", URL("/_msearch"), None, headers, raw))
    assert result.headers["X-Rerank-Each"] == "skipped,full"
    assert result.headers["X-Rerank-Each-Reason"] == "unreadable_body,-"
