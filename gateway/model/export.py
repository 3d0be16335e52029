"""Export a cross-encoder to the gateway's ONNX layout and build its runtime variants.

    model.onnx        fp32; inputs input_ids / attention_mask / token_type_ids (int64 [B,S]),
                      output ``logits`` [B,1] (extra outputs of a --from-onnx model are kept)
    tokenizer.json    HF fast tokenizer, pair template, truncation --max-length, pad to longest
    model_int8.onnx   fastest CPU variant: ORT transformer optimizer (bert fusions) ->
                      quantize_dynamic(QInt8, per_channel=True); its activation scales span
                      the whole batch, so the gateway runs it one pair per run
                      (batch-invariant; ``gateway.model.variants``)
    model_fp16.onnx   for GPU: optimizer(use_gpu=True) -> float16 with fp32 inputs/outputs
    export.json       what was produced and how

``rerank-gateway export-model`` runs :func:`main`; ``--model`` (a Hub id or a local Hugging
Face directory) needs the ``export`` extra (torch, transformers, onnx), ``--from-onnx``
(variants of an existing ``model.onnx``) only ``onnx``. The static int8 model is generated
by ``python -m gateway.model.quantize``; ``ops.invariance_speed`` measures agreement.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def config_dims(src_dir: Path) -> dict[str, Any]:
    cfg_path = src_dir / "config.json"
    if not cfg_path.exists():
        return {"num_heads": 0, "hidden_size": 0, "model_type": "bert"}
    cfg = json.loads(cfg_path.read_text())
    return {
        "num_heads": int(cfg.get("num_attention_heads", 0)),
        "hidden_size": int(cfg.get("hidden_size", 0)),
        "model_type": str(cfg.get("model_type", "bert")),
    }


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
        opt_level=0,  # the Python fusions only: the session optimizes again at load (and
        # onnxruntime's own pass here would import torch for a version check)
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


def export(
    out_dir: Path,
    *,
    model: str | None = None,
    from_onnx: Path | None = None,
    max_length: int = 512,
    opset: int = 17,
    num_heads: int = 0,
    hidden_size: int = 0,
    fp16: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write ``model.onnx`` + ``tokenizer.json`` (exported from ``model`` or copied from
    ``from_onnx``) and the int8 / fp16 variants into ``out_dir``; (info, files)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        info = export_hf(model, out_dir, max_length, opset)
    else:
        assert from_onnx is not None
        for name in ("model.onnx", "tokenizer.json"):
            if not (from_onnx / name).is_file():
                raise FileNotFoundError(f"{from_onnx / name} missing")
        shutil.copyfile(from_onnx / "model.onnx", out_dir / "model.onnx")
        shutil.copyfile(from_onnx / "tokenizer.json", out_dir / "tokenizer.json")
        if (from_onnx / "config.json").exists():
            shutil.copyfile(from_onnx / "config.json", out_dir / "config.json")
        info = {"source": str(from_onnx), **config_dims(from_onnx)}
    if num_heads:
        info["num_heads"] = num_heads
    if hidden_size:
        info["hidden_size"] = hidden_size
    fp32 = out_dir / "model.onnx"
    files: dict[str, Any] = {"model.onnx": {"recipe": "fp32 export"}}
    files["model_int8.onnx"] = make_int8(fp32, out_dir / "model_int8.onnx", info)
    if fp16:
        files["model_fp16.onnx"] = make_fp16(fp32, out_dir / "model_fp16.onnx", info)
    return info, files


def finish(out_dir: Path, info: dict[str, Any], files: dict[str, Any], **extra: Any) -> None:
    """Sizes and hashes of ``files``, and ``export.json`` beside them."""
    for name, meta in files.items():
        path = out_dir / name
        meta["bytes"] = path.stat().st_size
        meta["sha256"] = sha256_of(path)
        print(f"wrote {path} ({meta['bytes'] / 1e6:.1f} MB)")
    manifest = {"info": info, "files": files, **extra}
    (out_dir / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out_dir / 'export.json'}")


def export_args(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`export` with the command line's arguments (``add_arguments``)."""
    return export(
        Path(args.out).resolve(),
        model=args.model,
        from_onnx=Path(args.from_onnx) if args.from_onnx else None,
        max_length=args.max_length,
        opset=args.opset,
        num_heads=args.num_heads,
        hidden_size=args.hidden_size,
        fp16=not args.no_fp16,
    )


def run(args: argparse.Namespace) -> int:
    """``rerank-gateway export-model``: export and variants, no agreement checks."""
    t0 = time.perf_counter()
    out_dir = Path(args.out).resolve()
    try:
        info, files = export_args(args)
    except FileNotFoundError as exc:
        print(f"export-model: {exc}", flush=True)
        return 2
    finish(out_dir, info, files)
    print(f"done in {time.perf_counter() - t0:.0f} s; serve it with --model {out_dir}")
    return 0
