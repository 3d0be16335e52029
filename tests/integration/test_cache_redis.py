"""The score cache against real Redis: the shared one at ``redis_url``, and private
``redis-server`` processes (``own_redis``: killed and restarted, password-protected,
TLS, cluster) on free ports. The shared server is never stopped.

Encoders get a fresh fingerprint per test, so entries left in the shared Redis by
earlier runs never answer for this one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from gateway.app import create_app, wait_ready
from gateway.model.base import CrossEncoder, Encoded, Pair, Scores
from gateway.model.fake import FakeEncoder
from gateway.model.onnx import OnnxCrossEncoder
from gateway.rerank.cache import RedisCache, cache_key
from gateway.rerank.reranker import Reranker
from gateway.settings import CacheSettings, ModelSettings
from gateway.web.state import FLOW
from tests.doubles.corpora import load_docs
from tests.doubles.gateway import make_settings
from tests.doubles.net import free_port, http
from tests.doubles.pki import make_certs
from tests.doubles.redis_servers import RedisProcess
from tests.doubles.search_servers import seed_index
from tests.doubles.waits import wait_for, wait_until

pytestmark = pytest.mark.integration

QUERY = "how many people live in berlin"
WINDOW = 10
PASSWORD = "right-horse-battery"  # a throwaway test server's password
WRONG = "wrong-staple-4711"


def fresh_fake(**kwargs: Any) -> FakeEncoder:
    return FakeEncoder(name=f"fake-{uuid.uuid4().hex}", **kwargs)


class Counting:
    """The real ONNX model, counting the pairs it scores, under a fresh fingerprint."""

    def __init__(self, inner: OnnxCrossEncoder) -> None:
        self.inner = inner
        self.pairs_scored = 0
        self._fingerprint = f"{inner.fingerprint}:{uuid.uuid4().hex}"
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        return self.inner.encode(pairs)

    def score(self, batch: Sequence[Encoded]) -> Scores:
        with self._lock:
            self.pairs_scored += len(batch)
        return self.inner.score(batch)


class SlowFake(FakeEncoder):
    """Takes a while per model run, so concurrent searches overlap in scoring."""

    def score(self, batch: Sequence[Encoded]) -> Scores:
        time.sleep(0.3)  # in the model thread, not on the event loop
        return super().score(batch)


@dataclass
class Gateway:
    url: str
    app: web.Application

    @property
    def reranker(self) -> Reranker:
        reranker = self.app[FLOW].reranker
        assert reranker is not None
        return reranker

    async def search(self, query: str = QUERY, index: str = "docs") -> tuple[str, Any]:
        """(X-Rerank, body without ``took``), after this search's write-backs landed."""
        body = {"query": {"match": {"text": query}}, "size": 5}
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{self.url}/{index}/_search", json=body) as r,
        ):
            assert r.status == 200
            header, got = r.headers["X-Rerank"], await r.json()
        await self.reranker.drain()
        got.pop("took")
        return header, got


GatewayStarter = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(osmem: str) -> AsyncIterator[GatewayStarter]:
    servers: list[TestServer] = []

    async def start(encoder: CrossEncoder, upstream: str = osmem, **cache: Any) -> Gateway:
        # Redis alone unless a test asks for the process's LRU in front of it
        # (``memory_entries``): these tests watch what reaches Redis.
        cache = {"timeout_s": 2.0, "memory_entries": 0, **cache}
        settings = make_settings(upstream, rerank={"window": WINDOW}, cache=cache)
        app = create_app(settings, encoder=encoder)
        server = TestServer(app, host="127.0.0.1", port=free_port())
        await server.start_server()
        servers.append(server)
        await wait_ready(app)
        return Gateway(str(server.make_url("")).rstrip("/"), app)

    yield start
    for server in servers:
        await server.close()


def ids(body: Any) -> list[str]:
    return [hit["_id"] for hit in body["hits"]["hits"]]


