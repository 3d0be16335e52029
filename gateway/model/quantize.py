"""Generate the batch-invariant int8 model closest to fp32: static int8 QDQ of
``model.onnx``.

Static quantization fixes every activation scale at calibration time, so a pair's
score depends on the pair alone (the dynamic ``model_int8.onnx`` computes its
scales over the whole batch, so its scores move with the batch-mates). The output
goes to a cache directory (``GATEWAY_MODEL__CACHE_DIR``), never next to the model,
which may be read-only::

    python -m gateway.model.quantize --model-dir DIR --cache-dir CACHE \\
        --calibration /path/to/beir/scifact          # queries/corpus + qrels/train.tsv

Recipe: NNCF's ONNX backend (post-training static quantization, transformer model type,
mixed preset: weights int8 symmetric per channel, activations int8 per tensor
(asymmetric) from MinMax over calibration pairs run one pair at a time, so padding never
widens a range; fast bias correction; SmoothQuant off), written as QDQ ONNX that
onnxruntime's CPU path runs; the layers that quantize badly stay fp32 (``KEEP_FP32``:
the feed-forward MatMuls). Beyond the old recipe's MatMuls with a constant weight, NNCF
also quantizes the attention-score MatMul (Q·Kᵀ, both inputs) and the embedding lookups
(int8 per row: the file is half the size of ``model.onnx``). Kendall tau against fp32 on
SciFact test pairs (20 queries x 16, ``ops/invariance_speed.py``, Zen 4): this recipe
0.975; onnxruntime's own ``quantize_static`` with the same layers kept (the recipe
before, ``-v2``) 0.953; NNCF with only the FFN down-projection kept 0.963, with every
MatMul int8 0.919; the dynamic ``model_int8.onnx`` 0.938. Calibration uses the *train*
split's queries: never the evaluation data.

Needs the ``quantize`` extra (the ``onnx`` and ``nncf`` packages).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.errors import ModelError
from gateway.model.variants import STATIC_RECIPE, ModelFile, inspect, static_model_path

# MatMuls kept in fp32 (mixed precision; see the module docstring): regular expressions
# over node names with the graph's copy suffixes dropped (the pair graph runs the encoder
# twice: ``dense/MatMul`` and ``dense_1/MatMul`` share one weight). Changing it changes
# the recipe: bump variants.STATIC_RECIPE.
KEEP_FP32: tuple[str, ...] = (r"layer\.\d+/intermediate/dense/", r"layer\.\d+/output/dense/")


def calibration_pairs(
    data_dir: Path, n_pairs: int, split: str = "train", seed: int = 7
) -> list[tuple[str, str]]:
    """(query, passage) pairs from a BEIR directory's ``split`` queries: each query with
    one judged passage and one random passage, so relevant and irrelevant pairs mix."""
    qrels = data_dir / "qrels" / f"{split}.tsv"
    if not qrels.is_file():
        raise ModelError(f"no {qrels}: calibration needs a BEIR directory with that split")
    judged: dict[str, list[str]] = {}
    with qrels.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3 and parts[0] != "query-id":
                judged.setdefault(parts[0], []).append(parts[1])
    queries = {
        str(q["_id"]): str(q["text"])
        for q in _jsonl(data_dir / "queries.jsonl")
        if str(q["_id"]) in judged
    }
    corpus = {
        str(d["_id"]): f"{d.get('title', '')} {d.get('text', '')}".strip()
        for d in _jsonl(data_dir / "corpus.jsonl")
    }
    rng = random.Random(seed)
    doc_ids = sorted(corpus)
    pairs: list[tuple[str, str]] = []
    for qid in rng.sample(sorted(queries), min(len(queries), (n_pairs + 1) // 2)):
        relevant = [d for d in judged[qid] if d in corpus]
        if relevant:
            pairs.append((queries[qid], corpus[rng.choice(relevant)]))
        pairs.append((queries[qid], corpus[rng.choice(doc_ids)]))
    return pairs[:n_pairs]


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def pair_feeds(
    tokenizer_file: Path, pairs: Sequence[tuple[str, str]], max_length: int
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """One unpadded feed per pair (the model's inputs, int64 ``[1, S]``)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_padding()
    tok.enable_truncation(max_length, strategy="longest_first")
    feeds = []
    for enc in tok.encode_batch(list(pairs)):
        ids = np.asarray([enc.ids], dtype=np.int64)
        feeds.append(
            {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
            }
        )
    return feeds


Feeds = Sequence[dict[str, np.ndarray[Any, Any]]]


def quantize_static_int8(
    model_file: Path,
    out_file: Path,
    feeds: Feeds,
    keep_fp32: Sequence[str] = KEEP_FP32,
) -> Path:
    """Write the static QDQ int8 model of ``model_file`` to ``out_file`` (atomically):
    NNCF's ONNX backend, transformer model type, mixed preset (see the module docstring)."""
    try:
        import nncf
        import onnx
        from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters
    except ImportError as exc:
        raise ModelError(
            "static quantization needs onnx and nncf: pip install 'rerank-gateway[quantize]'"
        ) from exc
    if not feeds:
        raise ModelError("static quantization needs calibration pairs")
    model = onnx.load(str(model_file))
    excluded = [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and any(re.search(k, _layer(n.name)) for k in keep_fp32)
    ]
    quantized = nncf_int8(
        model,
        feeds,
        nncf.IgnoredScope(names=excluded, validate=False),
        # SmoothQuant fails on this graph's shared weights, and is no help with the
        # feed-forward MatMuls (its target) kept in fp32.
        nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1)
        ),
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
        staged = Path(tmp) / out_file.name
        onnx.save(quantized, str(staged))
        os.replace(staged, out_file)
    return out_file


