"""Experiment figures from the event log. Pure functions: events in, a JSON-able dict out.

Definitions (per variant; a *search* is one impression):

- ``ctr_at_k``: share of searches with at least one click on a hit ranked ≤ k;
- ``mrr``: mean over searches of 1 / rank of the search's first click (in time),
  0 for a search without clicks;
- ``abandonment``: share of searches without any click;
- ``latency_ms``: p50 / p99 (nearest rank) of the gateway's time per search.

A/B (``ab``, given the ``control``): per other arm, the difference against the
control of CTR@k, MRR and abandonment with 95% intervals and p-values (see
``gateway.experiments.stats``), the searches per arm the observed CTR@k difference
needs (80% power), a low-sample flag when either arm has fewer, and a verdict on
CTR@k, the primary metric: ``better`` / ``worse`` when p < 0.05, else ``not yet known``.

Interleaving: a search with clicks is a *win* for the treatment (team ``B``) when
more of its clicked hits came from ``B`` than from ``A``, a *loss* for the
reverse, a *tie* when equal. ``p_value`` is the exact two-sided binomial test of
wins against losses (ties left out) with p = 1/2; the verdict reads it like A/B.

Searches whose arm was forced by the override header are counted apart
(``overrides``: searches per variant) and in no figure of the experiment.

Clicks name their hit by ``position`` (1-based, in the page as served) or by
``id`` (and ``index``) of a hit in the impression's first k; others count as
``unattributed_clicks``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.experiments import stats as st
from gateway.experiments.arms import CONTROL_TEAM, TREATMENT_TEAM

BETTER, WORSE, UNKNOWN = "better", "worse", "not yet known"


def binomial_two_sided_p(successes: int, trials: int) -> float:
    """Exact two-sided binomial test p-value for p = 1/2."""
    if trials <= 0:
        return 1.0
    tail = min(successes, trials - successes)
    mass = sum(math.comb(trials, i) for i in range(tail + 1))
    return min(1.0, 2 * mass / (1 << trials))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass(slots=True)
class _Search:
    variant: str
    latency_ms: float
    hits: list[tuple[str, str]]
    teams: list[str] | None
    override: bool = False
    clicks: list[tuple[float, int]] = field(default_factory=list)  # (ts, rank)


def _rank(search: _Search, click: dict[str, Any]) -> int | None:
    position = click.get("position")
    if isinstance(position, int) and not isinstance(position, bool) and position >= 1:
        return position
    doc = click.get("id")
    index = click.get("index")
    for i, (hit_index, hit_id) in enumerate(search.hits):
        if hit_id == doc and (index is None or index == hit_index):
            return i + 1
    return None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def build_report(
    events: Iterable[dict[str, Any]],
    k: int,
    control: str | None = None,
    treatment: str | None = None,
) -> dict[str, Any]:
    """Per-variant figures, the A/B comparison against ``control``, the interleaving
    outcome (``treatment``: the arm team ``B`` stands for) and shadow measurements."""
    searches: dict[str, _Search] = {}
    clicks: list[dict[str, Any]] = []
    shadows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        kind = event.get("type")
        sid = str(event.get("search_id", ""))
        if kind == "impression":
            teams = event.get("teams")
            searches[sid] = _Search(
                variant=str(event.get("variant", "?")),
                latency_ms=float(event.get("latency_ms") or 0.0),
                hits=[(str(h[0]), str(h[1])) for h in event.get("hits") or [] if len(h) == 2],
                teams=[str(t) for t in teams] if isinstance(teams, list) else None,
                override=event.get("override") is True,
            )
        elif kind == "click":
            clicks.append(event)
        elif kind == "shadow":
            shadows[str(event.get("variant", "?"))].append(event)
    unattributed = 0
    for click in clicks:
        search = searches.get(str(click.get("search_id", "")))
        rank = _rank(search, click) if search is not None else None
        if search is None or rank is None:
            unattributed += 1
            continue
        search.clicks.append((float(click.get("ts") or 0.0), rank))
    overrides: dict[str, int] = defaultdict(int)
    for s in searches.values():
        if s.override:
            overrides[s.variant] += 1
    counted = [s for s in searches.values() if not s.override]
    grouped: dict[str, list[_Search]] = defaultdict(list)
    for s in counted:
        grouped[s.variant].append(s)
    return {
        "k": k,
        "variants": _variants(grouped, k),
        "ab": _ab(grouped, k, control),
        "interleaving": _interleaving(counted, control, treatment),
        "overrides": dict(sorted(overrides.items())),
        "shadow": {name: _shadow(items) for name, items in sorted(shadows.items())},
        "unattributed_clicks": unattributed,
    }


def _variants(grouped: dict[str, list[_Search]], k: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, group in sorted(grouped.items()):
        n = len(group)
        clicked_top_k = sum(_clicked_top_k(s, k) for s in group)
        rr = [_reciprocal_rank(s) for s in group]
        abandoned = sum(not s.clicks for s in group)
        latencies = [s.latency_ms for s in group]
        out[name] = {
            "searches": n,
            "clicks": sum(len(s.clicks) for s in group),
            "ctr_at_k": clicked_top_k / n,
            "mrr": sum(rr) / n,
            "abandonment": abandoned / n,
            "latency_ms": {"p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99)},
        }
    return out


def _clicked_top_k(s: _Search, k: int) -> bool:
    return any(rank <= k for _, rank in s.clicks)


def _reciprocal_rank(s: _Search) -> float:
    return 1.0 / min(s.clicks)[1] if s.clicks else 0.0


def _verdict(diff: float, p_value: float) -> str:
    if p_value >= st.ALPHA or diff == 0:
        return UNKNOWN
    return BETTER if diff > 0 else WORSE


def _difference(d: st.Difference | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "control": d.control,
        "treatment": d.treatment,
        "diff": d.diff,
        "ci95": [d.low, d.high],
        "p_value": d.p_value,
    }


def _ab(grouped: dict[str, list[_Search]], k: int, control: str | None) -> dict[str, Any] | None:
    base = grouped.get(control or "")
    if not base:
        return None
    n0 = len(base)
    arms: dict[str, Any] = {}
    for name, group in sorted(grouped.items()):
        if name == control:
            continue
        n1 = len(group)
        clicked = [sum(_clicked_top_k(s, k) for s in arm) for arm in (group, base)]
        abandoned = [sum(not s.clicks for s in arm) for arm in (group, base)]
        ctr = st.two_proportions(clicked[0], n1, clicked[1], n0)
        abandon = st.two_proportions(abandoned[0], n1, abandoned[1], n0)
        mrr = st.welch([_reciprocal_rank(s) for s in group], [_reciprocal_rank(s) for s in base])
        needed = ctr.needed_per_arm
        arms[name] = {
            "searches": n1,
            "ctr_at_k": _difference(ctr),
            "mrr": _difference(mrr),
            "abandonment": _difference(abandon),
            "needed_per_arm": needed,
            "low_sample": needed is None or min(n0, n1) < needed,
            "verdict": _verdict(ctr.diff, ctr.p_value),
        }
    return {
        "control": control,
        "control_searches": n0,
        "alpha": st.ALPHA,
        "power": st.POWER,
        "primary": "ctr_at_k",
        "arms": arms,
    }


def _interleaving(
    searches: Iterable[_Search], control: str | None, treatment: str | None
) -> dict[str, Any]:
    wins = losses = ties = 0
    for s in searches:
        if s.teams is None or not s.clicks:
            continue
        teams = [s.teams[rank - 1] for _, rank in s.clicks if rank <= len(s.teams)]
        a, b = teams.count(CONTROL_TEAM), teams.count(TREATMENT_TEAM)
        if b > a:
            wins += 1
        elif a > b:
            losses += 1
        else:
            ties += 1
    p_value = binomial_two_sided_p(wins, wins + losses)
    needed = st.win_share_size(wins, losses)
    return {
        "control": control,
        "treatment": treatment,
        "wins": wins,
        "losses": losses,
        "ties": ties,
        "p_value": p_value,
        "needed_decisive": needed,
        "low_sample": needed is None or wins + losses < needed,
        "verdict": _verdict(wins - losses, p_value),
    }


def _shadow(items: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [e for e in items if "overlap" in e]
    statuses: dict[str, int] = defaultdict(int)
    for e in items:
        statuses[str(e.get("status"))] += 1
    firsts = [float(e["first_base_pos"]) for e in measured if e.get("first_base_pos")]
    return {
        "searches": len(items),
        "measured": len(measured),
        "statuses": dict(sorted(statuses.items())),
        "overlap_at_k": _mean([float(e["overlap"]) for e in measured]),
        "kendall_tau": _mean([float(e["tau"]) for e in measured]),
        "first_baseline_hit_rank": _mean(firsts),
        "latency_ms": {
            "p50": percentile([float(e.get("ms", 0)) for e in items], 0.50),
            "p99": percentile([float(e.get("ms", 0)) for e in items], 0.99),
        },
    }
