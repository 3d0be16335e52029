"""Scores one search's passages: dedupe → cache → batcher (misses) → write-back.

Never raises for model or cache trouble: the outcome says what was scored
(``full`` / ``partial`` / ``skipped``) and why, and the caller keeps the
upstream order for whatever has no score.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.batcher import Batcher
from gateway.cache import ScoreCache, cache_key
from gateway.errors import CacheError, DeadlineExceeded, ModelError, RerankError

log = logging.getLogger(__name__)

Status = Literal["full", "partial", "skipped"]


@dataclass(frozen=True, slots=True)
class Passage:
    """The text of one hit, with what identifies it in the cache."""

    index: str
    doc_id: str
    text: str


@dataclass(slots=True)
class RerankOutcome:
    scores: list[float | None]
    status: Status
    reason: str | None = None
    cached: int = 0


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class Reranker:
    def __init__(
        self,
        batcher: Batcher,
        cache: ScoreCache,
        *,
        fingerprint: str,
        score_mode: Literal["logit", "sigmoid"] = "logit",
    ) -> None:
        self.batcher = batcher
        self.cache = cache
        self.fingerprint = fingerprint
        self.score_mode = score_mode
        self._writes: set[asyncio.Task[None]] = set()
        self.cache_errors = 0

    async def score(
        self, query: str, passages: Sequence[Passage], timeout_s: float
    ) -> RerankOutcome:
        deadline = time.monotonic() + timeout_s
        keys = [cache_key(self.fingerprint, query, p.index, p.doc_id, p.text) for p in passages]
        raw: list[float | None] = await self._cached(keys)
        cached = sum(s is not None for s in raw)
        # One model pair per distinct text among the misses.
        todo: dict[str, list[int]] = {}
        for i, (p, s) in enumerate(zip(passages, raw, strict=True)):
            if s is None:
                todo.setdefault(p.text, []).append(i)
        status: Status = "full"
        reason: str | None = None
        if todo:
            try:
                fresh = await self._model(query, list(todo), deadline)
            except RerankError as exc:
                fresh, reason = {}, exc.reason
            written: dict[str, float] = {}
            for text, score in fresh.items():
                if score is None or not math.isfinite(score):
                    reason = reason or "model_error"
                    continue
                for i in todo[text]:
                    raw[i] = score
                    written[keys[i]] = score
            self._write_back(written)
        n_scored = sum(s is not None for s in raw)
        if n_scored < len(passages):
            status = "partial" if n_scored else "skipped"
            reason = reason or "deadline"
        scores = [None if s is None else self._transform(s) for s in raw]
        return RerankOutcome(scores, status, reason if status != "full" else None, cached)

    async def _cached(self, keys: list[str]) -> list[float | None]:
        try:
            return await self.cache.get_many(keys)
        except CacheError as exc:
            self.cache_errors += 1
            log.debug("score cache unavailable: %s", exc)
            return [None] * len(keys)

    async def _model(
        self, query: str, texts: list[str], deadline: float
    ) -> dict[str, float | None]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded()
        try:
            async with asyncio.timeout(remaining):
                encoded = await self.batcher.encode([(query, t) for t in texts])
        except TimeoutError:
            raise DeadlineExceeded() from None
        futures = self.batcher.submit(encoded)
        remaining = deadline - time.monotonic()
        done, pending = await asyncio.wait(futures, timeout=max(remaining, 0))
        for fut in pending:
            fut.cancel()
        out: dict[str, float | None] = {}
        error: BaseException | None = None
        for text, fut in zip(texts, futures, strict=True):
            if fut in done and not fut.cancelled() and fut.exception() is None:
                out[text] = fut.result()
            else:
                out[text] = None
                if fut in done and not fut.cancelled():
                    error = fut.exception()
        if error is not None and not any(v is not None for v in out.values()):
            raise error if isinstance(error, RerankError) else ModelError()
        return out

    def _transform(self, score: float) -> float:
        return sigmoid(score) if self.score_mode == "sigmoid" else score

    def _write_back(self, items: dict[str, float]) -> None:
        if not items:
            return
        task = asyncio.create_task(self._write(items))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, items: dict[str, float]) -> None:
        try:
            await self.cache.set_many(items)
        except CacheError as exc:
            self.cache_errors += 1
            log.debug("score cache write skipped: %s", exc)

    async def drain(self) -> None:
        """Wait for pending cache writes (shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
