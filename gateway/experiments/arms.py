"""Online experiments: which arm serves a search, and how that arm builds its page.

::

    assign   sticky bucket = sha256(experiment name, user key) → variant by share;
             no key → a fresh random bucket per request; an override header wins
             (its searches are marked and counted apart; an unknown variant is a 400)
    serve    ab          the variant's own page (control: plain forward, upstream order)
             interleave  team-draft of the control's and the reranked list (coin per round),
                         teams kept server-side under the search id
             shadow      the control's page; the reranked order is computed in the
                         background within a budget and only measured
    finish   headers (variant, search id) + one impression event, never blocking

Pure helpers (``bucket``, ``team_draft``, ``overlap_at_k``, ``kendall_tau``) are
separate so tests check their invariants directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.cookies import CookieError, SimpleCookie
from typing import Any, TypeVar

from multidict import MultiDict
from yarl import URL

from gateway.errors import ClientRequestError
from gateway.experiments.events import EventLog
from gateway.search.hooks import Page, Ranked
from gateway.search.merge import passthrough_page
from gateway.search.plan import Plan
from gateway.settings import ExperimentSettings, Variant

log = logging.getLogger(__name__)

VARIANT_HEADER = "X-Experiment-Variant"
SEARCH_ID_HEADER = "X-Search-Id"
INTERLEAVE = "interleave"
CONTROL_TEAM, TREATMENT_TEAM = "A", "B"

T = TypeVar("T", bound=Hashable)


def bucket(salt: str, key: str) -> float:
    """A stable point in [0, 1) for ``key``: the same across requests, replicas and restarts."""
    digest = hashlib.sha256(f"{len(salt)}:{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(variants: Sequence[Variant], point: float) -> Variant:
    """The variant whose share interval holds ``point`` (shares are relative weights)."""
    total = sum(v.share for v in variants)
    edge = 0.0
    for v in variants:
        edge += v.share / total
        if point < edge and v.share > 0:
            return v
    return next(v for v in reversed(variants) if v.share > 0)


def team_draft(
    control: Sequence[T], treatment: Sequence[T], rng: random.Random
) -> tuple[list[T], list[str]]:
    """Team-draft interleaving (Radlinski et al. 2008).

    Each round a coin says which team picks first; a team picks its highest-ranked
    item not yet shown. Returns the merged list and, per item, the team (``A``:
    control, ``B``: treatment) that contributed it.
    """
    merged: list[T] = []
    teams: list[str] = []
    seen: set[T] = set()
    ia = ib = 0
    size_a = size_b = 0

    def next_of(items: Sequence[T], i: int) -> int:
        while i < len(items) and items[i] in seen:
            i += 1
        return i

    while True:
        ia, ib = next_of(control, ia), next_of(treatment, ib)
        if ia >= len(control) and ib >= len(treatment):
            return merged, teams
        a_first = size_a < size_b or (size_a == size_b and rng.random() < 0.5)
        if (a_first and ia < len(control)) or ib >= len(treatment):
            item, team = control[ia], CONTROL_TEAM
            size_a += 1
        else:
            item, team = treatment[ib], TREATMENT_TEAM
            size_b += 1
        seen.add(item)
        merged.append(item)
        teams.append(team)


def overlap_at_k(a: Sequence[T], b: Sequence[T], k: int) -> float:
    """Share of the top ``k`` both orders have in common."""
    if k <= 0:
        return 1.0
    return len(set(a[:k]) & set(b[:k])) / k


def kendall_tau(a: Sequence[T], b: Sequence[T]) -> float:
    """Kendall's tau-a between two orders of the same items (items only in one are ignored)."""
    pos = {item: i for i, item in enumerate(b)}
    ranks = [pos[item] for item in a if item in pos]
    n = len(ranks)
    if n < 2:
        return 1.0
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            if ranks[i] < ranks[j]:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / (n * (n - 1) / 2)


def hit_key(hit: Mapping[str, Any]) -> tuple[str, str]:
    return (str(hit.get("_index", "")), str(hit.get("_id", "")))


