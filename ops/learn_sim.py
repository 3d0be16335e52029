"""Close the loop on SciFact: simulated users click, the gateway logs, a ranker learns from it.

::

    1 traffic    osmem-server holds the SciFact corpus; the gateway runs an interleaving
                 experiment (control: BM25 order; treatment: today's fixed fusion). Each
                 *train* query is searched ``--sessions`` times; a simulated user examines
                 rank r with probability ``1 / r**eta`` and clicks an examined hit with
                 ``--p-rel`` when the train qrels judge it relevant, ``--p-nonrel`` otherwise
                 (clicks go to ``POST /_gateway/events``, as a client would send them)
    2 labels     the gateway's own event log → sessions → PBM (examination fitted on the
                 interleaved traffic) → judgments; the last ``1 - --train-share`` of the
                 sessions (by time) are held out as validation judgments
    3 features   for each train query, the window the gateway reranks (first stage +
                 cross-encoder scores through its Reranker and cache), ``gateway.learning.features``
    4 train      LightGBM lambdarank and the linear pairwise model on the labelled rows;
                 the fixed fusion weight is tuned on the validation judgments (what an
                 operator could do with the same logs)
    5 test       SciFact *test* queries (never searched in 1): nDCG@10 on the test qrels of
                 (a) the first stage, (b) the reranker alone, (c) the fixed fusion, (d) the
                 learned rankers; paired randomization test of (d) against each

Run (2 shared cores, int8 model at 128 tokens: ~15 minutes, mostly cross-encoder)::

    .venv/bin/python -m ops.learn_sim --data DATA/scifact --out DIR \\
        --train-queries 200 --test-queries 300 --window 20

TREC DL19 has one qrels file: ``--split-queries 0.5`` cuts the queries of
``qrels/test.tsv`` into train / test (seeded, query-disjoint; refused where
``qrels/train.tsv`` exists), and ``--click-grade 2`` makes only grade ≥ 2 attract clicks.

Features are kept in ``--out`` (``features.json``), so ``--reuse`` retrains and
re-evaluates without scoring again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from gateway.learning import features
from gateway.learning.clicks import (
    examination_curve,
    fit_pbm,
    sessions_from_events,
    split_by_time,
    time_cut,
)
from gateway.learning.judgments import grades, query_key
from gateway.learning.ranker import Ranker, train_lightgbm, train_linear
from gateway.learning.registry import Registry
from gateway.learning.significance import paired_test, per_query_ndcg
from gateway.offline.train import (
    dataset,
    fused_order,
    held_queries,
    holdout_option,
    learned_order,
    order_by,
    window_of,
)
from gateway.rerank.fusion import FusionSpec, fuse
from gateway.settings import Settings
from gateway.web.state import EXPERIMENTS, FLOW
from ops.harness import beir
from ops.harness.options import path_option, reranker_options, reranker_sections
from ops.harness.servers import osmem, running, seeded
from ops.harness.users import FIELDS, clicks_on, search_body

INDEX = "scifact"
WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
Window = dict[str, Any]  # docs, rows, ce, fs
Qrels = dict[str, dict[str, float]]
Ranking = Callable[[Window], list[str]]


async def traffic(
    session: aiohttp.ClientSession,
    url: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    args: argparse.Namespace,
) -> tuple[int, int]:
    rng = random.Random(args.seed)
    searches = clicks = 0
    for _ in range(args.sessions):
        for qid, text in queries.items():
            async with session.post(f"{url}/{INDEX}/_search", json=search_body(text, 10)) as r:
                answer = await r.json()
                sid = r.headers.get("X-Search-Id", "")
            searches += 1
            hits = answer.get("hits", {}).get("hits", [])
            relevant = {d: g for d, g in qrels[qid].items() if g >= args.click_grade}
            picked = clicks_on(
                hits, relevant, sid, rng, eta=args.eta, p_rel=args.p_rel, p_nonrel=args.p_nonrel
            )
            if picked:
                async with session.post(f"{url}/_gateway/events", json=picked) as r:
                    await r.read()
                clicks += len(picked)
    return searches, clicks


async def windows(
    app: web.Application,
    session: aiohttp.ClientSession,
    upstream: str,
    queries: dict[str, str],
    window: int,
) -> dict[str, Window]:
    """The window the gateway reranks for each query, with its serving-time features."""
    flow = app[FLOW]
    assert flow.reranker is not None
    profile = replace(flow.profiles.default, timeout_s=3600.0)
    out: dict[str, Window] = {}
    for n, (qid, text) in enumerate(queries.items(), start=1):
        body = {**search_body(text, window), "_source": list(FIELDS)}
        async with session.post(f"{upstream}/{INDEX}/_search", json=body) as r:
            hits = (await r.json())["hits"]["hits"]
        out[qid] = await window_of(flow.reranker, profile, text, hits)
        if n % 50 == 0:
            print(f"  features: {n}/{len(queries)} queries", file=sys.stderr)
    return out


async def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Steps 1 and 3: traffic through the gateway, the event log, the feature windows."""
    queries = beir.queries(args.data)
    if args.split_queries:
        train_qrels, test_qrels = beir.split_queries(args.data, args.split_queries, args.seed)
    else:
        train_qrels, test_qrels = beir.qrels(args.data, "train"), beir.qrels(args.data, "test")
    rng = random.Random(args.seed)
    train_all = sorted(q for q in train_qrels if q in queries)
    train_ids = sorted(rng.sample(train_all, min(args.train_queries, len(train_all))))
    test_all = sorted(q for q in test_qrels if q in queries)
    test_ids = sorted(rng.sample(test_all, min(args.test_queries, len(test_all))))
    with osmem() as upstream:
        count = seeded(upstream, INDEX, args.data / "corpus.jsonl")
        print(f"indexed {count} documents into osmem-server", file=sys.stderr)
        settings = Settings.model_validate(
            {
                "upstream": {"urls": [upstream]},
                **reranker_sections(args),
                "relevance": {"score_use": "linear", "weight": args.serving_weight},
                "cache": {"memory_entries": 1_000_000},
                "experiment": {
                    "mode": "interleave",
                    "name": "learn-sim",
                    "variants": "baseline:50,rerank:50",
                    "events_max": 1_000_000,
                },
            }
        )
        async with running(settings) as (app, url):
            timeout = aiohttp.ClientTimeout(total=3600)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                t0 = time.perf_counter()
                searches, clicks = await traffic(
                    session, url, {q: queries[q] for q in train_ids}, train_qrels, args
                )
                print(
                    f"traffic: {searches} searches, {clicks} clicks"
                    f" in {time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                )
                events = app[EXPERIMENTS].events
                await events.flush()
                log = await events.read()
                train_w = await windows(
                    app, session, upstream, {q: queries[q] for q in train_ids}, args.window
                )
                test_w = await windows(
                    app, session, upstream, {q: queries[q] for q in test_ids}, args.window
                )
    return {
        "queries": {q: queries[q] for q in [*train_ids, *test_ids]},
        "train": train_w,
        "test": test_w,
        "test_qrels": {q: test_qrels[q] for q in test_ids},
        "events": log,
    }


def _ranked(rank: Ranking, wins: dict[str, Window], qrels: Qrels) -> dict[str, float]:
    return per_query_ndcg({q: rank(wins[q]) for q in qrels}, qrels)


def _mean(values: dict[str, float]) -> float:
    return float(np.mean(list(values.values()))) if values else 0.0


def _linear(w: float) -> Ranking:
    return lambda x: fused_order(x, FusionSpec("linear", weight=w))


def _learned(model: Ranker) -> Ranking:
    return lambda x: learned_order(x, model)


def labels(state: dict[str, Any], args: argparse.Namespace) -> tuple[Any, Qrels, Qrels, Qrels]:
    """Step 2: the event log → sessions → PBM labels: train / validation by time, and all."""
    sessions = sessions_from_events(state["events"])
    train_s, valid_s = split_by_time(sessions, time_cut(sessions, args.train_share))
    theta = examination_curve(train_s)
    print("examination θ_1..10 fitted on the interleaved log:", _floats(theta))
    users = _floats(1 / r**args.eta for r in range(1, 11))
    print("examination of the simulated users:               ", users)
    print(f"sessions: {len(train_s)} train, {len(valid_s)} validation (split by time)")
    out = []
    for part in (train_s, valid_s, sessions):
        judged: Qrels = {}
        for (q, d), a in fit_pbm(part, examination=theta).attractiveness.items():
            judged.setdefault(q, {})[d] = a
        out.append(judged)
    return train_s, out[0], out[1], out[2]


def _graded(qids: set[str], labels: Qrels, text: dict[str, str]) -> Qrels:
    """Click labels of ``qids`` as grades 0..4, for queries with a likely relevant hit."""
    out: Qrels = {}
    for qid in sorted(qids):
        judged = labels.get(query_key(text[qid]), {})
        if any(a >= 0.5 for a in judged.values()):
            out[qid] = {d: float(g) for d, g in zip(judged, grades(judged.values()), strict=True)}
    return out


def _floats(values: Any) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def report(state: dict[str, Any], args: argparse.Namespace) -> None:
    """Steps 2, 4 and 5: labels, training, the held-out table."""
    text = state["queries"]
    train_s, train_labels, valid_labels, all_labels = labels(state, args)
    held = held_queries(state["train"], args.query_holdout, args.seed)
    if held:  # validate on queries the model never trained on (their clicks, all sessions)
        valid_labels = all_labels
        print(f"validation: {len(held)} train queries held out of training (query-disjoint)")
    by_text = {text[q]: w for q, w in state["train"].items() if q not in held}
    if args.unshown_zero:  # window hits no user was shown: label 0 (a biased heuristic)
        for qid, w in state["train"].items():
            judged = train_labels.setdefault(query_key(text[qid]), {})
            for doc in w["docs"]:
                judged.setdefault(doc, 0.0)
    rows, ys, groups = dataset(by_text, train_labels)
    print(f"{len(groups)} train queries with ≥ 2 labelled hits, {len(ys)} rows")
    names = features.names(FIELDS)
    t0 = time.perf_counter()
    params = {"num_leaves": args.leaves, "min_data_in_leaf": args.min_leaf}
    gbm = train_lightgbm(rows, ys, groups, names, rounds=args.rounds, params=params)
    gbm_s = time.perf_counter() - t0
    lin = train_linear(rows, ys, groups, names)
    # The fixed weight an operator could pick from the same logs: best on the validation clicks.
    valid = _graded(held or set(state["train"]), valid_labels, text)
    by_w = {w: _mean(_ranked(_linear(w), state["train"], valid)) for w in WEIGHTS}
    for model in (gbm, lin):
        mean = _mean(_ranked(_learned(model), state["train"], valid))
        print(f"validation clicks nDCG@10 of the {model.kind} model: {mean:.3f}")
    best_w = max(by_w, key=lambda w: by_w[w])
    test = state["test"]
    qrels = {q: {d: float(g) for d, g in j.items()} for q, j in state["test_qrels"].items()}
    serving = args.serving_weight
    rankers: dict[str, Ranking] = {
        "(a) first stage (BM25)": lambda w: list(w["docs"]),
        "(b) reranker alone": lambda w: order_by(w["docs"], w["ce"]),
        f"(c) fixed fusion as served (linear w={serving})": _linear(serving),
        f"(c) fixed fusion tuned on validation clicks (w={best_w})": _linear(best_w),
        "(c) fixed fusion RRF k=60": lambda w: fused_order(w, FusionSpec("rrf")),
        "(d) learned: LightGBM lambdarank": _learned(gbm),
        "(d) learned: linear pairwise": _learned(lin),
    }
    per_q = {name: _ranked(rank, test, qrels) for name, rank in rankers.items()}
    print(
        f"\n{args.data.name} test: {len(qrels)} held-out queries, window {args.window},"
        " test qrels\n"
    )
    print("| ranking | nDCG@10 | LightGBM − it | p (paired randomization) | wins/losses/ties |")
    print("|---|---|---|---|---|")
    gbm_q = per_q["(d) learned: LightGBM lambdarank"]
    for name, values in per_q.items():
        if name.startswith("(d) learned: LightGBM"):
            print(f"| {name} | {_mean(values):.4f} | | | |")
            continue
        t = paired_test(values, gbm_q)
        said = f"{t.delta:+.4f} | {t.p:.4f} | {t.wins}/{t.losses}/{t.ties}"
        print(f"| {name} | {_mean(values):.4f} | {said} |")
    oracle = {w: _mean(_ranked(_linear(w), test, qrels)) for w in WEIGHTS}
    best = max(oracle, key=lambda w: oracle[w])
    print(f"\nceiling: the best fixed weight on the test qrels: w={best}, {oracle[best]:.4f}")
    print("validation nDCG@10 per weight:", ", ".join(f"{w}: {v:.3f}" for w, v in by_w.items()))
    print(f"lightgbm training: {gbm_s:.2f} s for {len(ys)} rows")
    speed(test, gbm, lin)
    if args.registry:
        stamps = [s.ts for s in train_s]
        entry = Registry(args.registry).register(
            "scifact-ltr",
            gbm,
            data_window={"from": min(stamps), "to": max(stamps)},
            metrics={"test_ndcg@10": _mean(gbm_q)},
            params={"rounds": args.rounds, "window": args.window, **params},
        )
        print(f"registered {entry.fingerprint} in {args.registry}")


def speed(test: dict[str, Window], *models: Ranker) -> None:
    """Added latency of the learned step per 100 hits (features + predict), in process."""
    one = next(w for w in test.values() if w["rows"])
    rows = np.asarray((one["rows"] * (100 // len(one["rows"]) + 1))[:100])
    chunks = [[float(r[0])] for r in rows]
    fs = [float(r[5]) for r in rows]
    hits = [{"_source": {"title": "t" * 80, "text": "x" * 1200}} for _ in rows]
    ce: list[float | None] = [c[0] for c in chunks]
    started = time.perf_counter()
    for _ in range(200):
        fuse(ce, list(fs), FusionSpec("linear"))
    fixed = (time.perf_counter() - started) / 200 * 1000
    print(f"fixed fusion (today's step): {fixed:.3f} ms per 100 hits")
    for model in models:
        started = time.perf_counter()
        for _ in range(200):
            _, built = features.window_rows(chunks, fs, hits, FIELDS)
            model.predict(built)
        ms = (time.perf_counter() - started) / 200 * 1000
        print(
            f"{model.kind}: features + predict {ms:.3f} ms per 100 hits ({ms / fixed:.0f}x fusion)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    reranker_options(parser)
    parser.add_argument("--train-queries", type=int, default=200)
    parser.add_argument("--test-queries", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=5, help="searches per train query")
    parser.add_argument("--eta", type=float, default=1.0, help="examination 1 / rank**eta")
    parser.add_argument("--p-rel", type=float, default=0.9)
    parser.add_argument("--p-nonrel", type=float, default=0.1)
    parser.add_argument("--serving-weight", type=float, default=0.7)
    parser.add_argument(
        "--unshown-zero", action="store_true", help="train: unshown window hits get grade 0"
    )
    holdout_option(parser, "--query-holdout")
    parser.add_argument(
        "--split-queries",
        type=float,
        default=0.0,
        help="train share of qrels/test.tsv's queries, split seeded and query-disjoint"
        " (for a dataset without qrels/train.tsv, e.g. TREC DL; default: the two files)",
    )
    parser.add_argument(
        "--click-grade",
        type=int,
        default=1,
        help="lowest qrels grade a simulated user finds relevant (TREC DL: 2)",
    )
    parser.add_argument("--train-share", type=float, default=0.8)
    parser.add_argument("--rounds", type=int, default=100, help="LightGBM boosting rounds")
    parser.add_argument("--leaves", type=int, default=15, help="LightGBM num_leaves")
    parser.add_argument("--min-leaf", type=int, default=20, help="LightGBM min_data_in_leaf")
    parser.add_argument("--seed", type=int, default=13)
    path_option(parser, "--out", "directory for features.json")
    parser.add_argument("--reuse", action="store_true", help="reuse --out/features.json")
    parser.add_argument("--registry", type=Path, help="register the LightGBM model here")
    args = parser.parse_args()
    if args.split_queries:
        try:
            beir.split_queries(args.data, args.split_queries, args.seed)
        except ValueError as exc:
            parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    cached = args.out / "features.json"
    if args.reuse and cached.is_file():
        state = json.loads(cached.read_text())
    else:
        state = asyncio.run(collect(args))
        cached.write_text(json.dumps(state))
    report(state, args)


if __name__ == "__main__":
    main()
