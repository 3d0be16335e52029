"""One 100-candidate search scored in process vs over 1 and 2 rerank-gateway backend processes.

::

    .venv/bin/python -m ops.bench_pool                  # 20 SciFact test queries, window 100
    .venv/bin/python -m ops.bench_pool --queries 40 --threads 2

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
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web
from osmem_server import OsmemServer

from gateway.app import create_app, wait_ready
from gateway.settings import Settings
from ops.bench_cache import DATA, INDEX, MODEL, _free_port, test_queries
from ops.evaluate import bulk_index


@contextmanager
def backend_processes(upstream: str, model: Path, threads: int, n: int) -> Iterator[list[str]]:
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(n):
            port = _free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
            env |= {
                "GATEWAY_UPSTREAM__URLS": upstream,
                "GATEWAY_MODEL__PATH": str(model),
                "GATEWAY_MODEL__INTRA_OP_THREADS": str(threads),
                "GATEWAY_SERVER__PORT": str(port),
                "GATEWAY_CACHE__MEMORY_ENTRIES": "0",
                "GATEWAY_LOG__LEVEL": "WARNING",
            }
            cmd = [sys.executable, "-m", "gateway"]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_http(f"{url}/_gateway/health/ready", 120)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_pool: {url} not ready in {timeout_s} s")
        time.sleep(0.2)


async def front(settings: dict[str, Any]) -> tuple[web.AppRunner, str]:
    app = create_app(Settings.model_validate(settings))
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await wait_ready(app, timeout_s=300)
    return runner, f"http://127.0.0.1:{port}"


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
    queries = test_queries(args.data, args.queries)
    means: dict[str, float] = {}
    print(f"{len(queries)} searches, window {args.window}, {args.threads} thread(s) per model")
    print(f"{'front':<12} {'p50 ms':>9} {'mean ms':>9}")
    async with aiohttp.ClientSession() as session:
        for name, model in configs.items():
            runner, url = await front({**base, "model": model})
            try:
                await searches(session, url, queries[:3])  # connections, lazy initialisation
                ms = await searches(session, url, queries)
            finally:
                await runner.cleanup()
            means[name] = float(np.mean(ms))
            print(f"{name:<12} {np.percentile(ms, 50):9.1f} {means[name]:9.1f}")
    print(f"pool x2 / pool x1: {means['pool x2'] / means['pool x1']:.2f}")
    print(f"pool x1 / in-process: {means['pool x1'] / means['in-process']:.2f}")
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model-dir", type=Path, default=MODEL)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per model")
    args = parser.parse_args(argv)
    server = OsmemServer.start()
    try:
        bulk_index(server.url, INDEX, args.data / "corpus.jsonl")
        with backend_processes(server.url, args.model_dir, args.threads, 2) as backends:
            asyncio.run(bench(args, server.url, backends))
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
