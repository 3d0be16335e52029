"""Graceful shutdown: stop accepting, let in-flight searches finish, flush cache writes."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app, wait_ready
from gateway.model.fake import FakeEncoder
from gateway.rerank.cache import RedisCache, cache_key
from gateway.settings import CacheSettings, Settings
from gateway.web.protocol import GatewayRunner
from tests.doubles.corpora import CAPITALS as DOCS
from tests.doubles.gateway import settings_with
from tests.doubles.net import free_port
from tests.doubles.upstream import Gate, ScriptedUpstream
from tests.doubles.waits import wait_for

QUERY = "capital of Italy"
SEARCH = {"query": {"match": {"text": QUERY}}, "size": 2}


@pytest.fixture
async def held_cluster() -> AsyncIterator[tuple[Gate, str]]:
    """A cluster whose searches wait for ``gate.open()`` (opened at the end)."""
    gate = Gate()
    async with ScriptedUpstream(DOCS) as upstream:
        upstream.script("/docs/_search", gate)
        yield gate, upstream.url
        gate.open()


async def serve(settings: Settings, encoder: FakeEncoder) -> tuple[GatewayRunner, str]:
    """The app as ``__main__`` runs it: a runner with the configured shutdown timeout."""
    app = create_app(settings, encoder=encoder)
    runner = GatewayRunner(app, shutdown_timeout=settings.server.shutdown_timeout_s)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await wait_ready(app)
    return runner, f"http://127.0.0.1:{port}"


def refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def wait_refusing(port: int) -> None:
    await wait_for(lambda: asyncio.to_thread(refuses, port), what=f"port {port} refusing")


async def test_in_flight_search_finishes_and_scores_are_flushed(
    held_cluster: tuple[Gate, str], redis_url: str
) -> None:
    gate, upstream = held_cluster
    encoder = FakeEncoder(name=f"shutdown-{uuid.uuid4().hex}")
    settings = settings_with(
        [upstream],
        server={"shutdown_timeout_s": 30},
        cache={"redis_url": redis_url, "timeout_s": 2.0},  # a cold connect may outlast 50 ms
    )
    runner, url = await serve(settings, encoder)
    port = int(url.rsplit(":", 1)[1])
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(session.post(f"{url}/docs/_search", json=SEARCH))
        await gate.entered.wait()
        stopping = asyncio.create_task(runner.cleanup())
        await wait_refusing(port)  # no new connections while the old one finishes
        assert not stopping.done()
        gate.open()
        response = await in_flight
        assert response.status == 200
        assert response.headers["X-Rerank"] == "full"
        assert (await response.json())["hits"]["hits"][0]["_id"] == "d3"
        response.release()
        await stopping

    # The write-back of the scores reached Redis before the cache was closed.
    cache = RedisCache(CacheSettings.model_validate({"redis_url": redis_url, "timeout_s": 2.0}))
    keys = [
        cache_key(encoder.fingerprint, QUERY, "docs", d["_id"], f"{d['title']} {d['text']}")
        for d in DOCS
    ]
    try:
        assert None not in await cache.get_many(keys)
    finally:
        await cache.close()


async def test_search_past_the_shutdown_deadline_is_cut(
    held_cluster: tuple[Gate, str],
) -> None:
    gate, upstream = held_cluster
    settings = settings_with([upstream], server={"shutdown_timeout_s": 0.2})
    runner, url = await serve(settings, FakeEncoder())
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(session.post(f"{url}/docs/_search", json=SEARCH))
        await gate.entered.wait()
        await runner.cleanup()  # returns although the upstream never answers
        with pytest.raises(aiohttp.ClientError):
            await in_flight
