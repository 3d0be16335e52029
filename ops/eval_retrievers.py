"""nDCG@10 / R@100 of BM25, kNN, hybrid RRF, hybrid linear, each alone and reranked, through
the gateway's retriever tree on noida-db (Elasticsearch 8.15 API with kNN).

::

    .venv/bin/python -m ops.eval_retrievers --data DATA --model-dir MODEL \\
        --scifact-queries 100 --window 50 --save results.json

Per dataset (``--datasets``, BEIR layout under ``--data``): starts a fresh noida-db
(``--only elasticsearch``), bulk-loads the corpus (``title``, ``text``), fills the
``dense_vector`` field ``embedding`` with ``rerank-gateway backfill`` (the
embedder cut from the pair model), starts the gateway in this process with the real
model and embedder, then sends each judged query (``queries.jsonl`` order, the first
``--*-queries``) once per configuration:

- ``bm25``: ``standard`` retriever, ``multi_match`` on ``title``, ``text``;
- ``knn``: ``knn`` retriever on ``embedding``, ``query_vector_builder.text_embedding``;
- ``rrf``: ``rrf`` over both (rank_constant 60); ``linear``: ``linear`` over both,
  ``minmax``, weights 1 / 1; each with ``rank_window_size`` ``--depth``;
- ``<x> + rerank``: ``text_similarity_reranker`` (field ``text``, ``rank_window_size``
  ``--window``) over ``<x>``. Its answer holds the reranked top ``--window``; for
  R@100 the first stage's hits below the window follow it (what a reranked search
  serves), so R@100 of a reranked row equals its first stage's by construction.

The first stages run without reranking (``X-Rerank: off``); a reranked answer whose
``X-Rerank`` is not ``full`` (the fallback served the child's order) is counted and
printed. Results are written to ``--save`` after every configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from ir_measures import R, nDCG

from gateway.model.embedder_export import export
from gateway.settings import Settings
from ops.harness import beir
from ops.harness.metrics import aggregate, as_run
from ops.harness.options import model_dir_option, path_option
from ops.harness.servers import gateway_env, noida_db, running, seeded

FIELD = "embedding"
FIRST_STAGES = ("bm25", "knn", "rrf", "linear")
Ranking = dict[str, list[str]]  # query id → doc ids, best first

# Published BM25 (the data's README.md): nDCG@10, R@100, source.
REFERENCE: dict[str, tuple[float, float, str]] = {
    "scifact": (0.6789, 0.9253, "Anserini flat; BEIR (ES multi_field) nDCG@10 0.665"),
    "trec-dl-2019-passage": (0.5058, 0.4910, "Anserini, full MS MARCO collection"),
}


def recall_measure(dataset: str) -> Any:
    # Graded TREC DL qrels: a passage counts as relevant from grade 2 (data/README.md).
    return R(rel=2) @ 100 if dataset.startswith("trec-dl") else R @ 100


@dataclass
class Dataset:
    name: str
    root: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load(root: Path, limit: int) -> Dataset:
    """The first ``limit`` judged queries (0: all) in ``queries.jsonl`` order."""
    qrels = beir.qrels(root)
    queries = beir.judged(root, limit=limit)
    return Dataset(root.name, root, queries, {q: qrels[q] for q in queries})


def first_stage(name: str, text: str, depth: int) -> dict[str, Any]:
    bm25 = {"standard": {"query": {"multi_match": {"query": text, "fields": ["title", "text"]}}}}
    knn = {
        "knn": {
            "field": FIELD,
            "query_vector_builder": {"text_embedding": {"model_text": text}},
            "k": depth,
            "num_candidates": depth,
        }
    }
    if name == "bm25":
        return bm25
    if name == "knn":
        return knn
    if name == "rrf":
        return {"rrf": {"retrievers": [bm25, knn], "rank_window_size": depth}}
    if name == "linear":
        children = [{"retriever": r, "weight": 1.0, "normalizer": "minmax"} for r in (bm25, knn)]
        return {"linear": {"retrievers": children, "rank_window_size": depth}}
    raise ValueError(name)


def search_body(config: str, text: str, depth: int, window: int) -> dict[str, Any]:
    stage, _, rerank = config.partition(" + ")
    retriever = first_stage(stage, text, depth)
    if not rerank:
        return {"size": depth, "retriever": retriever, "_source": False}
    reranker = {
        "retriever": retriever,
        "field": "text",
        "inference_text": text,
        "rank_window_size": window,
    }
    return {"size": window, "retriever": {"text_similarity_reranker": reranker}, "_source": False}


@dataclass
class Outcome:
    ranking: Ranking
    not_full: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


async def run_config(
    session: aiohttp.ClientSession,
    gateway: str,
    index: str,
    data: Dataset,
    config: str,
    *,
    depth: int,
    window: int,
    concurrency: int,
) -> Outcome:
    out = Outcome({})
    gate = asyncio.Semaphore(concurrency)
    reranked = " + " in config
    headers = {} if reranked else {"X-Rerank": "off"}

    async def one(qid: str, text: str) -> None:
        body = search_body(config, text, depth, window)
        async with (
            gate,
            session.post(f"{gateway}/{index}/_search", json=body, headers=headers) as r,
        ):
            answer = await r.json()
            if r.status != 200:
                out.errors.append(f"{qid}: HTTP {r.status} {json.dumps(answer)[:300]}")
                return
            if reranked and r.headers.get("X-Rerank") != "full":
                out.not_full += 1
                print(f"  {qid}: X-Rerank {r.headers.get('X-Rerank-Reason')}", file=sys.stderr)
        out.ranking[qid] = [h["_id"] for h in answer["hits"]["hits"]]

    t0 = time.perf_counter()
    await asyncio.gather(*(one(q, t) for q, t in data.queries.items()))
    out.seconds = time.perf_counter() - t0
    return out


def with_tail(reranked: Ranking, first: Ranking, depth: int) -> Ranking:
    """The reranked window, then the first stage's hits below it, ``depth`` in all."""
    out: Ranking = {}
    for qid, top in reranked.items():
        seen = set(top)
        out[qid] = (top + [d for d in first.get(qid, []) if d not in seen])[:depth]
    return out


