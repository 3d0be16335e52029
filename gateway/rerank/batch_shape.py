"""The batch shape a local model runs fastest at, measured at warm-up.

The cost per pair of one model run depends on the backend and the CPU: the
onnxruntime paths peak at a few pairs per run, OpenVINO and cuda at dozens
(issue 16). So rather than one global token budget, warm-up times the model at
``BATCHER__SWEEP_PAIRS`` batch sizes of full-length pairs (``MODEL__MAX_LENGTH``),
in interleaved rounds (the best of each size counts, so a neighbour's burst on a
shared CPU does not decide; sizes past the peak are not timed again), and the
best pairs/s sets the batcher's token budget (``pairs x max_length``; shorter
pairs fit more per run, up to the pair cap).

Left alone: a budget set explicitly (``BATCHER__MAX_BATCH_TOKENS``), a remote
model, an encoder the batcher cannot time in two steps, and a per-pair model
(dynamic int8 under ``per_pair``): it runs the pairs of a batch one at a time
whatever the batch, so its batch shape is only how many pairs the batcher groups.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from gateway.model.base import FeedRunner
from gateway.rerank.batcher import Batcher
from gateway.settings import ModelSettings

log = logging.getLogger(__name__)

ROUNDS = 2
# Pairs timed per size and round (several runs of the small sizes, one of the large).
PAIRS_PER_ROUND = 8
PAST_PEAK = 1.1  # seconds per pair this far above the best so far: stop growing the batch


def measured(batcher: Batcher, model: ModelSettings) -> bool:
    """Whether warm-up should pick this batcher's budget."""
    settings = batcher.settings
    return (
        model.backend == "onnx"
        and bool(settings.sweep_pairs)
        and "max_batch_tokens" not in settings.model_fields_set
        and isinstance(batcher.encoder, FeedRunner)
        and not getattr(batcher.encoder, "per_pair", False)
    )


def best_size(seconds: dict[int, float]) -> int:
    """The size with the fewest seconds per pair (the smaller one on a tie)."""
    return min(sorted(seconds), key=lambda size: seconds[size])


async def tune(batcher: Batcher, model: ModelSettings) -> dict[int, float] | None:
    """Time the sizes, set the budget from the best; the pairs/s per size (or None)."""
    if not measured(batcher, model):
        return None
    sizes = sorted(set(batcher.settings.sweep_pairs))
    per_pair = await sweep(batcher, sizes, model.max_length)
    best = best_size(per_pair)
    tokens = best * model.max_length
    batcher.settings = batcher.settings.model_copy(update={"max_batch_tokens": tokens})
    rates = {size: round(1 / s, 1) for size, s in per_pair.items()}
    log.info(
        "batch shape: %d pairs of %d tokens (pairs/s by batch size %s): token budget %d",
        best,
        model.max_length,
        rates,
        tokens,
    )
    return rates


async def sweep(batcher: Batcher, sizes: Sequence[int], tokens: int) -> dict[int, float]:
    """Best seconds per pair of each size over ``ROUNDS`` interleaved rounds. The first
    round stops at the first size clearly slower than the best so far (past the peak:
    larger batches only cost more warm-up time); later rounds time the sizes up to it."""
    best: dict[int, float] = {}
    for round_ in range(ROUNDS):
        for size in sizes:
            runs = max(math.ceil(PAIRS_PER_ROUND / size), 1)
            spent = 0.0
            for _ in range(runs):
                spent += await batcher.time_run(size, tokens)
            best[size] = min(best.get(size, math.inf), spent / (runs * size))
            if round_ == 0 and best[size] > PAST_PEAK * min(best.values()):
                sizes = [s for s in sizes if s <= size]
                break
    return best
