"""The batcher with the deterministic FakeEncoder: budgets, order, skipping, overload, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np
import pytest

from gateway.errors import ModelError, Overloaded
from gateway.model.base import Encoded, FeedRunner, Pair, Scores
from gateway.model.fake import FakeEncoder
from gateway.rerank.batcher import ENCODE_SLICE_PAIRS, INLINE_QUERY_CHARS, Batcher, warm_up_shapes
from gateway.settings import BatcherSettings, ModelSettings
from tests.doubles.encoders import RecordingEncoder
from tests.doubles.waits import wait_for


class BrokenEncoder(FakeEncoder):
    def __init__(self, exc: Exception, *, on_encode: bool = False) -> None:
        super().__init__()
        self.exc = exc
        self.on_encode = on_encode

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        if self.on_encode:
            raise self.exc
        return super().encode(pairs)

    def score(self, batch: Sequence[Encoded]) -> Scores:
        raise self.exc


Factory = Callable[..., Any]


@pytest.fixture
async def make_batcher() -> AsyncIterator[Factory]:
    started: list[Batcher] = []

    async def make(encoder: FakeEncoder, **settings: Any) -> Batcher:
        values = {"max_wait_ms": 0.0, **settings}
        batcher = Batcher(encoder, BatcherSettings(**values))
        await batcher.start()
        started.append(batcher)
        return batcher

    yield make
    for batcher in started:
        await batcher.stop()


def doc(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


async def test_scores_come_back_per_pair(make_batcher: Factory) -> None:
    encoder = FakeEncoder()
    batcher = await make_batcher(encoder)
    encoded = await batcher.encode([("berlin wall", "the berlin wall fell"), ("berlin", "paris")])
    scores = await asyncio.gather(*batcher.submit(encoded))
    expected = encoder.score(encoded).tolist()
    assert scores == pytest.approx(expected)
    assert scores[0] > scores[1]


async def test_batches_respect_the_token_budget_counting_padding(make_batcher: Factory) -> None:
    encoder = RecordingEncoder()
    batcher = await make_batcher(encoder, max_batch_tokens=40, max_batch_pairs=64)
    lengths = [2, 12, 3, 9, 1, 14, 5, 5, 7, 0, 11, 4]  # doc words; pair length = words + 4
    encoded = await batcher.encode([("q", doc(n)) for n in lengths])
    await asyncio.gather(*batcher.submit(encoded))
    assert sorted(n for b in encoder.batches for n in b) == sorted(n + 4 for n in lengths)
    for batch in encoder.batches:
        assert len(batch) * max(batch) <= 40 or len(batch) == 1
        assert batch == sorted(batch)  # sorted by length inside a batch
    assert batcher.stats.pairs == len(lengths)
    assert batcher.stats.padded_tokens == sum(len(b) * max(b) for b in encoder.batches)
    assert batcher.stats.real_tokens == sum(n + 4 for n in lengths)


async def test_length_sorting_groups_similar_lengths(make_batcher: Factory) -> None:
    encoder = RecordingEncoder()
    batcher = await make_batcher(encoder, max_batch_tokens=10_000, max_batch_pairs=4)
    lengths = [1, 30, 2, 31, 3, 32, 4, 33]
    encoded = await batcher.encode([("q", doc(n)) for n in lengths])
    await asyncio.gather(*batcher.submit(encoded))
    assert sorted(map(sorted, encoder.batches)) == [[5, 6, 7, 8], [34, 35, 36, 37]]


async def test_pair_cap(make_batcher: Factory) -> None:
    encoder = RecordingEncoder()
    batcher = await make_batcher(encoder, max_batch_pairs=3)
    encoded = await batcher.encode([("q", "d")] * 7)
    await asyncio.gather(*batcher.submit(encoded))
    assert sorted(len(b) for b in encoder.batches) == [1, 3, 3]


async def test_cancelled_items_are_not_run(make_batcher: Factory) -> None:
    encoder = RecordingEncoder()
    batcher = await make_batcher(encoder)
    encoded = await batcher.encode([("q", doc(n)) for n in range(6)])
    futures = batcher.submit(encoded)
    for fut in futures[::2]:  # the caller gave up before the consumer looked
        fut.cancel()
    await asyncio.gather(*futures[1::2])
    assert encoder.pairs_scored == 3
    assert batcher.stats.skipped_pairs == 3


async def test_overload_is_refused_at_submit(make_batcher: Factory) -> None:
    batcher = await make_batcher(FakeEncoder(), max_queue_pairs=4)
    encoded = await batcher.encode([("q", "d")] * 5)
    with pytest.raises(Overloaded):
        batcher.submit(encoded)
    assert batcher.queued_pairs == 0
    assert len(await asyncio.gather(*batcher.submit(encoded[:4]))) == 4


async def test_model_exception_fails_the_batch_as_model_error(make_batcher: Factory) -> None:
    batcher = await make_batcher(BrokenEncoder(RuntimeError("boom")))
    encoded = await batcher.encode([("q", "d"), ("q", "e")])
    results = await asyncio.gather(*batcher.submit(encoded), return_exceptions=True)
    assert all(isinstance(r, ModelError) for r in results)
    # The consumer survives: the next submission is served (and fails the same way).
    again = await asyncio.gather(*batcher.submit(encoded[:1]), return_exceptions=True)
    assert isinstance(again[0], ModelError)


async def test_tokenizer_exception_is_a_model_error(make_batcher: Factory) -> None:
    batcher = await make_batcher(BrokenEncoder(ValueError("bad"), on_encode=True))
    with pytest.raises(ModelError):
        await batcher.encode([("q", "d")])


class SlowTokenizer(FakeEncoder):
    """Its first ``encode`` call waits for ``gate``; counts the pairs it tokenized."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Event()
        self.encoded: list[int] = []

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        self.entered.set()
        self.gate.wait(10)
        self.encoded.append(len(pairs))
        return super().encode(pairs)