def measure(data: Dataset, ranking: Ranking) -> dict[str, float]:
    recall = recall_measure(data.name)
    agg = aggregate([nDCG @ 10, recall], data.qrels, as_run(ranking))
    return {"nDCG@10": float(agg[nDCG @ 10]), "R@100": float(agg[recall])}


def configs(rerank: bool) -> list[str]:
    return [*FIRST_STAGES, *([f"{s} + rerank" for s in FIRST_STAGES] if rerank else [])]


def chosen(args: argparse.Namespace) -> list[str]:
    """``--configs`` (comma-separated), in the order of ``configs``; default all."""
    every = configs(args.window > 0)
    if not args.configs:
        return every
    wanted = set(args.configs.split(","))
    if unknown := wanted - set(every):
        raise SystemExit(f"unknown --configs {sorted(unknown)}: choose from {every}")
    return [c for c in every if c in wanted]


def table(results: dict[str, dict[str, dict[str, float]]], datasets: list[str]) -> str:
    head = "| configuration |"
    rule = "|---|"
    for name in datasets:
        recall = str(recall_measure(name)).replace("R(rel=2)", "R(rel≥2)")
        head += f" {name} nDCG@10 | {name} {recall} |"
        rule += "---|---|"
    lines = [head, rule]
    names = [c for c in configs(True) if any(c in results.get(d, {}) for d in datasets)]
    for config in names:
        cells = []
        for d in datasets:
            row = results.get(d, {}).get(config)
            cells += [f"{row['nDCG@10']:.4f}", f"{row['R@100']:.4f}"] if row else ["–", "–"]
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    refs = []
    for d in datasets:
        ndcg, rec, _ = REFERENCE.get(d, (float("nan"), float("nan"), ""))
        refs += [f"{ndcg:.4f}", f"{rec:.4f}"]
    lines.append("| published BM25 (data/README.md) | " + " | ".join(refs) + " |")
    return "\n".join(lines)


def backfill(url: str, index: str, model: Path, cache_dir: str) -> None:
    """``rerank-gateway backfill`` fills ``embedding`` from title + text."""
    env = gateway_env(
        {
            "GATEWAY_UPSTREAM__URLS": url,
            "GATEWAY_UPSTREAM__TIMEOUT_S": "600",
            "GATEWAY_EMBEDDER__PATH": str(model),
            "GATEWAY_EMBEDDER__CACHE_DIR": cache_dir,
            "GATEWAY_EMBEDDER__FIELD": FIELD,
        }
    )
    cmd = [sys.executable, "-m", "gateway", "backfill", index, "--restart", "--state"]
    done = subprocess.run([*cmd, str(Path(cache_dir) / f"{index}.state")], env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"backfill of {index} exited {done.returncode}")


def gateway_settings(upstream: str, model: Path, cache_dir: str) -> dict[str, Any]:
    return {
        "upstream": {"urls": [upstream], "timeout_s": 600},
        "model": {"path": str(model)},
        "embedder": {"path": str(model), "cache_dir": cache_dir},
        "rerank": {"timeout_s": 3600},
        "speed": {"max_timeout_s": 3600},
        "cache": {"memory_entries": 1_000_000},
    }


def save(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(results, indent=1) + "\n")


