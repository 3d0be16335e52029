"""The reranker over FakeEncoder: dedupe, cache, degrade on model trouble, deadline."""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np
import pytest

from gateway.errors import CacheError
from gateway.model.base import Encoded, Scores
from gateway.model.fake import FakeEncoder
from gateway.rerank.batcher import Batcher
from gateway.rerank.cache import MemoryCache
from gateway.rerank.reranker import Passage, Reranker, sigmoid
from gateway.settings import BatcherSettings
from tests.doubles.encoders import GatedEncoder

QUERY = "berlin wall"


class NaNEncoder(FakeEncoder):
    """NaN for documents that contain the word ``nan``."""

    def score(self, batch: Sequence[Encoded]) -> Scores:
        scores = super().score(batch)
        nan_id = FakeEncoder().encode([("", "nan")])[0].ids[2]
        for i, enc in enumerate(batch):
            if nan_id in enc.ids.tolist():
                scores[i] = np.nan
        return scores


class FailingEncoder(FakeEncoder):
    def score(self, batch: Sequence[Encoded]) -> Scores:
        raise RuntimeError("CUDA out of memory")


class BrokenCache(MemoryCache):
    async def get_many(self, keys: Sequence[str]) -> list[float | None]:
        raise CacheError("down")

    async def set_many(self, items: dict[str, float]) -> None:
        raise CacheError("down")


Factory = Callable[..., Any]


@pytest.fixture
async def make_reranker() -> AsyncIterator[Factory]:
    started: list[Batcher] = []

    async def make(
        encoder: FakeEncoder, cache: MemoryCache | None = None, **settings: Any
    ) -> Reranker:
        mode = settings.pop("score_mode", "logit")
        batcher = Batcher(encoder, BatcherSettings(**{"max_wait_ms": 0.0, **settings}))
        await batcher.start()
        started.append(batcher)
        return Reranker(
            batcher, cache or MemoryCache(100), fingerprint=encoder.fingerprint, score_mode=mode
        )

    yield make
    for batcher in started:
        if isinstance(batcher.encoder, GatedEncoder):
            batcher.encoder.gate.set()
        await batcher.stop()


def passages(*texts: str) -> list[Passage]:
    return [Passage("docs", str(i), t) for i, t in enumerate(texts)]


async def test_full_scores_match_the_model(make_reranker: Factory) -> None:
    encoder = FakeEncoder()
    reranker = await make_reranker(encoder)
    texts = ("the berlin wall", "paris", "wall street")
    out = await reranker.score(QUERY, passages(*texts), 5.0)
    assert out.status == "full" and out.reason is None
    expected = FakeEncoder().score(FakeEncoder().encode([(QUERY, t) for t in texts]))
    assert out.scores == pytest.approx(expected.tolist())


async def test_identical_texts_are_scored_once(make_reranker: Factory) -> None:
    encoder = FakeEncoder()
    reranker = await make_reranker(encoder)
    out = await reranker.score(QUERY, passages("same text", "same text", "other"), 5.0)
    assert out.status == "full"
    assert out.scores[0] == out.scores[1]
    assert encoder.pairs_scored == 2


async def test_cached_scores_skip_the_model(make_reranker: Factory) -> None:
    encoder = FakeEncoder()
    reranker = await make_reranker(encoder)
    first = await reranker.score(QUERY, passages("a berlin", "b"), 5.0)
    await reranker.drain()
    before = encoder.pairs_scored
    again = await reranker.score(QUERY, passages("a berlin", "b", "c"), 5.0)
    assert again.cached == 2
    assert again.scores[:2] == first.scores
    assert encoder.pairs_scored == before + 1


async def test_broken_cache_scores_uncached(make_reranker: Factory) -> None:
    reranker = await make_reranker(FakeEncoder(), BrokenCache(10))
    out = await reranker.score(QUERY, passages("berlin"), 5.0)
    await reranker.drain()
    assert out.status == "full"


