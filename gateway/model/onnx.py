"""An ONNX cross-encoder run by onnxruntime over a ``tokenizers`` tokenizer.

The only module that runs onnxruntime (``gateway.model.quantize`` uses its quantization
tools offline, to build a model file). Its exceptions, and the tokenizer's, become
``ModelError`` here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.errors import ModelError
from gateway.model.base import Encoded, Pair, Scores
from gateway.model.pairs import PairTokenizer, padded_inputs
from gateway.model.variants import ModelFile, resolve
from gateway.settings import OnnxModel, SpeedSettings

log = logging.getLogger(__name__)

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
# device setting -> (execution provider, the onnxruntime package that carries it)
_ACCELERATED = {
    "cuda": (_CUDA, "onnxruntime-gpu"),
    "openvino": ("OpenVINOExecutionProvider", "onnxruntime-openvino"),
}
# A fine-tuned model's registry revision (``{"fingerprint": "ce:name@rN"}``), written into
# its directory at registration (gateway.learning.registry): part of the fingerprint.
REGISTRY_FILE = "registry.json"
_OPT_LEVEL = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def _fingerprint(model: ModelFile, tokenizer_file: Path, max_length: int, path: str) -> str:
    """Model and tokenizer content, truncation, and the execution path (device, precision,
    quantization, per-pair or batched runs): paths that score differently never share
    cache entries."""
    digest = hashlib.sha256()
    digest.update(model.sha256.encode())
    digest.update(b"\x00")
    with tokenizer_file.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    digest.update(b"\x00")
    digest.update(f"max_length={max_length};{path}".encode())
    return digest.hexdigest()[:32]


def registered_as(directory: Path) -> str | None:
    """The registry revision a model directory carries (``ce:name@rN``), if any."""
    path = directory / REGISTRY_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"unreadable {REGISTRY_FILE} in {directory}") from exc


def execution_path(model: ModelFile, settings: OnnxModel, speed: SpeedSettings) -> str:
    """How scores are computed, e.g. ``device=cpu;precision=model;quantization=static;...``."""
    precision = speed.openvino_precision if settings.device == "openvino" else "model"
    runs = "per-pair" if model.per_pair and not settings.allow_batch_dependent else "batched"
    return (
        f"device={settings.device};precision={precision};quantization={model.kind};"
        f"runs={runs};graph={speed.graph_optimization}"
    )


def providers_for(device: str) -> list[str]:
    """Execution providers for a device setting; fails clearly when one is missing."""
    if device == "cpu":
        return [_CPU]
    provider, package = _ACCELERATED[device]
    available = ort.get_available_providers()
    if provider not in available:
        raise ModelError(
            f"GATEWAY_MODEL__DEVICE={device} but this onnxruntime has no {provider} "
            f"(available: {', '.join(available)}); install {package} in place of onnxruntime"
        )
    return [provider, _CPU]


def provider_options_for(device: str, speed: SpeedSettings) -> dict[str, str]:
    """The first provider's options: the operator's, over the gateway's defaults."""
    defaults: dict[str, str] = {}
    if device == "openvino":
        hint = {"CPU": {"INFERENCE_PRECISION_HINT": speed.openvino_precision}}
        defaults = {"device_type": "CPU", "load_config": json.dumps(hint)}
    return {**defaults, **speed.provider_options}