def _hits(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    section = response.get("hits")
    hits = section.get("hits") if isinstance(section, dict) else None
    return [h for h in hits if isinstance(h, dict)] if isinstance(hits, list) else []


def _with_hits(response: dict[str, Any], hits: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(response)
    section = dict(out.get("hits") or {})
    section["hits"] = hits
    out["hits"] = section
    return out


@dataclass(slots=True)
class Arm:
    """One search's assignment, and what it served (filled in as the search runs).

    Implements the pipeline's ``search.hooks.Arm``."""

    owner: Experiments
    variant: str  # what the variant header says
    mode: str  # ab | interleave | shadow
    rerank: bool  # False: control, forwarded as is
    window: int | None
    url: URL  # the request URL without the gateway's key parameter
    seed: int
    search_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    teams: list[str] | None = None  # interleave: the team of each hit of the page
    profile: str | None = None  # the variant's relevance profile, if it names one
    override: bool = False  # forced by the override header: not part of the experiment
    query: str | None = None  # the query text, once the search is planned (click models)

    def headers(self) -> dict[str, str]:
        return {VARIANT_HEADER: self.variant, SEARCH_ID_HEADER: self.search_id}

    def finish(self, status: int, body: bytes) -> None:
        self.owner.finish(self, status, body)

    async def serve(self, ranked: Ranked) -> Page:
        """The page this arm shows, from the search's results."""
        plan = ranked.plan
        self.query = plan.query
        if self.mode == "shadow":
            self.owner.shadow(self, ranked)
            return Page(ranked.upstream(), "skipped", "shadow")
        if self.mode != INTERLEAVE:
            return await ranked.page()
        whole = await ranked.whole()
        if whole.status == "skipped":
            return replace(whole, body=ranked.upstream())
        page, self.teams = interleave_page(
            ranked.response, whole.body, plan, random.Random(self.seed)
        )
        return replace(whole, body=page)


def interleave_page(
    response: dict[str, Any], ranked: dict[str, Any], plan: Plan, rng: random.Random
) -> tuple[dict[str, Any], list[str]]:
    """The page ``plan`` asks for out of the team draft of the upstream order (``response``)
    and the reranked one (``ranked``, the whole fetched list), and the team of each of its hits.
    Hits are the reranked answer's (reranker ``_score``, fields already cleaned)."""
    whole = replace(plan, from_=0, size=plan.fetch)
    by_key = {hit_key(h): h for h in _hits(ranked)}
    control = [hit_key(h) for h in _hits(passthrough_page(response, whole, 0))]
    keys, teams = team_draft(control, list(by_key), rng)
    end = plan.from_ + plan.size
    return _with_hits(ranked, [by_key[k] for k in keys[plan.from_ : end]]), teams[plan.from_ : end]


class Experiments:
    """Assigns searches to arms, runs shadow reranks, records impressions."""

    def __init__(self, settings: ExperimentSettings, events: EventLog) -> None:
        self.settings = settings
        self.events = events
        self._by_name = {v.name: v for v in settings.variants}
        controls = [v for v in settings.variants if not v.rerank]
        treatments = [v for v in settings.variants if v.rerank]
        self.control = controls[0] if controls else Variant(name="baseline", share=0, rerank=False)
        self.treatment = treatments[0] if treatments else None
        source, _, self._key_name = settings.key.partition(":")
        self._key_source = source
        self._shadows: set[asyncio.Task[None]] = set()
        self.shadow_skipped = 0

    @property
    def enabled(self) -> bool:
        return self.settings.mode != "off"

    @property
    def name(self) -> str:
        return self.settings.name

    def user_key(self, headers: Mapping[str, str], url: URL) -> str | None:
        name = self._key_name
        if self._key_source == "header":
            return headers.get(name) or None
        if self._key_source == "param":
            return url.query.get(name) or None
        try:
            jar = SimpleCookie(headers.get("Cookie", ""))
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None and morsel.value else None

    def clean_url(self, url: URL) -> URL:
        """``url`` without the key parameter (the cluster would reject it)."""
        if self._key_source != "param" or self._key_name not in url.query:
            return url
        kept: MultiDict[str] = MultiDict(
            (k, v) for k, v in url.query.items() if k != self._key_name
        )
        return url.with_query(kept)

    def assign(self, headers: Mapping[str, str], url: URL) -> Arm:
        """The arm serving this search (only called when experiments are on)."""
        key = self.user_key(headers, url)
        point = bucket(self.settings.name, key) if key is not None else random.random()
        seed = int(point * 2**53)
        clean = self.clean_url(url)
        override = self._override(headers)
        mode = self.settings.mode
        if override is not None:
            arm = self._arm(override, "ab", clean, seed)
            arm.override = True
            return arm
        if mode in ("interleave", "shadow") and self.treatment is not None:
            name = INTERLEAVE if mode == INTERLEAVE else self.control.name
            t = self.treatment
            return Arm(self, name, mode, True, t.window, clean, seed, profile=t.profile)
        return self._arm(pick(self.settings.variants, point), "ab", clean, seed)

    def _arm(self, variant: Variant, mode: str, url: URL, seed: int) -> Arm:
        v = variant
        return Arm(self, v.name, mode, v.rerank, v.window, url, seed, profile=v.profile)

    def _override(self, headers: Mapping[str, str]) -> Variant | None:
        name = self.settings.override_header
        if not name:
            return None
        wanted = headers.get(name, "").strip()
        if not wanted:
            return None
        variant = self._by_name.get(wanted)
        if variant is None:
            known = ", ".join(self._by_name)
            raise ClientRequestError(
                "illegal_argument_exception",
                f"[{name}] must name a variant of experiment [{self.settings.name}]: [{known}]",
            )
        return variant

    def finish(self, arm: Arm, status: int, body: bytes) -> None:
        """Record the impression of a served search (2xx only)."""
        if not 200 <= status < 300:
            return
        self.events.record(
            {
                "type": "impression",
                "search_id": arm.search_id,
                "variant": arm.variant,
                "mode": arm.mode,
                "latency_ms": round((time.perf_counter() - arm.started) * 1000, 3),
                "teams": arm.teams,
                **({"override": True} if arm.override else {}),
                **({"query": arm.query} if arm.query is not None else {}),
            },
            body=body,
        )

    def shadow(self, arm: Arm, ranked: Ranked) -> None:
        """Start measuring what reranking would have changed, if the budget allows."""
        if len(self._shadows) >= self.settings.shadow_max_inflight:
            self.shadow_skipped += 1
            return
        task = asyncio.create_task(self._measure(arm, ranked))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _measure(self, arm: Arm, ranked: Ranked) -> None:
        plan, response = ranked.plan, ranked.response
        t0 = time.perf_counter()
        status: str
        try:
            async with asyncio.timeout(self.settings.shadow_timeout_s):
                whole = await ranked.whole()
            status, reordered = whole.status, whole.body
        except TimeoutError:
            status, reordered = "timeout", {}
        base = [hit_key(h) for h in _hits(response)[: plan.window]]
        new = [hit_key(h) for h in _hits(reordered)[: plan.window]]
        event: dict[str, Any] = {
            "type": "shadow",
            "search_id": arm.search_id,
            "variant": self.treatment.name if self.treatment else "rerank",
            "status": status,
            "ms": round((time.perf_counter() - t0) * 1000, 3),
        }
        if new and base and status != "skipped":
            k = self.settings.k
            event["overlap"] = overlap_at_k(base, new, k)
            event["tau"] = kendall_tau(base, new)
            event["first_base_pos"] = new.index(base[0]) + 1 if base[0] in new else None
        self.events.record(event)

    async def close(self) -> None:
        for task in list(self._shadows):
            task.cancel()
        if self._shadows:
            await asyncio.gather(*self._shadows, return_exceptions=True)
