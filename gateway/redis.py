"""The one Redis boundary: every Redis client of the gateway (score cache, experiment events).

Both users connect with the same settings, ``CACHE__REDIS_*`` (URL, user name,
password, TLS, CA bundle, cluster); ``EXPERIMENT__EVENTS_REDIS_URL`` only names
another server for the events, reached with those same settings. Both follow
the same policy:

- redis-py never retries; sockets give up after ``CACHE__TIMEOUT_S``;
- every call is bounded by a budget (``CACHE__TIMEOUT_S``; a write or a bulk
  read gets four times that) and any failure becomes the caller's own error
  (``CacheError``, ``EventStoreError``), raised from redis-py's;
- a circuit breaker skips Redis for ``CACHE__BREAKER_BACKOFF_S`` after a failure,
  so a dead Redis costs nothing; one warning when an outage starts, one line
  when Redis answers again.

The event log is off the search path: its client waits longer (``timeout_s`` of its
own, see ``gateway.experiments.events``) and a read for a report page is never
skipped by the breaker (``skip_when_open=False``), so one slow moment of Redis
does not answer the page 503 for the whole back-off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from gateway.errors import GatewayError
from gateway.settings import CacheSettings

log = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
WRITE_FACTOR = 4  # a write (pipeline) or a bulk read may take this many call budgets
T = TypeVar("T")


class Counts(Protocol):
    """Where a boundary counts its trouble (``CacheStats`` is one)."""

    errors: int  # calls that failed or timed out
    skipped: int  # calls skipped while the breaker was open
    outages: int  # times Redis went from available to unavailable


@dataclass(slots=True)
class RedisCounts:
    """``Counts`` for a user with no stats of its own (the event log)."""

    errors: int = 0
    skipped: int = 0
    outages: int = 0


class Breaker:
    """Skips a failing backend for ``backoff_s``, then lets one call probe it.

    Closed: every call goes through. A failure opens it: calls are refused until
    the back-off ends; the first call after that is the probe (the others keep
    being refused for another back-off). A success closes it again. Logs once
    when an outage starts and once when it ends.
    """

    def __init__(
        self,
        name: str,
        backoff_s: float,
        stats: Counts,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.backoff_s = backoff_s
        self.stats = stats
        self._clock = clock
        self._retry_at = 0.0
        self._down_since: float | None = None

    @property
    def is_open(self) -> bool:
        return self._down_since is not None

    def allow(self) -> bool:
        if self._down_since is None:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.backoff_s
        return True

    def succeeded(self) -> None:
        if self._down_since is not None:
            log.info(
                "%s available again after %.1f s of outage",
                self.name,
                self._clock() - self._down_since,
            )
            self._down_since = None

    def failed(self, exc: BaseException) -> None:
        now = self._clock()
        self._retry_at = now + self.backoff_s
        if self._down_since is None:
            self._down_since = now
            self.stats.outages += 1
            log.warning(
                "%s unavailable (%s); going on without it until it answers again",
                self.name,
                type(exc).__name__,
            )
        else:
            log.debug("%s still unavailable (%s)", self.name, type(exc).__name__)


def redis_client(settings: CacheSettings, url: SecretStr | None = None) -> Any:
    """A redis.asyncio client (standalone or cluster) that fails fast instead of retrying.

    ``url`` replaces ``settings.redis_url`` (the events' own server); user name,
    password and TLS options come from ``settings`` either way, and win over
    credentials written in the URL.
    """
    secret = url or settings.redis_url
    assert secret is not None
    target = _credentials_from_settings(secret.get_secret_value(), settings)
    options: dict[str, Any] = {
        "socket_timeout": settings.timeout_s,
        "socket_connect_timeout": settings.timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if target.startswith("rediss://"):
        options["ssl_cert_reqs"] = "required" if settings.redis_verify_tls else "none"
        options["ssl_check_hostname"] = settings.redis_verify_tls
        if settings.redis_ca_bundle is not None:
            options["ssl_ca_certs"] = str(settings.redis_ca_bundle)
    if settings.redis_cluster:
        return RedisCluster.from_url(target, **options)
    return aioredis.Redis.from_url(target, **options)


def _credentials_from_settings(url: str, settings: CacheSettings) -> str:
    """The URL without the user name / password that settings give (redis-py lets the URL win)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    user = None if settings.redis_username is not None else parts.username
    password = None if settings.redis_password is not None else parts.password
    userinfo = quote(user or "", safe="%") + (":" + quote(password, safe="%") if password else "")
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit(parts._replace(netloc=netloc))


class RedisBoundary:
    """One Redis client with its budget and breaker; failures become ``error``."""

    def __init__(
        self,
        settings: CacheSettings,
        *,
        name: str,
        error: type[GatewayError],
        stats: Counts,
        url: SecretStr | None = None,
    ) -> None:
        self.client = redis_client(settings, url)
        self.cluster = settings.redis_cluster
        self.timeout_s = settings.timeout_s
        self.breaker = Breaker(name, settings.breaker_backoff_s, stats)
        self.stats = stats
        self._error = error

    def pipeline(self) -> Any:
        """A non-transactional pipeline (a cluster client splits it by slot)."""
        return self.client.pipeline(transaction=None if self.cluster else False)

    async def call(
        self, what: str, call: Awaitable[T], *, bulk: bool = False, skip_when_open: bool = True
    ) -> T:
        """Run one Redis call within the budget (``bulk``: writes, long reads).

        ``skip_when_open=False``: tried even while the breaker is open (a rare read a
        person waits for); its outcome still opens or closes the breaker."""
        if skip_when_open and not self.breaker.allow():
            if asyncio.iscoroutine(call):
                call.close()  # never started: Redis is being skipped
            self.stats.skipped += 1
            raise self._error(f"redis {what} skipped: unavailable")
        budget_s = self.timeout_s * (WRITE_FACTOR if bulk else 1)
        try:
            async with asyncio.timeout(budget_s):
                result = await call
        except REDIS_ERRORS as exc:
            self.stats.errors += 1
            self.breaker.failed(exc)
            raise self._error(f"redis {what} failed: {type(exc).__name__}") from exc
        self.breaker.succeeded()
        return result

    async def close(self) -> None:
        await self.client.aclose()
