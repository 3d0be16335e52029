"""MODEL__BACKEND=pool: a search's pairs split over remote scorers, with failover and breakers.

The backends are other gateways (FakeEncoder) serving the rerank API, or
scripted Cohere-format servers that can be made to fail, hang or come back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.model.fake import FakeEncoder
from gateway.rerank.reranker import sigmoid
from gateway.settings import Settings
from tests.doubles.corpora import WALL_QUERY as QUERY
from tests.doubles.corpora import WALL_SEARCH as SEARCH
from tests.doubles.gateway import GatewayFactory
from tests.doubles.net import free_port
from tests.doubles.upstream import ScriptedUpstream as Scripted
from tests.doubles.upstream import assert_degraded, call
from tests.doubles.waits import wait_for


def settings(upstream: Scripted, **model: Any) -> Settings:
    return Settings.model_validate(
        {"upstream": {"urls": [upstream.url]}, "rerank": {"window": 5}, "model": model}
    )


def scores(answer: Any) -> list[tuple[str, float]]:
    return [(h["_id"], h["_score"]) for h in answer.json()["hits"]["hits"]]


@pytest.mark.parametrize(("protocol", "path"), [("cohere", "/v1/rerank"), ("tei", "/rerank")])
async def test_a_pool_of_gateways_scores_like_the_model_in_process(
    upstream: Scripted, gateway: GatewayFactory, protocol: str, path: str
) -> None:
    backends = [await gateway(settings(upstream), encoder=FakeEncoder()) for _ in range(2)]
    here = await gateway(settings(upstream), encoder=FakeEncoder())
    pool = await gateway(
        settings(
            upstream, backend="pool", pool_protocol=protocol, pool_urls=[b + path for b in backends]
        )
    )
    local = await call("POST", f"{here}/docs/_search", SEARCH)
    remote = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert remote.headers["X-Rerank"] == "full"
    assert [i for i, _ in scores(remote)] == [i for i, _ in scores(local)]
    assert [s for _, s in scores(remote)] == pytest.approx([s for _, s in scores(local)], abs=1e-5)
    for backend in backends:  # the window's five pairs went out in two parts, one to each
        metrics = (await call("GET", f"{backend}/_gateway/metrics")).body.decode()
        api = "v1" if protocol == "cohere" else "tei"
        line = next(
            x
            for x in metrics.splitlines()
            if x.startswith(f'gateway_rerank_api_documents_total{{api="{api}"}}')
        )
        assert float(line.split()[-1]) >= 2


@dataclass
class CohereBackend:
    """A Cohere-format scorer (FakeEncoder) that can fail (503) or hang on demand."""

    fail: bool = False
    hang: bool = False
    calls: list[int] = field(default_factory=list)  # documents per call
    deadlines: set[str] = field(default_factory=set)  # X-Rerank-Timeout-Ms values seen
    port: int = field(default_factory=free_port)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/rerank"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v2/rerank", self._rerank)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()

    async def _rerank(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.deadlines.add(request.headers.get("X-Rerank-Timeout-Ms", ""))
        if body["query"] != "health check":
            self.calls.append(len(body["documents"]))
        if self.hang:
            await asyncio.sleep(5)
        if self.fail:
            return web.json_response({"message": "down"}, status=503)
        fake = FakeEncoder()
        logits = fake.score(fake.encode([(body["query"], d) for d in body["documents"]]))
        results = [{"index": i, "relevance_score": sigmoid(float(s))} for i, s in enumerate(logits)]
        return web.json_response({"results": results})


def pool_of(upstream: Scripted, backends: list[CohereBackend], **model: Any) -> Settings:
    return settings(upstream, backend="pool", pool_urls=[b.url for b in backends], **model)


@pytest.fixture
async def backends() -> AsyncIterator[list[CohereBackend]]:
    started = [CohereBackend(), CohereBackend()]
    for backend in started:
        await backend.start()
    yield started
    for backend in started:
        assert backend.server is not None
        await backend.server.close()


async def test_failover_breaker_and_health_check(
    upstream: Scripted,
    gateway: GatewayFactory,
    backends: list[CohereBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.model.pool")
    a, b = backends
    pool = await gateway(pool_of(upstream, backends, pool_backoff_s=3.0))  # open past search 2
    a.calls.clear()
    b.calls.clear()
    a.fail = True
    first = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert first.headers["X-Rerank"] == "full"  # a's part went on to b
    assert a.calls == [3] and sorted(b.calls) == [2, 3]
    second = await call(
        "POST", f"{pool}/docs/_search", {**SEARCH, "query": {"match": {"text": "wall"}}}
    )
    assert second.headers["X-Rerank"] == "full"
    assert a.calls == [3] and b.calls[2:] == [5]  # a's breaker is open: b gets everything
    a.fail = False
    await wait_for(  # a health check (every 3 s) finds a answering again
        lambda: any("answers again" in r.getMessage() for r in caplog.records),
        20,
        what="the health check closing a's breaker",
    )
    third = await call(
        "POST", f"{pool}/docs/_search", {**SEARCH, "query": {"match": {"text": QUERY + " fell"}}}
    )
    assert third.headers["X-Rerank"] == "full" and a.calls[1:] == [3]


async def test_a_hung_backend_times_out_and_all_down_degrades(
    upstream: Scripted, gateway: GatewayFactory, backends: list[CohereBackend]
) -> None:
    a, b = backends
    pool = await gateway(pool_of(upstream, backends, pool_timeout_s=1.0))
    a.hang = True
    hung = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert hung.headers["X-Rerank"] == "full"
    assert a.deadlines == b.deadlines == {"1000"}  # a gateway backend scores within the call
    a.hang, a.fail, b.fail = False, True, True
    other = {"query": {"match": {"text": "madrid spain"}}}  # nothing of it cached
    await assert_degraded(pool, upstream.url, other)