def session_options(settings: OnnxModel, speed: SpeedSettings) -> ort.SessionOptions:
    """Threads from MODEL__*, graph optimization from SPEED__*; one run at a time per session
    (the batcher's model thread), so operators run sequentially inside it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = _OPT_LEVEL[speed.graph_optimization]
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def open_session(
    model_file: Path, settings: OnnxModel, speed: SpeedSettings, section: str = "MODEL"
) -> ort.InferenceSession:
    """An inference session on the configured device (the reranker's and the embedder's)."""
    providers = providers_for(settings.device)
    provider_options: list[dict[str, str]] = [{} for _ in providers]
    provider_options[0] = provider_options_for(settings.device, speed)
    try:
        session = ort.InferenceSession(
            str(model_file),
            session_options(settings, speed),
            providers=providers,
            provider_options=provider_options,
        )
    except Exception as exc:  # onnxruntime raises plain Exception types
        raise ModelError(
            f"could not load model from {model_file.parent}: {type(exc).__name__}"
        ) from exc
    if session.get_providers()[0] != providers[0]:
        # onnxruntime falls back to the CPU with only a warning (missing CUDA libraries,
        # bad provider options): the operator asked for the device, so refuse to start.
        raise ModelError(
            f"GATEWAY_{section}__DEVICE={settings.device}: {providers[0]} failed to start "
            "(see onnxruntime's message above); check the provider's libraries and options"
        )
    return session


def run_session(session: ort.InferenceSession, outputs: list[str], feed: dict[str, Any]) -> Any:
    """``session.run``, its errors as ``ModelError`` (for callers outside this module)."""
    try:
        return session.run(outputs, feed)
    except Exception as exc:
        raise ModelError(f"inference failed: {type(exc).__name__}") from exc


class OnnxCrossEncoder:
    """Loads the file MODEL__QUANTIZATION / MODEL__FILE select (``gateway.model.variants``)
    + ``tokenizer.json`` from a directory.

    ``score`` = ``run(feed(batch))``: the batcher builds the padded input of the next
    batch (``feed``) while the model thread runs the current one (``run``). With IO
    binding (cuda by default) ``feed`` also copies the inputs to the device.
    """

    def __init__(
        self, directory: Path, settings: OnnxModel, speed: SpeedSettings | None = None
    ) -> None:
        self.settings = settings
        speed = speed or SpeedSettings.model_validate({})
        model = resolve(directory, settings)
        model_file = model.path
        tokenizer_file = directory / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelError(f"no tokenizer.json in {directory}")
        try:
            self._tok = PairTokenizer(
                tokenizer_file, settings.max_length, settings.max_query_tokens
            )
        except ModelError:
            raise
        except Exception as exc:  # tokenizers raises plain Exception types
            raise ModelError(
                f"could not load model from {directory}: {type(exc).__name__}"
            ) from exc
        self._session = open_session(model_file, settings, speed)
        self._inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ModelError(f"{model_file.name} lacks inputs {sorted(missing)}")
        names = [o.name for o in self._session.get_outputs()]
        self._output = "logits" if "logits" in names else names[0]
        self.execution = execution_path(model, settings, speed)
        self.revision = registered_as(directory)
        revision = f";revision={self.revision}" if self.revision else ""
        self._fingerprint = _fingerprint(
            model, tokenizer_file, settings.max_length, self.execution + revision
        )
        # A dynamically quantized graph scales activations over its whole input: one pair
        # per run keeps a pair's score independent of its batch-mates.
        self.per_pair = model.per_pair and not settings.allow_batch_dependent
        self._device = "cuda" if settings.device == "cuda" else "cpu"
        self._device_id = int(speed.provider_options.get("device_id", "0"))
        self.io_binding = not self.per_pair and (
            speed.io_binding == "on" or (speed.io_binding == "auto" and settings.device == "cuda")
        )
        self.model_file = model_file
        log.info(
            "model loaded: %s (providers %s, %s, fingerprint %s)",
            model_file,
            ",".join(self._session.get_providers()),
            self.execution,
            self._fingerprint,
        )

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
        """The padded arrays of a batch; with IO binding, already bound (on the device);
        per pair: one unpadded feed per pair."""
        if self.per_pair:
            return [self._arrays([enc]) for enc in batch]
        arrays = self._arrays(batch)
        if not self.io_binding:
            return arrays
        try:
            binding = self._session.io_binding()
            for name, array in arrays.items():
                value = ort.OrtValue.ortvalue_from_numpy(array, self._device, self._device_id)
                binding.bind_ortvalue_input(name, value)
            binding.bind_output(self._output, "cpu")
        except Exception as exc:
            raise ModelError(f"input binding failed: {type(exc).__name__}") from exc
        return binding

    def run(self, feed: object) -> Scores:
        if isinstance(feed, list):
            return np.concatenate([self.run(one) for one in feed])
        try:
            if isinstance(feed, dict):
                (out,) = self._session.run([self._output], feed)
            else:
                binding: Any = feed
                self._session.run_with_iobinding(binding)
                (out,) = binding.copy_outputs_to_cpu()
        except Exception as exc:
            raise ModelError(f"inference failed: {type(exc).__name__}") from exc
        return logits_to_scores(np.asarray(out))

    def _arrays(self, batch: Sequence[Encoded]) -> dict[str, Any]:
        return padded_inputs(batch, self._inputs)


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