@dataclass
class Served:
    data: Dataset
    gateway: str
    upstream: str
    first: dict[str, Ranking] = field(default_factory=dict)


async def serve(
    stack: AsyncExitStack, args: argparse.Namespace, data: Dataset, cache_dir: str
) -> Served:
    """noida-db with the corpus indexed and embedded, and a gateway in front of it."""
    url = stack.enter_context(noida_db(60))
    t0 = time.perf_counter()
    n = seeded(url, data.name, data.root / "corpus.jsonl")
    vectors = any(not c.startswith("bm25") for c in chosen(args))  # BM25 alone needs none
    if vectors:
        await asyncio.to_thread(backfill, url, data.name, args.model_dir, cache_dir)
    print(f"{data.name}: {n} docs indexed (vectors: {vectors}) in {time.perf_counter() - t0:.0f} s")
    settings = Settings.model_validate(gateway_settings(url, args.model_dir, cache_dir))
    _, gateway = await stack.enter_async_context(running(settings))
    if vectors:
        await wait_embedder(gateway, data.name)
    return Served(data, gateway, url)


async def wait_embedder(gateway: str, index: str, timeout_s: float = 300) -> None:
    """Until the gateway's embedder (loaded in the background) fills a query vector."""
    body = {"size": 1, "retriever": first_stage("knn", "ready", 1), "_source": False}
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.post(f"{gateway}/{index}/_search", json=body) as r:
                if r.status == 200:
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"the gateway's embedder was not ready in {timeout_s} s")
            await asyncio.sleep(0.5)


async def evaluate_config(
    session: aiohttp.ClientSession, args: argparse.Namespace, served: Served, config: str
) -> dict[str, float]:
    data = served.data
    got = await run_config(
        session,
        served.gateway,
        data.name,
        data,
        config,
        depth=args.depth,
        window=args.window,
        concurrency=args.concurrency,
    )
    stage = config.partition(" + ")[0]
    if config == stage:
        served.first[stage] = ranking = got.ranking
    else:
        ranking = with_tail(got.ranking, served.first[stage], args.depth)
    for line in got.errors[:3]:
        print(f"  {line}", file=sys.stderr)
    return measure(data, ranking) | {
        "seconds": round(got.seconds, 1),
        "not_full": got.not_full,
        "errors": len(got.errors),
        "queries": len(got.ranking),
    }


async def main_async(args: argparse.Namespace) -> int:
    names = args.datasets.split(",")
    limits = {"scifact": args.scifact_queries, "trec-dl-2019-passage": args.dl19_queries}
    results: dict[str, Any] = {}
    cache_dir = tempfile.mkdtemp(prefix="eval-embedder-")
    export(args.model_dir, "model.onnx", cache_dir)  # once, before the backfills share it
    timeout = aiohttp.ClientTimeout(total=3600)
    try:
        async with AsyncExitStack() as stack:
            datasets = [load(args.data / name, limits.get(name, 0)) for name in names]
            for data in datasets:
                print(f"{data.name}: {len(data.queries)} judged queries", flush=True)
            # The backfills (the slow part: every document embedded on the CPU) run at once.
            served = await asyncio.gather(*(serve(stack, args, d, cache_dir) for d in datasets))
            session = await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
            # Every first stage of every dataset before any reranking: saved as they come.
            wanted = chosen(args)
            phases = ([c for c in wanted if " + " not in c], [c for c in wanted if " + " in c])
            for phase in phases:
                for s in served:
                    for config in phase:
                        row = await evaluate_config(session, args, s, config)
                        results.setdefault(s.data.name, {})[config] = row
                        print(f"  {s.data.name} {config}: {row}", flush=True)
                        save(args.save, results)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    print(
        f"\nqueries: first {args.scifact_queries or 'all'} SciFact test, "
        f"{args.dl19_queries or 'all'} DL19 (queries.jsonl order); first stage depth "
        f"{args.depth}; rerank window {args.window} (field text)\n"
    )
    print(table(results, names))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    path_option(parser, "--data", "directory holding the BEIR datasets named by --datasets")
    parser.add_argument("--datasets", default="trec-dl-2019-passage,scifact")
    parser.add_argument("--scifact-queries", type=int, default=100, help="first N (0: all)")
    parser.add_argument("--dl19-queries", type=int, default=0, help="first N (0: all 43)")
    parser.add_argument("--depth", type=int, default=100, help="first-stage hits")
    parser.add_argument("--window", type=int, default=50, help="rerank window (0: no rerank)")
    parser.add_argument("--concurrency", type=int, default=4)
    model_dir_option(parser)
    parser.add_argument(
        "--configs", default="", help='comma-separated, e.g. "bm25,bm25 + rerank" (default all)'
    )
    parser.add_argument("--save", type=Path, help="JSON of the results, written as they come")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
