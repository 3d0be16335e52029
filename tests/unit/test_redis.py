"""The one Redis boundary: client options, the circuit breaker, budgets and error translation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

from gateway.errors import EventStoreError
from gateway.experiments.events import EVENTS_TIMEOUT_S, RedisBackend, create_event_log
from gateway.redis import Breaker, RedisBoundary, RedisCounts, redis_client
from gateway.rerank.cache import RedisCache
from gateway.settings import CacheSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_skips_probes_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.redis")
    clock, stats = Clock(), RedisCounts()
    breaker = Breaker("cache", 2.0, stats, clock)
    assert breaker.allow()
    breaker.failed(ConnectionError())
    assert breaker.is_open
    assert not breaker.allow()  # skipped during the back-off
    clock.now += 2.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # others keep skipping while it runs
    breaker.failed(ConnectionError())  # still down: no new log line, same outage
    clock.now += 2.0
    assert breaker.allow()
    breaker.succeeded()
    assert not breaker.is_open
    assert breaker.allow()
    assert stats.outages == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1
    assert "ConnectionError" in warnings[0].getMessage()
    assert len(infos) == 1
    assert "available again" in infos[0].getMessage()


@pytest.mark.parametrize("user", ["cache", "events", "events-own-url"])
def test_password_and_tls_options_reach_every_client(tmp_path: Path, user: str) -> None:
    ca = tmp_path / "ca.pem"
    settings = CacheSettings(
        redis_url=SecretStr("rediss://cache.example:6380/2"),
        redis_password=SecretStr("s3cret"),
        redis_username="gw",
        redis_ca_bundle=ca,
        timeout_s=0.2,
    )
    events_url = SecretStr("rediss://events.example:6380/5") if user == "events-own-url" else None
    if user == "cache":
        boundary = RedisCache(settings).redis
    else:
        backend = create_event_log(settings, events_url, "exp", 100, k=5).backend
        assert isinstance(backend, RedisBackend)
        boundary = backend.redis
    client = boundary.client
    assert isinstance(client, Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class is SSLConnection
    assert (kwargs["username"], kwargs["password"]) == ("gw", "s3cret")
    assert kwargs["db"] == (5 if events_url else 2)
    assert kwargs["ssl_ca_certs"] == str(ca)
    # The event log is off the search path: it waits longer than the score cache.
    assert kwargs["socket_timeout"] == (0.2 if user == "cache" else EVENTS_TIMEOUT_S)
    assert boundary.breaker.backoff_s == settings.breaker_backoff_s
    assert "s3cret" not in repr(settings)


def test_cluster_setting_builds_a_cluster_client() -> None:
    settings = CacheSettings(redis_url=SecretStr("redis://127.0.0.1:7000"), redis_cluster=True)
    assert isinstance(redis_client(settings), RedisCluster)


@pytest.mark.parametrize(
    ("url", "settings", "user", "password"),
    [
        ("redis://old:bad@r:6379/0", {"redis_password": "good"}, "old", "good"),
        (
            "redis://old:bad@r:6379/0",
            {"redis_username": "gw", "redis_password": "good"},
            "gw",
            "good",
        ),
        ("redis://:bad@r:6379/0", {"redis_password": "good"}, None, "good"),
        ("redis://old:in-url@r:6379/0", {}, "old", "in-url"),
        ("redis://old:bad@r:6379/0", {"redis_username": "gw"}, "gw", "bad"),
    ],
)
def test_settings_win_over_credentials_in_the_url(
    url: str, settings: dict[str, str], user: str | None, password: str
) -> None:
    # redis-py lets a URL's credentials win over keyword options; the settings say otherwise.
    client = redis_client(CacheSettings.model_validate({"redis_url": url, **settings}))
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs.get("username"), kwargs["password"]) == (user, password)
    assert (kwargs["host"], kwargs["db"]) == ("r", 0)


def test_events_in_a_redis_cluster() -> None:
    settings = CacheSettings(redis_url=SecretStr("redis://127.0.0.1:7000"), redis_cluster=True)
    backend = create_event_log(settings, None, "exp", 100, k=5).backend
    assert isinstance(backend, RedisBackend)
    assert isinstance(backend.redis.client, RedisCluster)


async def test_a_failure_becomes_the_callers_error_and_opens_the_breaker() -> None:
    # Port 1 on loopback refuses connections at once.
    settings = CacheSettings(redis_url=SecretStr("redis://127.0.0.1:1/0"), breaker_backoff_s=60)
    counts = RedisCounts()
    boundary = RedisBoundary(settings, name="events", error=EventStoreError, stats=counts)
    try:
        with pytest.raises(EventStoreError, match="failed: ConnectionError") as failed:
            await boundary.call("PING", boundary.client.ping())
        assert failed.value.__cause__ is not None
        with pytest.raises(EventStoreError, match="skipped"):
            await boundary.call("PING", boundary.client.ping())
    finally:
        await boundary.close()
    assert (counts.errors, counts.skipped, counts.outages) == (1, 1, 1)


async def test_the_event_log_reads_through_an_open_breaker_with_its_own_budget(
    redis_url: str,
) -> None:
    """A report page reads the events right after a Redis failure (not 503 for the whole
    back-off), within a budget of its own rather than the score cache's 50 ms."""
    settings = CacheSettings(redis_url=SecretStr(redis_url), breaker_backoff_s=60)
    assert settings.timeout_s == 0.05
    backend = create_event_log(settings, None, "w-polish-read", 100, k=5).backend
    assert isinstance(backend, RedisBackend)
    try:
        assert backend.redis.timeout_s == EVENTS_TIMEOUT_S
        options = backend.redis.client.connection_pool.connection_kwargs
        assert options["socket_timeout"] == EVENTS_TIMEOUT_S
        await backend.clear()
        await backend.append([{"type": "click", "search_id": "s1", "ts": 1.0}])
        backend.redis.breaker.failed(TimeoutError())  # one slow moment: the breaker opens
        assert backend.redis.breaker.is_open
        assert await backend.read() == [{"type": "click", "search_id": "s1", "ts": 1.0}]
        assert not backend.redis.breaker.is_open  # the read closed it again
        backend.redis.breaker.failed(TimeoutError())
        with pytest.raises(EventStoreError, match="skipped"):  # writes still skip Redis
            await backend.append([{"type": "click", "search_id": "s2", "ts": 2.0}])
        backend.redis.breaker.succeeded()
        await backend.clear()
    finally:
        await backend.close()
