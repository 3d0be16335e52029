"""Export a cross-encoder to the gateway's ONNX layout and build its runtime variants.

Output directory layout (what the gateway's model loader reads)::

    model.onnx        fp32; inputs input_ids / attention_mask / token_type_ids (int64 [B,S]),
                      output ``logits`` [B,1] (extra outputs of a --from-onnx model are kept)
    tokenizer.json    HF fast tokenizer, pair template, truncation --max-length, pad to longest
    model_int8.onnx   fastest CPU variant: ORT transformer optimizer (bert fusions) ->
                      quantize_dynamic(QInt8, per_channel=True)      [see ops/model_speed.py];
                      its activation scales span the whole batch, so the gateway runs it one
                      pair per run (batch-invariant; gateway/model/variants.py)
    model_fp16.onnx   for GPU: optimizer(use_gpu=True) -> float16 with fp32 inputs/outputs
    model_int8_qdq.onnx  only with --static-int8 (static per-channel QDQ; slower and less
                      faithful than model_int8.onnx on this 2-core AVX2 box; kept for GPUs /
                      other CPUs where it may win)
    export.json       what was produced and how (settings, sizes, agreement)

Afterwards it scores real (query, passage) pairs (SciFact BM25 candidates when --data-dir exists,
else a few built-in pairs) with every variant on the ORT CPU provider and prints agreement with
model.onnx (mean Kendall tau per query, top-1 agreement, max abs logit diff).

Run::

    # from the Hugging Face Hub (needs network + transformers + torch)
    .venv/bin/python ops/export_model.py --model cross-encoder/ms-marco-MiniLM-L-6-v2 --out DIR
    # from a local HF model dir
    .venv/bin/python ops/export_model.py --model /path/to/hf_dir --out DIR
    # from an existing ONNX model dir (model.onnx + tokenizer.json): variants only
    .venv/bin/python ops/export_model.py --from-onnx /work/shared/models/all-minilm-l6-v2-pair \\
        --out /tmp/exported

Write outputs outside the repository (models are never committed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.cli.export_model import add_arguments
from gateway.model.export import export_args, finish

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
FALLBACK_PAIRS = [
    ("how many people live in berlin", "Berlin has a population of 3.5 million people."),
    ("how many people live in berlin", "Berlin is known for its museums and nightlife."),
    ("how many people live in berlin", "Paris is the capital of France."),
    ("what causes scurvy", "Scurvy is caused by a lack of vitamin C in the diet."),
    ("what causes scurvy", "Sailors on long voyages often ate hard tack and salted meat."),
    ("what causes scurvy", "The Python language was released in 1991."),
]


def _speed() -> Any:
    """ops/model_speed.py (data loading, agreement metrics, static int8 helper)."""
    from ops import model_speed

    return model_speed


def make_qdq(src: Path, dst: Path, tokenizer: Path, data_dir: Path | None) -> dict[str, Any]:
    ms = _speed()
    tok = ms.load_tokenizer(tokenizer.parent, 256)
    if data_dir is not None and (data_dir / "qrels" / "train.tsv").exists():
        pairs = ms.build_pairs(data_dir, "train", 128, 16, seed=7).pairs
    else:
        pairs = FALLBACK_PAIRS * 4
    ms.make_static_int8(src, dst, ms.encode_batches(tok, pairs, 16))
    return {"recipe": "quantize_static QDQ MatMul const-B, per-channel int8 w, uint8 act, MinMax"}


# ---------------------------------------------------------------------- agreement


def check_agreement(
    out_dir: Path, variants: list[str], data_dir: Path | None, n_pairs: int
) -> dict[str, Any]:
    import onnxruntime as ort

    ms = _speed()
    tok = ms.load_tokenizer(out_dir, 256)
    if data_dir is not None and (data_dir / "corpus.jsonl").exists():
        ps = ms.build_pairs(data_dir, "test", n_pairs, 16)
        qids, pairs = ps.qids, ps.pairs
        where = f"{len(pairs)} SciFact test pairs (BM25 top-16 of {len(ps.qrels)} queries)"
    else:
        pairs = FALLBACK_PAIRS
        qids = [q for q, _ in pairs]
        where = f"{len(pairs)} built-in pairs"
    feeds = ms.encode_batches(tok, pairs, 16)
    scores: dict[str, np.ndarray] = {}
    rates: dict[str, float] = {}
    for name in variants:
        so = ort.SessionOptions()
        so.intra_op_num_threads = os.cpu_count() or 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(out_dir / name), so, providers=["CPUExecutionProvider"])
        run = ms.ort_runner(sess)
        got, r = ms.time_runner(run, feeds, 1)
        scores[name], rates[name] = got, r[0]
    ref = scores["model.onnx"]
    report: dict[str, Any] = {"pairs": where}
    print(f"\nagreement with model.onnx on {where} (ORT CPU; fp16 runs on CPU only to check):")
    print(
        f"{'variant':22s} {'tau mean':>8s} {'tau min':>7s} {'top1':>5s} {'max|d|':>7s}"
        f" {'pairs/s':>8s}"
    )
    for name in variants:
        ag = ms.agreement(ref, scores[name], qids)
        report[name] = {
            "mean_kendall_tau": round(ag.mean_tau, 4),
            "min_kendall_tau": round(ag.min_tau, 4),
            "top1_agreement": round(ag.top1, 4),
            "max_abs_logit_diff": round(ag.max_abs, 4),
            "cpu_pairs_per_s": round(rates[name], 1),
        }
        print(
            f"{name:22s} {ag.mean_tau:8.4f} {ag.min_tau:7.3f} {ag.top1:5.2f} {ag.max_abs:7.3f}"
            f" {rates[name]:8.1f}"
        )
    return report


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--static-int8", action="store_true", help="also write model_int8_qdq.onnx")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="BEIR dir for checks")
    ap.add_argument("--check-pairs", type=int, default=96, help="0 skips the agreement check")
    args = ap.parse_args(argv)

    out_dir = Path(args.out).resolve()
    repo = Path(__file__).resolve().parent.parent
    if out_dir == repo or repo in out_dir.parents:
        ap.error(f"--out {out_dir} is inside the repository; write models elsewhere")
    data_dir = Path(args.data_dir) if args.data_dir and Path(args.data_dir).exists() else None
    t0 = time.perf_counter()
    try:
        info, files = export_args(args)
    except FileNotFoundError as exc:
        ap.error(str(exc))
    fp32 = out_dir / "model.onnx"
    if args.static_int8:
        files["model_int8_qdq.onnx"] = make_qdq(
            fp32, out_dir / "model_int8_qdq.onnx", out_dir / "tokenizer.json", data_dir
        )
    agreement: dict[str, Any] = {}
    if args.check_pairs > 0:
        agreement = check_agreement(out_dir, list(files), data_dir, args.check_pairs)
    finish(
        out_dir,
        info,
        files,
        agreement=agreement,
        cpu_session={
            "providers": ["CPUExecutionProvider"],
            "intra_op_num_threads": "physical cores",
            "inter_op_num_threads": 1,
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": "ORT_ENABLE_ALL",
        },
    )
    print(f"done in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
