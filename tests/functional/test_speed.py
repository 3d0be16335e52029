"""Per-search deadlines (``ext.rerank.timeout_ms``, ``X-Rerank-Timeout-Ms``) capped by
SPEED__MAX_TIMEOUT_S, and admission under load: a full queue skips reranking, never fails."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.model.fake import FakeEncoder
from gateway.settings import Settings
from tests.doubles.corpora import WALL_DOCS as DOCS
from tests.doubles.corpora import WALL_QUERY as QUERY
from tests.doubles.encoders import GatedEncoder, RecordingEncoder
from tests.doubles.gateway import GatewayFactory
from tests.doubles.upstream import ScriptedUpstream as Scripted
from tests.doubles.upstream import call
from tests.doubles.waits import wait_for

UPSTREAM_ORDER = [d["_id"] for d in DOCS[:5]]


class Stuck(GatedEncoder):
    """Every model run holding the Germany document (d2) waits for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_id = FakeEncoder().encode([("", "germany")])[0].ids[2]


@pytest.fixture
def stuck() -> Iterator[Stuck]:
    encoder = Stuck()
    yield encoder
    encoder.gate.set()


async def start(
    upstream: Scripted, gateway: GatewayFactory, encoder: FakeEncoder, **sections: Any
) -> str:
    values = {
        "upstream": {"urls": [upstream.url], "flavor": "elasticsearch"},
        "rerank": {"window": 5, "timeout_s": 30.0},
        **sections,
    }
    return await gateway(Settings.model_validate(values), encoder=encoder)


def search(query: str = QUERY, **rerank: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"query": {"match": {"text": query}}, "size": 5}
    return {**body, "ext": {"rerank": rerank}} if rerank else body


async def test_a_search_sets_its_own_deadline(
    upstream: Scripted, gateway: GatewayFactory, stuck: Stuck
) -> None:
    url = await start(upstream, gateway, stuck)
    got = await call("POST", f"{url}/docs/_search", body=search(timeout_ms=100))
    assert got.status == 200
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == ("skipped", "deadline")
    assert got.ids() == UPSTREAM_ORDER
    assert "ext" not in upstream.last("/docs/_search").json()


async def test_the_header_sets_the_deadline_too(
    upstream: Scripted, gateway: GatewayFactory, stuck: Stuck
) -> None:
    url = await start(upstream, gateway, stuck)
    got = await call(
        "POST", f"{url}/docs/_search", body=search(), headers={"X-Rerank-Timeout-Ms": "100"}
    )
    assert (got.status, got.headers["X-Rerank-Reason"]) == (200, "deadline")
    assert got.ids() == UPSTREAM_ORDER


async def test_asked_deadline_is_capped_by_the_maximum(
    upstream: Scripted, gateway: GatewayFactory, stuck: Stuck
) -> None:
    url = await start(upstream, gateway, stuck, speed={"max_timeout_s": 0.2})
    got = await call("POST", f"{url}/docs/_search", body=search(timeout_ms=600_000))
    assert (got.status, got.headers["X-Rerank"]) == (200, "skipped")
    assert got.headers["X-Rerank-Reason"] == "deadline"


async def test_a_longer_deadline_lets_a_slow_model_finish(
    upstream: Scripted, gateway: GatewayFactory
) -> None:
    encoder = Stuck()
    url = await start(upstream, gateway, encoder, rerank={"window": 5, "timeout_s": 0.05})
    asked = asyncio.create_task(call("POST", f"{url}/docs/_search", body=search(timeout_ms=20_000)))
    await asyncio.to_thread(encoder.stuck.wait, 10)  # the model run is held
    await asyncio.sleep(0.3)  # well past the configured 50 ms deadline
    encoder.gate.set()
    got = await asked
    assert (got.status, got.headers["X-Rerank"]) == (200, "full")


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (search(timeout_ms="soon"), {}),
        (search(timeout_ms=-5), {}),
        (search(timeout_ms=True), {}),
        (search(), {"X-Rerank-Timeout-Ms": "soon"}),
        (search(), {"X-Rerank-Timeout-Ms": "0"}),
    ],
)
async def test_bad_deadlines_are_client_errors(
    upstream: Scripted, gateway: GatewayFactory, body: Any, headers: dict[str, str]
) -> None:
    url = await start(upstream, gateway, FakeEncoder())
    got = await call("POST", f"{url}/docs/_search", body=body, headers=headers)
    assert got.status == 400
    assert got.json()["error"]["type"] == "illegal_argument_exception"