async def test_second_search_skips_the_model(start_gateway: GatewayStarter, redis_url: str) -> None:
    encoder = fresh_fake()
    gw = await start_gateway(encoder, redis_url=redis_url)
    first = await gw.search()
    scored = encoder.pairs_scored
    assert scored > 1  # the warm-up pair and this search's window
    second = await gw.search()
    assert encoder.pairs_scored == scored
    assert second == first
    assert first[0] == "full"
    stats = gw.reranker.cache.stats
    assert stats.hits >= len(first[1]["hits"]["hits"])
    assert stats.writes == scored
    assert stats.errors == 0


@pytest.fixture(scope="module")
def onnx_model(model_dir: Path) -> OnnxCrossEncoder:
    return OnnxCrossEncoder(model_dir, ModelSettings(path=model_dir, intra_op_threads=2))


async def test_second_search_skips_the_real_model(
    start_gateway: GatewayStarter, redis_url: str, onnx_model: OnnxCrossEncoder
) -> None:
    encoder = Counting(onnx_model)
    gw = await start_gateway(encoder, redis_url=redis_url)
    first = await gw.search()
    scored = encoder.pairs_scored
    second = await gw.search()
    assert encoder.pairs_scored == scored
    assert second == first
    assert ids(first[1])[0] == "berlin-pop"


async def test_edited_document_is_rescored(
    osmem: str, start_gateway: GatewayStarter, redis_url: str
) -> None:
    index = f"cache-edit-{uuid.uuid4().hex[:8]}"
    docs = [d for d in load_docs() if d["_id"].startswith(("berlin", "paris"))]
    await asyncio.to_thread(seed_index, osmem, index, docs)
    encoder = fresh_fake()
    gw = await start_gateway(encoder, redis_url=redis_url)
    before = await gw.search(index=index)
    assert ids(before[1])[0] != "berlin-wall"
    scored = encoder.pairs_scored

    edited = {"title": "Berlin Wall", "text": "How many people live in Berlin? Nobody knows."}
    await asyncio.to_thread(http, "PUT", f"{osmem}/{index}/_doc/berlin-wall?refresh=true", edited)
    after = await gw.search(index=index)
    assert encoder.pairs_scored == scored + 1  # only the edited document
    assert ids(after[1])[0] == "berlin-wall"
    again = await gw.search(index=index)
    assert encoder.pairs_scored == scored + 1
    assert again == after


async def test_another_model_is_not_served_old_scores(
    start_gateway: GatewayStarter, redis_url: str
) -> None:
    name = f"fake-{uuid.uuid4().hex}"
    first = FakeEncoder(name=name)
    await (await start_gateway(first, redis_url=redis_url)).search()
    assert first.pairs_scored > 1

    other = fresh_fake()  # another fingerprint: nothing of the first one's may be used
    await (await start_gateway(other, redis_url=redis_url)).search()
    assert other.pairs_scored == first.pairs_scored

    longer = FakeEncoder(name=name, max_length=128)  # same weights, another max_length
    await (await start_gateway(longer, redis_url=redis_url)).search()
    assert longer.pairs_scored == first.pairs_scored

    same = FakeEncoder(name=name)  # same identity in another gateway: all from Redis
    await (await start_gateway(same, redis_url=redis_url)).search()
    assert same.pairs_scored == 0


