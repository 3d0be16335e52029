"""Embedder speed: the cut embedding graph against the whole pair graph it came from.

Both run the same texts (the test corpus' documents, repeated), one text per row, on
the same threads; the baseline asks the uncut pair model for its ``query_embedding``
output (what an embedder would do without ``embedder_export``). Prints texts/s of
each, their ratio and the largest difference between the two vectors of a text.

    .venv/bin/python -m ops.bench_embedder --model-dir DIR [--texts 256] [--batch 32]
        [--backfill-url http://127.0.0.1:9200]

With ``--backfill-url`` it also seeds the texts into a new index of that cluster and
times the backfill (``rerank-gateway backfill``'s loop) over it (documents/s, and its ratio
to embedding alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from gateway.model.embedder import PAIR_OUTPUT, OnnxEmbedder, as_model_settings
from gateway.model.embedder_export import export
from gateway.model.onnx import open_session, run_session
from gateway.settings import EmbedderSettings, SpeedSettings, UpstreamSettings
from gateway.upstream.client import Upstream
from gateway.vectors.backfill import Options, backfill
from ops.harness.options import model_dir_option

REPO = Path(__file__).resolve().parents[1]


def corpus(n: int) -> list[str]:
    with (REPO / "tests" / "data" / "docs.jsonl").open() as fh:
        docs = [json.loads(line) for line in fh if line.strip()]
    texts = [f"{d['title']} {d['text']}" for d in docs if d["text"]]
    return [texts[i % len(texts)] + f" ({i})" for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_dir_option(parser)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "embedders"))
    parser.add_argument("--backfill-url", help="a cluster to time the backfill against")
    args = parser.parse_args()
    settings = EmbedderSettings.model_validate({"path": args.model_dir, "batch_size": args.batch})
    cut = OnnxEmbedder(export(args.model_dir, "model.onnx", args.cache_dir), settings)
    speed = SpeedSettings.model_validate({})
    whole = open_session(
        args.model_dir / "model.onnx", as_model_settings(args.model_dir, settings), speed
    )
    texts = corpus(args.texts)

    def baseline(batch: list[str]) -> Any:
        return run_session(whole, [PAIR_OUTPUT], cut.inputs(batch))[0]

    cut.embed_sync(texts[: args.batch])  # warm both up
    baseline(texts[: args.batch])
    t0 = time.perf_counter()
    ours = cut.embed_sync(texts)
    t_cut = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = np.concatenate(
        [baseline(texts[i : i + args.batch]) for i in range(0, len(texts), args.batch)]
    )
    t_whole = time.perf_counter() - t0
    print(f"texts {len(texts)}, batch {args.batch}")
    print(f"cut embedding graph : {len(texts) / t_cut:7.1f} texts/s")
    print(f"whole pair graph    : {len(texts) / t_whole:7.1f} texts/s (baseline)")
    print(f"ratio cut/whole     : {t_whole / t_cut:7.2f}x")
    print(f"max |difference|    : {float(np.abs(ours - theirs).max()):.2e}")
    if args.backfill_url:
        t_fill = asyncio.run(time_backfill(args.backfill_url, cut, texts, args.batch))
        print(
            f"backfill            : {len(texts) / t_fill:7.1f} docs/s "
            f"({t_cut / t_fill:.2f}x of embedding alone)"
        )


async def time_backfill(url: str, embedder: OnnxEmbedder, texts: list[str], batch: int) -> float:
    index = f"bench-backfill-{uuid.uuid4().hex[:8]}"
    upstream = Upstream(UpstreamSettings.model_validate({"urls": [url]}))
    await upstream.start()
    try:
        lines = "".join(
            json.dumps({"index": {"_index": index, "_id": str(i)}})
            + "\n"
            + json.dumps({"text": t})
            + "\n"
            for i, t in enumerate(texts)
        )
        headers = {"Content-Type": "application/x-ndjson"}
        await upstream.fetch("POST", "/_bulk?refresh=true", headers, lines.encode())
        with tempfile.TemporaryDirectory() as tmp:
            options = Options(index, "embedding", ("text",), Path(tmp) / "s.json", batch)
            t0 = time.perf_counter()
            report = await backfill(upstream, embedder, options, None)
            elapsed = time.perf_counter() - t0
        assert report.complete and report.updated == len(texts), report
        await upstream.fetch("DELETE", f"/{index}", {})
    finally:
        await upstream.close()
    return elapsed


if __name__ == "__main__":
    main()
