"""The newcomer demo: judged SciFact queries straight from the cluster and through the gateway.

    python -m ops.demo --data DATA/scifact           # run once and shut down
    python -m ops.demo --data DATA/scifact --serve   # keep serving; curl the printed URL
    python -m ops.demo --data D --queries 50         # more judged queries (--show: side by side)

``bash ops/demo.sh`` runs it with the checkout's ``../shared`` data and model when present.
Starts an in-memory osmem-server (OpenSearch API, no Docker) and seeds it with a
subset of the SciFact corpus (``--data``, read in place): every document judged
for the chosen test queries plus ``--distractors`` others. Starts the gateway
in-process in front of it with the model from ``GATEWAY_MODEL__PATH`` (else the
Hub model of ``GATEWAY_MODEL__HUB_ID``), sends each query to both, and prints the
rankings side by side with the judged-relevant hits marked (``qrels/test.tsv``),
nDCG@10 per query and over all of them, and the latency of each side. Without
``--data`` it shows one query over ``ops/demo_corpus.jsonl``, unjudged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import ValidationError

from gateway.__main__ import EXIT_CONFIG, describe_config_error, setup_logging
from gateway.offline.seeding import read_corpus
from gateway.settings import ModelBackend, OnnxModel, Settings
from ops.harness.servers import osmem, running

SAMPLE = Path(__file__).with_name("demo_corpus.jsonl")
INDEX = "demo"
QUERY = "does drinking coffee lower the risk of type 2 diabetes"
BULK_DOCS = 1000
TITLE_CHARS = 52
MARK = "✓"
DEPTH = 10  # nDCG@10, and the hits shown


@dataclass(slots=True)
class Query:
    qid: str
    text: str
    relevant: dict[str, int] = field(default_factory=dict)  # judged doc id → grade


@dataclass(slots=True)
class Side:
    """One query's answer from one side (cluster or gateway) and how long it took."""

    hits: list[dict[str, Any]]
    ms: float
    rerank: str = "-"


def judged_queries(data: Path, n: int) -> list[Query]:
    """The first ``n`` queries of the test qrels (file order), with their judgments."""
    judged: dict[str, dict[str, int]] = {}
    with (data / "qrels" / "test.tsv").open(encoding="utf-8") as fh:
        next(fh)  # query-id corpus-id score
        for line in fh:
            qid, doc, grade = line.split()
            if int(grade) > 0 and (qid in judged or len(judged) < n):
                judged.setdefault(qid, {})[doc] = int(grade)
    texts = {str(q["_id"]): str(q["text"]) for q in read_corpus(data / "queries.jsonl", None)}
    return [Query(qid, texts[qid], rels) for qid, rels in judged.items()]


def corpus_subset(path: Path, keep: set[str], distractors: int) -> list[dict[str, Any]]:
    """Every document in ``keep`` and the first ``distractors`` others, in file order."""
    out: list[dict[str, Any]] = []
    others = 0
    for doc in read_corpus(path, None):
        doc_id = str(doc["_id"])
        if doc_id not in keep:
            if others >= distractors:
                continue
            others += 1
        out.append({"_id": doc_id, "title": doc.get("title", ""), "text": doc["text"]})
    return out