async def queued_pairs(url: str) -> bool:
    """Whether the batcher's queue holds the second search's five pairs (its gauge)."""
    metrics = (await call("GET", f"{url}/_gateway/metrics")).body.decode()
    gauge = [x for x in metrics.splitlines() if x.startswith("gateway_batcher_queue_pairs{")]
    return sum(float(x.split()[-1]) for x in gauge) == 5


async def test_a_full_queue_skips_reranking_and_never_fails(
    upstream: Scripted, gateway: GatewayFactory, stuck: Stuck
) -> None:
    # The first search's batch is stuck on the model; the next fills the queue (5 of 8);
    # the rest do not fit and go back in upstream order at once. Distinct queries, so
    # no search waits on another's identical pairs (single flight).
    url = await start(upstream, gateway, stuck, batcher={"max_queue_pairs": 8})

    def send(i: int) -> Any:
        body = search(f"{QUERY} {i}", timeout_ms=10_000)
        return asyncio.create_task(call("POST", f"{url}/docs/_search", body=body))

    first = send(0)
    await wait_for(stuck.stuck.is_set, what="the first search's batch on the model")
    queued = send(1)
    await wait_for(lambda: queued_pairs(url), what="the second search in the queue")
    overloaded = await asyncio.gather(*[send(i) for i in range(2, 6)])
    assert {a.status for a in overloaded} == {200}
    assert Counter(a.headers["X-Rerank-Reason"] for a in overloaded) == {"overloaded": 4}
    assert all(a.ids() == UPSTREAM_ORDER for a in overloaded)
    stuck.gate.set()
    done = await asyncio.gather(first, queued)
    assert [a.headers["X-Rerank"] for a in done] == ["full", "full"]


async def test_warm_up_runs_the_configured_batch_shapes_before_ready(
    upstream: Scripted, gateway: GatewayFactory
) -> None:
    encoder = RecordingEncoder()
    await start(
        upstream,
        gateway,
        encoder,
        model={"max_length": 128},
        batcher={"max_batch_tokens": 1024},
        speed={"warm_up": "shapes"},
    )
    # The one-pair search-path run, then 1 x 128 and 8 x 128 (1024 tokens / 128).
    assert [len(b) for b in encoder.batches] == [1, 1, 8]
    assert encoder.batches[-1] == [128] * 8


async def test_msearch_sub_searches_share_one_deadline_window(
    upstream: Scripted, gateway: GatewayFactory, stuck: Stuck
) -> None:
    """Sub-searches are scored side by side: three 1 s deadlines end together, not in
    turn (in turn would take 3 s or more)."""
    url = await start(upstream, gateway, stuck)
    subs = [search(f"{QUERY} {i}", timeout_ms=1000) for i in range(3)]
    data = b"".join(b"{}\n" + json.dumps(sub).encode() + b"\n" for sub in subs)
    started = asyncio.get_running_loop().time()
    got = await call(
        "POST", f"{url}/docs/_msearch", data=data, headers={"Content-Type": "application/x-ndjson"}
    )
    elapsed = asyncio.get_running_loop().time() - started
    assert (got.status, got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == (
        200,
        "skipped",
        "deadline",
    )
    assert [[h["_id"] for h in r["hits"]["hits"]] for r in got.json()["responses"]] == [
        UPSTREAM_ORDER
    ] * 3
    assert elapsed < 2.5
