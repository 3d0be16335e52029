"""``ops.eval_retrievers`` on the 20 test documents with hand-made qrels: noida-db, the
backfill command, the real model and embedder; each configuration's ranking checked
against the cluster's own answer (BM25, kNN) or the fusion formula (RRF)."""

from __future__ import annotations

import argparse
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from gateway.model.embedder_export import load_embedder
from gateway.settings import EmbedderSettings
from ops.eval_retrievers import (
    FIRST_STAGES,
    configs,
    evaluate_config,
    load,
    serve,
    table,
    with_tail,
)
from tests.doubles.corpora import EVAL_QUERIES as QUERIES
from tests.doubles.net import http

pytestmark = pytest.mark.integration

DEPTH, WINDOW = 10, 5


def test_with_tail_keeps_the_reranked_window_then_the_first_stage_below_it() -> None:
    first = {"q": ["a", "b", "c", "d", "e"]}
    assert with_tail({"q": ["c", "a"]}, first, 4) == {"q": ["c", "a", "b", "d"]}


async def test_each_configuration_ranks_as_the_retriever_and_the_table_has_every_row(
    dataset: Path,
    model_dir: Path,
    embedder_cache: str,
) -> None:
    args = argparse.Namespace(
        model_dir=model_dir, depth=DEPTH, window=WINDOW, concurrency=2, configs=""
    )
    data = load(dataset, 0)
    assert list(data.queries) == list(QUERIES)
    results: dict[str, dict[str, dict[str, float]]] = {data.name: {}}
    embedder = load_embedder(
        EmbedderSettings.model_validate({"path": model_dir, "cache_dir": embedder_cache})
    )
    timeout = aiohttp.ClientTimeout(total=120)
    async with AsyncExitStack() as stack:
        served = await serve(stack, args, data, embedder_cache)
        session = await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
        for config in configs(True):
            row = await evaluate_config(session, args, served, config)
            assert row["errors"] == 0 and row["not_full"] == 0
            assert row["queries"] == len(QUERIES)
            results[data.name][config] = row
        for qid, text in data.queries.items():
            match = {"multi_match": {"query": text, "fields": ["title", "text"]}}
            bm25 = http(
                "POST", f"{served.upstream}/{data.name}/_search", {"size": DEPTH, "query": match}
            )
            assert served.first["bm25"][qid] == [h["_id"] for h in bm25["hits"]["hits"]]
            (vector,) = await embedder.embed([text])
            knn = {
                "field": "embedding",
                "query_vector": vector,
                "k": DEPTH,
                "num_candidates": DEPTH,
            }
            plain = http(
                "POST", f"{served.upstream}/{data.name}/_search", {"size": DEPTH, "knn": knn}
            )
            assert served.first["knn"][qid] == [h["_id"] for h in plain["hits"]["hits"]]
            fused: dict[str, float] = {}
            for ranking in (served.first["bm25"][qid], served.first["knn"][qid]):
                for rank, doc in enumerate(ranking, 1):
                    fused[doc] = fused.get(doc, 0.0) + 1 / (60 + rank)
            order = sorted(fused, key=lambda d: -fused[d])  # stable: ties to the first met
            assert served.first["rrf"][qid] == order[:DEPTH]
    out = table(results, [data.name])
    for config in configs(True):
        stage = config.partition(" + ")[0]
        assert stage in FIRST_STAGES
        assert f"| {config} | " in out
        # Reranking within the first stage's top DEPTH leaves its R@100 as it was.
        assert results[data.name][config]["R@100"] == pytest.approx(
            results[data.name][stage]["R@100"]
        )
    assert "| published BM25 (data/README.md) |" in out
