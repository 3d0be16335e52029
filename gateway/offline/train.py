"""Train a second stage from the gateway's logs, prove it on held-out judgments, register it.

::

    python -m gateway.offline.train --events events.jsonl --features windows.json \\
        --registry models/ --name papers-ltr [--kind lightgbm|linear] [--click-model pbm|coec] \\
        [--qrels qrels.tsv --queries queries.jsonl] [--serving linear:0.7]

(``rerank-gateway train`` is the same command.)

1. sessions: an event log (JSON lines, as the gateway stores them: ``--events``; or
   the gateway's Redis stream: ``--redis-url`` with ``--experiment``) or UBI 1.3
   records (``--ubi-queries`` / ``--ubi-events``);
2. a time split (``--train-share`` of the sessions, oldest first, train; the rest
   held out), labels from the click model on each side, the examination curve
   fitted on the interleaved train sessions; ``--holdout-queries`` also keeps a
   share of the queries out of training and judges on them (query-disjoint: what
   predicts new queries; the time split alone rewards memorising known ones);
3. features: ``--features``, the windows the gateway reranked — per query text,
   ``{"docs": [...], "rows": [[...], ...], "ce": [...], "fs": [...]}`` with rows as
   ``gateway.learning.features`` builds them (``window_of`` makes one; ``ops.learn_sim``
   writes such a file);
4. evaluation: nDCG@10 of the trained model and of the serving ranking
   (``--serving``: ``replace``, ``rrf`` or ``linear:<weight>``) on the held-out
   click judgments, or on human judgments (``--qrels`` with ``--queries``, TREC or
   BEIR), with the paired randomization test;
5. registration: the model, its data window and these metrics (``registry``).

Exit status 0 when registered; 3 with ``--require-better`` when the model is not
significantly better than the serving ranking (it is then not registered).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.experiments.events import RedisBackend, stream_key
from gateway.learning import features
from gateway.learning.clicks import (
    Session,
    examination_curve,
    fit_pbm,
    judgments_from_clicks,
    sessions_from_events,
    split_by_time,
    time_cut,
)
from gateway.learning.judgments import Judgment, by_query, grades, query_key, read_qrels
from gateway.learning.ranker import Kind, Ranker, train_lightgbm, train_linear
from gateway.learning.registry import Registry
from gateway.learning.significance import Paired, paired_test, per_query_ndcg
from gateway.learning.ubi import read_ndjson, sessions_from_ubi
from gateway.rerank.fusion import FusionSpec, fuse
from gateway.rerank.profiles import Profile
from gateway.rerank.relevance import score_window
from gateway.rerank.reranker import Reranker
from gateway.settings import CacheSettings

Window = dict[str, Any]  # docs, rows, ce, fs (the scored hits of one window)


async def window_of(
    reranker: Reranker, profile: Profile, query: str, hits: Sequence[Mapping[str, Any]]
) -> Window:
    """One window's serving-time features, scored through the gateway's own path."""
    scored = await score_window(reranker, profile, query, hits)
    if scored.pooled is None:
        raise ValueError(f"the window was not scored: {scored.reason}")
    first = [h.get("_score") for h in hits]
    fs = [float(f) if isinstance(f, int | float) else None for f in first]
    chunks = [p.chunk_scores for p in scored.pooled]
    taking, rows = features.window_rows(
        chunks, fs, hits, profile.document.fields, [p.score for p in scored.pooled]
    )
    return {
        "docs": [str(hits[i].get("_id", "")) for i in taking],
        "rows": rows.tolist(),
        "ce": [scored.pooled[i].score for i in taking],
        "fs": [fs[i] for i in taking],
    }


def order_by(docs: Sequence[str], scores: Sequence[float]) -> list[str]:
    return [docs[i] for i in sorted(range(len(docs)), key=lambda i: (-scores[i], i))]


def fused_order(window: Window, spec: FusionSpec) -> list[str]:
    out = fuse(window["ce"], window["fs"], spec)
    return order_by(window["docs"], [f.score if f.score is not None else -1e9 for f in out])


def learned_order(window: Window, model: Ranker) -> list[str]:
    if not window["rows"]:
        return []
    return order_by(window["docs"], model.predict(np.asarray(window["rows"])).tolist())


def parse_serving(spec: str) -> FusionSpec:
    use, _, weight = spec.partition(":")
    if use == "linear":
        return FusionSpec("linear", weight=float(weight or 0.7))
    if use == "replace":
        return FusionSpec("replace")
    if use == "rrf":
        return FusionSpec("rrf")
    raise ValueError(f"--serving: replace, rrf or linear:<weight>, not [{spec}]")


def dataset(
    windows: Mapping[str, Window], labels: Mapping[str, Mapping[str, float]]
) -> tuple[np.ndarray, list[int], list[int]]:
    """Rows of the labelled hits (queries with ≥ 2), their grades, rows per query."""
    rows: list[list[float]] = []
    ys: list[float] = []
    groups: list[int] = []
    for query, w in windows.items():
        judged = labels.get(query_key(query), {})
        got = [(r, judged[d]) for d, r in zip(w["docs"], w["rows"], strict=True) if d in judged]
        if len(got) >= 2:
            rows.extend(r for r, _ in got)
            ys.extend(y for _, y in got)
            groups.append(len(got))
    return np.asarray(rows, dtype=np.float64), grades(ys), groups


def train(
    kind: Kind, rows: np.ndarray, ys: list[int], groups: list[int], names: Sequence[str]
) -> Ranker:
    if kind == "lightgbm":
        return train_lightgbm(rows, ys, groups, names)
    return train_linear(rows, ys, groups, names)


def compare(
    windows: Mapping[str, Window],
    judged: Mapping[str, Mapping[str, float]],
    model: Ranker,
    serving: FusionSpec,
) -> Paired:
    """nDCG@10 of the serving ranking (a) against the model (b) on the judged queries."""
    keyed = {query_key(q): w for q, w in windows.items()}
    qrels = {q: j for q, j in judged.items() if q in keyed and any(v > 0 for v in j.values())}
    serving_ndcg = per_query_ndcg({q: fused_order(keyed[q], serving) for q in qrels}, qrels)
    model_ndcg = per_query_ndcg({q: learned_order(keyed[q], model) for q in qrels}, qrels)
    return paired_test(serving_ndcg, model_ndcg)


async def read_stream(redis_url: str, experiment: str) -> list[dict[str, Any]]:
    """An experiment's events from the gateway's Redis stream (through ``RedisBackend``)."""
    settings = CacheSettings.model_validate({"redis_url": redis_url, "timeout_s": 30.0})
    backend = RedisBackend(settings, stream_key(experiment), max_events=0)
    try:
        return await backend.read()
    finally:
        await backend.close()


def sessions_from_args(
    args: argparse.Namespace,
    missing: str = "train: give --events, --redis-url with --experiment, or --ubi-queries and"
    " --ubi-events",
) -> list[Session]:
    """The sessions the command line names: an event file, a live Redis stream, or UBI."""
    if args.events:
        return sessions_from_events(read_ndjson(Path(args.events)))
    if args.redis_url and args.experiment:
        return sessions_from_events(asyncio.run(read_stream(args.redis_url, args.experiment)))
    if args.ubi_queries and args.ubi_events:
        return sessions_from_ubi(
            read_ndjson(Path(args.ubi_queries)), read_ndjson(Path(args.ubi_events))
        )
    raise SystemExit(missing)


def _scaled(judgments: Sequence[Judgment]) -> dict[str, dict[str, float]]:
    """Click labels in [0, 1] as grades 0..4 (the gains nDCG is computed with)."""
    return {
        q: {d: float(g) for d, g in zip(docs, grades(docs.values()), strict=True)}
        for q, docs in by_query(judgments).items()
    }


def click_judgments(
    sessions: Sequence[Session], model: str, theta: Sequence[float] | None = None
) -> list[Judgment]:
    """PBM attractiveness (θ given, else fitted on these sessions' varied traffic) or COEC."""
    if model == "coec":
        return judgments_from_clicks(sessions, model="coec")
    fitted = fit_pbm(sessions, examination=theta or examination_curve(sessions))
    return [Judgment(q, d, a, source="pbm") for (q, d), a in fitted.attractiveness.items()]


def judged_by_key(qrels: Path, queries: Path) -> dict[str, dict[str, float]]:
    """Human judgments (BEIR ``qrels`` over ``queries.jsonl``) by query key."""
    texts = {str(q["_id"]): str(q["text"]) for q in read_ndjson(queries)}
    return {query_key(q): j for q, j in by_query(read_qrels(qrels, texts)).items()}


def held_queries(queries: Iterable[str], share: float, seed: int) -> set[str]:
    """A seeded ``share`` of the distinct ``queries``, kept out of training (query-disjoint)."""
    distinct = sorted(set(queries))
    return set(random.Random(seed).sample(distinct, round(len(distinct) * share)))


def holdout_option(parser: argparse.ArgumentParser, flag: str = "--holdout-queries") -> None:
    """``flag``: the share ``held_queries`` keeps out (this command's, ``ops/learn_sim``'s)."""
    parser.add_argument(
        flag,
        type=float,
        default=0.0,
        help="share of queries kept out of training and judged on (query-disjoint);"
        " 0: judge on the time split's later sessions",
    )


def run(args: argparse.Namespace) -> int:
    sessions = sessions_from_args(args)
    if not sessions:
        print("train: no sessions with a query text in the log", file=sys.stderr)
        return 1
    cut = time_cut(sessions, args.train_share)
    before, after = split_by_time(sessions, cut)
    windows: dict[str, Window] = json.loads(Path(args.features).read_text(encoding="utf-8"))
    theta = examination_curve(before) if args.click_model == "pbm" else None
    labels = by_query(click_judgments(before, args.click_model, theta))
    held = click_judgments(after, args.click_model, theta)
    held_out = held_queries((s.query for s in sessions), args.holdout_queries, args.seed)
    if held_out:  # validate on queries the model never saw: their clicks, all sessions
        labels = {q: j for q, j in labels.items() if q not in held_out}
        held = [j for j in click_judgments(sessions, args.click_model) if j.query in held_out]
    rows, ys, groups = dataset(windows, labels)
    if not groups:
        print("train: no query has two labelled hits in --features", file=sys.stderr)
        return 1
    names = features.names(args.fields)
    if rows.shape[1] != len(names):
        print(
            f"train: feature rows have {rows.shape[1]} columns, {names} expected", file=sys.stderr
        )
        return 1
    model = train(args.kind, rows, ys, groups, names)
    serving = parse_serving(args.serving)
    if args.qrels:
        judged = judged_by_key(Path(args.qrels), Path(args.queries))
        source = f"human judgments {args.qrels}"
    else:
        judged = _scaled(held)
        source = (
            f"clicks of {len(held_out)} held-out queries"
            if held_out
            else f"held-out clicks after {cut:.0f}"
        )
    result = compare(windows, judged, model, serving)
    print(
        f"trained {args.kind} on {len(groups)} queries ({len(ys)} rows); on {source}:"
        f" nDCG@10 serving ({args.serving}) {result.mean_a:.4f}, model {result.mean_b:.4f},"
        f" Δ {result.delta:+.4f}, p {result.p:.4f}"
        f" ({result.wins} wins, {result.losses} losses, {result.ties} ties)"
    )
    better = result.delta > 0 and result.p < args.alpha
    if args.require_better and not better:
        print("train: not significantly better than the serving ranking; not registered")
        return 3
    stamps = [s.ts for s in before]
    entry = Registry(Path(args.registry)).register(
        args.name,
        model,
        data_window={"from": min(stamps), "to": max(stamps)},
        metrics={
            "evaluated_on": source,
            "ndcg@10": result.mean_b,
            "serving_ndcg@10": result.mean_a,
            "delta": result.delta,
            "p_value": result.p,
            "queries": result.wins + result.losses + result.ties,
        },
        params={"click_model": args.click_model, "serving": args.serving, "fields": args.fields},
    )
    print(f"registered {entry.fingerprint} in {args.registry}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", help="event log, JSON lines (the gateway's event shapes)")
    parser.add_argument("--redis-url", help="read the experiment's event stream from Redis")
    parser.add_argument("--experiment", help="with --redis-url: GATEWAY_EXPERIMENT__NAME")
    parser.add_argument("--ubi-queries", help="UBI 1.3 query records, JSON lines")
    parser.add_argument("--ubi-events", help="UBI 1.3 event records, JSON lines")
    parser.add_argument("--features", required=True, help="feature windows per query (JSON)")
    parser.add_argument("--fields", nargs="+", default=["title", "text"], help="text fields")
    parser.add_argument("--registry", required=True, help="model registry directory")
    parser.add_argument("--name", required=True, help="model name in the registry")
    parser.add_argument("--kind", choices=["lightgbm", "linear"], default="lightgbm")
    parser.add_argument("--click-model", choices=["pbm", "coec"], default="pbm")
    parser.add_argument("--train-share", type=float, default=0.8, help="time split")
    holdout_option(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serving", default="linear:0.7", help="replace | rrf | linear:<w>")
    parser.add_argument("--qrels", help="evaluate on human judgments (TREC or BEIR qrels)")
    parser.add_argument("--queries", help="queries.jsonl (BEIR) for --qrels")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--require-better", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.offline.train", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