def ndcg_at(ranked: list[str], relevant: dict[str, int], depth: int = DEPTH) -> float:
    """nDCG@depth with linear gain and log2 discount (trec_eval's ``ndcg_cut``)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:depth]))
    ideal = sorted(relevant.values(), reverse=True)[:depth]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best > 0 else 0.0


def model_label(model: ModelBackend) -> str:
    """What the model is, said plainly: a cross-encoder, or a stand-in behind that interface."""
    if not isinstance(model, OnnxModel):
        return f"a remote cross-encoder (MODEL__BACKEND={model.backend})"
    if model.path is None:
        return f"{model.hub_id} from the Hugging Face Hub (loaded as a cross-encoder)"
    architectures: list[str] = []
    with contextlib.suppress(OSError, ValueError):
        architectures = json.loads((model.path / "config.json").read_text()).get(
            "architectures", []
        )
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return f"{model.path.name}: a cross-encoder ({', '.join(architectures)})"
    name = model.path.name
    with contextlib.suppress(OSError):
        found = re.search(r"Model: `([^`]+)`", (model.path / "PROVENANCE.md").read_text())
        name = found.group(1) if found else name
    return (
        f"{name}: a bi-encoder (sentence embeddings, {', '.join(architectures) or 'no head'}) "
        "behind the cross-encoder interface, a stand-in, not a trained cross-encoder"
    )


async def seed(session: aiohttp.ClientSession, url: str, docs: list[dict[str, Any]]) -> None:
    mappings = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    async with session.put(f"{url}/{INDEX}", json={"mappings": mappings}) as r:
        r.raise_for_status()
    for start in range(0, len(docs), BULK_DOCS):
        lines: list[str] = []
        for doc in docs[start : start + BULK_DOCS]:
            lines.append(json.dumps({"index": {"_index": INDEX, "_id": doc["_id"]}}))
            lines.append(json.dumps({"title": doc["title"], "text": doc["text"]}))
        await bulk(session, url, lines)
    async with session.post(f"{url}/{INDEX}/_refresh") as r:
        r.raise_for_status()


async def bulk(session: aiohttp.ClientSession, url: str, lines: list[str]) -> None:
    data = "\n".join(lines) + "\n"
    headers = {"Content-Type": "application/x-ndjson"}
    async with session.post(f"{url}/_bulk", data=data, headers=headers) as r:
        r.raise_for_status()
        if (await r.json()).get("errors"):
            raise RuntimeError("the search server refused some demo documents")


async def search(session: aiohttp.ClientSession, url: str, query: str, size: int) -> Side:
    body = {
        "query": {"multi_match": {"query": query, "fields": ["title", "text"]}},
        "size": size,
        "_source": ["title"],
    }
    started = time.perf_counter()
    async with session.post(f"{url}/{INDEX}/_search", json=body) as r:
        r.raise_for_status()
        got = await r.json()
        ms = (time.perf_counter() - started) * 1000
        return Side(got["hits"]["hits"], ms, r.headers.get("X-Rerank", "-"))


def show(query: Query, before: Side, after: Side) -> None:
    def cell(hit: dict[str, Any] | None) -> str:
        if hit is None:
            return ""
        title = str(hit.get("_source", {}).get("title") or hit["_id"])
        if len(title) > TITLE_CHARS:
            title = title[: TITLE_CHARS - 1] + "…"
        mark = MARK if hit["_id"] in query.relevant else " "
        return f"{mark} {hit['_score']:6.2f}  {title}"

    width = TITLE_CHARS + 10
    print(f"     {'cluster (BM25)':<{width}}  gateway (reranked)")
    for rank in range(max(len(before.hits), len(after.hits))):
        left = cell(before.hits[rank] if rank < len(before.hits) else None)
        right = cell(after.hits[rank] if rank < len(after.hits) else None)
        print(f"{rank + 1:>3}  {left:<{width}}  {right}")


def ranks(side: Side, query: Query) -> str:
    found = [str(i + 1) for i, h in enumerate(side.hits[:DEPTH]) if h["_id"] in query.relevant]
    return ",".join(found) or "–"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def summary(results: list[tuple[Query, Side, Side]], window: int) -> None:
    print(f"\nper query ({MARK} ranks: judged-relevant hits in the top {DEPTH}, – none):")
    print(f"  {'query':>6}  {'nDCG@10 BM25 → gateway':<22}  {'relevant at BM25 | gateway':<26}")
    before_all, after_all = [], []
    for query, before, after in results:
        nb = ndcg_at([h["_id"] for h in before.hits], query.relevant)
        na = ndcg_at([h["_id"] for h in after.hits], query.relevant)
        before_all.append(nb)
        after_all.append(na)
        where = f"{ranks(before, query)} | {ranks(after, query)}"
        scores = f"{nb:.3f} → {na:.3f}"
        print(f"  {query.qid:>6}  {scores:<22}  {where:<26}  {query.text[:60]}")
    n = len(results)
    mean_b, mean_a = sum(before_all) / n, sum(after_all) / n
    better = sum(a > b for b, a in zip(before_all, after_all, strict=True))
    worse = sum(a < b for b, a in zip(before_all, after_all, strict=True))
    print(
        f"\nnDCG@10 over {n} judged SciFact test queries: BM25 {mean_b:.3f} → gateway "
        f"{mean_a:.3f} ({mean_a - mean_b:+.3f}); {better} better, {worse} worse, "
        f"{n - better - worse} unchanged"
    )
    latency("cluster", [b.ms for _, b, _ in results], "")
    latency("gateway", [a.ms for _, _, a in results], f" (reranks the top {window}, this CPU)")


def latency(name: str, values: list[float], note: str) -> None:
    print(
        f"latency {name:<8} p50 {percentile(values, 0.5):7.1f} ms   max {max(values):7.1f} ms{note}"
    )


def closing(gateway_port: int) -> None:
    print(
        "\nOn your own cluster: rerank-gateway serve --upstream https://your-cluster:9200"
        " --model /path/to/cross-encoder\n"
        f"  then point your clients at http://127.0.0.1:{gateway_port} instead of the cluster;"
        " your judged queries: rerank-gateway eval --data <BEIR dir> "
        f"--gateway http://127.0.0.1:{gateway_port}"
    )


def load(args: argparse.Namespace) -> tuple[list[Query], list[dict[str, Any]], str]:
    """The queries, the documents to seed and where they came from."""
    data = args.data
    if data is not None and (data / "qrels" / "test.tsv").is_file():
        queries = judged_queries(data, args.queries)
        judged = {doc for q in queries for doc in q.relevant}
        docs = corpus_subset(data / "corpus.jsonl", judged, args.distractors)
        origin = (
            f"{len(judged)} judged for {len(queries)} SciFact test queries + "
            f"{len(docs) - len(judged)} others, from {data / 'corpus.jsonl'}"
        )
        return queries, docs, origin
    docs = corpus_subset(SAMPLE, set(), sys.maxsize)
    return [Query("-", args.query)], docs, f"unjudged, from {SAMPLE} (no SciFact data given)"


async def demo(args: argparse.Namespace, base: Settings) -> None:
    queries, docs, origin = load(args)
    with osmem() as upstream:
        async with aiohttp.ClientSession() as session:
            await seed(session, upstream, docs)
            print(f"osmem-server at {upstream}: {len(docs)} documents ({origin})")
            settings = base.model_copy(
                update={
                    "upstream": base.upstream.model_copy(update={"urls": [upstream]}),
                    # A generous deadline: the demo is about the order, on any CPU.
                    "rerank": base.rerank.model_copy(
                        update={"window": args.window, "timeout_s": max(base.rerank.timeout_s, 60)}
                    ),
                    # Scores from the model on every run, not from an earlier run's cache.
                    "cache": base.cache.model_copy(update={"redis_url": None}),
                }
            )
            print(f"model: {model_label(settings.model)}")
            host = settings.server.host
            serving = running(settings, host=host, port=args.port, quiet=True, timeout_s=120)
            async with serving as (_, gateway):
                await search(session, gateway, "warm-up", DEPTH)  # first run of the model
                results = []
                for query in queries:
                    before = await search(session, upstream, query.text, DEPTH)
                    after = await search(session, gateway, query.text, DEPTH)
                    results.append((query, before, after))
                for query, before, after in results[: args.show]:
                    print(f"\nquery {query.qid}: {query.text!r}  (X-Rerank: {after.rerank})")
                    show(query, before, after)
                if queries[0].relevant:
                    print(f"\n{MARK} = judged relevant in SciFact qrels/test.tsv")
                    summary(results, args.window)
                closing(base.server.port)
                if args.serve:
                    print(f"\ngateway serving at {gateway} (Ctrl-C stops), e.g.:")
                    print(f"  curl -s '{gateway}/{INDEX}/_search?q=coffee+diabetes&size=3'")
                    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=20, help="judged test queries asked")
    parser.add_argument("--show", type=int, default=3, help="queries shown side by side")
    parser.add_argument("--distractors", type=int, default=2000, help="unjudged documents")
    parser.add_argument("--data", type=Path, help="BEIR SciFact directory (judged queries)")
    parser.add_argument("--query", default=QUERY, help="the query without SciFact data")
    parser.add_argument("--window", type=int, default=20, help="hits the gateway reranks")
    parser.add_argument("--port", type=int, default=0, help="gateway port (0: a free one)")
    parser.add_argument("--serve", action="store_true", help="keep serving after the demo")
    args = parser.parse_args(argv)
    os.environ.setdefault("GATEWAY_LOG__LEVEL", "WARNING")  # no access log between the tables
    try:
        base = Settings()  # the demo's own entry point: GATEWAY_* variables apply
    except ValidationError as exc:
        print(f"demo: {describe_config_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(base.log)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(demo(args, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
