"""One 100-candidate search scored in process vs over 1 and 2 rerank-gateway backend processes.

::

    .venv/bin/python -m ops.bench_pool --data DATA/scifact --model-dir M  # 20 queries, window 100
    .venv/bin/python -m ops.bench_pool --data DATA/scifact --queries 40 --threads 2

Starts osmem-server with the SciFact corpus (``--data``), two backend gateway
processes (``python -m gateway``, the ONNX model with ``--threads`` intra-op
threads each, no score cache), and three front gateways in this process, also
without a cache: ``in-process`` (the same model, same threads), ``pool x1``
(``MODEL__BACKEND=pool`` over one backend's ``/v1/rerank``) and ``pool x2``
(both backends: each search's 100 pairs split in two). Sends the queries one at a
time to each and prints p50 / mean milliseconds and the ratios. Splitting pays
only where the backends have cores of their own: on a machine with fewer free
cores than backends x threads the figures say so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from gateway.settings import Settings
from ops.harness import beir
from ops.harness.options import data_option, model_dir_option
from ops.harness.ports import free_port, wait_http
from ops.harness.servers import gateway_env, gateway_process, osmem, running, seeded

INDEX = "scifact"


@contextmanager
def backend_processes(upstream: str, model: Path, threads: int, n: int) -> Iterator[list[str]]:
    """``n`` gateway processes with the model and no score cache; their URLs."""
    logs = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    with contextlib.ExitStack() as stack:
        urls: list[str] = []
        for i in range(n):
            port = free_port()
            env = gateway_env(
                {
                    "GATEWAY_UPSTREAM__URLS": upstream,
                    "GATEWAY_MODEL__PATH": str(model),
                    "GATEWAY_MODEL__INTRA_OP_THREADS": str(threads),
                    "GATEWAY_SERVER__PORT": str(port),
                    "GATEWAY_CACHE__MEMORY_ENTRIES": "0",
                    "GATEWAY_LOG__LEVEL": "WARNING",
                }
            )
            stack.enter_context(gateway_process(env, logs / f"backend-{i}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_http(f"{url}/_gateway/health/ready", 120)
        yield urls


async def searches(session: aiohttp.ClientSession, url: str, queries: list[str]) -> list[float]:
    out: list[float] = []
    for text in queries:
        body = {"size": 10, "query": {"multi_match": {"query": text, "fields": ["title", "text"]}}}
        t0 = time.perf_counter()
        async with session.post(f"{url}/{INDEX}/_search", json=body) as r:
            await r.read()
            if r.status != 200 or r.headers.get("X-Rerank") != "full":
                why = r.headers.get("X-Rerank-Reason")
                print(f"  {r.status} X-Rerank={r.headers.get('X-Rerank')} ({why})", file=sys.stderr)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def bench(args: argparse.Namespace, upstream: str, backends: list[str]) -> None:
    base: dict[str, Any] = {
        "upstream": {"urls": [upstream]},
        "rerank": {"window": args.window, "timeout_s": 30.0},
        "cache": {"memory_entries": 0},
    }
    pool = {"backend": "pool", "pool_timeout_s": 30.0}
    configs = {
        "in-process": {"path": str(args.model_dir), "intra_op_threads": args.threads},
        "pool x1": {**pool, "pool_urls": [f"{backends[0]}/v1/rerank"]},
        "pool x2": {**pool, "pool_urls": [f"{b}/v1/rerank" for b in backends]},
    }
    queries = list(beir.judged(args.data, limit=args.queries).values())
    means: dict[str, float] = {}
    print(f"{len(queries)} searches, window {args.window}, {args.threads} thread(s) per model")
    print(f"{'front':<12} {'p50 ms':>9} {'mean ms':>9}")
    async with aiohttp.ClientSession() as session:
        for name, model in configs.items():
            async with running(Settings.model_validate({**base, "model": model})) as (_, url):
                await searches(session, url, queries[:3])  # connections, lazy initialisation
                ms = await searches(session, url, queries)
            means[name] = float(np.mean(ms))
            print(f"{name:<12} {np.percentile(ms, 50):9.1f} {means[name]:9.1f}")
    print(f"pool x2 / pool x1: {means['pool x2'] / means['pool x1']:.2f}")
    print(f"pool x1 / in-process: {means['pool x1'] / means['in-process']:.2f}")
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data_option(parser)
    model_dir_option(parser)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per model")
    args = parser.parse_args(argv)
    with osmem() as upstream:
        seeded(upstream, INDEX, args.data / "corpus.jsonl")
        with backend_processes(upstream, args.model_dir, args.threads, 2) as backends:
            asyncio.run(bench(args, upstream, backends))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
