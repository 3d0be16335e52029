"""The pairs one request may score (RERANK__MAX_REQUEST_PAIRS): past it, the cluster's order
comes back with ``X-Rerank-Reason: too_many_pairs`` and nothing was widened."""

from __future__ import annotations

import json

from gateway.model.fake import FakeEncoder
from gateway.settings import Settings
from tests.doubles.corpora import WALL_DOCS as DOCS
from tests.doubles.corpora import WALL_SEARCH as SEARCH
from tests.doubles.gateway import GatewayFactory, Start
from tests.doubles.upstream import Answer, call
from tests.doubles.upstream import ScriptedUpstream as Scripted

NDJSON = {"Content-Type": "application/x-ndjson"}
UPSTREAM_ORDER = [d["_id"] for d in DOCS]


def msearch(subs: int, **search: object) -> bytes:
    return b"".join(
        b"{}\n" + json.dumps({**SEARCH, **search}).encode() + b"\n" for _ in range(subs)
    )


async def test_a_window_past_the_budget_is_not_reranked(upstream: Scripted, start: Start) -> None:
    url = await start(rerank={"window": 5, "max_request_pairs": 6})
    within = await call("POST", f"{url}/docs/_search", body={**SEARCH, "size": 3})
    assert within.headers["X-Rerank"] == "full"
    wide = {**SEARCH, "size": 3, "ext": {"rerank": {"window": 7}}}
    got = await call("POST", f"{url}/docs/_search", body=wide)
    assert got.status == 200
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == (
        "skipped",
        "too_many_pairs",
    )
    assert got.ids() == UPSTREAM_ORDER[:3]
    sent = json.loads(upstream.last("/docs/_search").body)
    assert sent == {**SEARCH, "size": 3}  # as sent, minus the gateway's ext: not widened


async def test_an_msearch_past_the_budget_goes_as_sent(upstream: Scripted, start: Start) -> None:
    url = await start(rerank={"window": 5, "max_request_pairs": 10})
    within = await call("POST", f"{url}/docs/_msearch", data=msearch(2, size=2), headers=NDJSON)
    assert within.headers["X-Rerank"] == "full"
    got = await call("POST", f"{url}/docs/_msearch", data=msearch(3, size=2), headers=NDJSON)
    assert got.status == 200
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == (
        "skipped",
        "too_many_pairs",
    )
    answers = got.json()["responses"]
    assert [[h["_id"] for h in a["hits"]["hits"]] for a in answers] == [UPSTREAM_ORDER[:2]] * 3
    assert upstream.last("/docs/_msearch").body == msearch(3, size=2)  # byte for byte


async def test_more_sub_searches_than_pairs_are_not_read(upstream: Scripted, start: Start) -> None:
    url = await start(rerank={"max_request_pairs": 4})
    data = msearch(5, size=1) + b"{}\n{not json}\n"
    got = await call("POST", f"{url}/docs/_msearch", data=data, headers=NDJSON)
    # Past the budget by count alone: not parsed, so the broken line is the cluster's to judge.
    assert got.headers["X-Rerank-Reason"] == "too_many_pairs"
    assert upstream.last("/docs/_msearch").body == data


async def test_chunks_draw_on_the_same_budget(gateway: GatewayFactory) -> None:
    words = " ".join(f"berlin{i} wall" for i in range(12))  # 24 words: 3 chunks of 8
    docs = [{"_id": f"d{i}", "title": "", "text": f"{words} {i}"} for i in range(5)]
    chunked = {"long_docs": "chunk", "chunk_tokens": 8, "chunk_overlap": 0}
    async with Scripted(docs) as upstream:

        async def search(budget: int) -> Answer:
            settings = Settings.model_validate(
                {
                    "upstream": {"urls": [upstream.url], "flavor": "elasticsearch"},
                    "rerank": {"window": 5, "max_request_pairs": budget},
                    "relevance": chunked,
                }
            )
            url = await gateway(settings, encoder=FakeEncoder())
            return await call("POST", f"{url}/docs/_search", body={**SEARCH, "size": 5})

        assert (await search(20)).headers["X-Rerank"] == "full"  # 5 hits x 3 chunks fit
        got = await search(10)  # the window fits, its chunks do not
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == (
        "skipped",
        "too_many_pairs",
    )
    assert got.ids() == [d["_id"] for d in docs]
