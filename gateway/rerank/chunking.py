"""Long documents: truncate, or cut into overlapping token windows and pool their scores.

``truncate`` scores one piece per hit and lets the tokenizer cut the document
side at the model's limit (the query is kept whole). ``chunk`` splits each
hit's text with the encoder's own tokenizer into windows of ``tokens`` tokens
that share ``overlap`` tokens, keeps the first ``max_chunks``, and scores every
window as a passage of its own (``doc_id#k``), so the cache and the batcher
treat chunks like any other pair. A hit's score is then pooled from its
chunks' scores: ``max`` (the best window, ES chunk-rescoring style), ``mean``
or ``first``. Hits given several segments (highlight fragments) are pooled the
same way under either strategy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.errors import ModelError
from gateway.model.base import TextSplitter

log = logging.getLogger(__name__)

Strategy = Literal["truncate", "chunk"]
Pooling = Literal["max", "mean", "first"]


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    strategy: Strategy = "truncate"
    tokens: int = 200
    overlap: int = 32
    max_chunks: int = 8
    pooling: Pooling = "max"


@dataclass(frozen=True, slots=True)
class Piece:
    """One scored text: chunk ``chunk`` of hit ``hit`` in the window."""

    hit: int
    chunk: int
    text: str


async def pieces(
    segments: Sequence[Sequence[str]], spec: ChunkSpec, encoder: object
) -> list[Piece]:
    """The texts to score, in hit order; at most ``max_chunks`` per hit.

    Splitting tokenizes, so it runs in a worker thread. An encoder without a
    tokenizer-backed ``split`` (or whose tokenizer fails) gets ``truncate``.
    """
    split = spec.strategy == "chunk" and isinstance(encoder, TextSplitter)
    # A text shorter (in characters) than the window has fewer tokens: no need to split it.
    long = [t for segs in segments for t in segs if split and len(t) > spec.tokens]
    cut: dict[str, list[str]] = {}
    if long:
        assert isinstance(encoder, TextSplitter)
        try:
            parts = await asyncio.to_thread(encoder.split, long, spec.tokens, spec.overlap)
            cut = dict(zip(long, parts, strict=True))
        except ModelError as exc:  # degrade to truncate rather than fail the search
            log.warning("chunking failed, documents are truncated instead: %s", exc)
    out: list[Piece] = []
    for i, segs in enumerate(segments):
        texts = [part for seg in segs for part in cut.get(seg, [seg])]
        out.extend(Piece(i, k, t) for k, t in enumerate(texts[: spec.max_chunks]) if t)
    return out


@dataclass(frozen=True, slots=True)
class Pooled:
    """A hit's score from its chunks, and which chunk gave it (None for ``mean``)."""

    score: float | None
    chunk: int | None
    chunk_scores: tuple[float | None, ...]


def pool(chunk_scores: Sequence[float | None], how: Pooling) -> Pooled:
    """Pool the scores of one hit's chunks; chunks left unscored (deadline) are ignored."""
    given = tuple(chunk_scores)
    scored = [(s, k) for k, s in enumerate(given) if s is not None]
    if not scored:
        return Pooled(None, None, given)
    if how == "first":
        score, k = scored[0]
        return Pooled(score, k, given)
    if how == "mean":
        return Pooled(sum(s for s, _ in scored) / len(scored), None, given)
    score, k = max(scored, key=lambda sk: (sk[0], -sk[1]))
    return Pooled(score, k, given)
