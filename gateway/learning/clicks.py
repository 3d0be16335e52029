"""Click models over the gateway's own event log: sessions, COEC, the position-based model.

A :class:`Session` is one impression (a search with its query text, the documents
shown, when and in which experiment mode) with the 1-based positions clicked in it
(clicks name their hit by ``position`` or by ``id``, as in ``gateway.experiments.report``).

Click models (Chuklin, Markov & de Rijke, *Click Models for Web Search*, 2015):

- **COEC** (clicks over expected clicks): for (q, d),
  ``Σ clicks / Σ ctr(rank)`` over its impressions, where ``ctr(rank)`` is the click
  rate of that rank over all sessions. 1 = clicked as often as its ranks predict.
- **PBM** (position-based model): ``P(click at r on d) = θ_r · α_qd``, examination
  ``θ`` per rank, attractiveness ``α`` per (query, document), fitted by EM. The
  examination curve is only identifiable where the same document is shown at
  different ranks for the same query: randomized or interleaved traffic
  (``examination_curve`` fits it there, ``attractiveness`` then holds it fixed over
  all traffic). ``θ`` is scaled so that ``θ_1 = 1`` (the model fixes only the product).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.learning.judgments import Judgment, query_key

_EPS = 1e-9
VARIED_MODES = frozenset({"interleave", "randomized"})  # modes whose ranks vary per (q, d)


@dataclass(slots=True)
class Session:
    search_id: str
    query: str  # query_key form
    docs: list[str]
    ts: float
    mode: str = "ab"
    variant: str = ""
    clicks: set[int] = field(default_factory=set)  # 1-based positions


def sessions_from_events(events: Iterable[Mapping[str, Any]], *, depth: int = 10) -> list[Session]:
    """Impressions with a query and their clicks (first ``depth`` ranks), oldest first.

    Impressions without a query text are left out (there is nothing to label)."""
    by_id: dict[str, Session] = {}
    clicks: list[Mapping[str, Any]] = []
    for event in events:
        kind = event.get("type")
        if kind == "impression" and isinstance(event.get("query"), str):
            hits = [str(h[1]) for h in event.get("hits") or [] if len(h) == 2][:depth]
            sid = str(event.get("search_id", ""))
            by_id[sid] = Session(
                sid,
                query_key(str(event["query"])),
                hits,
                float(event.get("ts") or 0.0),
                str(event.get("mode", "ab")),
                str(event.get("variant", "")),
            )
        elif kind == "click":
            clicks.append(event)
    for click in clicks:
        session = by_id.get(str(click.get("search_id", "")))
        if session is None:
            continue
        position = click.get("position")
        if not (isinstance(position, int) and not isinstance(position, bool)):
            doc = click.get("id")
            position = session.docs.index(doc) + 1 if doc in session.docs else None
        if position is not None and 1 <= position <= len(session.docs):
            session.clicks.add(position)
    return sorted(by_id.values(), key=lambda s: s.ts)


def split_by_time(sessions: Sequence[Session], cut: float) -> tuple[list[Session], list[Session]]:
    """Sessions before ``cut`` (a timestamp) and from ``cut`` on."""
    return [s for s in sessions if s.ts < cut], [s for s in sessions if s.ts >= cut]


def time_cut(sessions: Sequence[Session], train_share: float) -> float:
    """The timestamp that leaves about ``train_share`` of the sessions before it."""
    stamps = sorted(s.ts for s in sessions)
    if not stamps:
        return 0.0
    i = min(int(len(stamps) * train_share), len(stamps) - 1)
    return stamps[i]


def rank_ctr(sessions: Iterable[Session], depth: int) -> list[float]:
    """Click rate per rank 1 … depth over all sessions (0 where never shown)."""
    shown = [0] * depth
    clicked = [0] * depth
    for s in sessions:
        for r in range(min(len(s.docs), depth)):
            shown[r] += 1
            clicked[r] += (r + 1) in s.clicks
    return [c / n if n else 0.0 for c, n in zip(clicked, shown, strict=True)]


def coec(sessions: Sequence[Session], depth: int = 10) -> dict[tuple[str, str], float]:
    """(query, doc) → clicks over expected clicks."""
    ctr = rank_ctr(sessions, depth)
    got: dict[tuple[str, str], float] = defaultdict(float)
    expected: dict[tuple[str, str], float] = defaultdict(float)
    for s in sessions:
        for r, doc in enumerate(s.docs[:depth]):
            got[(s.query, doc)] += (r + 1) in s.clicks
            expected[(s.query, doc)] += ctr[r]
    return {k: got[k] / expected[k] for k in got if expected[k] > 0}


@dataclass(slots=True)
class PBM:
    examination: list[float]  # θ_r, rank 1 first, θ_1 = 1
    attractiveness: dict[tuple[str, str], float]  # α_qd
    impressions: dict[tuple[str, str], int]


def _fit(
    sessions: Sequence[Session],
    depth: int,
    iterations: int,
    examination: Sequence[float] | None,
) -> PBM:
    theta = list(examination) if examination is not None else [0.5] * depth
    theta += [theta[-1] if theta else 0.5] * (depth - len(theta))
    shown: dict[tuple[str, str], int] = defaultdict(int)
    for s in sessions:
        for doc in s.docs[:depth]:
            shown[(s.query, doc)] += 1
    alpha = dict.fromkeys(shown, 0.5)
    for _ in range(iterations):
        a_num: dict[tuple[str, str], float] = defaultdict(float)
        t_num, t_den = [0.0] * depth, [0] * depth
        for s in sessions:
            for r, doc in enumerate(s.docs[:depth]):
                key, a, t = (s.query, doc), alpha[(s.query, doc)], theta[r]
                if (r + 1) in s.clicks:
                    a_num[key] += 1.0
                    t_num[r] += 1.0
                else:
                    miss = max(1.0 - t * a, _EPS)
                    a_num[key] += a * (1.0 - t) / miss
                    t_num[r] += t * (1.0 - a) / miss
                t_den[r] += 1
        alpha = {k: a_num[k] / n for k, n in shown.items()}
        if examination is None:
            theta = [t_num[r] / t_den[r] if t_den[r] else theta[r] for r in range(depth)]
    top = theta[0] if theta and theta[0] > _EPS else 1.0
    if examination is None:  # θ_1 = 1: the scale moves into α (θ·c, α/c fit the same)
        theta = [t / top for t in theta]
        alpha = {k: min(a * top, 1.0) for k, a in alpha.items()}
    return PBM(theta, alpha, dict(shown))


def examination_curve(
    sessions: Sequence[Session], depth: int = 10, iterations: int = 200
) -> list[float]:
    """θ_1 … θ_depth fitted on the sessions whose ranks were randomized or interleaved.

    Raises ``ValueError`` when there are none: on fixed-order traffic alone the
    curve and the attractiveness cannot be told apart."""
    varied = [s for s in sessions if s.mode in VARIED_MODES]
    if not varied:
        raise ValueError("no interleaved or randomized sessions to estimate examination from")
    return _fit(varied, depth, iterations, None).examination


def fit_pbm(
    sessions: Sequence[Session],
    depth: int = 10,
    iterations: int = 200,
    examination: Sequence[float] | None = None,
) -> PBM:
    """PBM by EM; with ``examination`` given, only α is fitted (θ held fixed)."""
    return _fit(sessions, depth, iterations, examination)


def judgments_from_clicks(
    sessions: Sequence[Session],
    *,
    model: str = "pbm",
    depth: int = 10,
    min_impressions: int = 1,
    iterations: int = 200,
) -> list[Judgment]:
    """Labels per (query, doc): PBM attractiveness (θ from varied traffic) or COEC.

    COEC labels are capped at 1 (clicked at least as often as expected)."""
    shown: dict[tuple[str, str], int] = defaultdict(int)
    for s in sessions:
        for doc in s.docs[:depth]:
            shown[(s.query, doc)] += 1
    if model == "coec":
        labels = {k: min(v, 1.0) for k, v in coec(sessions, depth).items()}
        source = "coec"
    elif model == "pbm":
        theta = examination_curve(sessions, depth, iterations)
        labels = fit_pbm(sessions, depth, iterations, theta).attractiveness
        source = "pbm"
    else:
        raise ValueError(f"unknown click model [{model}]")
    return [
        Judgment(q, d, labels.get((q, d), 0.0), float(n), source)
        for (q, d), n in sorted(shown.items())
        if n >= min_impressions
    ]
