"""The loop's input through the whole gateway: interleaved searches and clicks land in the real
Redis event stream with the query text, and become labelled sessions (osmem-server, FakeEncoder)."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from gateway.experiments.events import stream_key
from gateway.learning.clicks import judgments_from_clicks, sessions_from_events
from gateway.offline.train import read_stream
from tests.doubles.experiments import call, ids, report_when, search_body, start
from tests.doubles.gateway import GatewayFactory

pytestmark = pytest.mark.integration


async def test_interleaved_traffic_in_redis_becomes_judgments(
    gateway: GatewayFactory, osmem: str, redis_url: str
) -> None:
    url = await start(gateway, osmem, redis=redis_url, mode="interleave")
    shown: dict[str, list[str]] = {}
    for user in ("u1", "u2", "u3"):
        status, headers, page = await call(
            "POST", f"{url}/docs/_search", search_body(), **{"X-User-Id": user}
        )
        assert status == 200 and headers["X-Experiment-Variant"] == "interleave"
        shown[headers["X-Search-Id"]] = ids(page)
    first, *_ = shown
    await call("POST", f"{url}/_gateway/events", {"search_id": first, "position": 2})
    # Events are stored in the background: until the first lands, the report has no variant.
    report = await report_when(
        url, lambda r: r["variants"].get("interleave", {}).get("clicks") == 1
    )
    client = aioredis.Redis.from_url(redis_url)
    try:
        raw = await client.xrange(stream_key(report["experiment"]))
    finally:
        await client.aclose()
    events = [json.loads(fields[b"e"]) for _, fields in raw]
    assert await read_stream(redis_url, report["experiment"]) == events  # what `train` reads
    sessions = sessions_from_events(events)
    assert {s.search_id: s.docs for s in sessions} == shown
    assert {s.query for s in sessions} == {"berlin population people city museum wall"}
    assert [s.clicks for s in sessions if s.search_id == first] == [{2}]
    labelled = judgments_from_clicks(sessions, model="coec")
    clicked = shown[first][1]
    assert max(labelled, key=lambda j: j.label).doc == clicked