async def test_a_search_that_gives_up_stops_its_tokenizing(make_batcher: Factory) -> None:
    encoder = SlowTokenizer()
    batcher = await make_batcher(encoder)
    pairs = [("q", doc(i + 1)) for i in range(5 * ENCODE_SLICE_PAIRS)]
    encoding = asyncio.create_task(batcher.encode(pairs))
    await asyncio.to_thread(encoder.entered.wait, 10)
    encoding.cancel()  # the search's deadline passed while its first slice was tokenized
    encoder.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await encoding
    await wait_for(lambda: encoder.encoded, what="the first slice tokenized")
    await asyncio.sleep(0.05)  # time for a second slice, were one started
    assert encoder.encoded == [ENCODE_SLICE_PAIRS]  # one slice, not the whole window


async def test_slices_give_every_pair_in_order(make_batcher: Factory) -> None:
    batcher = await make_batcher(FakeEncoder())
    pairs = [("q", doc(i + 1)) for i in range(2 * ENCODE_SLICE_PAIRS + 3)]
    got = await batcher.encode(pairs)
    assert [len(e) for e in got] == [len(e) for e in FakeEncoder().encode(pairs)]


async def test_stop_cancels_what_is_still_queued() -> None:
    batcher = Batcher(FakeEncoder(), BatcherSettings(max_wait_ms=0.0))
    encoded = FakeEncoder().encode([("q", "d")])
    futures = batcher.submit(encoded)  # never started: nothing consumes
    await batcher.stop()
    assert all(f.cancelled() for f in futures)


def test_fake_encoder_truncates_the_document_side() -> None:
    enc = FakeEncoder(max_length=8).encode([("a b", doc(20))])[0]
    assert len(enc) == 8 and enc.truncated
    assert np.count_nonzero(enc.type_ids == 0) == 4  # [CLS] a b [SEP] kept whole


