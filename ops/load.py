"""Bounded load on loopback: the gateway (real model, reranking on) in front of osmem-server.

Starts osmem-server (seeded), a private redis-server and the gateway as a
subprocess (``python -m gateway``), all on free 127.0.0.1 ports; then drives a
fixed number of requests, for at most a fixed duration, from ``--concurrency``
async workers. The mix: searches (random queries, pages, sizes), ``_msearch``,
document GETs and bad bodies (their 400s are expected). Every answer is
checked: any 5xx, and any malformed answer (not JSON, no ``hits``, missing
``X-Rerank`` on a search, wrong number of ``_msearch`` responses, an error
without ES's error shape) is counted. Prints figures, including the gateway's
RSS before and after (``/proc/<pid>/status``). Exit status 1 when a 5xx or a
malformed answer was seen.

::

    export GATEWAY_MODEL__PATH=MODEL                              # or --model-dir MODEL
    .venv/bin/python -m ops.load                                  # 2,000 requests, <= 60 s
    .venv/bin/python -m ops.load --data DATA/scifact --requests 500 --concurrency 8
    .venv/bin/python -m ops.load --soak-s 180 --requests 0        # soak, Redis restarted midway

Documents and queries: the corpus of ``--data`` (a BEIR directory), else the 20
test documents (``tests/data/docs.jsonl``). ``--requests 0`` means no request
limit (the duration bounds the run). With
``--soak-s`` the run lasts that long and the Redis server is stopped at the
middle and started again ``--redis-down-s`` later.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gateway.offline.seeding import read_corpus
from ops.harness import beir
from ops.harness.options import model_dir_option
from ops.harness.ports import free_port
from ops.harness.servers import (
    RedisServer,
    gateway_env,
    gateway_process,
    osmem,
    rss_kib,
    seeded,
    wait_ready,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "docs.jsonl"
INDEX = "docs"
BAD_BODIES = [b'{"query": {"match": ', b'{"size": -1}', b'{"query": {"nope": {}}}']


@dataclass
class Report:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    rerank: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    malformed: list[str] = field(default_factory=list)
    transport_errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]

    def lines(self) -> list[str]:
        rate = self.sent / self.seconds if self.seconds else 0.0
        return [
            f"requests: {self.sent} in {self.seconds:.1f} s ({rate:.1f}/s)",
            f"latency ms: p50 {self.percentile(0.5):.1f}  p95 {self.percentile(0.95):.1f}"
            f"  p99 {self.percentile(0.99):.1f}  max {self.percentile(1.0):.1f}",
            f"by kind: {dict(sorted(self.kinds.items()))}",
            f"statuses: {dict(sorted(self.statuses.items()))}",
            f"X-Rerank: {dict(sorted(self.rerank.items()))}"
            f"  reasons: {dict(sorted(self.reasons.items()))}",
            f"5xx: {self.server_errors}  malformed: {len(self.malformed)}"
            f"  transport errors: {dict(self.transport_errors)}",
            *[f"  malformed: {m}" for m in self.malformed[:10]],
        ]


class Workload:
    """Random requests over a small vocabulary of queries and document ids."""

    def __init__(self, queries: list[str], ids: list[str], seed: int = 7) -> None:
        self.queries = queries
        self.ids = ids
        self.random = random.Random(seed)

    def next(self) -> tuple[str, str, str, bytes, dict[str, str], int]:
        """(kind, method, path, body, headers, sub-searches)."""
        r = self.random
        roll = r.random()
        json_type = {"Content-Type": "application/json"}
        if roll < 0.70:
            body = {
                "query": {"match": {"text": r.choice(self.queries)}},
                "from": r.choice([0, 0, 0, 5, 10]),
                "size": r.randint(1, 10),
            }
            return "search", "POST", f"/{INDEX}/_search", json.dumps(body).encode(), json_type, 1
        if roll < 0.80:
            subs = r.randint(2, 3)
            lines = []
            for _ in range(subs):
                lines += ["{}", json.dumps({"query": {"match": {"text": r.choice(self.queries)}}})]
            data = ("\n".join(lines) + "\n").encode()
            ndjson = {"Content-Type": "application/x-ndjson"}
            return "msearch", "POST", f"/{INDEX}/_msearch", data, ndjson, subs
        if roll < 0.95:
            return "get", "GET", f"/{INDEX}/_doc/{r.choice(self.ids)}", b"", {}, 0
        return "bad", "POST", f"/{INDEX}/_search", r.choice(BAD_BODIES), json_type, 0


def check(kind: str, status: int, headers: Any, raw: bytes, subs: int) -> str | None:
    """Why an answer is malformed, or None."""
    try:
        body = json.loads(raw)
    except ValueError:
        return f"{kind} {status}: not JSON: {raw[:80]!r}"
    if not isinstance(body, dict):
        return f"{kind} {status}: not an object"
    if status >= 400:
        error = body.get("error")
        if kind == "get" and status == 404 and body.get("found") is False:
            return None
        if not isinstance(error, dict) or not isinstance(error.get("type"), str):
            return f"{kind} {status}: error without ES shape: {raw[:120]!r}"
        return None
    if kind == "search":
        hits = body.get("hits", {}).get("hits")
        if not isinstance(hits, list) or headers.get("X-Rerank") not in (
            "full",
            "partial",
            "skipped",
        ):
            return f"search {status}: no hits list or X-Rerank header"
        if len({h.get("_id") for h in hits}) != len(hits):
            return "search: duplicate hits on a page"
    if kind == "msearch":
        responses = body.get("responses")
        if not isinstance(responses, list) or len(responses) != subs:
            return f"msearch {status}: {subs} sub-searches, answers: {raw[:80]!r}"
    if kind == "bad":
        return f"bad body answered {status}"
    return None


async def drive(
    url: str,
    workload: Workload,
    *,
    requests: int,
    duration_s: float,
    concurrency: int,
    timeout_s: float = 30.0,
) -> Report:
    """Send at most ``requests`` (0: no limit) for at most ``duration_s`` to ``url``."""
    host = url.split("//", 1)[-1].split(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"load: refusing a non-loopback target {url}")
    report = Report()
    started = time.perf_counter()
    deadline = started + duration_s
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline and (not requests or report.sent < requests):
            report.sent += 1
            kind, method, path, body, headers, subs = workload.next()
            report.kinds[kind] += 1
            t0 = time.perf_counter()
            try:
                async with session.request(
                    method, url + path, data=body or None, headers=headers
                ) as response:
                    raw = await response.read()
                    status, got_headers = response.status, response.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.transport_errors[type(exc).__name__] += 1
                continue
            report.latencies_ms.append((time.perf_counter() - t0) * 1000)
            report.statuses[status] += 1
            if kind in ("search", "msearch") and "X-Rerank" in got_headers:
                report.rerank[got_headers["X-Rerank"]] += 1
                report.reasons[got_headers.get("X-Rerank-Reason", "-")] += 1
            problem = check(kind, status, got_headers, raw, subs)
            if problem:
                report.malformed.append(problem)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        asyncio.TaskGroup() as group,
    ):
        for _ in range(concurrency):
            group.create_task(worker(session))
    report.seconds = time.perf_counter() - started
    return report


def _corpus(args: argparse.Namespace) -> tuple[Path, list[str]]:
    if args.data is not None and not args.small:
        return args.data / "corpus.jsonl", list(beir.queries(args.data).values())[:200]
    docs = list(read_corpus(SAMPLE, None))
    return SAMPLE, [d["title"] for d in docs]


async def _sample_rss(pid: int, every_s: float, out: list[tuple[float, int]]) -> None:
    """(seconds since start, VmRSS KiB) of the gateway every ``every_s`` (0: none)."""
    started = time.perf_counter()
    while every_s > 0:
        out.append((time.perf_counter() - started, rss_kib(pid)["VmRSS"]))
        await asyncio.sleep(every_s)


async def run(args: argparse.Namespace) -> Report:
    corpus, queries = _corpus(args)
    redis = RedisServer()
    redis.start()
    try:
        with osmem() as upstream:
            return await _run(args, upstream, redis, corpus, queries)
    finally:
        redis.stop()


async def _run(
    args: argparse.Namespace, upstream: str, redis: RedisServer, corpus: Path, queries: list[str]
) -> Report:
    count = seeded(upstream, INDEX, corpus, limit=args.docs)
    ids = [str(d["_id"]) for d in read_corpus(corpus, min(args.docs, 500))]
    print(f"osmem-server {upstream}: {count} documents from {corpus}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = gateway_env(
        {
            "GATEWAY_SERVER__PORT": str(port),
            "GATEWAY_UPSTREAM__URLS": upstream,
            "GATEWAY_MODEL__PATH": str(args.model_dir),
            "GATEWAY_RERANK__WINDOW": str(args.window),
            "GATEWAY_RERANK__TIMEOUT_S": str(args.rerank_timeout_s),
            "GATEWAY_CACHE__REDIS_URL": redis.url,
            "GATEWAY_LOG__LEVEL": "WARNING",
        }
    )
    log = Path(tempfile.mkdtemp(prefix="load-")) / "gateway.log"
    with gateway_process(env, log) as process:
        await wait_ready(url, process, log, 120)
        before = rss_kib(process.pid)
        workload = Workload(queries, ids)
        duration = args.soak_s or args.duration_s
        load = asyncio.create_task(
            drive(
                url,
                workload,
                requests=args.requests,
                duration_s=duration,
                concurrency=args.concurrency,
            )
        )
        series: list[tuple[float, int]] = []
        samples = asyncio.create_task(_sample_rss(process.pid, args.rss_every_s, series))
        if args.soak_s:
            await asyncio.sleep(duration / 2)
            print(f"t={duration / 2:.0f}s: stopping redis for {args.redis_down_s} s")
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(args.redis_down_s)
            await asyncio.to_thread(redis.start)
            print("redis started again (empty)")
        report = await load
        samples.cancel()
        after = rss_kib(process.pid)
    warnings = [line for line in log.read_text().splitlines() if " WARNING " in line]
    print(f"gateway {url}: window {args.window}, concurrency {args.concurrency}")
    print(f"gateway log {log}: {len(warnings)} warning lines")
    for line in report.lines():
        print(line)
    if args.rss_every_s:
        line = "  ".join(f"{t:.0f}s:{kib // 1024}" for t, kib in series)
        print(f"gateway RSS MiB every {args.rss_every_s:.0f} s: {line}")
    print(
        f"gateway RSS KiB: before {before['VmRSS']}  after {after['VmRSS']}"
        f"  (delta {after['VmRSS'] - before['VmRSS']:+d}; peak {after['VmHWM']})"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="0: no limit")
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--rerank-timeout-s", type=float, default=5.0)
    parser.add_argument("--docs", type=int, default=2000, help="documents seeded at most")
    parser.add_argument("--small", action="store_true", help="the 20-document test corpus")
    parser.add_argument("--data", type=Path, help="BEIR directory to seed (default: 20 documents)")
    model_dir_option(parser)
    parser.add_argument("--soak-s", type=float, default=0.0, help="soak this long instead")
    parser.add_argument("--redis-down-s", type=float, default=3.0)
    parser.add_argument("--rss-every-s", type=float, default=0.0, help="print RSS over time")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    return 1 if report.server_errors or report.malformed or report.transport_errors else 0


if __name__ == "__main__":
    sys.exit(main())