async def test_redis_killed_and_restarted(
    start_gateway: GatewayStarter,
    own_redis: Callable[..., RedisProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.redis")
    server = own_redis()
    encoder = fresh_fake()
    gw = await start_gateway(
        encoder, redis_url=f"redis://127.0.0.1:{server.port}/0", breaker_backoff_s=0.1
    )
    stats = gw.reranker.cache.stats
    reference = await gw.search()
    scored = encoder.pairs_scored
    assert await gw.search() == reference
    assert encoder.pairs_scored == scored

    server.kill()
    for _ in range(3):  # Redis gone: every search still reranked, in the same order
        assert await gw.search() == reference
    assert encoder.pairs_scored > scored
    assert stats.outages == 1
    assert stats.errors >= 1

    await asyncio.to_thread(server.start)  # back, empty

    async def written_back() -> int:  # past the breaker's back-off, the probe: a miss, scored
        assert await gw.search() == reference
        return await asyncio.to_thread(key_count, server.port)

    await wait_for(written_back, 10, what="the probe's scores written back")
    scored = encoder.pairs_scored
    assert await gw.search() == reference
    assert encoder.pairs_scored == scored  # caching resumed
    assert stats.outages == 1

    down = [r for r in caplog.records if "unavailable" in r.getMessage()]
    up = [r for r in caplog.records if "available again" in r.getMessage()]
    assert [r.levelno for r in down] == [logging.WARNING]  # once per outage, not per search
    assert len(up) == 1


async def test_wrong_password_scores_uncached(
    start_gateway: GatewayStarter,
    own_redis: Callable[..., RedisProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = own_redis("--requirepass", PASSWORD)
    url = f"redis://127.0.0.1:{server.port}/0"

    wrong = fresh_fake()
    gw = await start_gateway(wrong, redis_url=url, redis_password=WRONG)
    first = await gw.search()
    scored = wrong.pairs_scored
    assert await gw.search() == first
    assert wrong.pairs_scored > scored  # scored again: nothing could be cached
    assert first[0] == "full"
    stats = gw.reranker.cache.stats
    assert stats.outages == 1
    assert stats.hits == stats.writes == 0
    assert WRONG not in caplog.text
    assert PASSWORD not in caplog.text

    right = fresh_fake()
    gw = await start_gateway(right, redis_url=url, redis_password=PASSWORD)
    assert await gw.search() == first
    scored = right.pairs_scored
    assert await gw.search() == first
    assert right.pairs_scored == scored


def key_count(port: int) -> int:
    client = redis.Redis(port=port)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def blocked(port: int) -> bool:
    """Whether the server is busy (a ``DEBUG SLEEP``): a ``PING`` gets no answer in 250 ms."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
        conn.sendall(b"PING\r\n")
        conn.settimeout(0.25)
        try:
            return not conn.recv(16)
        except TimeoutError:
            return True


def _debug_sleep(port: int, seconds: float) -> None:
    client = redis.Redis(port=port)
    try:
        client.execute_command("DEBUG", "SLEEP", seconds)
    finally:
        client.close()


async def test_slow_redis_is_given_up_on(
    start_gateway: GatewayStarter, own_redis: Callable[..., RedisProcess]
) -> None:
    server = own_redis("--enable-debug-command", "yes")
    encoder = fresh_fake()
    gw = await start_gateway(encoder, redis_url=f"redis://127.0.0.1:{server.port}/0", timeout_s=0.2)
    stats = gw.reranker.cache.stats
    reference = await gw.search()
    scored = encoder.pairs_scored
    stalled = asyncio.create_task(asyncio.to_thread(_debug_sleep, server.port, 3.0))
    await wait_for(lambda: asyncio.to_thread(blocked, server.port), what="Redis blocked")
    assert await gw.search() == reference  # scored uncached, past the cache's budget
    assert encoder.pairs_scored > scored
    assert stats.errors >= 1
    assert stats.outages == 1
    await stalled


async def test_full_redis_scores_uncached(
    start_gateway: GatewayStarter, own_redis: Callable[..., RedisProcess]
) -> None:
    server = own_redis("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    encoder = fresh_fake()
    gw = await start_gateway(encoder, redis_url=f"redis://127.0.0.1:{server.port}/0")
    stats = gw.reranker.cache.stats
    first = await gw.search()
    scored = encoder.pairs_scored
    assert await gw.search() == first
    assert encoder.pairs_scored > scored  # nothing could be stored
    assert first[0] == "full"
    assert stats.writes == 0
    assert stats.outages >= 1


async def test_concurrent_identical_searches_score_each_pair_once(
    start_gateway: GatewayStarter, redis_url: str
) -> None:
    encoder = SlowFake(name=f"slow-{uuid.uuid4().hex}")
    gw = await start_gateway(encoder, redis_url=redis_url)
    warm = encoder.pairs_scored
    results = await asyncio.gather(*(gw.search() for _ in range(5)))
    assert all(r == results[0] for r in results)
    assert results[0][0] == "full"

    alone = fresh_fake()  # the same search once, uncached: how many pairs it has
    solo = await start_gateway(alone, memory_entries=0)
    assert await solo.search() == results[0]
    assert encoder.pairs_scored - warm == alone.pairs_scored - 1  # minus its warm-up pair
    assert gw.reranker.cache.stats.coalesced > 0


def _cluster_ready(port: int) -> None:
    client = redis.Redis(port=port)
    try:
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_until(
            lambda: b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"),
            what="the Redis cluster ready",
        )
    finally:
        client.close()


async def test_redis_cluster(
    start_gateway: GatewayStarter, own_redis: Callable[..., RedisProcess]
) -> None:
    server = own_redis("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
    await asyncio.to_thread(_cluster_ready, server.port)
    url = f"redis://127.0.0.1:{server.port}"

    # Keys of different searches live in different slots; a multi-slot read still works.
    cache = RedisCache(CacheSettings(redis_url=SecretStr(url), redis_cluster=True, timeout_s=2))
    keys = [cache_key("fp", q, "docs", "1", "text") for q in ("one", "two", "three")]
    try:
        await cache.set_many({k: float(i) - 0.5 for i, k in enumerate(keys)})
        assert await cache.get_many([*keys, keys[0] + "x"]) == [-0.5, 0.5, 1.5, None]
    finally:
        await cache.close()

    encoder = fresh_fake()
    gw = await start_gateway(encoder, redis_url=url, redis_cluster=True)
    first = await gw.search()
    scored = encoder.pairs_scored
    assert await gw.search() == first
    assert encoder.pairs_scored == scored
    assert gw.reranker.cache.stats.errors == 0


async def test_redis_over_tls_with_password(
    start_gateway: GatewayStarter, own_redis: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    await asyncio.to_thread(make_certs, tmp_path)
    server = own_redis(
        "--tls-cert-file",
        "server.crt",
        "--tls-key-file",
        "server.key",
        "--tls-ca-cert-file",
        "ca.crt",
        "--tls-auth-clients",
        "no",
        "--requirepass",
        PASSWORD,
        tls=True,
    )
    encoder = fresh_fake()
    gw = await start_gateway(
        encoder,
        redis_url=f"rediss://127.0.0.1:{server.port}/0",
        redis_password=PASSWORD,
        redis_ca_bundle=str(tmp_path / "ca.crt"),
    )
    first = await gw.search()
    scored = encoder.pairs_scored
    assert await gw.search() == first
    assert encoder.pairs_scored == scored
    stats = gw.reranker.cache.stats
    assert stats.errors == 0
    assert stats.writes > 0


def mget_calls(port: int) -> int:
    """How many MGET commands the Redis on ``port`` has answered."""
    client = redis.Redis(port=port)
    try:
        stats = client.info("commandstats")
        return int(stats.get("cmdstat_mget", {}).get("calls", 0))
    finally:
        client.close()


async def test_the_process_lru_serves_a_repeated_search_and_redis_the_other_replicas(
    start_gateway: GatewayStarter, own_redis: Callable[..., RedisProcess]
) -> None:
    server = own_redis()
    url = f"redis://127.0.0.1:{server.port}/0"
    name = f"fake-{uuid.uuid4().hex}"  # one model on both replicas: one fingerprint
    one, other = FakeEncoder(name=name), FakeEncoder(name=name)
    first = await start_gateway(one, redis_url=url, memory_entries=1000)
    second = await start_gateway(other, redis_url=url, memory_entries=1000)
    reference = await first.search()
    scored = one.pairs_scored
    reads = await asyncio.to_thread(mget_calls, server.port)

    assert await first.search() == reference  # the same replica: its LRU, no Redis read
    assert one.pairs_scored == scored
    assert await asyncio.to_thread(mget_calls, server.port) == reads
    assert first.reranker.cache.stats.hits >= WINDOW

    warm_up = other.pairs_scored
    assert await second.search() == reference  # another replica: Redis's scores
    assert other.pairs_scored == warm_up
    assert await asyncio.to_thread(mget_calls, server.port) == reads + 1

    server.kill()  # Redis gone: what a replica has read or written still serves it
    assert await second.search() == reference
    assert other.pairs_scored == warm_up
    assert (await second.search("coffee"))[0] == "full"  # a new search: scored, uncached
    assert other.pairs_scored > warm_up
