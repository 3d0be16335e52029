"""A model that raises, returns NaN or is too slow never fails a search.

The client gets the upstream's order (``X-Rerank: skipped``) or, when only some
hits could be scored, those reordered among their own positions (``partial``),
with ``X-Rerank-Reason``; the next search after the model recovers is reranked.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from gateway.model.base import Encoded, Pair, Scores
from gateway.model.fake import FakeEncoder, _word_id
from tests.doubles.corpora import POPULATION_FAKE_ORDER as FAKE_ORDER
from tests.doubles.corpora import POPULATION_QUERY as QUERY
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.upstream import ScriptedUpstream, call

SEARCH = {"query": {"match": {"text": QUERY}}, "size": 3}
UPSTREAM_ORDER = ["d0", "d1", "d2"]


class FaultyEncoder(FakeEncoder):
    """FakeEncoder with switchable faults; ``release`` also ends a slow run early."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"  # ok | raise | raise_encode | nan | nan_wall | slow
        self.release = threading.Event()

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        if self.mode == "raise_encode":
            raise RuntimeError("tokenizer exploded: secret internals")
        return super().encode(pairs)

    def score(self, batch: Sequence[Encoded]) -> Scores:
        if self.mode == "raise":
            raise RuntimeError("onnxruntime exploded: secret internals")
        if self.mode == "slow":
            self.release.wait(10)
        scores = super().score(batch)
        if self.mode == "nan":
            return np.full_like(scores, np.nan)
        if self.mode == "nan_wall":  # NaN for the one document about the wall
            wall = _word_id("wall")
            return np.array(
                [np.nan if wall in e.ids else s for e, s in zip(batch, scores, strict=True)],
                dtype=np.float32,
            )
        return scores


async def start(scripted: ScriptedUpstream, gateway: GatewayFactory) -> tuple[str, FaultyEncoder]:
    encoder = FaultyEncoder()
    settings = make_settings(scripted.url, rerank={"window": 8, "timeout_s": 1.0})
    return await gateway(settings, encoder=encoder), encoder


async def assert_recovered(url: str, encoder: FaultyEncoder) -> None:
    encoder.mode = "ok"
    encoder.release.set()
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert (got.status, got.headers["X-Rerank"]) == (200, "full")
    assert got.ids() == FAKE_ORDER


async def assert_upstream_order(url: str, reason: str) -> None:
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.status == 200
    assert got.headers["X-Rerank"] == "skipped"
    assert got.headers["X-Rerank-Reason"] == reason
    assert got.ids() == UPSTREAM_ORDER
    assert [h["_score"] for h in got.json()["hits"]["hits"]] == [8.0, 7.0, 6.0]
    assert b"secret" not in got.body


@pytest.mark.parametrize(
    "mode",
    [
        "raise",  # the model run raises
        "raise_encode",  # the tokenizer raises
        "nan",  # every score is NaN
    ],
)
async def test_model_failure_serves_upstream_order(
    scripted: ScriptedUpstream, gateway: GatewayFactory, mode: str
) -> None:
    url, encoder = await start(scripted, gateway)
    encoder.mode = mode
    await assert_upstream_order(url, "model_error")
    await assert_recovered(url, encoder)


async def test_some_scores_nan(scripted: ScriptedUpstream, gateway: GatewayFactory) -> None:
    url, encoder = await start(scripted, gateway)
    encoder.mode = "nan_wall"
    got = await call("POST", f"{url}/docs/_search", {**SEARCH, "size": 8})
    assert got.status == 200
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == ("partial", "model_error")
    ids = got.ids()
    assert ids[:2] == FAKE_ORDER[:2]
    assert ids[4] == "d4"  # the unscored hit keeps its upstream position
    assert sorted(ids) == sorted(f"d{i}" for i in range(8))
    await assert_recovered(url, encoder)


async def test_model_too_slow(scripted: ScriptedUpstream, gateway: GatewayFactory) -> None:
    url, encoder = await start(scripted, gateway)
    encoder.mode = "slow"
    await assert_upstream_order(url, "deadline")
    await assert_recovered(url, encoder)
