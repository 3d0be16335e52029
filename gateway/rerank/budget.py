"""How many (query, document) pairs one request may score: a budget known before any work.

Every search of a request draws on one ``PairBudget`` of
``RERANK__MAX_REQUEST_PAIRS``: a ``_search`` once, each reranked sub-search of a
``_msearch`` in turn. A request whose windows add up to more is not reranked at
all (it goes to the cluster as sent, answered in the cluster's order with
``X-Rerank-Reason: too_many_pairs``), so the gateway never widens, parses or
tokenizes more than the budget for it; pieces beyond one per hit (chunks,
highlight fragments) draw on what is left when they are known, and a search
they do not fit is left in the cluster's order with the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class PairBudget:
    limit: int
    used: int = 0

    def fits(self, pairs: int) -> bool:
        return self.used + pairs <= self.limit

    def take(self, pairs: int) -> bool:
        """Draw ``pairs`` if they fit; False (and nothing drawn) otherwise."""
        if not self.fits(pairs):
            return False
        self.used += pairs
        return True
