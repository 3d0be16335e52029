"""MODEL__BACKEND=tei: scoring on a server speaking text-embeddings-inference's ``/rerank``.

The scripted TEI server follows TEI's documented API: ``GET /info``, ``POST
/rerank`` answering ``[{"index", "score"}]`` sorted by score, errors as
``{"error", "error_type"}`` with TEI's status codes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.errors import ModelError
from gateway.model.tei import TeiCrossEncoder
from gateway.settings import ModelSettings
from tests.doubles.corpora import CAPITALS as DOCS
from tests.doubles.gateway import GatewayFactory, settings_with
from tests.doubles.net import start_app, url_of
from tests.doubles.upstream import ScriptedUpstream

SEARCH = {"query": {"match": {"text": "capital of Italy"}}, "size": 3}


@dataclass
class ScriptedTei:
    """Scores a text by how many query words it holds (ties: shorter first)."""

    model_type: str = "reranker"
    fail_with: tuple[int, str] | None = None
    hold: asyncio.Event | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/info", self._info)
        app.router.add_post("/rerank", self._rerank)
        return app

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "model_id": "scripted/reranker",
                "model_sha": "abc123",
                "model_type": {self.model_type: {"id2label": {"0": "LABEL_0"}}},
                "max_input_length": 512,
            }
        )

    async def _rerank(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body)
        self.auth.append(request.headers.get("Authorization"))
        if self.hold is not None and body["query"] != "warm up":
            await self.hold.wait()
        if self.fail_with is not None and body["query"] != "warm up":
            status, kind = self.fail_with
            return web.json_response(
                {"error": "scripted failure", "error_type": kind}, status=status
            )
        words = set(re.findall(r"\w+", body["query"].lower()))
        ranked = []
        for i, text in enumerate(body["texts"]):
            hits = sum(w in words for w in re.findall(r"\w+", text.lower()))
            ranked.append({"index": i, "score": hits + 1 / (1 + len(text))})
        ranked.sort(key=lambda r: -r["score"])
        return web.json_response(ranked)


@pytest.fixture
async def cluster() -> AsyncIterator[str]:
    async with ScriptedUpstream(DOCS) as upstream:
        yield upstream.url


@pytest.fixture
async def tei() -> AsyncIterator[tuple[ScriptedTei, str]]:
    script = ScriptedTei()
    server = await start_app(script.app())
    yield script, url_of(server)
    if script.hold is not None:
        script.hold.set()
    await server.close()


async def search(url: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/docs/_search", json=SEARCH) as r:
        return r.status, dict(r.headers), await r.json()


async def test_tei_scores_rerank_the_search(
    cluster: str, tei: tuple[ScriptedTei, str], gateway: GatewayFactory
) -> None:
    script, tei_url = tei
    model = {"backend": "tei", "tei_url": tei_url, "tei_api_key": "k-1", "tei_max_batch": 2}
    url = await gateway(settings_with([cluster], model=model))
    status, headers, body = await search(url)
    assert status == 200
    assert headers["X-Rerank"] == "full"
    # Rome holds the most query words (the cluster put it last); Paris is shorter than Berlin.
    assert [h["_id"] for h in body["hits"]["hits"]] == ["d3", "d1", "d2"]
    search_calls = [c for c in script.calls if c["query"] == "capital of Italy"]
    assert [len(c["texts"]) for c in search_calls] == [2, 1]  # at most tei_max_batch each
    assert all(c["raw_scores"] is True and c["truncate"] is True for c in search_calls)
    assert set(script.auth) == {"Bearer k-1"}


@pytest.mark.parametrize(("status", "kind"), [(424, "Backend"), (429, "Overloaded")])
async def test_tei_errors_degrade_to_cluster_order(
    cluster: str,
    tei: tuple[ScriptedTei, str],
    gateway: GatewayFactory,
    status: int,
    kind: str,
) -> None:
    script, tei_url = tei
    script.fail_with = (status, kind)
    url = await gateway(settings_with([cluster], model={"backend": "tei", "tei_url": tei_url}))
    code, headers, body = await search(url)
    assert code == 200
    assert headers["X-Rerank"] == "skipped"
    assert headers["X-Rerank-Reason"] == "model_error"
    assert [h["_id"] for h in body["hits"]["hits"]] == ["d1", "d2", "d3"]


async def test_slow_tei_answer_degrades_at_the_deadline(
    cluster: str, tei: tuple[ScriptedTei, str], gateway: GatewayFactory
) -> None:
    script, tei_url = tei
    script.hold = asyncio.Event()
    settings = settings_with(
        [cluster],
        model={"backend": "tei", "tei_url": tei_url, "tei_timeout_s": 5},
        rerank={"timeout_s": 0.2},
    )
    url = await gateway(settings)
    code, headers, body = await search(url)
    assert code == 200
    assert headers["X-Rerank"] == "skipped"
    assert headers["X-Rerank-Reason"] == "deadline"
    assert [h["_id"] for h in body["hits"]["hits"]] == ["d1", "d2", "d3"]
    script.hold.set()


async def test_tei_that_serves_no_reranker_is_refused(tei: tuple[ScriptedTei, str]) -> None:
    script, tei_url = tei
    script.model_type = "embedding"
    settings = ModelSettings(backend="tei", tei_url=tei_url)
    with pytest.raises(ModelError, match="does not serve a reranker"):
        await asyncio.to_thread(TeiCrossEncoder, settings)


def test_tei_backend_needs_a_url() -> None:
    with pytest.raises(ValueError, match="MODEL__TEI_URL"):
        ModelSettings(backend="tei")
