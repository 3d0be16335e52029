"""Warm-up picks the token budget from a batch-size sweep (a model whose cost is modelled)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from gateway.model.base import Encoded, Scores
from gateway.model.fake import FakeEncoder
from gateway.rerank import batch_shape
from gateway.rerank.batcher import Batcher
from gateway.settings import BatcherSettings, ModelSettings

MODEL = ModelSettings(max_length=64)


class CostlyEncoder(FakeEncoder):
    """A ``FeedRunner`` whose run of ``n`` pairs takes ``16 + n²`` ms: fewest seconds per
    pair at 4 (2 and 8 cost a quarter more per pair); records each batch size."""

    def __init__(self, *, per_pair: bool = False) -> None:
        super().__init__()
        self.per_pair = per_pair
        self.sizes: list[int] = []

    def feed(self, batch: Sequence[Encoded]) -> object:
        return list(batch)

    def run(self, feed: object) -> Scores:
        assert isinstance(feed, list)
        return self.score(feed)

    def score(self, batch: Sequence[Encoded]) -> Scores:
        self.sizes.append(len(batch))
        time.sleep((16 + len(batch) ** 2) / 1000)
        return super().score(batch)


@pytest.fixture
async def batchers() -> AsyncIterator[list[Batcher]]:
    made: list[Batcher] = []
    yield made
    for b in made:
        await b.stop()


async def make(made: list[Batcher], encoder: FakeEncoder, **settings: Any) -> Batcher:
    batcher = Batcher(encoder, BatcherSettings(**settings))
    await batcher.start()
    made.append(batcher)
    return batcher


async def test_the_fastest_size_per_pair_sets_the_budget(batchers: list[Batcher]) -> None:
    encoder = CostlyEncoder()
    batcher = await make(batchers, encoder)
    rates = await batch_shape.tune(batcher, MODEL)
    assert rates is not None
    assert max(rates, key=lambda size: rates[size]) == 4
    assert batcher.settings.max_batch_tokens == 4 * MODEL.max_length
    assert batcher.settings.max_batch_pairs == 64  # the pair cap stays as configured
    # Past the peak the sweep stops: 32 pairs per run are never tried.
    assert 32 not in encoder.sizes and 32 not in rates
    assert set(encoder.sizes) <= {1, 2, 4, 8, 16}


async def test_an_explicit_budget_wins(batchers: list[Batcher]) -> None:
    encoder = CostlyEncoder()
    batcher = await make(batchers, encoder, max_batch_tokens=512)
    assert await batch_shape.tune(batcher, MODEL) is None
    assert (batcher.settings.max_batch_tokens, encoder.sizes) == (512, [])


async def test_nothing_to_measure(batchers: list[Batcher]) -> None:
    # A per-pair model runs a batch's pairs one at a time: there is no shape to pick.
    per_pair = await make(batchers, CostlyEncoder(per_pair=True))
    plain = await make(batchers, FakeEncoder())  # not a FeedRunner (no model to time)
    no_sizes = await make(batchers, CostlyEncoder(), sweep_pairs=())
    tei = ModelSettings(backend="tei", tei_url="http://tei:8080")
    remote = await make(batchers, CostlyEncoder())
    for batcher, model in ((per_pair, MODEL), (plain, MODEL), (no_sizes, MODEL), (remote, tei)):
        assert await batch_shape.tune(batcher, model) is None
        assert batcher.settings.max_batch_tokens == 4096


def test_ties_go_to_the_smaller_batch() -> None:
    assert batch_shape.best_size({1: 0.02, 2: 0.01, 4: 0.01, 8: 0.03}) == 2
