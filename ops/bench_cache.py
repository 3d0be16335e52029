"""What the score cache buys: search latency without reranking, reranked cold, reranked warm.

::

    .venv/bin/python -m ops.bench_cache --data DATA/scifact --model-dir M  # 40 queries, window 100
    .venv/bin/python -m ops.bench_cache --data D --queries 100 --window 50 --redis-url redis://host:6379/15
    .venv/bin/python -m ops.bench_cache --data D --model-dir M --queries 10 --rounds 5 \
        --max-length 64  # interleaved direct / warm pairs, a short cold phase

One run, one search server: starts osmem-server, indexes the SciFact corpus
(read at run time from ``--data``), starts a private ``redis-server`` (no
persistence; or uses ``--redis-url``, whose keys it does not clear, so pass a
database whose old entries you do not mind) and the gateway in this process
with the real ONNX model. Then sends every query, one at a time, in four
phases: straight to the search server (``direct``), through the gateway with
``X-Rerank: off`` (``passthrough``), reranked with an empty cache (``cold``),
and reranked again (``warm``: every pair from Redis). Prints p50 / p99 per phase
in milliseconds, the cache counters, and warm / passthrough. ``--rounds R`` then
sends each query R more times, direct with the window's size and warm, one after
the other (interleaved, so a shared machine's drift moves both alike), and prints
warm / direct from those pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time

import aiohttp
import numpy as np

from gateway.rerank.cache import CacheStats
from gateway.settings import Settings
from gateway.web.state import FLOW
from ops.harness import beir
from ops.harness.options import data_option, model_dir_option
from ops.harness.servers import osmem, redis_server, running, seeded

INDEX = "scifact"


async def phase(
    session: aiohttp.ClientSession,
    url: str,
    queries: list[str],
    rerank: str | None,
    *,
    size: int = 10,
    stages: dict[str, list[float]] | None = None,
) -> list[float]:
    """Milliseconds per search, one search at a time; ``stages`` collects the gateway's
    ``Server-Timing`` durations per metric."""
    headers = {} if rerank is None else {"X-Rerank": rerank}
    out: list[float] = []
    for text in queries:
        query = {"multi_match": {"query": text, "fields": ["title", "text"]}}
        body = {"size": size, "query": query}
        t0 = time.perf_counter()
        async with session.post(f"{url}/{INDEX}/_search", json=body, headers=headers) as r:
            await r.read()
            out.append((time.perf_counter() - t0) * 1000)
            if r.status != 200 or (rerank == "on" and r.headers.get("X-Rerank") != "full"):
                print(f"  {r.status} X-Rerank={r.headers.get('X-Rerank')}", file=sys.stderr)
            if stages is not None:
                for metric in r.headers.get("Server-Timing", "").split(","):
                    name, _, dur = metric.strip().partition(";dur=")
                    if dur:
                        stages.setdefault(name, []).append(float(dur))
    return out


def line(name: str, ms: list[float]) -> str:
    p50, p99 = np.percentile(ms, [50, 99])
    return f"{name:<12} {p50:9.2f} {p99:9.2f} {np.mean(ms):9.2f}"


async def bench(args: argparse.Namespace, upstream: str, redis_url: str) -> None:
    settings = Settings.model_validate(
        {
            "upstream": {"urls": [upstream]},
            "model": {"path": str(args.model_dir), "max_length": args.max_length},
            "rerank": {"window": args.window, "timeout_s": args.rerank_timeout_s},
            "cache": {"redis_url": redis_url, "timeout_s": args.cache_timeout_s},
        }
    )
    async with running(settings) as (app, url):
        reranker = app[FLOW].reranker
        assert reranker is not None
        stats = reranker.cache.stats
        queries = list(beir.judged(args.data, limit=args.queries).values())
        async with aiohttp.ClientSession() as session:
            await phase(session, upstream, queries[:3], None)  # connections, caches of the OS
            rows: list[tuple[str, list[float], CacheStats | None]] = []
            warm_stages: dict[str, list[float]] = {}
            for name, target, mode, size in (
                ("direct", upstream, None, 10),
                ("direct-win", upstream, None, args.window),  # the window the gateway asks
                ("passthrough", url, "off", 10),
                ("cold", url, "on", 10),
                ("warm", url, "on", 10),
                ("direct-win2", upstream, None, args.window),  # again, after: drift check
            ):
                before = dataclasses.asdict(stats)
                got = warm_stages if name == "warm" else None
                ms = await phase(session, target, queries, mode, size=size, stages=got)
                await reranker.drain()  # the cold phase's write-backs have landed
                delta = CacheStats(**{k: getattr(stats, k) - v for k, v in before.items()})
                rows.append((name, ms, delta if mode == "on" else None))
            # Interleaved: each query direct (same window) then warm, so drift hits both.
            paired: dict[str, list[float]] = {"direct-win": [], "warm": []}
            for _ in range(args.rounds):
                for text in queries:
                    paired["direct-win"] += await phase(
                        session, upstream, [text], None, size=args.window
                    )
                    paired["warm"] += await phase(session, url, [text], "on")

    print(
        f"\n{len(queries)} SciFact test queries, one at a time, window {args.window}, "
        f"size 10, cache timeout {args.cache_timeout_s} s, rerank timeout {args.rerank_timeout_s} s"
    )
    print(f"{'phase':<12} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}   cache")
    by_name = {}
    for name, ms, counted in rows:
        by_name[name] = ms
        cache = (
            ""
            if counted is None
            else f"   hits {counted.hits} misses {counted.misses} errors {counted.errors}"
            f" skipped {counted.skipped} written {counted.writes}"
        )
        print(line(name, ms) + cache)
    warm, plain = by_name["warm"], by_name["passthrough"]
    window = by_name["direct-win"] + by_name["direct-win2"]
    print(
        f"warm / direct with the same window ({args.window} hits): p50"
        f" {np.median(warm) / np.median(window):.2f}x, mean {np.mean(warm) / np.mean(window):.2f}x;"
        " warm Server-Timing p50 ms: "
        + ", ".join(f"{k} {np.median(v):.2f}" for k, v in warm_stages.items())
    )
    if args.rounds:
        p_warm, p_win = paired["warm"], paired["direct-win"]
        print(
            f"interleaved, {args.rounds} rounds: warm p50 {np.median(p_warm):.2f} ms, direct with"
            f" the same window p50 {np.median(p_win):.2f} ms: warm / direct p50"
            f" {np.median(p_warm) / np.median(p_win):.2f}x,"
            f" mean {np.mean(p_warm) / np.mean(p_win):.2f}x,"
            f" +{np.median(p_warm) - np.median(p_win):.2f} ms"
        )
    print(
        f"warm / passthrough: p50 {np.median(warm) / np.median(plain):.2f}x, "
        f"p99 {np.percentile(warm, 99) / np.percentile(plain, 99):.2f}x; "
        f"cold / warm p50: {np.median(by_name['cold']) / np.median(warm):.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data_option(parser)
    model_dir_option(parser)
    parser.add_argument("--queries", type=int, default=40, help="test queries to send")
    parser.add_argument("--window", type=int, default=100, help="hits reranked per search")
    parser.add_argument(
        "--rounds", type=int, default=0, help="then this many interleaved direct/warm rounds"
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=256,
        help="model tokens per pair (lower: a shorter cold phase; the warm path is the same)",
    )
    parser.add_argument("--redis-url", help="use this Redis instead of a private one")
    parser.add_argument("--cache-timeout-s", type=float, default=0.05)
    parser.add_argument(
        "--rerank-timeout-s",
        type=float,
        default=60.0,
        help="rerank deadline; high, so that cold searches are scored in full",
    )
    args = parser.parse_args()

    with osmem() as upstream, contextlib.ExitStack() as stack:
        count = seeded(upstream, INDEX, args.data / "corpus.jsonl")
        print(f"indexed {count} documents into osmem-server at {upstream}")
        redis_url = args.redis_url or stack.enter_context(redis_server())
        asyncio.run(bench(args, upstream, redis_url))


if __name__ == "__main__":
    main()
