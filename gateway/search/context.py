"""The per-search context: one value carried through the pipeline's stages.

::

    SearchContext   the request (read once), the pair budget, the experiment arm,
                    the plan (or why not) and profile once decided, the timings
    Timings         when the search started, time spent upstream; the gateway's own
                    time (``took`` adds it)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gateway.rerank.budget import PairBudget
from gateway.rerank.profiles import Profile
from gateway.rerank.reranker import Reason
from gateway.search.hooks import Arm
from gateway.search.plan import Plan
from gateway.search.request import SearchRequest


@dataclass(slots=True)
class Timings:
    started: float = field(default_factory=time.perf_counter)
    upstream_ms: float = 0.0

    @contextmanager
    def upstream(self) -> Iterator[None]:
        """Time the block as the search's time upstream."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.upstream_ms = (time.perf_counter() - t0) * 1000

    def gateway_ms(self) -> int:
        """The gateway's own time so far: since the start, less the time upstream."""
        return max(round((time.perf_counter() - self.started) * 1000 - self.upstream_ms), 0)


@dataclass(slots=True)
class SearchContext:
    request: SearchRequest
    budget: PairBudget
    profile: Profile
    arm: Arm | None = None
    plan: Plan | Reason = "unreadable_body"
    timings: Timings = field(default_factory=Timings)
