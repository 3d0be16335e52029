"""Redis down, hung or restarting never changes an answer: searches are scored uncached.

The gateway sits in front of the real osmem-server; Redis is a private
redis-server (never the shared one), a port nobody listens on, or a TCP peer
that accepts and never answers.
"""

from __future__ import annotations

import asyncio

from gateway.model.fake import FakeEncoder
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.net import BlackHole, free_port
from tests.doubles.redis_servers import OwnRedis
from tests.doubles.upstream import Answer, call
from tests.doubles.waits import wait_for

SEARCH = {"query": {"match": {"text": "population of berlin"}}, "size": 4}


async def gateway_with_redis(gateway: GatewayFactory, osmem: str, redis_url: str) -> str:
    settings = make_settings(
        osmem,
        rerank={"window": 10},
        # Redis alone (no LRU in front): these faults are Redis's, and a search the
        # LRU already holds would never reach it.
        cache={
            "redis_url": redis_url,
            "timeout_s": 0.05,
            "breaker_backoff_s": 0.1,
            "memory_entries": 0,
        },
    )
    return await gateway(settings, encoder=FakeEncoder())


async def reference(gateway: GatewayFactory, osmem: str) -> list[str]:
    """The right answer: the same search with the in-process cache."""
    url = await gateway(make_settings(osmem, rerank={"window": 10}), encoder=FakeEncoder())
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.headers["X-Rerank"] == "full"
    return got.ids()


def assert_full(got: Answer, expected: list[str]) -> None:
    assert got.status == 200, got.body
    assert got.headers["X-Rerank"] == "full"
    assert got.ids() == expected


async def test_redis_down(osmem: str, gateway: GatewayFactory) -> None:
    expected = await reference(gateway, osmem)
    url = await gateway_with_redis(gateway, osmem, f"redis://127.0.0.1:{free_port()}/0")
    for _ in range(3):  # the first call fails, the next ones skip Redis (breaker open)
        assert_full(await call("POST", f"{url}/docs/_search", SEARCH), expected)


async def test_redis_hung(osmem: str, gateway: GatewayFactory, black_hole: BlackHole) -> None:
    expected = await reference(gateway, osmem)
    url = await gateway_with_redis(gateway, osmem, f"redis://127.0.0.1:{black_hole.port}/0")
    for _ in range(3):
        assert_full(await call("POST", f"{url}/docs/_search", SEARCH), expected)


async def test_redis_restart(osmem: str, gateway: GatewayFactory, own_redis: OwnRedis) -> None:
    expected = await reference(gateway, osmem)
    url = await gateway_with_redis(gateway, osmem, own_redis.url)

    async def written() -> int:  # searches go on: a slow first call may open the breaker
        assert_full(await call("POST", f"{url}/docs/_search", SEARCH), expected)
        return await asyncio.to_thread(own_redis.keys)

    await wait_for(written, 10, what="the cache written", poll_s=0.1)

    await asyncio.to_thread(own_redis.stop)
    for _ in range(3):
        assert_full(await call("POST", f"{url}/docs/_search", SEARCH), expected)

    await asyncio.to_thread(own_redis.start)  # empty again: nothing was saved
    assert await asyncio.to_thread(own_redis.keys) == 0

    # Searches go on; past the breaker's back-off, one probes and writes again.
    await wait_for(written, 10, what="the cache written again", poll_s=0.1)
    # And scores served from the refilled cache are the same answer.
    assert_full(await call("POST", f"{url}/docs/_search", SEARCH), expected)
