"""Score cache: an in-process LRU by default, Redis when ``GATEWAY_CACHE__REDIS_URL`` is set.

Keys identify (model fingerprint, query text, index, document id, hash of the
scored text); values are the raw model score as 8 exact bytes (IEEE 754
double, big-endian). Every part of a key is length-prefixed before hashing, so
no two inputs share a key by concatenation.

Keys carry a Redis Cluster hash tag made from (fingerprint, query): all keys of
one search live in one slot, so a search reads its scores with one ``MGET`` on
one node in cluster mode too (a multi-slot ``MGET`` is refused with CROSSSLOT).

Redis trouble (down, slow, full, wrong password) never reaches a search: the
client, its budget and its circuit breaker are ``gateway.redis``'s (the one
Redis boundary, shared with the experiment events), and every failure becomes
``CacheError`` there, so a dead Redis costs nothing.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import CacheError
from gateway.redis import RedisBoundary
from gateway.settings import CacheSettings

KEY_PREFIX = "rrg:v1:"
_VALUE = struct.Struct(">d")


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
    return KeyMaker(fingerprint, query).key(index, doc_id, text)


class KeyMaker:
    """The keys of one search (one fingerprint and query): ``cache_key``'s keys, with the
    tag and the hash of (fingerprint, query) made once rather than once per passage."""

    __slots__ = ("_head", "_prefix")

    def __init__(self, fingerprint: str, query: str) -> None:
        fp, q = fingerprint.encode(), query.encode()
        self._prefix = f"{KEY_PREFIX}{{{_digest((fp, q), 8)}}}:"
        head = hashlib.blake2b(digest_size=20)
        for part in (fp, q):
            head.update(len(part).to_bytes(8, "big"))
            head.update(part)
        self._head = head

    def key(self, index: str, doc_id: str, text: str) -> str:
        i, d = index.encode(), doc_id.encode()
        digest = self._head.copy()
        digest.update(
            b"".join(
                (
                    len(i).to_bytes(8, "big"),
                    i,
                    len(d).to_bytes(8, "big"),
                    d,
                    _TEXT_HASH_LEN,
                    hashlib.blake2b(text.encode(), digest_size=16).digest(),
                )
            )
        )
        return self._prefix + digest.hexdigest()


_TEXT_HASH_LEN = (16).to_bytes(8, "big")  # the length prefix of the 16-byte text hash


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


class RedisCache:
    """Shared cache in Redis: one MGET per search, pipelined SET EX for write-back."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.stats = CacheStats()
        self.redis = RedisBoundary(
            settings, name="score cache (redis)", error=CacheError, stats=self.stats
        )

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        if not keys:
            return []
        client = self.redis.client
        read = client.mget_nonatomic if self.redis.cluster else client.mget
        raw = await self.redis.call("read", read(list(keys)))
        values = [decode_score(r if isinstance(r, bytes) else None) for r in raw]
        _count(self.stats, values)
        return values

    async def set_many(self, items: dict[str, float]) -> None:
        if not items:
            return
        pipe = self.redis.pipeline()
        for key, value in items.items():
            pipe.set(key, encode_score(value), ex=self.settings.ttl_s)
        await self.redis.call("write", pipe.execute(), bulk=True)
        self.stats.writes += len(items)

    async def close(self) -> None:
        await self.redis.close()


class TieredCache:
    """The process's LRU in front of Redis: a key's score never changes (the key covers the
    model, the query and the text), so what one replica read or wrote stays true, and a
    search repeated on it is served without a Redis round trip. Misses go to Redis in one
    ``MGET``; its hits fill the LRU; write-backs go to both. ``stats`` are Redis's, with
    the LRU's hits counted as hits."""

    def __init__(self, memory: MemoryCache, redis: RedisCache) -> None:
        self.memory = memory
        self.redis = redis
        self.stats = redis.stats

    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        values = await self.memory.get_many(keys)
        missing = [i for i, v in enumerate(values) if v is None]
        self.stats.hits += len(values) - len(missing)
        if missing:
            try:
                found = await self.redis.get_many([keys[i] for i in missing])
            except CacheError:  # Redis down or slow: the LRU's hits still count
                if len(missing) == len(values):
                    raise
                return values
            for i, value in zip(missing, found, strict=True):
                values[i] = value
            await self.memory.set_many(
                {keys[i]: v for i, v in zip(missing, found, strict=True) if v is not None}
            )
        return values

    async def set_many(self, items: dict[str, float]) -> None:
        await self.memory.set_many(items)
        await self.redis.set_many(items)

    async def close(self) -> None:
        await self.memory.close()
        await self.redis.close()


def create_cache(settings: CacheSettings) -> ScoreCache:
    """Redis (shared by the replicas) behind an in-process LRU of ``MEMORY_ENTRIES``; the
    LRU alone without Redis; Redis alone with ``MEMORY_ENTRIES=0``."""
    if settings.redis_url is None:
        return MemoryCache(settings.memory_entries)
    if settings.memory_entries <= 0:
        return RedisCache(settings)
    return TieredCache(MemoryCache(settings.memory_entries), RedisCache(settings))
