"""Key and value encoding, the in-process LRU, the Redis cache failing fast."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from gateway.errors import CacheError
from gateway.rerank.cache import (
    KEY_PREFIX,
    KeyMaker,
    MemoryCache,
    RedisCache,
    TieredCache,
    cache_key,
    create_cache,
    decode_score,
    encode_score,
)
from gateway.settings import CacheSettings

PARTS = ("fp", "query", "index", "doc", "text")


@pytest.mark.parametrize(
    "score",
    [0.0, -0.0, 1.0, -7.25, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, math.pi],
)
def test_score_round_trips_exactly(score: float) -> None:
    raw = encode_score(score)
    assert len(raw) == 8
    back = decode_score(raw)
    assert back is not None
    assert struct.pack(">d", back) == struct.pack(">d", score)  # bit for bit, sign of zero too


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_score_round_trips(score: float) -> None:
    assert decode_score(encode_score(score)) == score


def test_float32_model_output_survives() -> None:
    import numpy as np

    score = float(np.float32(-3.1415927))
    assert decode_score(encode_score(score)) == score


@pytest.mark.parametrize("raw", [None, b"", b"1234567", b"123456789"])
def test_foreign_values_read_as_misses(raw: bytes | None) -> None:
    assert decode_score(raw) is None


@pytest.mark.parametrize("at", range(len(PARTS) - 1))
def test_no_collision_by_moving_the_boundary(at: int) -> None:
    """("ab", "c") and ("a", "bc") between every two neighbouring parts."""
    left = list(PARTS)
    right = list(PARTS)
    left[at], left[at + 1] = "ab", "c"
    right[at], right[at + 1] = "a", "bc"
    assert cache_key(*left) != cache_key(*right)


@pytest.mark.parametrize("part", range(len(PARTS)))
def test_every_part_changes_the_key(part: int) -> None:
    changed = list(PARTS)
    changed[part] += "x"
    assert cache_key(*PARTS) != cache_key(*changed)


def test_key_shape_and_cluster_hash_tag() -> None:
    key = cache_key(*PARTS)
    assert key.startswith(KEY_PREFIX)
    assert key == cache_key(*PARTS)  # deterministic across calls (and processes: no salt)
    tag = key[key.index("{") : key.index("}") + 1]
    # One search (same fingerprint and query) shares one tag, so one slot in a cluster.
    assert tag in cache_key("fp", "query", "other-index", "other-doc", "other text")
    assert tag not in cache_key("fp", "another query", *PARTS[2:])
    assert tag not in cache_key("fp2", *PARTS[1:])


def test_hash_tag_has_no_concatenation_collision() -> None:
    a = cache_key("ab", "c", "i", "d", "t")
    b = cache_key("a", "bc", "i", "d", "t")
    assert a[: a.index("}")] != b[: b.index("}")]


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (PARTS, "rrg:v1:{07a60b7def446f7e}:1bd068828b7540617e15be90c229d60765ca4ffb"),
        (
            ("onnx:ab12", "what causes é 🙂", "scifact", "4983#2", "a passage"),
            "rrg:v1:{5446ebe5eb5521de}:a6a3d95160ba486ccc46c08fd299e40fe5f3cf4f",
        ),
    ],
)
def test_keys_stay_what_earlier_releases_wrote(parts: tuple[str, ...], key: str) -> None:
    """Entries already in a shared Redis stay readable: the key of given parts is fixed."""
    assert cache_key(*parts) == key
    assert KeyMaker(parts[0], parts[1]).key(*parts[2:]) == key


@given(st.lists(st.text(max_size=12), min_size=5, max_size=5))
def test_one_search_s_keys_are_cache_key_s(parts: list[str]) -> None:
    maker = KeyMaker(parts[0], parts[1])
    assert maker.key(*parts[2:]) == cache_key(*parts)
    assert maker.key(*parts[2:]) == maker.key(*parts[2:])  # the shared head is not consumed


async def test_memory_cache_is_a_bounded_lru() -> None:
    cache = MemoryCache(3)
    await cache.set_many({"a": 1.0, "b": 2.0, "c": 3.0})
    assert await cache.get_many(["a"]) == [1.0]  # "a" is now the most recent
    await cache.set_many({"d": 4.0})
    assert len(cache) == 3
    assert await cache.get_many(["a", "b", "c", "d"]) == [1.0, None, 3.0, 4.0]
    assert cache.stats.hits == 4
    assert cache.stats.misses == 1
    assert cache.stats.writes == 4


async def test_memory_cache_of_size_zero_stores_nothing() -> None:
    cache = MemoryCache(0)
    await cache.set_many({"a": 1.0})
    assert await cache.get_many(["a"]) == [None]


def test_without_redis_the_cache_is_in_process() -> None:
    assert isinstance(create_cache(CacheSettings(memory_entries=5)), MemoryCache)


def test_with_redis_the_process_lru_stands_in_front_unless_it_is_sized_zero() -> None:
    url = SecretStr("redis://127.0.0.1:1/0")
    tiered = create_cache(CacheSettings(redis_url=url, memory_entries=5))
    assert isinstance(tiered, TieredCache)
    assert tiered.stats is tiered.redis.stats  # one set of counters for the metrics
    assert isinstance(create_cache(CacheSettings(redis_url=url, memory_entries=0)), RedisCache)


async def test_the_lru_answers_what_it_holds_when_redis_fails() -> None:
    settings = CacheSettings(redis_url=SecretStr("redis://127.0.0.1:1/0"), breaker_backoff_s=60)
    cache = TieredCache(MemoryCache(10), RedisCache(settings))
    await cache.memory.set_many({"a": 1.5})
    assert await cache.get_many(["a", "b"]) == [1.5, None]  # b: Redis refused
    assert cache.stats.hits == 1
    with pytest.raises(CacheError):  # nothing held: the failure is the reranker's to see
        await cache.get_many(["b"])
    await cache.close()


async def test_unreachable_redis_costs_one_failure_then_nothing() -> None:
    # Port 1 on loopback refuses connections at once.
    settings = CacheSettings(redis_url=SecretStr("redis://127.0.0.1:1/0"), breaker_backoff_s=60)
    cache = RedisCache(settings)
    try:
        with pytest.raises(CacheError):
            await cache.get_many(["k"])
        for _ in range(5):
            with pytest.raises(CacheError):
                await cache.get_many(["k"])
            with pytest.raises(CacheError):
                await cache.set_many({"k": 1.0})
    finally:
        await cache.close()
    assert cache.stats.errors == 1
    assert cache.stats.skipped == 10
    assert cache.stats.outages == 1
