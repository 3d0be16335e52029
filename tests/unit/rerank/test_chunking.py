"""Long-document strategies: pieces, pooling, and truncate vs chunk-max on the real model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.errors import ModelError
from gateway.model.base import CrossEncoder
from gateway.model.fake import FakeEncoder
from gateway.model.onnx import OnnxCrossEncoder
from gateway.rerank.batcher import Batcher
from gateway.rerank.cache import MemoryCache
from gateway.rerank.chunking import ChunkSpec, Piece, pieces, pool
from gateway.rerank.profiles import Profiles
from gateway.rerank.relevance import score_window
from gateway.rerank.reranker import Reranker
from gateway.settings import BatcherSettings, ModelSettings, RelevanceSettings, RerankSettings

FILLER = (
    "The old road network of the empire linked provinces with paved stone routes. "
    "Tax collectors travelled these roads each spring to count grain and cattle. "
    "Merchants built inns beside the milestones and traded wine, salt and pottery. "
)
ANSWER = "Whales breathe air through a blowhole on the top of their heads."
QUERY = "how do whales breathe"


class _NoSplit:
    """An encoder without a tokenizer-backed ``split``."""

    fingerprint = "nosplit"


async def test_pieces_chunk_cap_and_order() -> None:
    spec = ChunkSpec(strategy="chunk", tokens=3, overlap=1, max_chunks=2)
    got = await pieces([["a b c d e f g"], [], ["x"]], spec, FakeEncoder())
    assert got == [Piece(0, 0, "a b c"), Piece(0, 1, "c d e"), Piece(2, 0, "x")]


async def test_truncate_and_encoders_without_split_give_one_piece_per_segment() -> None:
    long = [["a b c d e f g", "h i"]]
    chunk = ChunkSpec(strategy="chunk", tokens=3, overlap=0)
    assert await pieces(long, ChunkSpec(), FakeEncoder()) == [
        Piece(0, 0, "a b c d e f g"),
        Piece(0, 1, "h i"),
    ]
    assert len(await pieces(long, chunk, _NoSplit())) == 2
    assert len(await pieces(long, chunk, FakeEncoder())) == 4


def test_pool_max_mean_first_ignores_unscored() -> None:
    assert pool([1.0, 3.0, 2.0], "max").score == 3.0
    assert pool([1.0, 3.0, 2.0], "max").chunk == 1
    assert pool([1.0, 3.0, 2.0], "mean").score == 2.0
    assert pool([None, 3.0, 2.0], "first").score == 3.0
    assert pool([None, 3.0, 2.0], "first").chunk == 1
    assert pool([None, None], "max").score is None


def test_real_tokenizer_split_offsets_cover_text(model_dir: Path) -> None:
    enc = OnnxCrossEncoder(model_dir, ModelSettings(path=model_dir, max_length=48))
    (parts,) = enc.split([FILLER + ANSWER], 24, 4)
    assert len(parts) >= 3
    assert parts[0].startswith("The old road")
    assert parts[-1].endswith("heads.")
    assert all(p in FILLER + ANSWER for p in parts)


@pytest.fixture
async def reranker_for() -> AsyncIterator[Callable[[CrossEncoder], Reranker]]:
    batchers: list[Batcher] = []

    def make(encoder: CrossEncoder) -> Reranker:
        batcher = Batcher(encoder, BatcherSettings(max_wait_ms=0))
        batchers.append(batcher)
        return Reranker(batcher, MemoryCache(1000), fingerprint=encoder.fingerprint)

    yield make
    for b in batchers:
        await b.stop()


async def test_answer_in_third_chunk_found_by_max_missed_by_truncate(
    model_dir: Path, reranker_for: Callable[[CrossEncoder], Reranker]
) -> None:
    encoder = OnnxCrossEncoder(model_dir, ModelSettings(path=model_dir, max_length=48))
    reranker = reranker_for(encoder)
    await reranker.batcher.start()
    hits = [
        {"_index": "d", "_id": "long", "_score": 2.0, "_source": {"text": FILLER + ANSWER}},
        {
            "_index": "d",
            "_id": "near",
            "_score": 1.0,
            "_source": {"text": "Dolphins and seals are marine mammals of the open sea."},
        },
    ]
    base = Profiles(RerankSettings(fields=["text"]), RelevanceSettings()).default
    truncate = replace(base, chunking=ChunkSpec(tokens=24, overlap=4))
    chunked = replace(base, chunking=ChunkSpec(strategy="chunk", tokens=24, overlap=4))

    cut = await score_window(reranker, truncate, QUERY, hits)
    assert cut.scores[0] is not None and cut.scores[1] is not None
    assert cut.scores[0] < cut.scores[1]  # truncation never shows the model the answer

    pooled = await score_window(reranker, chunked, QUERY, hits, explain=True)
    assert pooled.scores[0] is not None and pooled.scores[1] is not None
    assert pooled.scores[0] > pooled.scores[1]
    explained = pooled.explanations[0]
    assert explained is not None
    model_part = explained["details"][0]
    assert "max of" in model_part["description"]
    best = max(model_part["details"], key=lambda d: d["value"])
    assert best["description"] == "chunk 2"  # the third chunk holds the answer
    assert reranker.batcher.stats.truncated_pairs >= 1


class _BrokenSplit(FakeEncoder):
    def split(self, texts: Sequence[str], max_tokens: int, overlap: int) -> list[list[str]]:
        raise ModelError("tokenization failed: Exception")


async def test_failing_split_degrades_to_truncate() -> None:
    spec = ChunkSpec(strategy="chunk", tokens=3, overlap=0)
    assert await pieces([["a b c d e f g"]], spec, _BrokenSplit()) == [Piece(0, 0, "a b c d e f g")]
