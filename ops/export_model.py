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
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_DATA_DIR = Path("/work/shared/data/scifact")
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------- export


def export_hf(model_id: str, out_dir: Path, max_length: int, opset: int) -> dict[str, Any]:
    """HF AutoModelForSequenceClassification -> model.onnx + tokenizer.json."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_id)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_id, attn_implementation="eager"
    ).eval()
    # two rows of different length so the padding / mask path is traced
    enc = tok(
        [
            ("how many people live in berlin", "Berlin has a population of 3.5 million"),
            ("capital", "Berlin"),
        ],
        padding=True,
        return_tensors="pt",
    )
    names = [n for n in INPUT_NAMES if n in enc]

    class Wrapped(torch.nn.Module):  # type: ignore[misc,unused-ignore]  # Any without torch
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).logits

    onnx_path = out_dir / "model.onnx"
    # .eval() on the wrapper too: export restores the wrapper's training flag afterwards,
    # and a fresh Module is in training mode (that would switch dropout on in `model`).
    wrapped = Wrapped(model).eval()
    with torch.no_grad():
        expected = wrapped(*(enc[n] for n in names)).numpy()
        torch.onnx.export(
            wrapped,
            tuple(enc[n] for n in names),
            str(onnx_path),
            dynamo=False,
            opset_version=opset,
            input_names=names,
            output_names=["logits"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}},
            do_constant_folding=True,
        )
    tok.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    _fix_tokenizer(out_dir / "tokenizer.json", max_length)

    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {n: enc[n].numpy().astype(np.int64) for n in names})[0]
    diff = float(np.max(np.abs(got - expected)))
    size = onnx_path.stat().st_size / 1e6
    print(f"exported {onnx_path} ({size:.1f} MB); torch vs onnx max abs diff {diff:.2e}")
    cfg = model.config
    return {
        "source": model_id,
        "inputs": names,
        "num_heads": int(getattr(cfg, "num_attention_heads", 0)),
        "hidden_size": int(getattr(cfg, "hidden_size", 0)),
        "model_type": str(getattr(cfg, "model_type", "bert")),
        "torch_vs_onnx_max_abs": diff,
    }


def _fix_tokenizer(path: Path, max_length: int) -> None:
    """Truncate pairs to max_length (longest first), pad each batch to its longest row."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max_length)
    pad_id = tok.token_to_id("[PAD]")
    pad_token = "[PAD]"
    if pad_id is None:
        pad_id, pad_token = tok.token_to_id("<pad>") or 0, "<pad>"
    tok.enable_padding(pad_id=pad_id, pad_token=pad_token)
    tok.save(str(path))


def _config_dims(src_dir: Path) -> dict[str, Any]:
    cfg_path = src_dir / "config.json"
    if not cfg_path.exists():
        return {"num_heads": 0, "hidden_size": 0, "model_type": "bert"}
    cfg = json.loads(cfg_path.read_text())
    return {
        "num_heads": int(cfg.get("num_attention_heads", 0)),
        "hidden_size": int(cfg.get("hidden_size", 0)),
        "model_type": str(cfg.get("model_type", "bert")),
    }


# ----------------------------------------------------------------------- variants


def _optimizer_type(model_type: str) -> str:
    # onnxruntime.transformers knows bert-like encoders under these names
    return model_type if model_type in {"bert", "bart", "gpt2", "t5"} else "bert"


def make_int8(src: Path, dst: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Fastest CPU path measured: bert fusions (Attention, EmbedLayerNorm, SkipLayerNorm,
    BiasGelu) then dynamic per-channel int8 -> QAttention / MatMulInteger."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    fused = dst.with_name("model_fused.tmp.onnx")
    opt = optimizer.optimize_model(
        str(src),
        model_type=_optimizer_type(info["model_type"]),
        num_heads=info["num_heads"],
        hidden_size=info["hidden_size"],
    )
    fusions = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(fused))
    quantize_dynamic(
        str(fused),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": 1},  # onnx.TensorProto.FLOAT for untyped tensors
    )
    fused.unlink(missing_ok=True)
    return {
        "recipe": "optimizer.optimize_model(bert) -> quantize_dynamic(QInt8, per_channel=True)",
        "fusions": fusions,
    }


