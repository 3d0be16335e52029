"""The newcomer demo: one search straight from the cluster and through the gateway, side by side.

    python -m ops.demo                     # run once and shut down
    python -m ops.demo --serve             # keep serving; curl the printed URL
    python -m ops.demo --query "..."       # another query

Starts an in-memory osmem-server (OpenSearch API, no Docker), seeds it with the
SciFact corpus (``../shared/data/scifact/corpus.jsonl`` when present, read in
place) or else with ``ops/demo_corpus.jsonl``, starts the gateway in-process
in front of it with the cross-encoder from ``GATEWAY_MODEL__PATH`` (default:
``../shared/models/all-minilm-l6-v2-pair`` when present, else the Hub model of
``GATEWAY_MODEL__HUB_ID``), and prints the two rankings with their titles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from osmem_server import OsmemServer
from pydantic import ValidationError

from gateway.__main__ import EXIT_CONFIG, describe_config_error, setup_logging
from gateway.app import create_app, wait_ready
from gateway.protocol import GatewayRunner
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
SAMPLE = Path(__file__).with_name("demo_corpus.jsonl")
LOCAL_MODEL = REPO.parent / "shared" / "models" / "all-minilm-l6-v2-pair"
INDEX = "demo"
QUERY = "does drinking coffee lower the risk of type 2 diabetes"
BULK_DOCS = 1000
TITLE_CHARS = 58


def corpus_docs(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as fh:
        for line in fh:
            if line.strip():
                doc = json.loads(line)
                yield {"_id": str(doc["_id"]), "title": doc.get("title", ""), "text": doc["text"]}


async def seed(session: aiohttp.ClientSession, url: str, path: Path) -> int:
    mappings = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    async with session.put(f"{url}/{INDEX}", json={"mappings": mappings}) as r:
        r.raise_for_status()
    lines: list[str] = []
    count = 0
    for doc in corpus_docs(path):
        lines.append(json.dumps({"index": {"_index": INDEX, "_id": doc.pop("_id")}}))
        lines.append(json.dumps(doc))
        count += 1
        if len(lines) >= 2 * BULK_DOCS:
            await bulk(session, url, lines)
            lines = []
    if lines:
        await bulk(session, url, lines)
    async with session.post(f"{url}/{INDEX}/_refresh") as r:
        r.raise_for_status()
    return count


async def bulk(session: aiohttp.ClientSession, url: str, lines: list[str]) -> None:
    data = "\n".join(lines) + "\n"
    headers = {"Content-Type": "application/x-ndjson"}
    async with session.post(f"{url}/_bulk", data=data, headers=headers) as r:
        r.raise_for_status()
        if (await r.json()).get("errors"):
            raise RuntimeError("the search server refused some demo documents")


async def search(
    session: aiohttp.ClientSession, url: str, query: str, size: int
) -> tuple[list[dict[str, Any]], str]:
    body = {"query": {"match": {"text": query}}, "size": size, "_source": ["title"]}
    async with session.post(f"{url}/{INDEX}/_search", json=body) as r:
        r.raise_for_status()
        got = await r.json()
        return got["hits"]["hits"], r.headers.get("X-Rerank", "-")


def show(direct: list[dict[str, Any]], reranked: list[dict[str, Any]]) -> None:
    def cell(hit: dict[str, Any] | None) -> str:
        if hit is None:
            return ""
        title = str(hit.get("_source", {}).get("title") or hit["_id"])
        if len(title) > TITLE_CHARS:
            title = title[: TITLE_CHARS - 1] + "…"
        return f"{hit['_score']:7.2f}  {title}"

    width = TITLE_CHARS + 9
    print(f"     {'cluster (BM25)':<{width}}  {'gateway (cross-encoder)':<{width}}")
    for rank in range(max(len(direct), len(reranked))):
        left = cell(direct[rank] if rank < len(direct) else None)
        right = cell(reranked[rank] if rank < len(reranked) else None)
        print(f"{rank + 1:>3}  {left:<{width}}  {right}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def demo(args: argparse.Namespace, base: Settings) -> None:
    corpus = SCIFACT if SCIFACT.is_file() else SAMPLE
    server = OsmemServer.start()
    try:
        async with aiohttp.ClientSession() as session:
            count = await seed(session, server.url, corpus)
            print(f"osmem-server at {server.url}: {count} documents from {corpus}")
            settings = base.model_copy(
                update={
                    "upstream": base.upstream.model_copy(update={"urls": [server.url]}),
                    "server": base.server.model_copy(update={"port": args.port or free_port()}),
                    # A generous deadline: the demo is about the order, on any CPU.
                    "rerank": base.rerank.model_copy(
                        update={"window": args.window, "timeout_s": max(base.rerank.timeout_s, 60)}
                    ),
                }
            )
            model = settings.model.path or f"hub:{settings.model.hub_id}"
            print(f"loading the cross-encoder {model} ...")
            app = create_app(settings)
            runner = GatewayRunner(app, access_log=None)
            await runner.setup()
            try:
                site = web.TCPSite(runner, settings.server.host, settings.server.port)
                await site.start()
                await wait_ready(app)
                gateway = f"http://{settings.server.host}:{settings.server.port}"
                direct, _ = await search(session, server.url, args.query, args.size)
                reranked, status = await search(session, gateway, args.query, args.size)
                print(f"\nquery: {args.query!r}  (window {args.window}, X-Rerank: {status})\n")
                show(direct, reranked)
                if args.serve:
                    print(f"\ngateway serving at {gateway} (Ctrl-C stops), e.g.:")
                    print(
                        f"  curl -s '{gateway}/{INDEX}/_search?q=coffee+diabetes&size=3'"
                        " -H 'Content-Type: application/json'"
                    )
                    await asyncio.Event().wait()
            finally:
                await runner.cleanup()
    finally:
        server.close()
        if server.process.stdout is not None:  # the launcher leaves its pipe open
            server.process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--query", default=QUERY)
    parser.add_argument("--size", type=int, default=10, help="hits shown")
    parser.add_argument("--window", type=int, default=20, help="hits the gateway reranks")
    parser.add_argument("--port", type=int, default=0, help="gateway port (0: a free one)")
    parser.add_argument("--serve", action="store_true", help="keep serving after the demo")
    args = parser.parse_args(argv)
    if "GATEWAY_MODEL__PATH" not in os.environ and LOCAL_MODEL.is_dir():
        os.environ["GATEWAY_MODEL__PATH"] = str(LOCAL_MODEL)
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