async def test_sigmoid_mode(make_reranker: Factory) -> None:
    reranker = await make_reranker(FakeEncoder(), score_mode="sigmoid")
    out = await reranker.score(QUERY, passages("berlin wall"), 5.0)
    raw = FakeEncoder().score(FakeEncoder().encode([(QUERY, "berlin wall")]))[0]
    assert out.scores == [pytest.approx(sigmoid(float(raw)))]
    assert 0 < sigmoid(-30.0) < sigmoid(0.0) == 0.5 < sigmoid(30.0) < 1
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0  # no overflow


async def test_model_exception_degrades(make_reranker: Factory) -> None:
    reranker = await make_reranker(FailingEncoder())
    out = await reranker.score(QUERY, passages("a", "b"), 5.0)
    assert (out.status, out.reason, out.scores) == ("skipped", "model_error", [None, None])


async def test_nan_scores_are_not_used(make_reranker: Factory) -> None:
    reranker = await make_reranker(NaNEncoder())
    out = await reranker.score(QUERY, passages("berlin", "nan here", "wall"), 5.0)
    assert (out.status, out.reason) == ("partial", "model_error")
    assert out.scores[1] is None
    assert all(s is not None and math.isfinite(s) for s in (out.scores[0], out.scores[2]))


async def test_overload_skips(make_reranker: Factory) -> None:
    reranker = await make_reranker(FakeEncoder(), max_queue_pairs=2)
    out = await reranker.score(QUERY, passages("a", "b", "c"), 5.0)
    assert (out.status, out.reason) == ("skipped", "overloaded")


async def test_deadline_with_nothing_scored_skips(make_reranker: Factory) -> None:
    reranker = await make_reranker(GatedEncoder())
    out = await reranker.score(QUERY, passages("slow one", "slow two"), 0.2)
    assert (out.status, out.reason, out.scores) == ("skipped", "deadline", [None, None])


async def test_deadline_keeps_what_was_scored(make_reranker: Factory) -> None:
    encoder = GatedEncoder()
    reranker = await make_reranker(encoder, max_batch_pairs=1)
    out = await reranker.score(QUERY, passages("berlin", "wall", "slow"), 1.0)
    assert (out.status, out.reason) == ("partial", "deadline")
    assert out.scores[0] is not None and out.scores[1] is not None and out.scores[2] is None
    # The stuck pair is dropped from the queue, not run later for nobody.
    encoder.gate.set()
    assert reranker.batcher.queued_pairs == 0


class StallingEncoder(FakeEncoder):
    """Runs ``runs`` batches, then stalls (a model too slow for the deadline)."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.runs = runs
        self.gate = threading.Event()
        self.seen: list[list[tuple[int, ...]]] = []

    def score(self, batch: Sequence[Encoded]) -> Scores:
        if len(self.seen) >= self.runs:
            self.gate.wait(10)
        self.seen.append([tuple(e.ids.tolist()) for e in batch])
        return super().score(batch)


async def test_a_deadline_leaves_the_top_k_reranked(make_reranker: Factory) -> None:
    encoder = StallingEncoder(runs=2)
    cache = MemoryCache(100)
    reranker = await make_reranker(encoder, cache, max_batch_pairs=2)
    window = passages(*(f"doc{i}" for i in range(8)))
    # A cached score below the scored prefix is left out too: only the top k count.
    seeded = await make_reranker(FakeEncoder(), cache)
    await seeded.score(QUERY, window[6:7], 5.0)
    await seeded.drain()
    out = await reranker.score(QUERY, window, 0.5)
    encoder.gate.set()
    assert (out.status, out.reason) == ("partial", "deadline")
    assert [s is not None for s in out.scores] == [True] * 4 + [False] * 4
    # The batcher ran the window best-first: two runs of two pairs, in first-stage order.
    ids = [tuple(e.ids.tolist()) for e in FakeEncoder().encode([(QUERY, p.text) for p in window])]
    assert encoder.seen[:2] == [ids[0:2], ids[2:4]]
