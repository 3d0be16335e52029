"""Speed, batch variance and ranking agreement of the gateway's CPU model paths, in one run:
what a user needs to pick ``MODEL__QUANTIZATION`` for the configured model.

Every path runs through the gateway's own ``OnnxCrossEncoder`` (encode, feed, run) on
SciFact *test* pairs (BM25 candidates), cut into length-sorted batches of ``--batch``
pairs as the batcher does. The paths are interleaved: each repetition times every path
once, round-robin, and the ratios are taken inside a repetition (median over
repetitions), so a shared, noisy machine still gives comparable figures.

Columns: pairs/s (best repetition), ratio to fp32 and to today's batched dynamic int8
(same batch size), batch variance (largest |score in its batch - score alone|), mean /
min Kendall tau per query against fp32 scored alone, top-1 agreement.

The static int8 model is generated (once) into ``--cache-dir`` from ``model.onnx``,
calibrated on SciFact *train* pairs (``python -m gateway.model.quantize``)::

    export GATEWAY_MODEL__PATH=MODEL GATEWAY_MODEL__CACHE_DIR=CACHE   # or the flags
    .venv/bin/python -m ops.invariance_speed --data DATA/scifact --pairs 96 --repeats 3 \\
        --batch 4,16

With the ``openvino`` extra it also runs the OpenVINO runtime backend
(``MODEL__BACKEND=openvino``): f32, and its NNCF int8 model (generated into the same
cache directory) one pair per run and batched. The research option matrix it replaced
(PyTorch, fp16, unfused int8) and its figures are in ``docs/speed.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gateway.model import openvino_quantize
from gateway.model.base import CrossEncoder, Encoded
from gateway.model.loader import load_encoder
from gateway.model.quantize import generate
from gateway.settings import OnnxModel, SpeedSettings
from ops.harness import ceilings
from ops.harness.bm25 import build_pairs
from ops.harness.metrics import agreement
from ops.harness.options import data_option, model_dir_option, path_option
from ops.harness.peer_runs import Peer, pytorch_peer, st_openvino_peer

# name -> (OnnxModel fields besides path, cache_dir, threads; SpeedSettings fields)
PATHS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "fp32": ({"quantization": "none"}, {}),
    "int8-dynamic (today)": ({"quantization": "dynamic", "allow_batch_dependent": True}, {}),
    "int8-dynamic per-pair": ({"quantization": "dynamic"}, {}),
    # The same one pair at a time (SPEED__PAIR_LANES=1): what running pairs side by side,
    # one thread each, buys over one run with every thread.
    "int8-dyn per-pair 1 lane": ({"quantization": "dynamic"}, {"pair_lanes": 1}),
    "int8-static": ({"quantization": "static"}, {}),
    # The OpenVINO runtime (the `openvino` extra); its int8 model from NNCF. "ov bf16" and
    # the int8 paths compute in bf16 where the CPU has bf16 instructions (the default
    # SPEED__OPENVINO_PRECISION), and then run one pair per run, pairs side by side on
    # one stream per thread; "ov f32" asks for f32.
    "ov f32": ({"backend": "openvino", "quantization": "none"}, {"openvino_precision": "f32"}),
    "ov bf16": ({"backend": "openvino", "quantization": "none"}, {}),
    "ov int8 per-pair": ({"backend": "openvino", "quantization": "static"}, {}),
    "ov int8 1 lane": ({"backend": "openvino", "quantization": "static"}, {"pair_lanes": 1}),
    "ov int8 batched": (
        {"backend": "openvino", "quantization": "static", "allow_batch_dependent": True},
        {},
    ),
}


@dataclass
class Run:
    name: str
    batch: int
    encoder: CrossEncoder
    rates: list[float] = field(default_factory=list)
    scores: np.ndarray[Any, Any] | None = None


def batches(encoded: list[Encoded], size: int) -> list[list[int]]:
    """Indices of length-sorted batches of ``size`` pairs (the batcher sorts by length)."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    return [order[i : i + size] for i in range(0, len(order), size)]


def timed(run: Run, encoded: list[Encoded]) -> np.ndarray[Any, Any]:
    scores = np.zeros(len(encoded), dtype=np.float32)
    t0 = time.perf_counter()
    for idx in batches(encoded, run.batch):
        scores[idx] = run.encoder.score([encoded[i] for i in idx])
    run.rates.append(len(encoded) / (time.perf_counter() - t0))
    return scores