def make_fp16(src: Path, dst: Path, info: dict[str, Any]) -> dict[str, Any]:
    """GPU variant: GPU-oriented fusions then fp16 weights/compute, fp32 inputs/outputs."""
    from onnxruntime.transformers import optimizer

    opt = optimizer.optimize_model(
        str(src),
        model_type=_optimizer_type(info["model_type"]),
        num_heads=info["num_heads"],
        hidden_size=info["hidden_size"],
        use_gpu=True,
        opt_level=0,
    )
    opt.convert_float_to_float16(keep_io_types=True)
    opt.save_model_to_file(str(dst))
    return {
        "recipe": "optimizer.optimize_model(bert, use_gpu=True, opt_level=0) -> "
        "convert_float_to_float16(keep_io_types=True)"
    }


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


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 (a flat CLI script)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="HF hub id or local HF model dir (cross-encoder)")
    src.add_argument("--from-onnx", help="dir with model.onnx + tokenizer.json (+ config.json)")
    ap.add_argument("--out", required=True, help="output dir (outside the repo)")
    ap.add_argument("--max-length", type=int, default=512, help="tokenizer truncation (--model)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--num-heads", type=int, default=0, help="override config.json")
    ap.add_argument("--hidden-size", type=int, default=0, help="override config.json")
    ap.add_argument("--no-fp16", action="store_true")
    ap.add_argument("--static-int8", action="store_true", help="also write model_int8_qdq.onnx")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="BEIR dir for checks")
    ap.add_argument("--check-pairs", type=int, default=96, help="0 skips the agreement check")
    args = ap.parse_args(argv)

    out_dir = Path(args.out).resolve()
    repo = Path(__file__).resolve().parent.parent
    if out_dir == repo or repo in out_dir.parents:
        ap.error(f"--out {out_dir} is inside the repository; write models elsewhere")
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir) if args.data_dir and Path(args.data_dir).exists() else None
    t0 = time.perf_counter()

    if args.model:
        info = export_hf(args.model, out_dir, args.max_length, args.opset)
    else:
        src_dir = Path(args.from_onnx)
        for name in ("model.onnx", "tokenizer.json"):
            if not (src_dir / name).exists():
                ap.error(f"{src_dir / name} missing")
        shutil.copyfile(src_dir / "model.onnx", out_dir / "model.onnx")
        shutil.copyfile(src_dir / "tokenizer.json", out_dir / "tokenizer.json")
        if (src_dir / "config.json").exists():
            shutil.copyfile(src_dir / "config.json", out_dir / "config.json")
        info = {"source": str(src_dir), **_config_dims(src_dir)}
    if args.num_heads:
        info["num_heads"] = args.num_heads
    if args.hidden_size:
        info["hidden_size"] = args.hidden_size

    fp32 = out_dir / "model.onnx"
    files: dict[str, Any] = {"model.onnx": {"recipe": "fp32 export"}}
    files["model_int8.onnx"] = make_int8(fp32, out_dir / "model_int8.onnx", info)
    if not args.no_fp16:
        files["model_fp16.onnx"] = make_fp16(fp32, out_dir / "model_fp16.onnx", info)
    if args.static_int8:
        files["model_int8_qdq.onnx"] = make_qdq(
            fp32, out_dir / "model_int8_qdq.onnx", out_dir / "tokenizer.json", data_dir
        )
    for name, meta in files.items():
        path = out_dir / name
        meta["bytes"] = path.stat().st_size
        meta["sha256"] = _sha256(path)
        print(f"wrote {path} ({meta['bytes'] / 1e6:.1f} MB)")
    agreement: dict[str, Any] = {}
    if args.check_pairs > 0:
        agreement = check_agreement(out_dir, list(files), data_dir, args.check_pairs)
    manifest = {
        "info": info,
        "files": files,
        "agreement": agreement,
        "cpu_session": {
            "providers": ["CPUExecutionProvider"],
            "intra_op_num_threads": "physical cores",
            "inter_op_num_threads": 1,
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": "ORT_ENABLE_ALL",
        },
    }
    (out_dir / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"\nwrote {out_dir / 'export.json'} in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
