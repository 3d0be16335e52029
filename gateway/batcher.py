"""Cross-request dynamic batching: many searches' pairs share model runs.

``score(pairs)`` tokenizes in a worker thread, then queues one item per pair.
One consumer task drains the queue: it waits up to ``max_wait_ms`` for more
work, sorts what is pending by token length, and cuts batches against a token
budget that counts padding (``pairs x longest``). Model runs happen on one
dedicated thread, so the event loop never blocks; items whose caller has
already given up (deadline, disconnect) are dropped before they are run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from gateway.errors import ModelError, Overloaded
from gateway.model.base import CrossEncoder, Encoded, Pair
from gateway.settings import BatcherSettings

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class _Item:
    enc: Encoded
    future: asyncio.Future[float]
    seq: int = field(default=0)


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


class Batcher:
    def __init__(self, encoder: CrossEncoder, settings: BatcherSettings) -> None:
        self.encoder = encoder
        self.settings = settings
        self.stats = BatchStats()
        self._pending: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._seq = 0

    @property
    def queued_pairs(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._consume(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for item in self._pending:
            item.future.cancel()
        self._pending.clear()
        self._model_thread.shutdown(wait=False, cancel_futures=True)

    async def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        try:
            return await asyncio.to_thread(self.encoder.encode, pairs)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"tokenization failed: {type(exc).__name__}") from exc

    def submit(self, encoded: Sequence[Encoded]) -> list[asyncio.Future[float]]:
        """Queue encoded pairs; each future resolves to that pair's raw score."""
        if len(self._pending) + len(encoded) > self.settings.max_queue_pairs:
            raise Overloaded(f"{len(self._pending)} pairs already queued")
        loop = asyncio.get_running_loop()
        futures = []
        for enc in encoded:
            self._seq += 1
            fut: asyncio.Future[float] = loop.create_future()
            self._pending.append(_Item(enc, fut, self._seq))
            futures.append(fut)
            self.stats.truncated_pairs += enc.truncated
        self._wakeup.set()
        return futures

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
        return batch

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.settings.max_wait_ms > 0 and len(self._pending) < self.settings.max_batch_pairs:
                await asyncio.sleep(self.settings.max_wait_ms / 1000)
            batch = self._take_batch()
            if not batch:
                continue
            encs = [it.enc for it in batch]
            started = time.perf_counter()
            try:
                scores = await loop.run_in_executor(self._model_thread, self.encoder.score, encs)
            except Exception as exc:
                err = exc if isinstance(exc, ModelError) else ModelError(type(exc).__name__)
                log.warning("model run failed for %d pairs: %s", len(batch), err)
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(err)
                continue
            self._record(encs, time.perf_counter() - started)
            for it, score in zip(batch, scores.tolist(), strict=True):
                if not it.future.done():
                    it.future.set_result(float(score))

    def _record(self, encs: list[Encoded], seconds: float) -> None:
        s = self.stats
        s.batches += 1
        s.pairs += len(encs)
        s.padded_tokens += len(encs) * max(len(e) for e in encs)
        s.real_tokens += sum(len(e) for e in encs)
        s.model_seconds += seconds
