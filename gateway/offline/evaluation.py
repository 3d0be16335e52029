"""Offline evaluation of the gateway on a BEIR-layout dataset (corpus, queries, qrels).

Needs ``ir-measures`` (``pip install 'rerank-gateway[eval]'``).

    rerank-gateway eval --data data/scifact --gateway http://127.0.0.1:9201 \\
        [--index-into http://127.0.0.1:9200] [--variant rerank --variant w20:window=20] \\
        [--check-offline --model-dir models/minilm]

Every query is sent through the gateway once per variant: ``baseline`` with
``X-Rerank: off`` (the cluster's BM25 order), each rerank variant with
``X-Rerank: on`` (and ``ext.rerank.window`` when it names one). Prints nDCG@10,
Recall@100 and MRR@10 (ir-measures, trec_eval semantics) per variant and the
per-query wins / losses / ties on nDCG@10 against the baseline.

``--check-offline`` scores the baseline's candidates directly with
``OnnxCrossEncoder`` (no gateway, batcher or cache; text = title and text joined,
cut like the gateway's default) and compares with the first rerank variant:
the metrics, the largest score difference and how many rankings agree. Use the
fp32 model for this: a dynamically quantised (int8) model quantises activations
per batch, so its scores depend on which pairs share a batch (up to ~0.9 logit
apart here), and the gateway's batches are not the offline ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import ir_measures
from ir_measures import MRR, R, nDCG

from gateway.offline.seeding import Cluster, seed

MEASURES = [nDCG @ 10, R @ 100, MRR @ 10]
Run = dict[str, dict[str, float]]  # query id → doc id → score
Ranked = dict[str, list[tuple[str, float, dict[str, Any]]]]  # query id → (doc, score, source)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        next(fh)  # header: query-id corpus-id score
        for line in fh:
            qid, doc, score = line.split()
            out.setdefault(qid, {})[doc] = int(score)
    return out


def bulk_index(url: str, index: str, corpus: Path, batch: int = 1000) -> int:
    """(Re)create ``index`` and bulk-load the corpus (``title``, ``text``)."""
    return seed(Cluster(url, None, None), corpus, index, chunk=batch, recreate=True)


def parse_variant(spec: str) -> tuple[str, int | None]:
    name, _, rest = spec.partition(":")
    window = int(rest.split("=", 1)[1]) if rest.startswith("window=") else None
    return name, window


async def run_variant(
    session: aiohttp.ClientSession,
    gateway: str,
    index: str,
    queries: dict[str, str],
    *,
    depth: int,
    rerank: bool,
    window: int | None,
    concurrency: int,
) -> tuple[Ranked, list[float]]:
    ranked: Ranked = {}
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(qid: str, text: str) -> None:
        body: dict[str, Any] = {
            "size": depth,
            "query": {"multi_match": {"query": text, "fields": ["title", "text"]}},
        }
        if window is not None:
            body["ext"] = {"rerank": {"window": window}}
        headers = {"X-Rerank": "on" if rerank else "off"}
        async with gate:
            t0 = time.perf_counter()
            async with session.post(f"{gateway}/{index}/_search", json=body, headers=headers) as r:
                answer = await r.json()
                if r.status != 200 or (rerank and r.headers.get("X-Rerank") != "full"):
                    why = r.headers.get("X-Rerank-Reason")
                    print(f"query {qid}: HTTP {r.status} X-Rerank {why}", file=sys.stderr)
            latencies.append((time.perf_counter() - t0) * 1000)
        hits = answer.get("hits", {}).get("hits", [])
        ranked[qid] = [(h["_id"], float(h["_score"]), h.get("_source") or {}) for h in hits]

    await asyncio.gather(*(one(qid, text) for qid, text in queries.items()))
    return ranked, latencies


def as_run(ranked: Ranked) -> Run:
    # Scores from ranks, so ties in the model's scores cannot reorder what was served.
    return {
        q: {d: float(len(hits) - i) for i, (d, _, _) in enumerate(hits)}
        for q, hits in ranked.items()
    }


def offline_scores(
    ranked: Ranked, queries: dict[str, str], model_dir: Path, file: str | None
) -> Ranked:
    """The model's own ranking of each query's hits; without ``file``, the model file the
    gateway itself picks by default (MODEL__QUANTIZATION=auto)."""
    from gateway.model.onnx import OnnxCrossEncoder
    from gateway.settings import OnnxModel

    conf: dict[str, object] = {"path": model_dir} | ({"file": file} if file else {})
    encoder = OnnxCrossEncoder(model_dir, OnnxModel.model_validate(conf))
    out: Ranked = {}
    for qid, hits in ranked.items():
        texts = [
            " ".join(p for p in (str(s.get("title", "")), str(s.get("text", ""))) if p)[:4000]
            for _, _, s in hits
        ]
        scores: list[float] = []
        for start in range(0, len(texts), 32):
            pairs = [(queries[qid], t) for t in texts[start : start + 32]]
            scores.extend(float(x) for x in encoder.score(encoder.encode(pairs)))
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        out[qid] = [(hits[i][0], scores[i], hits[i][2]) for i in order]
    return out


def table(rows: dict[str, dict[str, float]]) -> str:
    names = [str(m) for m in MEASURES]
    lines = ["| variant | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for variant, values in rows.items():
        lines.append(f"| {variant} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |")
    return "\n".join(lines)


def evaluate(
    qrels: dict[str, dict[str, int]], run: Run
) -> tuple[dict[str, float], dict[str, float]]:
    agg = {str(k): float(v) for k, v in ir_measures.calc_aggregate(MEASURES, qrels, run).items()}
    per_query = {m.query_id: float(m.value) for m in ir_measures.iter_calc([nDCG @ 10], qrels, run)}
    return agg, per_query


async def main_async(args: argparse.Namespace) -> int:
    data = Path(args.data)
    qrels = read_qrels(data / "qrels" / f"{args.split}.tsv")
    queries = {str(q["_id"]): str(q["text"]) for q in read_jsonl(data / "queries.jsonl")}
    queries = {q: t for q, t in queries.items() if q in qrels}
    if args.limit:
        queries = dict(list(queries.items())[: args.limit])
    qrels = {q: judged for q, judged in qrels.items() if q in queries}  # average over these only
    if args.index_into:
        n = bulk_index(args.index_into, args.index, data / "corpus.jsonl")
        print(f"indexed {n} documents into {args.index_into}/{args.index}")
    specs = [] if args.baseline_only else args.variant or ["rerank"]
    variants = [("baseline", False, None)] + [
        (name, True, window) for name, window in map(parse_variant, specs)
    ]
    rows: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, float]] = {}
    ranked_by: dict[str, Ranked] = {}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for number, (name, rerank, window) in enumerate(variants, 1):
            t0 = time.perf_counter()
            of = f"{number}/{len(variants)}"
            # Progress on stderr: stdout is the results (and the table) that callers parse.
            print(f"eval: {of} {name}: {len(queries)} queries ...", file=sys.stderr, flush=True)
            ranked, lat = await run_variant(
                session,
                args.gateway,
                args.index,
                queries,
                depth=args.depth,
                rerank=rerank,
                window=window,
                concurrency=args.concurrency,
            )
            took = time.perf_counter() - t0
            print(f"eval: {of} {name}: done in {took:.1f} s", file=sys.stderr, flush=True)
            ranked_by[name] = ranked
            rows[name], per_query[name] = evaluate(qrels, as_run(ranked))
            lat.sort()
            print(
                f"{name}: {len(ranked)} queries in {took:.1f} s, "
                f"latency p50 {lat[len(lat) // 2]:.0f} ms p99 {lat[int(len(lat) * 0.99)]:.0f} ms"
            )
    first = variants[1][0] if len(variants) > 1 else None
    if args.check_offline and first is not None:
        offline = offline_scores(
            ranked_by["baseline"], queries, Path(args.model_dir), args.model_file
        )
        rows["offline-model"], per_query["offline-model"] = evaluate(qrels, as_run(offline))
        gateway_scores = {q: {d: s for d, s, _ in hits} for q, hits in ranked_by[first].items()}
        diffs = [
            abs(s - gateway_scores[q][d])
            for q, hits in offline.items()
            for d, s, _ in hits
            if d in gateway_scores.get(q, {})
        ]
        same = sum(
            [d for d, _, _ in offline[q]] == [d for d, _, _ in ranked_by[first][q]] for q in offline
        )
        print(
            f"offline check vs {first}: max |score diff| {max(diffs, default=0):.2e}, "
            f"identical rankings {same}/{len(offline)}"
        )
    print()
    print(table(rows))
    print()
    base = per_query["baseline"]
    for name in rows:
        if name == "baseline":
            continue
        mine = per_query[name]
        wins = sum(mine.get(q, 0) > base.get(q, 0) + 1e-12 for q in queries)
        losses = sum(mine.get(q, 0) < base.get(q, 0) - 1e-12 for q in queries)
        ties = len(queries) - wins - losses
        print(f"{name} vs baseline (nDCG@10 per query): {wins} wins, {losses} losses, {ties} ties")
    return 0
