"""Experiment event storage: the in-process ring and a real Redis Stream."""

from __future__ import annotations

import json
import uuid

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from gateway.events import EventLog, MemoryBackend, RedisBackend, create_event_log, page_keys

BODY = json.dumps(
    {"hits": {"hits": [{"_index": "docs", "_id": str(i)} for i in range(20)]}}
).encode()


async def _exercise(log: EventLog) -> list[dict[str, object]]:
    await log.start()
    try:
        log.record({"type": "impression", "search_id": "s1", "variant": "rerank"}, body=BODY)
        log.record({"type": "click", "search_id": "s1", "position": 2})
        await log.flush()
        return await log.read()
    finally:
        await log.close()


async def test_memory_ring_keeps_the_last_events() -> None:
    events = await _exercise(EventLog(MemoryBackend(10), k=5))
    impression, clicked = events
    assert impression["hits"] == [["docs", str(i)] for i in range(5)]  # first k hits only
    assert "ts" in impression and clicked["position"] == 2
    ring = EventLog(MemoryBackend(3), k=5)
    await ring.start()
    for i in range(10):
        ring.record({"type": "click", "search_id": f"s{i}", "position": 1})
    await ring.flush()
    assert [e["search_id"] for e in await ring.read()] == ["s7", "s8", "s9"]
    await ring.close()


async def test_redis_stream_is_bounded_and_shared(redis_url: str) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    log = create_event_log(SecretStr(redis_url), name, 100, k=5)
    assert isinstance(log.backend, RedisBackend)
    key = log.backend.key
    try:
        events = await _exercise(log)
        assert [e["type"] for e in events] == ["impression", "click"]
        assert events[0]["hits"] == [["docs", str(i)] for i in range(5)]
        # A second gateway (replica) reads the same stream.
        other = create_event_log(SecretStr(redis_url), name, 100, k=5)
        assert len(await other.read()) == 2
        # MAXLEN ~ keeps the stream near its bound.
        await other.start()
        for i in range(1_000):
            other.record({"type": "click", "search_id": f"s{i}", "position": 1})
        await other.flush()
        stored = await other.read()
        assert 100 <= len(stored) < 1_000
        assert stored[-1]["search_id"] == "s999"
        await other.close()
    finally:
        client = aioredis.Redis.from_url(redis_url)
        await client.delete(key)
        await client.aclose()


async def test_unreachable_redis_never_blocks_recording() -> None:
    log = create_event_log(SecretStr("redis://127.0.0.1:1/0"), "down", 100, k=5)
    await log.start()
    log.record({"type": "click", "search_id": "s", "position": 1})  # returns at once
    await log.flush()
    assert log.failed == 1
    await log.close()


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"hits": 3}'])
def test_page_keys_of_unreadable_answers(body: bytes) -> None:
    assert page_keys(body, 10) == []
