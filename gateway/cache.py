"""Score cache: an in-process LRU by default, Redis when ``GATEWAY_CACHE__REDIS_URL`` is set.

Keys identify (model fingerprint, query text, index, document id, hash of the
scored text); values are the raw model score as 8 exact bytes. Redis errors
and timeouts become ``CacheError`` here, the one boundary for redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.errors import CacheError
from gateway.settings import CacheSettings

KEY_PREFIX = "rrg:v1:"
_VALUE = struct.Struct(">d")


def cache_key(fingerprint: str, query: str, index: str, doc_id: str, text: str) -> str:
    """A key no two different inputs share: every part is length-prefixed before hashing."""
    digest = hashlib.blake2b(digest_size=20)
    text_hash = hashlib.blake2b(text.encode(), digest_size=16).digest()
    for part in (fingerprint.encode(), query.encode(), index.encode(), doc_id.encode(), text_hash):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return KEY_PREFIX + digest.hexdigest()


def encode_score(score: float) -> bytes:
    return _VALUE.pack(score)


def decode_score(raw: bytes | None) -> float | None:
    if raw is None or len(raw) != _VALUE.size:
        return None
    value: float = _VALUE.unpack(raw)[0]
    return value


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    writes: int = 0


class ScoreCache(Protocol):
    stats: CacheStats

    async def get_many(self, keys: Sequence[str]) -> list[float | None]: ...

    async def set_many(self, items: dict[str, float]) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """Bounded LRU inside the process (entries, not bytes)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._data: OrderedDict[str, float] = OrderedDict()

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        out: list[float | None] = []
        for key in keys:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            out.append(value)
        self._count(out)
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

    def _count(self, values: list[float | None]) -> None:
        hits = sum(v is not None for v in values)
        self.stats.hits += hits
        self.stats.misses += len(values) - hits


class RedisCache:
    """Shared cache in Redis: one MGET per search, pipelined SET EX for write-back."""

    def __init__(self, settings: CacheSettings) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.stats = CacheStats()
        self._redis = aioredis.Redis.from_url(
            settings.redis_url.get_secret_value(),
            socket_timeout=settings.timeout_s,
            socket_connect_timeout=settings.timeout_s,
        )

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        if not keys:
            return []
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                raw = await self._redis.mget(list(keys))
        except (RedisError, OSError, TimeoutError) as exc:
            self.stats.errors += 1
            raise CacheError(f"redis read failed: {type(exc).__name__}") from exc
        values = [decode_score(r if isinstance(r, bytes) else None) for r in raw]
        hits = sum(v is not None for v in values)
        self.stats.hits += hits
        self.stats.misses += len(values) - hits
        return values

    async def set_many(self, items: dict[str, float]) -> None:
        if not items:
            return
        try:
            async with asyncio.timeout(self.settings.timeout_s * 4):
                pipe = self._redis.pipeline(transaction=False)
                for key, value in items.items():
                    pipe.set(key, encode_score(value), ex=self.settings.ttl_s)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self.stats.errors += 1
            raise CacheError(f"redis write failed: {type(exc).__name__}") from exc
        self.stats.writes += len(items)

    async def close(self) -> None:
        await self._redis.aclose()


def create_cache(settings: CacheSettings) -> ScoreCache:
    if settings.redis_url is not None:
        return RedisCache(settings)
    return MemoryCache(settings.memory_entries)
