"""Cross-request dynamic batching: many searches' pairs share model runs.

``encode(pairs)`` tokenizes in a worker thread; ``submit`` queues one item per
pair (refusing with ``Overloaded`` beyond ``max_queue_pairs``). One consumer
task drains the queue: it sorts what is pending by token length and cuts
batches against a token budget that counts padding (``pairs x longest``),
starting from the oldest pair. Items whose caller has already given up
(deadline, disconnect) are dropped before they are run.

Pipelining: model runs happen on one dedicated thread; while it runs batch N,
the consumer assembles batch N+1 and builds its padded input on a second
thread (encoders with ``FeedRunner``), so the model thread goes from one batch
straight to the next. At most one batch is prepared ahead, and only once the
queue holds a full batch; otherwise the next batch is cut when the running one
ends, from everything that arrived meanwhile. The event loop never blocks.

Tokenizing stays on the default executor, beside the model thread: on 2 CPU
cores it costs under 1% of the model's time per pair (``ops.bench_gateway``,
row 1), too little to be worth a thread of its own or a token cache. It runs in
slices of ``ENCODE_SLICE_PAIRS`` pairs, so a search that gives up stops it.

::

    submit ─► pending (sorted by length when cut) ─► [ahead: batch N+1, feed built]
                                                          │
                                      model thread: run batch N ─► futures
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from gateway import tracing
from gateway.errors import ModelError, Overloaded
from gateway.model.base import CrossEncoder, Encoded, FeedRunner, Pair, QueryClipper, Scores
from gateway.settings import BatcherSettings, ModelSettings, OnnxModel

log = logging.getLogger(__name__)

# Pairs tokenized per worker-thread call: the most tokenizing a search that has given
# up can still cause (32 documents of RERANK__MAX_DOC_CHARS), and enough per call for
# the tokenizer's own parallelism.
ENCODE_SLICE_PAIRS = 32
INLINE_QUERY_CHARS = 256  # longer queries are cut in a worker thread (clip_query)
_In = TypeVar("_In")
_Out = TypeVar("_Out")

# Token ids of the synthetic pairs that warm the model up (any valid id will do).
_WARM_ID = 1000


def warm_up_shapes(
    settings: BatcherSettings, model: ModelSettings, mode: str
) -> list[tuple[int, int]]:
    """``(pairs, tokens)`` batches run at start-up beyond the first tiny one: the largest
    batch the settings allow at full length (``shapes``, the default on cuda), or none
    (``one``; and always for a remote model, which only takes real text)."""
    if not isinstance(model, OnnxModel) or mode == "one":
        return []
    if mode == "auto" and model.device != "cuda":
        return []
    tokens = min(model.max_length, settings.max_batch_tokens)
    pairs = max(min(settings.max_batch_pairs, settings.max_batch_tokens // tokens), 1)
    return list(dict.fromkeys([(1, tokens), (pairs, tokens)]))


@dataclass(slots=True, eq=False)
class _Item:
    enc: Encoded
    future: asyncio.Future[float]
    seq: int = field(default=0)
    trace: object = None  # the submitting search's span (tracing.current())
    timings: dict[str, float] | None = None  # the submitting search's (tracing.timings())


@dataclass(slots=True, eq=False)
class _Batch:
    """Items cut from the queue, and their model input once built (``FeedRunner``)."""

    items: list[_Item]
    feed: object = None

    @property
    def live(self) -> bool:
        return all(not it.future.done() for it in self.items)


@dataclass(slots=True)
class BatchStats:
    """Running totals, read by the metrics endpoint."""

    batches: int = 0
    pairs: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    skipped_pairs: int = 0
    truncated_pairs: int = 0
    model_seconds: float = 0.0
    prepared_ahead: int = 0  # batches whose input was built while another batch ran


class Batcher:
    def __init__(self, encoder: CrossEncoder, settings: BatcherSettings) -> None:
        self.encoder = encoder
        self.settings = settings
        self.stats = BatchStats()
        self._pending: list[_Item] = []
        self._pending_tokens = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._feed_thread = ThreadPoolExecutor(1, thread_name_prefix="model-feed")
        self._runner = encoder if isinstance(encoder, FeedRunner) else None
        # Checked once: an isinstance against a runtime Protocol costs tens of µs a search.
        self._clipper = encoder if isinstance(encoder, QueryClipper) else None
        self._seq = 0
        self._ahead: _Batch | None = None

    @property
    def queued_pairs(self) -> int:
        return len(self._pending) + (len(self._ahead.items) if self._ahead else 0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._consume(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for item in self._pending + (self._ahead.items if self._ahead else []):
            item.future.cancel()
        self._pending.clear()
        self._pending_tokens = 0
        self._ahead = None
        self._model_thread.shutdown(wait=False, cancel_futures=True)
        self._feed_thread.shutdown(wait=False, cancel_futures=True)

    async def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        """Tokenize in slices of ``ENCODE_SLICE_PAIRS``, one worker-thread call each: a
        search that gives up (deadline, disconnect) cancels this between two slices, so
        the thread stops after at most one slice rather than the whole window."""
        out: list[Encoded] = []
        for start in range(0, len(pairs), ENCODE_SLICE_PAIRS):
            out += await self._off_loop(
                self.encoder.encode, pairs[start : start + ENCODE_SLICE_PAIRS]
            )
        return out

    async def clip_query(self, query: str) -> str:
        """The part of ``query`` the model reads (encoders with ``QueryClipper``).

        A query of up to ``INLINE_QUERY_CHARS`` is cut on the loop: tokenizing it
        takes less than handing it to a worker thread and back (a warm-cache search
        does nothing else with the tokenizer)."""
        clipper = self._clipper
        if clipper is None:
            return query
        if len(query) > INLINE_QUERY_CHARS:
            return await self._off_loop(clipper.clip_query, query)
        try:
            return clipper.clip_query(query)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"tokenization failed: {type(exc).__name__}") from exc

    async def _off_loop(self, call: Callable[[_In], _Out], arg: _In) -> _Out:
        try:
            return await asyncio.to_thread(call, arg)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"tokenization failed: {type(exc).__name__}") from exc

    def submit(self, encoded: Sequence[Encoded]) -> list[asyncio.Future[float]]:
        """Queue encoded pairs; each future resolves to that pair's raw score."""
        queued = self.queued_pairs
        if queued + len(encoded) > self.settings.max_queue_pairs:
            raise Overloaded(f"{queued} pairs already queued")
        loop = asyncio.get_running_loop()
        futures = []
        trace, timings = tracing.current(), tracing.timings()
        for enc in encoded:
            self._seq += 1
            fut: asyncio.Future[float] = loop.create_future()
            self._pending.append(_Item(enc, fut, self._seq, trace, timings))
            self._pending_tokens += len(enc)
            futures.append(fut)
            self.stats.truncated_pairs += enc.truncated
        self._wakeup.set()
        return futures

    async def warm_up(self, shapes: Sequence[tuple[int, int]]) -> None:
        """One model run per ``(pairs, tokens)`` shape, on the model thread, so the first
        searches do not pay for lazy initialisation (arena growth, kernel selection)."""
        for pairs, tokens in shapes:
            await self.time_run(pairs, tokens)

    async def time_run(self, pairs: int, tokens: int) -> float:
        """Seconds of one model run of ``pairs`` synthetic pairs of ``tokens`` tokens, on
        the model thread (input built as for a real batch)."""
        ids = np.full(max(tokens, 2), _WARM_ID, dtype=np.int64)
        batch = [Encoded(ids, np.zeros_like(ids))] * max(pairs, 1)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        await loop.run_in_executor(self._model_thread, self.encoder.score, batch)
        return time.perf_counter() - started

    def _take_batch(self) -> list[_Item]:
        """The next batch: the oldest pending pair plus its nearest neighbours in length.

        Pending pairs are sorted by token length; starting from the oldest one, the
        batch grows toward whichever neighbour wastes the least padding, while
        ``pairs x longest`` stays within the token budget.
        """
        live = [item for item in self._pending if not item.future.done()]
        self.stats.skipped_pairs += len(self._pending) - len(live)
        if not live:
            self._pending = []
            self._pending_tokens = 0
            return []
        live.sort(key=lambda it: len(it.enc))
        lo = live.index(min(live, key=lambda it: it.seq))
        hi = lo + 1  # the batch is live[lo:hi]
        budget, cap = self.settings.max_batch_tokens, self.settings.max_batch_pairs
        while hi - lo < cap:
            width, count = len(live[hi - 1].enc), hi - lo
            # Waste of adding the next shorter pair, or the next longer one.
            down = width - len(live[lo - 1].enc) if lo > 0 else None
            up = None
            if hi < len(live) and len(live[hi].enc) * (count + 1) <= budget:
                up = (len(live[hi].enc) - width) * count
            if down is not None and width * (count + 1) > budget:
                down = None
            if down is None and up is None:
                break
            if up is None or (down is not None and down <= up):
                lo -= 1
            else:
                hi += 1
        batch = live[lo:hi]
        self._pending = sorted(live[:lo] + live[hi:], key=lambda it: it.seq)
        self._pending_tokens = sum(len(it.enc) for it in self._pending)
        return batch

    def _full_batch_waiting(self) -> bool:
        """Whether the queue holds at least one batch's worth (pairs or real tokens)."""
        return (
            len(self._pending) >= self.settings.max_batch_pairs
            or self._pending_tokens >= self.settings.max_batch_tokens
        )

    async def _prepare(self) -> _Batch | None:
        """Cut the next batch and, for a ``FeedRunner``, build its input off the loop."""
        items = self._take_batch()
        if not items:
            return None
        batch = _Batch(items)
        if self._runner is not None:
            loop = asyncio.get_running_loop()
            encs = [it.enc for it in items]
            try:
                batch.feed = await loop.run_in_executor(self._feed_thread, self._runner.feed, encs)
            except Exception as exc:
                self._fail(items, exc)
                return None
        return batch

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, self._ahead = self._ahead, None
            if batch is None:
                if not self._pending:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                if (
                    self.settings.max_wait_ms > 0
                    and len(self._pending) < self.settings.max_batch_pairs
                ):
                    await asyncio.sleep(self.settings.max_wait_ms / 1000)
                batch = await self._prepare()
                if batch is None:
                    continue
            elif not batch.live:  # prepared ahead; some callers gave up meanwhile
                self._pending.extend(it for it in batch.items)
                self._pending_tokens += sum(len(it.enc) for it in batch.items)
                batch = await self._prepare()
                if batch is None:
                    continue
            encs = [it.enc for it in batch.items]
            started = time.perf_counter()
            run = loop.run_in_executor(self._model_thread, self._model_call(batch, encs))
            run.add_done_callback(lambda _: self._wakeup.set())
            with tracing.batch_run(
                [it.trace for it in sorted(batch.items, key=lambda it: it.seq)],
                pairs=len(encs),
                padded_tokens=len(encs) * max(len(e) for e in encs),
                encoder=type(self.encoder).__name__,
            ):
                await self._prepare_ahead(run)
                try:
                    scores = await run
                except Exception as exc:
                    self._fail(batch.items, exc)
                    continue
            self._record(batch.items, time.perf_counter() - started)
            for it, score in zip(batch.items, scores.tolist(), strict=True):
                if not it.future.done():
                    it.future.set_result(float(score))

    def _model_call(self, batch: _Batch, encs: list[Encoded]) -> Callable[[], Scores]:
        if self._runner is not None and batch.feed is not None:
            runner, feed = self._runner, batch.feed
            return lambda: runner.run(feed)
        return lambda: self.encoder.score(encs)

    async def _prepare_ahead(self, run: asyncio.Future[Scores]) -> None:
        """While ``run`` is on the model thread: cut and build the next batch as soon as
        the queue holds a full one. Returns when the run ends (or one is ready ahead)."""
        while not run.done():
            if self._ahead is None and self._full_batch_waiting():
                self._ahead = await self._prepare()
                if self._ahead is not None:
                    self.stats.prepared_ahead += 1
                    return
                continue
            self._wakeup.clear()
            if run.done():
                return
            await self._wakeup.wait()

    def _fail(self, items: list[_Item], exc: BaseException) -> None:
        err = exc if isinstance(exc, ModelError) else ModelError(type(exc).__name__)
        log.warning("model run failed for %d pairs: %s", len(items), err)
        for it in items:
            if not it.future.done():
                it.future.set_exception(err)

    def _record(self, items: list[_Item], seconds: float) -> None:
        """Totals, and the run's time in the stage times of each search it served."""
        served = {id(it.timings): it.timings for it in items if it.timings is not None}
        for timings in served.values():
            tracing.add_time(timings, "model", seconds)
        encs = [it.enc for it in items]
        s = self.stats
        s.batches += 1
        s.pairs += len(encs)
        s.padded_tokens += len(encs) * max(len(e) for e in encs)
        s.real_tokens += sum(len(e) for e in encs)
        s.model_seconds += seconds
