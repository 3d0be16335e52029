"""Score cache: an in-process LRU by default, Redis when ``GATEWAY_CACHE__REDIS_URL`` is set.

Keys identify (model fingerprint, query text, index, document id, hash of the
scored text); values are the raw model score as 8 exact bytes (IEEE 754
double, big-endian). Every part of a key is length-prefixed before hashing, so
no two inputs share a key by concatenation.

Keys carry a Redis Cluster hash tag made from (fingerprint, query): all keys of
one search live in one slot, so a search reads its scores with one ``MGET`` on
one node in cluster mode too (a multi-slot ``MGET`` is refused with CROSSSLOT).

Redis trouble (down, slow, full, wrong password) never reaches a search: each
call is bounded by ``timeout_s``, failures become ``CacheError`` here (the one
boundary for redis-py), and a circuit breaker skips Redis for ``backoff_s``
after a failure, so a dead Redis costs nothing. One warning is logged when an
outage starts and one line when Redis answers again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from gateway.errors import CacheError
from gateway.settings import CacheSettings

log = logging.getLogger(__name__)

KEY_PREFIX = "rrg:v1:"
_VALUE = struct.Struct(">d")
_REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
T = TypeVar("T")


def _digest(parts: Sequence[bytes], size: int) -> str:
    digest = hashlib.blake2b(digest_size=size)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def cache_key(fingerprint: str, query: str, index: str, doc_id: str, text: str) -> str:
    """A key no two different inputs share: every part is length-prefixed before hashing.

    ``rrg:v1:{<tag>}:<digest>``: the tag (fingerprint, query) is the cluster hash
    tag; the digest covers every part, the tag's included.
    """
    fp, q = fingerprint.encode(), query.encode()
    text_hash = hashlib.blake2b(text.encode(), digest_size=16).digest()
    tag = _digest((fp, q), 8)
    digest = _digest((fp, q, index.encode(), doc_id.encode(), text_hash), 20)
    return f"{KEY_PREFIX}{{{tag}}}:{digest}"


def encode_score(score: float) -> bytes:
    return _VALUE.pack(score)


def decode_score(raw: bytes | None) -> float | None:
    if raw is None or len(raw) != _VALUE.size:
        return None
    value: float = _VALUE.unpack(raw)[0]
    return value


@dataclass(slots=True)
class CacheStats:
    """Running totals, read by the metrics endpoint."""

    hits: int = 0  # pairs found in the cache
    misses: int = 0  # pairs looked up and not found
    errors: int = 0  # cache calls that failed or timed out
    writes: int = 0  # pairs written back
    skipped: int = 0  # cache calls skipped while the breaker was open
    outages: int = 0  # times the cache went from available to unavailable
    coalesced: int = 0  # pairs taken from an identical search's in-flight scoring


class ScoreCache(Protocol):
    stats: CacheStats

    async def get_many(self, keys: Sequence[str]) -> list[float | None]: ...

    async def set_many(self, items: dict[str, float]) -> None: ...

    async def close(self) -> None: ...


def _count(stats: CacheStats, values: list[float | None]) -> None:
    hits = sum(v is not None for v in values)
    stats.hits += hits
    stats.misses += len(values) - hits


class MemoryCache:
    """Bounded LRU inside the process (entries, not bytes)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._data: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        out: list[float | None] = []
        for key in keys:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            out.append(value)
        _count(self.stats, out)
        return out

    async def set_many(self, items: dict[str, float]) -> None:
        if self.max_entries <= 0:
            return
        for key, value in items.items():
            self._data[key] = value
            self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        self.stats.writes += len(items)

    async def close(self) -> None:
        self._data.clear()


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
        stats: CacheStats,
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
                "%s unavailable (%s); searches are scored without it until it answers again",
                self.name,
                type(exc).__name__,
            )
        else:
            log.debug("%s still unavailable (%s)", self.name, type(exc).__name__)


def redis_client(settings: CacheSettings) -> Any:
    """A redis.asyncio client (standalone or cluster) that fails fast instead of retrying."""
    assert settings.redis_url is not None
    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {
        "socket_timeout": settings.timeout_s,
        "socket_connect_timeout": settings.timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if url.startswith("rediss://"):
        options["ssl_cert_reqs"] = "required" if settings.redis_verify_tls else "none"
        options["ssl_check_hostname"] = settings.redis_verify_tls
        if settings.redis_ca_bundle is not None:
            options["ssl_ca_certs"] = str(settings.redis_ca_bundle)
    if settings.redis_cluster:
        return RedisCluster.from_url(url, **options)
    return aioredis.Redis.from_url(url, **options)


class RedisCache:
    """Shared cache in Redis: one MGET per search, pipelined SET EX for write-back."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.stats = CacheStats()
        self.breaker = Breaker("score cache (redis)", settings.breaker_backoff_s, self.stats)
        self._redis = redis_client(settings)
        self._cluster = settings.redis_cluster

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        if not keys:
            return []
        if self._cluster:
            raw = await self._call("read", self._redis.mget_nonatomic(list(keys)))
        else:
            raw = await self._call("read", self._redis.mget(list(keys)))
        values = [decode_score(r if isinstance(r, bytes) else None) for r in raw]
        _count(self.stats, values)
        return values

    async def set_many(self, items: dict[str, float]) -> None:
        if not items:
            return
        pipe = self._redis.pipeline(transaction=None if self._cluster else False)
        for key, value in items.items():
            pipe.set(key, encode_score(value), ex=self.settings.ttl_s)
        await self._call("write", pipe.execute(), timeout_s=self.settings.timeout_s * 4)
        self.stats.writes += len(items)

    async def _call(self, what: str, call: Awaitable[T], timeout_s: float | None = None) -> T:
        """Run one Redis call within the budget; any failure becomes ``CacheError``."""
        if not self.breaker.allow():
            if asyncio.iscoroutine(call):
                call.close()  # never started: Redis is being skipped
            self.stats.skipped += 1
            raise CacheError(f"redis {what} skipped: unavailable")
        try:
            async with asyncio.timeout(timeout_s or self.settings.timeout_s):
                result = await call
        except _REDIS_ERRORS as exc:
            self.stats.errors += 1
            self.breaker.failed(exc)
            raise CacheError(f"redis {what} failed: {type(exc).__name__}") from exc
        self.breaker.succeeded()
        return result

    async def close(self) -> None:
        await self._redis.aclose()


def create_cache(settings: CacheSettings) -> ScoreCache:
    if settings.redis_url is not None:
        return RedisCache(settings)
    return MemoryCache(settings.memory_entries)
