"""What the score cache buys: search latency without reranking, reranked cold, reranked warm.

::

    .venv/bin/python -m ops.bench_cache                    # 40 SciFact test queries, window 100
    .venv/bin/python -m ops.bench_cache --queries 100 --window 50 --redis-url redis://host:6379/15

One run, one search server: starts osmem-server, indexes the SciFact corpus
(read at run time from ``--data``), starts a private ``redis-server`` (no
persistence; or uses ``--redis-url``, whose keys it does not clear, so pass a
database whose old entries you do not mind) and the gateway in this process
with the real ONNX model. Then sends every query, one at a time, in four
phases: straight to the search server (``direct``), through the gateway with
``X-Rerank: off`` (``passthrough``), reranked with an empty cache (``cold``),
and reranked again (``warm``: every pair from Redis). Prints p50 / p99 per phase
in milliseconds, the cache counters, and warm / passthrough.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web
from osmem_server import OsmemServer

from gateway.app import create_app, wait_ready
from gateway.rerank.cache import CacheStats
from gateway.settings import Settings
from gateway.web.protocol import GatewayRunner
from gateway.web.state import FLOW
from ops.evaluate import bulk_index, read_jsonl, read_qrels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "all-minilm-l6-v2-pair"
INDEX = "scifact"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def private_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_cache: redis-server not found (or pass --redis-url)")
    port = _free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def test_queries(data: Path, limit: int) -> list[str]:
    wanted = read_qrels(data / "qrels" / "test.tsv")
    texts = {str(q["_id"]): str(q["text"]) for q in read_jsonl(data / "queries.jsonl")}
    return [texts[qid] for qid in wanted if qid in texts][:limit]


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
            "model": {"path": str(args.model_dir)},
            "rerank": {"window": args.window, "timeout_s": args.rerank_timeout_s},
            "cache": {"redis_url": redis_url, "timeout_s": args.cache_timeout_s},
        }
    )
    app = create_app(settings)
    runner = GatewayRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await wait_ready(app, timeout_s=300)
        reranker = app[FLOW].reranker
        assert reranker is not None
        stats = reranker.cache.stats
        queries = test_queries(args.data, args.queries)
        url = f"http://127.0.0.1:{port}"
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
    finally:
        await runner.cleanup()

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
    print(
        f"warm / passthrough: p50 {np.median(warm) / np.median(plain):.2f}x, "
        f"p99 {np.percentile(warm, 99) / np.percentile(plain, 99):.2f}x; "
        f"cold / warm p50: {np.median(by_name['cold']) / np.median(warm):.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="BEIR SciFact directory")
    parser.add_argument("--model-dir", type=Path, default=MODEL)
    parser.add_argument("--queries", type=int, default=40, help="test queries to send")
    parser.add_argument("--window", type=int, default=100, help="hits reranked per search")
    parser.add_argument("--redis-url", help="use this Redis instead of a private one")
    parser.add_argument("--cache-timeout-s", type=float, default=0.05)
    parser.add_argument(
        "--rerank-timeout-s",
        type=float,
        default=60.0,
        help="rerank deadline; high, so that cold searches are scored in full",
    )
    args = parser.parse_args()

    server = OsmemServer.start()
    try:
        count = bulk_index(server.url, INDEX, args.data / "corpus.jsonl")
        print(f"indexed {count} documents into osmem-server at {server.url}")
        if args.redis_url:
            asyncio.run(bench(args, server.url, args.redis_url))
        else:
            with private_redis() as redis_url:
                asyncio.run(bench(args, server.url, redis_url))
    finally:
        server.close()
        if server.process.stdout is not None:
            server.process.stdout.close()


if __name__ == "__main__":
    main()
