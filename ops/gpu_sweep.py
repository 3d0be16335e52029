"""The model alone on one device: pairs/s per batch size, IO binding on and off, one table.

::

    .venv/bin/python -m ops.gpu_sweep --model-dir M --data DATA/scifact            # cuda, fp16
    .venv/bin/python -m ops.gpu_sweep --model-dir M --data D --device cpu --file model.onnx \\
        --batches 1,4 --pairs 16 --threads 4                                      # same code on CPU

Part of ``ops/gpu_bench.sh`` (which installs onnxruntime-gpu and exports the fp16
file first). Real SciFact pairs (test queries x corpus passages, cut at
``--max-length`` tokens by the gateway's own tokenizer), fed through the
gateway's encoder (``OnnxCrossEncoder``: the same session options, padding and IO
binding as a serving gateway). Rounds are interleaved: each round times every
(batch, binding) cell once, so a drifting machine moves all cells alike; the
table gives the best round's pairs/s and the median ms per run. ``--threads``
runs that many model threads at once on the largest batch (pairs/s under
concurrency, one session shared, as the gateway's pool would).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway.model.base import Encoded, Pair
from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import OnnxModel, SpeedSettings
from ops.harness import beir
from ops.harness.options import data_option, model_dir_option


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_dir_option(parser)
    data_option(parser)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--file", default="model_fp16.onnx", help="model file in --model-dir")
    parser.add_argument("--batches", type=_ints, default=[1, 8, 32, 64, 128, 256])
    parser.add_argument("--pairs", type=int, default=512, help="pairs timed per cell and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=4, help="concurrent runs (last row)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not args.batches or min(args.batches) < 1:
        parser.error("--batches: positive integers, e.g. 1,8,32")
    if args.pairs < max(args.batches):
        parser.error("--pairs must be at least the largest batch")
    return args


def real_pairs(data: Path, n: int) -> list[Pair]:
    """``n`` (query, passage) pairs: each test query with corpus passages, round-robin."""
    queries = list(beir.judged(data).values())
    passages: list[str] = []
    with (data / "corpus.jsonl").open() as lines:
        for line in lines:
            doc = json.loads(line)
            passages.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
            if len(passages) >= n:
                break
    return [(queries[i % len(queries)], passages[i % len(passages)]) for i in range(n)]


def encoder(args: argparse.Namespace, binding: bool) -> OnnxCrossEncoder:
    model = OnnxModel.model_validate(
        {
            "path": str(args.model_dir),
            "file": args.file,
            "quantization": "none",
            "device": args.device,
            "max_length": args.max_length,
        }
    )
    speed = SpeedSettings.model_validate({"io_binding": "on" if binding else "off"})
    return OnnxCrossEncoder(args.model_dir, model, speed)


def time_cell(enc: OnnxCrossEncoder, encoded: list[Encoded], batch: int) -> list[float]:
    """Seconds per run of ``batch`` pairs (input building and copies included)."""
    out = []
    for start in range(0, len(encoded) - batch + 1, batch):
        t0 = time.perf_counter()
        enc.run(enc.feed(encoded[start : start + batch]))
        out.append(time.perf_counter() - t0)
    return out


def concurrent(enc: OnnxCrossEncoder, encoded: list[Encoded], batch: int, threads: int) -> float:
    """Pairs/s with ``threads`` runs of ``batch`` pairs in flight on one session."""
    chunks = [encoded[i : i + batch] for i in range(0, len(encoded) - batch + 1, batch)]
    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda c: enc.run(enc.feed(c)), chunks))
        return len(chunks) * batch / (time.perf_counter() - t0)


def sweep(args: argparse.Namespace) -> list[dict[str, object]]:
    pairs = real_pairs(args.data, args.pairs)
    encoders = {binding: encoder(args, binding) for binding in (True, False)}
    encoded = encoders[True].encode(pairs)
    tokens = statistics.mean(len(e) for e in encoded)
    for enc in encoders.values():  # warm-up: every shape once (cuda kernels, arenas)
        for batch in args.batches:
            enc.run(enc.feed(encoded[:batch]))
    cells: dict[tuple[int, bool], list[list[float]]] = {}
    for _ in range(args.rounds):
        for batch in args.batches:
            for binding, enc in encoders.items():
                cells.setdefault((batch, binding), []).append(time_cell(enc, encoded, batch))
    rows: list[dict[str, object]] = []
    for (batch, binding), rounds in sorted(cells.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
        runs = [s for r in rounds for s in r]
        best = max(len(r) * batch / sum(r) for r in rounds)
        rows.append(
            {
                "batch": batch,
                "io_binding": binding,
                "pairs/s": round(best, 1),
                "ms/run p50": round(1000 * statistics.median(runs), 2),
                "tokens/pair": round(tokens),
            }
        )
    top = max(args.batches)
    rows.append(
        {
            "batch": top,
            "io_binding": True,
            "pairs/s": round(concurrent(encoders[True], encoded, top, args.threads), 1),
            "ms/run p50": f"{args.threads} threads",
            "tokens/pair": round(tokens),
        }
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = sweep(args)
    print(f"# gpu_sweep: {args.model_dir / args.file} on {args.device}, {args.rounds} rounds")
    print(f"{'batch':>6} {'binding':>8} {'pairs/s':>10} {'ms/run p50':>12} {'tokens':>7}")
    for row in rows:
        print(
            f"{row['batch']:>6} {'on' if row['io_binding'] else 'off':>8} {row['pairs/s']:>10}"
            f" {row['ms/run p50']!s:>12} {row['tokens/pair']:>7}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
