"""Offline nDCG@10 of the relevance controls: score use x long-document strategy.

Reranks first-stage candidates through the gateway's own scoring path
(``relevance.score_window``: documents → chunking → Reranker → Batcher → ONNX
model → pooling → fusion), without a search server:

- ``scifact``: BM25 top-``window`` over title + abstract (``ops.harness.bm25``,
  k1=0.9, b=0.4), test queries;
- ``trec-dl-2019-passage``: rerank-only, the shipped BM25 run ``runs/bm25-top100.trec``.

Configurations: ``truncate`` and ``chunk`` (max pooling) x ``replace``, ``linear``
(min-max, weight ``--weight``) and ``rrf`` (k=60); plus the first stage alone.
Model scores are computed once per strategy (the in-process score cache serves
the other score uses). Run (int8 model, 2 cores: a few minutes)::

    .venv/bin/python -m ops.eval_relevance --data DATA --model-dir MODEL \\
        --datasets scifact,trec-dl-2019-passage \\
        --queries 100 --max-length 256 --chunk-tokens 96 --chunk-overlap 16
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateway.model.onnx import OnnxCrossEncoder
from gateway.rerank.batcher import Batcher
from gateway.rerank.cache import create_cache
from gateway.rerank.chunking import ChunkSpec, Strategy
from gateway.rerank.documents import DocumentSpec
from gateway.rerank.fusion import FusionSpec, ScoreUse
from gateway.rerank.profiles import Profile
from gateway.rerank.relevance import score_window
from gateway.rerank.reranker import Reranker
from gateway.settings import BatcherSettings, CacheSettings, OnnxModel
from ops.harness import beir
from ops.harness.bm25 import BM25
from ops.harness.metrics import ndcg10
from ops.harness.options import model_dir_option, path_option

SCORE_USES: tuple[ScoreUse, ...] = ("replace", "linear", "rrf")
STRATEGIES: tuple[Strategy, ...] = ("truncate", "chunk")


@dataclass
class Dataset:
    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, list[dict[str, Any]]]  # qid → hits, first-stage order


def _hit(doc_id: str, score: float, doc: Mapping[str, Any]) -> dict[str, Any]:
    source = {"title": doc.get("title", ""), "text": doc.get("text", "")}
    return {"_index": "eval", "_id": doc_id, "_score": score, "_source": source}


def load(data: Path, name: str, n_queries: int, window: int, seed: int) -> Dataset:
    root = data / name
    corpus = {str(d["_id"]): d for d in beir.corpus(root)}
    queries = beir.queries(root)
    qrels = beir.qrels(root)
    qids = sorted(q for q in qrels if q in queries)
    if 0 < n_queries < len(qids):
        qids = sorted(random.Random(seed).sample(qids, n_queries))
    candidates: dict[str, list[dict[str, Any]]] = {}
    run = root / "runs" / "bm25-top100.trec"
    if run.is_file():
        wanted = set(qids)
        with run.open() as fh:
            for line in fh:
                qid, _, doc_id, _, score, _ = line.split()
                if qid in wanted and len(candidates.setdefault(qid, [])) < window:
                    candidates[qid].append(_hit(doc_id, float(score), corpus[doc_id]))
    else:
        ids = list(corpus)
        bm25 = BM25([f"{corpus[i].get('title', '')} {corpus[i].get('text', '')}" for i in ids])
        for qid in qids:
            candidates[qid] = [
                _hit(ids[i], s, corpus[ids[i]]) for i, s in bm25.top(queries[qid], window)
            ]
    return Dataset(name, {q: queries[q] for q in qids}, {q: qrels[q] for q in qids}, candidates)


async def evaluate(
    data: Dataset, reranker: Reranker, profiles: Sequence[Profile]
) -> dict[str, tuple[float, float]]:
    """nDCG@10 and seconds per profile name, plus the first stage alone."""
    out = {
        "first stage (BM25)": (
            ndcg10(
                data.qrels,
                {q: {h["_id"]: h["_score"] for h in hits} for q, hits in data.candidates.items()},
            ),
            0.0,
        )
    }
    for profile in profiles:
        started = time.perf_counter()
        run: dict[str, dict[str, float]] = {}
        for qid, hits in data.candidates.items():
            scored = await score_window(reranker, profile, data.queries[qid], hits)
            n = len(hits)
            # Unscored hits (none expected offline) keep first-stage order below scored ones.
            run[qid] = {
                h["_id"]: s if s is not None else -1e9 - i / n
                for i, (h, s) in enumerate(zip(hits, scored.scores, strict=True))
            }
        out[profile.name] = (ndcg10(data.qrels, run), time.perf_counter() - started)
    return out


def profiles_for(args: argparse.Namespace) -> list[Profile]:
    base = Profile(
        name="",
        indices=(),
        window=args.window,
        timeout_s=3600.0,
        model="default",
        document=DocumentSpec(fields=("title", "text"), max_chars=100_000),
        chunking=ChunkSpec(
            strategy="truncate",
            tokens=args.chunk_tokens,
            overlap=args.chunk_overlap,
            max_chunks=args.max_chunks,
            pooling="max",
        ),
        fusion=FusionSpec(weight=args.weight),
    )
    out = []
    for strategy in args.strategies.split(","):
        for use in args.score_uses.split(","):
            label = f"{strategy if strategy == 'truncate' else 'chunk-max'} + {use}"
            out.append(
                replace(
                    base,
                    name=label,
                    chunking=replace(base.chunking, strategy=strategy),
                    fusion=replace(base.fusion, use=use),
                )
            )
    return out


async def main_async(args: argparse.Namespace) -> None:
    settings = OnnxModel.model_validate(
        {
            "path": args.model_dir,
            "file": args.model_file,
            "max_length": args.max_length,
            "device": args.device,
        }
    )
    encoder = OnnxCrossEncoder(args.model_dir, settings)
    batcher = Batcher(
        encoder, BatcherSettings.model_validate({"max_batch_pairs": 32, "max_wait_ms": 0.0})
    )
    await batcher.start()
    cache = create_cache(CacheSettings.model_validate({"memory_entries": 1_000_000}))
    reranker = Reranker(batcher, cache, fingerprint=encoder.fingerprint)
    profiles = profiles_for(args)
    print(
        f"model {args.model_file} on {args.device}, max_length {args.max_length}, "
        f"window {args.window}, "
        f"chunks of {args.chunk_tokens} tokens (overlap {args.chunk_overlap}, "
        f"at most {args.max_chunks}), linear weight {args.weight} min-max, rrf k=60"
    )
    try:
        for name in args.datasets.split(","):
            data = load(args.data, name, args.queries, args.window, args.seed)
            before = batcher.stats.truncated_pairs, batcher.stats.pairs
            results = await evaluate(data, reranker, profiles)
            truncated = batcher.stats.truncated_pairs - before[0]
            pairs = batcher.stats.pairs - before[1]
            print(f"\n{name}: {len(data.queries)} queries, {pairs} model pairs")
            print(f"truncated pairs: {truncated} ({truncated / max(pairs, 1):.1%})")
            print("| configuration | nDCG@10 | seconds |")
            print("|---|---|---|")
            for label, (value, seconds) in results.items():
                print(f"| {label} | {value:.4f} | {seconds:.0f} |")
    finally:
        await batcher.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="scifact,trec-dl-2019-passage")
    parser.add_argument("--queries", type=int, default=0, help="random subset (0: all)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--window", type=int, default=100)
    path_option(parser, "--data", "directory holding the BEIR datasets named by --datasets")
    model_dir_option(parser)
    parser.add_argument("--model-file", default="model_int8.onnx")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="MODEL__DEVICE: cpu, cuda, openvino")
    parser.add_argument("--chunk-tokens", type=int, default=200)
    parser.add_argument("--chunk-overlap", type=int, default=32)
    parser.add_argument("--max-chunks", type=int, default=8)
    parser.add_argument("--weight", type=float, default=0.7)
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="truncate,chunk")
    parser.add_argument("--score-uses", default=",".join(SCORE_USES), help="replace,linear,rrf")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