def alone(encoder: CrossEncoder, encoded: list[Encoded]) -> np.ndarray[Any, Any]:
    return np.concatenate([encoder.score([e]) for e in encoded])


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def report(
    runs: list[Run],
    peers: list[Peer],
    *,
    single: dict[str, np.ndarray[Any, Any]],
    qids: list[str],
    limits: ceilings.Ceilings,
    names: list[str],
    sizes: list[int],
) -> None:
    """The table: one row per path and batch size, then the peers and the ratios to the best."""
    ref = single["fp32"]
    by = {(r.name, r.batch): r for r in runs}
    head = (
        f"{'path':22s} {'batch':>5s} {'pairs/s':>8s} {'x fp32':>7s} {'x dyn':>6s}"
        f" {'of ceil':>8s} {'variance':>9s} {'tau mean':>8s} {'tau min':>7s} {'top1':>5s}"
    )
    print(head)
    print("-" * len(head))
    for run in runs:
        assert run.scores is not None
        ratios = [
            statistics.median(
                a / b for a, b in zip(run.rates, by[(base, run.batch)].rates, strict=True)
            )
            if (base, run.batch) in by
            else float("nan")
            for base in ("fp32", "int8-dynamic (today)")
        ]
        variance = float(np.max(np.abs(run.scores - single[run.name])))
        ag = agreement(ref, run.scores, qids)
        bound = limits.pairs_per_s(ceilings.precision_of(getattr(run.encoder, "execution", "")))
        print(
            f"{run.name:22s} {run.batch:5d} {max(run.rates):8.1f} {ratios[0]:7.2f}"
            f" {ratios[1]:6.2f} {max(run.rates) / bound:8.0%} {variance:9.1e}"
            f" {ag.mean_tau:8.4f} {ag.min_tau:7.3f} {ag.top1:5.2f}"
        )
    fp32_best = max(max(by[("fp32", b)].rates) for b in sizes)
    for one in peers:
        ag = agreement(ref, one.scores, qids)
        print(
            f"{one.name:22s} {one.batch:5d} {max(one.rates):8.1f}"
            f" {max(one.rates) / fp32_best:7.2f} {'':>6s} {'':>8s} {'':>9s}"
            f" {ag.mean_tau:8.4f} {ag.min_tau:7.3f} {ag.top1:5.2f}"
        )
    if peers:
        best = max(peers, key=lambda one: max(one.rates))
        print(f"\nx best peer ({best.name}, {max(best.rates):.1f} pairs/s), best batch per path:")
        for name in names:
            rate = max(max(by[(name, b)].rates) for b in sizes)
            print(f"  {name:22s} {rate / max(best.rates):5.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    model_dir_option(ap)
    data_option(ap)
    path_option(
        ap, "--cache-dir", "where the static int8 model goes", env="GATEWAY_MODEL__CACHE_DIR"
    )
    ap.add_argument("--pairs", type=int, default=96, help="test pairs (16 per query)")
    ap.add_argument("--batch", default="4,16", help="pairs per run, comma separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calibration-pairs", type=int, default=128)
    ap.add_argument("--only", default="", help="paths to run, comma separated (fp32 always)")
    ap.add_argument("--torch-weights", type=Path, help="PyTorch weights: the bf16 peer")
    ap.add_argument(
        "--st-python", type=Path, help="a Python with sentence-transformers + optimum-intel"
    )
    args = ap.parse_args(argv)

    paths = dict(PATHS)
    if args.only:
        wanted = {"fp32", *args.only.split(",")}
        paths = {k: v for k, v in paths.items() if k in wanted}
    if "int8-static" in paths:
        generate(args.model_dir, args.cache_dir, args.data, n_pairs=args.calibration_pairs)
    uses_ov = any(v[0].get("backend") == "openvino" for v in paths.values())
    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None:
        paths = {k: v for k, v in paths.items() if v[0].get("backend") != "openvino"}
        print("OpenVINO paths left out: pip install 'rerank-gateway[openvino]'")
    elif uses_ov:
        openvino_quantize.generate(
            args.model_dir, args.cache_dir, args.data, n_pairs=args.calibration_pairs
        )
    ps = build_pairs(args.data, "test", args.pairs, 16)
    # Before any session exists: idle runtime thread pools would compete with the GEMM.
    limits = ceilings.measure(args.model_dir, 250.0)
    sizes = [int(b) for b in args.batch.split(",")]
    runs: list[Run] = []
    encoders: dict[str, CrossEncoder] = {}
    for name, (fields, speed) in paths.items():
        encoders[name] = load_encoder(
            OnnxModel.model_validate(
                {
                    "path": args.model_dir,
                    "cache_dir": args.cache_dir,
                    "intra_op_threads": args.threads,
                    **fields,
                }
            ),
            SpeedSettings.model_validate(speed),
        )
        runs += [Run(name, size, encoders[name]) for size in sizes]
    encoded = encoders["fp32"].encode(ps.pairs)
    tokens = float(np.mean([len(e) for e in encoded]))
    limits = limits.at(args.model_dir, tokens)
    print(f"CPU: {_cpu_model()}")
    print(
        f"{len(encoded)} SciFact test pairs ({len(ps.qrels)} queries x BM25 top-16),"
        f" {tokens:.0f} tokens/pair, {args.threads} threads, {args.repeats} repetitions"
    )
    print(limits.line())
    for name, encoder in encoders.items():
        print(f"  {name:22s} {getattr(encoder, 'execution', '')}")
    peers: list[Peer] = []
    if args.torch_weights is not None:
        peers.append(pytorch_peer(args.torch_weights, args.model_dir, args.threads, max(sizes)))
    single = {name: alone(enc, encoded) for name, enc in encoders.items()}
    for run in runs:  # warm-up (kernel selection, prepacking)
        timed(run, encoded[: run.batch])
        run.rates.clear()
    for _ in range(args.repeats):
        for run in runs:
            run.scores = timed(run, encoded)
        for one in peers:
            one.time(ps.pairs)
    if args.st_python is not None and args.torch_weights is not None:
        # Another process: once after the paths (its own warm-up), as many repetitions.
        peers.append(
            st_openvino_peer(
                args.st_python,
                args.torch_weights,
                ps.pairs,
                threads=args.threads,
                batch=max(sizes),
                repeats=args.repeats,
            )
        )

    report(runs, peers, single=single, qids=ps.qids, limits=limits, names=list(paths), sizes=sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
