"""Hostile input costs nothing: RSS of the gateway before / after a hostile mix, loop latency.

Starts osmem-server (seeded with ``tests/data/docs.jsonl``) and the gateway as a
subprocess (``python -m gateway``, real model, reranking on, default settings),
warms it up with one ordinary search, then sends ``--rounds`` times the mix:

- a ``match`` query of 20 KB and one of 1 MB,
- an ordinary ``match`` with a 1 MB ``ext.rerank.query``,
- a ``_msearch`` of ``--subs`` (10,000) small sub-searches, each to be widened to the window,

one at a time, while a probe asks ``/_gateway/health/live`` every 50 ms. Prints one
line: RSS before and after (VmRSS, MiB), the peak (VmHWM), the slowest health
answer, and every answer's ``X-Rerank`` / reason::

    .venv/bin/python -m ops.hostile --model-dir MODEL    # ~30 s on 2 cores
    .venv/bin/python -m ops.hostile --rounds 5 --subs 20000   # model from GATEWAY_MODEL__PATH
    .venv/bin/python -m ops.hostile --corpus DATA/scifact/corpus.jsonl --docs 2000

``tests/integration/test_hostile_inputs.py`` runs the same mix and asserts the bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from ops.harness.options import model_dir_option
from ops.harness.ports import free_port
from ops.harness.servers import gateway_env as harness_env
from ops.harness.servers import gateway_process, osmem, rss_kib, seeded, wait_ready
from ops.load import INDEX, SAMPLE

JSON, NDJSON = "application/json", "application/x-ndjson"
Request = tuple[str, str, bytes, str]
WORDS = ["berlin", "population", "city", "wall", "museum", "paris", "river", "history", "people"]


def long_text(chars: int) -> str:
    """Words the test corpus has, so the cluster finds hits and there is work to bound."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(chars // 5 + 1))[:chars]


def hostile_mix(subs: int, sizes: Sequence[int] = (20_000, 1 << 20)) -> list[Request]:
    """(name, path, body, content type) of each hostile request."""
    search = f"/{INDEX}/_search"
    out: list[Request] = []
    for size in sizes:
        match = {"query": {"match": {"text": long_text(size)}}}
        out.append((f"match {size} chars", search, json.dumps(match).encode(), JSON))
    explicit = {"query": {"match": {"text": "berlin"}}, "ext": {"rerank": {"query": ""}}}
    explicit["ext"]["rerank"]["query"] = long_text(max(sizes))
    out.append(
        (f"ext.rerank.query {max(sizes)} chars", search, json.dumps(explicit).encode(), JSON)
    )
    sub = b'{}\n{"query":{"match":{"text":"berlin"}},"size":1}\n'
    out.append((f"_msearch x{subs}", f"/{INDEX}/_msearch", sub * subs, NDJSON))
    return out


@dataclass
class Figures:
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    peak_kib: int = 0
    health_ms: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    def line(self) -> str:
        before, after = self.rss_before_kib // 1024, self.rss_after_kib // 1024
        return (
            f"hostile mix: RSS MiB before {before} after {after} (delta {after - before:+d};"
            f" peak {self.peak_kib // 1024}); health max {max(self.health_ms, default=0):.0f} ms"
            f" over {len(self.health_ms)} probes; {self.seconds:.1f} s;"
            f" statuses {dict(self.statuses)}; answers {dict(sorted(self.answers.items()))}"
        )


def _probe(host: str, port: int, stop: threading.Event, out: list[float]) -> None:
    """``GET /_gateway/health/live`` every 50 ms on a kept-alive connection, timed; in a
    thread of its own, so the client's own work does not count against the gateway."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        while not stop.wait(0.05):
            t0 = time.perf_counter()
            conn.request("GET", "/_gateway/health/live")
            conn.getresponse().read()
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()


async def drive(
    url: str, pid: int, *, rounds: int, subs: int, sizes: Sequence[int] = (20_000, 1 << 20)
) -> Figures:
    """Warm up, then ``rounds`` of the hostile mix with the health probe running."""
    figures = Figures()
    timeout = aiohttp.ClientTimeout(total=120)
    ordinary = json.dumps({"query": {"match": {"text": "berlin population"}}}).encode()
    mix = hostile_mix(subs, sizes)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def send(path: str, body: bytes, ctype: str) -> tuple[int, str]:
            data = io.BytesIO(body)  # aiohttp warns of large bytes bodies
            async with session.post(url + path, data=data, headers={"Content-Type": ctype}) as r:
                await r.read()
                return (
                    r.status,
                    f"{r.headers.get('X-Rerank')}/{r.headers.get('X-Rerank-Reason', '-')}",
                )

        await send(f"/{INDEX}/_search", ordinary, "application/json")  # warm: arenas, caches
        figures.rss_before_kib = rss_kib(pid)["VmRSS"]
        started = time.perf_counter()
        host, port = url.split("//", 1)[1].split(":")
        stop = threading.Event()
        probe = threading.Thread(target=_probe, args=(host, int(port), stop, figures.health_ms))
        probe.start()
        try:
            for _ in range(rounds):
                for name, path, body, ctype in mix:
                    status, rerank = await send(path, body, ctype)
                    figures.statuses[status] += 1
                    figures.answers[f"{name}: {rerank}"] += 1
        finally:
            stop.set()
            await asyncio.to_thread(probe.join)
        figures.seconds = time.perf_counter() - started
        figures.rss_after_kib = rss_kib(pid)["VmRSS"]
        figures.peak_kib = rss_kib(pid)["VmHWM"]
    return figures


def gateway_env(port: int, upstream: str, model_dir: Path) -> dict[str, str]:
    """The gateway's default settings but its port, cluster and model, and warnings only."""
    return harness_env(
        {
            "GATEWAY_SERVER__PORT": str(port),
            "GATEWAY_UPSTREAM__URLS": upstream,
            "GATEWAY_MODEL__PATH": str(model_dir),
            "GATEWAY_LOG__LEVEL": "WARNING",
        }
    )


@contextmanager
def seeded_osmem(corpus: Path = SAMPLE, docs: int | None = None) -> Iterator[str]:
    with osmem() as url:
        seeded(url, INDEX, corpus, limit=docs)
        yield url


async def run(args: argparse.Namespace) -> Figures:
    with seeded_osmem(args.corpus, args.docs) as upstream:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tempfile.mkdtemp(prefix="hostile-")) / "gateway.log"
        with gateway_process(gateway_env(port, upstream, args.model_dir), log) as process:
            await wait_ready(url, process, log, 120)
            return await drive(
                url, process.pid, rounds=args.rounds, subs=args.subs, sizes=args.sizes
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subs", type=int, default=10_000)
    model_dir_option(parser)
    parser.add_argument("--corpus", type=Path, default=SAMPLE, help="JSONL documents to seed")
    parser.add_argument("--docs", type=int, default=None, help="documents seeded at most")
    parser.add_argument(
        "--sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[20_000, 1 << 20],
        help="query lengths in characters",
    )
    args = parser.parse_args(argv)
    print(asyncio.run(run(args)).line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
