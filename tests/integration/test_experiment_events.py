"""Experiment event storage: the in-process ring and a real Redis Stream."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from gateway.experiments.events import (
    EventLog,
    MemoryBackend,
    RedisBackend,
    create_event_log,
    page_keys,
)
from gateway.settings import CacheSettings
from tests.doubles.redis_servers import RedisProcess

PASSWORD = "stable-lamp-9832"  # a throwaway test server's password


def redis_settings(url: str | None = None, **options: object) -> CacheSettings:
    """The cache's Redis settings, which the event log uses too (a budget for a busy machine)."""
    return CacheSettings.model_validate({"redis_url": url, "timeout_s": 1.0, **options})


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
    log = create_event_log(redis_settings(redis_url), None, name, 100, k=5)
    assert isinstance(log.backend, RedisBackend)
    key = log.backend.key
    try:
        events = await _exercise(log)
        assert [e["type"] for e in events] == ["impression", "click"]
        assert events[0]["hits"] == [["docs", str(i)] for i in range(5)]
        # A second gateway (replica) reads the same stream.
        other = create_event_log(redis_settings(), SecretStr(redis_url), name, 100, k=5)
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


async def test_unreachable_redis_never_blocks_recording(caplog: pytest.LogCaptureFixture) -> None:
    log = create_event_log(redis_settings("redis://127.0.0.1:1/0"), None, "down", 100, k=5)
    await log.start()
    for i in range(3):
        log.record({"type": "click", "search_id": f"s{i}", "position": 1})  # returns at once
        await log.flush()
    assert log.failed == 3
    await log.close()
    assert isinstance(log.backend, RedisBackend)
    assert log.backend.stats.outages == 1  # the breaker skipped Redis after the first failure
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "events lost" in w]) == 1  # once per outage


@pytest.mark.parametrize("own_url", [False, True], ids=["cache-url", "events-url"])
async def test_events_on_an_authenticated_redis(
    own_redis: Callable[..., RedisProcess], own_url: bool
) -> None:
    # An ACL user of its own, the default user off: only these credentials get in.
    server = own_redis(
        "--user", "gw", "on", f">{PASSWORD}", "~*", "+@all", "--user", "default", "off"
    )
    url = f"redis://127.0.0.1:{server.port}/0"
    cache = redis_settings(
        None if own_url else url, redis_username="gw", redis_password=SecretStr(PASSWORD)
    )
    log = create_event_log(cache, SecretStr(url) if own_url else None, "auth", 100, k=5)
    assert isinstance(log.backend, RedisBackend)
    key = log.backend.key
    events = await _exercise(log)
    assert log.failed == 0
    assert [e["type"] for e in events] == ["impression", "click"]
    client = aioredis.Redis.from_url(url, username="gw", password=PASSWORD)
    try:
        assert await client.xlen(key) == 2
    finally:
        await client.aclose()


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"hits": 3}'])
def test_page_keys_of_unreadable_answers(body: bytes) -> None:
    assert page_keys(body, 10) == []
