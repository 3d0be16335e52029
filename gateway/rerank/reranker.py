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

from gateway import tracing
from gateway.errors import CacheError, DeadlineExceeded, ModelError, Overloaded, RerankError
from gateway.rerank.batcher import Batcher
from gateway.rerank.cache import KeyMaker, ScoreCache

log = logging.getLogger(__name__)

Status = Literal["full", "partial", "skipped"]  # the ``X-Rerank`` header of a search answer
# Why a search is not (wholly) reranked: the ``X-Rerank-Reason`` values, a public contract.
# Each one is described in gateway/search/reasons.py, which writes the list in the docs.
Reason = Literal[
    # not asked, not allowed
    "opted_out",
    "disabled",
    "not_opted_in",
    "index_not_configured",
    "experiment_control",
    "shadow",
    # the request
    "unreadable_body",
    "invalid_option",
    "size_zero",
    "sorted",
    "beyond_window",
    "paginated_by_cursor",
    "no_source",
    "no_query_text",
    "no_doc_text",
    "too_many_pairs",
    # the model
    "model_not_ready",
    "deadline",
    "overloaded",
    "model_error",
    "rerank_error",
    # the cluster, the retriever tree
    "upstream_status",
    "upstream_body",
    "retriever_on_cluster",
    "no_reranker_in_tree",
]


def reason_of(exc: RerankError) -> Reason:
    """The ``X-Rerank-Reason`` of a rerank failure (``exc.reason``, checked by type)."""
    if isinstance(exc, DeadlineExceeded):
        return "deadline"
    if isinstance(exc, Overloaded):
        return "overloaded"
    if isinstance(exc, ModelError):
        return "model_error"
    return "rerank_error"


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
    reason: Reason | None = None
    cached: int = 0


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _ranked_prefix(raw: list[float | None]) -> tuple[list[float | None], int]:
    """Past a deadline: the scores of the passages before the first unscored one, in
    first-stage order (the batcher runs a search's pairs in that order), so the answer is
    "top k reranked, the rest in cluster order" rather than a scattered subset."""
    k = next((i for i, s in enumerate(raw) if s is None), len(raw))
    return raw[:k] + [None] * (len(raw) - k), k


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
        # Single-flight: cache key → the score another search is computing now.
        self._inflight: dict[str, asyncio.Future[float | None]] = {}

    async def score(
        self, query: str, passages: Sequence[Passage], timeout_s: float, *, logits: bool = False
    ) -> RerankOutcome:
        """Scores in MODEL__SCORE_MODE; with ``logits``, the model's own output."""
        deadline = time.monotonic() + timeout_s
        try:  # what the model reads of the query; the cache keys hash no more than that
            query = await self.batcher.clip_query(query)
        except ModelError:
            return RerankOutcome([None] * len(passages), "skipped", "model_error")
        make_key = KeyMaker(self.fingerprint, query).key
        keys = [make_key(p.index, p.doc_id, p.text) for p in passages]
        with tracing.stage("rerank.cache_lookup", pairs=len(keys)) as span:
            raw: list[float | None] = await self._cached(keys)
            cached = sum(s is not None for s in raw)
            span.set(cache_hits=cached)
        misses: dict[str, list[int]] = {}
        for i, s in enumerate(raw):
            if s is None:
                misses.setdefault(keys[i], []).append(i)
        status: Status = "full"
        reason: Reason | None = None
        if misses:
            texts = {key: passages[where[0]].text for key, where in misses.items()}
            fresh, reason = await self._single_flight(query, texts, deadline)
            for key, score in fresh.items():
                for i in misses[key]:
                    raw[i] = score
        n_scored = sum(s is not None for s in raw)
        if n_scored < len(passages):
            reason = reason or "deadline"
            if reason == "deadline":
                raw, n_scored = _ranked_prefix(raw)
            status = "partial" if n_scored else "skipped"
        scores = [s if s is None or logits else self._transform(s) for s in raw]
        return RerankOutcome(scores, status, reason if status != "full" else None, cached)

    async def _single_flight(
        self, query: str, texts: dict[str, str], deadline: float
    ) -> tuple[dict[str, float], Reason | None]:
        """Scores of the missed keys: this search scores the keys nobody is scoring
        and awaits, within its deadline, those an identical search is scoring now.

        A scored key stays in flight (its future done) until its write-back has
        landed, so a search that missed the cache meanwhile takes it from there.
        """
        shared = {key: self._inflight[key] for key in texts if key in self._inflight}
        loop = asyncio.get_running_loop()
        owned = {key: loop.create_future() for key in texts if key not in shared}
        self._inflight.update(owned)
        scored: dict[str, float] = {}
        reason: Reason | None = None
        try:
            if owned:
                scored, reason = await self._score_texts(
                    query, {key: texts[key] for key in owned}, deadline
                )
        finally:
            for key, fut in owned.items():
                fut.set_result(scored.get(key))  # None: the waiters go without it
                if key not in scored:
                    del self._inflight[key]
        self._write_back(scored)
        if shared:
            await asyncio.wait(list(shared.values()), timeout=max(deadline - time.monotonic(), 0))
            got = {k: f.result() for k, f in shared.items() if f.done()}
            coalesced = {k: s for k, s in got.items() if s is not None}
            self.cache.stats.coalesced += len(coalesced)
            scored.update(coalesced)
        return scored, reason

    async def _score_texts(
        self, query: str, texts: dict[str, str], deadline: float
    ) -> tuple[dict[str, float], Reason | None]:
        """One model pair per distinct text."""
        keys_of: dict[str, list[str]] = {}
        for key, text in texts.items():
            keys_of.setdefault(text, []).append(key)
        reason: Reason | None = None
        try:
            fresh = await self._model(query, list(keys_of), deadline)
        except RerankError as exc:
            fresh, reason = {}, reason_of(exc)
        scored: dict[str, float] = {}
        for text, score in fresh.items():
            if score is None or not math.isfinite(score):
                reason = reason or "model_error"
                continue
            for key in keys_of[text]:
                scored[key] = score
        return scored, reason

    async def _cached(self, keys: list[str]) -> list[float | None]:
        try:
            return await self.cache.get_many(keys)
        except CacheError as exc:
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
                with tracing.stage("rerank.tokenize", pairs=len(texts)):
                    encoded = await self.batcher.encode([(query, t) for t in texts])
        except TimeoutError:
            raise DeadlineExceeded() from None
        with tracing.stage("rerank.queue_and_model", pairs=len(encoded)):
            futures = self.batcher.submit(encoded)
            remaining = deadline - time.monotonic()
            done, pending = await asyncio.wait(futures, timeout=max(remaining, 0))
        for fut in pending:
            fut.cancel()
        out: dict[str, float | None] = {}
        error: BaseException | None = None
        for text, fut in zip(texts, futures, strict=True):
            if fut not in done or fut.cancelled():
                continue  # past the deadline: left out, so the reason stays "deadline"
            if fut.exception() is None:
                out[text] = fut.result()
            else:
                out[text] = None
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
            log.debug("score cache write skipped: %s", exc)
        finally:
            for key in items:  # from now on the cache answers for them (or nobody does)
                self._inflight.pop(key, None)

    async def drain(self) -> None:
        """Wait for pending cache writes (shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
