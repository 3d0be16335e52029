"""What the two in-process backends (``onnx.py``, ``openvino.py``) share: a
``tokenizer.json`` read through ``PairTokenizer``, padded int64 feeds (one per pair when
the model's scores would depend on batch-mates), and logits turned into scores.

``LocalEncoder`` is the ``CrossEncoder`` half that does not depend on the runtime; a
backend sets its attributes in ``__init__`` and implements ``_infer`` (and may bind a
batch's feed to a device in ``_bind``). Imports neither runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.errors import ModelError
from gateway.model.base import Encoded, Pair, Scores
from gateway.model.pairs import PairTokenizer, padded_inputs
from gateway.settings import OnnxModel, SpeedSettings


def load_tokenizer(directory: Path, settings: OnnxModel) -> PairTokenizer:
    """``directory/tokenizer.json`` as a ``PairTokenizer``; its errors as ``ModelError``."""
    tokenizer_file = directory / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ModelError(f"no tokenizer.json in {directory}")
    try:
        return PairTokenizer(tokenizer_file, settings.max_length, settings.max_query_tokens)
    except ModelError:
        raise
    except Exception as exc:  # tokenizers raises plain Exception types
        raise ModelError(f"could not load model from {directory}: {type(exc).__name__}") from exc


def model_threads(settings: OnnxModel) -> int:
    """``MODEL__INTRA_OP_THREADS``, or the CPUs this process may run on."""
    return settings.intra_op_threads or len(os.sched_getaffinity(0))


def pair_lanes(settings: OnnxModel, speed: SpeedSettings, per_pair: bool) -> int:
    """How many pairs a per-pair model scores at once (``SPEED__PAIR_LANES``): one lane per
    model thread by default; a batched model runs one batch at a time."""
    return (speed.pair_lanes or model_threads(settings)) if per_pair else 1


def check_inputs(model_file: Path, inputs: Collection[str]) -> None:
    """Refuse a graph without the inputs every cross-encoder feed carries."""
    missing = {"input_ids", "attention_mask"} - set(inputs)
    if missing:
        raise ModelError(f"{model_file.name} lacks inputs {sorted(missing)}")


class LocalEncoder:
    """``score`` = ``run(feed(batch))``: the batcher builds the padded input of the next
    batch (``feed``) while the model thread runs the current one (``run``)."""

    _tok: PairTokenizer
    _inputs: set[str]
    _fingerprint: str
    per_pair: bool
    execution: str  # how scores are computed (part of the fingerprint)
    model_file: Path

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        return self._tok.encode(pairs)

    def clip_query(self, query: str) -> str:
        return self._tok.clip_query(query)

    def split(self, texts: Sequence[str], max_tokens: int, overlap: int) -> list[list[str]]:
        """Token windows of each text, cut at the tokens' character offsets."""
        return self._tok.split(texts, max_tokens, overlap)

    def score(self, batch: Sequence[Encoded]) -> Scores:
        return self.run(self.feed(batch))

    def feed(self, batch: Sequence[Encoded]) -> object:
        """The padded arrays of a batch (int64, as the exported graph expects), passed
        through ``_bind``; per pair: one unpadded feed per pair."""
        if self.per_pair:
            return [self._arrays([enc]) for enc in batch]
        return self._bind(self._arrays(batch))

    def run(self, feed: object) -> Scores:
        if isinstance(feed, list):
            return self._run_pairs(feed)
        return self._run_one(feed)

    def _run_one(self, feed: object) -> Scores:
        try:
            out = self._infer(feed)
        except Exception as exc:
            raise ModelError(f"inference failed: {type(exc).__name__}") from exc
        return logits_to_scores(out)

    def _run_pairs(self, feeds: list[object]) -> Scores:
        """A per-pair feed, one run per pair; a backend may run them side by side."""
        return np.concatenate([self._run_one(one) for one in feeds])

    def _arrays(self, batch: Sequence[Encoded]) -> dict[str, Any]:
        return padded_inputs(batch, self._inputs)

    def _bind(self, arrays: dict[str, Any]) -> object:
        """A batched feed as the runtime takes it; the arrays themselves by default."""
        return arrays

    def _infer(self, feed: object) -> np.ndarray[Any, Any]:
        """The model's raw output for one feed (from ``feed``); raise what the runtime raises."""
        raise NotImplementedError


def logits_to_scores(out: np.ndarray[Any, Any]) -> Scores:
    """``[B]``, ``[B,1]`` or ``[B,2]`` model output → one logit per pair.

    For two-class heads the score is ``logit(relevant) - logit(irrelevant)``, so
    its sigmoid equals the softmax probability of the relevant class.
    """
    if out.ndim == 1:
        scores = out
    elif out.ndim == 2 and out.shape[1] == 1:
        scores = out[:, 0]
    elif out.ndim == 2 and out.shape[1] == 2:
        scores = out[:, 1] - out[:, 0]
    else:
        raise ModelError(f"unsupported model output shape {list(out.shape)}")
    return scores.astype(np.float32, copy=False)


def fingerprint(
    model_digest: str,
    tokenizer_file: Path,
    max_length: int,
    execution: str,
    revision: str | None,
) -> str:
    """The cache fingerprint of a local model: its content, the tokenizer, truncation, the
    execution path (device, precision, quantization, per-pair or batched runs) and a
    fine-tuned model's registry revision, so that paths that score differently never
    share cache entries."""
    digest = hashlib.sha256()
    digest.update(model_digest.encode())
    digest.update(b"\x00")
    with tokenizer_file.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    digest.update(b"\x00")
    suffix = f";revision={revision}" if revision else ""
    digest.update(f"max_length={max_length};{execution}{suffix}".encode())
    return digest.hexdigest()[:32]


# A fine-tuned model's registry revision (``{"fingerprint": "ce:name@rN"}``), written into
# its directory at registration (gateway.learning.registry): part of the fingerprint.
REGISTRY_FILE = "registry.json"


def registered_as(directory: Path) -> str | None:
    """The registry revision a model directory carries (``ce:name@rN``), if any."""
    path = directory / REGISTRY_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"unreadable {REGISTRY_FILE} in {directory}") from exc
