"""Embedder speed: the cut embedding graph against the whole pair graph it came from.

Both run the same texts (the test corpus' documents, repeated), one text per row, on
the same threads; the baseline asks the uncut pair model for its ``query_embedding``
output (what an embedder would do without ``embedder_export``). Prints texts/s of
each, their ratio and the largest difference between the two vectors of a text.

    .venv/bin/python -m ops.bench_embedder [--model-dir DIR] [--texts 256] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.model.embedder import PAIR_OUTPUT, OnnxEmbedder, as_model_settings
from gateway.model.embedder_export import export
from gateway.model.onnx import open_session, run_session
from gateway.settings import EmbedderSettings, SpeedSettings

REPO = Path(__file__).resolve().parents[1]


def corpus(n: int) -> list[str]:
    with (REPO / "tests" / "data" / "docs.jsonl").open() as fh:
        docs = [json.loads(line) for line in fh if line.strip()]
    texts = [f"{d['title']} {d['text']}" for d in docs if d["text"]]
    return [texts[i % len(texts)] + f" ({i})" for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=REPO.parent / "shared" / "models" / "all-minilm-l6-v2-pair",
    )
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "embedders"))
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


if __name__ == "__main__":
    main()
