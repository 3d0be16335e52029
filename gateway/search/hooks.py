"""The hooks the pipeline owns: what an experiment implements, what it gets from a search.

::

    Experiment   attached to the pipeline from outside (app.py): cleans the URL, assigns
                 the arm serving a ``_search``
    Arm          which arm serves (control: plain forward), its profile and window;
                 ``serve``: the page it shows, built from the search's ``Ranked``;
                 ``finish``: records what was served
    Ranked       what the pipeline hands an arm: the plan, the widened upstream answer,
                 the cluster's page and the reranked one (the window, or all fetched)
    Page         a page served, by name: body, ``X-Rerank`` status, reason, rerank time

The search code imports no experiment module: the experiment wing implements these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from yarl import URL

from gateway.rerank.reranker import Reason, Status
from gateway.search.merge import passthrough_page
from gateway.search.plan import Plan


@dataclass(frozen=True, slots=True)
class Page:
    """A page a search serves, and how it was ordered."""

    body: dict[str, Any]
    status: Status
    reason: Reason | None
    rerank_ms: float = 0.0


class Ranked:
    """One search's results as an arm reads them; each ranking is computed when asked."""

    def __init__(
        self,
        plan: Plan,
        response: dict[str, Any],
        rank: Callable[[Plan], Awaitable[Page]],
        gateway_ms: Callable[[], int],
    ) -> None:
        self.plan = plan
        self.response = response  # the widened upstream answer, as the cluster sent it
        self._rank = rank
        self._gateway_ms = gateway_ms

    @property
    def whole_plan(self) -> Plan:
        """The plan's list in full: every fetched hit from 0."""
        return replace(self.plan, from_=0, size=self.plan.fetch)

    def upstream(self, plan: Plan | None = None) -> dict[str, Any]:
        """The page in the cluster's order (the plan's page, or ``plan``'s)."""
        return passthrough_page(self.response, plan or self.plan, self._gateway_ms())

    async def page(self) -> Page:
        """The plan's page, reranked."""
        return await self._rank(self.plan)

    async def whole(self) -> Page:
        """Every fetched hit, reranked (interleaving, shadow measures)."""
        return await self._rank(self.whole_plan)


class Arm(Protocol):
    """One search's experiment arm."""

    @property
    def url(self) -> URL:
        """The request URL without the experiment's own key parameter."""

    @property
    def variant(self) -> str: ...

    @property
    def rerank(self) -> bool:
        """False: the control arm, forwarded as is."""

    @property
    def window(self) -> int | None: ...

    @property
    def profile(self) -> str | None:
        """The relevance profile the arm's variant names, if any."""

    def headers(self) -> dict[str, str]:
        """The answer's headers that say which arm served."""

    def finish(self, status: int, body: bytes) -> None:
        """Record what this arm served (the answer's status and body)."""

    async def serve(self, ranked: Ranked) -> Page:
        """The page this arm shows."""


class Experiment(Protocol):
    """An online experiment attached to the pipeline."""

    @property
    def enabled(self) -> bool: ...

    @property
    def name(self) -> str: ...

    def clean_url(self, url: URL) -> URL:
        """``url`` without the experiment's key parameter (the cluster would reject it)."""

    def assign(self, headers: Mapping[str, str], url: URL) -> Arm:
        """The arm serving this ``_search`` (only asked when ``enabled``)."""
