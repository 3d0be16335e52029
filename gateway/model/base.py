"""The interface between the pipeline and a scoring model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Pair = tuple[str, str]
Scores = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenized (query, document) pair, unpadded."""

    ids: npt.NDArray[np.int64]
    type_ids: npt.NDArray[np.int64]
    truncated: bool = False

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class CrossEncoder(Protocol):
    """Scores (query, document) pairs. Both methods run in worker threads."""

    @property
    def fingerprint(self) -> str:
        """Identity of the weights, tokenizer and length settings (cache keys use it)."""
        ...

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        """Tokenize pairs, cutting the document side first."""
        ...

    def score(self, batch: Sequence[Encoded]) -> Scores:
        """One raw relevance score (a logit) per encoded pair, shape ``[len(batch)]``."""
        ...


@runtime_checkable
class FeedRunner(Protocol):
    """Optional encoder capability: ``score`` in two steps, so the batcher can pipeline.

    ``feed`` builds a batch's padded model input (any thread) while the model thread
    is still running the previous batch; ``run`` then only runs the model on it.
    ``run(feed(batch))`` equals ``score(batch)``.
    """

    def feed(self, batch: Sequence[Encoded]) -> object:
        """The padded input of one batch, ready for ``run``."""
        ...

    def run(self, feed: object) -> Scores:
        """One raw score per pair of the batch ``feed`` was built from."""
        ...


@runtime_checkable
class QueryClipper(Protocol):
    """Optional encoder capability: cut a query to the tokens the model will read of it."""

    def clip_query(self, query: str) -> str:
        """The query's prefix that ``encode`` pairs with documents (the query if it fits)."""
        ...


@runtime_checkable
class Closable(Protocol):
    """Optional encoder capability: connections or threads to release at shutdown."""

    def close(self) -> None:
        """Release them (blocking; called once the batcher has stopped)."""
        ...


@runtime_checkable
class TextSplitter(Protocol):
    """Optional encoder capability: cut documents into overlapping token windows."""

    def split(self, texts: Sequence[str], max_tokens: int, overlap: int) -> list[list[str]]:
        """Each text as pieces of at most ``max_tokens`` tokens, consecutive ones sharing
        ``overlap`` tokens; a text that fits is one piece, an empty text none."""
        ...


def token_windows(n_tokens: int, max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` token ranges covering ``n_tokens`` in windows of ``max_tokens``."""
    step = max(max_tokens - overlap, 1)
    out = []
    start = 0
    while start < n_tokens:
        end = min(start + max_tokens, n_tokens)
        out.append((start, end))
        if end == n_tokens:
            break
        start += step
    return out