def nncf_int8(model: Any, feeds: Feeds, ignored: Any, advanced: Any = None) -> Any:
    """``model`` (ONNX or OpenVINO) through NNCF's recipe here: transformer model type,
    mixed preset, calibrated on every feed (one pair each), ``ignored`` kept in higher
    precision. NNCF's INFO lines (one per node it leaves alone) are off meanwhile; its
    failures, and the runtime's, are one ModelError."""
    import nncf
    from nncf.common.logging import nncf_logger

    extra = {} if advanced is None else {"advanced_parameters": advanced}
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    try:
        return nncf.quantize(
            model,
            nncf.Dataset(list(feeds)),
            model_type=nncf.ModelType.TRANSFORMER,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(feeds),
            ignored_scope=ignored,
            **extra,
        )
    except Exception as exc:  # nncf, onnx and openvino raise types of their own
        raise ModelError(f"static quantization failed: {type(exc).__name__}: {exc}") from exc
    finally:
        nncf_logger.setLevel(level)


def _layer(node_name: str) -> str:
    """``/bert/encoder/layer.0/output/dense_1/MatMul`` -> ``.../output/dense/MatMul``."""
    return re.sub(r"_\d+(?=/)", "", node_name)


class Generator:
    """A generated model's common steps (an fp32 source, the cached output, calibration
    feeds from the train split, ``manifest.json``); ``quantize(source, out, feeds)``
    writes the model and returns what else the manifest records. This module's
    ``generate`` and ``openvino_quantize.generate`` are two of them."""

    def __init__(
        self,
        recipe: str,
        out_path: Callable[[Path, ModelFile], Path],
        quantize: Callable[[Path, Path, Feeds], dict[str, str]],
    ) -> None:
        self.recipe = recipe
        self._out_path = out_path
        self._quantize = quantize

    def __call__(
        self,
        model_dir: Path,
        cache_dir: Path,
        calibration: Path,
        *,
        model_file: str = "model.onnx",
        n_pairs: int = 128,
        max_length: int = 256,
        force: bool = False,
    ) -> Path:
        """The model generated from ``model_dir/model_file`` in ``cache_dir`` (built if
        missing)."""
        source = fp32_source(model_dir / model_file)
        out = self._out_path(cache_dir, source)
        if out.is_file() and not force:
            return out
        pairs = calibration_pairs(calibration, n_pairs)
        feeds = pair_feeds(model_dir / "tokenizer.json", pairs, max_length)
        extra = self._quantize(source.path, out, feeds)
        manifest = {
            "source": str(source.path),
            "source_sha256": source.sha256,
            "recipe": self.recipe,
            "keep_fp32": list(KEEP_FP32),
            "calibration": {"dir": str(calibration), "split": "train", "pairs": len(pairs)},
            **extra,
        }
        (out.parent / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return out


def fp32_source(path: Path) -> ModelFile:
    """The model file a generator starts from: present and not quantized yet."""
    if not path.is_file():
        raise ModelError(f"no {path}")
    source = inspect(path)
    if source.kind != "none":
        raise ModelError(f"{path} is already quantized ({source.kind}); start from fp32")
    return source


def _static_int8(source: Path, out: Path, feeds: Feeds) -> dict[str, str]:
    quantize_static_int8(source, out, feeds)
    from importlib.metadata import version

    return {"nncf": version("nncf")}


# The static model of ``model_dir/model_file`` in ``cache_dir`` (built if missing).
generate = Generator(STATIC_RECIPE, static_model_path, _static_int8)


def main(argv: list[str] | None = None) -> int:
    return command(__doc__ or "", generate, argv)


def command(description: str, build: Callable[..., Path], argv: list[str] | None) -> int:
    """The command line of a model generator (this module's, ``openvino_quantize``'s)."""
    ap = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument(
        "--model-dir", required=True, type=Path, help="holds model.onnx + tokenizer.json"
    )
    ap.add_argument("--cache-dir", required=True, type=Path, help="GATEWAY_MODEL__CACHE_DIR")
    ap.add_argument("--calibration", required=True, type=Path, help="BEIR dir (train split)")
    ap.add_argument("--pairs", type=int, default=128, help="calibration pairs")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--force", action="store_true", help="rebuild even if present")
    args = ap.parse_args(argv)
    try:
        out = build(
            args.model_dir,
            args.cache_dir,
            args.calibration,
            n_pairs=args.pairs,
            max_length=args.max_length,
            force=args.force,
        )
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