class PipelinedEncoder(FakeEncoder):
    """A ``FeedRunner``: records which thread built each feed and ran each batch, and
    holds the first run until ``release`` is set (a slow model run)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.second_feed = threading.Event()
        self.events: list[tuple[str, str, int]] = []  # (step, thread name, batch size)
        self.ahead_seen: list[int] = []  # feeds built minus runs finished, at each feed

    def feed(self, batch: Sequence[Encoded]) -> object:
        with self._lock:
            self.events.append(("feed", threading.current_thread().name, len(batch)))
            feeds = sum(e[0] == "feed" for e in self.events)
            runs = sum(e[0] == "run" for e in self.events)
            self.ahead_seen.append(feeds - runs)
        if feeds == 2:
            self.second_feed.set()
        return list(batch)

    def run(self, feed: object) -> Scores:
        assert isinstance(feed, list)
        if not any(e[0] == "run" for e in self.events):
            self.release.wait(10)
        scores = super().score(feed)
        with self._lock:
            self.events.append(("run", threading.current_thread().name, len(feed)))
        return scores


def test_pipelined_encoder_is_a_feed_runner() -> None:
    assert isinstance(PipelinedEncoder(), FeedRunner)
    assert not isinstance(FakeEncoder(), FeedRunner)


async def test_next_batch_is_built_while_the_model_runs(make_batcher: Factory) -> None:
    encoder = PipelinedEncoder()
    batcher = await make_batcher(encoder, max_batch_pairs=2)
    encoded = await batcher.encode([("q", doc(n)) for n in range(6)])
    futures = batcher.submit(encoded)
    # The first run is held: the second batch's input gets built meanwhile.
    assert await asyncio.to_thread(encoder.second_feed.wait, 10)
    assert [e[0] for e in encoder.events] == ["feed", "feed"]
    encoder.release.set()
    await asyncio.gather(*futures)
    steps = [(step, name.rsplit("_", 1)[0]) for step, name, _ in encoder.events]
    assert steps[:3] == [("feed", "model-feed"), ("feed", "model-feed"), ("run", "model")]
    assert max(encoder.ahead_seen) <= 2  # one batch running, at most one prepared ahead
    assert batcher.stats.prepared_ahead >= 1
    assert batcher.stats.pairs == 6 and encoder.pairs_scored == 6


async def test_prepared_batch_whose_callers_left_is_not_run(make_batcher: Factory) -> None:
    encoder = PipelinedEncoder()
    batcher = await make_batcher(encoder, max_batch_pairs=2)
    first = batcher.submit(await batcher.encode([("q", doc(1)), ("q", doc(2))]))
    later = batcher.submit(await batcher.encode([("q", doc(3)), ("q", doc(4))]))
    assert await asyncio.to_thread(encoder.second_feed.wait, 10)
    for fut in later:  # their search hit its deadline while the first batch ran
        fut.cancel()
    encoder.release.set()
    await asyncio.gather(*first)
    survivor = batcher.submit(await batcher.encode([("q", doc(5))]))
    await asyncio.gather(*survivor)
    assert encoder.pairs_scored == 3
    assert batcher.stats.skipped_pairs == 2


async def test_feed_failure_fails_only_that_batch(make_batcher: Factory) -> None:
    class BadFeed(PipelinedEncoder):
        def feed(self, batch: Sequence[Encoded]) -> object:
            raise RuntimeError("bad input")

    batcher = await make_batcher(BadFeed())
    results = await asyncio.gather(
        *batcher.submit(await batcher.encode([("q", "d")])), return_exceptions=True
    )
    assert isinstance(results[0], ModelError)
    assert batcher.queued_pairs == 0


def test_warm_up_shapes_follow_the_settings() -> None:
    def shapes(mode: str, budget: int = 4096, **model: Any) -> list[tuple[int, int]]:
        batcher = BatcherSettings(max_batch_tokens=budget, max_batch_pairs=64)
        return warm_up_shapes(batcher, ModelSettings.model_validate(model), mode)

    assert shapes("auto") == []  # cpu: one tiny run is enough (dynamic shapes, no kernels)
    assert shapes("one", device="cuda") == []
    assert shapes("auto", device="cuda") == [(1, 256), (16, 256)]
    assert shapes("shapes", max_length=512) == [(1, 512), (8, 512)]
    assert shapes("shapes", budget=100) == [(1, 100)]
    tei = {"backend": "tei", "tei_url": "http://tei:8080", "device": "cuda"}
    assert shapes("shapes", **tei) == []  # a remote scorer takes text, not token ids


async def test_warm_up_runs_each_shape_on_the_model_thread(make_batcher: Factory) -> None:
    encoder = RecordingEncoder()
    batcher = await make_batcher(encoder)
    await batcher.warm_up([(1, 16), (8, 256)])
    assert encoder.batches == [[16], [256] * 8]
    assert batcher.stats.batches == 0  # warm-up is not traffic


class ClippingEncoder(FakeEncoder):
    """Cuts queries to 5 characters; records the thread that did; may fail."""

    def __init__(self, exc: Exception | None = None) -> None:
        super().__init__()
        self.exc = exc
        self.threads: list[int] = []

    def clip_query(self, query: str) -> str:
        self.threads.append(threading.get_ident())
        if self.exc is not None:
            raise self.exc
        return query[:5]


async def test_short_queries_are_clipped_on_the_loop_long_ones_in_a_thread(
    make_batcher: Factory,
) -> None:
    encoder = ClippingEncoder()
    batcher = await make_batcher(encoder)
    assert await batcher.clip_query("q" * INLINE_QUERY_CHARS) == "qqqqq"
    assert await batcher.clip_query("l" * (INLINE_QUERY_CHARS + 1)) == "lllll"
    loop_thread = threading.get_ident()
    assert encoder.threads[0] == loop_thread and encoder.threads[1] != loop_thread
    assert await (await make_batcher(FakeEncoder())).clip_query("as is") == "as is"


@pytest.mark.parametrize("length", [10, INLINE_QUERY_CHARS + 1])
async def test_a_failing_clip_is_a_model_error_on_either_path(
    make_batcher: Factory, length: int
) -> None:
    batcher = await make_batcher(ClippingEncoder(RuntimeError("tokenizer broke")))
    with pytest.raises(ModelError, match="tokenization failed: RuntimeError"):
        await batcher.clip_query("q" * length)
